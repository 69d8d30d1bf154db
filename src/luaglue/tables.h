/* Reading Lua tables of strings into C vectors, with raw access only, so
 * these never raise a Lua error and may hold C allocations. Shared by the
 * request conversion and the policy VM's reader. */
#ifndef ESB_LUAGLUE_TABLES_H
#define ESB_LUAGLUE_TABLES_H

#include <lua.h>

#include "engine/strv.h"

enum esb_lua_vec {
  ESB_LUA_VEC_OK,
  ESB_LUA_VEC_BAD,    /* an element (or name) was not a string without NUL bytes */
  ESB_LUA_VEC_NOMEM,
};

/* The string at idx if it is a string without NUL bytes, else NULL. */
const char *esb_lua_plain_string(lua_State *L, int idx);

/* Appends the elements 1..#t of the table at idx, which must hold nothing
 * else (ESB_LUA_VEC_BAD: an object, or names beside the items). */
enum esb_lua_vec esb_lua_array_to_strv(lua_State *L, int idx, struct esb_strv *sv);

/* Appends "NAME=value" for every pair of the table at idx; names must be
 * non-empty and without '='. The order is the table's. */
enum esb_lua_vec esb_lua_map_to_strv(lua_State *L, int idx, struct esb_strv *sv);

#endif
