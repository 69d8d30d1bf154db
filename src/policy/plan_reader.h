/* Reads the table a policy's plan hook returned into a struct esb_plan.
 * Raw access only: never raises a Lua error. Internal to src/policy, but
 * for where the plan keeps each limit, which `policy explain` prints. */
#ifndef ESB_POLICY_PLAN_READER_H
#define ESB_POLICY_PLAN_READER_H

#include <stddef.h>

#include <lua.h>

#include "backend/plan.h"
#include "engine/contract/limits.h"
#include "engine/error.h"

/* The table is on top of the stack. Returns 0, or -1 with err (ESB_E_POLICY)
 * naming the field; the plan then holds partial data for the caller to
 * release. */
int esb_read_plan(lua_State *L, struct esb_plan *plan, struct esb_error *err);

/* Where struct esb_plan keeps each limit (engine/contract/limits.def's
 * PLAN_MEMBER): a uint64_t, a bool for ESB_LIMIT_IS_BOOL. By enum esb_limit_id. */
extern const size_t esb_plan_limit_offsets[ESB_LIMIT__COUNT];

/* The array of address ranges at idx (local.network_allow: "10.1.0.0/16",
 * "fd12::/16", engine/sandbox/netrules.h) into *ranges (malloc'd, the caller's) and
 * *n. Returns 0, or -1 with err naming the entry at fault, a phrase for the
 * caller's message: "[2] '10.1.2.0/16': bits are set past the prefix length". */
int esb_read_net_ranges(lua_State *L, int idx, struct esb_net_range **ranges, size_t *n, struct esb_error *err);

#endif
