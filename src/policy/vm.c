#include "policy/vm.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "engine/runtime/clock.h"
#include "engine/contract/result.h"
#include "luaglue/call.h"
#include "luaglue/cjson.h"
#include "luaglue/embedded.h"


#define HOOK_EVERY 1000

struct esb_vm {
  lua_State *L;
  struct esb_vm_limits limits;
  size_t memory_used;
  /* the budget of the call in progress */
  uint64_t instructions_left, deadline_ns;
  const char *stopped; /* the limit that stopped the call, NULL while none */
};

static void hook(lua_State *L, lua_Debug *ar);

static void stop(struct esb_vm *vm, const char *why) {
  if (!vm->stopped) {
    vm->stopped = why;
    /* From now on every instruction raises, in every pcall the policy has. */
    lua_sethook(vm->L, hook, LUA_MASKCOUNT, 1);
  }
}

static void hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  struct esb_vm *vm = *(struct esb_vm **)lua_getextraspace(L);
  if (!vm->stopped) {
    if (vm->instructions_left <= HOOK_EVERY)
      stop(vm, "instruction budget exceeded");
    else if (esb_now_ns() > vm->deadline_ns)
      stop(vm, "time limit exceeded");
    else
      vm->instructions_left -= HOOK_EVERY;
  }
  if (vm->stopped)
    luaL_error(L, "policy stopped: %s", vm->stopped);
}

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  struct esb_vm *vm = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    vm->memory_used -= old;
    return NULL;
  }
  if (nsize > old && vm->memory_used + (nsize - old) > vm->limits.memory_bytes) {
    if (vm->L) /* not while the state itself is being made */
      stop(vm, "memory cap exceeded");
    return NULL;
  }
  void *p = realloc(ptr, nsize);
  if (p)
    vm->memory_used = vm->memory_used - old + nsize;
  return p;
}

/* print() writes to stderr: stdout belongs to results. */
static int policy_print(lua_State *L) {
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "policy:");
  for (int i = 1; i <= n; i++) {
    luaL_addchar(&b, i == 1 ? ' ' : '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  fputs(lua_tostring(L, -1), stderr);
  return 0;
}

/* What a policy gets, as data (Redis keeps its scripting allow-lists so):
 * the libraries opened below, and of the base library and package only
 * these names. Not there: dofile, loadfile (files), collectgarbage (the
 * VM's memory is the engine's to manage), warn, package.loadlib and
 * package.cpath (native code). */
static const char *const allowed_globals[] = {
  "_G", "_VERSION", "assert", "error", "getmetatable", "ipairs", "load", "next", "pairs", "pcall", "print",
  "rawequal", "rawget", "rawlen", "rawset", "require", "select", "setmetatable", "tonumber", "tostring", "type",
  "xpcall", LUA_LOADLIBNAME, LUA_STRLIBNAME, LUA_TABLIBNAME, LUA_MATHLIBNAME, LUA_UTF8LIBNAME, NULL };
static const char *const allowed_package[] = {
  "config", "loaded", "path", "preload", "searchers", "searchpath", NULL };

static bool allowed(const char *const *list, const char *name) {
  for (; *list; list++)
    if (strcmp(*list, name) == 0)
      return true;
  return false;
}

/* Clears every field of the table at idx whose name is not in list (clearing
 * existing fields during a traversal is allowed). */
static void keep_only(lua_State *L, int idx, const char *const *list) {
  idx = lua_absindex(L, idx);
  lua_pushnil(L);                                   /* key */
  while (lua_next(L, idx)) {                        /* key, value */
    lua_pop(L, 1);                                  /* key */
    if (lua_type(L, -1) != LUA_TSTRING || !allowed(list, lua_tostring(L, -1))) {
      lua_pushvalue(L, -1);                         /* key, key */
      lua_pushnil(L);                               /* key, key, nil */
      lua_rawset(L, idx);                           /* key */
    }
  }
}

/* load takes text only: bytecode could break out of the VM. The native
 * searchers go with package.cpath and loadlib. */
static const char *const prelude =
  "local load = load\n"
  "_G.load = function(chunk, name, mode, env)\n"
  "  return load(chunk, name, 't', env)\n"
  "end\n"
  "package.searchers[3], package.searchers[4] = nil, nil\n";

/* package.preload loader of an embedded module: upvalue 1 is its index in
 * esb_embedded_modules. */
static int load_embedded(lua_State *L) {
  esb_lua_embedded_load(L, &esb_embedded_modules[lua_tointeger(L, lua_upvalueindex(1))]);
  return 1;
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
  lua_pushglobaltable(L);                 /* _G */
  keep_only(L, -1, allowed_globals);
  lua_getfield(L, -1, LUA_LOADLIBNAME);   /* _G, package */
  keep_only(L, -1, allowed_package);
  lua_pop(L, 2);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_cjson);
  lua_setfield(L, -2, "cjson");
  for (lua_Integer i = 0; esb_embedded_modules[i].name; i++) {
    lua_pushinteger(L, i);
    lua_pushcclosure(L, load_embedded, 1);
    lua_setfield(L, -2, esb_embedded_modules[i].name);
  }
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", lua_dir, lua_dir);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  if (luaL_loadbufferx(L, prelude, strlen(prelude), "=prelude", "t") != LUA_OK)
    return lua_error(L);
  lua_call(L, 0, 0);
  return 0;
}

struct esb_vm *esb_vm_open(const char *lua_dir, struct esb_vm_limits limits, struct esb_error *err) {
  struct esb_vm *vm = calloc(1, sizeof *vm);
  if (!vm) {
    esb_error_set(err, ESB_E_SYSTEM, "policy VM: out of memory");
    return NULL;
  }
  vm->limits = limits;
  lua_State *L = lua_newstate(capped_alloc, vm);
  if (!L) {
    esb_error_set(err, ESB_E_SYSTEM, "policy VM: out of memory");
    free(vm);
    return NULL;
  }
  vm->L = L;
  *(struct esb_vm **)lua_getextraspace(L) = vm;
  lua_pushcfunction(L, open_libraries);
  lua_pushstring(L, lua_dir);
  if (esb_vm_call(vm, 1, 0, "policy VM", err) < 0) {
    esb_vm_close(vm);
    return NULL;
  }
  return vm;
}

void esb_vm_close(struct esb_vm *vm) {
  if (!vm)
    return;
  if (vm->L)
    lua_close(vm->L);
  free(vm);
}

lua_State *esb_vm_state(struct esb_vm *vm) {
  return vm->L;
}

int esb_vm_call(struct esb_vm *vm, int nargs, int nresults, const char *what, struct esb_error *err) {
  lua_State *L = vm->L;
  int base = lua_gettop(L) - nargs;            /* the function's index */
  vm->stopped = NULL;
  vm->instructions_left = vm->limits.instructions;
  vm->deadline_ns = esb_now_ns() + vm->limits.wall_ms * 1000000ull;
  lua_sethook(L, hook, LUA_MASKCOUNT, HOOK_EVERY);
  struct esb_error failed = ESB_ERROR_INIT;
  int rc = esb_lua_pcall(L, nargs, nresults, ESB_LUA_TRACEBACK, ESB_E_POLICY, NULL, &failed);
  const char *where = failed.message;
  lua_sethook(L, NULL, 0, 0);
  if (rc == 0 && !vm->stopped)
    return 0;                                  /* results */
  if (!vm->stopped)
    return esb_error_set(err, ESB_E_POLICY, "%s: %s", what, where);
  /* Whatever the code made of the error, the stop is what happened. */
  esb_error_set(err, ESB_E_POLICY, "%s: %s (limits: %llu instructions, %llu ms, %zu MiB)%s%s", what, vm->stopped,
                (unsigned long long)vm->limits.instructions, (unsigned long long)vm->limits.wall_ms,
                vm->limits.memory_bytes >> 20, rc ? "\n" : "", where);
  lua_settop(L, base - 1);                     /* -- */
  vm->stopped = NULL;
  lua_gc(L, LUA_GCCOLLECT);
  return -1;
}
