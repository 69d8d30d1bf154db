#include "engine/contract/limits.h"

#include "engine/contract/request.h"

const struct esb_limit_field esb_limit_fields[ESB_LIMIT__COUNT] = {
#define ESB_LIMIT(id, kind, key, plan_key, request_member, plan_member, flag, minimum, default_value, doc, help) \
  [ESB_LIMIT_##id] = { key, plan_key, ESB_LIMIT_IS_##kind, offsetof(struct esb_limits, request_member), flag, \
                       minimum, default_value, doc },
#include "engine/contract/limits.def"
#undef ESB_LIMIT
};

/* A member's type is what its kind says: the readers write through these
 * offsets. */
#define ESB_LIMIT(id, kind, key, plan_key, request_member, ...) \
  _Static_assert(sizeof(((struct esb_limits *)0)->request_member) == \
                 (ESB_LIMIT_IS_##kind == ESB_LIMIT_IS_BOOL ? sizeof(int) : sizeof(uint64_t)), \
                 "struct esb_limits." #request_member ": not the type its kind says");
#include "engine/contract/limits.def"
#undef ESB_LIMIT
