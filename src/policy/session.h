/* What a policy decides of a session (its hook `session`, policy/policy.h's
 * esb_policy_session): the lifetime, the limits, the tenant and how many
 * sessions a tenant may hold, the languages that have kernels. Read from
 * the hook's table into C (policy/session_fields.def names its fields)
 * before anything of the session is made. */
#ifndef ESB_POLICY_SESSION_H
#define ESB_POLICY_SESSION_H

#include <stdint.h>

#include <lua.h>

#include "engine/contract/request.h"
#include "engine/error.h"

/* What a policy without the hook gets, and the longest lifetime and idle
 * timeout any policy may decide (the holder's timers take them in ns). */
#define ESB_SESSION_DEFAULT_TTL_MS (10 * 60 * 1000)
#define ESB_SESSION_DEFAULT_IDLE_MS (2 * 60 * 1000)
#define ESB_SESSION_MAX_MS (24 * 60 * 60 * 1000ull)

/* The most labels a session may carry. */
#define ESB_SESSION_LABELS_MAX 64

/* The create request as the hook sees it: the request's limits, labels,
 * env, backend and working_dir, and the lifetime asked (0: not given). */
struct esb_session_ask {
  const struct esb_request *req;
  uint64_t ttl_ms, idle_timeout_ms;
};

/* What the engine knows when the hook is called. */
struct esb_session_known {
  uint64_t live;            /* live sessions */
  const uint64_t *by_label; /* for each of req->labels, in order: the live sessions
                               that carry it with the same value (NULL: none known) */
};

struct esb_session_decision {
  uint64_t ttl_ms, idle_timeout_ms;
  struct esb_limits limits; /* as a request's: 0 (a switch -1) where the decision gives none */
  char **clamped;           /* NULL-terminated notes of what was lowered; NULL: nothing */
  char *tenant_label;       /* NULL: no tenant, no limit of sessions */
  uint64_t max_per_tenant;  /* with tenant_label: the most live sessions of one tenant; 0: no limit */
  char **kernels;           /* NULL-terminated language names: those with a kernel */
};

void esb_session_decision_release(struct esb_session_decision *d);

/* Fills d with what a policy without the hook gets. Returns 0, or -1 with
 * err (out of memory). */
int esb_session_decision_default(const struct esb_session_ask *ask, struct esb_session_decision *d,
                                 struct esb_error *err);

/* Reads the table on top of the stack (the hook's return) into d (zeroed by
 * the caller). Raw access only: never raises. Returns 0, or -1 with err
 * (ESB_E_POLICY) naming the field; d then holds partial data to release. */
int esb_read_session_decision(lua_State *L, struct esb_session_decision *d, struct esb_error *err);

/* A request's labels ("KEY=VALUE") as Kubernetes takes a pod's: a key is
 * an optional DNS-1123 subdomain prefix and '/', then a name of at most 63
 * letters, digits, '-', '_' and '.' that starts and ends with a letter or
 * digit; a value is empty or the same as a name. The prefixes the engine
 * and Kubernetes keep to themselves (echo-sandbox.io, kubernetes.io,
 * k8s.io and their subdomains) are refused, and more than
 * ESB_SESSION_LABELS_MAX labels. Returns 0, or -1 with err
 * (ESB_E_INVALID_REQUEST) naming the label. */
int esb_session_labels_check(char *const *labels, struct esb_error *err);

#endif
