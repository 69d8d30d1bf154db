/* lua-cjson's entry point. Debian's lua-cjson-dev ships the library and its
 * pkg-config file but no header: this is the one declaration. */
#ifndef ESB_LUAGLUE_CJSON_H
#define ESB_LUAGLUE_CJSON_H

#include <lua.h>

int luaopen_cjson(lua_State *L);

#endif
