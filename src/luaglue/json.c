#include "luaglue/json.h"

#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "engine/fileio.h"
#include "luaglue/cjson.h"
#include "luaglue/convert.h"


/* Registry key of the cjson table. */
static const char cjson_key[] = "esb.cjson";

static int open_state(lua_State *L) {
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
  luaL_requiref(L, "cjson", luaopen_cjson, 0);
  lua_setfield(L, LUA_REGISTRYINDEX, cjson_key);
  return 0;
}

lua_State *esb_json_state(void) {
  lua_State *L = luaL_newstate();
  if (!L)
    return NULL;
  lua_pushcfunction(L, open_state);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    lua_close(L);
    return NULL;
  }
  return L;
}

void esb_json_field(lua_State *L, const char *name) {
  lua_pushstring(L, cjson_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  lua_pushstring(L, name);
  lua_rawget(L, -2);
  lua_remove(L, -2);
}

int esb_json_decode(lua_State *L, const char *text, size_t len, char *err, size_t errlen) {
  esb_json_field(L, "decode");
  lua_pushlstring(L, text, len);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    snprintf(err, errlen, "invalid request JSON: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

int esb_json_encode(lua_State *L, char *err, size_t errlen) {
  esb_json_field(L, "encode");
  lua_insert(L, -2);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    snprintf(err, errlen, "cannot encode JSON: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

static int push_result(lua_State *L) {
  const struct esb_result *r = lua_touserdata(L, 1);
  esb_json_field(L, "null");
  esb_lua_push_result(L, r, lua_gettop(L));
  return 1;
}

int esb_json_push_result(lua_State *L, const struct esb_result *r) {
  lua_pushcfunction(L, push_result);
  lua_pushlightuserdata(L, (void *)r);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

void esb_json_print(lua_State *L) {
  char err[ESB_MESSAGE_MAX];
  if (esb_json_encode(L, err, sizeof err) < 0) {
    fprintf(stderr, "echo-sandbox: %s\n", err);
    return;
  }
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  esb_write_all(1, s, len);
  esb_write_all(1, "\n", 1);
  lua_pop(L, 1);
}
