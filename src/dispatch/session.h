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

/* A cell's body, as POST /v1/sessions/ID/cell takes it: language, code
 * (any bytes), timeout_ms (0: the policy's). Owned (esb_session_cell_body_release). */
struct esb_session_cell_body {
  char *language, *code;
  size_t len;
  uint64_t timeout_ms;
};

/* The object at idx as a cell's body: those three fields only, language
 * and code strings, timeout_ms a whole number of milliseconds, 1 or more. */
int esb_session_cell_read(lua_State *L, int idx, struct esb_session_cell_body *c, struct esb_error *err);
void esb_session_cell_body_release(struct esb_session_cell_body *c);

/* The plan of language's kernel in session id, as a run in it is planned
 * (esb_session_plan_run; for a k8s session's id, esb_k8s_session_plan_run):
 * its timeout_ms is the cell's deadline. A language without a kernel is
 * ESB_E_INVALID_REQUEST naming those that have one. */
int esb_session_plan_cell(struct esb_policy *policy, const char *id, const char *language, uint64_t timeout_ms,
                          struct esb_plan *plan, struct esb_error *err);

/* A cell's result as the object `session cell --json` and POST
 * /v1/sessions/ID/cell give: status, stdout, stderr, their _truncated,
 * value, error ({name, message, traceback} where it raised, else null),
 * state_lost, message, code, duration_ms, session, language. json: what
 * is none is JSON null (cjson's, of a state of codec/json.h); else absent,
 * as a Lua table has it (the Lua module's). */
void esb_session_push_cell(lua_State *L, const struct esb_cell_result *r, const char *language, bool json);

#endif
