#include "policy/policy.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "engine/strv.h"
#include "luaglue/tables.h"

int luaopen_cjson(lua_State *L);

struct esb_policy {
  lua_State *L;
  char *path;
  int ref;  /* the table the policy file returned */
};

/* ---- running Lua code the way lua.c does ---- */

static int message_handler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static int docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, message_handler);
  lua_insert(L, base);
  int status = lua_pcall(L, narg, nres, base);
  lua_remove(L, base);
  return status;
}

/* Copies the error on top of the stack into err and pops it. */
static void take_error(lua_State *L, char *err, size_t errlen, const char *what) {
  const char *msg = lua_tostring(L, -1);
  snprintf(err, errlen, "%s: %s", what, msg ? msg : "(no message)");
  lua_pop(L, 1);
}

/* ---- building the VM ---- */

/* print() writes to stderr: stdout belongs to results. */
static int policy_print(lua_State *L) {
  int n = lua_gettop(L);
  fputs("policy:", stderr);
  for (int i = 1; i <= n; i++) {
    size_t len;
    const char *s = luaL_tolstring(L, i, &len);
    fputc(i == 1 ? ' ' : '\t', stderr);
    fwrite(s, 1, len, stderr);
    lua_pop(L, 1);
  }
  fputc('\n', stderr);
  return 0;
}

static const char *const sandbox_prelude =
  "local load = load\n"
  "_G.load = function(chunk, name, mode, env)\n"
  "  return load(chunk, name, 't', env)\n"
  "end\n"
  "_G.dofile, _G.loadfile = nil, nil\n"
  "package.loadlib, package.cpath = nil, ''\n"
  "package.searchers[3], package.searchers[4] = nil, nil\n";

static bool readable(const char *path) {
  return access(path, R_OK) == 0;
}

static int open_libraries(lua_State *L) {
  const char *lua_dir = lua_tostring(L, 1);
  static const luaL_Reg libs[] = {
    {LUA_GNAME, luaopen_base}, {LUA_LOADLIBNAME, luaopen_package},
    {LUA_STRLIBNAME, luaopen_string}, {LUA_TABLIBNAME, luaopen_table},
    {LUA_MATHLIBNAME, luaopen_math}, {LUA_UTF8LIBNAME, luaopen_utf8}, {NULL, NULL}};
  for (const luaL_Reg *lib = libs; lib->func; lib++) {
    luaL_requiref(L, lib->name, lib->func, 1);
    lua_pop(L, 1);
  }
  lua_pushcfunction(L, policy_print);
  lua_setglobal(L, "print");
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_cjson);
  lua_setfield(L, -2, "cjson");
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", lua_dir, lua_dir);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  if (luaL_loadbufferx(L, sandbox_prelude, strlen(sandbox_prelude), "=prelude", "t") != LUA_OK)
    return lua_error(L);
  lua_call(L, 0, 0);
  return 0;
}

static const char *find_policy(const char *explicit_path) {
  if (explicit_path)
    return explicit_path;
  const char *env = getenv("ECHO_SANDBOX_POLICY");
  if (env && *env)
    return env;
  if (readable("/etc/echo-sandbox/policy.lua"))
    return "/etc/echo-sandbox/policy.lua";
  if (readable(ESB_DATA_DIR "/policies/default.lua"))
    return ESB_DATA_DIR "/policies/default.lua";
  return ESB_SOURCE_DIR "/policies/default.lua";
}

/* Our lua/ modules: installed, else the source tree's. */
static const char *find_lua_dir(void) {
  if (readable(ESB_DATA_DIR "/../lua/5.4/echo_sandbox/policy/default.lua"))
    return ESB_DATA_DIR "/../lua/5.4";
  return ESB_SOURCE_DIR "/lua";
}

struct esb_policy *esb_policy_open(const char *explicit_path, char *err, size_t errlen) {
  const char *path = find_policy(explicit_path);
  struct esb_policy *p = calloc(1, sizeof *p);
  if (!p || !(p->path = strdup(path)) || !(p->L = luaL_newstate())) {
    snprintf(err, errlen, "policy %s: out of memory", path);
    goto fail;
  }
  lua_State *L = p->L;
  lua_pushcfunction(L, open_libraries);
  lua_pushstring(L, find_lua_dir());
  if (docall(L, 1, 0) != LUA_OK) {
    take_error(L, err, errlen, "policy VM");
    goto fail;
  }
  /* Text chunks only: a policy is source, never bytecode. */
  if (luaL_loadfilex(L, path, "t") != LUA_OK) {
    take_error(L, err, errlen, "policy");
    goto fail;
  }
  if (docall(L, 0, 1) != LUA_OK) {
    take_error(L, err, errlen, "policy");
    goto fail;
  }
  if (!lua_istable(L, -1)) {
    snprintf(err, errlen, "policy %s: must return a table, returned %s", path, luaL_typename(L, -1));
    goto fail;
  }
  lua_getfield(L, -1, "plan");
  bool has_plan = lua_isfunction(L, -1);
  lua_pop(L, 1);
  if (!has_plan) {
    snprintf(err, errlen, "policy %s: the returned table has no function 'plan'", path);
    goto fail;
  }
  p->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return p;
fail:
  esb_policy_close(p);
  return NULL;
}

void esb_policy_close(struct esb_policy *p) {
  if (!p)
    return;
  if (p->L)
    lua_close(p->L);
  free(p->path);
  free(p);
}

const char *esb_policy_path(const struct esb_policy *p) {
  return p->path;
}

/* ---- the request, as the hooks see it ---- */

static void set_string(lua_State *L, const char *key, const char *value) {
  if (!value)
    return;
  lua_pushstring(L, value);
  lua_setfield(L, -2, key);
}

static void set_integer(lua_State *L, const char *key, uint64_t value) {
  if (!value)
    return;
  lua_pushinteger(L, (lua_Integer)value);
  lua_setfield(L, -2, key);
}

static void set_array(lua_State *L, const char *key, char **v) {
  if (!v)
    return;
  lua_newtable(L);
  for (lua_Integer i = 0; v[i]; i++) {
    lua_pushstring(L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, key);
}

static void set_map(lua_State *L, const char *key, char **kv) {
  if (!kv)
    return;
  lua_newtable(L);
  for (char **p = kv; *p; p++) {
    const char *eq = strchr(*p, '=');
    lua_pushlstring(L, *p, (size_t)(eq - *p));
    lua_pushstring(L, eq + 1);
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, key);
}

/* Runs protected: pushing may raise memory errors. */
static int push_request(lua_State *L) {
  const struct esb_request *r = lua_touserdata(L, 1);
  lua_createtable(L, 0, 16);
  set_string(L, "shell", r->shell);
  set_string(L, "program", r->program);
  set_string(L, "language", r->language);
  set_string(L, "code", r->code);
  set_array(L, "args", r->args);
  set_map(L, "env", r->env);
  set_string(L, "working_dir", r->working_dir);
  set_integer(L, "timeout_ms", r->timeout_ms);
  set_string(L, "backend", esb_backend_name(r->backend));
  set_map(L, "labels", r->labels);
  if (r->stdin_data) {
    lua_pushinteger(L, (lua_Integer)r->stdin_len);
    lua_setfield(L, -2, "stdin_bytes");
  }
  lua_createtable(L, 0, 5);
  set_integer(L, "memory_bytes", r->limits.memory_bytes);
  set_integer(L, "cpu_time_secs", r->limits.cpu_time_secs);
  set_integer(L, "max_output_bytes", r->limits.max_output_bytes);
  set_integer(L, "max_processes", r->limits.max_processes);
  if (r->limits.network >= 0) {
    lua_pushboolean(L, r->limits.network);
    lua_setfield(L, -2, "network");
  }
  lua_setfield(L, -2, "limits");
  return 1;
}

/* ---- reading what the hook returned (raw access only: never raises) ---- */

struct reader {
  lua_State *L;
  char *err;
  size_t errlen;
  bool failed;
};

static void bad(struct reader *rd, const char *field, const char *expected) {
  if (rd->failed)
    return;
  rd->failed = true;
  snprintf(rd->err, rd->errlen, "policy hook 'plan' returned a bad field '%s': expected %s, got %s",
           field, expected, luaL_typename(rd->L, -1));
}

/* Pushes t[key] (raw) for the table at idx. */
static int field(struct reader *rd, int idx, const char *key) {
  lua_pushstring(rd->L, key);
  return lua_rawget(rd->L, idx < 0 ? idx - 1 : idx);
}

static uint64_t read_uint(struct reader *rd, int idx, const char *key, const char *name, uint64_t dflt) {
  uint64_t v = dflt;
  int isint = 0;
  if (field(rd, idx, key) != LUA_TNIL) {
    lua_Integer i = lua_type(rd->L, -1) == LUA_TNUMBER ? lua_tointegerx(rd->L, -1, &isint) : 0;
    if (!isint || i < 0)
      bad(rd, name, "a non-negative integer");
    else
      v = (uint64_t)i;
  }
  lua_pop(rd->L, 1);
  return v;
}

static bool read_bool(struct reader *rd, int idx, const char *key, const char *name, bool dflt) {
  bool v = dflt;
  int t = field(rd, idx, key);
  if (t == LUA_TBOOLEAN)
    v = lua_toboolean(rd->L, -1);
  else if (t != LUA_TNIL)
    bad(rd, name, "a boolean");
  lua_pop(rd->L, 1);
  return v;
}

/* A string without NUL bytes, copied; NULL when absent or bad. */
static char *read_string(struct reader *rd, int idx, const char *key, const char *name) {
  char *v = NULL;
  int t = field(rd, idx, key);
  if (t == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(rd->L, -1, &len);
    if (strlen(s) != len)
      bad(rd, name, "a string without NUL bytes");
    else if (!(v = strdup(s)))
      bad(rd, name, "memory for it");
  } else if (t != LUA_TNIL) {
    bad(rd, name, "a string");
  }
  lua_pop(rd->L, 1);
  return v;
}

/* An array of strings (map false) or a map of names to strings (map true). */
static char **read_vector(struct reader *rd, int idx, const char *key, bool map) {
  struct esb_strv sv = ESB_STRV_INIT;
  int t = field(rd, idx, key);
  enum esb_lua_vec rc = ESB_LUA_VEC_BAD;
  if (t == LUA_TTABLE && (map || lua_rawlen(rd->L, -1) > 0))
    rc = map ? esb_lua_map_to_strv(rd->L, -1, &sv) : esb_lua_array_to_strv(rd->L, -1, &sv);
  else if (t == LUA_TNIL && map)
    rc = ESB_LUA_VEC_OK;
  if (rc == ESB_LUA_VEC_NOMEM)
    bad(rd, key, "memory for it");
  else if (rc == ESB_LUA_VEC_BAD)
    bad(rd, key, map ? "a map of names (no '=') to strings without NUL bytes"
                     : "a non-empty array of strings without NUL bytes");
  lua_pop(rd->L, 1);
  if (rd->failed) {
    esb_strv_clear(&sv);
    return NULL;
  }
  return esb_strv_detach(&sv);
}

static void read_plan(struct reader *rd, struct esb_plan *plan) {
  lua_State *L = rd->L;
  char *backend = read_string(rd, -1, "backend", "backend");
  if (backend && strcmp(backend, "local") == 0) plan->backend = ESB_BACKEND_LOCAL;
  else if (backend && strcmp(backend, "k8s") == 0) plan->backend = ESB_BACKEND_K8S;
  else if (backend) bad(rd, "backend", "\"local\" or \"k8s\"");
  free(backend);
  plan->argv = read_vector(rd, -1, "argv", false);
  plan->env = read_vector(rd, -1, "env", true);
  plan->working_dir = read_string(rd, -1, "working_dir", "working_dir");
  plan->timeout_ms = read_uint(rd, -1, "timeout_ms", "timeout_ms", 0);
  if (!rd->failed && plan->timeout_ms == 0) {
    lua_pushnil(L);
    bad(rd, "timeout_ms", "a positive integer");
    lua_pop(L, 1);
  }
  plan->kill_grace_ms = read_uint(rd, -1, "kill_grace_ms", "kill_grace_ms", plan->kill_grace_ms);
  struct esb_local_settings *ls = &plan->local;
  if (field(rd, -1, "limits") == LUA_TTABLE) {
    plan->max_output_bytes = read_uint(rd, -1, "max_output_bytes", "limits.max_output_bytes", 1 << 20);
    ls->limits.address_space = read_uint(rd, -1, "memory_bytes", "limits.memory_bytes", 0);
    ls->limits.cpu_secs = read_uint(rd, -1, "cpu_time_secs", "limits.cpu_time_secs", 0);
    ls->limits.processes = read_uint(rd, -1, "max_processes", "limits.max_processes", 0);
    ls->network = read_bool(rd, -1, "network", "limits.network", false);
  } else {
    bad(rd, "limits", "a table");
  }
  lua_pop(L, 1);
  int t = field(rd, -1, "local");
  if (t == LUA_TTABLE) {
    ls->uid = (uid_t)read_uint(rd, -1, "uid", "local.uid", ls->uid);
    ls->gid = (gid_t)read_uint(rd, -1, "gid", "local.gid", ls->gid);
    char *iso = read_string(rd, -1, "isolation", "local.isolation");
    if (!iso || strcmp(iso, "namespaces") == 0) ls->isolation = ESB_ISOLATION_NAMESPACES;
    else if (strcmp(iso, "best_effort") == 0) ls->isolation = ESB_ISOLATION_BEST_EFFORT;
    else if (strcmp(iso, "rlimits") == 0) ls->isolation = ESB_ISOLATION_RLIMITS;
    else {
      field(rd, -1, "isolation");
      bad(rd, "local.isolation", "\"namespaces\", \"best_effort\" or \"rlimits\"");
      lua_pop(L, 1);
    }
    free(iso);
    ls->tmp_size_bytes = read_uint(rd, -1, "tmp_size_bytes", "local.tmp_size_bytes", 0);
    ls->limits.file_size = read_uint(rd, -1, "file_size_bytes", "local.file_size_bytes", 0);
    ls->limits.open_files = read_uint(rd, -1, "open_files", "local.open_files", 0);
  } else if (t != LUA_TNIL) {
    bad(rd, "local", "a table");
  }
  lua_pop(L, 1);
  ls->limits.no_core = true;
  if (!rd->failed && (ls->uid == 0 || ls->gid == 0)) {
    lua_pushnil(L);
    bad(rd, "local.uid/gid", "ids other than 0 (the program never runs as root)");
    lua_pop(L, 1);
  }
}

enum esb_error esb_policy_plan(struct esb_policy *p, const struct esb_request *req,
                               struct esb_plan *plan, char *err, size_t errlen) {
  lua_State *L = p->L;
  int top = lua_gettop(L);
  enum esb_error code = ESB_OK;
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref);
  lua_getfield(L, -1, "plan");
  lua_pushcfunction(L, push_request);
  lua_pushlightuserdata(L, (void *)req);
  if (docall(L, 1, 1) != LUA_OK) {
    take_error(L, err, errlen, "policy");
    code = ESB_E_POLICY;
    goto out;
  }
  lua_pushvalue(L, -3); /* the policy table, as self */
  lua_insert(L, -2);
  if (docall(L, 2, 2) != LUA_OK) {
    take_error(L, err, errlen, "policy hook 'plan'");
    code = ESB_E_POLICY;
    goto out;
  }
  if (lua_isnil(L, -2)) {
    const char *msg = lua_tostring(L, -1);
    snprintf(err, errlen, "%s", msg ? msg : "the policy refused the request");
    code = ESB_E_INVALID_REQUEST;
    goto out;
  }
  lua_pop(L, 1);
  if (!lua_istable(L, -1)) {
    snprintf(err, errlen, "policy hook 'plan' returned %s, expected a table", luaL_typename(L, -1));
    code = ESB_E_POLICY;
    goto out;
  }
  struct reader rd = { L, err, errlen, false };
  read_plan(&rd, plan);
  if (rd.failed) {
    esb_plan_release(plan);
    code = ESB_E_POLICY;
    goto out;
  }
  plan->stdin_data = req->stdin_data;
  plan->stdin_len = req->stdin_len;
out:
  lua_settop(L, top);
  return code;
}
