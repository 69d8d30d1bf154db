#include "policy/session.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/contract/limits.h"
#include "engine/strv.h"
#include "luaglue/fields.h"

void esb_session_decision_release(struct esb_session_decision *d) {
  esb_strv_free(d->clamped);
  free(d->tenant_label);
  esb_strv_free(d->kernels);
  *d = (struct esb_session_decision){ .limits = { .network = -1 } };
}

/* The languages with a kernel where the policy says nothing of them. */
static const char *const default_kernels[] = { "python", "node" };
/* A language's name as the session's record keeps it: one word. */
#define LANGUAGE_NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-"

static char **strv_of(const char *const *v, size_t n) {
  struct esb_strv sv = ESB_STRV_INIT;
  for (size_t i = 0; i < n; i++)
    if (esb_strv_push(&sv, v[i]) < 0) {
      esb_strv_clear(&sv);
      return NULL;
    }
  return esb_strv_detach(&sv);
}

/* value, or the engine's most with a note in *notes saying so. */
static uint64_t bounded(const char *name, uint64_t value, struct esb_strv *notes, bool *nomem) {
  if (value <= ESB_SESSION_MAX_MS)
    return value;
  char note[128];
  snprintf(note, sizeof note, "%s %llu lowered to the engine's ceiling %llu", name, (unsigned long long)value,
           (unsigned long long)ESB_SESSION_MAX_MS);
  if (esb_strv_push(notes, note) < 0)
    *nomem = true;
  return ESB_SESSION_MAX_MS;
}

int esb_session_decision_default(const struct esb_session_ask *ask, struct esb_session_decision *d,
                                 struct esb_error *err) {
  struct esb_strv notes = ESB_STRV_INIT;
  bool nomem = false;
  d->ttl_ms = bounded("ttl_ms", ask->ttl_ms ? ask->ttl_ms : ESB_SESSION_DEFAULT_TTL_MS, &notes, &nomem);
  d->idle_timeout_ms = bounded("idle_timeout_ms", ask->idle_timeout_ms ? ask->idle_timeout_ms
                                                                        : ESB_SESSION_DEFAULT_IDLE_MS,
                               &notes, &nomem);
  d->limits = ask->req->limits; /* the plan's ceilings hold them */
  d->clamped = notes.n ? esb_strv_detach(&notes) : NULL;
  d->kernels = strv_of(default_kernels, sizeof default_kernels / sizeof default_kernels[0]);
  if (nomem || (notes.n && !d->clamped) || !d->kernels) {
    esb_strv_clear(&notes);
    return esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  }
  return 0;
}

/* ---- labels ---- */

static bool alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A label's name or a non-empty value: at most 63 of [-_.A-Za-z0-9],
 * starting and ending with a letter or digit. */
static bool label_word(const char *s, size_t n) {
  if (n == 0 || n > 63 || !alnum(s[0]) || !alnum(s[n - 1]))
    return false;
  for (size_t i = 0; i < n; i++)
    if (!alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
      return false;
  return true;
}

/* A DNS-1123 subdomain: dot-separated labels of [-a-z0-9], each starting
 * and ending with a letter or digit, at most 253 in all. */
static bool dns_subdomain(const char *s, size_t n) {
  if (n == 0 || n > 253)
    return false;
  for (size_t start = 0, i = 0; i <= n; i++) {
    if (i < n && s[i] != '.') {
      if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= '0' && s[i] <= '9') && s[i] != '-')
        return false;
      continue;
    }
    if (i == start || s[start] == '-' || s[i - 1] == '-' || i - start > 63)
      return false;
    start = i + 1;
  }
  return true;
}

/* Whether the prefix is one of domain's or domain itself. */
static bool within(const char *prefix, size_t n, const char *domain) {
  size_t m = strlen(domain);
  return n >= m && memcmp(prefix + n - m, domain, m) == 0 && (n == m || prefix[n - m - 1] == '.');
}

static const char *const kept_prefixes[] = { "echo-sandbox.io", "kubernetes.io", "k8s.io" };

/* Why the key (n bytes) is no label key a request may give, or NULL. */
static const char *key_problem(const char *key, size_t n) {
  const char *slash = memchr(key, '/', n);
  size_t name_at = slash ? (size_t)(slash - key) + 1 : 0;
  if (!label_word(key + name_at, n - name_at))
    return "a key's name is 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit";
  if (!slash)
    return NULL;
  if (!dns_subdomain(key, name_at - 1))
    return "a key's prefix (before '/') is a DNS-1123 subdomain: lower-case letters, digits, '-' and '.'";
  for (size_t i = 0; i < sizeof kept_prefixes / sizeof kept_prefixes[0]; i++)
    if (within(key, name_at - 1, kept_prefixes[i]))
      return "the prefixes echo-sandbox.io, kubernetes.io and k8s.io (and their subdomains) are the engine's "
             "and Kubernetes' own";
  return NULL;
}

/* ---- the decision ---- */

/* The decision's fields (policy/session_fields.def). */
static const char *const decision_fields[] = {
#define ESB_SESSION_FIELD(name, kind, doc) name,
#include "policy/session_fields.def"
#undef ESB_SESSION_FIELD
  NULL
};

/* limits: under their policy names (engine/contract/limits.def) and no
 * other, each a request's value: a number 1 or more, a switch a boolean. */
static void read_limits(struct esb_fields *f, int t, struct esb_limits *l) {
  if (!esb_fields_enter(f, t, "limits"))
    return;                                    /* limits */
  const char *known[ESB_LIMIT__COUNT + 1];
  for (size_t i = 0; i < ESB_LIMIT__COUNT; i++)
    known[i] = esb_limit_fields[i].plan_key;
  known[ESB_LIMIT__COUNT] = NULL;
  esb_fields_only(f, -1, known);
  for (size_t i = 0; i < ESB_LIMIT__COUNT; i++) {
    const struct esb_limit_field *d = &esb_limit_fields[i];
    void *member = (char *)l + d->request_offset;
    bool on;
    if (d->kind != ESB_LIMIT_IS_BOOL)
      esb_fields_uint(f, -1, d->plan_key, 1, member);
    else if (esb_fields_bool(f, -1, d->plan_key, &on))
      *(int *)member = on;
  }
  esb_fields_leave(f);                         /* -- */
}

/* A vector that is NULL where empty, as the decision says none. */
static void none_if_empty(char ***v) {
  if (*v && !**v) {
    esb_strv_free(*v);
    *v = NULL;
  }
}

static void read_lifetime(struct esb_fields *f, int t, const char *name, uint64_t *v) {
  char expected[96];
  snprintf(expected, sizeof expected, "a number of milliseconds from 1 to %llu", (unsigned long long)ESB_SESSION_MAX_MS);
  if (!esb_fields_uint(f, t, name, 1, v) || *v > ESB_SESSION_MAX_MS)
    esb_fields_bad(f, t, name, expected);
}

int esb_read_session_decision(lua_State *L, struct esb_session_decision *d, struct esb_error *err) {
  struct esb_fields f = ESB_FIELDS_INIT(L, "session", err);
  int t = lua_gettop(L);
  d->limits.network = -1;
  esb_fields_only(&f, t, decision_fields);
  read_lifetime(&f, t, "ttl_ms", &d->ttl_ms);
  read_lifetime(&f, t, "idle_timeout_ms", &d->idle_timeout_ms);
  read_limits(&f, t, &d->limits);
  d->clamped = esb_fields_strv(&f, t, "clamped", ESB_FIELDS_ARRAY, NULL);
  none_if_empty(&d->clamped);
  /* A key a request's label may have, or no request could match it. */
  d->tenant_label = esb_fields_string(&f, t, "tenant_label");
  if (d->tenant_label && key_problem(d->tenant_label, strlen(d->tenant_label)))
    esb_fields_bad(&f, t, "tenant_label", "a label's key, such as \"tenant\" or \"example.com/team\"");
  esb_fields_uint(&f, t, "max_per_tenant", 0, &d->max_per_tenant);
  if (d->max_per_tenant && !d->tenant_label)
    esb_fields_fail(&f, "policy hook 'session' returned max_per_tenant without tenant_label: whose sessions "
                    "does it count?");
  size_t n = 0;
  d->kernels = esb_fields_strv(&f, t, "kernels", ESB_FIELDS_ARRAY, &n);
  for (size_t i = 0; d->kernels && i < n && !f.failed; i++)
    if (!d->kernels[i][0] || strspn(d->kernels[i], LANGUAGE_NAME_CHARS) != strlen(d->kernels[i]))
      esb_fields_bad(&f, t, "kernels", "an array of language names (letters, digits, '.', '_', '+', '-')");
  if (!f.failed && !d->kernels && !(d->kernels = strv_of(NULL, 0)))
    esb_fields_nomem(&f, "kernels");
  return f.failed ? -1 : 0;
}

int esb_session_labels_check(char *const *labels, struct esb_error *err) {
  size_t count = 0;
  for (char *const *p = labels; p && *p; p++, count++) {
    const char *eq = strchr(*p, '=');
    if (!eq)
      return esb_error_set(err, ESB_E_INVALID_REQUEST, "label '%.300s': expected KEY=VALUE", *p);
    size_t n = (size_t)(eq - *p);
    const char *why = key_problem(*p, n);
    if (why)
      return esb_error_set(err, ESB_E_INVALID_REQUEST, "label '%.*s': %s", (int)(n > 300 ? 300 : n), *p, why);
    if (eq[1] && !label_word(eq + 1, strlen(eq + 1)))
      return esb_error_set(err, ESB_E_INVALID_REQUEST, "label %.*s='%.300s': a value is empty or 1 to 63 letters, "
                           "digits, '-', '_' or '.', starting and ending with a letter or digit",
                           (int)n, *p, eq + 1);
    for (char *const *q = labels; q < p; q++)
      if (strncmp(*q, *p, n + 1) == 0)
        return esb_error_set(err, ESB_E_INVALID_REQUEST, "label '%.*s' is given twice", (int)n, *p);
  }
  if (count > ESB_SESSION_LABELS_MAX)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "%zu labels: a session carries at most %d", count,
                         ESB_SESSION_LABELS_MAX);
  return 0;
}
