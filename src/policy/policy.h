/* The policy VM: a Lua 5.4 state, built deliberately (base, string, table,
 * math, utf8, cjson, our lua/ modules; no io, os, debug, C loaders or binary
 * chunks), that loads one policy file at start-up and turns each request into
 * a plan (engine/plan.h) through the policy's `plan` hook.
 *
 * Which file: the explicit path, else $ECHO_SANDBOX_POLICY, else
 * /etc/echo-sandbox/policy.lua, else the installed policies/default.lua (and,
 * for an uninstalled build, the source tree's). */
#ifndef ESB_POLICY_H
#define ESB_POLICY_H

#include <stddef.h>

#include "engine/plan.h"
#include "engine/request.h"
#include "engine/result.h"

struct esb_policy;

/* NULL on failure, with a message (file:line and traceback for Lua errors). */
struct esb_policy *esb_policy_open(const char *explicit_path, char *err, size_t errlen);
void esb_policy_close(struct esb_policy *policy);

/* The file that was loaded. */
const char *esb_policy_path(const struct esb_policy *policy);

/* Fills plan (ESB_PLAN_INIT on entry) from the request. Returns ESB_OK, or
 * ESB_E_INVALID_REQUEST (the hook refused the request: nil, message) or
 * ESB_E_POLICY (the hook failed or returned something malformed) with a
 * message; the plan is then left empty. */
enum esb_error esb_policy_plan(struct esb_policy *policy, const struct esb_request *req,
                               struct esb_plan *plan, char *err, size_t errlen);

#endif
