#include "engine/contract/egress.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static const char *const reason_names[ESB_EGRESS_REASON__COUNT] = {
  [ESB_EGRESS_ALLOWED] = "allowed",
  [ESB_EGRESS_NOT_LISTED] = "not_listed",
  [ESB_EGRESS_DENIED] = "denied",
  [ESB_EGRESS_UNRESOLVED] = "unresolved",
  [ESB_EGRESS_BLOCKED_ADDRESS] = "blocked_address",
  [ESB_EGRESS_CONNECT_FAILED] = "connect_failed",
  [ESB_EGRESS_SNI_MISMATCH] = "sni_mismatch",
  [ESB_EGRESS_NOT_TLS] = "not_tls",
  [ESB_EGRESS_HOST_MISMATCH] = "host_mismatch",
  [ESB_EGRESS_BAD_REQUEST] = "bad_request",
  [ESB_EGRESS_UNVERIFIED] = "upstream_unverified",
  [ESB_EGRESS_TOKEN_EXPIRED] = "token_expired",
  [ESB_EGRESS_BAD_TOKEN] = "bad_token",
};

const char *esb_egress_reason_name(enum esb_egress_reason reason) {
  return (unsigned)reason < ESB_EGRESS_REASON__COUNT ? reason_names[reason] : "bad_request";
}

/* A DNS label of letters, digits and inner hyphens (LDH, RFC 1123), 1-63
 * bytes. Underscores too: some service names carry them. */
static bool label_ok(const char *s, size_t len) {
  if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return false;
  }
  return true;
}

/* The name of len bytes: labels, at least two, the last not all digits
 * (then it is an IPv4 address, or a name no resolver answers). */
static const char *name_problem(const char *s, size_t len) {
  if (len == 0)
    return "no host name";
  if (len > ESB_EGRESS_HOST_MAX)
    return "a host name longer than 253 bytes";
  size_t labels = 0, start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && s[i] != '.')
      continue;
    if (!label_ok(s + start, i - start))
      return "not a host name (labels of letters, digits and '-', separated by '.')";
    labels++;
    if (i == len && strspn(s + start, "0123456789") >= i - start)
      return "an address, not a host name";
    start = i + 1;
  }
  return labels < 2 ? "a single label, not a host name with its domain" : NULL;
}

const char *esb_egress_host_problem(const char *host) {
  return name_problem(host, strlen(host));
}

/* An address entry's addresses: the family, the address (4 or 16 bytes)
 * and how many of its leading bits an address must share with it. */
struct address_range {
  int family;
  unsigned char bytes[16];
  unsigned bits;
};

/* Whether s[0..len) is written as an address entry is: "[...]" (IPv6), or
 * digits, dots and a "/" (IPv4). A name never is: its last label has a
 * letter. */
static bool looks_like_address(const char *s, size_t len) {
  if (len && s[0] == '[')
    return true;
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '/'))
      return false;
  return len > 0;
}

/* The prefix length p[0..len): 0 to max. */
static bool prefix_ok(const char *p, size_t len, unsigned max, unsigned *bits) {
  unsigned n = 0;
  if (len == 0 || len > 3)
    return false;
  for (size_t i = 0; i < len; i++) {
    if (p[i] < '0' || p[i] > '9')
      return false;
    n = n * 10 + (unsigned)(p[i] - '0');
  }
  *bits = n;
  return n <= max;
}

/* An IPv4 address (or range) mapped into IPv6 (::ffff:0:0/96) as the
 * IPv4 one, so that either form names the other. */
static void unmap(struct address_range *r) {
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (r->family == AF_INET6 && r->bits >= 96 && !memcmp(r->bytes, mapped, sizeof mapped)) {
    memmove(r->bytes, r->bytes + 12, 4);
    r->family = AF_INET;
    r->bits -= 96;
  }
}

/* s[0..len) as an address entry ("203.0.113.5", "203.0.113.0/24",
 * "[2001:db8::1]", "[2001:db8::]/32") into *r: NULL, or why it is none. */
static const char *range_problem(const char *s, size_t len, struct address_range *r) {
  char text[INET6_ADDRSTRLEN];
  bool v6 = len && s[0] == '[';
  const char *addr = v6 ? s + 1 : s, *end = s + len;
  const char *close = v6 ? memchr(s, ']', len) : NULL, *slash;
  if (v6 && !close)
    return "'[' without its ']'";
  slash = v6 ? (close + 1 < end ? close + 1 : NULL) : memchr(s, '/', len);
  if (slash && *slash != '/')
    return "after an IPv6 address's ']' only \"/\" and a prefix length";
  size_t alen = (size_t)((v6 ? close : slash ? slash : end) - addr);
  if (alen == 0 || alen >= sizeof text)
    return v6 ? "not an IPv6 address in '[...]'" : "not an IPv4 address";
  memcpy(text, addr, alen);
  text[alen] = '\0';
  r->family = v6 ? AF_INET6 : AF_INET;
  if (inet_pton(r->family, text, r->bytes) != 1)
    return v6 ? "not an IPv6 address in '[...]'" : "not an IPv4 address (an IPv6 one goes in '[...]')";
  unsigned max = v6 ? 128 : 32;
  r->bits = max;
  if (slash && !prefix_ok(slash + 1, (size_t)(end - slash - 1), max, &r->bits))
    return v6 ? "an IPv6 prefix length is 0 to 128" : "an IPv4 prefix length is 0 to 32";
  for (unsigned b = r->bits; b < max; b++)
    if (r->bytes[b / 8] & (0x80 >> (b % 8)))
      return "a range's address has bits set past its prefix length";
  unmap(r);
  return NULL;
}

/* Splits entry's ":PORT" off: the length before it into *len, the port
 * (0: none) into *port. NULL, or why the port is none. */
static const char *split_port(const char *entry, size_t *len, unsigned *port) {
  const char *after = entry[0] == '[' ? strchr(entry, ']') : entry;
  *len = strlen(entry);
  *port = 0;
  if (!after)
    return "'[' without its ']'";
  const char *colon = strchr(after, ':');
  if (!colon)
    return NULL;
  if (strchr(colon + 1, ':'))
    return entry[0] == '[' ? "a port must be 1 to 65535" : "an IPv6 address goes in '[...]'";
  const char *p = colon + 1;
  if (!*p || strspn(p, "0123456789") != strlen(p) || strlen(p) > 5 || atoi(p) < 1 || atoi(p) > 65535)
    return "a port must be 1 to 65535";
  *len = (size_t)(colon - entry);
  *port = (unsigned)atoi(p);
  return NULL;
}

const char *esb_egress_entry_problem(const char *entry) {
  size_t len;
  unsigned port;
  if (strlen(entry) > ESB_EGRESS_ENTRY_MAX)
    return "longer than a host name and a port";
  const char *problem = split_port(entry, &len, &port);
  if (problem)
    return problem;
  if (looks_like_address(entry, len)) {
    struct address_range r;
    return range_problem(entry, len, &r);
  }
  if (len >= 2 && entry[0] == '*' && entry[1] == '.')
    return name_problem(entry + 2, len - 2);
  if (memchr(entry, '*', len))
    return "'*' only as a whole first label (\"*.example.com\")";
  return name_problem(entry, len);
}

bool esb_egress_entry_is_address(const char *entry) {
  size_t len;
  unsigned port;
  return !split_port(entry, &len, &port) && looks_like_address(entry, len);
}

/* host ("203.0.113.5", "2001:db8::1", either in "[...]") as an address
 * into *r: whether it is one. An IPv4 address mapped into IPv6 is the IPv4
 * one, so that a range of either form names it. */
static bool host_address(const char *host, struct address_range *r) {
  char text[INET6_ADDRSTRLEN];
  size_t len = strlen(host);
  if (len >= 2 && host[0] == '[' && host[len - 1] == ']')
    host++, len -= 2;
  if (len == 0 || len >= sizeof text)
    return false;
  memcpy(text, host, len);
  text[len] = '\0';
  if (inet_pton(AF_INET, text, r->bytes) == 1)
    r->family = AF_INET, r->bits = 32;
  else if (inet_pton(AF_INET6, text, r->bytes) == 1)
    r->family = AF_INET6, r->bits = 128;
  else
    return false;
  unmap(r);
  return true;
}

bool esb_egress_host_is_address(const char *host) {
  struct address_range r;
  return host_address(host, &r);
}

/* Whether the address a is within the range r. */
static bool range_holds(const struct address_range *r, const struct address_range *a) {
  if (r->family != a->family)
    return false;
  unsigned whole = r->bits / 8, rest = r->bits % 8;
  if (memcmp(r->bytes, a->bytes, whole) != 0)
    return false;
  unsigned char mask = (unsigned char)(0xff << (8 - rest));
  return rest == 0 || (r->bytes[whole] & mask) == (a->bytes[whole] & mask);
}

bool esb_egress_entry_matches(const char *entry, const char *host, unsigned port) {
  size_t len;
  unsigned want;
  if (split_port(entry, &len, &want) || (want && want != port))
    return false;
  if (looks_like_address(entry, len)) {
    struct address_range r, a;
    return !range_problem(entry, len, &r) && host_address(host, &a) && range_holds(&r, &a);
  }
  size_t hlen = strlen(host);
  if (hlen && host[hlen - 1] == '.')
    hlen--;
  if (len >= 2 && entry[0] == '*' && entry[1] == '.') {
    /* ".a.b" at the end of a longer name: a.b itself is not below a.b */
    size_t suffix = len - 1;
    return hlen > suffix && !strncasecmp(host + hlen - suffix, entry + 1, suffix);
  }
  return hlen == len && !strncasecmp(host, entry, len);
}

bool esb_egress_list_matches(char *const *list, const char *host, unsigned port) {
  for (char *const *e = list; e && *e; e++)
    if (esb_egress_entry_matches(*e, host, port))
      return true;
  return false;
}

long esb_egress_ledger_add(struct esb_egress_ledger *l, const char *host, unsigned port) {
  if (l->n == ESB_EGRESS_LEDGER_MAX) {
    l->left_off++;
    return -1;
  }
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 8;
    struct esb_egress_attempt *grown = realloc(l->v, cap * sizeof *grown);
    if (!grown) {
      l->left_off++;
      return -1;
    }
    l->v = grown;
    l->cap = cap;
  }
  char *copy = strdup(host);
  if (!copy) {
    l->left_off++;
    return -1;
  }
  for (char *c = copy; *c; c++)
    if (*c >= 'A' && *c <= 'Z')
      *c = (char)(*c - 'A' + 'a');
  l->v[l->n] = (struct esb_egress_attempt){ .host = copy, .port = port, .reason = ESB_EGRESS_BAD_REQUEST };
  return (long)l->n++;
}

void esb_egress_ledger_release(struct esb_egress_ledger *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i].host);
  free(l->v);
  *l = (struct esb_egress_ledger){ 0 };
}
