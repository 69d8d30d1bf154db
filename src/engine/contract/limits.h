/* The request's limits as data: one row each, from engine/contract/limits.def
 * (the one place a limit is defined; its header says who reads it). The
 * readers and printers above loop over esb_limit_fields instead of naming
 * each limit; the plan's side (where struct esb_plan keeps each limit) is
 * the policy layer's, which knows the plan (policy/plan_reader.h). */
#ifndef ESB_ENGINE_CONTRACT_LIMITS_H
#define ESB_ENGINE_CONTRACT_LIMITS_H

#include <stddef.h>
#include <stdint.h>

/* What a limit's value is. */
enum esb_limit_kind {
  ESB_LIMIT_IS_UINT, /* an integer >= its minimum; uint64_t in C, 0: not given */
  ESB_LIMIT_IS_CPU,  /* cores (0.5) or a quantity ("500m"): millicores in C, uint64_t */
  ESB_LIMIT_IS_BOOL, /* a switch: an int in the request (-1: not given), a bool in the plan */
};

enum esb_limit_id {
#define ESB_LIMIT(id, ...) ESB_LIMIT_##id,
#include "engine/contract/limits.def"
#undef ESB_LIMIT
  ESB_LIMIT__COUNT
};

struct esb_limit_field {
  const char *key;         /* the request's name: limits.KEY */
  const char *plan_key;    /* the policy's name, in req.limits and plan.limits */
  enum esb_limit_kind kind;
  size_t request_offset;   /* of its member in struct esb_limits */
  const char *flag;        /* the CLI's flag, "--memory" */
  uint64_t minimum;        /* a request's least value (UINT) */
  uint64_t default_value;  /* the plan's when the policy's plan leaves it out; 0: none */
  const char *doc;         /* one line */
};

/* In the order of limits.def, indexed by enum esb_limit_id. */
extern const struct esb_limit_field esb_limit_fields[ESB_LIMIT__COUNT];

#endif
