#include "engine/contract/egress.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

const char *esb_egress_entry_problem(const char *entry) {
  size_t len = strlen(entry);
  if (len > ESB_EGRESS_ENTRY_MAX)
    return "longer than a host name and a port";
  if (strchr(entry, '[') || strchr(entry, '/') || strchr(entry, ':') != strrchr(entry, ':'))
    return "an address or a range, not a host name";
  const char *colon = strchr(entry, ':');
  if (colon) {
    const char *p = colon + 1;
    if (!*p || strspn(p, "0123456789") != strlen(p) || strlen(p) > 5 || atoi(p) < 1 || atoi(p) > 65535)
      return "a port must be 1 to 65535";
    len = (size_t)(colon - entry);
  }
  if (len >= 2 && entry[0] == '*' && entry[1] == '.')
    return name_problem(entry + 2, len - 2);
  if (memchr(entry, '*', len))
    return "'*' only as a whole first label (\"*.example.com\")";
  return name_problem(entry, len);
}

bool esb_egress_entry_matches(const char *entry, const char *host, unsigned port) {
  const char *colon = strchr(entry, ':');
  size_t len = colon ? (size_t)(colon - entry) : strlen(entry);
  if (colon && (unsigned)atoi(colon + 1) != port)
    return false;
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
