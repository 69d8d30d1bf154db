#include "codec/pod_status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "luaglue/call.h"
#include "luaglue/cjson.h"
#include "luaglue/embedded.h"

/* Copies the string field key of the table on top (or "" when it is none)
 * into dst. */
static void copy_field(lua_State *L, const char *key, char *dst, size_t n) {
  lua_getfield(L, -1, key);                    /* status, status[key] */
  snprintf(dst, n, "%s", lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "");
  lua_pop(L, 1);                               /* status */
}

/* Runs protected: decodes the document (1) and fills the esb_pod_status (2,
 * light userdata) from kube.pod_status. Returns whether it was a pod. */
static int parse(lua_State *L) {
  struct esb_pod_status *out = lua_touserdata(L, 2);
  size_t len;
  const char *json = lua_tolstring(L, 1, &len);
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
  luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
  luaL_requiref(L, "cjson", luaopen_cjson, 0);
  lua_replace(L, 3);
  lua_settop(L, 3);                            /* json, out, cjson */
  esb_lua_embedded_require(L, "echo_sandbox.engine.kube");
  lua_getfield(L, -1, "pod_status");           /* json, out, cjson, kube, pod_status */
  lua_getfield(L, 3, "decode");                /* ..., pod_status, decode */
  lua_pushlstring(L, json, len);
  lua_call(L, 1, 1);                           /* ..., pod_status, document */
  lua_call(L, 1, 1);                           /* ..., status or nil */
  if (!lua_istable(L, -1)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  copy_field(L, "phase", out->phase, sizeof out->phase);
  copy_field(L, "reason", out->reason, sizeof out->reason);
  copy_field(L, "pod_reason", out->pod_reason, sizeof out->pod_reason);
  copy_field(L, "message", out->message, sizeof out->message);
  copy_field(L, "event", out->event, sizeof out->event);
  copy_field(L, "waiting_reason", out->waiting_reason, sizeof out->waiting_reason);
  copy_field(L, "image", out->image, sizeof out->image);
  copy_field(L, "name", out->name, sizeof out->name);
  copy_field(L, "instance", out->instance, sizeof out->instance);
  copy_field(L, "not_ready", out->not_ready_reason, sizeof out->not_ready_reason);
  lua_getfield(L, -1, "not_ready");
  out->not_ready = lua_isstring(L, -1);
  lua_getfield(L, -2, "terminated");
  out->terminated = lua_toboolean(L, -1);
  lua_getfield(L, -3, "unschedulable");
  out->unschedulable = lua_toboolean(L, -1);
  lua_getfield(L, -4, "exit_code");
  out->exit_code = (int)lua_tointeger(L, -1);
  lua_getfield(L, -5, "deleting");
  out->deleting = lua_toboolean(L, -1);
  lua_getfield(L, -6, "restart_count");
  out->restart_count = (int)lua_tointeger(L, -1);
  lua_pushboolean(L, 1);
  return 1;
}

int esb_lua_parse_pod_status(const char *json, size_t len, struct esb_pod_status *out) {
  memset(out, 0, sizeof *out);
  lua_State *L = luaL_newstate();
  if (!L)
    return -1;
  struct esb_error err;
  lua_pushcfunction(L, parse);
  lua_pushlstring(L, json, len);
  lua_pushlightuserdata(L, out);
  int rc = esb_lua_pcall(L, 2, 1, ESB_LUA_MESSAGE, ESB_E_BACKEND, NULL, &err) == 0 && lua_toboolean(L, -1) ? 0 : -1;
  lua_close(L);
  if (rc < 0)
    memset(out, 0, sizeof *out);
  return rc;
}

/* Runs protected: decodes the PodList (1) and leaves its warm pods' lines. */
static int warm_lines(lua_State *L) {
  size_t len;
  const char *json = lua_tolstring(L, 1, &len);
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
  luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
  luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
  luaL_requiref(L, "cjson", luaopen_cjson, 0);
  lua_replace(L, 2);
  lua_settop(L, 2);                            /* json, cjson */
  esb_lua_embedded_require(L, "echo_sandbox.engine.kube");
  lua_getfield(L, -1, "warm_pod_lines");       /* json, cjson, kube, warm_pod_lines */
  lua_getfield(L, 2, "decode");
  lua_pushlstring(L, json, len);
  lua_call(L, 1, 1);                           /* ..., warm_pod_lines, list */
  lua_call(L, 1, 1);                           /* ..., lines */
  return 1;
}

char *esb_lua_warm_pod_lines(const char *json, size_t len, size_t *out_len) {
  lua_State *L = luaL_newstate();
  if (!L)
    return NULL;
  struct esb_error err;
  char *out = NULL;
  lua_pushcfunction(L, warm_lines);
  lua_pushlstring(L, json, len);
  if (esb_lua_pcall(L, 1, 1, ESB_LUA_MESSAGE, ESB_E_BACKEND, NULL, &err) == 0 && lua_isstring(L, -1)) {
    const char *lines = lua_tolstring(L, -1, out_len);
    out = malloc(*out_len + 1);
    if (out)
      memcpy(out, lines, *out_len + 1);
  }
  lua_close(L);
  return out;
}
