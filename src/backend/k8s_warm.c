#include "backend/k8s_warm.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/k8s_command.h"
#include "backend/k8s_session.h"
#include "engine/strv.h"

void esb_warm_pool_release(struct esb_warm_pool *pool) {
  free(pool->name);
  free(pool->namespace_);
  free(pool->image);
  free(pool->shape);
  *pool = (struct esb_warm_pool){ 0 };
}

void esb_warm_hash(const char *shape, char out[ESB_WARM_HASH_HEX + 1]) {
  uint64_t h = 14695981039346656037ull;
  for (const unsigned char *p = (const unsigned char *)shape; *p; p++) {
    h ^= *p;
    h *= 1099511628211ull;
  }
  snprintf(out, ESB_WARM_HASH_HEX + 1, "%016" PRIx64, h);
}

/* One line a pod, its fields apart by tabs (an empty field where the pod
 * has none): the list needs no JSON parser, and a value never holds a tab
 * (names, labels, phases and times cannot). */
#define FIELD(path) "{" path "}{\"\\t\"}"
static const char list_template[] =
  "jsonpath={range .items[*]}" FIELD(".metadata.name") FIELD(".metadata.resourceVersion") FIELD(".status.phase")
  FIELD(".status.reason") FIELD(".status.conditions[?(@.type==\"Ready\")].status")
  FIELD(".metadata.deletionTimestamp") FIELD(".metadata.labels.echo-sandbox\\.io/warm-state")
  FIELD(".metadata.labels.echo-sandbox\\.io/warm-pool") FIELD(".metadata.labels.echo-sandbox\\.io/warm-hash")
  FIELD(".metadata.labels.echo-sandbox\\.io/warm-expires") "{.metadata.creationTimestamp}{\"\\n\"}{end}";
#undef FIELD
#define LIST_FIELDS 11

int esb_warm_list_tail(const char *pool, const char *hash, const char *state, char selector[ESB_WARM_SELECTOR_MAX],
                       const char *tail[8]) {
  int n = pool ? snprintf(selector, ESB_WARM_SELECTOR_MAX, ESB_WARM_POOL_LABEL "=%s", pool)
               : snprintf(selector, ESB_WARM_SELECTOR_MAX, ESB_WARM_POOL_LABEL);
  if (hash && n >= 0 && n < ESB_WARM_SELECTOR_MAX)
    n += snprintf(selector + n, ESB_WARM_SELECTOR_MAX - (size_t)n, "," ESB_WARM_HASH_LABEL "=%s", hash);
  if (state && n >= 0 && n < ESB_WARM_SELECTOR_MAX)
    n += snprintf(selector + n, ESB_WARM_SELECTOR_MAX - (size_t)n, "," ESB_WARM_STATE_LABEL "=%s", state);
  if (n < 0 || n >= ESB_WARM_SELECTOR_MAX)
    return -1;
  const char *words[] = {"get", "pods", "-l", selector, "-o", list_template, "--request-timeout=10s", NULL};
  memcpy(tail, words, sizeof words);
  return 0;
}

/* "2026-12-07T01:02:03Z" as seconds since the epoch; 0 where it is not one. */
static int64_t rfc3339(const char *s) {
  struct tm tm = { 0 };
  const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return end && !*end ? (int64_t)timegm(&tm) : 0;
}

static void copy_field(char *dst, size_t size, const char *src, size_t n) {
  snprintf(dst, size, "%.*s", (int)(n < size ? n : size - 1), src);
}

/* One line's fields into p; false where it has not all of them. */
static bool parse_line(const char *line, size_t len, struct esb_warm_pod *p) {
  const char *f[LIST_FIELDS];
  size_t flen[LIST_FIELDS], k = 0;
  for (const char *at = line, *end = line + len; k < LIST_FIELDS; k++) {
    const char *tab = memchr(at, '\t', (size_t)(end - at));
    if (!tab && k < LIST_FIELDS - 1)
      return false;
    f[k] = at;
    flen[k] = tab ? (size_t)(tab - at) : (size_t)(end - at);
    at = tab ? tab + 1 : end;
  }
  char num[32];
  *p = (struct esb_warm_pod){ 0 };
  copy_field(p->name, sizeof p->name, f[0], flen[0]);
  copy_field(p->resource_version, sizeof p->resource_version, f[1], flen[1]);
  copy_field(p->phase, sizeof p->phase, f[2], flen[2]);
  copy_field(p->reason, sizeof p->reason, f[3], flen[3]);
  p->ready = flen[4] == 4 && memcmp(f[4], "True", 4) == 0;
  p->deleting = flen[5] > 0;
  copy_field(p->state, sizeof p->state, f[6], flen[6]);
  copy_field(p->pool, sizeof p->pool, f[7], flen[7]);
  copy_field(p->hash, sizeof p->hash, f[8], flen[8]);
  copy_field(num, sizeof num, f[9], flen[9]);
  p->expires = strtoll(num, NULL, 10);
  copy_field(num, sizeof num, f[10], flen[10]);
  p->created = rfc3339(num);
  return p->name[0] && p->resource_version[0];
}

int esb_warm_parse(const char *text, size_t len, struct esb_warm_pod **pods, size_t *n) {
  size_t lines = 0;
  for (size_t i = 0; i < len; i++)
    lines += text[i] == '\n';
  *n = 0;
  if (!(*pods = calloc(lines + 1, sizeof **pods)))
    return -1;
  for (const char *at = text, *end = text + len; at < end;) {
    const char *nl = memchr(at, '\n', (size_t)(end - at));
    size_t l = nl ? (size_t)(nl - at) : (size_t)(end - at);
    if (parse_line(at, l, &(*pods)[*n]))
      (*n)++;
    at += l + 1;
  }
  return 0;
}

bool esb_warm_claimable(const struct esb_warm_pod *p, int64_t not_after) {
  return p->ready && !p->deleting && strcmp(p->phase, "Running") == 0 && strcmp(p->state, "ready") == 0 &&
         p->expires > not_after;
}

int esb_warm_claim_patch(const struct esb_warm_pod *p, char *out, size_t n) {
  const char *rv = p->resource_version;
  if (!rv[0] || strspn(rv, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(rv))
    return -1; /* it goes into JSON as it is */
  int len = snprintf(out, n, "{\"metadata\":{\"resourceVersion\":\"%s\",\"labels\":{\"" ESB_WARM_STATE_LABEL
                     "\":\"claimed\"}}}", rv);
  return len < 0 || (size_t)len >= n ? -1 : 0;
}

char **esb_warm_claim_argv(const struct esb_k8s_settings *k, const struct esb_warm_pod *p) {
  char patch[128];
  if (esb_warm_claim_patch(p, patch, sizeof patch) < 0)
    return NULL;
  const char *tail[] = {"patch", "pod", p->name, "--type=merge", "-p", patch, "--request-timeout=10s", NULL};
  return esb_k8s_kubectl_argv(k, tail);
}

/* The set of esb_warm_take: the pods of claims in flight and of runs, a few
 * hundred at most in one process. */
#define TAKEN_MAX 512
static char taken[TAKEN_MAX][64];
static pthread_mutex_t taken_lock = PTHREAD_MUTEX_INITIALIZER;

static int taken_at(const char *name) {
  for (int i = 0; i < TAKEN_MAX; i++)
    if (taken[i][0] && strcmp(taken[i], name) == 0)
      return i;
  return -1;
}

bool esb_warm_taken(const char *name) {
  pthread_mutex_lock(&taken_lock);
  bool yes = taken_at(name) >= 0;
  pthread_mutex_unlock(&taken_lock);
  return yes;
}

bool esb_warm_take(const char *name) {
  pthread_mutex_lock(&taken_lock);
  bool ok = taken_at(name) < 0;
  for (int i = 0; ok && i < TAKEN_MAX; i++)
    if (!taken[i][0]) {
      snprintf(taken[i], sizeof taken[i], "%s", name);
      break;
    }
  pthread_mutex_unlock(&taken_lock);
  return ok;
}

void esb_warm_let_go(const char *name) {
  pthread_mutex_lock(&taken_lock);
  int i = taken_at(name);
  if (i >= 0)
    taken[i][0] = '\0';
  pthread_mutex_unlock(&taken_lock);
}

bool esb_warm_claim_lost(const char *said) {
  return said && (strstr(said, "(Conflict)") || strstr(said, "(NotFound)") ||
                  strstr(said, "the object has been modified"));
}

char **esb_warm_create_tail(const struct esb_k8s_settings *k, const struct esb_warm_pool *pool, const char *name,
                            int64_t expires) {
  struct esb_strv tail = ESB_STRV_INIT;
  int rc = esb_strv_push(&tail, "run");
  rc |= esb_strv_push(&tail, name);
  rc |= esb_strv_pushf(&tail, "--image=%s", k->image);
  rc |= esb_strv_push(&tail, "--restart=Never");
  rc |= esb_strv_pushf(&tail, "--labels=%s=%s,%s=%s,%s=ready,%s=%" PRId64, ESB_WARM_POOL_LABEL, pool->name,
                    ESB_WARM_HASH_LABEL, pool->hash, ESB_WARM_STATE_LABEL, ESB_WARM_EXPIRES_LABEL, expires);
  rc |= esb_strv_push(&tail, "--override-type=strategic");
  rc |= esb_strv_pushf(&tail, "--overrides=%s", k->overrides_json);
  rc |= esb_strv_push(&tail, "--request-timeout=20s");
  /* The session's wait: it ends the pod by itself once it has waited out
   * the max age in one-second ticks with no run, as activeDeadlineSeconds
   * ends it on the cluster's side. */
  rc |= esb_k8s_session_push_wait(&tail, pool->max_age_s, 1000);
  if (rc) {
    esb_strv_clear(&tail);
    return NULL;
  }
  return esb_strv_detach(&tail);
}
