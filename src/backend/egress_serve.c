/* echo-sandbox-egress on Kubernetes: the shared proxy ("serve"), the
 * engine's query of a run's ledger ("ledger") and its follow of the run's
 * verdicts while it goes on ("follow"); backend/egress_proxy.h. */
#include "backend/egress_proxy.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "backend/egress_token.h"
#include "engine/sandbox/netrules.h"
#include "engine/fileio.h"
#include "engine/strv.h"

enum { QUERY_WAIT_S = 10, ANSWER_MAX = 1 << 20 };

static int say_error(const struct esb_error *err) {
  fprintf(stderr, "echo-sandbox-egress: %.*s\n", (int)strcspn(err->message, "\n"), err->message);
  return 1;
}

/* One --net-allow RANGE into plan's local.network_allow. 0, or -1 with err. */
static int add_range(struct esb_plan *plan, const char *range, struct esb_error *err) {
  struct esb_net_range *r = realloc(plan->local.network_allow, (plan->local.n_network_allow + 1) * sizeof *r);
  if (!r)
    return esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  plan->local.network_allow = r;
  if (esb_net_range_parse(range, &r[plan->local.n_network_allow], err) < 0)
    return -1;
  plan->local.n_network_allow++;
  return 0;
}

/* serve's options into cfg, *listen and plan's fields. 0, or -1 with err. */
static int read_options(int argc, char **argv, struct esb_egress_shared *cfg, const char **listen,
                        struct esb_plan *plan, struct esb_error *err) {
  static const struct option options[] = {
    {"listen", required_argument, NULL, 'l'}, {"key-file", required_argument, NULL, 'k'},
    {"ca-cert", required_argument, NULL, 'c'}, {"ca-key", required_argument, NULL, 'K'},
    {"secret", required_argument, NULL, 's'}, {"upstream-ca", required_argument, NULL, 'u'},
    {"net-allow", required_argument, NULL, 'n'}, {"hosts-file", required_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
  };
  struct esb_strv secrets = ESB_STRV_INIT;
  int opt, rc = 0;
  opterr = 0;
  while (rc == 0 && (opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    const char *eq = opt == 's' ? strchr(optarg, '=') : NULL;
    switch (opt) {
    case 'l': *listen = optarg; break;
    case 'k': cfg->key_file = optarg; break;
    case 'c': cfg->ca_cert = optarg; break;
    case 'K': cfg->ca_key = optarg; break;
    case 'u': free(plan->egress_upstream_ca); plan->egress_upstream_ca = strdup(optarg); break;
    case 'h': free(plan->egress_hosts_file); plan->egress_hosts_file = strdup(optarg); break;
    case 'n': rc = add_range(plan, optarg, err); break;
    case 's':
      rc = !eq || eq == optarg || eq[1] != '/'
             ? esb_error_set(err, ESB_E_INVALID_REQUEST, "--secret %s: expected NAME=/ABSOLUTE/FILE", optarg)
             : esb_strv_push(&secrets, optarg) < 0 ? esb_error_set(err, ESB_E_SYSTEM, "out of memory") : 0;
      break;
    default:
      rc = esb_error_set(err, ESB_E_INVALID_REQUEST, "serve: unknown option or missing value: %s",
                         argv[optind - 1]);
    }
  }
  if (rc == 0 && (optind != argc || !*listen || !cfg->key_file))
    rc = esb_error_set(err, ESB_E_INVALID_REQUEST, "serve: --listen and --key-file are needed, and no operand");
  if (secrets.n)
    plan->egress_secrets = esb_strv_detach(&secrets);
  esb_strv_clear(&secrets);
  return rc;
}

int esb_egress_serve_main(int argc, char **argv, const char *usage) {
  struct esb_plan plan = ESB_PLAN_INIT;
  struct esb_egress_proxy proxy = ESB_EGRESS_PROXY_INIT;
  struct esb_egress_shared cfg = { 0 };
  struct esb_error err = ESB_ERROR_INIT;
  const char *listen = NULL;
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, NULL); /* the threads inherit it: sigwait below takes them */
  int rc = read_options(argc, argv, &cfg, &listen, &plan, &err);
  if (rc < 0)
    fputs(usage, stderr);
  if (rc == 0 && (esb_egress_proxy_prepare_shared(&proxy, &plan, &cfg, &err) < 0 ||
                  esb_egress_proxy_listen(&proxy, listen, &err) < 0))
    rc = -1;
  if (rc == 0) {
    fprintf(stderr, "{\"listening\":\"%s\",\"injecting\":%s}\n", listen, proxy.injecting ? "true" : "false");
    int sig;
    while (sigwait(&stop, &sig) != 0)
      ;
  }
  esb_egress_proxy_release(&proxy, NULL);
  esb_plan_release_egress(&plan);
  free(plan.local.network_allow);
  return rc < 0 ? say_error(&err) : 0;
}

/* ---- the engine's query of a run's ledger ---- */

/* A connection to URL's ("http://HOST:PORT", a path after it ignored)
 * host, its waits bounded by QUERY_WAIT_S, for what (the mode, in err's
 * words). The socket, or -1 with err. */
static int dial(const char *url, const char *what, struct esb_error *err) {
  char host[256], port[8] = "80";
  const char *h = strncmp(url, "http://", 7) == 0 ? url + 7 : NULL;
  const char *at = h ? strchr(h, '@') : NULL;
  if (at && at < h + strcspn(h, "/"))
    h = at + 1; /* credentials in the URL are no part of the address */
  size_t n = h ? strcspn(h, ":/") : 0;
  if (!h || !n || n >= sizeof host)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "%s: %s is no http://HOST:PORT", what, url);
  memcpy(host, h, n);
  host[n] = '\0';
  if (h[n] == ':')
    snprintf(port, sizeof port, "%.*s", (int)strcspn(h + n + 1, "/"), h + n + 1);
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *list = NULL;
  int fd = -1, gai = getaddrinfo(host, port, &hints, &list);
  if (gai != 0)
    return esb_error_set(err, ESB_E_BACKEND_UNAVAILABLE, "%s: %s: %s", what, host, gai_strerror(gai));
  struct timeval tv = { .tv_sec = QUERY_WAIT_S };
  for (struct addrinfo *a = list; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 ||
                    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
                    connect(fd, a->ai_addr, a->ai_addrlen) < 0)) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(list);
  return fd >= 0 ? fd : esb_error_errno(err, ESB_E_BACKEND_UNAVAILABLE, "%s: connecting to %s", what, url);
}

/* The whole answer (until the proxy closes), at most ANSWER_MAX bytes. */
static char *read_answer(int fd, size_t *len) {
  char *buf = malloc(ANSWER_MAX + 1);
  *len = 0;
  ssize_t n = 1;
  while (buf && *len < ANSWER_MAX && (n = read(fd, buf + *len, ANSWER_MAX - *len)) != 0) {
    if (n < 0 && errno != EINTR)
      break;
    if (n > 0)
      *len += (size_t)n;
  }
  if (buf && n != 0) { /* an error, or more than a ledger */
    free(buf);
    return NULL;
  }
  if (buf)
    buf[*len] = '\0';
  return buf;
}

/* A GET of path with the run's token, sent to URL's host, for what (the
 * mode, in err's words). The socket, its answer to come, or -1 with err. */
static int ask(const char *url, const char *what, const char *path, const char *token, struct esb_error *err) {
  char *auth = esb_egress_token_basic(token), *request = NULL;
  int fd = auth ? dial(url, what, err) : esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  int len = fd >= 0 ? asprintf(&request, "GET %s HTTP/1.1\r\nHost: echo-sandbox-egress\r\nProxy-Authorization: "
                               "%s\r\nConnection: close\r\n\r\n", path, auth) : -1;
  if (fd >= 0 && (len < 0 || esb_write_all(fd, request, (size_t)len) < 0)) {
    esb_error_errno(err, ESB_E_BACKEND_UNAVAILABLE, "%s: asking %s", what, url);
    close(fd);
    fd = -1;
  }
  free(auth);
  free(request);
  return fd;
}

int esb_egress_ledger_main(const char *url) {
  struct esb_error err = ESB_ERROR_INIT;
  char token[ESB_EGRESS_TOKEN_MAX + 2];
  if (!fgets(token, sizeof token, stdin) || !strchr(token, '\n')) {
    esb_error_set(&err, ESB_E_INVALID_REQUEST, "ledger: stdin holds no token line");
    return say_error(&err);
  }
  token[strcspn(token, "\n")] = '\0';
  char *answer = NULL;
  int fd = ask(url, "ledger", ESB_EGRESS_LEDGER_PATH, token, &err);
  size_t got = 0;
  if (fd >= 0 && !(answer = read_answer(fd, &got)))
    esb_error_errno(&err, ESB_E_BACKEND_UNAVAILABLE, "ledger: %s did not answer whole", url);
  const char *body = answer ? strstr(answer, "\r\n\r\n") : NULL;
  if (answer && (strncmp(answer, "HTTP/1.1 200 ", 13) != 0 || !body))
    esb_error_set(&err, ESB_E_BACKEND_UNAVAILABLE, "ledger: %s answered %.*s", url,
                  (int)strcspn(answer, "\r\n"), answer);
  else if (body)
    fwrite(body + 4, 1, got - (size_t)(body + 4 - answer), stdout);
  if (fd >= 0)
    close(fd);
  free(answer);
  return err.code != ESB_OK ? say_error(&err) : fflush(stdout) == 0 ? 0 : 1;
}

/* ---- the engine's follow of a run's verdicts ---- */

/* The answer's head (at most sizeof head bytes) from fd: whether it says
 * 200, the body's bytes that came with it into body (*n). */
static bool read_follow_head(int fd, char *body, size_t cap, size_t *n, struct esb_error *err) {
  char head[4096];
  size_t len = 0;
  const char *end = NULL;
  while (!end && len < sizeof head - 1) {
    ssize_t r = read(fd, head + len, sizeof head - 1 - len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    len += (size_t)r;
    head[len] = '\0';
    end = strstr(head, "\r\n\r\n");
  }
  if (!end || strncmp(head, "HTTP/1.1 200 ", 13) != 0) {
    head[len] = '\0';
    esb_error_set(err, ESB_E_BACKEND_UNAVAILABLE, "follow: the proxy answered %.*s", (int)strcspn(head, "\r\n"),
                  len ? head : "nothing");
    return false;
  }
  *n = len - (size_t)(end + 4 - head);
  if (*n > cap)
    *n = cap;
  memcpy(body, end + 4, *n);
  return true;
}

int esb_egress_follow_main(const char *url) {
  struct esb_error err = ESB_ERROR_INIT;
  char token[ESB_EGRESS_TOKEN_MAX + 2], buf[4096];
  /* the token's line alone: the rest of stdin is its end, read below from fd 0 unbuffered */
  ssize_t got = 0, r = 0;
  while (got < (ssize_t)sizeof token - 1 && (got == 0 || token[got - 1] != '\n') &&
         ((r = read(STDIN_FILENO, token + got, 1)) > 0 || (r < 0 && errno == EINTR)))
    got += r > 0 ? r : 0;
  if (got == 0 || token[got - 1] != '\n') {
    esb_error_set(&err, ESB_E_INVALID_REQUEST, "follow: stdin holds no token line");
    return say_error(&err);
  }
  token[got - 1] = '\0';
  int fd = ask(url, "follow", ESB_EGRESS_FOLLOW_PATH, token, &err);
  size_t n = 0;
  bool on = fd >= 0 && read_follow_head(fd, buf, sizeof buf, &n, &err);
  /* the body as it comes, until the proxy ends it or the engine ends our stdin */
  while (on && (n == 0 || esb_write_all(STDOUT_FILENO, buf, n) == 0)) {
    struct pollfd fds[2] = { { .fd = fd, .events = POLLIN }, { .fd = STDIN_FILENO, .events = POLLIN } };
    if (poll(fds, 2, -1) < 0 && errno != EINTR)
      break;
    n = 0;
    if (fds[1].revents)
      break;
    if (fds[0].revents && (r = read(fd, buf, sizeof buf)) <= 0 && !(r < 0 && errno == EINTR))
      break;
    n = fds[0].revents && r > 0 ? (size_t)r : 0;
  }
  if (fd >= 0)
    close(fd);
  return err.code != ESB_OK ? say_error(&err) : 0;
}
