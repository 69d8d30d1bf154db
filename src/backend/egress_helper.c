/* The engine's side of the egress proxy's process (backend/egress_helper.h). */
#include "backend/egress_helper.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/egress_token.h"
#include "engine/fileio.h"
#include "engine/install_paths.h"
#include "engine/sandbox/netrules.h"

/* Our ends of its pipes: blocking, for the short conversation. */
static void blocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK); }

static int say_lists(FILE *f, const struct esb_plan *plan, bool events) {
  for (char **e = plan->egress_allow; e && *e; e++)
    fprintf(f, "allow %s\n", *e);
  for (char **e = plan->egress_deny; e && *e; e++)
    fprintf(f, "deny %s\n", *e);
  for (size_t i = 0; i < plan->n_egress_inject; i++) { /* the secret's file: its value is never ours */
    const struct esb_egress_inject *e = &plan->egress_inject[i];
    size_t len = strlen(e->secret);
    for (char **s = plan->egress_secrets; s && *s; s++)
      if (!strncmp(*s, e->secret, len) && (*s)[len] == '=')
        fprintf(f, "inject %s %s %s %s\n", e->host, e->header, e->secret, *s + len + 1);
  }
  if (plan->egress_upstream_ca)
    fprintf(f, "upstream_ca %s\n", plan->egress_upstream_ca);
  if (plan->egress_hosts_file)
    fprintf(f, "hosts %s\n", plan->egress_hosts_file);
  if (events)
    fputs("events\n", f);
  for (size_t i = 0; i < plan->local.n_network_allow; i++) {
    char range[64];
    esb_net_range_format(&plan->local.network_allow[i], range, sizeof range);
    fprintf(f, "net_allow %s\n", range);
  }
  fputs("end\n", f);
  return fflush(f) == 0 ? 0 : -1;
}

/* At most n of the helper's bytes: first those esb_egress_helper_poll read
 * ahead, then its stdout's (blocking). > 0, or 0 at its end, -1. */
static ssize_t take(struct esb_egress_helper *h, char *dst, size_t n) {
  if (h->ahead_len) {
    size_t k = n < h->ahead_len ? n : h->ahead_len;
    memcpy(dst, h->ahead, k);
    memmove(h->ahead, h->ahead + k, h->ahead_len - k);
    h->ahead_len -= k;
    return (ssize_t)k;
  }
  ssize_t r;
  do
    r = read(h->child.out, dst, n);
  while (r < 0 && errno == EINTR);
  return r;
}

/* One line of the helper's (without its newline), at most n - 1 bytes. */
static bool read_line(struct esb_egress_helper *h, char *line, size_t n) {
  size_t got = 0;
  while (got + 1 < n) {
    if (take(h, line + got, 1) <= 0)
      return false;
    if (line[got] == '\n')
      break;
    got++;
  }
  line[got] = '\0';
  return true;
}

static int said_error(const char *line, struct esb_error *err);

/* The helper's answer: 0 at want, or -1 with err (its error's words). */
static int expect(struct esb_egress_helper *h, const char *want, struct esb_error *err) {
  char line[ESB_MESSAGE_MAX];
  if (!read_line(h, line, sizeof line))
    return esb_error_set(err, ESB_E_SANDBOX_SETUP, "egress proxy: echo-sandbox-egress ended before it listened");
  return strcmp(line, want) == 0 ? 0 : said_error(line, err);
}

/* A line of the helper's that is not what was wanted: its "error CODE
 * MESSAGE" into err, or the line itself. -1. */
static int said_error(const char *line, struct esb_error *err) {
  int code = ESB_E_SANDBOX_SETUP, used = 0;
  if (sscanf(line, "error %d %n", &code, &used) < 1 || code <= ESB_OK || code >= ESB_E__COUNT)
    code = ESB_E_SANDBOX_SETUP;
  return esb_error_set(err, (enum esb_error_code)code, "%s", used ? line + used : line);
}

/* The CA's certificate (len bytes), then the host's trust store after it
 * (read here: the bundle is public): malloc'd, *out_len bytes; NULL: no
 * memory. */
static char *make_bundle(const char *ca, size_t len, size_t *out_len) {
  size_t sys_len = 0;
  char *sys = esb_read_file("/etc/ssl/certs/ca-certificates.crt", &sys_len);
  char *bundle = malloc(len + (sys ? sys_len : 0) + 1);
  if (bundle) {
    memcpy(bundle, ca, len);
    if (sys)
      memcpy(bundle + len, sys, sys_len);
    *out_len = len + (sys ? sys_len : 0);
  }
  free(sys);
  return bundle;
}

/* "ca LENGTH" and the certificate's bytes, and the bundle of it. */
static int read_ca(struct esb_egress_helper *h, struct esb_error *err) {
  char line[ESB_MESSAGE_MAX];
  size_t len = 0, got = 0;
  if (!read_line(h, line, sizeof line))
    return esb_error_set(err, ESB_E_SANDBOX_SETUP, "egress proxy: echo-sandbox-egress sent no CA certificate");
  if (sscanf(line, "ca %zu", &len) != 1 || !len || len > 65536)
    return said_error(line, err);
  if (!(h->ca_pem = malloc(len)))
    return esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  while (got < len) {
    ssize_t r = take(h, h->ca_pem + got, len - got);
    if (r <= 0)
      return esb_error_set(err, ESB_E_SANDBOX_SETUP, "egress proxy: echo-sandbox-egress's CA certificate ended early");
    got += (size_t)r;
  }
  h->ca_len = len;
  return (h->bundle = make_bundle(h->ca_pem, len, &h->bundle_len)) ? 0 : esb_error_set(err, ESB_E_SYSTEM,
                                                                                        "out of memory");
}

int esb_egress_helper_prepare(struct esb_egress_helper *h, const struct esb_plan *plan, struct esb_error *err) {
  const char *program = esb_install_program(ESB_PROGRAM_EGRESS);
  if (!program)
    return esb_error_set(err, ESB_E_SANDBOX_SETUP, "egress proxy: echo-sandbox-egress is not installed beside "
                         "the engine (or $ECHO_SANDBOX_EGRESS names no program)");
  const char *argv[] = { program, NULL };
  const char *env[] = { NULL };
  h->child = (struct esb_child)ESB_CHILD_INIT;
  h->ahead_len = 0;
  h->child.argv = argv;
  h->child.env = env;
  h->child.in = ESB_CHILD_PIPE;
  h->child.out = ESB_CHILD_PIPE;
  if (esb_child_start(&h->child, err) < 0) {
    esb_error_prefix(err, "egress proxy: starting echo-sandbox-egress");
    return -1;
  }
  h->started = true;
  blocking(h->child.in);
  blocking(h->child.out);
  FILE *to = fdopen(dup(h->child.in), "w");
  int rc = to ? say_lists(to, plan, h->on_seen != NULL) : -1;
  if (to)
    fclose(to);
  if (rc < 0)
    esb_error_set(err, ESB_E_SANDBOX_SETUP, "egress proxy: echo-sandbox-egress ended before it listened");
  else if ((plan->n_egress_inject && read_ca(h, err) < 0) || expect(h, "prepared", err) < 0)
    rc = -1;
  if (rc < 0)
    esb_egress_helper_finish(h, NULL);
  return rc;
}

int esb_egress_helper_sandbox_files(struct esb_egress_helper *h, const struct esb_file *files, size_t n,
                                    const struct esb_file **out, size_t *n_out) {
  *out = files;
  *n_out = n;
  if (!h->ca_pem)
    return 0;
  free(h->files);
  if (!(h->files = calloc(n + 2, sizeof *h->files)))
    return -1;
  if (n)
    memcpy(h->files, files, n * sizeof *files);
  h->files[n] = (struct esb_file){ .path = (char *)ESB_EGRESS_CA_FILE, .data = h->ca_pem, .len = h->ca_len,
                                   .mode = 0444 };
  h->files[n + 1] = (struct esb_file){ .path = (char *)ESB_EGRESS_BUNDLE_FILE, .data = h->bundle,
                                       .len = h->bundle_len, .mode = 0444 };
  *out = h->files;
  *n_out = n + 2;
  return 0;
}

int esb_egress_helper_start(struct esb_egress_helper *h, pid_t child, struct esb_error *err) {
  if (!h->started)
    return esb_error_set(err, ESB_E_SANDBOX_SETUP, "egress proxy: echo-sandbox-egress was not prepared");
  if (dprintf(h->child.in, "listen %d\n", (int)child) < 0 || expect(h, "ready", err) < 0) {
    if (err->code == ESB_OK)
      esb_error_set(err, ESB_E_SANDBOX_SETUP, "egress proxy: echo-sandbox-egress ended before it listened");
    esb_egress_helper_finish(h, NULL);
    return -1;
  }
  h->listening = true;
  return 0;
}

/* One attempt's record after its line ("attempt" or "seen", then REASON
 * PORT OUT IN LENGTH): its host's bytes and a newline, into *a (its host
 * in host[]). 0, or -1 where it is out of bounds. */
static int read_attempt(struct esb_egress_helper *h, const char *line, struct esb_egress_attempt *a,
                        char host[ESB_EGRESS_HOST_MAX + 2]) {
  unsigned reason, port;
  unsigned long long bytes_out, bytes_in;
  size_t len, got = 0;
  if (sscanf(line, "%*s %u %u %llu %llu %zu", &reason, &port, &bytes_out, &bytes_in, &len) != 5 ||
      reason >= ESB_EGRESS_REASON__COUNT || port > 65535 || len > ESB_EGRESS_HOST_MAX)
    return -1;
  while (got < len + 1) {
    ssize_t r = take(h, host + got, len + 1 - got);
    if (r <= 0)
      return -1;
    got += (size_t)r;
  }
  if (host[len] != '\n' || memchr(host, '\0', len))
    return -1;
  host[len] = '\0';
  *a = (struct esb_egress_attempt){ .host = host, .port = port, .reason = (enum esb_egress_reason)reason,
                                    .allowed = reason == ESB_EGRESS_ALLOWED, .bytes_out = bytes_out,
                                    .bytes_in = bytes_in };
  return 0;
}

static void add_attempt(struct esb_egress_ledger *out, const struct esb_egress_attempt *a) {
  long i = out ? esb_egress_ledger_add(out, a->host, a->port) : -1;
  if (i >= 0) {
    struct esb_egress_attempt *into = &out->v[i];
    into->reason = a->reason;
    into->allowed = a->allowed;
    into->bytes_out = a->bytes_out;
    into->bytes_in = a->bytes_in;
  }
}

/* Whether entry i of the run's ledger is told now, where h follows it
 * (marked told); an entry out of the ledger's bounds is never told. */
static bool tell_once(struct esb_egress_helper *h, unsigned long i) {
  if (!h->following)
    return true;
  if (i >= ESB_EGRESS_LEDGER_MAX || (h->told[i / 8] & (1u << (i % 8))))
    return false;
  h->told[i / 8] |= (unsigned char)(1u << (i % 8));
  return true;
}

/* A verdict as it was given ("seen", a follow's with its entry's index
 * after the record's fields): to the caller's on_seen. */
static int read_seen(struct esb_egress_helper *h, const char *line) {
  struct esb_egress_attempt a;
  char host[ESB_EGRESS_HOST_MAX + 2];
  unsigned long index = ESB_EGRESS_LEDGER_MAX;
  if (read_attempt(h, line, &a, host) < 0 ||
      (h->following && sscanf(line, "%*s %*u %*u %*u %*u %*u %lu", &index) != 1))
    return -1;
  if (h->on_seen && tell_once(h, index))
    h->on_seen(&a, h->seen_userdata);
  return 0;
}

/* The ledger's records into out; where untold follows the run, its
 * on_seen is told of each entry it was not told of (the records' order is
 * the entries'). */
static int read_ledger(struct esb_egress_helper *h, struct esb_egress_ledger *out,
                       struct esb_egress_helper *untold) {
  char line[128], host[ESB_EGRESS_HOST_MAX + 2];
  unsigned long long left_off;
  struct esb_egress_attempt a;
  unsigned long index = 0;
  while (read_line(h, line, sizeof line) && !strncmp(line, "seen ", 5)) /* the verdicts not yet told */
    if (read_seen(h, line) < 0)
      return -1;
  if (sscanf(line, "left_off %llu", &left_off) != 1)
    return -1;
  if (out)
    out->left_off += left_off;
  while (read_line(h, line, sizeof line)) {
    if (strcmp(line, "end") == 0)
      return 0;
    if (strncmp(line, "attempt ", 8) != 0 || read_attempt(h, line, &a, host) < 0)
      return -1;
    add_attempt(out, &a);
    if (untold && untold->on_seen && tell_once(untold, index))
      untold->on_seen(&a, untold->seen_userdata);
    index++;
  }
  return -1;
}

/* The whole "seen" records at the front of what was read ahead: each to
 * on_seen, and out of the buffer. */
static void tell_ahead(struct esb_egress_helper *h) {
  for (;;) {
    char *nl = memchr(h->ahead, '\n', h->ahead_len);
    size_t len;
    char line[128];
    if (!nl || (size_t)(nl - h->ahead) >= sizeof line || strncmp(h->ahead, "seen ", 5) != 0)
      return;
    memcpy(line, h->ahead, (size_t)(nl - h->ahead));
    line[nl - h->ahead] = '\0';
    if (sscanf(line, "%*s %*u %*u %*u %*u %zu", &len) != 1 || len > ESB_EGRESS_HOST_MAX)
      return; /* finish finds it wrong */
    size_t head = (size_t)(nl - h->ahead) + 1;
    if (head + len + 1 > h->ahead_len)
      return; /* the rest is on its way */
    memmove(h->ahead, h->ahead + head, h->ahead_len - head); /* take() now starts at the host */
    h->ahead_len -= head;
    if (read_seen(h, line) < 0)
      return;
  }
}

bool esb_egress_helper_poll(struct esb_egress_helper *h) {
  if (!h->listening)
    return false;
  ssize_t r;
  do /* readable: this read does not wait */
    r = read(h->child.out, h->ahead + h->ahead_len, sizeof h->ahead - h->ahead_len);
  while (r < 0 && errno == EINTR);
  if (r > 0)
    h->ahead_len += (size_t)r;
  tell_ahead(h);
  /* its end, a failure, or a buffer full of what is no verdict: finish reads the rest */
  return r > 0 && h->ahead_len < sizeof h->ahead;
}

int esb_egress_helper_finish(struct esb_egress_helper *h, struct esb_egress_ledger *out) {
  free(h->ca_pem);
  free(h->bundle);
  free(h->files);
  h->ca_pem = h->bundle = NULL;
  h->files = NULL;
  if (!h->started)
    return 0;
  h->started = false;
  close(h->child.in); /* its word to stop */
  h->child.in = -1;
  /* one that never listened has no ledger: nothing went through it */
  int rc = h->listening ? read_ledger(h, out, NULL) : 0;
  h->listening = false;
  h->ahead_len = 0;
  if (rc < 0 && out)
    out->left_off++; /* what it could not say is not claimed absent */
  int status;
  esb_child_reap(&h->child, &status, false);
  esb_child_close(&h->child);
  return rc;
}

/* ---- Kubernetes: the shared proxy (backend/egress_token.h) ---- */

int esb_egress_k8s_check(const char *proxy, const char *key_file, const char *ca_file, struct esb_error *err) {
  const char *host = proxy && !strncmp(proxy, "http://", 7) ? proxy + 7 : NULL;
  size_t n = host ? strcspn(host, ":/@") : 0;
  char *end = NULL;
  long port = host && host[n] == ':' ? strtol(host + n + 1, &end, 10) : 0;
  if (!n || port < 1 || port > 65535 || (*end && strcmp(end, "/") != 0))
    return esb_error_set(err, ESB_E_POLICY, "egress.k8s.proxy (%.200s): expected \"http://HOST:PORT\" (the "
                         "shared egress proxy's Service, e.g. http://echo-sandbox-egress.echo-sandbox.svc:3128; "
                         "no credentials, no path)", proxy ? proxy : "nil");
  const struct { const char *name, *path; } files[] = { {"key_file", key_file}, {"ca_file", ca_file} };
  for (size_t i = 0; i < 2; i++) {
    if (!files[i].path && i == 1)
      continue;
    if (!files[i].path || files[i].path[0] != '/' || strchr(files[i].path, '\n'))
      return esb_error_set(err, ESB_E_POLICY, "egress.k8s.%s (%.200s): expected an absolute file path",
                           files[i].name, files[i].path ? files[i].path : "nil");
    if (access(files[i].path, R_OK) < 0)
      return esb_error_errno(err, ESB_E_POLICY, "egress.k8s.%s: %s", files[i].name, files[i].path);
  }
  return 0;
}

/* echo-sandbox-egress with args as t's child (t read as a helper's
 * stdout), in on its stdin (then closed, unless keep_in), its stdout and
 * stderr pipes of ours (blocking). 0, or -1 with err. */
static int start_tool(struct esb_egress_helper *t, const char *const *args, const char *in, size_t len,
                      bool keep_in, struct esb_error *err) {
  struct esb_child *c = &t->child;
  const char *program = esb_install_program(ESB_PROGRAM_EGRESS);
  if (!program)
    return esb_error_set(err, ESB_E_SANDBOX_SETUP, "egress: echo-sandbox-egress is not installed beside the engine "
                         "(or $ECHO_SANDBOX_EGRESS names no program)");
  const char *argv[] = { program, args[0], args[1], NULL };
  const char *env[] = { NULL };
  *c = (struct esb_child)ESB_CHILD_INIT;
  c->argv = argv;
  c->env = env;
  c->in = c->out = c->err = ESB_CHILD_PIPE;
  if (esb_child_start(c, err) < 0) {
    esb_error_prefix(err, "egress: starting echo-sandbox-egress");
    return -1;
  }
  blocking(c->in);
  blocking(c->out);
  blocking(c->err);
  esb_write_all(c->in, in, len); /* a short write: it says why, on stderr */
  if (!keep_in) {
    close(c->in);
    c->in = -1;
  }
  return 0;
}

/* Reaps the tool: 0 where it exited 0, else -1 with err its stderr's line
 * (one write of a few words: one read has it). */
static int end_tool(struct esb_egress_helper *t, const char *what, struct esb_error *err) {
  struct esb_child *c = &t->child;
  char said[ESB_MESSAGE_MAX] = "";
  int status = 0;
  ssize_t n;
  do
    n = read(c->err, said, sizeof said - 1);
  while (n < 0 && errno == EINTR);
  said[n > 0 ? n : 0] = '\0';
  said[strcspn(said, "\n")] = '\0';
  esb_child_reap(c, &status, false);
  esb_child_close(c);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return 0;
  return esb_error_set(err, ESB_E_BACKEND_UNAVAILABLE, "egress: %s: %s", what,
                       said[0] ? said : "echo-sandbox-egress ended without a word");
}

/* The run's token: echo-sandbox-egress sign with the key file. */
static int sign(const char *key_file, const char *grant, char **token, struct esb_error *err) {
  struct esb_egress_helper t = ESB_EGRESS_HELPER_INIT;
  char line[ESB_EGRESS_TOKEN_MAX + 2];
  if (start_tool(&t, (const char *const[]){ "sign", key_file }, grant, strlen(grant), false, err) < 0)
    return -1;
  bool got = read_line(&t, line, sizeof line) && line[0];
  if (end_tool(&t, "signing the run's token", err) < 0)
    return -1;
  if (!got || !(*token = strdup(line)))
    return esb_error_set(err, ESB_E_SYSTEM, "egress: signing the run's token: no token came back");
  return 0;
}

/* The proxy's "ADDRESS:PORT" ([ADDRESS] for IPv6), its host name resolved
 * here: the pods have no DNS (their NetworkPolicy lets them reach the
 * proxy alone). 0, or -1 with err. */
static int proxy_address(const char *proxy, char *out, size_t n, struct esb_error *err) {
  const char *host = proxy + 7; /* checked: http://HOST:PORT */
  size_t len = strcspn(host, ":");
  char name[256], port[8];
  snprintf(name, sizeof name, "%.*s", (int)len, host);
  snprintf(port, sizeof port, "%.*s", (int)strcspn(host + len + 1, "/"), host + len + 1);
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *list = NULL;
  int gai = getaddrinfo(name, port, &hints, &list);
  char addr[INET6_ADDRSTRLEN] = "";
  if (gai == 0 && list->ai_family == AF_INET)
    inet_ntop(AF_INET, &((struct sockaddr_in *)list->ai_addr)->sin_addr, addr, sizeof addr);
  else if (gai == 0 && list->ai_family == AF_INET6)
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)list->ai_addr)->sin6_addr, addr, sizeof addr);
  bool v6 = gai == 0 && list->ai_family == AF_INET6;
  if (gai == 0)
    freeaddrinfo(list);
  if (!addr[0])
    return esb_error_set(err, ESB_E_BACKEND_UNAVAILABLE, "egress.k8s.proxy: %s does not resolve (%s)", name,
                         gai ? gai_strerror(gai) : "no address");
  snprintf(out, n, v6 ? "[%s]:%s" : "%s:%s", addr, port);
  return 0;
}

/* plan's env with the proxy's variables (the token in their URL, the
 * proxy at address) and, where the plan injects, the CA's. 0, or -1 (no
 * memory). */
static int add_k8s_env(struct esb_plan *plan, const char *address) {
  static const char *const proxy_vars[] = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                                           "http_proxy", "https_proxy", "all_proxy"};
  const struct { const char *var, *file; } ca_vars[] = {
    {"SSL_CERT_FILE", ESB_EGRESS_BUNDLE_FILE}, {"REQUESTS_CA_BUNDLE", ESB_EGRESS_BUNDLE_FILE},
    {"CURL_CA_BUNDLE", ESB_EGRESS_BUNDLE_FILE}, {"NODE_EXTRA_CA_CERTS", ESB_EGRESS_CA_FILE}};
  const struct esb_egress_k8s *k = &plan->egress_k8s;
  const char *dir = plan->working_dir; /* none: the files' names, from the pod's working dir */
  struct esb_strv env = ESB_STRV_INIT;
  int rc = 0;
  for (char **e = plan->env; e && *e; e++)
    rc |= esb_strv_push(&env, *e);
  for (size_t i = 0; i < sizeof proxy_vars / sizeof *proxy_vars; i++)
    rc |= esb_strv_pushf(&env, "%s=http://%s@%s", proxy_vars[i], k->token, address);
  for (size_t i = 0; plan->n_egress_inject && i < sizeof ca_vars / sizeof *ca_vars; i++)
    rc |= esb_strv_pushf(&env, "%s=%s%s%s", ca_vars[i].var, dir ? dir : "", dir ? "/" : "", ca_vars[i].file);
  char **v = rc ? NULL : esb_strv_detach(&env);
  esb_strv_clear(&env);
  if (!v)
    return -1;
  esb_strv_free(plan->env);
  plan->env = v;
  return 0;
}

/* The proxy's CA certificate and its bundle, among plan's files. 0, or -1
 * with err. */
static int add_k8s_files(struct esb_plan *plan, struct esb_error *err) {
  struct esb_egress_k8s *k = &plan->egress_k8s;
  if (!(k->ca_pem = esb_read_file(k->ca_file, &k->ca_len)))
    return esb_error_errno(err, ESB_E_POLICY, "egress.k8s.ca_file: %s", k->ca_file);
  struct esb_file *files = calloc(plan->n_files + 2, sizeof *files);
  if (!files || !(k->bundle = make_bundle(k->ca_pem, k->ca_len, &k->bundle_len))) {
    free(files);
    return esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  }
  if (plan->n_files)
    memcpy(files, plan->files, plan->n_files * sizeof *files);
  files[plan->n_files] = (struct esb_file){ .path = (char *)ESB_EGRESS_CA_FILE, .data = k->ca_pem,
                                            .len = k->ca_len, .mode = 0444 };
  files[plan->n_files + 1] = (struct esb_file){ .path = (char *)ESB_EGRESS_BUNDLE_FILE, .data = k->bundle,
                                                .len = k->bundle_len, .mode = 0444 };
  free(plan->owned_files); /* its entries borrow the request's bytes, as the copies do */
  plan->files = plan->owned_files = files;
  plan->n_files += 2;
  return 0;
}

int esb_egress_k8s_prepare(struct esb_plan *plan, struct esb_error *err) {
  struct esb_egress_k8s *k = &plan->egress_k8s;
  char address[INET6_ADDRSTRLEN + 16];
  if (proxy_address(k->proxy, address, sizeof address, err) < 0)
    return -1;
  int64_t expires = (int64_t)time(NULL) + (int64_t)((plan->timeout_ms + 999) / 1000) + (int64_t)k->grace_s;
  char *grant = esb_egress_grant_text(plan, plan->k8s.pod_name, expires);
  if (!grant)
    return esb_error_set(err, ESB_E_SYSTEM, "egress: the run's grant (out of memory)");
  int rc = sign(k->key_file, grant, &k->token, err);
  free(grant);
  if (rc == 0 && plan->n_egress_inject)
    rc = add_k8s_files(plan, err);
  if (rc == 0 && add_k8s_env(plan, address) < 0)
    rc = esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  return rc;
}

int esb_egress_k8s_follow(struct esb_egress_helper *h, const struct esb_plan *plan, struct esb_error *err) {
  const struct esb_egress_k8s *k = &plan->egress_k8s;
  char *line = NULL;
  int n = asprintf(&line, "%s\n", k->token);
  if (n < 0)
    return esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  int rc = start_tool(h, (const char *const[]){ "follow", k->proxy }, line, (size_t)n, true, err);
  free(line);
  if (rc < 0)
    return -1;
  fcntl(h->child.out, F_SETFL, fcntl(h->child.out, F_GETFL) | O_NONBLOCK); /* read as the loop says it is readable */
  h->ahead_len = 0;
  h->started = h->listening = h->following = true;
  memset(h->told, 0, sizeof h->told);
  return 0;
}

void esb_egress_k8s_follow_stop(struct esb_egress_helper *h) {
  if (!h->started)
    return;
  h->started = h->listening = false;
  /* Killed, not asked: it may be in the middle of a connect or a write
   * that would hold the run's end up; what it relayed is in the pipe. */
  esb_child_kill(&h->child, SIGKILL, false);
  blocking(h->child.out);
  char line[128];
  while (read_line(h, line, sizeof line) && !strncmp(line, "seen ", 5) && read_seen(h, line) == 0)
    ;
  int status;
  esb_child_reap(&h->child, &status, false);
  esb_child_close(&h->child);
  h->ahead_len = 0;
}

int esb_egress_k8s_ledger(const struct esb_plan *plan, struct esb_egress_helper *follow,
                          struct esb_egress_ledger *out, struct esb_error *err) {
  const struct esb_egress_k8s *k = &plan->egress_k8s;
  struct esb_egress_helper t = ESB_EGRESS_HELPER_INIT;
  char *line = NULL;
  int n = asprintf(&line, "%s\n", k->token);
  if (n < 0)
    return esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  int rc = start_tool(&t, (const char *const[]){ "ledger", k->proxy }, line, (size_t)n, false, err);
  free(line);
  if (rc < 0) {
    out->left_off++;
    return -1;
  }
  rc = read_ledger(&t, out, follow);
  if (end_tool(&t, "the run's ledger from the shared proxy", err) < 0 || rc < 0) {
    if (err->code == ESB_OK)
      esb_error_set(err, ESB_E_BACKEND_UNAVAILABLE, "egress: the shared proxy's ledger of the run did not read");
    out->left_off++;
    return -1;
  }
  return 0;
}
