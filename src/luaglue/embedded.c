#include "luaglue/embedded.h"

#include <string.h>

#include <lauxlib.h>

/* Registry key of the table of the modules this state has loaded. */
static const char loaded_key[] = "esb.embedded";

const struct esb_embedded_module *esb_lua_embedded_find(const char *name) {
  for (const struct esb_embedded_module *m = esb_embedded_modules; m->name; m++)
    if (strcmp(m->name, name) == 0)
      return m;
  return NULL;
}

void esb_lua_embedded_load(lua_State *L, const struct esb_embedded_module *m) {
  /* Bytecode from our own binary only: "b" refuses anything else. */
  if (luaL_loadbufferx(L, (const char *)m->bytecode, m->size, m->chunk_name, "b") != LUA_OK)
    lua_error(L);                              /* chunk */
  lua_pushstring(L, m->name);
  lua_pushliteral(L, ":embedded:");            /* chunk, name, ":embedded:" */
  lua_call(L, 2, 1);                           /* module */
}

void esb_lua_embedded_require(lua_State *L, const char *name) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, loaded_key); /* LOADED */
  if (lua_getfield(L, -1, name) != LUA_TNIL) {       /* LOADED, LOADED[name] */
    lua_remove(L, -2);                                /* module */
    return;
  }
  lua_pop(L, 1);                                      /* LOADED */
  const struct esb_embedded_module *m = esb_lua_embedded_find(name);
  if (!m)
    luaL_error(L, "no embedded module '%s'", name);
  esb_lua_embedded_load(L, m);                        /* LOADED, module */
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, name);                          /* LOADED, module */
  lua_remove(L, -2);                                  /* module */
}
