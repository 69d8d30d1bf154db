/* Lua values for the unit tests of the Lua glue, written as Lua
 * expressions. */
#ifndef ESB_TESTS_LUA_EXPR_H
#define ESB_TESTS_LUA_EXPR_H

#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>

#include "tap.h"

/* Pushes the value of a Lua expression; `null` stands for cjson.null (a
 * NULL light userdata). */
static void push(lua_State *L, const char *expr) {
  char chunk[2048];
  snprintf(chunk, sizeof chunk, "local null = ...; return %s", expr);
  if (luaL_loadstring(L, chunk) != LUA_OK) {
    printf("# %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_pushlightuserdata(L, NULL);
  lua_call(L, 1, 1);
}

/* A check that the Lua expression is true (globals set by the test in it). */
static inline void holds(lua_State *L, const char *expr, const char *what) {
  push(L, expr);
  ok(lua_toboolean(L, -1), what);
  lua_pop(L, 1);
}

#endif
