/* Requests and results as Lua tables: the one conversion that every face
 * shares (the CLI and the daemon via cjson, the Lua module directly).
 *
 * esb_lua_to_request never raises a Lua error (raw access only), so it may
 * fill C allocations; esb_lua_push_result may raise (memory), so what it reads
 * must be owned by something the Lua GC frees, or by a caller that cannot
 * lose it (see src/module for the userdata pattern). */
#ifndef ESB_LUAGLUE_CONVERT_H
#define ESB_LUAGLUE_CONVERT_H

#include <stddef.h>

#include <lua.h>

#include "engine/request.h"
#include "engine/result.h"

/* Validates the table at idx into req (ESB_REQUEST_INIT on entry). Returns 0,
 * or -1 with a message naming the field; req is then released. */
int esb_lua_to_request(lua_State *L, int idx, struct esb_request *req, char *err, size_t errlen);

/* Pushes the result table. null_idx: a stack index whose value stands for
 * JSON null (cjson.null), or 0 to leave such fields out. */
void esb_lua_push_result(lua_State *L, const struct esb_result *r, int null_idx);

#endif
