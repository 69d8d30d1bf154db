/* esb_lua_pcall (src/luaglue/call.c) and the embedded modules
 * (src/luaglue/embedded.c): messages with and without a traceback, the
 * stack as it was, and our modules loaded from the binary once per state. */
#include "luaglue/call.h"
#include "luaglue/embedded.h"

#include <lauxlib.h>
#include <lualib.h>

#include "tap.h"

static int raise_table(lua_State *L) {
  lua_newtable(L);
  return lua_error(L);
}

static int require_twice(lua_State *L) {
  esb_lua_embedded_require(L, "echo_sandbox.engine.requests");
  esb_lua_embedded_require(L, "echo_sandbox.engine.requests");
  lua_pushboolean(L, lua_rawequal(L, -1, -2));
  return 1;
}

static int require_missing(lua_State *L) {
  esb_lua_embedded_require(L, "echo_sandbox.nope");
  return 1;
}

int main(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  struct esb_error err = ESB_ERROR_INIT;

  lua_pushinteger(L, 99); /* below the call: must stay */
  luaL_loadstring(L, "local a, b = ...; return a + b");
  lua_pushinteger(L, 2);
  lua_pushinteger(L, 3);
  is_int(esb_lua_pcall(L, 2, 1, ESB_LUA_MESSAGE, ESB_E_POLICY, "sum", &err), 0, "a call that works returns 0");
  is_int(lua_tointeger(L, -1), 5, "with its results pushed");
  lua_pop(L, 1);

  luaL_loadstring(L, "error('boom')");
  is_int(esb_lua_pcall(L, 0, 1, ESB_LUA_MESSAGE, ESB_E_POLICY, "hook", &err), -1, "a call that raises returns -1");
  is_str(err.message, "hook: [string \"error('boom')\"]:1: boom", "the message, prefixed, with no traceback");
  is_int(err.code, ESB_E_POLICY, "with the code the caller gave");
  is_int(lua_gettop(L), 1, "and nothing of the call is left on the stack");

  luaL_loadstring(L, "local function inner() error('deep') end inner()");
  esb_lua_pcall(L, 0, 0, ESB_LUA_TRACEBACK, ESB_E_POLICY, NULL, &err);
  ok(strstr(err.message, "deep\nstack traceback:") && strstr(err.message, "inner"), "a traceback where asked for");
  ok(strncmp(err.message, "[string", 7) == 0, "no prefix where none is given");
  is_int(lua_gettop(L), 1, "the stack as it was");

  lua_pushcfunction(L, raise_table);
  esb_lua_pcall(L, 0, 0, ESB_LUA_MESSAGE, ESB_E_POLICY, "x", &err);
  is_str(err.message, "x: (error object is a table value)", "an error that is no string is described");

  lua_pushcfunction(L, require_twice);
  ok(esb_lua_pcall(L, 0, 1, ESB_LUA_MESSAGE, ESB_E_POLICY, NULL, &err) == 0 && lua_toboolean(L, -1),
     "an embedded module is loaded once per state");
  lua_pop(L, 1);
  lua_pushcfunction(L, require_missing);
  esb_lua_pcall(L, 0, 1, ESB_LUA_MESSAGE, ESB_E_POLICY, NULL, &err);
  is_str(err.message, "no embedded module 'echo_sandbox.nope'", "a module that is not embedded is an error");
  ok(esb_lua_embedded_find("echo_sandbox.engine.kube") != NULL, "the engine's modules are embedded");
  is_int(lua_gettop(L), 1, "the stack as it was at the end");

  lua_close(L);
  return tap_done();
}
