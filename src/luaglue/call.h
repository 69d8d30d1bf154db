/* Calling Lua from C: every protected call of the engine goes through
 * esb_lua_pcall, as every call of lua.c goes through its docall: a message
 * handler under the function, the message copied out, the stack as it was.
 *
 * A traceback helps whoever wrote the Lua that failed (a policy's author);
 * for our own front-end code (JSON decoding, pod status) it would only bury
 * the message a client reads, so the caller says which it wants. */
#ifndef ESB_LUAGLUE_CALL_H
#define ESB_LUAGLUE_CALL_H

#include <stddef.h>

#include <lua.h>

#include "engine/error.h"

enum esb_lua_trace {
  ESB_LUA_MESSAGE,   /* the error message alone */
  ESB_LUA_TRACEBACK, /* the message and a stack traceback */
};

/* Calls the function below nargs arguments on top of the stack, like
 * lua_pcall. Returns 0 with nresults pushed; or -1 with the function and its
 * arguments popped, nothing pushed, and *err filled: code (what a failure
 * of this call is to the caller: policy_error for a policy's hook,
 * invalid_request for a request's JSON) and "<what>: <message>"
 * ("<message>" when what is NULL). */
int esb_lua_pcall(lua_State *L, int nargs, int nresults, enum esb_lua_trace trace, enum esb_error_code code,
                  const char *what, struct esb_error *err);

#endif
