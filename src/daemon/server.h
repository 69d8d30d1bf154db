/* echo-sandbox serve: an HTTP/1.1 daemon (libmicrohttpd, driven from the
 * engine's own loop through its epoll fd) for OpenResty/nginx and services.
 *
 *   POST /v1/run?stream=1  the same, answered 200 as NDJSON in chunks: the
 *                  output events as they come (dispatch/output_events.h,
 *                  codec/json.h), then {"event": "result", "result": ...}
 *   POST /v1/run   request JSON -> result JSON: 200, or 400 for a request
 *                  that is malformed or invalid (the result's error object
 *                  says why); 413 over the body limit; 429 when max_running
 *                  runs are in flight and max_queue requests wait already;
 *                  503 while shutting down
 *   GET /v1/languages  200 {"languages": [{"name", "image", "file"}, ...]}: what
 *                  the policy's hook known_languages lists
 *   GET /healthz   200 {"status":"ok"}: the daemon answers
 *   GET /readyz    200 {"status":"ready", ...}, or 503 {"status":"not_ready",
 *                  "reason": ...}: a policy is loaded and its default backend
 *                  can run (local: a probe run of `true` at start and after
 *                  each reload; k8s: kubectl is there)
 *   POST /v1/sessions  a session's create (dispatch/session.h) -> 201 and the
 *                  session; 400 for a body that is not one (named)
 *   GET /v1/sessions   200 {"sessions": [...]}: the live ones, whoever made them
 *                  (the k8s ones of the policy's cluster too where its default
 *                  backend is k8s, or ?backend=k8s asks)
 *   GET|DELETE /v1/sessions/ID  the session / ends it and removes what it
 *                  held (200); unknown or ended: 404 with why it ended
 *   POST /v1/sessions/ID/run[?stream=1]  a run in the session, answered as
 *                  POST /v1/run's, with "session"
 *                  (ID a k8s session's, its pod's name: each of these asks the
 *                  cluster, dispatch/session_k8s.h; the daemon keeps nothing of it)
 *                  (a session's create and remove are done by helper
 *                  processes, a local session's run or cell on a thread,
 *                  dispatch/session_task.h; every second the
 *                  directory of sessions is looked over, and what an ended
 *                  session left is removed a minute after its end, at once
 *                  when it is asked for)
 *   GET /metrics   Prometheus text (daemon/metrics.h)
 *   GET /openapi.json  this API as OpenAPI 3.1 (doc/openapi.json)
 *
 * With a token, every request needs "Authorization: Bearer TOKEN" (else 401,
 * but for the probes with public_probes
 * answered from the headers before any byte of the body is read; the token
 * is compared in constant time). A body whose Content-Length is over
 * max_body is refused the same way (413); a chunked one, once it ends (MHD
 * takes an answer only then: the rest is read and dropped). A request line
 * or header over MHD's memory for one connection (32 KiB) is answered 431
 * (414 for the line) by MHD itself. A connection idle for
 * header_timeout_s without a complete request is closed.
 * SIGHUP reloads the policy: one that fails to load is reported on stderr and
 * counted, and the old one stays. SIGTERM/SIGINT: stop accepting, let the
 * runs in flight finish within the grace period, then kill them (pods are
 * deleted), answer, and exit 0. */
#ifndef ESB_DAEMON_SERVER_H
#define ESB_DAEMON_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct esb_server_options {
  const char *listen;       /* "HOST:PORT" (PORT 0: any free port) or "unix:/path" */
  const char *policy_path;  /* NULL: the default search */
  const char *token;        /* NULL: no authentication */
  bool public_probes;       /* with a token: the probes (healthz, readyz, metrics) need none */
  const char *port_file;    /* NULL, or where to write the bound port (or socket path) */
  unsigned socket_mode;     /* permissions of a unix socket (connecting needs write) */
  gid_t socket_gid;         /* the unix socket's group; (gid_t)-1: the daemon's */
  size_t max_body;
  size_t max_running;
  size_t max_queue;
  uint64_t grace_ms;
  unsigned header_timeout_s;
  bool no_warm_pools;       /* keep no warm pools (daemon/pool_keeper.h) */
};

/* Runs until SIGTERM or SIGINT; returns the exit code. */
int esb_serve(const struct esb_server_options *options);

#endif
