/* Sessions on the k8s backend for every face (backend/k8s_session.h): what
 * the CLI's `session` commands and the daemon's helpers (dispatch/
 * session_task.h) say of one, a run in one, and the answers the daemon's
 * helper gives for show, remove and the list. Everything here asks the
 * cluster with kubectl and waits for it: call it from the CLI or from a
 * helper process, never from a loop that serves others meanwhile.
 *
 * Functions follow engine/error.h: 0, or -1 with err filled. */
#ifndef ESB_DISPATCH_SESSION_K8S_H
#define ESB_DISPATCH_SESSION_K8S_H

#include <stdint.h>

#include <lua.h>

#include "backend/local_session.h"
#include "backend/plan.h"
#include "dispatch/session_create.h"
#include "engine/contract/request.h"
#include "engine/contract/result.h"
#include "policy/policy.h"

/* What is said of one k8s session (its pod). */
struct esb_k8s_session_view {
  const char *id, *state; /* state: alive, or why it ended (esb_k8s_session_state) */
  const char *namespace_;
  const char *phase;      /* its pod's */
  int64_t expires_s;      /* its TTL's end, seconds since the epoch (0: unknown) */
  int64_t idle_timeout_ms;
};

/* The session's object (id, "backend": "k8s", state, ended, namespace,
 * phase, expires_ms, idle_timeout_ms), pushed. */
void esb_k8s_session_push(lua_State *L, const struct esb_k8s_session_view *s);

/* The object of a k8s session just made, pushed. */
void esb_k8s_session_push_made(lua_State *L, const struct esb_session_made *made);

typedef void (*esb_k8s_session_fn)(const struct esb_k8s_session_view *s, void *arg);

/* Each session of k's namespace (id NULL), or session id alone, said to
 * fn. An id with no pod is ESB_E_INVALID_REQUEST, "does not exist". */
int esb_k8s_session_each(const struct esb_k8s_settings *k, const char *id, esb_k8s_session_fn fn, void *arg,
                         struct esb_error *err);

/* The plan of a run in k8s session: esb_session_check_run, then the
 * policy's, for the k8s backend whatever its default. */
int esb_k8s_session_plan_run(struct esb_policy *policy, struct esb_request *req, struct esb_plan *plan,
                             struct esb_error *err);

/* Runs plan in session id; the result as a run's, with "session"; a
 * session that has ended or is gone is an error of reason "SessionEnded"
 * that says why. As esb_session_run (backend/local_session.h). */
void esb_k8s_session_run(const char *id, struct esb_plan *plan, struct esb_result *result, int interrupt_fd,
                         const struct esb_output_sink *output);

/* Runs code (len bytes) as a cell of language's kernel in k8s session id:
 * the kernel (the engine's, backend/local_session.h's list) is kept as a
 * process in the pod from cell to cell, and each cell reaches it through
 * a run of esb_k8s_session_cell_script (backend/k8s_session.h). plan: the
 * kernel's, planned for k8s (its timeout_ms the cell's deadline); it is
 * changed into the relay's. The result as esb_session_cell's. */
void esb_k8s_session_cell(const char *id, const char *language, const char *code, size_t len,
                          struct esb_plan *plan, struct esb_cell_result *r, int interrupt_fd);

/* Deletes session id (k's namespace) and waits until it is gone; one with
 * no pod is ESB_E_INVALID_REQUEST, "does not exist". */
int esb_k8s_session_remove_one(const struct esb_k8s_settings *k, const char *id, struct esb_error *err);

/* The daemon helper's answers, as JSON text (*json, freed by the caller):
 *   ESB_K8S_ANSWER_SHOW    the session's object; *ended its why once it ended
 *   ESB_K8S_ANSWER_REMOVE  the object as it was, then deleted: its why is
 *                          "deleted" where it was alive, else how it had ended
 *   ESB_K8S_ANSWER_LIST    an array of the live sessions' objects
 * The cluster is the policy's (its hook `cluster`). */
enum esb_k8s_answer { ESB_K8S_ANSWER_SHOW, ESB_K8S_ANSWER_REMOVE, ESB_K8S_ANSWER_LIST };
#define ESB_K8S_ENDED_MAX 16
int esb_k8s_session_answer(struct esb_policy *policy, enum esb_k8s_answer what, const char *id, char **json,
                           char ended[ESB_K8S_ENDED_MAX], struct esb_error *err);

#endif
