/* The engine's own Lua modules (lua/echo_sandbox/...), compiled to bytecode
 * at build time by src/policy/precompile.lua. The policy VM preloads them, so
 * `require "echo_sandbox.quantity"` and the like never parse source at run
 * time. The table ends with an entry whose name is NULL. */
#ifndef ESB_POLICY_EMBEDDED_H
#define ESB_POLICY_EMBEDDED_H

#include <stddef.h>

struct esb_embedded_module {
  const char *name;             /* "echo_sandbox.policy.default" */
  const char *chunk_name;       /* "@echo_sandbox/policy/default.lua" */
  const unsigned char *bytecode;
  size_t size;
};

extern const struct esb_embedded_module esb_embedded_modules[];

#endif
