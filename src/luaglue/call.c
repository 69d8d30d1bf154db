#include "luaglue/call.h"

#include <stdio.h>

#include <lauxlib.h>

/* The error object as text: a string, what its __tostring makes, or a note
 * of its type. (error object) -> (error object, text) */
static const char *error_text(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  if (msg)
    return msg;
  if (luaL_callmeta(L, -1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
    return lua_tostring(L, -1);
  return lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, -1));
}

static int message_only(lua_State *L) {
  error_text(L);                               /* error, text */
  return 1;
}

static int message_and_traceback(lua_State *L) {
  const char *msg = error_text(L);             /* error, text */
  luaL_traceback(L, L, msg, 1);                /* error, text, text + traceback */
  return 1;
}

/* Copies the error text on top into err as "<what>: <text>" and pops it. */
static void take_error(lua_State *L, enum esb_error_code code, const char *what, struct esb_error *err) {
  const char *msg = lua_tostring(L, -1);
  if (!msg)
    msg = "(no message)";
  esb_error_set(err, code, "%s%s%s", what ? what : "", what ? ": " : "", msg);
  lua_pop(L, 1);
}

int esb_lua_pcall(lua_State *L, int nargs, int nresults, enum esb_lua_trace trace, enum esb_error_code code,
                  const char *what, struct esb_error *err) {
  int base = lua_gettop(L) - nargs;            /* the function's index */
  lua_pushcfunction(L, trace == ESB_LUA_TRACEBACK ? message_and_traceback : message_only);
  lua_insert(L, base);                         /* handler, function, args */
  int status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);                         /* results, or the error */
  if (status == LUA_OK)
    return 0;
  take_error(L, code, what, err);              /* -- */
  return -1;
}
