/* The engine's own Lua modules (lua/echo_sandbox/...), compiled to bytecode
 * at build time by src/luaglue/precompile.lua. The policy VM preloads them,
 * so `require "echo_sandbox.quantity"` and the like never parse source at run
 * time; the front end's states (codec/json.h) load the ones they run. The
 * table ends with an entry whose name is NULL. */
#ifndef ESB_LUAGLUE_EMBEDDED_H
#define ESB_LUAGLUE_EMBEDDED_H

#include <stddef.h>

#include <lua.h>

struct esb_embedded_module {
  const char *name;             /* "echo_sandbox.policy.default" */
  const char *chunk_name;       /* "@echo_sandbox/policy/default.lua" */
  const unsigned char *bytecode;
  size_t size;
};

extern const struct esb_embedded_module esb_embedded_modules[];

/* The module called name; NULL when there is none. */
const struct esb_embedded_module *esb_lua_embedded_find(const char *name);

/* Runs the module's chunk as require would (with its name and ":embedded:")
 * and pushes what it returned. Raises on error. [-0, +1, e] */
void esb_lua_embedded_load(lua_State *L, const struct esb_embedded_module *m);

/* The module called name, from package.loaded-like registry table of the
 * state (loaded once per state). Raises on error, or when there is no such
 * module. [-0, +1, e] */
void esb_lua_embedded_require(lua_State *L, const char *name);

#endif
