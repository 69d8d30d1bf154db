/* Sessions for every face (backend/local_session.h): a JSON body made into
 * a create's request and options (esb_session_make, in
 * dispatch/session_create.h, makes the session); a run's plan; a
 * session's state as the JSON object every face shows. The blocking
 * operations (create, a run, remove) go off the caller's loop in
 * dispatch/session_task.h.
 *
 * Functions follow engine/error.h: 0, or -1 with err filled. */
#ifndef ESB_DISPATCH_SESSION_H
#define ESB_DISPATCH_SESSION_H

#include <lua.h>

#include "backend/local_session.h"
#include "backend/plan.h"
#include "engine/contract/request.h"
#include "policy/policy.h"

/* The program a session's plan names: the session runs none, but a plan
 * is a run's and needs one. */
#define ESB_SESSION_PROGRAM "/bin/true"

/* A create's body (the table at idx): ttl_ms, idle_timeout_ms (whole
 * milliseconds, 1 or more, at most the ceiling), limits, labels, backend.
 * A run's fields (shell, code, stdin...) and the fields sessions do not
 * take yet (env, files) are refused by name, as is any other. req gets a
 * request of ESB_SESSION_PROGRAM with the limits, labels and backend, for
 * esb_session_make (dispatch/session_create.h). */
int esb_session_create_request(lua_State *L, int idx, struct esb_request *req, struct esb_session_options *o,
                               struct esb_error *err);

/* What a run in a session may not have of its own, refused: its memory
 * and CPU rate are the whole session's. */
int esb_session_check_run(const struct esb_request *req, struct esb_error *err);

/* The plan of a run in a session: esb_session_check_run, then the
 * policy's, as for a run. */
int esb_session_plan_run(struct esb_policy *policy, const struct esb_request *req, struct esb_plan *plan,
                         struct esb_error *err);

/* The session as the object `session show --json` and GET /v1/sessions/ID
 * give: id, state ("alive" or "ended"), ended (why, when it has), pid,
 * runs, created_ms, expires_ms, ttl_ms, idle_timeout_ms, cgroups. */
void esb_session_push_info(lua_State *L, const struct esb_session_info *info);

#endif
