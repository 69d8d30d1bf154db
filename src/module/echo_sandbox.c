/* require "echo_sandbox": the engine as a Lua 5.4 module.
 *
 *   local sbx = require "echo_sandbox"
 *   local result, err = sbx.run{ language = "python", code = "print(6*7)" }
 *   local result, err = sbx.run(request, { policy = "/path/policy.lua" })
 *
 * run returns the result table of the request contract, or nil and a message
 * when the request is invalid or the policy cannot be loaded. It blocks the
 * calling Lua thread until the program is done.
 *
 * Everything C holds while Lua code could raise an error (the request, the
 * result, the loaded policies) lives in a userdata with __gc, so an error
 * longjmps past nothing that leaks. Built without liblua: the host provides
 * the Lua API, as for lua-cjson. */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "dispatch/execute.h"
#include "luaglue/convert.h"

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
  char err[ESB_MESSAGE_MAX];
  box->policy = esb_policy_open(path, err, sizeof err);
  if (!box->policy) {
    lua_pop(L, 1);                              /* -- */
    lua_pushnil(L);
    lua_pushstring(L, err);                     /* nil, message */
    return NULL;
  }
  lua_setfield(L, lua_upvalueindex(1), key);   /* -- (CACHE[key] = box) */
  return box->policy;
}

static int sbx_run(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *policy_path = NULL;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "policy");
    policy_path = lua_tostring(L, -1); /* the options table keeps it alive */
    if (!policy_path && !lua_isnil(L, -1))
      return luaL_argerror(L, 2, "'policy' must be a path");
    lua_pop(L, 1);
  }
  lua_settop(L, 2);                             /* request, options */

  struct esb_request *req = lua_newuserdatauv(L, sizeof *req, 0); /* request, options, REQ */
  *req = (struct esb_request)ESB_REQUEST_INIT;
  luaL_setmetatable(L, REQUEST_MT);
  char err[ESB_MESSAGE_MAX];
  if (esb_lua_to_request(L, 1, req, err, sizeof err) < 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  struct esb_policy *policy = get_policy(L, policy_path);
  if (!policy)
    return 2;

  struct esb_result *result = lua_newuserdatauv(L, sizeof *result, 0); /* ..., REQ, RESULT */
  *result = (struct esb_result)ESB_RESULT_INIT;
  luaL_setmetatable(L, RESULT_MT);
  esb_execute(policy, req, result, -1, NULL, NULL);
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
