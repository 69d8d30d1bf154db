/* The policy VM: a Lua 5.4 state built for policy code and nothing else.
 *
 * Libraries: base (no dofile/loadfile; load takes text only), package (Lua
 * modules from our lua/ dir only, no C loaders), string, table, math, utf8,
 * and cjson preloaded, as are the engine's own modules, compiled into the
 * binary (luaglue/embedded.h). print writes to stderr.
 *
 * Every call into it (esb_vm_call) runs under an instruction budget, a
 * wall-clock limit and a memory cap. Once one is exceeded, a count hook
 * raises an error at every instruction, so a policy's own pcall cannot
 * swallow the stop; the call then fails with a message saying which limit. */
#ifndef ESB_POLICY_VM_H
#define ESB_POLICY_VM_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "engine/error.h"

struct esb_vm_limits {
  uint64_t instructions;  /* per call */
  uint64_t wall_ms;       /* per call */
  size_t memory_bytes;    /* for the whole VM */
};

#define ESB_VM_LIMITS_DEFAULT { .instructions = 50000000, .wall_ms = 1000, .memory_bytes = 64u << 20 }

struct esb_vm;

/* NULL with err filled on failure. lua_dir: where require finds our modules. */
struct esb_vm *esb_vm_open(const char *lua_dir, struct esb_vm_limits limits, struct esb_error *err);
void esb_vm_close(struct esb_vm *vm);
lua_State *esb_vm_state(struct esb_vm *vm);

/* Calls the function below nargs arguments on the stack through
 * esb_lua_pcall (a traceback: the policy's author reads it) under the
 * limits. On failure returns -1, leaves nothing of the call on the stack and
 * fills err (ESB_E_POLICY) with "<what>: <message>", the limit that stopped
 * it first. */
int esb_vm_call(struct esb_vm *vm, int nargs, int nresults, const char *what, struct esb_error *err);

#endif
