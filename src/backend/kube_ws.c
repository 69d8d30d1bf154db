/* The exec into a pod over WebSocket, in echo-sandbox-kube
 * (backend/kube_exec.h says what it presents; kube_transport.h the
 * connection): the upgrade of GET pods/NAME/exec to v5.channel.k8s.io,
 * then the engine's stdin to channel 0 and channels 1 and 2 to stdout and
 * stderr, until the API server's status (channel 3) and its close.
 *
 * One loop polls the socket, and stdin only while nothing is left to send:
 * the socket is always read, so a command that writes much while it reads
 * much never waits on this side (a client that stopped reading while it
 * sent would hold the server's relay of stdout, and with it the command's
 * stdin). What comes is written out as it comes, never held whole. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <http_parser.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "backend/kube_exec.h"
#include "backend/kube_transport.h"
#include "engine/fileio.h"
#include "engine/runtime/clock.h"
#include "engine/text.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define STATUS_MAX (64u << 10)
#define CHUNK (32u << 10)

/* ---- the upgrade ---------------------------------------------------------- */

/* The answer to the upgrade: its two headers of interest, or the body of a
 * refusal. */
struct head {
  char accept[64], protocol[64];
  char field[40];
  size_t field_len;
  char *value;              /* the header being read: accept, protocol, or NULL */
  bool in_value;
  bool complete;
  struct esb_kube_reply *r;
};

static void append(char *dst, size_t size, const char *at, size_t len) {
  size_t have = strlen(dst);
  if (have + len < size) {
    memcpy(dst + have, at, len);
    dst[have + len] = '\0';
  }
}

static int on_field(http_parser *p, const char *at, size_t len) {
  struct head *h = p->data;
  if (h->in_value)
    h->field_len = 0;
  h->in_value = false;
  if (h->field_len + len < sizeof h->field) {
    memcpy(h->field + h->field_len, at, len);
    h->field_len += len;
  }
  h->field[h->field_len] = '\0';
  return 0;
}

static int on_value(http_parser *p, const char *at, size_t len) {
  struct head *h = p->data;
  if (!h->in_value) {
    h->in_value = true;
    h->value = strcasecmp(h->field, "Sec-WebSocket-Accept") == 0     ? h->accept
               : strcasecmp(h->field, "Sec-WebSocket-Protocol") == 0 ? h->protocol
                                                                     : NULL;
  }
  if (h->value)
    append(h->value, sizeof h->accept, at, len);
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  struct esb_kube_reply *r = ((struct head *)p->data)->r;
  if (r->len + len > STATUS_MAX)
    return 0; /* a refusal's words: the first of them are enough */
  return esb_kube_reply_append(r, at, len);
}

static int on_complete(http_parser *p) {
  ((struct head *)p->data)->complete = true;
  return 0;
}

/* The upgrade request of path, its key (base64 of 16 random bytes) in key. */
static char *upgrade_request(const struct esb_kube_api *api, const char *path, char key[32], int *n) {
  unsigned char nonce[16];
  if (RAND_bytes(nonce, sizeof nonce) != 1)
    return NULL;
  esb_base64_encode((const char *)nonce, sizeof nonce, key);
  key[esb_base64_length(sizeof nonce)] = '\0';
  char *token = esb_kube_bearer(api), *req = NULL;
  bool v6 = strchr(api->host, ':') != NULL;
  *n = asprintf(&req, "GET %s%s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: echo-sandbox\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Protocol: " ESB_KUBE_EXEC_PROTOCOL "\r\n%s%s%s\r\n",
                api->base_path, path, v6 ? "[" : "", api->host, v6 ? "]" : "", api->port, key,
                token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "");
  if (token)
    OPENSSL_cleanse(token, strlen(token));
  free(token);
  return *n < 0 ? NULL : req;
}

/* Whether accept is the server's proof for key (RFC 6455 4.2.2). */
static bool accepted(const char *key, const char *accept) {
  char text[96], want[32];
  unsigned char digest[SHA_DIGEST_LENGTH];
  int n = snprintf(text, sizeof text, "%s" WS_GUID, key);
  SHA1((const unsigned char *)text, (size_t)n, digest);
  esb_base64_encode((const char *)digest, sizeof digest, want);
  want[esb_base64_length(sizeof digest)] = '\0';
  return strcmp(want, accept) == 0;
}

/* What a refusal of the upgrade means: the command did not run. */
static void refused(const struct head *h, int code, struct esb_kube_exec_word *w) {
  struct esb_kube_reply *r = h->r;
  r->code = code; /* a Status without its reason is named by it (esb_kube_api_said) */
  if (code == 401) {
    w->end = ESB_KUBE_EXEC_UNAUTHORIZED;
    snprintf(w->said, sizeof w->said, "the API server refused the credentials (401)");
  } else if (code == 101) {
    /* switched, but not to the one protocol offered: a server that
     * ignores the offer may have started the command, which kubectl would
     * then start again */
    w->end = ESB_KUBE_EXEC_ERROR;
    if (strcmp(h->protocol, ESB_KUBE_EXEC_PROTOCOL) == 0) /* http_parser: no Upgrade, Connection: upgrade */
      snprintf(w->said, sizeof w->said, "error: the API server switched the exec's protocol without the "
               "headers of a WebSocket upgrade (the command may have started)");
    else
      snprintf(w->said, sizeof w->said, "error: the API server upgraded the exec to \"%s\", not the "
               ESB_KUBE_EXEC_PROTOCOL " offered (the command may have started)", h->protocol);
  } else if ((!r->body || !strstr(r->body, "\"Status\"")) && code >= 400 && code < 500) {
    /* a refusal that is not the API's (a server that does not take
     * WebSocket or v5: x/net/websocket's plain 403; a proxy's 4xx, which
     * says the request went no further): kubectl, as client-go falls back
     * to SPDY at a failed upgrade */
    w->end = ESB_KUBE_EXEC_KUBECTL;
    snprintf(w->said, sizeof w->said, "the API server refused the WebSocket upgrade (HTTP %d)", code);
  } else if (!r->body || !strstr(r->body, "\"Status\"")) {
    /* any other answer that is not the API's (a proxy's 502 or 504 once
     * it gave up waiting on an exec it had passed on): the command may have
     * started, and kubectl would start it again */
    w->end = ESB_KUBE_EXEC_ERROR;
    snprintf(w->said, sizeof w->said, "error: the exec's upgrade was answered HTTP %d, not by the API server "
             "(the command may have started)", code);
  } else {
    w->end = ESB_KUBE_EXEC_ERROR;
    esb_kube_api_said(r, w->said, sizeof w->said);
  }
}

/* Sends the upgrade and reads its answer. Returns 1 where the exec is
 * upgraded (its first frames' bytes, read with the answer, in *rest), 0
 * where it was refused or failed (w says how). */
static int upgrade(struct esb_kube_conn *c, const struct esb_kube_api *api, const char *path, char *buf,
                   size_t size, size_t *rest_at, size_t *rest_len, struct esb_kube_exec_word *w) {
  static const http_parser_settings settings = { .on_header_field = on_field, .on_header_value = on_value,
                                                 .on_body = on_body, .on_message_complete = on_complete };
  char key[32];
  int n = 0;
  char *req = upgrade_request(api, path, key, &n);
  int sent = req ? esb_kube_conn_send(c, req, (size_t)n) : -1;
  if (req)
    OPENSSL_cleanse(req, (size_t)n);
  free(req);
  w->end = ESB_KUBE_EXEC_ERROR;
  if (sent < 0) {
    snprintf(w->said, sizeof w->said, "error: %s", c->r->err[0] ? c->r->err : "out of memory");
    return 0;
  }
  struct head h = { .r = c->r };
  http_parser p;
  http_parser_init(&p, HTTP_RESPONSE);
  p.data = &h;
  for (;;) {
    ssize_t got = esb_kube_conn_receive(c, buf, size);
    if (got < 0) {
      snprintf(w->said, sizeof w->said, "error: %s", c->r->err);
      return 0;
    }
    size_t used = http_parser_execute(&p, &settings, buf, (size_t)got);
    if (p.upgrade && h.complete) {
      if (p.status_code != 101 || strcmp(h.protocol, ESB_KUBE_EXEC_PROTOCOL) != 0) {
        refused(&h, (int)p.status_code, w);
        return 0;
      }
      if (!accepted(key, h.accept)) {
        snprintf(w->said, sizeof w->said, "error: the API server's WebSocket upgrade has a wrong "
                 "Sec-WebSocket-Accept");
        return 0;
      }
      *rest_at = used;
      *rest_len = (size_t)got - used;
      return 1;
    }
    if (h.complete || got == 0 || p.http_errno != HPE_OK) {
      if (h.complete)
        refused(&h, (int)p.status_code, w);
      else
        snprintf(w->said, sizeof w->said, "error: the API server's answer to the exec was cut short or malformed");
      return 0;
    }
  }
}

/* ---- the frames ------------------------------------------------------------ */

struct stream {
  struct esb_kube_conn *c;
  /* what comes: the frame being read */
  unsigned char head[14];
  size_t head_have, head_need;
  uint64_t left;            /* its payload's bytes yet to come */
  int opcode;               /* its opcode */
  bool open;                /* a data message's final frame is yet to come: a control
                               frame may come between its frames (RFC 6455 5.4) */
  int channel;              /* the data message's channel; -1 before its first byte */
  char control[125];
  size_t control_len;
  char pong[125];           /* the last ping's payload, its pong yet to be queued */
  size_t pong_len;
  bool pong_due;
  char *status;             /* channel 3 */
  size_t status_len;
  bool status_seen, closed, broken;
  /* what goes */
  char *out;
  size_t out_len, out_off, out_cap;
  bool stdin_open;
  short want;               /* TLS: the event its last call waits for */
};

static int queue_frame(struct stream *s, int opcode, unsigned char channel, bool with_channel, const char *data,
                       size_t len) {
  size_t payload = len + with_channel, need = s->out_len + payload + 14;
  if (need > s->out_cap) {
    char *grown = realloc(s->out, need);
    if (!grown)
      return -1;
    s->out = grown;
    s->out_cap = need;
  }
  unsigned char *f = (unsigned char *)s->out + s->out_len, mask[4];
  size_t h = 0;
  if (RAND_bytes(mask, sizeof mask) != 1)
    return -1;
  f[h++] = (unsigned char)(0x80 | opcode);
  if (payload < 126) {
    f[h++] = (unsigned char)(0x80 | payload);
  } else if (payload < 65536) {
    f[h++] = 0x80 | 126;
    f[h++] = (unsigned char)(payload >> 8);
    f[h++] = (unsigned char)payload;
  } else {
    f[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--)
      f[h++] = (unsigned char)((uint64_t)payload >> (8 * i));
  }
  memcpy(f + h, mask, 4);
  h += 4;
  if (with_channel)
    f[h] = channel;
  memcpy(f + h + with_channel, data, len);
  for (size_t i = 0; i < payload; i++)
    f[h + i] ^= mask[i & 3];
  s->out_len += h + payload;
  return 0;
}

/* A payload's bytes: the channel's, to where they go. */
static int deliver(struct stream *s, const char *data, size_t len) {
  if (s->opcode >= 0x8) {
    memcpy(s->control + s->control_len, data, len);
    s->control_len += len;
    return 0;
  }
  if (s->channel < 0 && len) {
    s->channel = (unsigned char)data[0];
    data++;
    len--;
  }
  if (!len)
    return 0;
  if (s->channel == 1 || s->channel == 2)
    return esb_write_all(s->channel, data, len); /* the engine reads both as they come */
  if (s->channel == 3) {
    s->status_seen = true;
    if (s->status_len + len > STATUS_MAX)
      return -1;
    memcpy(s->status + s->status_len, data, len);
    s->status_len += len;
  }
  return 0; /* another channel's (255: the server closes one): nothing of the command's */
}

/* A frame's header is whole: its payload follows. -1: no frame of a server. */
static int frame_begins(struct stream *s) {
  unsigned char *h = s->head;
  int opcode = h[0] & 0x0F;
  uint64_t len = h[1] & 0x7F;
  if (h[1] & 0x80)
    return -1; /* a server never masks (RFC 6455 5.1) */
  if (len == 126)
    len = (uint64_t)h[2] << 8 | h[3];
  else if (len == 127)
    for (int i = 0; i < 8; i++)
      len = len << 8 | h[2 + i];
  bool fin = h[0] & 0x80;
  if (opcode >= 0x8) {
    if (len > 125 || !fin)
      return -1;
  } else if (opcode == 0x1 || opcode == 0x2) {
    if (s->open)
      return -1; /* a message within another */
    s->channel = -1; /* a message: its first byte is its channel */
    s->open = !fin;
  } else if (opcode == 0x0 && s->open) {
    s->open = !fin; /* the message's channel goes on */
  } else {
    return -1; /* a continuation of no message, or a reserved opcode */
  }
  s->opcode = opcode;
  s->left = len;
  s->control_len = 0;
  return 0;
}

/* A frame was read whole: a close ends the exec's streams, a ping is
 * answered (answer_ping). */
static void frame_ends(struct stream *s) {
  if (s->opcode == 0x8) {
    s->closed = true;
  } else if (s->opcode == 0x9) {
    memcpy(s->pong, s->control, s->control_len);
    s->pong_len = s->control_len;
    s->pong_due = true;
  }
}

/* Header length of a frame from its first two bytes. */
static size_t head_length(const unsigned char *h) {
  size_t len = h[1] & 0x7F;
  return 2 + (len == 126 ? 2 : len == 127 ? 8 : 0);
}

/* The bytes read from the server, split into frames anywhere. */
static int feed(struct stream *s, const char *data, size_t len) {
  while (len && !s->closed) { /* nothing comes after a close (RFC 6455 5.5.1) */
    if (s->left == 0 && s->head_have < s->head_need) {
      s->head[s->head_have++] = (unsigned char)*data++;
      len--;
      if (s->head_have == 2)
        s->head_need = head_length(s->head);
      if (s->head_have < s->head_need)
        continue;
      if (frame_begins(s) < 0)
        return -1;
      if (s->left == 0)
        frame_ends(s);
      s->head_have = 0;
      s->head_need = 2;
      continue;
    }
    size_t n = len < s->left ? len : (size_t)s->left;
    if (deliver(s, data, n) < 0)
      return -1;
    data += n;
    len -= n;
    s->left -= n;
    if (s->left == 0)
      frame_ends(s);
  }
  return 0;
}

/* ---- the loop ---------------------------------------------------------------- */

/* One try at the socket, never waiting: bytes moved, 0 at its end (a read),
 * -1 on an error, -2 where it would wait (s->want: for what). */
static ssize_t try_io(struct stream *s, char *buf, size_t n, bool writing) {
  struct esb_kube_conn *c = s->c;
  if (c->ssl) {
    size_t moved = 0;
    int rc = writing ? SSL_write_ex(c->ssl, buf, n, &moved) : SSL_read_ex(c->ssl, buf, n, &moved);
    int e = rc == 1 ? 0 : SSL_get_error(c->ssl, rc);
    if (!e)
      return (ssize_t)moved;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      s->want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
      return -2;
    }
    if (e == SSL_ERROR_ZERO_RETURN && !writing)
      return 0;
    return esb_kube_conn_fail(c, writing ? "sending stdin" : "reading the exec's streams");
  }
  ssize_t got = writing ? send(c->fd, buf, n, MSG_NOSIGNAL) : recv(c->fd, buf, n, 0);
  if (got >= 0)
    return got;
  if (errno == EAGAIN || errno == EINTR) {
    s->want = writing ? POLLOUT : POLLIN;
    return -2;
  }
  return esb_kube_conn_fail(c, writing ? "sending stdin" : "reading the exec's streams");
}

/* Everything the server has for us now. -1: the exec is broken. */
static int read_socket(struct stream *s, char *buf, size_t size) {
  for (;;) {
    ssize_t got = try_io(s, buf, size, false);
    if (got == -2)
      return 0;
    if (got <= 0) {
      s->closed = true; /* the connection ended: with the status, the exec did */
      return got < 0 && !s->status_seen ? -1 : 0;
    }
    if (feed(s, buf, (size_t)got) < 0) {
      snprintf(s->c->r->err, sizeof s->c->r->err, "the API server sent what is no WebSocket frame of an exec");
      return -1;
    }
    if (s->closed)
      return 0;
  }
}

/* What is queued, as far as the socket takes it. A failure only ends the
 * sending: the command may have ended and the server stopped reading, and
 * its status says so. */
static void write_socket(struct stream *s) {
  while (s->out_off < s->out_len) {
    ssize_t n = try_io(s, s->out + s->out_off, s->out_len - s->out_off, true);
    if (n == -2)
      return;
    if (n < 0) {
      s->broken = true;
      s->stdin_open = false;
      s->out_len = s->out_off = 0;
      return;
    }
    s->out_off += (size_t)n;
  }
  s->out_len = s->out_off = 0;
}

/* A chunk of the engine's stdin as a frame of channel 0; at its end, the
 * v5 close of channel 0 (the command reads EOF). */
static int read_stdin(struct stream *s, char *buf) {
  ssize_t n = read(0, buf, CHUNK);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return 0;
  if (n > 0)
    return queue_frame(s, 0x2, 0, true, buf, (size_t)n);
  s->stdin_open = false;
  const char close_stdin[] = { 0 };
  return queue_frame(s, 0x2, 255, true, close_stdin, 1);
}

/* The last ping's pong, once what was queued before it has gone: a server
 * that pings and never reads holds one pong here, not one for each ping
 * (RFC 6455 5.5.3 lets the last ping alone be answered). */
static int answer_ping(struct stream *s) {
  if (!s->pong_due || s->out_off < s->out_len)
    return 0;
  s->pong_due = false;
  return queue_frame(s, 0xA, 0, false, s->pong, s->pong_len);
}

static int pump(struct stream *s, char *buf, size_t size) {
  while (!s->closed) {
    if (answer_ping(s) < 0)
      return -1;
    write_socket(s);
    bool pending = s->out_off < s->out_len;
    if (s->pong_due && !pending)
      continue; /* what the pong waited for has gone: it goes before any wait (a server may wait for it) */
    struct pollfd p[2] = { { .fd = s->c->fd, .events = POLLIN | (pending ? POLLOUT : 0) | s->want },
                           { .fd = s->stdin_open && !pending ? 0 : -1, .events = POLLIN } };
    bool buffered = s->c->ssl && SSL_pending(s->c->ssl) > 0;
    if (!buffered && poll(p, 2, -1) < 0 && errno != EINTR)
      return -1;
    s->want = 0;
    if (read_socket(s, buf, size) < 0)
      return -1;
    if (p[1].revents && read_stdin(s, buf) < 0)
      return -1;
  }
  return 0;
}

void esb_kube_transport_exec(const struct esb_kube_api *api, const char *path, uint64_t timeout_ms,
                             const char *pending, size_t pending_len, struct esb_kube_exec_word *w) {
  struct esb_kube_reply r = { 0 };
  struct esb_kube_conn c = { .fd = -1, .deadline_ns = esb_now_ns() + timeout_ms * 1000000ull, .r = &r };
  struct stream s = { .c = &c, .head_need = 2, .channel = -1, .stdin_open = true };
  char *buf = malloc(CHUNK + 64);
  size_t rest_at = 0, rest_len = 0;
  *w = (struct esb_kube_exec_word){ .end = ESB_KUBE_EXEC_ERROR };
  if (!buf || !(s.status = malloc(STATUS_MAX))) {
    snprintf(w->said, sizeof w->said, "error: out of memory");
  } else if (esb_kube_conn_open(&c, api) < 0) {
    snprintf(w->said, sizeof w->said, "error: %s", r.err);
  } else if (upgrade(&c, api, path, buf, CHUNK, &rest_at, &rest_len, w)) {
    if (c.ssl) /* a write tried again may start anew from a buffer that grew */
      SSL_set_mode(c.ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    int rc = feed(&s, buf + rest_at, rest_len);
    if (rc == 0 && pending_len) /* stdin the engine sent with its request */
      rc = queue_frame(&s, 0x2, 0, true, pending, pending_len);
    if (rc == 0 && !s.closed)
      rc = pump(&s, buf, CHUNK);
    if (s.status_seen)
      esb_kube_exec_status_read(s.status, s.status_len, w);
    else
      snprintf(w->said, sizeof w->said, "error: the exec's connection ended before the API server's status came%s%s",
               r.err[0] ? ": " : "", r.err);
  }
  free(s.out);
  free(s.status);
  free(buf);
  free(r.body);
  esb_kube_conn_close(&c);
}
