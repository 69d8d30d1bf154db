/* echo-sandbox session on the k8s backend (backend/k8s_session.h): what
 * cli/session.c hands over for an id of a k8s session's form, and
 * `session ls --backend k8s` (dispatch/session_k8s.h does the work). */
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

/* Whether argv (argv[0] "session") is a command for k8s sessions: show or
 * rm of a k8s session's id, or ls --backend k8s. */
bool esb_cli_k8s_session_command(int argc, char **argv);

/* show ID | rm ID | ls, argv[0] the command's name: the exit code. */
int esb_cli_k8s_session(int argc, char **argv);

/* An engine error as the CLI says one: a line on stderr, and the exit code
 * of its code (cli/session.c). */
int esb_cli_session_fail(const struct esb_error *err);

#endif
