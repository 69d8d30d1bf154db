/* require "echo_sandbox": the engine as a Lua 5.4 module.
 *
 *   local sbx = require "echo_sandbox"
 *   local result, err = sbx.run{ language = "python", code = "print(6*7)" }
 *   local result, err = sbx.run(request, { policy = "/path/policy.lua" })
 *   sbx.run(request, { on_output = function(event) ... end })
 *
 * run returns the result table of the request contract, or nil and a message
 * when the request is invalid or the policy cannot be loaded. It blocks the
 * calling Lua thread until the program is done. on_output, when given, is
 * called with each piece of output as it comes, { event = "output", stream =
 * "stdout" | "stderr", data = the bytes } (the daemon's and batch's event
 * shape; Lua strings hold any bytes, so there is no data_base64), before run
 * returns; an error it raises stops further calls and is raised by run once
 * the run is over and cleaned up.
 *
 * Everything C holds while Lua code could raise an error (the request, the
 * result, the loaded policies) lives in a userdata with __gc, so an error
 * longjmps past nothing that leaks. Built without liblua: the host provides
 * the Lua API, as for lua-cjson. */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "dispatch/execute.h"
#include "luaglue/call.h"
#include "codec/convert.h"

#define REQUEST_MT "echo_sandbox.request"
#define RESULT_MT "echo_sandbox.result"
#define POLICY_MT "echo_sandbox.policy"

struct policy_box {
  struct esb_policy *policy;
};

static int request_gc(lua_State *L) {
  esb_request_release(luaL_checkudata(L, 1, REQUEST_MT));
  return 0;
}

static int result_gc(lua_State *L) {
  esb_result_release(luaL_checkudata(L, 1, RESULT_MT));
  return 0;
}

static int policy_gc(lua_State *L) {
  struct policy_box *box = luaL_checkudata(L, 1, POLICY_MT);
  esb_policy_close(box->policy);
  box->policy = NULL;
  return 0;
}

/* The policy for `path` (NULL: the default search), loaded once and kept in
 * the module's cache (upvalue 1). Pushes nothing; returns NULL and pushes
 * nil, message on failure. */
static struct esb_policy *get_policy(lua_State *L, const char *path) {
  const char *key = path ? path : "";
  lua_getfield(L, lua_upvalueindex(1), key);   /* CACHE[key] */
  struct policy_box *box = lua_touserdata(L, -1);
  lua_pop(L, 1);                                /* -- */
  if (box && box->policy)
    return box->policy;
  box = lua_newuserdatauv(L, sizeof *box, 0);  /* box */
  box->policy = NULL;
  luaL_setmetatable(L, POLICY_MT);
  struct esb_error err;
  box->policy = esb_policy_open(path, &err);
  if (!box->policy) {
    lua_pop(L, 1);                              /* -- */
    lua_pushnil(L);
    lua_pushstring(L, err.message);             /* nil, message */
    return NULL;
  }
  lua_setfield(L, lua_upvalueindex(1), key);   /* -- (CACHE[key] = box) */
  return box->policy;
}

/* on_output's call: the function at index fn; its first failure kept for
 * after the run (code ESB_OK: none), when it is raised. */
struct output_call {
  lua_State *L;
  int fn;
  struct esb_error err;
};

/* Runs protected: stream (1), the bytes (2, light userdata) and their
 * length (3). Nothing of the loop's may be pushed unprotected: a memory
 * error would longjmp out of it. */
static int push_output_event(lua_State *L) {
  int stream = (int)lua_tointeger(L, 1);
  const char *data = lua_touserdata(L, 2);
  size_t len = (size_t)lua_tointeger(L, 3);
  lua_createtable(L, 0, 3);                     /* event */
  lua_pushliteral(L, "output");
  lua_setfield(L, -2, "event");
  lua_pushstring(L, stream == 1 ? "stdout" : "stderr");
  lua_setfield(L, -2, "stream");
  lua_pushlstring(L, data, len);
  lua_setfield(L, -2, "data");
  return 1;
}

static void call_on_output(int stream, const char *data, size_t len, void *userdata) {
  struct output_call *c = userdata;
  if (c->err.code != ESB_OK)
    return;
  lua_State *L = c->L;
  lua_pushvalue(L, c->fn);                      /* on_output */
  lua_pushcfunction(L, push_output_event);
  lua_pushinteger(L, stream);
  lua_pushlightuserdata(L, (void *)data);
  lua_pushinteger(L, (lua_Integer)len);
  if (esb_lua_pcall(L, 3, 1, ESB_LUA_MESSAGE, ESB_E_SYSTEM, NULL, &c->err) < 0) {
    lua_pop(L, 1);                              /* -- */
    return;
  }                                             /* on_output, event */
  esb_lua_pcall(L, 1, 0, ESB_LUA_TRACEBACK, ESB_E_INVALID_REQUEST, "on_output", &c->err);
}

static int sbx_run(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *policy_path = NULL;
  struct output_call output = { .L = L, .err = ESB_ERROR_INIT };
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "policy");
    policy_path = lua_tostring(L, -1); /* the options table keeps it alive */
    if (!policy_path && !lua_isnil(L, -1))
      return luaL_argerror(L, 2, "'policy' must be a path");
    lua_pop(L, 1);
    lua_getfield(L, 2, "on_output");
    if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
      return luaL_argerror(L, 2, "'on_output' must be a function");
    output.fn = lua_isfunction(L, -1) ? 3 : 0;
  }
  lua_settop(L, 3);                             /* request, options, on_output or nil */                             /* request, options */

  struct esb_request *req = lua_newuserdatauv(L, sizeof *req, 0); /* request, options, on_output, REQ */
  *req = (struct esb_request)ESB_REQUEST_INIT;
  luaL_setmetatable(L, REQUEST_MT);
  struct esb_error err;
  if (esb_lua_to_request(L, 1, req, &err) < 0) {
    lua_pushnil(L);
    lua_pushstring(L, err.message);
    return 2;
  }
  struct esb_policy *policy = get_policy(L, policy_path);
  if (!policy)
    return 2;

  struct esb_result *result = lua_newuserdatauv(L, sizeof *result, 0); /* ..., REQ, RESULT */
  *result = (struct esb_result)ESB_RESULT_INIT;
  luaL_setmetatable(L, RESULT_MT);
  struct esb_output_sink sink = { .fn = call_on_output, .userdata = &output, .fds = { -1, -1 } };
  esb_execute(policy, req, result, -1, NULL, output.fn ? &sink : NULL);
  if (output.err.code != ESB_OK)
    return luaL_error(L, "%s", output.err.message); /* the result's userdata is the GC's to free */
  if (result->status == ESB_STATUS_ERROR && result->error == ESB_E_INVALID_REQUEST) {
    lua_pushnil(L);
    lua_pushstring(L, result->error_message ? result->error_message : esb_strerror(result->error));
    return 2;
  }
  esb_lua_push_result(L, result, 0);            /* ..., REQ, RESULT, result */
  return 1;
}

int luaopen_echo_sandbox(lua_State *L) {
  static const struct { const char *name; lua_CFunction gc; } types[] = {
    {REQUEST_MT, request_gc}, {RESULT_MT, result_gc}, {POLICY_MT, policy_gc}};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    luaL_newmetatable(L, types[i].name);
    lua_pushcfunction(L, types[i].gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
  }
  lua_newtable(L);                              /* M */
  lua_newtable(L);                              /* M, CACHE: the loaded policies, by path */
  lua_pushcclosure(L, sbx_run, 1);              /* M, run */
  lua_setfield(L, -2, "run");                   /* M */
  lua_pushliteral(L, ESB_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
