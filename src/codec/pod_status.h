#ifndef ESB_CODEC_POD_STATUS_H
#define ESB_CODEC_POD_STATUS_H

#include "backend/pod_status.h"

/* An esb_pod_status_parser built on cjson, in a Lua state of its own. */
int esb_lua_parse_pod_status(const char *json, size_t len, struct esb_pod_status *out);

/* An esb_warm_list_parser (backend/k8s.h): the warm pods of a PodList as
 * the lines of the warm list's jsonpath (kube.warm_pod_lines), malloc'd;
 * NULL where the document is not JSON or memory ran out. */
char *esb_lua_warm_pod_lines(const char *json, size_t len, size_t *out_len);

#endif
