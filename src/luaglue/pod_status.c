#include "luaglue/pod_status.h"

#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "luaglue/cjson.h"

/* The fields, picked out in Lua: nil-safe walking is what Lua is good at. */
static const char pick[] =
  "local pod = ...\n"
  "local event = ''\n"
  "if type(pod) == 'table' and type(pod.type) == 'string' and type(pod.object) == 'table' then\n"
  "  event, pod = pod.type, pod.object -- a watch event\n"
  "end\n"
  "if type(pod) ~= 'table' or pod.kind ~= 'Pod' then return nil end\n"
  "local status = type(pod.status) == 'table' and pod.status or {}\n"
  "local cs = type(status.containerStatuses) == 'table' and status.containerStatuses[1] or {}\n"
  "local state = type(cs.state) == 'table' and cs.state or {}\n"
  "local t = type(state.terminated) == 'table' and state.terminated or nil\n"
  "local message = status.message\n"
  "if not message and type(state.waiting) == 'table' then\n"
  "  local w = state.waiting\n"
  "  if w.reason and w.reason ~= 'ContainerCreating' and w.reason ~= 'PodInitializing' then\n"
  "    message = w.reason .. (w.message and (': ' .. w.message) or '')\n"
  "  end\n"
  "end\n"
  "local unschedulable = false\n"
  "if type(status.conditions) == 'table' then\n"
  "  for _, c in ipairs(status.conditions) do\n"
  "    if type(c) == 'table' and c.status == 'False' then\n"
  "      unschedulable = unschedulable or (c.type == 'PodScheduled' and c.reason == 'Unschedulable')\n"
  "      if not message and c.message then message = c.message end\n"
  "    end\n"
  "  end\n"
  "end\n"
  "local waiting = type(state.waiting) == 'table' and state.waiting.reason or nil\n"
  "local spec = type(pod.spec) == 'table' and pod.spec or {}\n"
  "local c1 = type(spec.containers) == 'table' and type(spec.containers[1]) == 'table' and spec.containers[1] or {}\n"
  "local meta = type(pod.metadata) == 'table' and pod.metadata or {}\n"
  "return status.phase or '', t ~= nil, t and math.tointeger(t.exitCode), t and t.reason,\n"
  "       status.reason, message, event, waiting, unschedulable, c1.image, meta.name\n";

static void copy(char *dst, size_t n, lua_State *L, int idx) {
  const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : "";
  snprintf(dst, n, "%s", s);
}

static int parse(lua_State *L) {
  size_t len;
  const char *json = lua_tolstring(L, 1, &len);
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
  luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
  luaL_requiref(L, "cjson", luaopen_cjson, 0);
  lua_getfield(L, -1, "decode");
  lua_pushlstring(L, json, len);
  lua_call(L, 1, 1);
  int pod = lua_gettop(L);
  if (luaL_loadbufferx(L, pick, sizeof pick - 1, "=pod_status", "t") != LUA_OK)
    return lua_error(L);
  lua_pushvalue(L, pod);
  lua_call(L, 1, 11);
  return 11;
}

int esb_lua_parse_pod_status(const char *json, size_t len, struct esb_pod_status *out) {
  memset(out, 0, sizeof *out);
  lua_State *L = luaL_newstate();
  if (!L)
    return -1;
  lua_pushcfunction(L, parse);
  lua_pushlstring(L, json, len);
  int rc = -1;
  if (lua_pcall(L, 1, 11, 0) == LUA_OK && lua_type(L, -11) == LUA_TSTRING) {
    copy(out->phase, sizeof out->phase, L, -11);
    out->terminated = lua_toboolean(L, -10);
    out->exit_code = (int)lua_tointeger(L, -9);
    copy(out->reason, sizeof out->reason, L, -8);
    copy(out->pod_reason, sizeof out->pod_reason, L, -7);
    copy(out->message, sizeof out->message, L, -6);
    copy(out->event, sizeof out->event, L, -5);
    copy(out->waiting_reason, sizeof out->waiting_reason, L, -4);
    out->unschedulable = lua_toboolean(L, -3);
    copy(out->image, sizeof out->image, L, -2);
    copy(out->name, sizeof out->name, L, -1);
    rc = 0;
  }
  lua_close(L);
  return rc;
}
