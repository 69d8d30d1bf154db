/* echo-sandbox session on the k8s backend (backend/k8s_session.h): what
 * cli/session.c hands over for an id of a k8s session's form, a create the
 * made on k8s (dispatch/session_create.h), and `session ls --backend k8s`. */
#ifndef ESB_CLI_SESSION_K8S_H
#define ESB_CLI_SESSION_K8S_H

#include <stdbool.h>
#include <stdint.h>

#include <lua.h>

#include "backend/plan.h"
#include "dispatch/session_create.h"
#include "engine/contract/request.h"
#include "engine/contract/result.h"
#include "engine/runtime/loop.h"
#include "policy/policy.h"

/* The object of a k8s session just made (its id, "backend": "k8s", its
 * state, namespace, expiry and idle timeout), pushed for create --json. */
void esb_cli_k8s_push_made(lua_State *L, const struct esb_session_made *made);

/* Runs plan (planned for k8s) in session id; the result as a run's, with
 * "session". As esb_session_run (backend/local_session.h). */
void esb_cli_k8s_session_run(const char *id, struct esb_plan *plan, struct esb_result *result, int interrupt_fd,
                             const struct esb_output_sink *output);

/* Whether argv (argv[0] "session") is a command for k8s sessions: show or
 * rm of a k8s session's id, or ls --backend k8s. */
bool esb_cli_k8s_session_command(int argc, char **argv);

/* show ID | rm ID | ls, argv[0] the command's name: the exit code. */
int esb_cli_k8s_session(int argc, char **argv);

/* An engine error as the CLI says one: a line on stderr, and the exit code
 * of its code (cli/session.c). */
int esb_cli_session_fail(const struct esb_error *err);

#endif
