/* The policy's warm pools (k8s.warm_pools, backend/k8s_warm.h): each entry
 * read and checked at load, where a pool the engine cannot turn into a
 * pod is the policy's error, naming the pool. Internal to src/policy. */
#ifndef ESB_POLICY_WARM_POOLS_H
#define ESB_POLICY_WARM_POOLS_H

#include <lua.h>

#include "backend/k8s_warm.h"
#include "engine/error.h"

/* Reads the entry on top of the stack (the pool's table, the idx'th of the
 * list) into pool (zeroed by the caller): its names against
 * warm_pool_fields.def, its values. Raw access only: never raises.
 * Returns 0, or -1 with err (ESB_E_POLICY) naming the pool and the field;
 * pool then holds partial data to release. */
int esb_read_warm_pool(lua_State *L, size_t idx, struct esb_warm_pool *pool, struct esb_error *err);

#endif
