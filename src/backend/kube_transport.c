/* The API client's wire (backend/kube_transport.h). */
#include "backend/kube_transport.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <http_parser.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "engine/fileio.h"
#include "engine/runtime/clock.h"

int esb_kube_conn_fail(struct esb_kube_conn *c, const char *what) {
  unsigned long e = ERR_get_error();
  if (e)
    snprintf(c->r->err, sizeof c->r->err, "%s: %s", what, ERR_reason_error_string(e));
  else
    snprintf(c->r->err, sizeof c->r->err, "%s%s%s", what, errno ? ": " : "", errno ? strerror(errno) : "");
  ERR_clear_error();
  return -1;
}

/* Waits for fd to be ready for events before the deadline. */
int esb_kube_conn_wait(struct esb_kube_conn *c, short events) {
  uint64_t now = esb_now_ns();
  if (now >= c->deadline_ns) {
    errno = ETIMEDOUT;
    return -1;
  }
  struct pollfd p = { .fd = c->fd, .events = events };
  int n = poll(&p, 1, (int)((c->deadline_ns - now) / 1000000 + 1));
  if (n == 0)
    errno = ETIMEDOUT;
  return n > 0 ? 0 : -1;
}

static int connect_to(struct esb_kube_conn *c, const struct esb_kube_api *api) {
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
  int rc = getaddrinfo(api->host, api->port, &hints, &res);
  if (rc) {
    snprintf(c->r->err, sizeof c->r->err, "resolving %.64s: %s", api->host, gai_strerror(rc));
    return -1;
  }
  errno = 0;
  for (struct addrinfo *a = res; a && c->fd < 0; a = a->ai_next) {
    c->fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (c->fd < 0)
      continue;
    int err = 0;
    socklen_t el = sizeof err;
    if ((connect(c->fd, a->ai_addr, a->ai_addrlen) < 0 && (errno != EINPROGRESS || esb_kube_conn_wait(c, POLLOUT) < 0)) ||
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || (err && (errno = err))) {
      close(c->fd);
      c->fd = -1;
    }
  }
  freeaddrinfo(res);
  return c->fd < 0 ? esb_kube_conn_fail(c, "connecting to the API server") : 0;
}

/* The client certificate and key, from files or from the kubeconfig's data. */
static int load_identity(SSL_CTX *ctx, const struct esb_kube_api *api) {
  if (api->cert_file && SSL_CTX_use_certificate_chain_file(ctx, api->cert_file) != 1)
    return -1;
  if (api->key_file && SSL_CTX_use_PrivateKey_file(ctx, api->key_file, SSL_FILETYPE_PEM) != 1)
    return -1;
  BIO *b = api->cert_pem ? BIO_new_mem_buf(api->cert_pem, -1) : NULL;
  X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
  int rc = api->cert_pem && (!x || SSL_CTX_use_certificate(ctx, x) != 1) ? -1 : 0;
  X509 *more;
  while (rc == 0 && b && (more = PEM_read_bio_X509(b, NULL, NULL, NULL)))
    if (SSL_CTX_add_extra_chain_cert(ctx, more) != 1) { /* the context owns it once added */
      X509_free(more);
      rc = -1;
    }
  ERR_clear_error(); /* the end of the chain */
  X509_free(x);
  BIO_free(b);
  b = api->key_pem ? BIO_new_mem_buf(api->key_pem, -1) : NULL;
  EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
  if (rc == 0 && api->key_pem && (!k || SSL_CTX_use_PrivateKey(ctx, k) != 1))
    rc = -1;
  EVP_PKEY_free(k);
  BIO_free(b);
  return rc;
}

/* The cluster's CA: its file or data, else the system's roots (as kubectl). */
static int load_ca(SSL_CTX *ctx, const struct esb_kube_api *api) {
  if (api->ca_file)
    return SSL_CTX_load_verify_locations(ctx, api->ca_file, NULL) == 1 ? 0 : -1;
  if (!api->ca_pem)
    return SSL_CTX_set_default_verify_paths(ctx) == 1 ? 0 : -1;
  BIO *b = BIO_new_mem_buf(api->ca_pem, -1);
  X509_STORE *store = SSL_CTX_get_cert_store(ctx);
  int added = 0;
  for (X509 *x; b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)); X509_free(x))
    added += X509_STORE_add_cert(store, x) == 1;
  ERR_clear_error();
  BIO_free(b);
  return added ? 0 : -1;
}

static int handshake_tls(struct esb_kube_conn *c, const struct esb_kube_api *api) {
  const char *name = api->server_name ? api->server_name : api->host;
  unsigned char ip[16];
  bool is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
  if (!(c->ctx = SSL_CTX_new(TLS_client_method())) || SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION) != 1)
    return esb_kube_conn_fail(c, "TLS");
  SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
  if (load_ca(c->ctx, api) < 0)
    return esb_kube_conn_fail(c, "loading the cluster's CA");
  if (load_identity(c->ctx, api) < 0)
    return esb_kube_conn_fail(c, "loading the client certificate");
  if (!(c->ssl = SSL_new(c->ctx)) || SSL_set_fd(c->ssl, c->fd) != 1 ||
      (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name) != 1
             : SSL_set1_host(c->ssl, name) != 1 || SSL_set_tlsext_host_name(c->ssl, name) != 1))
    return esb_kube_conn_fail(c, "TLS");
  for (int rc; (rc = SSL_connect(c->ssl)) != 1;) {
    int e = SSL_get_error(c->ssl, rc);
    if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
        esb_kube_conn_wait(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT) < 0)
      return esb_kube_conn_fail(c, "the TLS handshake with the API server");
  }
  return 0;
}

int esb_kube_conn_send(struct esb_kube_conn *c, const char *data, size_t len) {
  while (len) {
    ssize_t n;
    if (c->ssl) {
      size_t w = 0;
      int rc = SSL_write_ex(c->ssl, data, len, &w), e = rc == 1 ? 0 : SSL_get_error(c->ssl, rc);
      if (e && ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
                esb_kube_conn_wait(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT) < 0))
        return esb_kube_conn_fail(c, "sending the request");
      n = (ssize_t)w;
    } else if ((n = send(c->fd, data, len, MSG_NOSIGNAL)) < 0) {
      if (errno != EAGAIN || esb_kube_conn_wait(c, POLLOUT) < 0)
        return esb_kube_conn_fail(c, "sending the request");
      n = 0;
    }
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Up to n bytes of the answer: their count, 0 at its end, -1 on an error. */
ssize_t esb_kube_conn_receive(struct esb_kube_conn *c, char *buf, size_t n) {
  for (;;) {
    if (c->ssl) {
      size_t got = 0;
      int rc = SSL_read_ex(c->ssl, buf, n, &got), e = rc == 1 ? 0 : SSL_get_error(c->ssl, rc);
      if (!e)
        return (ssize_t)got;
      if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
      if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
          esb_kube_conn_wait(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT) < 0)
        return esb_kube_conn_fail(c, "reading the answer");
      continue;
    }
    ssize_t got = recv(c->fd, buf, n, 0);
    if (got >= 0)
      return got;
    if (errno != EAGAIN || esb_kube_conn_wait(c, POLLIN) < 0)
      return esb_kube_conn_fail(c, "reading the answer");
  }
}

#define REPLY_MAX (16u << 20)

struct reading {
  struct esb_kube_reply *r;
  bool complete, too_big;
};

int esb_kube_reply_append(struct esb_kube_reply *r, const char *at, size_t len) {
  char *grown = realloc(r->body, r->len + len + 1);
  if (!grown)
    return -1;
  memcpy(grown + r->len, at, len);
  r->len += len;
  grown[r->len] = '\0';
  r->body = grown;
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  struct reading *rd = p->data;
  struct esb_kube_reply *r = rd->r;
  if (r->len + len > REPLY_MAX) {
    rd->too_big = true;
    return -1;
  }
  return esb_kube_reply_append(r, at, len);
}

static int on_complete(http_parser *p) {
  ((struct reading *)p->data)->complete = true;
  return 0;
}

static int read_answer(struct esb_kube_conn *c) {
  static const http_parser_settings settings = { .on_body = on_body, .on_message_complete = on_complete };
  struct reading rd = { .r = c->r };
  http_parser p;
  http_parser_init(&p, HTTP_RESPONSE);
  p.data = &rd;
  char buf[16384];
  while (!rd.complete) {
    ssize_t n = esb_kube_conn_receive(c, buf, sizeof buf);
    if (n < 0)
      return -1;
    size_t used = http_parser_execute(&p, &settings, buf, (size_t)n);
    if (p.http_errno != HPE_OK && !rd.complete) {
      snprintf(c->r->err, sizeof c->r->err, "%s", rd.too_big ? "the answer is too long" : "a malformed answer");
      return -1;
    }
    if (n == 0 || used < (size_t)n)
      break;
  }
  if (!rd.complete) {
    snprintf(c->r->err, sizeof c->r->err, "the connection ended before the answer did");
    return -1;
  }
  c->r->code = (int)p.status_code;
  return 0;
}

/* The bearer token: the kubeconfig's, or its file's (read each time, as
 * kubectl does, for a token that is rotated). */
char *esb_kube_bearer(const struct esb_kube_api *api) {
  if (api->token)
    return strdup(api->token);
  if (!api->token_file)
    return NULL;
  size_t n = 0;
  char *t = esb_read_file(api->token_file, &n);
  while (t && n && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' '))
    t[--n] = '\0';
  return t;
}

int esb_kube_conn_open(struct esb_kube_conn *c, const struct esb_kube_api *api) {
  return connect_to(c, api) == 0 && (!api->tls || handshake_tls(c, api) == 0) ? 0 : -1;
}

void esb_kube_conn_close(struct esb_kube_conn *c) {
  if (c->ssl)
    SSL_free(c->ssl);
  SSL_CTX_free(c->ctx);
  if (c->fd >= 0)
    close(c->fd);
  c->ssl = NULL;
  c->ctx = NULL;
  c->fd = -1;
}

int esb_kube_transport_request(const struct esb_kube_api *api, const char *method, const char *path,
                         const char *content_type, const char *body, uint64_t timeout_ms, struct esb_kube_reply *r) {
  *r = (struct esb_kube_reply){ 0 };
  struct esb_kube_conn c = { .fd = -1, .deadline_ns = esb_now_ns() + timeout_ms * 1000000ull, .r = r };
  char *token = esb_kube_bearer(api), *req = NULL;
  bool v6 = strchr(api->host, ':') != NULL;
  int n = asprintf(&req, "%s %s%s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: echo-sandbox\r\n"
                   "Accept: application/json\r\nConnection: close\r\n%s%s%s%s%s%s%s%zu%s\r\n%s",
                   method, api->base_path, path, v6 ? "[" : "", api->host, v6 ? "]" : "", api->port,
                   token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "",
                   content_type ? "Content-Type: " : "", content_type ? content_type : "",
                   content_type ? "\r\n" : "", "Content-Length: ", body ? strlen(body) : 0, "\r\n",
                   body ? body : "");
  if (token)
    OPENSSL_cleanse(token, strlen(token));
  free(token);
  int rc = -1;
  if (n < 0)
    snprintf(r->err, sizeof r->err, "out of memory");
  else if (esb_kube_conn_open(&c, api) == 0 && esb_kube_conn_send(&c, req, (size_t)n) == 0 && read_answer(&c) == 0)
    rc = 0;
  if (n >= 0)
    OPENSSL_cleanse(req, (size_t)n);
  free(req);
  esb_kube_conn_close(&c);
  if (rc < 0) {
    free(r->body);
    r->body = NULL;
    r->len = 0;
  }
  return rc;
}
