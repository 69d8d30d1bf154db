#ifndef ESB_CODEC_POD_STATUS_H
#define ESB_CODEC_POD_STATUS_H

#include "backend/pod_status.h"

/* An esb_pod_status_parser built on cjson, in a Lua state of its own. */
int esb_lua_parse_pod_status(const char *json, size_t len, struct esb_pod_status *out);

#endif
