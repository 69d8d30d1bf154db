/* echo-sandbox-serve, the daemon behind `echo-sandbox serve` (which execs
 * it): flags -> daemon/server.h. A program of its own so that the HTTP
 * library and what it pulls in (libmicrohttpd links GnuTLS and eight more
 * libraries, ~1 ms of dynamic linking at every start) stay out of the CLI
 * that `run` starts once per execution. */
#include <errno.h>
#include <signal.h>
#include <getopt.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "daemon/server.h"
#include "daemon/token.h"
#include "engine/fileio.h"
#include "engine/contract/quantity.h"
#include "engine/sandbox/spawn.h"

static const char serve_usage[] =
  "usage: echo-sandbox serve [--listen HOST:PORT | --listen unix:/path] [OPTIONS]\n"
  "\n"
  "An HTTP/1.1 daemon: POST /v1/run (request JSON -> result JSON), GET /v1/languages,\n"
  "GET /healthz, GET /readyz, GET /metrics (Prometheus). Listens on loopback unless\n"
  "told otherwise.\n"
  "It keeps the policy's warm pools full (doc/warm-pods.md) with a helper\n"
  "process, `echo-sandbox pool run`, which a reload reloads too.\n"
  "SIGHUP reloads the policy (a broken one is reported and the old one stays);\n"
  "SIGTERM stops accepting, lets runs in flight finish within the grace period,\n"
  "then kills them and deletes their pods.\n"
  "\n"
  "options:\n"
  "  --listen ADDR        HOST:PORT (PORT 0: a free one) or unix:/path (default 127.0.0.1:7878)\n"
  "  --policy FILE        load this policy instead of the default search\n"
  "  --token-file FILE    require \"Authorization: Bearer <the file's first line>\" (a\n"
  "                       token: visible ASCII, no blanks; start-up fails otherwise)\n"
  "  --public-probes      with a token: /healthz, /readyz and /metrics need none\n"
  "  --max-body BYTES     largest request body (default 16Mi; 413 beyond)\n"
  "  --max-running N      runs in flight at once (default 256)\n"
  "  --max-queue N        requests waiting for a slot (default 1024; 429 beyond; 0: no\n"
  "                       queue, a request that finds every slot busy is answered 429)\n"
  "  --grace SECONDS      on SIGTERM, how long runs may finish (default 10)\n"
  "  --header-timeout SECONDS  close a connection idle that long without a complete\n"
  "                       request (default 30)\n"
  "  --port-file FILE     write the bound port (or socket path) there once listening\n"
  "  --socket-mode MODE   permissions of a unix socket, octal (default 0660: owner and group)\n"
  "  --socket-group GROUP  the unix socket's group, a name or a number (default:\n"
  "                       the daemon's): the web server's, e.g. www-data, so that its\n"
  "                       workers may connect to a daemon started as root\n"
  "  --no-warm-pools      do not keep the policy's warm pools full (runs still take\n"
  "                       their pods): where `echo-sandbox pool run` or another\n"
  "                       daemon keeps them\n";

/* --socket-group: a group name, or a number as chown(1) takes one. */
static int parse_group(const char *arg, gid_t *gid) {
  struct group *g = getgrnam(arg);
  if (g) {
    *gid = g->gr_gid;
    return 0;
  }
  char *end;
  errno = 0;
  unsigned long n = strtoul(arg, &end, 10);
  if (errno || *end || end == arg || *arg == '-' || n >= (gid_t)-1)
    return -1;
  *gid = (gid_t)n;
  return 0;
}

/* --socket-mode: octal permissions, at most 0777. */
static int parse_socket_mode(const char *arg, unsigned *mode) {
  char *end;
  unsigned long n = strtoul(arg, &end, 8);
  if (*end || end == arg || n > 0777) {
    fprintf(stderr, "echo-sandbox serve: --socket-mode %s: expected octal permissions like 0660\n", arg);
    return -1;
  }
  *mode = (unsigned)n;
  return 0;
}

/* --header-timeout: whole seconds, 1 to 86400. */
static int parse_header_timeout(const char *arg, unsigned *secs) {
  char *end;
  errno = 0;
  unsigned long n = strtoul(arg, &end, 10);
  if (errno || *end || end == arg || n == 0 || n > 86400) {
    fprintf(stderr, "echo-sandbox serve: --header-timeout %s: expected whole seconds, 1 to 86400\n", arg);
    return -1;
  }
  *secs = (unsigned)n;
  return 0;
}

/* --grace: a duration, seconds, decimals allowed, no size suffix. */
static int parse_grace(const char *arg, uint64_t *ms) {
  double secs;
  if (esb_quantity_number(arg, &secs) < 0 || !(secs > 0) || secs > 86400) {
    fprintf(stderr, "echo-sandbox serve: --grace %s: expected a positive number of seconds, at most 86400 "
            "(decimals allowed, no suffix)\n", arg);
    return -1;
  }
  *ms = (uint64_t)(secs * 1000.0 + 0.5);
  return 0;
}

/* --max-body, --max-running, --max-queue (c: b, r, q): sizes and counts, a
 * whole quantity (engine/contract/quantity.h); a queue may be none. */
static int parse_count(int c, const char *option, const char *arg, struct esb_server_options *o) {
  uint64_t v;
  if (esb_quantity_whole(arg, c == 'q' ? 0 : 1, SIZE_MAX, &v) < 0) {
    fprintf(stderr, "echo-sandbox serve: %s %s: expected a %s whole %s\n", option, arg,
            c == 'q' ? "non-negative" : "positive",
            c == 'b' ? "number of bytes or a quantity like 16Mi" : "number");
    return -1;
  }
  if (c == 'b') o->max_body = (size_t)v;
  else if (c == 'r') o->max_running = (size_t)v;
  else o->max_queue = (size_t)v;
  return 0;
}

/* Reads the options into o: -1 to go on, or the exit status. */
static int read_options(int argc, char **argv, struct esb_server_options *o, const char **token_file) {
  static const struct option longopts[] = {
    {"listen", required_argument, 0, 'l'}, {"policy", required_argument, 0, 'p'},
    {"token-file", required_argument, 0, 't'}, {"max-body", required_argument, 0, 'b'},
    {"max-running", required_argument, 0, 'r'}, {"max-queue", required_argument, 0, 'q'},
    {"grace", required_argument, 0, 'g'}, {"port-file", required_argument, 0, 'f'},
    {"socket-mode", required_argument, 0, 'm'}, {"socket-group", required_argument, 0, 'G'},
    {"header-timeout", required_argument, 0, 'H'},
    {"public-probes", no_argument, 0, 'P'}, {"no-warm-pools", no_argument, 0, 'W'},
    {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  optind = 1;
  opterr = 0;
  for (int c; (c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1;) {
    int bad = 0;
    switch (c) {
    case 'l': o->listen = optarg; break;
    case 'p': o->policy_path = optarg; break;
    case 'P': o->public_probes = true; break;
    case 'W': o->no_warm_pools = true; break;
    case 't': *token_file = optarg; break;
    case 'f': o->port_file = optarg; break;
    case 'm': bad = parse_socket_mode(optarg, &o->socket_mode); break;
    case 'G':
      if ((bad = parse_group(optarg, &o->socket_gid)) < 0)
        fprintf(stderr, "echo-sandbox serve: --socket-group %s: no such group (expected a group name or "
                "number)\n", optarg);
      break;
    case 'H': bad = parse_header_timeout(optarg, &o->header_timeout_s); break;
    case 'b': case 'r': case 'q': bad = parse_count(c, argv[optind - 2], optarg, o); break;
    case 'g': bad = parse_grace(optarg, &o->grace_ms); break;
    case 'h': fputs(serve_usage, stdout); return 0;
    default:
      fprintf(stderr, "echo-sandbox serve: unknown or incomplete option '%s'\n%s", argv[optind - 1], serve_usage);
      return 125;
    }
    if (bad < 0)
      return 125;
  }
  return -1;
}

/* The token of --token-file, or NULL with *err saying what is wrong with it. */
static char *read_token(const char *token_file, struct esb_error *err) {
  size_t len, token_len;
  char *token = NULL, *text = esb_read_file(token_file, &len);
  if (!text) {
    esb_error_errno(err, ESB_E_SYSTEM, "--token-file %s", token_file);
    return NULL;
  }
  /* An empty token would let "Bearer " in: refused, as is one that no
   * client could send as written. */
  if (esb_token_line(text, len, &token_len, err) == 0 && !(token = strndup(text, token_len)))
    esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  free(text);
  if (!token)
    esb_error_prefix(err, "--token-file %s", token_file);
  return token;
}

int main(int argc, char **argv) {
  /* A client that goes away mid-answer must not kill the daemon. */
  signal(SIGPIPE, SIG_IGN);
  /* We reap no child we did not start: sandboxes may start in
   * echo-sandbox-init (engine/sandbox/spawn.h, esb_init_program). */
  esb_spawn_use_init(true);
  struct esb_server_options o = {
    .listen = "127.0.0.1:7878", .max_body = 16u << 20, .max_running = 256, .max_queue = 1024, .grace_ms = 10000,
    .socket_mode = 0660, .socket_gid = (gid_t)-1, .header_timeout_s = 30};
  const char *token_file = NULL;
  int done = read_options(argc, argv, &o, &token_file);
  if (done >= 0)
    return done;
  char *token = NULL;
  if (token_file) {
    struct esb_error err = ESB_ERROR_INIT;
    if (!(token = read_token(token_file, &err))) {
      fprintf(stderr, "echo-sandbox serve: %s\n", err.message);
      return 125;
    }
    o.token = token;
  }
  /* Hundreds of runs in flight hold a few fds each: take what the host allows. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  int rc = esb_serve(&o);
  free(token);
  return rc;
}
