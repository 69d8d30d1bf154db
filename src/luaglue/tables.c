#include "luaglue/tables.h"

#include <stdio.h>
#include <string.h>

const char *esb_lua_plain_string(lua_State *L, int idx) {
  size_t len;
  if (lua_type(L, idx) != LUA_TSTRING)
    return NULL;
  const char *s = lua_tolstring(L, idx, &len);
  return strlen(s) == len ? s : NULL;
}

enum esb_lua_vec esb_lua_array_to_strv(lua_State *L, int idx, struct esb_strv *sv) {
  idx = lua_absindex(L, idx);
  lua_Unsigned n = lua_rawlen(L, idx);
  for (lua_Unsigned i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, (lua_Integer)i);
    const char *s = esb_lua_plain_string(L, -1);
    enum esb_lua_vec rc = !s ? ESB_LUA_VEC_BAD : esb_strv_push(sv, s) < 0 ? ESB_LUA_VEC_NOMEM : ESB_LUA_VEC_OK;
    lua_pop(L, 1);
    if (rc != ESB_LUA_VEC_OK)
      return rc;
  }
  /* An object, or names beside the items, is no array: what it holds would
   * be dropped without a word ("args": {"x": "y"} would run no args). */
  lua_Unsigned count = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    count++;
  }
  return count == n ? ESB_LUA_VEC_OK : ESB_LUA_VEC_BAD;
}

enum esb_lua_vec esb_lua_map_to_strv(lua_State *L, int idx, struct esb_strv *sv) {
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    const char *k = esb_lua_plain_string(L, -2), *v = esb_lua_plain_string(L, -1);
    char *kv;
    enum esb_lua_vec rc = ESB_LUA_VEC_OK;
    if (!k || !*k || strchr(k, '=') || !v)
      rc = ESB_LUA_VEC_BAD;
    else if (asprintf(&kv, "%s=%s", k, v) < 0 || esb_strv_take(sv, kv) < 0)
      rc = ESB_LUA_VEC_NOMEM;
    lua_pop(L, 1);
    if (rc != ESB_LUA_VEC_OK) {
      lua_pop(L, 1); /* the key: stop iterating */
      return rc;
    }
  }
  return ESB_LUA_VEC_OK;
}
