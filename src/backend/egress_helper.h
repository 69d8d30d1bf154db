/* The network by name, the engine's side: the egress proxy
 * (backend/egress_proxy.h) runs in a process of its own,
 * echo-sandbox-egress, one per run with an allow list.
 *
 * Why a process: the proxy parses what the program sends (HTTP heads, TLS
 * ClientHellos) with http-parser and OpenSSL. Apart, a flaw in that parsing
 * reaches the proxy's process, not the engine (the CLI, the daemon, a
 * host's nginx worker); and the engine links neither library, so no run
 * pays for them at its start (OpenSSL's static archive made every CLI start
 * 0.3 ms longer: its relocations and its CPU probe).
 *
 * The conversation, on the helper's stdin and stdout (pipes):
 *   engine -> helper  "allow ENTRY", "deny ENTRY", "net_allow RANGE",
 *                     "inject HOST HEADER SECRET FILE", "upstream_ca PATH",
 *                     "hosts PATH", "events" (tell each verdict as it is
 *                     given) lines, then "end"
 *   helper -> engine  where the plan injects, "ca LENGTH" and the run's CA
 *                     certificate (PEM, LENGTH bytes; made there, with the
 *                     secrets read there: backend/egress_inject.h); then
 *                     "prepared", or "error CODE MESSAGE" (then it exits)
 *   engine -> helper  "listen PID" once the sandbox's namespace is there;
 *                     later, EOF: stop
 *   helper -> engine  "ready", or "error CODE MESSAGE" (then it exits);
 *                     with "events", while the run goes on, each verdict as
 *                     it is given: "seen REASON PORT 0 0 LENGTH" and LENGTH
 *                     bytes of its host and a newline;
 *                     after the stop, the ledger: "left_off N", then for each
 *                     attempt "attempt REASON PORT OUT IN LENGTH" and LENGTH
 *                     bytes of its host and a newline; "end" last.
 * The engine trusts none of the ledger's numbers beyond their bounds: a
 * record out of them ends the reading, and the result says the ledger is
 * incomplete.
 *
 * Functions follow engine/error.h: 0, or -1 with err filled. */
#ifndef ESB_BACKEND_EGRESS_HELPER_H
#define ESB_BACKEND_EGRESS_HELPER_H

#include <stdbool.h>
#include <sys/types.h>

#include "backend/plan.h"
#include "engine/contract/egress.h"
#include "engine/error.h"
#include "engine/sandbox/spawn.h"

/* Where the proxy listens in the run's namespace, as the program's
 * HTTP_PROXY says. */
#define ESB_EGRESS_PROXY_PORT 3128
#define ESB_EGRESS_PROXY_URL "http://127.0.0.1:3128"

/* Where the plan injects credentials (backend/egress_inject.h): the run's
 * CA certificate, alone and with the host's trust store, in the sandbox's
 * working dir (mode 0444). */
#define ESB_EGRESS_CA_FILE ".echo-sandbox-egress-ca.pem"
#define ESB_EGRESS_BUNDLE_FILE ".echo-sandbox-egress-bundle.pem"

struct esb_egress_helper {
  struct esb_child child;
  bool started, listening;
  char *ca_pem, *bundle;     /* where the plan injects: the run's CA certificate, and it with
                                the host's trust store, for the sandbox */
  size_t ca_len, bundle_len;
  struct esb_file *files;    /* the sandbox's files: the request's and those two */
  /* optional, set before prepare: each verdict as the proxy gives it (its
   * bytes not counted yet; host borrowed for the call), from
   * esb_egress_helper_poll and, for those not yet told, from finish */
  void (*on_seen)(const struct esb_egress_attempt *attempt, void *userdata);
  void *seen_userdata;
  char ahead[4096];          /* what poll read that finish has not */
  size_t ahead_len;
  /* a follow's (esb_egress_k8s_follow): the run's ledger entries on_seen
   * was told of, by their index in it, bit i of told[i / 8] */
  bool following;
  unsigned char told[ESB_EGRESS_LEDGER_MAX / 8];
};

#define ESB_EGRESS_HELPER_INIT { .child = ESB_CHILD_INIT }

/* Starts the helper for plan's lists (and credentials): returns once it
 * is ready to listen, the run's CA certificate read where the plan
 * injects, or failed. */
int esb_egress_helper_prepare(struct esb_egress_helper *h, const struct esb_plan *plan, struct esb_error *err);

/* The files the sandbox's working dir gets: the n request's files, and,
 * where the plan injects credentials, the run's CA certificate alone and
 * with the host's trust store (mode 0444; backend/egress_inject.h names
 * them). *out borrows h's memory until its finish. 0, or -1 (no memory). */
int esb_egress_helper_sandbox_files(struct esb_egress_helper *h, const struct esb_file *files, size_t n,
                                    const struct esb_file **out, size_t *n_out);

/* Has the prepared helper listen in the network namespace of child (a
 * pid): returns once it listens, or failed. */
int esb_egress_helper_start(struct esb_egress_helper *h, pid_t child, struct esb_error *err);

/* Its stdout is readable (the loop says so, while the run goes on): tells
 * on_seen of the verdicts it has said. Whether to go on watching it (false
 * at its end, or where what it said is no verdict: finish reads that). */
bool esb_egress_helper_poll(struct esb_egress_helper *h);

/* Stops the helper (every connection ends), reads its ledger into *out
 * (NULL: dropped) and reaps it. Idempotent; a helper never started is
 * nothing to stop. 0, or -1 where the ledger could not be read whole
 * (what was read stays in *out, left_off counting one more). */
int esb_egress_helper_finish(struct esb_egress_helper *h, struct esb_egress_ledger *out);

/* ---- Kubernetes: the shared proxy (backend/egress_token.h) ----
 *
 * The engine sees none of a k8s run's connections: the shared proxy does.
 * Its verdicts reach the engine two ways, both asked with the run's token
 * (so only the run's engine, or its program, can read them):
 * - while the run goes on, for output events, a follow: one long GET of
 *   ESB_EGRESS_FOLLOW_PATH (backend/egress_proxy.h) by a process beside
 *   kubectl (echo-sandbox-egress follow), which the proxy answers with each
 *   verdict of the run as it gives it, each with the entry's index in the
 *   run's ledger; the engine watches the process's stdout as the exec's
 *   aux fd, as it watches the local proxy's;
 * - at the run's end, the ledger (esb_egress_k8s_ledger): complete, with
 *   the bytes, once the run's connections have ended.
 * The result's egress is the ledger's alone; the follow only tells. An
 * entry the follow did not tell (it lagged, broke, or the proxy has no
 * follow) is told from the ledger, by its index, so each verdict is one
 * event, never two, never none. Why a follow the engine opens: the proxy
 * needs no way to reach an engine (engines are CLIs and daemons anywhere,
 * the proxy a Service), holds nothing per run beyond the ledger it keeps
 * already, and the token bounds the follow (it ends at the token's
 * expiry). Why a process: the engine links no socket client for it, and a
 * follow that hangs (a connect, a write) holds up nothing of the loop: the
 * run's end kills it.
 *
 * The proxy keeps each run's ledger in its memory: with more than one
 * replica a run's connections could reach several, and the ledger and the
 * follow one replica's part of it. deploy/egress.yaml runs one replica
 * (doc/network.md says what that costs). */

#define ESB_EGRESS_K8S_GRACE_S 60 /* a token outlives its run's deadline by this, unless egress.k8s.grace_s */

/* egress.k8s's values: proxy "http://HOST:PORT" (no credentials, no path),
 * key_file (needed) and ca_file (NULL: none) absolute paths the engine can
 * read. 0, or -1 with *err naming the field ("egress.k8s.proxy: ..."). */
int esb_egress_k8s_check(const char *proxy, const char *key_file, const char *ca_file, struct esb_error *err);

/* Readies a k8s plan with an allow list: signs its token (echo-sandbox-egress
 * sign, with egress.k8s.key_file; its run the pod's name, its expiry the
 * run's deadline and egress.k8s.grace_s), adds HTTP_PROXY, HTTPS_PROXY,
 * ALL_PROXY (and lower case) with it to plan->env, and where the plan
 * injects, the proxy's CA certificate (alone and with the host's trust
 * store) to its files and SSL_CERT_FILE and the like naming them. 0, or -1
 * with *err. */
int esb_egress_k8s_prepare(struct esb_plan *plan, struct esb_error *err);

/* The run's verdicts while it goes on, for output events: starts
 * echo-sandbox-egress follow, which holds a long GET of the shared proxy's
 * ESB_EGRESS_FOLLOW_PATH with the run's token and writes each verdict the
 * proxy gives on its stdout (h->child.out), as the local helper's "seen"
 * records with the entry's index in the run's ledger after them. The
 * caller watches that fd and calls esb_egress_helper_poll when it is
 * readable, which tells h->on_seen (set first) of each entry once. The
 * process ends killed by esb_egress_k8s_follow_stop (the run's end), when
 * the proxy ends the answer (the token's expiry), or at our own end,
 * whatever kills us: by the parent-death signal every child of ours has,
 * and by its stdin's end (our pipe). 0, or -1 with *err (nothing started:
 * the verdicts are all told from the ledger at the run's end). */
int esb_egress_k8s_follow(struct esb_egress_helper *h, const struct esb_plan *plan, struct esb_error *err);

/* Ends the follow (killed: what it relayed is in its pipe, read here and
 * told; what it had not relayed the ledger tells) and reaps it. told stays
 * for esb_egress_k8s_ledger. Idempotent. */
void esb_egress_k8s_follow_stop(struct esb_egress_helper *h);

/* The run's ledger from the shared proxy (echo-sandbox-egress ledger), into
 * *out; where follow is not NULL, its on_seen is told of each of the
 * ledger's entries the follow did not tell (by index: each entry is told
 * once, by one or the other). Blocks until the proxy answers: it waits up
 * to 2 s for the run's connections to end, and the query is bounded by
 * 10 s waits. 0, or -1 with *err (out then counts one left off: what it
 * could not say is not claimed absent). */
int esb_egress_k8s_ledger(const struct esb_plan *plan, struct esb_egress_helper *follow,
                          struct esb_egress_ledger *out, struct esb_error *err);

#endif
