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
 * Sessions (backend/local_session.h): a sandbox that lives, whose working
 * dir (files) and kernels (a language's variables, imports, definitions)
 * persist from call to call; the processes a run starts end with it.
 *
 *   local id, err = sbx.session_create{ ttl_ms = 600000, limits = {...} }
 *   local result, err = sbx.session_run(id, { shell = "echo 42 > answer" })
 *   local cell, err = sbx.session_cell(id, { language = "python", code = "x = 41" })
 *   local ok, err = sbx.session_delete(id)
 *
 * Each takes the options table (policy) last. create's table is
 * POST /v1/sessions's body, run's a request, cell's POST
 * /v1/sessions/ID/cell's; cell returns the cell's result table (`session
 * cell --json`'s, none for what is null); an unknown or ended session, a
 * refused request or a language without a kernel is nil and the message.
 *
 * Everything C holds while Lua code could raise an error (the request, the
 * result, the loaded policies) lives in a userdata with __gc, so an error
 * longjmps past nothing that leaks. Built without liblua: the host provides
 * the Lua API, as for lua-cjson. */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "backend/k8s_session.h"
#include "dispatch/execute.h"
#include "dispatch/session.h"
#include "dispatch/session_create.h"
#include "dispatch/session_k8s.h"
#include "luaglue/call.h"
#include "codec/convert.h"

#define REQUEST_MT "echo_sandbox.request"
#define RESULT_MT "echo_sandbox.result"
#define POLICY_MT "echo_sandbox.policy"
#define PLAN_MT "echo_sandbox.plan"
#define CELL_MT "echo_sandbox.cell"

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

static int plan_gc(lua_State *L) {
  esb_plan_release(luaL_checkudata(L, 1, PLAN_MT));
  return 0;
}

/* A cell's body and result, freed together. */
struct cell_box {
  struct esb_session_cell_body body;
  struct esb_cell_result result;
};

static int cell_gc(lua_State *L) {
  struct cell_box *box = luaL_checkudata(L, 1, CELL_MT);
  esb_session_cell_body_release(&box->body);
  esb_cell_result_release(&box->result);
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

/* ---- sessions ---- */

/* The options table at idx (nil or none: the defaults): its policy. NULL
 * with nil, message pushed where it cannot be loaded. */
static struct esb_policy *options_policy(lua_State *L, int idx) {
  const char *path = NULL;
  if (!lua_isnoneornil(L, idx)) {
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "policy");
    path = lua_tostring(L, -1); /* the options table keeps it alive */
    if (!path && !lua_isnil(L, -1))
      luaL_argerror(L, idx, "'policy' must be a path");
    lua_pop(L, 1);
  }
  return get_policy(L, path);
}

/* A new userdata of size bytes, zeroed, with metatable mt (its __gc frees
 * what it comes to own). */
static void *boxed(lua_State *L, size_t size, const char *mt) {
  void *p = lua_newuserdatauv(L, size, 0);
  memset(p, 0, size);
  luaL_setmetatable(L, mt);
  return p;
}

static int fail(lua_State *L, const char *message) {
  lua_pushnil(L);
  lua_pushstring(L, message);
  return 2;
}

/* session_create(body [, options]): the new session's id. */
static int sbx_session_create(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  struct esb_policy *policy = options_policy(L, 2);
  if (!policy)
    return 2;
  struct esb_request *req = boxed(L, sizeof *req, REQUEST_MT);
  *req = (struct esb_request)ESB_REQUEST_INIT;
  struct esb_session_options o = { .ttl_ms = 0 };
  struct esb_session_made made = ESB_SESSION_MADE_INIT;
  struct esb_error err;
  if (esb_session_create_request(L, 1, req, &o, &err) < 0)
    return fail(L, err.message);
  int rc = esb_session_make(policy, req, o.ttl_ms, o.idle_timeout_ms, &made, &err);
  char id[sizeof made.id];
  memcpy(id, made.id, sizeof id);
  esb_session_made_release(&made);
  if (rc < 0)
    return fail(L, err.message);
  lua_pushstring(L, id);
  return 1;
}

/* The arguments of session_run and session_cell: (id, table [, options]).
 * 0, or the count of values pushed for the caller to return (nil and why:
 * no policy). A k8s session's id (its pod's name) goes to the cluster the
 * policy names, as the CLI's `session` does (dispatch/session_k8s.h): each
 * call waits for kubectl, as the module's run on that backend does. */
static int session_args(lua_State *L, const char **id, struct esb_policy **policy) {
  *id = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  return (*policy = options_policy(L, 3)) ? 0 : 2;
}

/* session_run(id, request [, options]): the run's result, as run's. */
static int sbx_session_run(lua_State *L) {
  const char *id;
  struct esb_policy *policy;
  int pushed = session_args(L, &id, &policy);
  if (pushed)
    return pushed;
  struct esb_request *req = boxed(L, sizeof *req, REQUEST_MT);
  struct esb_plan *plan = boxed(L, sizeof *plan, PLAN_MT);
  struct esb_result *result = boxed(L, sizeof *result, RESULT_MT);
  *req = (struct esb_request)ESB_REQUEST_INIT;
  *plan = (struct esb_plan)ESB_PLAN_INIT;
  *result = (struct esb_result)ESB_RESULT_INIT;
  struct esb_error err;
  bool k8s = esb_k8s_session_id(id);
  if (esb_lua_to_request(L, 2, req, &err) < 0 ||
      (k8s ? esb_k8s_session_plan_run(policy, req, plan, &err) : esb_session_plan_run(policy, req, plan, &err)) < 0)
    return fail(L, err.message);
  if (k8s)
    esb_k8s_session_run(id, plan, result, -1, NULL);
  else
    esb_session_run(id, plan, result, -1, NULL);
  if (result->status == ESB_STATUS_ERROR && result->error == ESB_E_INVALID_REQUEST)
    return fail(L, result->error_message ? result->error_message : esb_strerror(result->error));
  esb_lua_push_result(L, result, 0);
  return 1;
}

/* session_cell(id, { language, code, timeout_ms } [, options]): the
 * cell's result; nil and why where it did not go in (busy among them). */
static int sbx_session_cell(lua_State *L) {
  const char *id;
  struct esb_policy *policy;
  int pushed = session_args(L, &id, &policy);
  if (pushed)
    return pushed;
  struct cell_box *box = boxed(L, sizeof *box, CELL_MT);
  struct esb_plan *plan = boxed(L, sizeof *plan, PLAN_MT);
  *box = (struct cell_box){ .result = ESB_CELL_RESULT_INIT };
  *plan = (struct esb_plan)ESB_PLAN_INIT;
  struct esb_error err;
  if (esb_session_cell_read(L, 2, &box->body, &err) < 0 ||
      esb_session_plan_cell(policy, id, box->body.language, box->body.timeout_ms, plan, &err) < 0)
    return fail(L, err.message);
  struct esb_cell_result *r = &box->result;
  if (esb_k8s_session_id(id))
    esb_k8s_session_cell(id, box->body.language, box->body.code, box->body.len, plan, r, -1);
  else
    esb_session_cell(id, box->body.language, box->body.code, box->body.len, plan, r, -1);
  bool went_in = r->status != ESB_CELL_BUSY && r->status != ESB_CELL_SESSION_ENDED && r->status != ESB_CELL_FAILED;
  if (!went_in)
    return fail(L, r->message ? r->message : esb_cell_status_name(r->status));
  esb_session_push_cell(L, r, box->body.language, false);
  return 1;
}

/* A k8s session's delete: its pod, on the policy's cluster. */
static int k8s_session_delete(const char *id, struct esb_policy *policy, struct esb_error *err) {
  struct esb_k8s_settings k = { 0 };
  int rc = esb_policy_cluster(policy, &k, err) < 0 ? -1 : esb_k8s_session_remove_one(&k, id, err);
  esb_k8s_settings_release(&k);
  return rc;
}

/* session_delete(id [, options]): true; nil and why where there is no such
 * session. An ended session's remains are removed all the same. */
static int sbx_session_delete(lua_State *L) {
  const char *id = luaL_checkstring(L, 1);
  enum esb_session_end was;
  struct esb_error err;
  struct esb_policy *policy = NULL;
  if (esb_k8s_session_id(id) && !(policy = options_policy(L, 2)))
    return 2;
  if ((policy ? k8s_session_delete(id, policy, &err) : esb_session_remove(id, &was, &err)) < 0)
    return fail(L, err.message);
  lua_pushboolean(L, 1);
  return 1;
}

int luaopen_echo_sandbox(lua_State *L) {
  static const struct { const char *name; lua_CFunction gc; } types[] = {
    {REQUEST_MT, request_gc}, {RESULT_MT, result_gc}, {POLICY_MT, policy_gc}, {PLAN_MT, plan_gc},
    {CELL_MT, cell_gc}};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    luaL_newmetatable(L, types[i].name);
    lua_pushcfunction(L, types[i].gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
  }
  lua_newtable(L);                              /* M */
  lua_newtable(L);                              /* M, CACHE: the loaded policies, by path */
  static const struct { const char *name; lua_CFunction fn; } functions[] = {
    {"run", sbx_run}, {"session_create", sbx_session_create}, {"session_run", sbx_session_run},
    {"session_cell", sbx_session_cell}, {"session_delete", sbx_session_delete}};
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    lua_pushvalue(L, -1);                       /* M, CACHE, CACHE */
    lua_pushcclosure(L, functions[i].fn, 1);    /* M, CACHE, fn */
    lua_setfield(L, -3, functions[i].name);     /* M, CACHE */
  }
  lua_pop(L, 1);                                /* M */
  lua_pushliteral(L, ESB_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
