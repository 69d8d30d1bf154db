/* echo-sandbox-egress: the egress proxy (backend/egress_proxy.h).
 *
 * Without arguments, one run's, in a process of its own; the engine starts
 * one per run with an allow list and talks with it on its stdin and stdout
 * (backend/egress_helper.h has the words). It reads the lists (and the
 * secrets' files, where the plan injects credentials: their values stay
 * here), says "prepared" (after the run's CA certificate, if any), listens
 * in the network namespace of the pid "listen" names, says "ready", serves
 * until its stdin ends, then writes the run's ledger and exits.
 *
 * "serve --listen ADDRESS:PORT --key-file FILE ...": the shared proxy of a
 * cluster's runs (the Deployment of deploy/egress.yaml), each connection
 * with its run's token (backend/egress_token.h), until SIGTERM.
 * "sign KEY_FILE": the engine's: a grant on stdin, its token on stdout.
 * "ledger URL": the engine's: a run's token on stdin, the run's ledger
 * from the shared proxy at URL on stdout.
 * "follow URL": the engine's, while a run goes on: a run's token on stdin,
 * the run's verdicts as the shared proxy at URL gives them on stdout,
 * until the proxy ends the answer (the token's expiry) or stdin ends. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "backend/egress_proxy.h"
#include "backend/egress_token.h"
#include "engine/sandbox/netrules.h"
#include "engine/strv.h"

#define LINE_MAX_BYTES 512

/* "inject HOST HEADER SECRET FILE" or "upstream_ca PATH", into plan's
 * fields. 0, or -1. */
static int read_inject(const char *word, char *value, struct esb_plan *plan) {
  if (strcmp(word, "upstream_ca") == 0) {
    free(plan->egress_upstream_ca);
    return (plan->egress_upstream_ca = strdup(value)) ? 0 : -1;
  }
  char *header = strchr(value, ' '), *name = header ? strchr(header + 1, ' ') : NULL;
  char *file = name ? strchr(name + 1, ' ') : NULL;
  if (!file)
    return -1;
  *header++ = '\0';
  *name++ = '\0';
  *file++ = '\0';
  struct esb_egress_inject *grown = realloc(plan->egress_inject, (plan->n_egress_inject + 1) * sizeof *grown);
  if (!grown)
    return -1;
  plan->egress_inject = grown;
  struct esb_egress_inject *e = &grown[plan->n_egress_inject++];
  *e = (struct esb_egress_inject){ .host = strdup(value), .header = strdup(header), .secret = strdup(name) };
  size_t n = esb_strv_length(plan->egress_secrets);
  char **secrets = realloc(plan->egress_secrets, (n + 2) * sizeof *secrets);
  if (secrets)
    plan->egress_secrets = secrets;
  if (!secrets || !e->host || !e->header || !e->secret || asprintf(&secrets[n], "%s=%s", name, file) < 0)
    return -1;
  secrets[n + 1] = NULL;
  return 0;
}

/* The lists the engine says, into plan's fields (allocated), and whether
 * it wants each verdict as it is given ("events"). 0, or -1 with err. */
static int read_lists(FILE *in, struct esb_plan *plan, bool *events, struct esb_error *err) {
  struct esb_strv allow = ESB_STRV_INIT, deny = ESB_STRV_INIT;
  char line[LINE_MAX_BYTES];
  while (fgets(line, sizeof line, in)) {
    line[strcspn(line, "\n")] = '\0';
    if (strcmp(line, "events") == 0) {
      *events = true;
      continue;
    }
    if (strcmp(line, "end") == 0) {
      plan->egress_allow = esb_strv_detach(&allow);
      plan->egress_deny = esb_strv_detach(&deny);
      return 0;
    }
    char *value = strchr(line, ' ');
    if (!value)
      break;
    *value++ = '\0';
    if (strcmp(line, "allow") == 0 || strcmp(line, "deny") == 0) {
      if (esb_strv_push(strcmp(line, "allow") == 0 ? &allow : &deny, value) < 0)
        break;
    } else if (strcmp(line, "inject") == 0 || strcmp(line, "upstream_ca") == 0) {
      if (read_inject(line, value, plan) < 0)
        break;
    } else if (strcmp(line, "hosts") == 0) {
      free(plan->egress_hosts_file);
      if (!(plan->egress_hosts_file = strdup(value)))
        break;
    } else if (strcmp(line, "net_allow") == 0) {
      struct esb_net_range *r = realloc(plan->local.network_allow,
                                        (plan->local.n_network_allow + 1) * sizeof *r);
      if (!r)
        break;
      plan->local.network_allow = r;
      if (esb_net_range_parse(value, &r[plan->local.n_network_allow], err) < 0)
        return -1;
      plan->local.n_network_allow++;
    } else {
      break;
    }
  }
  esb_strv_clear(&allow);
  esb_strv_clear(&deny);
  return esb_error_set(err, ESB_E_SANDBOX_SETUP, "egress proxy: the engine's lists ended early or were not ours");
}

/* The proxy's verdict on an attempt, as it is given ("events"): a record
 * the engine reads while the run goes on. Threads take turns on stdout. */
static void tell_verdict(const struct esb_egress_attempt *a, void *userdata) {
  (void)userdata;
  flockfile(stdout);
  esb_egress_attempt_write("seen", a, stdout);
  fflush(stdout);
  funlockfile(stdout);
}

/* The run's CA certificate ("ca LENGTH" and its bytes), where the plan
 * injects credentials, then "prepared"; then the engine's "listen PID"
 * (the sandbox's pid 1, whose namespace is there now) into *pid. */
static int say_prepared(const struct esb_egress_proxy *p, long *pid, struct esb_error *err) {
  if (p->injecting) {
    printf("ca %zu\n", p->inject.ca_len);
    fwrite(p->inject.ca_pem, 1, p->inject.ca_len, stdout);
  }
  puts("prepared");
  fflush(stdout);
  char line[LINE_MAX_BYTES], *end;
  if (!fgets(line, sizeof line, stdin) || strncmp(line, "listen ", 7) != 0 ||
      (*pid = strtol(line + 7, &end, 10)) <= 0 || *end != '\n')
    return esb_error_set(err, ESB_E_SANDBOX_SETUP, "egress proxy: the engine named no sandbox to listen in");
  return 0;
}

static const char usage[] =
  "usage: echo-sandbox-egress                  (one run's: the engine starts it)\n"
  "       echo-sandbox-egress serve --listen ADDRESS:PORT --key-file FILE\n"
  "                 [--ca-cert FILE --ca-key FILE] [--secret NAME=FILE]... [--upstream-ca FILE]\n"
  "                 [--net-allow RANGE]... [--hosts-file FILE]   (the shared proxy of a cluster's runs)\n"
  "       echo-sandbox-egress sign KEY_FILE    (a grant on stdin: its token)\n"
  "       echo-sandbox-egress ledger URL       (a token on stdin: its run's ledger)\n"
  "       echo-sandbox-egress follow URL       (a token on stdin: its run's verdicts as given, until stdin ends)\n";

/* A failure's words, one line, to stderr: the exit status says the rest. */
static int fail(const struct esb_error *err) {
  fprintf(stderr, "echo-sandbox-egress: %.*s\n", (int)strcspn(err->message, "\n"), err->message);
  return 1;
}

/* All of stdin, at most max bytes, NUL-terminated: malloc'd, or NULL. */
static char *read_stdin(size_t max, size_t *len) {
  char *buf = malloc(max + 1);
  *len = buf ? fread(buf, 1, max + 1, stdin) : 0;
  if (!buf || *len > max || ferror(stdin)) {
    free(buf);
    return NULL;
  }
  buf[*len] = '\0';
  return buf;
}

static int sign_main(const char *key_file) {
  struct esb_error err = ESB_ERROR_INIT;
  struct esb_egress_grant g;
  unsigned char *key = NULL;
  size_t key_len = 0, len = 0;
  char *grant = read_stdin(ESB_EGRESS_TOKEN_MAX, &len), *token = NULL;
  int rc = !grant || esb_egress_grant_parse(grant, len, &g) < 0
             ? esb_error_set(&err, ESB_E_INVALID_REQUEST, "sign: stdin holds no grant (backend/egress_token.h)")
             : esb_egress_key_read(key_file, &key, &key_len, &err);
  if (grant)
    esb_egress_grant_release(&g);
  if (rc == 0 && !(token = esb_egress_token_sign(key, key_len, grant)))
    rc = esb_error_set(&err, ESB_E_SYSTEM, "sign: OpenSSL's HMAC failed");
  if (token)
    printf("%s\n", token);
  if (key)
    OPENSSL_cleanse(key, key_len);
  free(key);
  free(grant);
  free(token);
  return rc < 0 ? fail(&err) : fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  /* A relay's write to a connection its program closed is an error of that
   * connection, not our end. */
  signal(SIGPIPE, SIG_IGN);
  if (argc >= 2 && !strcmp(argv[1], "serve"))
    return esb_egress_serve_main(argc - 1, argv + 1, usage);
  if (argc == 3 && !strcmp(argv[1], "sign"))
    return sign_main(argv[2]);
  if (argc == 3 && !strcmp(argv[1], "ledger"))
    return esb_egress_ledger_main(argv[2]);
  if (argc == 3 && !strcmp(argv[1], "follow"))
    return esb_egress_follow_main(argv[2]);
  if (argc != 1) {
    fputs(usage, stderr);
    return 2;
  }
  struct esb_plan plan = ESB_PLAN_INIT;
  struct esb_egress_proxy proxy = ESB_EGRESS_PROXY_INIT;
  struct esb_error err = ESB_ERROR_INIT;
  long pid = 0;
  int rc = 0;
  bool events = false;
  int listed = read_lists(stdin, &plan, &events, &err);
  if (events)
    proxy.on_verdict = tell_verdict;
  if (listed < 0 || esb_egress_proxy_prepare(&proxy, &plan, &err) < 0 ||
      say_prepared(&proxy, &pid, &err) < 0 || esb_egress_proxy_start(&proxy, (pid_t)pid, &err) < 0) {
    char message[sizeof err.message];
    snprintf(message, sizeof message, "%s", err.message);
    message[strcspn(message, "\n")] = '\0';
    printf("error %d %s\n", (int)err.code, message);
    esb_egress_proxy_release(&proxy, NULL);
    rc = 1;
  } else {
    puts("ready");
    fflush(stdout);
    char buf[64];
    while (fread(buf, 1, sizeof buf, stdin) > 0 || (ferror(stdin) && errno == EINTR && (clearerr(stdin), 1)))
      ; /* until the engine's stop: our stdin's end */
    struct esb_egress_ledger ledger = { 0 };
    esb_egress_proxy_release(&proxy, &ledger);
    esb_egress_ledger_write(&ledger, stdout);
    esb_egress_ledger_release(&ledger);
  }
  fflush(stdout); /* before a sanitizer's exit, which would drop the buffer */
  esb_plan_release_egress(&plan);
  free(plan.local.network_allow);
  return rc;
}
