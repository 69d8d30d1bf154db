/* A session made as the policy decides, whatever the face (the CLI's
 * session create, the daemon's POST /v1/sessions): the policy's hook
 * `session` decides it, told how many live sessions carry each of the
 * request's labels (policy/session.h); the request's limits become the
 * decided ones and the policy plans the session's sandbox with them; the
 * backend makes it: the local one counting the tenant's live sessions under
 * its lock (backend/local_session.h); on k8s (the plan's backend) a pod
 * whose deadline is the decided TTL (backend/k8s_session.h; the census
 * counts local sessions only). One path, so the faces cannot drift apart. */
#ifndef ESB_DISPATCH_SESSION_CREATE_H
#define ESB_DISPATCH_SESSION_CREATE_H

#include <stdint.h>

#include "backend/k8s_session.h"
#include "backend/local_session.h"
#include "backend/plan.h"
#include "engine/contract/request.h"
#include "engine/error.h"
#include "policy/policy.h"

struct esb_session_made {
  char id[ESB_K8S_SESSION_ID_LEN + 1]; /* a local session's, or a k8s session's (the longer) */
  struct esb_session_decision decision; /* the lifetime, the tenant, the kernels, its notes */
  struct esb_plan plan;                 /* of the session's sandbox: its limits, its notes */
};

#define ESB_SESSION_MADE_INIT { .decision = { .limits = { .network = -1 } }, .plan = ESB_PLAN_INIT }

/* req: the create request, with its labels (checked here); its limits are
 * replaced by the decided ones. A request with nothing to run is planned
 * as /bin/true (the session runs no program). ttl_ms, idle_timeout_ms: as
 * asked, 0 where not. Returns 0, or -1 with err: ESB_E_INVALID_REQUEST, ESB_E_POLICY,
 * ESB_E_TOO_MANY_SESSIONS, or what making it met; made is released by
 * esb_session_made_release either way. */
int esb_session_make(struct esb_policy *policy, struct esb_request *req, uint64_t ttl_ms, uint64_t idle_timeout_ms,
                     struct esb_session_made *made, struct esb_error *err);
void esb_session_made_release(struct esb_session_made *made);

#endif
