#include "backend/egress_proxy.h"

#include "backend/egress_token.h"
#include "engine/fileio.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <time.h>

#include <http_parser.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

enum {
  HEAD_MAX = 16384,        /* a request's head, CONNECT's or a plain one's */
  HELLO_MAX = 32768,       /* a ClientHello, however many records */
  MAX_CONNS = 256,         /* live connections of a run; more wait in the backlog */
  SHARED_MAX_CONNS = 4096, /* the shared proxy's, of all runs */
  RUNS_MAX = 4096,         /* the shared proxy's ledgers kept */
  RUN_KEEP_S = 600,        /* how long past its token's expiry a run's ledger is kept */
  LEDGER_WAIT_MS = 2000,   /* a ledger query waits that long for the run's connections to end */
  FOLLOW_TICK_S = 1,       /* a follow looks whether the engine closed it that often */
  WAIT_MS = 10000,         /* for a head, a ClientHello, a connect */
  RELAY_BYTES = 65536,
  HEADERS_MAX = 128,       /* a head's headers, where the proxy rewrites it */
};

struct esb_egress_conn {
  struct esb_egress_proxy *proxy;
  pthread_t thread;
  int client, upstream;   /* -1 once closed; set and closed under the proxy's lock */
  bool done;              /* its thread has returned: join it */
  long entry;             /* its ledger entry, -1 where left off */
  struct esb_egress_ledger *ledger; /* where its entry is: the proxy's, its run's, or NULL */
  char *const *allow, *const *deny; /* its lists: the proxy's, or its token's */
  struct esb_egress_grant grant;    /* the shared proxy's: its token's */
  struct esb_egress_run *run;       /* the shared proxy's: its token's run (live counted) */
  struct esb_egress_rule rule;      /* the shared proxy's: the header its token names for
                                       the host, with the secret's value (borrowed) */
  bool judged;            /* its verdict was given (on_verdict told) */
  struct esb_egress_conn *next;
};

/* The shared proxy's ledger of one run, kept for the engine's query after
 * the run (RUN_KEEP_S past the token's expiry, then dropped). */
struct esb_egress_run {
  char id[ESB_EGRESS_RUN_MAX + 1];
  int64_t expires;
  unsigned live;          /* its connections being served, follows among them */
  unsigned following;     /* its follows (GET ESB_EGRESS_FOLLOW_PATH): no attempts */
  struct esb_egress_ledger ledger;
  uint16_t judged[ESB_EGRESS_LEDGER_MAX]; /* its entries in the order of their verdicts */
  size_t n_judged;
  struct esb_egress_run *next;
};

/* One side of a connection: its socket, and the TLS over it where the
 * proxy terminated or originated TLS (an injected host's). */
struct end {
  int fd;
  SSL *ssl;
};

/* ---- addresses ---- */

static bool in_range(const struct esb_net_range *r, int family, const uint8_t *addr) {
  if (r->family != family)
    return false;
  unsigned full = r->prefix / 8, rest = r->prefix % 8;
  if (memcmp(r->addr, addr, full) != 0)
    return false;
  uint8_t mask = (uint8_t)(0xff << (8 - rest));
  return !rest || (r->addr[full] & mask) == (addr[full] & mask);
}

/* Whether the proxy may connect there: the first rule whose range holds
 * the address decides (the host's own first, then the policy's allowed
 * ranges, then the blocked ones); an address in none is public. */
static bool address_public(const struct esb_egress_proxy *p, const struct sockaddr *sa) {
  const uint8_t *addr = sa->sa_family == AF_INET ? (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr
                                                 : (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
  for (size_t i = 0; i < p->n_rules; i++)
    if (in_range(&p->rules[i].range, sa->sa_family, addr))
      return p->rules[i].action == ESB_NET_ALLOW;
  return true;
}

/* ---- the ledger, under the lock ---- */

static void set_verdict(struct esb_egress_conn *c, enum esb_egress_reason reason) {
  struct esb_egress_proxy *p = c->proxy;
  struct esb_egress_attempt seen = { 0 };
  pthread_mutex_lock(&p->lock);
  bool first = c->entry >= 0 && !c->judged, tell = first && p->on_verdict;
  if (first && c->run && c->run->n_judged < ESB_EGRESS_LEDGER_MAX) { /* the shared proxy's: for its run's follows */
    c->run->judged[c->run->n_judged++] = (uint16_t)c->entry;
    pthread_cond_broadcast(&p->ended);
  }
  if (c->entry >= 0) {
    c->ledger->v[c->entry].reason = reason;
    c->ledger->v[c->entry].allowed = reason == ESB_EGRESS_ALLOWED;
    seen = c->ledger->v[c->entry]; /* its host stays until the ledger's release */
    c->judged = true;
  }
  pthread_mutex_unlock(&p->lock);
  if (tell) /* outside the lock: a slow reader holds up this connection alone */
    p->on_verdict(&seen, p->verdict_userdata);
}

static void add_bytes(struct esb_egress_conn *c, uint64_t out, uint64_t in) {
  struct esb_egress_proxy *p = c->proxy;
  pthread_mutex_lock(&p->lock);
  if (c->entry >= 0) {
    c->ledger->v[c->entry].bytes_out += out;
    c->ledger->v[c->entry].bytes_in += in;
  }
  pthread_mutex_unlock(&p->lock);
}

/* ---- sockets ---- */

/* SSL_read's or SSL_write's n as recv's: 0 at the end, -1 with errno
 * (EAGAIN: not yet). */
static ssize_t ssl_result(SSL *ssl, int n) {
  switch (SSL_get_error(ssl, n)) {
  case SSL_ERROR_ZERO_RETURN:
    return 0;
  case SSL_ERROR_WANT_READ:
  case SSL_ERROR_WANT_WRITE:
    errno = EAGAIN;
    return -1;
  default:
    errno = EIO;
    return -1;
  }
}

static ssize_t end_recv(const struct end *e, char *buf, size_t cap) {
  if (!e->ssl)
    return recv(e->fd, buf, cap, 0);
  ERR_clear_error(); /* SSL_get_error reads the thread's queue */
  int n = SSL_read(e->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
  return n > 0 ? n : ssl_result(e->ssl, n);
}

static ssize_t end_send(const struct end *e, const char *buf, size_t len) {
  if (!e->ssl)
    return send(e->fd, buf, len, MSG_NOSIGNAL);
  ERR_clear_error();
  int n = SSL_write(e->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
  if (n > 0)
    return n;
  if (ssl_result(e->ssl, n) == 0)
    errno = EPIPE;
  return -1;
}

/* Whether TLS holds bytes already read off the socket: poll would not
 * say so. */
static bool end_pending(const struct end *e) {
  return e->ssl && SSL_pending(e->ssl) > 0;
}

/* All of it, blocking or not (the upstream socket is non-blocking: a
 * ClientHello may be more than its first send buffer), each wait at most
 * WAIT_MS. */
static bool end_send_all(const struct end *e, const char *data, size_t len) {
  while (len) {
    ssize_t n = end_send(e, data, len);
    struct pollfd pfd = { .fd = e->fd, .events = POLLOUT };
    if (n < 0 && (errno == EINTR || (errno == EAGAIN && poll(&pfd, 1, WAIT_MS) == 1)))
      continue;
    if (n <= 0)
      return false;
    data += n;
    len -= (size_t)n;
  }
  return true;
}

static bool send_all(int fd, const char *data, size_t len) {
  return end_send_all(&(struct end){ .fd = fd }, data, len);
}

/* Up to cap bytes more into buf at *len, waiting at most WAIT_MS: the
 * count read, 0 at EOF or on a timeout, -1 on an error. */
static ssize_t recv_more(const struct end *e, char *buf, size_t *len, size_t cap) {
  struct pollfd pfd = { .fd = e->fd, .events = POLLIN };
  if (*len >= cap || (!end_pending(e) && poll(&pfd, 1, WAIT_MS) <= 0))
    return 0;
  ssize_t n = end_recv(e, buf + *len, cap - *len);
  if (n > 0)
    *len += (size_t)n;
  return n;
}

static void refuse_on(struct esb_egress_conn *c, const struct end *e, enum esb_egress_reason reason,
                      const char *host, unsigned port) {
  static const char *const status[] = { "403 Forbidden", "502 Bad Gateway", "400 Bad Request",
                                        "407 Proxy Authentication Required\r\nProxy-Authenticate: Basic "
                                        "realm=\"echo-sandbox-egress\"" };
  int which = reason == ESB_EGRESS_UNRESOLVED || reason == ESB_EGRESS_CONNECT_FAILED ||
              reason == ESB_EGRESS_UNVERIFIED ? 1
            : reason == ESB_EGRESS_BAD_REQUEST ? 2
            : reason == ESB_EGRESS_BAD_TOKEN || reason == ESB_EGRESS_TOKEN_EXPIRED ? 3 : 0;
  char body[512], msg[1024];
  int n = snprintf(body, sizeof body, "echo-sandbox egress proxy: %s:%u: %s\n", host, port,
                   esb_egress_reason_name(reason));
  int m = snprintf(msg, sizeof msg, "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                   "Connection: close\r\n\r\n%s", status[which], n, body);
  set_verdict(c, reason);
  end_send_all(e, msg, (size_t)m);
}

static void refuse(struct esb_egress_conn *c, enum esb_egress_reason reason, const char *host, unsigned port) {
  refuse_on(c, &(struct end){ .fd = c->client }, reason, host, port);
}

/* ---- the request's head (http-parser) ---- */

struct head {
  http_parser parser;
  const char *buf;
  size_t url_off, url_len;
  size_t field_off, field_len, value_off, value_len;
  size_t host_off, host_len; /* the Host header's value */
  int hosts;                 /* how many Host headers */
  size_t auth_off, auth_len; /* the Proxy-Authorization header's value (the shared proxy's token) */
  int auths;                 /* how many of those */
  bool in_value, complete;
  size_t fields[HEADERS_MAX]; /* where each header's name starts, in order */
  int n_fields;              /* HEADERS_MAX + 1: more than that */
};

static void end_header(struct head *h) {
  if (h->in_value && h->field_len == 4 && !strncasecmp(h->buf + h->field_off, "host", 4)) {
    h->host_off = h->value_off;
    h->host_len = h->value_len;
    h->hosts++;
  }
  if (h->in_value && h->field_len == 19 && !strncasecmp(h->buf + h->field_off, "proxy-authorization", 19)) {
    h->auth_off = h->value_off;
    h->auth_len = h->value_len;
    h->auths++;
  }
  h->in_value = false;
}

static int on_url(http_parser *hp, const char *at, size_t len) {
  struct head *h = hp->data;
  if (!h->url_len)
    h->url_off = (size_t)(at - h->buf);
  h->url_len += len; /* pieces of one buffer: contiguous */
  return 0;
}

static int on_field(http_parser *hp, const char *at, size_t len) {
  struct head *h = hp->data;
  if (h->in_value || !h->field_len) {
    end_header(h);
    h->field_off = (size_t)(at - h->buf);
    h->field_len = 0;
    if (h->n_fields < HEADERS_MAX)
      h->fields[h->n_fields] = h->field_off;
    if (h->n_fields <= HEADERS_MAX)
      h->n_fields++;
  }
  h->field_len += len;
  return 0;
}

static int on_value(http_parser *hp, const char *at, size_t len) {
  struct head *h = hp->data;
  if (!h->in_value) {
    h->in_value = true;
    h->value_off = (size_t)(at - h->buf);
    h->value_len = 0;
  }
  h->value_len += len;
  return 0;
}

static int on_headers_complete(http_parser *hp) {
  struct head *h = hp->data;
  end_header(h);
  h->complete = true;
  http_parser_pause(hp, 1); /* the body, if any, is the server's to read */
  return 0;
}

static const http_parser_settings head_settings = {
  .on_url = on_url, .on_header_field = on_field, .on_header_value = on_value,
  .on_headers_complete = on_headers_complete,
};

/* Reads the head of the client's request into buf (*len bytes read, maybe
 * more than the head): 0, or -1 where it is none. */
static int read_head(const struct end *e, char *buf, size_t *len, struct head *h) {
  *h = (struct head){ .buf = buf };
  http_parser_init(&h->parser, HTTP_REQUEST);
  h->parser.data = h;
  size_t parsed = 0;
  while (!h->complete) {
    if (parsed == *len && recv_more(e, buf, len, HEAD_MAX) <= 0)
      return -1;
    parsed += http_parser_execute(&h->parser, &head_settings, buf + parsed, *len - parsed);
    if (!h->complete && HTTP_PARSER_ERRNO(&h->parser) != HPE_OK)
      return -1;
  }
  return h->hosts <= 1 ? 0 : -1; /* two Hosts: which would the server take? */
}

/* Where the request goes: CONNECT's host:port, a plain request's absolute
 * URL (whose Host header, if any, must name the same host), or an
 * origin-form request's Host header. rewrite: an absolute URL's request
 * goes on in origin form, its path and query (path_off, path_len) in place
 * of the URL (which ends at url_end); otherwise it goes on as it came. */
struct target {
  char host[ESB_EGRESS_HOST_MAX + 1];
  unsigned port;
  bool tunnel;
  size_t path_off, path_len, url_end;
  bool rewrite;
};

static bool copy_host(struct target *t, const char *s, size_t len) {
  if (len == 0 || len > ESB_EGRESS_HOST_MAX)
    return false;
  for (size_t i = 0; i < len; i++)
    t->host[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] - 'A' + 'a' : s[i]);
  t->host[len] = '\0';
  if (t->host[len - 1] == '.')
    t->host[len - 1] = '\0';
  return t->host[0] != '\0';
}

/* The Host header's "name[:port]": its name into a target (port 80
 * unless given). Whether it is one. */
static bool host_header_target(const struct head *h, struct target *t) {
  const char *s = h->buf + h->host_off;
  size_t n = h->host_len;
  const char *close = n && s[0] == '[' ? memchr(s, ']', n) : NULL; /* an IPv6 address's colons are its own */
  const char *colon = close ? memchr(close, ':', n - (size_t)(close - s)) : memrchr(s, ':', n);
  t->port = 80;
  if (colon) {
    size_t digits = n - (size_t)(colon + 1 - s);
    char port[6] = "";
    if (!digits || digits > 5)
      return false;
    memcpy(port, colon + 1, digits);
    t->port = (unsigned)atoi(port);
    if (strspn(port, "0123456789") != digits || !t->port || t->port > 65535)
      return false;
    n = (size_t)(colon - s);
  }
  if (close) /* as http-parser gives a URL's: without the brackets */
    return n >= 3 && s[n - 1] == ']' && copy_host(t, s + 1, n - 2);
  return copy_host(t, s, n);
}

static enum esb_egress_reason find_target(const struct head *h, struct target *t) {
  struct http_parser_url u;
  const char *url = h->buf + h->url_off;
  http_parser_url_init(&u);
  t->tunnel = h->parser.method == HTTP_CONNECT;
  t->url_end = h->url_off + h->url_len;
  if (t->tunnel || url[0] != '/') {
    if (http_parser_parse_url(url, h->url_len, t->tunnel, &u) != 0 || !(u.field_set & (1 << UF_HOST)))
      return ESB_EGRESS_BAD_REQUEST;
    if (!t->tunnel && (u.field_data[UF_SCHEMA].len != 4 || strncasecmp(url + u.field_data[UF_SCHEMA].off, "http", 4)))
      return ESB_EGRESS_BAD_REQUEST; /* https:// goes by CONNECT */
    if (!copy_host(t, url + u.field_data[UF_HOST].off, u.field_data[UF_HOST].len))
      return ESB_EGRESS_BAD_REQUEST;
    t->port = u.field_set & (1 << UF_PORT) ? u.port : 80;
    t->rewrite = !t->tunnel;
    t->path_off = u.field_set & (1 << UF_PATH) ? h->url_off + u.field_data[UF_PATH].off : t->url_end;
    t->path_len = t->url_end - t->path_off;
    struct target named;
    if (!t->tunnel && h->hosts && (!host_header_target(h, &named) || strcmp(named.host, t->host) != 0))
      return ESB_EGRESS_HOST_MISMATCH;
    return ESB_EGRESS_ALLOWED;
  }
  /* origin form: the Host header is all there is */
  return h->hosts && host_header_target(h, t) ? ESB_EGRESS_ALLOWED : ESB_EGRESS_BAD_REQUEST;
}

/* ---- the ClientHello's server name (OpenSSL) ---- */

struct hello_seen {
  bool called;
  char name[ESB_EGRESS_HOST_MAX + 2];
};

/* OpenSSL has parsed the ClientHello's extensions: note the name it
 * carries and end the handshake there (nothing is ever answered). */
static int on_servername(SSL *ssl, int *alert, void *arg) {
  (void)alert;
  (void)arg;
  struct hello_seen *seen = SSL_get_app_data(ssl);
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  seen->called = true;
  snprintf(seen->name, sizeof seen->name, "%s", name ? name : "");
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* Reads the client's first bytes (into buf, *len of them) until OpenSSL
 * has the ClientHello's server name: ALLOWED where it is host, else why
 * not. A host asked by address is what the list let through: a
 * ClientHello is all it takes, with whatever name or none (clients send
 * none for an address). */
static enum esb_egress_reason check_hello(struct esb_egress_conn *c, const char *host, char *buf, size_t *len) {
  struct hello_seen seen = { 0 };
  SSL *ssl = SSL_new(c->proxy->tls);
  BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
  if (!ssl || !in || !out) {
    BIO_free(in);
    BIO_free(out);
    SSL_free(ssl);
    return ESB_EGRESS_NOT_TLS;
  }
  SSL_set_bio(ssl, in, out);
  SSL_set_accept_state(ssl);
  SSL_set_app_data(ssl, &seen);
  for (size_t fed = 0;;) {
    if (fed == *len && recv_more(&(struct end){ .fd = c->client }, buf, len, HELLO_MAX) <= 0)
      break;
    BIO_write(in, buf + fed, (int)(*len - fed));
    fed = *len;
    int rc = SSL_do_handshake(ssl);
    if (seen.called || rc > 0 || SSL_get_error(ssl, rc) != SSL_ERROR_WANT_READ)
      break;
  }
  SSL_free(ssl);
  ERR_clear_error(); /* the refusal we asked for, on this thread's queue */
  size_t n = strlen(seen.name);
  if (n && seen.name[n - 1] == '.')
    seen.name[--n] = '\0';
  if (seen.called && esb_egress_host_is_address(host))
    return ESB_EGRESS_ALLOWED;
  if (!seen.called || !n)
    return ESB_EGRESS_NOT_TLS;
  return strcasecmp(seen.name, host) == 0 ? ESB_EGRESS_ALLOWED : ESB_EGRESS_SNI_MISMATCH;
}

/* ---- resolving and connecting ---- */

/* A name and an address of the plan's hosts file (egress.hosts_file). */
struct esb_egress_pin {
  char *name;                    /* lower case, no trailing dot */
  char addr[INET6_ADDRSTRLEN];   /* numeric */
};

/* One line of a hosts(5) file: its names, each with the line's address,
 * appended to the proxy's pins. 0, or -1 (no memory). */
static int pin_line(struct esb_egress_proxy *p, char *line) {
  char *save = NULL, *addr = strtok_r(line, " \t\r", &save), *name;
  unsigned char buf[sizeof(struct in6_addr)];
  if (!addr || (inet_pton(AF_INET, addr, buf) != 1 && inet_pton(AF_INET6, addr, buf) != 1))
    return 0; /* no address: not a line of hosts */
  while ((name = strtok_r(NULL, " \t\r", &save))) {
    struct esb_egress_pin *grown = realloc(p->pins, (p->n_pins + 1) * sizeof *grown);
    if (!grown)
      return -1;
    p->pins = grown;
    struct esb_egress_pin *pin = &grown[p->n_pins];
    size_t n = strlen(name);
    if (n > 1 && name[n - 1] == '.')
      name[--n] = '\0';
    for (char *c = name; *c; c++)
      *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    if (!(pin->name = strdup(name)))
      return -1;
    snprintf(pin->addr, sizeof pin->addr, "%s", addr);
    p->n_pins++;
  }
  return 0;
}

/* The plan's hosts file, read here, not through NSS: its names resolve
 * whatever /etc/nsswitch.conf and /etc/hosts say (or lack). 0, or -1 with
 * err naming the file. */
static int load_pins(struct esb_egress_proxy *p, const char *path, struct esb_error *err) {
  size_t len = 0;
  char *text = esb_read_file(path, &len), *save = NULL;
  if (!text)
    return esb_error_errno(err, ESB_E_POLICY, "egress proxy: the hosts file %s", path);
  int rc = 0;
  for (char *line = strtok_r(text, "\n", &save); line && rc == 0; line = strtok_r(NULL, "\n", &save)) {
    line[strcspn(line, "#")] = '\0';
    rc = pin_line(p, line);
  }
  free(text);
  return rc == 0 ? 0 : esb_error_set(err, ESB_E_SYSTEM, "out of memory");
}

/* The pinned addresses of t's host, as getaddrinfo gives them (numeric:
 * no lookup); NULL where the hosts file names none. */
static struct addrinfo *pinned(const struct esb_egress_proxy *p, const char *host, const char *port) {
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
  struct addrinfo *list = NULL, **tail = &list;
  for (size_t i = 0; i < p->n_pins; i++) {
    struct addrinfo *one = NULL;
    if (strcmp(p->pins[i].name, host) != 0 || getaddrinfo(p->pins[i].addr, port, &hints, &one) != 0)
      continue;
    *tail = one; /* each node is freed alone (freeaddrinfo walks the chain) */
    while (*tail)
      tail = &(*tail)->ai_next;
  }
  return list;
}

/* The name's public addresses (the others dropped), or why there are none. */
static enum esb_egress_reason resolve(const struct esb_egress_proxy *p, const struct target *t,
                                      struct addrinfo **list) {
  /* an address asked is that address: no lookup */
  struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                            .ai_flags = esb_egress_host_is_address(t->host) ? AI_NUMERICHOST : 0 };
  char port[8];
  snprintf(port, sizeof port, "%u", t->port);
  *list = pinned(p, t->host, port);
  if (!*list && (getaddrinfo(t->host, port, &hints, list) != 0 || !*list))
    return ESB_EGRESS_UNRESOLVED;
  struct addrinfo **link = list;
  while (*link) {
    struct addrinfo *a = *link;
    if ((a->ai_family == AF_INET || a->ai_family == AF_INET6) && address_public(p, a->ai_addr)) {
      link = &a->ai_next;
      continue;
    }
    *link = a->ai_next; /* unlinked, then freed alone */
    a->ai_next = NULL;
    freeaddrinfo(a);
  }
  return *list ? ESB_EGRESS_ALLOWED : ESB_EGRESS_BLOCKED_ADDRESS;
}

/* Connects to one address, within WAIT_MS; the socket is the connection's
 * while it does, so that a stop shuts it down. 0, or -1. */
static int connect_one(struct esb_egress_conn *c, const struct addrinfo *a) {
  struct esb_egress_proxy *p = c->proxy;
  int fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -1;
  pthread_mutex_lock(&p->lock);
  bool stopping = p->stopping;
  if (!stopping)
    c->upstream = fd;
  pthread_mutex_unlock(&p->lock);
  if (stopping) {
    close(fd);
    return -1;
  }
  int soerr = 0;
  socklen_t slen = sizeof soerr;
  struct pollfd pfd = { .fd = fd, .events = POLLOUT };
  int on = 1; /* a proxy passes on what it has at once: no Nagle between two hops */
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 ||
      (errno == EINPROGRESS && poll(&pfd, 1, WAIT_MS) == 1 &&
       getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) == 0 && soerr == 0))
    return 0;
  pthread_mutex_lock(&p->lock);
  c->upstream = -1;
  pthread_mutex_unlock(&p->lock);
  close(fd);
  return -1;
}

static enum esb_egress_reason connect_any(struct esb_egress_conn *c, const struct addrinfo *list) {
  for (const struct addrinfo *a = list; a; a = a->ai_next)
    if (connect_one(c, a) == 0)
      return ESB_EGRESS_ALLOWED;
  return ESB_EGRESS_CONNECT_FAILED;
}

/* ---- relaying ---- */

struct direction {
  const struct end *from, *to;
  char *buf;
  size_t len, off;
  bool eof;
  uint64_t moved;
};

/* One step of a direction: reads when its buffer is empty, writes what it
 * holds. -1 when the connection is over (an error). */
static int step(struct direction *d, short revents_from, short revents_to) {
  if (!d->len && !d->eof && ((revents_from & (POLLIN | POLLHUP | POLLERR)) || end_pending(d->from))) {
    ssize_t n = end_recv(d->from, d->buf, RELAY_BYTES);
    if (n == 0) {
      d->eof = true;
      if (d->to->ssl) /* close_notify, then the socket's end */
        SSL_shutdown(d->to->ssl);
      shutdown(d->to->fd, SHUT_WR);
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return -1;
    } else if (n > 0) {
      d->len = (size_t)n;
      d->off = 0;
      revents_to |= POLLOUT; /* try at once: most writes go through */
    }
  }
  if (d->len && (revents_to & (POLLOUT | POLLERR))) {
    ssize_t n = end_send(d->to, d->buf + d->off, d->len - d->off);
    if (n < 0 && errno != EAGAIN && errno != EINTR)
      return -1;
    if (n > 0) {
      d->off += (size_t)n;
      d->moved += (uint64_t)n;
      if (d->off == d->len)
        d->len = d->off = 0;
    }
  }
  return 0;
}

static short wants(const struct direction *d, bool as_from) {
  return as_from ? (!d->len && !d->eof ? POLLIN : 0) : (d->len ? POLLOUT : 0);
}

/* Both ways until both have ended; the bytes into the ledger. */
static void relay(struct esb_egress_conn *c, const struct end *client, const struct end *upstream) {
  char *bufs = malloc(2 * RELAY_BYTES);
  struct direction out = { .from = client, .to = upstream, .buf = bufs };
  struct direction in = { .from = upstream, .to = client, .buf = bufs ? bufs + RELAY_BYTES : NULL };
  fcntl(client->fd, F_SETFL, fcntl(client->fd, F_GETFL) | O_NONBLOCK);
  fcntl(upstream->fd, F_SETFL, fcntl(upstream->fd, F_GETFL) | O_NONBLOCK);
  while (bufs && !(out.eof && in.eof && !out.len && !in.len)) {
    struct pollfd pfd[2] = { { .fd = client->fd, .events = (short)(wants(&out, true) | wants(&in, false)) },
                             { .fd = upstream->fd, .events = (short)(wants(&in, true) | wants(&out, false)) } };
    /* bytes TLS has read already: no waiting for the socket */
    bool ready = (wants(&out, true) && end_pending(client)) || (wants(&in, true) && end_pending(upstream));
    if (poll(pfd, 2, ready ? 0 : -1) < 0 && errno != EINTR)
      break;
    if ((pfd[0].revents | pfd[1].revents) & POLLNVAL)
      break;
    if (step(&out, pfd[0].revents, pfd[1].revents) < 0 || step(&in, pfd[1].revents, pfd[0].revents) < 0)
      break;
    if (((pfd[0].revents | pfd[1].revents) & (POLLHUP | POLLERR)) && !out.len && !in.len &&
        !(pfd[0].revents & POLLIN) && !(pfd[1].revents & POLLIN))
      break; /* a side is gone and nothing is left to move */
  }
  free(bufs);
  add_bytes(c, out.moved, in.moved);
}

/* ---- credentials added (backend/egress_inject.h) ---- */

static bool named(const char *name, size_t len, const char *want) {
  return len == strlen(want) && !strncasecmp(name, want, len);
}

/* The head of buf (head_len bytes, through its empty line), with every
 * header named r->header or Connection dropped (a header is the bytes from
 * its name, as http-parser found it, to the next one's: folded lines go
 * with it), then r's header and "Connection: close" last, so that a later
 * request is a new connection's and gets the header too. malloc'd,
 * *out_len bytes; NULL: no memory, or a head this cannot rewrite. */
static char *inject_head(const struct head *h, const char *buf, size_t head_len,
                         const struct esb_egress_rule *r, size_t *out_len) {
  static const char tail[] = "\r\nConnection: close\r\n\r\n";
  size_t end = head_len - 2, header_len = strlen(r->header), n;
  if (h->n_fields > HEADERS_MAX || (h->n_fields && h->fields[h->n_fields - 1] >= end))
    return NULL;
  char *out = malloc(head_len + header_len + r->value_len + sizeof tail + 2);
  if (!out)
    return NULL;
  memcpy(out, buf, n = h->n_fields ? h->fields[0] : end); /* the request line */
  for (int i = 0; i < h->n_fields; i++) {
    size_t from = h->fields[i], to = i + 1 < h->n_fields ? h->fields[i + 1] : end;
    const char *colon = memchr(buf + from, ':', to - from);
    size_t name_len = colon ? (size_t)(colon - buf - from) : to - from;
    if (named(buf + from, name_len, r->header) || named(buf + from, name_len, "connection") ||
        named(buf + from, name_len, "proxy-authorization"))
      continue;
    memcpy(out + n, buf + from, to - from);
    n += to - from;
  }
  memcpy(out + n, r->header, header_len);
  memcpy(out + n + header_len, ": ", 2);
  memcpy(out + n + header_len + 2, r->value, r->value_len);
  n += header_len + 2 + r->value_len;
  memcpy(out + n, tail, sizeof tail - 1);
  *out_len = n + sizeof tail - 1;
  return out;
}

/* The request of buf (len bytes read, its head h) with r's header: its
 * head rewritten, what followed it as it came, in *buf (the old one
 * freed where *owned). 0, or -1 where the head cannot be rewritten. */
static int inject_request(const struct head *h, char **buf, size_t *len, bool *owned,
                          const struct esb_egress_rule *r) {
  const char *end = memmem(*buf, *len, "\r\n\r\n", 4);
  size_t head_len = end ? (size_t)(end + 4 - *buf) : 0, n;
  char *head = end ? inject_head(h, *buf, head_len, r, &n) : NULL;
  char *joined = head ? realloc(head, n + *len - head_len) : NULL;
  if (!joined) {
    free(head);
    return -1;
  }
  memcpy(joined + n, *buf + head_len, *len - head_len);
  if (*owned)
    free(*buf);
  *buf = joined;
  *len = n + *len - head_len;
  *owned = true;
  return 0;
}

/* A socket's waits during a handshake, blocking: WAIT_MS each. */
static void blocking_with_timeouts(int fd) {
  struct timeval tv = { .tv_sec = WAIT_MS / 1000, .tv_usec = WAIT_MS % 1000 * 1000 };
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* TLS to the real host, its chain and name verified: ALLOWED, or why not. */
static enum esb_egress_reason originate(struct esb_egress_conn *c, const struct target *t,
                                        const struct addrinfo *list, struct end *up) {
  enum esb_egress_reason r = connect_any(c, list);
  if (r != ESB_EGRESS_ALLOWED)
    return r;
  *up = (struct end){ .fd = c->upstream, .ssl = esb_egress_injector_connect(&c->proxy->inject, t->host) };
  blocking_with_timeouts(up->fd);
  ERR_clear_error();
  if (up->ssl && SSL_set_fd(up->ssl, up->fd) == 1 && SSL_connect(up->ssl) == 1)
    return ESB_EGRESS_ALLOWED;
  return up->ssl && SSL_get_verify_result(up->ssl) != X509_V_OK ? ESB_EGRESS_UNVERIFIED : ESB_EGRESS_CONNECT_FAILED;
}

/* The program's first request inside the terminated TLS, with r's header,
 * on to the host. */
static enum esb_egress_reason pass_first(struct esb_egress_conn *c, const struct end *client, const struct end *up,
                                         const struct esb_egress_rule *r, char *buf) {
  struct head h;
  size_t len = 0;
  bool owned = false;
  if (read_head(client, buf, &len, &h) < 0 || h.parser.method == HTTP_CONNECT ||
      inject_request(&h, &buf, &len, &owned, r) < 0)
    return ESB_EGRESS_BAD_REQUEST;
  bool sent = end_send_all(up, buf, len);
  if (sent)
    add_bytes(c, len, 0);
  if (owned)
    free(buf);
  return sent ? ESB_EGRESS_ALLOWED : ESB_EGRESS_CONNECT_FAILED;
}

/* CONNECT to a host with a credential to add: 200, then TLS with the
 * program under a certificate of the run's CA for the name asked (which
 * the ClientHello must name), TLS of the proxy's own to the host, and the
 * requests between them with the header added. */
static void serve_terminated(struct esb_egress_conn *c, const struct target *t, const struct addrinfo *list,
                             const struct esb_egress_rule *r, char *buf, size_t len) {
  static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";
  const char *end = memmem(buf, len, "\r\n\r\n", 4);
  if (!end || end + 4 != buf + len) { /* a ClientHello sent before the 200 would be lost */
    refuse(c, ESB_EGRESS_BAD_REQUEST, t->host, t->port);
    return;
  }
  struct esb_egress_sni sni = { .host = t->host };
  struct end client = { .fd = c->client, .ssl = NULL }, up = { .fd = -1, .ssl = NULL };
  enum esb_egress_reason why = ESB_EGRESS_NOT_TLS;
  bool secured = false;
  if (send_all(c->client, established, sizeof established - 1) &&
      (client.ssl = esb_egress_injector_accept(&c->proxy->inject, &sni))) {
    blocking_with_timeouts(c->client);
    ERR_clear_error();
    secured = SSL_set_fd(client.ssl, c->client) == 1 && SSL_accept(client.ssl) == 1;
    why = secured ? ESB_EGRESS_ALLOWED : sni.mismatch ? ESB_EGRESS_SNI_MISMATCH : ESB_EGRESS_NOT_TLS;
  }
  if (why == ESB_EGRESS_ALLOWED)
    why = originate(c, t, list, &up);
  if (why == ESB_EGRESS_ALLOWED)
    why = pass_first(c, &client, &up, r, buf);
  if (why == ESB_EGRESS_ALLOWED) {
    set_verdict(c, why);
    relay(c, &client, &up);
  } else if (secured) {
    refuse_on(c, &client, why, t->host, t->port); /* the program reads why, in its TLS */
  } else {
    set_verdict(c, why);
  }
  SSL_free(client.ssl);
  SSL_free(up.ssl);
}

/* ---- one connection ---- */

/* The verdict on the name alone: the lists. */
static enum esb_egress_reason judge_name(const struct esb_egress_conn *c, const struct target *t) {
  bool address = esb_egress_host_is_address(t->host);
  if ((!address && esb_egress_host_problem(t->host)) || !esb_egress_list_matches(c->allow, t->host, t->port))
    return ESB_EGRESS_NOT_LISTED;
  return esb_egress_list_matches(c->deny, t->host, t->port) ? ESB_EGRESS_DENIED : ESB_EGRESS_ALLOWED;
}

static long add_entry(struct esb_egress_conn *c, const char *host, unsigned port) {
  pthread_mutex_lock(&c->proxy->lock);
  long entry = c->ledger ? esb_egress_ledger_add(c->ledger, host, port) : -1;
  pthread_mutex_unlock(&c->proxy->lock);
  return entry;
}

/* CONNECT, once the name and its addresses passed: 200, then the
 * ClientHello must name the host before anything goes on to it. */
static enum esb_egress_reason open_tunnel(struct esb_egress_conn *c, const struct target *t,
                                          const struct addrinfo *list, char *buf, size_t *len) {
  static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";
  const char *end = memmem(buf, *len, "\r\n\r\n", 4); /* what came after the head is the tunnel's */
  size_t head = end ? (size_t)(end + 4 - buf) : *len;
  memmove(buf, buf + head, *len - head);
  *len -= head;
  if (!send_all(c->client, established, sizeof established - 1))
    return ESB_EGRESS_NOT_TLS;
  enum esb_egress_reason r = check_hello(c, t->host, buf, len);
  if (r == ESB_EGRESS_ALLOWED)
    r = connect_any(c, list);
  if (r == ESB_EGRESS_ALLOWED && !send_all(c->upstream, buf, *len))
    r = ESB_EGRESS_CONNECT_FAILED;
  if (r == ESB_EGRESS_ALLOWED)
    add_bytes(c, *len, 0); /* the ClientHello, held back until it passed */
  return r;
}

/* buf (*len bytes, its head h) without its Proxy-Authorization headers:
 * the shared proxy's token is the proxy's to read, never a host's. 0, or
 * -1 where the head has more headers than h could place. */
static int drop_credentials(const struct head *h, char *buf, size_t *len) {
  const char *end = h->auths ? memmem(buf, *len, "\r\n\r\n", 4) : NULL;
  if (!h->auths)
    return 0;
  if (!end || h->n_fields > HEADERS_MAX)
    return -1;
  size_t head_end = (size_t)(end - buf) + 2; /* through the last header's line end */
  for (int i = h->n_fields - 1; i >= 0; i--) { /* from the last: the earlier offsets hold */
    size_t from = h->fields[i], to = i + 1 < h->n_fields ? h->fields[i + 1] : head_end;
    const char *colon = memchr(buf + from, ':', to - from);
    if (colon && named(buf + from, (size_t)(colon - buf - from), "proxy-authorization")) {
      memmove(buf + from, buf + to, *len - to);
      *len -= to - from;
    }
  }
  return 0;
}

/* A plain request: on to the host in origin form (its absolute URL's path
 * and query), the rest of the head and what followed it as they came. */
static enum esb_egress_reason open_plain(struct esb_egress_conn *c, const struct target *t,
                                         const struct addrinfo *list, char *buf, size_t len,
                                         const struct head *h, const struct esb_egress_rule *rule) {
  bool owned = false; /* the request line stays where it was: t's offsets hold */
  if (rule ? inject_request(h, &buf, &len, &owned, rule) < 0 : drop_credentials(h, buf, &len) < 0)
    return ESB_EGRESS_BAD_REQUEST;
  enum esb_egress_reason r = connect_any(c, list);
  if (r != ESB_EGRESS_ALLOWED) {
    if (owned)
      free(buf);
    return r;
  }
  /* The request line with the origin form, joined to the rest in one write
   * (three small ones would wait on each other's ACKs). */
  char *line = t->rewrite ? malloc(len + 1) : NULL;
  size_t n = 0;
  if (line) {
    memcpy(line, buf, h->url_off);
    n = h->url_off;
    memcpy(line + n, t->path_len ? buf + t->path_off : "/", t->path_len ? t->path_len : 1);
    n += t->path_len ? t->path_len : 1;
    memcpy(line + n, buf + t->url_end, len - t->url_end);
    n += len - t->url_end;
  }
  bool sent = t->rewrite ? line && send_all(c->upstream, line, n) : send_all(c->upstream, buf, len);
  free(line);
  if (sent) /* the head as the host got it */
    add_bytes(c, t->rewrite ? n : len, 0);
  if (owned)
    free(buf);
  return sent ? ESB_EGRESS_ALLOWED : ESB_EGRESS_CONNECT_FAILED;
}

/* ---- the shared proxy: tokens, runs' ledgers, its log ---- */

/* A JSON string of s (bytes a program chose: escaped, never raw), to f. */
static void log_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
      fprintf(f, "\\u%04x", ch);
    else
      fputc(ch, f);
  }
  fputc('"', f);
}

/* One line of the shared proxy's log (its stderr): an attempt's verdict,
 * or a token refused and why; the lock held. */
static void log_attempt(const struct esb_egress_conn *c, const struct esb_egress_attempt *a, const char *why) {
  FILE *f = stderr;
  fputs("{\"run\":", f);
  if (c->run)
    log_string(f, c->run->id);
  else
    fputs("null", f);
  if (a) {
    fputs(",\"host\":", f);
    log_string(f, a->host);
    fprintf(f, ",\"port\":%u,\"allowed\":%s,\"reason\":\"%s\",\"bytes_out\":%llu,\"bytes_in\":%llu", a->port,
            a->allowed ? "true" : "false", esb_egress_reason_name(a->reason), (unsigned long long)a->bytes_out,
            (unsigned long long)a->bytes_in);
  }
  if (why) {
    fputs(",\"token\":", f);
    log_string(f, why);
  }
  fputs("}\n", f);
  fflush(f);
}

/* The run of that id, its live count one more; added where it is new
 * (ledgers of runs long past their expiry dropped first). NULL: RUNS_MAX
 * runs are kept, or no memory. The lock held. */
static struct esb_egress_run *enter_run(struct esb_egress_proxy *p, const char *id, int64_t expires) {
  int64_t now = (int64_t)time(NULL);
  for (struct esb_egress_run **link = &p->runs; *link;) {
    struct esb_egress_run *r = *link;
    if (!strcmp(r->id, id)) {
      r->live++;
      return r;
    }
    if (!r->live && r->expires + RUN_KEEP_S < now) {
      *link = r->next;
      esb_egress_ledger_release(&r->ledger);
      free(r);
      p->n_runs--;
      continue;
    }
    link = &r->next;
  }
  struct esb_egress_run *r = p->n_runs < RUNS_MAX ? calloc(1, sizeof *r) : NULL;
  if (!r)
    return NULL;
  snprintf(r->id, sizeof r->id, "%s", id);
  r->expires = expires;
  r->live = 1;
  r->ledger.wanted = true;
  r->next = p->runs;
  p->runs = r;
  p->n_runs++;
  return r;
}

/* The connection's token (its Proxy-Authorization), opened: its grant's
 * lists become the connection's and its run's ledger the one its attempt
 * goes to. ALLOWED, or why it is refused (BAD_TOKEN: the log says why;
 * TOKEN_EXPIRED: its run's ledger says so too). expiry_matters: false for
 * the engine's ledger query, which comes after the run. */
static enum esb_egress_reason admit(struct esb_egress_conn *c, const struct head *h, bool expiry_matters) {
  struct esb_egress_proxy *p = c->proxy;
  char *token = h && h->auths == 1 ? esb_egress_token_from_basic(h->buf + h->auth_off, h->auth_len) : NULL;
  const char *why = !token ? "none (Proxy-Authorization: Basic with the token as its user)"
                           : esb_egress_token_open(p->key, p->key_len, token, strlen(token), &c->grant);
  free(token);
  bool expired = !why && c->grant.expires < (int64_t)time(NULL);
  pthread_mutex_lock(&p->lock);
  if (!why && (c->run = enter_run(p, c->grant.run, c->grant.expires)))
    c->ledger = &c->run->ledger;
  else if (!why)
    why = "its run's ledger cannot be kept (too many runs)";
  if (why || (expired && expiry_matters))
    log_attempt(c, NULL, why ? why : "past its expiry");
  pthread_mutex_unlock(&p->lock);
  if (why)
    return ESB_EGRESS_BAD_TOKEN;
  c->allow = c->grant.allow;
  c->deny = c->grant.deny;
  return expired && expiry_matters ? ESB_EGRESS_TOKEN_EXPIRED : ESB_EGRESS_ALLOWED;
}

/* The connection's run's ledger, once its other connections have ended
 * (LEDGER_WAIT_MS at most), in backend/egress_helper.h's words, as a plain
 * HTTP answer: the engine's query after the run (GET ESB_EGRESS_LEDGER_PATH
 * with the run's token). The query is no attempt of the run's. */
static void answer_ledger(struct esb_egress_conn *c, const struct head *h) {
  struct esb_egress_proxy *p = c->proxy;
  if (admit(c, h, false) != ESB_EGRESS_ALLOWED) {
    refuse(c, ESB_EGRESS_BAD_TOKEN, "ledger", 0);
    return;
  }
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += LEDGER_WAIT_MS / 1000;
  char *body = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&body, &len);
  pthread_mutex_lock(&p->lock);
  c->run->live--; /* the query's own */
  while (c->run->live > c->run->following && !p->stopping && pthread_cond_timedwait(&p->ended, &p->lock, &until) == 0)
    ;
  if (f)
    esb_egress_ledger_write(&c->run->ledger, f);
  c->run->live++;
  pthread_mutex_unlock(&p->lock);
  if (!f || fclose(f) != 0) {
    free(body);
    return;
  }
  char head[160];
  int n = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n", len);
  if (send_all(c->client, head, (size_t)n))
    send_all(c->client, body, len);
  free(body);
}

/* The run's verdicts from the first on (for each, "seen REASON PORT OUT
 * IN LENGTH INDEX", its host and a newline: backend/egress_helper.h's
 * record and the entry's index in the run's ledger), then each as it is
 * given, as a plain HTTP answer without a length: the engine's follow while
 * the run goes on (GET ESB_EGRESS_FOLLOW_PATH with the run's token). It
 * ends at the token's expiry, when the engine closes it, or at our stop;
 * the entries' indexes let the engine tell from the ledger, once the run
 * has ended, those the follow did not bring, and no other. The follow is
 * no attempt, and a ledger query does not wait for it. */
static void follow_ledger(struct esb_egress_conn *c, const struct head *h) {
  static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n";
  struct esb_egress_proxy *p = c->proxy;
  if (admit(c, h, false) != ESB_EGRESS_ALLOWED) {
    refuse(c, ESB_EGRESS_BAD_TOKEN, "follow", 0);
    return;
  }
  bool on = send_all(c->client, head, sizeof head - 1);
  size_t next = 0;
  pthread_mutex_lock(&p->lock);
  c->run->following++;
  while (on && !p->stopping && (int64_t)time(NULL) < c->grant.expires) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = next < c->run->n_judged ? open_memstream(&text, &len) : NULL;
    for (; f && next < c->run->n_judged; next++) {
      const struct esb_egress_attempt *a = &c->run->ledger.v[c->run->judged[next]];
      fprintf(f, "seen %u %u 0 0 %zu %u\n%s\n", (unsigned)a->reason, a->port, strlen(a->host),
              (unsigned)c->run->judged[next], a->host);
    }
    pthread_mutex_unlock(&p->lock); /* a slow engine holds up its follow alone */
    if (f && fclose(f) != 0)
      on = false;
    else if (len)
      on = send_all(c->client, text, len);
    free(text);
    struct pollfd gone = { .fd = c->client, .events = POLLIN | POLLRDHUP }; /* the engine says nothing more */
    on = on && poll(&gone, 1, 0) == 0;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += FOLLOW_TICK_S;
    pthread_mutex_lock(&p->lock);
    if (on && next == c->run->n_judged && !p->stopping)
      pthread_cond_timedwait(&p->ended, &p->lock, &until);
  }
  c->run->following--;
  pthread_mutex_unlock(&p->lock);
}

/* A GET of path, the shared proxy's own (no attempt of a run's). */
static bool asks(const struct head *h, const char *path) {
  size_t len = strlen(path);
  return h->parser.method == HTTP_GET && h->url_len == len && !memcmp(h->buf + h->url_off, path, len);
}

/* The injection the connection's token names for host, with the proxy's
 * secret of that name; NULL: none (or a secret this proxy lacks: then the
 * log says so, and the connection is a blind tunnel, as without). */
static const struct esb_egress_rule *token_rule(struct esb_egress_conn *c, const char *host) {
  for (size_t i = 0; i < c->grant.n_inject; i++) {
    const struct esb_egress_inject *e = &c->grant.inject[i];
    if (strcasecmp(e->host, host) != 0)
      continue;
    const struct esb_egress_rule *secret = esb_egress_injector_secret(&c->proxy->inject, e->secret);
    if (!secret) {
      pthread_mutex_lock(&c->proxy->lock);
      log_attempt(c, NULL, "names a secret this proxy does not hold: no header added");
      pthread_mutex_unlock(&c->proxy->lock);
      return NULL;
    }
    c->rule = (struct esb_egress_rule){ .host = e->host, .header = e->header, .value = secret->value,
                                        .value_len = secret->value_len };
    return &c->rule;
  }
  return NULL;
}

/* ---- one connection, its verdict ---- */

static void serve_request(struct esb_egress_conn *c, char *buf) {
  struct esb_egress_proxy *p = c->proxy;
  struct head h;
  struct target t = { .host = "" };
  size_t len = 0;
  bool head_read = read_head(&(struct end){ .fd = c->client }, buf, &len, &h) == 0;
  enum esb_egress_reason r = head_read ? find_target(&h, &t) : ESB_EGRESS_BAD_REQUEST;
  if (p->shared && head_read && (asks(&h, ESB_EGRESS_LEDGER_PATH) || asks(&h, ESB_EGRESS_FOLLOW_PATH))) {
    (asks(&h, ESB_EGRESS_LEDGER_PATH) ? answer_ledger : follow_ledger)(c, &h);
    return;
  }
  enum esb_egress_reason token = p->shared ? admit(c, head_read ? &h : NULL, true) : ESB_EGRESS_ALLOWED;
  c->entry = add_entry(c, t.host, t.port);
  if (token != ESB_EGRESS_ALLOWED)
    r = token;
  if (r == ESB_EGRESS_ALLOWED)
    r = judge_name(c, &t);
  struct addrinfo *list = NULL;
  if (r == ESB_EGRESS_ALLOWED)
    r = resolve(p, &t, &list);
  const struct esb_egress_rule *rule = !p->injecting ? NULL
                                       : p->shared   ? token_rule(c, t.host)
                                                     : esb_egress_injector_rule(&p->inject, t.host);
  if (r != ESB_EGRESS_ALLOWED) {
    refuse(c, r, t.host, t.port);
  } else if (rule && t.tunnel) {
    serve_terminated(c, &t, list, rule, buf, len);
  } else {
    r = t.tunnel ? open_tunnel(c, &t, list, buf, &len) : open_plain(c, &t, list, buf, len, &h, rule);
    set_verdict(c, r);
    if (r == ESB_EGRESS_ALLOWED)
      relay(c, &(struct end){ .fd = c->client }, &(struct end){ .fd = c->upstream });
    else if (!t.tunnel)
      refuse(c, r, t.host, t.port);
  }
  if (list)
    freeaddrinfo(list);
}

/* The shared proxy's end of a connection: its attempt in the log, its
 * run's live count one less (a ledger query waits on it). The lock held. */
static void leave_run(struct esb_egress_conn *c) {
  if (c->entry >= 0)
    log_attempt(c, &c->ledger->v[c->entry], NULL);
  if (c->run) {
    c->run->live--;
    pthread_cond_broadcast(&c->proxy->ended);
  }
  c->run = NULL;
}

static void *serve(void *arg) {
  struct esb_egress_conn *c = arg;
  sigset_t pipe_set; /* OpenSSL writes with write(2): a gone peer is EPIPE, never the engine's end */
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
  char *buf = malloc(HELLO_MAX > HEAD_MAX ? HELLO_MAX : HEAD_MAX);
  if (buf)
    serve_request(c, buf);
  free(buf);
  pthread_mutex_lock(&c->proxy->lock);
  if (c->proxy->shared)
    leave_run(c);
  esb_egress_grant_release(&c->grant); /* before done: then the accepting thread may free c */
  close(c->client);
  if (c->upstream >= 0)
    close(c->upstream);
  c->client = c->upstream = -1;
  c->done = true;
  pthread_mutex_unlock(&c->proxy->lock);
  return NULL;
}

/* ---- accepting, starting, stopping ---- */

/* Joins and frees the connections whose threads have returned; the lock
 * held. */
static void reap_done(struct esb_egress_proxy *p) {
  for (struct esb_egress_conn **link = &p->conns; *link;) {
    struct esb_egress_conn *c = *link;
    if (!c->done) {
      link = &c->next;
      continue;
    }
    *link = c->next;
    pthread_join(c->thread, NULL); /* it has returned: no wait */
    free(c);
    p->n_conns--;
  }
}

/* A connection's thread, from the accepting one; the lock held. Where it
 * cannot have one, the connection is closed (and counted as left off). */
static void add_conn(struct esb_egress_proxy *p, int fd) {
  struct esb_egress_conn *c = p->n_conns < (p->shared ? SHARED_MAX_CONNS : MAX_CONNS) ? calloc(1, sizeof *c) : NULL;
  pthread_attr_t attr;
  bool started = false;
  if (c && pthread_attr_init(&attr) == 0) {
    *c = (struct esb_egress_conn){ .proxy = p, .client = fd, .upstream = -1, .entry = -1, .next = p->conns,
                                   .ledger = p->shared ? NULL : &p->ledger, .allow = p->allow, .deny = p->deny };
    pthread_attr_setstacksize(&attr, 256 * 1024);
    started = pthread_create(&c->thread, &attr, serve, c) == 0;
    pthread_attr_destroy(&attr);
  }
  if (!started) {
    free(c);
    close(fd);
    p->ledger.left_off++; /* the shared proxy's: which run's is unknown (it has no ledger of its own) */
    return;
  }
  p->conns = c;
  p->n_conns++;
}

static void *accept_loop(void *arg) {
  struct esb_egress_proxy *p = arg;
  for (;;) {
    int fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC), on = 1;
    if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
      continue;
    if (fd >= 0)
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    pthread_mutex_lock(&p->lock);
    bool stop = fd < 0 || p->stopping; /* stop shuts the socket down: accept fails */
    if (!stop) {
      reap_done(p);
      add_conn(p, fd);
    } else if (fd >= 0) {
      close(fd);
    }
    pthread_mutex_unlock(&p->lock);
    if (stop)
      return NULL;
  }
}

void esb_egress_attempt_write(const char *word, const struct esb_egress_attempt *a, FILE *f) {
  size_t len = strlen(a->host);
  fprintf(f, "%s %u %u %llu %llu %zu\n", word, (unsigned)a->reason, a->port, (unsigned long long)a->bytes_out,
          (unsigned long long)a->bytes_in, len);
  fwrite(a->host, 1, len, f);
  fputc('\n', f);
}

void esb_egress_ledger_write(const struct esb_egress_ledger *l, FILE *f) {
  fprintf(f, "left_off %llu\n", (unsigned long long)l->left_off);
  for (size_t i = 0; i < l->n; i++)
    esb_egress_attempt_write("attempt", &l->v[i], f);
  fputs("end\n", f);
}

int esb_egress_proxy_prepare_shared(struct esb_egress_proxy *p, const struct esb_plan *plan,
                                    const struct esb_egress_shared *cfg, struct esb_error *err) {
  p->shared = true;
  if (esb_egress_key_read(cfg->key_file, &p->key, &p->key_len, err) < 0 ||
      (plan->egress_hosts_file && load_pins(p, plan->egress_hosts_file, err) < 0))
    return -1;
  if (esb_netrules_build(NULL, plan->local.network_allow, plan->local.n_network_allow, &p->rules, &p->n_rules) < 0)
    return esb_error_errno(err, ESB_E_SYSTEM, "egress proxy: the host's addresses");
  if (!(p->tls = SSL_CTX_new(TLS_server_method())))
    return esb_error_set(err, ESB_E_SYSTEM, "egress proxy: OpenSSL's context");
  SSL_CTX_set_tlsext_servername_callback(p->tls, on_servername);
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->ended, NULL);
  p->prepared = true;
  if (cfg->ca_cert || cfg->ca_key || plan->egress_secrets) {
    if (!cfg->ca_cert || !cfg->ca_key)
      return esb_error_set(err, ESB_E_POLICY, "egress proxy: injecting credentials (--secret) needs the CA: "
                           "--ca-cert and --ca-key, both");
    p->injecting = true; /* released with the proxy, whatever init left */
    if (esb_egress_injector_init_shared(&p->inject, plan, cfg->ca_cert, cfg->ca_key, err) < 0)
      return -1;
  }
  return 0;
}

/* "HOST:PORT" (HOST an IPv4 or IPv6 address, [IPv6] too) into *at. 0, or -1. */
static int parse_listen(const char *spec, struct sockaddr_storage *at, socklen_t *len) {
  char host[64];
  const char *colon = strrchr(spec, ':');
  char *end;
  long port = colon ? strtol(colon + 1, &end, 10) : 0;
  size_t n = colon ? (size_t)(colon - spec) : 0;
  if (!colon || *end || port < 1 || port > 65535 || n >= sizeof host)
    return -1;
  if (n >= 2 && spec[0] == '[' && spec[n - 1] == ']')
    spec++, n -= 2;
  memcpy(host, spec, n);
  host[n] = '\0';
  struct sockaddr_in *v4 = (struct sockaddr_in *)at;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)at;
  memset(at, 0, sizeof *at);
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    *len = sizeof *v4;
    return 0;
  }
  if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    *len = sizeof *v6;
    return 0;
  }
  return -1;
}

int esb_egress_proxy_prepare(struct esb_egress_proxy *p, const struct esb_plan *plan, struct esb_error *err) {
  p->allow = plan->egress_allow;
  p->deny = plan->egress_deny;
  p->ledger.wanted = true;
  if (plan->egress_hosts_file && load_pins(p, plan->egress_hosts_file, err) < 0)
    return -1;
  if (esb_netrules_build(NULL, plan->local.network_allow, plan->local.n_network_allow, &p->rules, &p->n_rules) < 0)
    return esb_error_errno(err, ESB_E_SYSTEM, "egress proxy: the host's addresses");
  SSL_CTX *tls = SSL_CTX_new(TLS_server_method());
  if (!tls)
    return esb_error_set(err, ESB_E_SYSTEM, "egress proxy: OpenSSL's context");
  SSL_CTX_set_tlsext_servername_callback(tls, on_servername);
  p->tls = tls;
  if (plan->n_egress_inject) {
    p->injecting = true; /* released with the proxy, whatever init left */
    if (esb_egress_injector_init(&p->inject, plan, err) < 0) {
      pthread_mutex_init(&p->lock, NULL);
      pthread_cond_init(&p->ended, NULL);
      p->prepared = true;
      return -1;
    }
  }
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->ended, NULL);
  p->prepared = true;
  return 0;
}

/* Serves the listening socket fd (the proxy's now) on a thread of its own. */
static int start_accepting(struct esb_egress_proxy *p, int fd, struct esb_error *err) {
  p->listen_fd = fd;
  int rc = pthread_create(&p->acceptor, NULL, accept_loop, p);
  if (rc != 0) {
    errno = rc;
    return esb_error_errno(err, ESB_E_SYSTEM, "egress proxy: its thread");
  }
  p->accepting = true;
  return 0;
}

struct listen_job {
  int ns_fd, fd, err;
};

/* On a thread of its own, which ends in the run's network namespace: there
 * loopback up and the socket made. The thread's namespace goes with it;
 * the socket stays the run's namespace's. */
static void *listen_in_namespace(void *arg) {
  struct listen_job *j = arg;
  struct ifreq ifr = { .ifr_name = "lo" };
  struct sockaddr_in at = { .sin_family = AF_INET, .sin_port = htons(ESB_EGRESS_PROXY_PORT),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  int ctl = -1, on = 1;
  if (setns(j->ns_fd, CLONE_NEWNET) < 0 || (ctl = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
      ioctl(ctl, SIOCGIFFLAGS, &ifr) < 0 || (ifr.ifr_flags |= IFF_UP, ioctl(ctl, SIOCSIFFLAGS, &ifr) < 0) ||
      (j->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
      setsockopt(j->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
      bind(j->fd, (struct sockaddr *)&at, sizeof at) < 0 || listen(j->fd, 128) < 0)
    j->err = errno;
  if (ctl >= 0)
    close(ctl);
  return NULL;
}

int esb_egress_proxy_start(struct esb_egress_proxy *p, pid_t child, struct esb_error *err) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/ns/net", (int)child);
  struct listen_job j = { .ns_fd = open(path, O_RDONLY | O_CLOEXEC), .fd = -1 };
  pthread_t t;
  if (j.ns_fd < 0)
    return esb_error_errno(err, ESB_E_SANDBOX_SETUP, "egress proxy: the sandbox's network namespace");
  int rc = pthread_create(&t, NULL, listen_in_namespace, &j);
  if (rc == 0)
    pthread_join(t, NULL);
  close(j.ns_fd);
  if (rc != 0 || j.err) {
    if (j.fd >= 0)
      close(j.fd);
    errno = rc ? rc : j.err;
    return esb_error_errno(err, ESB_E_SANDBOX_SETUP, "egress proxy: listening in the sandbox's network "
                           "namespace (the engine needs to be root)");
  }
  return start_accepting(p, j.fd, err);
}

int esb_egress_proxy_listen(struct esb_egress_proxy *p, const char *spec, struct esb_error *err) {
  struct sockaddr_storage at;
  socklen_t len;
  int on = 1;
  if (parse_listen(spec, &at, &len) < 0)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "egress proxy: --listen %s: expected ADDRESS:PORT "
                         "(0.0.0.0:3128, [::]:3128)", spec);
  int fd = socket(at.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
      bind(fd, (struct sockaddr *)&at, len) < 0 || listen(fd, 1024) < 0) {
    int saved = errno;
    if (fd >= 0)
      close(fd);
    errno = saved;
    return esb_error_errno(err, ESB_E_SYSTEM, "egress proxy: listening on %s", spec);
  }
  return start_accepting(p, fd, err);
}

void esb_egress_proxy_stop(struct esb_egress_proxy *p) {
  if (!p->prepared)
    return;
  pthread_mutex_lock(&p->lock);
  p->stopping = true;
  pthread_cond_broadcast(&p->ended); /* a ledger query, a follow waits no more */
  if (p->listen_fd >= 0)
    shutdown(p->listen_fd, SHUT_RDWR);
  for (struct esb_egress_conn *c = p->conns; c; c = c->next) {
    if (c->client >= 0)
      shutdown(c->client, SHUT_RDWR);
    if (c->upstream >= 0)
      shutdown(c->upstream, SHUT_RDWR);
  }
  pthread_mutex_unlock(&p->lock);
  if (p->accepting)
    pthread_join(p->acceptor, NULL);
  p->accepting = false;
  /* No thread adds a connection now: join each, the lock let go meanwhile. */
  while (p->conns) {
    struct esb_egress_conn *c = p->conns;
    pthread_join(c->thread, NULL);
    p->conns = c->next;
    free(c);
    p->n_conns--;
  }
  if (p->listen_fd >= 0)
    close(p->listen_fd);
  p->listen_fd = -1;
}

void esb_egress_proxy_release(struct esb_egress_proxy *p, struct esb_egress_ledger *out) {
  esb_egress_proxy_stop(p);
  if (out) {
    esb_egress_ledger_release(out);
    *out = p->ledger;
  } else {
    esb_egress_ledger_release(&p->ledger);
  }
  if (p->prepared) {
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->ended);
  }
  while (p->runs) {
    struct esb_egress_run *r = p->runs;
    p->runs = r->next;
    esb_egress_ledger_release(&r->ledger);
    free(r);
  }
  if (p->key)
    OPENSSL_cleanse(p->key, p->key_len);
  free(p->key);
  SSL_CTX_free(p->tls);
  if (p->injecting)
    esb_egress_injector_release(&p->inject);
  free(p->rules);
  for (size_t i = 0; i < p->n_pins; i++)
    free(p->pins[i].name);
  free(p->pins);
  *p = (struct esb_egress_proxy)ESB_EGRESS_PROXY_INIT;
}
