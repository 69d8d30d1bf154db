/* Requests and results as Lua tables: the one conversion that every face
 * shares (the CLI and the daemon via cjson, the Lua module directly).
 *
 * esb_lua_to_request never raises a Lua error (raw access only), so it may
 * fill C allocations; esb_lua_push_result may raise (memory), so what it reads
 * must be owned by something the Lua GC frees, or by a caller that cannot
 * lose it (see src/module for the userdata pattern). */
#ifndef ESB_CODEC_CONVERT_H
#define ESB_CODEC_CONVERT_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

#include "engine/contract/request.h"
#include "engine/contract/result.h"
#include "engine/error.h"

/* Validates the table at idx into req (ESB_REQUEST_INIT on entry). Returns 0,
 * or -1 with err (ESB_E_INVALID_REQUEST) naming the field; req is then
 * released. */
int esb_lua_to_request(lua_State *L, int idx, struct esb_request *req, struct esb_error *err);

/* Pushes the result table. null_idx: a stack index whose value stands for
 * JSON null (cjson.null), or 0 to leave such fields out. */
void esb_lua_push_result(lua_State *L, const struct esb_result *r, int null_idx);

/* Pushes one attempt of the network by name: {host, port, allowed, reason},
 * and with bytes, bytes_out and bytes_in (the ledger's shape in a result,
 * and an egress event's without them). */
void esb_lua_push_egress_attempt(lua_State *L, const struct esb_egress_attempt *a, bool bytes);

/* Pushes the standard base64 of data[0..len). [-0, +1, m] */
void esb_lua_push_base64(lua_State *L, const char *data, size_t len);

/* Sets field name of the table on top to data[0..len) where those bytes are
 * valid UTF-8, else name.."_base64" to their base64: a result is JSON (and
 * its Lua table the same shape) whatever bytes a program wrote or named.
 * [-0, +0, m] */
void esb_lua_set_bytes(lua_State *L, const char *name, const char *data, size_t len);

#endif
