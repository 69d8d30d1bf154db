/* The wire of the API client of warm runs (backend/kube_api.h): one
 * request, one connection (HTTP/1.1, Connection: close), TLS where the
 * server is https (OpenSSL: the cluster's CA, the host name verified, a
 * client certificate or a bearer token), the answer read by http-parser;
 * and the exec into a pod over WebSocket (backend/kube_exec.h), on a
 * connection opened the same way.
 *
 * It runs in echo-sandbox-kube (backend/kube_main.c), a process of its own
 * for each request, so that the engine (the CLI, the daemon) links neither
 * library: OpenSSL's static archive made every CLI start 0.2-0.4 ms longer
 * (its relocations and its CPU probe), local runs included. */
#ifndef ESB_BACKEND_KUBE_TRANSPORT_H
#define ESB_BACKEND_KUBE_TRANSPORT_H

#include <sys/types.h>

#include <openssl/ssl.h>

#include "backend/kube_api.h"
#include "backend/kube_exec.h"

/* As esb_kube_api_request says, in this process. */
int esb_kube_transport_request(const struct esb_kube_api *api, const char *method, const char *path,
                               const char *content_type, const char *body, uint64_t timeout_ms,
                               struct esb_kube_reply *r);

/* The exec of path (pods/NAME/exec and its query) over WebSocket
 * (kube_exec.h): stdin's bytes to the command, pending first (what was
 * read of stdin with the request), its stdout and stderr to ours. Connects
 * and upgrades within timeout_ms; then runs as long as the command does
 * (the engine's deadline ends this process). *w: how it ended. */
void esb_kube_transport_exec(const struct esb_kube_api *api, const char *path, uint64_t timeout_ms,
                             const char *pending, size_t pending_len, struct esb_kube_exec_word *w);

/* A connection to the API server: its socket (non-blocking), TLS where
 * the server is https. Its blocking calls wait until deadline_ns at most;
 * a failure's words go to r->err. */
struct esb_kube_conn {
  int fd;
  SSL_CTX *ctx;
  SSL *ssl;
  uint64_t deadline_ns;
  struct esb_kube_reply *r;
};

/* Connects (and does the TLS handshake, the server's certificate
 * verified): 0, or -1 with r->err. c->fd is -1 before. */
int esb_kube_conn_open(struct esb_kube_conn *c, const struct esb_kube_api *api);
void esb_kube_conn_close(struct esb_kube_conn *c);
/* All of data: 0, or -1 with r->err. */
int esb_kube_conn_send(struct esb_kube_conn *c, const char *data, size_t len);
/* Up to n bytes: their count, 0 at the end, -1 on an error. */
ssize_t esb_kube_conn_receive(struct esb_kube_conn *c, char *buf, size_t n);
/* Waits for the socket to be ready for events before the deadline: 0, or -1. */
int esb_kube_conn_wait(struct esb_kube_conn *c, short events);
/* r->err: what failed, with OpenSSL's or errno's word; -1. */
int esb_kube_conn_fail(struct esb_kube_conn *c, const char *what);
/* len bytes more of r's body, kept NUL-terminated: 0, or -1 out of memory. */
int esb_kube_reply_append(struct esb_kube_reply *r, const char *at, size_t len);
/* The bearer token: the kubeconfig's, or its file's (read each time, as
 * kubectl does, for a token that is rotated); malloc'd, NULL where none. */
char *esb_kube_bearer(const struct esb_kube_api *api);

#endif
