/* The network by name for the local sandbox: an HTTP proxy the engine
 * serves from outside the sandbox, on a socket made inside it. (On
 * Kubernetes the same proxy serves every run of a cluster: the shared
 * proxy, below.)
 *
 * A run with a plan's egress list has a network namespace of loopback only
 * (no route out, no resolver). This runs in echo-sandbox-egress, a process
 * of its own (backend/egress_helper.h says why and how the engine talks
 * with it). Before the sandbox's child goes on, the proxy enters that
 * namespace on a thread of its own, brings loopback up
 * and listens on 127.0.0.1:ESB_EGRESS_PROXY_PORT there; the socket is then
 * served from the host's namespace, so the proxy's own connections are the
 * host's while the program reaches nothing but the socket. The program's
 * HTTP_PROXY, HTTPS_PROXY and ALL_PROXY (and their lower-case forms) say
 * where it is.
 *
 * Each connection is one request: CONNECT host:port (TLS: matched on the
 * name asked, then the ClientHello's server name must be that name, read
 * by OpenSSL before anything is sent on), or a plain HTTP request matched
 * on its URL's host and its Host header, which must agree (parsed by
 * http-parser). The name must be on the plan's allow list and on no entry
 * of its deny list. The proxy resolves it (the program cannot: it has no
 * resolver, so nothing leaves by DNS either) and connects only to an
 * address that is not the host's own, private, loopback, link-local,
 * metadata or otherwise reserved (engine/sandbox/netrules.h's ranges, less
 * local_sandbox.network_allow's), whatever the name points to; the address
 * checked is the one connected to (no second lookup to rebind). Every
 * attempt, let through or not, is one entry of the run's ledger, with the
 * bytes relayed each way.
 *
 * Threads: one accepts, one serves each connection (its lookup blocks it
 * alone). esb_egress_proxy_stop shuts every socket down and joins them;
 * a connection in the middle of a lookup ends when the lookup does.
 *
 * A host the plan's egress.inject names gets a header with a secret's
 * value on each request (backend/egress_inject.h): a plain request's head
 * is rewritten; a CONNECT is terminated with a certificate of the run's CA
 * and re-originated to the host with its certificate verified, and the
 * head inside rewritten. The program's own header of that name is
 * dropped, and Connection: close added, so that each request is a
 * connection's first (a later one on it would go on without the header).
 *
 * What it does not do: look inside TLS to other hosts (a client may send
 * another Host inside a tunnel to an allowed name, as domain fronting
 * does), or follow a plain connection's later requests (they go to the
 * host the first one was let through to, on the same connection). */
#ifndef ESB_BACKEND_EGRESS_PROXY_H
#define ESB_BACKEND_EGRESS_PROXY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "backend/egress_helper.h" /* ESB_EGRESS_PROXY_PORT */
#include "backend/egress_inject.h"
#include "backend/plan.h"
#include "engine/contract/egress.h"
#include "engine/error.h"


struct esb_egress_conn;
struct esb_egress_run;
struct esb_egress_pin;

struct esb_egress_proxy {
  int listen_fd;                /* in the run's namespace; -1: none */
  char *const *allow, *const *deny; /* the plan's, borrowed */
  struct esb_net_rule *rules;   /* which addresses are refused, first match decides */
  size_t n_rules;
  struct esb_egress_pin *pins;  /* the plan's hosts_file: names resolved there first */
  size_t n_pins;
  void *tls;                    /* SSL_CTX: reads a ClientHello's server name, never answers it */
  bool injecting;               /* the plan's egress.inject names hosts: inject is ready */
  /* optional: each attempt's verdict as it is given, once an attempt (its
   * bytes not counted yet), on its connection's thread, outside the lock */
  void (*on_verdict)(const struct esb_egress_attempt *attempt, void *userdata);
  void *verdict_userdata;
  struct esb_egress_injector inject; /* their headers, the run's CA (backend/egress_inject.h) */
  pthread_mutex_t lock;         /* the fields below */
  bool prepared, accepting;
  pthread_t acceptor;
  struct esb_egress_conn *conns; /* each served by a thread of its own */
  size_t n_conns;
  bool stopping;
  struct esb_egress_ledger ledger; /* the run's; the shared proxy's runs have their own */
  /* the shared proxy's (echo-sandbox-egress serve): many runs, each
     connection with its token (backend/egress_token.h) */
  bool shared;
  unsigned char *key;           /* the tokens' HMAC key (cleansed when released) */
  size_t key_len;
  struct esb_egress_run *runs;  /* their ledgers, kept for the engines' queries */
  size_t n_runs;
  pthread_cond_t ended;         /* a connection of a run ended, or a verdict was given (under lock) */
};

#define ESB_EGRESS_PROXY_INIT { .listen_fd = -1 }

/* Readies the proxy for the plan (its egress lists, and local.network_allow):
 * the refused ranges, with the host's own addresses as they are now. 0, or
 * -1 with *err. */
int esb_egress_proxy_prepare(struct esb_egress_proxy *p, const struct esb_plan *plan, struct esb_error *err);

/* Listens in the network namespace of child (a pid) and starts serving.
 * Needs CAP_SYS_ADMIN over that namespace (the engine as root). 0, or -1
 * with *err. */
int esb_egress_proxy_start(struct esb_egress_proxy *p, pid_t child, struct esb_error *err);

/* The shared proxy (echo-sandbox-egress serve, deploy/egress.yaml): listens
 * on a TCP address of its own namespace; each connection's lists are its
 * token's (backend/egress_token.h: its Proxy-Authorization, checked before
 * anything else: 407 bad_token or token_expired), its attempt goes to its
 * run's ledger and to the log (stderr, a JSON object a line), and the
 * secrets and the CA are the proxy's, read at its start. Otherwise each
 * connection is served as above.
 *
 * The shared proxy's files: the tokens' key;
 * where runs get credentials injected, the CA (certificate and key). */
struct esb_egress_shared {
  const char *key_file, *ca_cert, *ca_key;
};

/* Where the engine asks the shared proxy for a run's ledger: a plain GET
 * of this path, with the run's token, answered in backend/egress_helper.h's
 * words once the run's connections have ended. */
#define ESB_EGRESS_LEDGER_PATH "/echo-sandbox/ledger"

/* Where the engine follows a run's verdicts while it goes on: a GET of
 * this path, with the run's token, answered with each verdict as it is
 * given, until the token's expiry or the engine's close (egress_proxy.c's
 * follow_ledger has the words). */
#define ESB_EGRESS_FOLLOW_PATH "/echo-sandbox/follow"

/* Readies the shared proxy: plan holds the secrets' files
 * (egress_secrets), upstream_ca and local.network_allow (each run's lists
 * are its token's). 0, or -1 with *err. */
int esb_egress_proxy_prepare_shared(struct esb_egress_proxy *p, const struct esb_plan *plan,
                                    const struct esb_egress_shared *cfg, struct esb_error *err);

/* Listens on spec ("ADDRESS:PORT") in the proxy's own namespace and starts
 * serving. 0, or -1 with *err. */
int esb_egress_proxy_listen(struct esb_egress_proxy *p, const char *spec, struct esb_error *err);

/* One attempt's record in backend/egress_helper.h's words: "WORD REASON
 * PORT OUT IN LENGTH", then its host and a newline, to f. */
void esb_egress_attempt_write(const char *word, const struct esb_egress_attempt *a, FILE *f);

/* A ledger in backend/egress_helper.h's words ("left_off N", "attempt
 * ...", "end"), to f. */
void esb_egress_ledger_write(const struct esb_egress_ledger *l, FILE *f);

/* echo-sandbox-egress's modes for Kubernetes (egress_serve.c): "serve
 * OPTIONS" (argv[0] "serve"), the shared proxy until SIGTERM or SIGINT;
 * "ledger URL", a run's ledger from the shared proxy at URL (the run's
 * token on stdin) to stdout; "follow URL", the run's verdicts as they are
 * given (the token on stdin, whose end stops it) to stdout. Each returns
 * the exit status. */
int esb_egress_serve_main(int argc, char **argv, const char *usage);
int esb_egress_ledger_main(const char *url);
int esb_egress_follow_main(const char *url);

/* Stops serving: no new connection, every live one shut down, every
 * thread joined. The ledger stays. Idempotent. */
void esb_egress_proxy_stop(struct esb_egress_proxy *p);

/* Stops, and frees all but the ledger, which moves to *out (NULL: freed). */
void esb_egress_proxy_release(struct esb_egress_proxy *p, struct esb_egress_ledger *out);

#endif
