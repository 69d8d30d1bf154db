/* The wire of the API client of warm runs (backend/kube_api.h): one
 * request, one connection (HTTP/1.1, Connection: close), TLS where the
 * server is https (OpenSSL: the cluster's CA, the host name verified, a
 * client certificate or a bearer token), the answer read by http-parser.
 *
 * It runs in echo-sandbox-kube (backend/kube_main.c), a process of its own
 * for each request, so that the engine (the CLI, the daemon) links neither
 * library: OpenSSL's static archive made every CLI start 0.2-0.4 ms longer
 * (its relocations and its CPU probe), local runs included. */
#ifndef ESB_BACKEND_KUBE_TRANSPORT_H
#define ESB_BACKEND_KUBE_TRANSPORT_H

#include "backend/kube_api.h"

/* As esb_kube_api_request says, in this process. */
int esb_kube_transport_request(const struct esb_kube_api *api, const char *method, const char *path,
                               const char *content_type, const char *body, uint64_t timeout_ms,
                               struct esb_kube_reply *r);

#endif
