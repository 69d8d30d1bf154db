#include "policy/warm_pools.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luaglue/fields.h"

/* The names an entry may have (policy/warm_pool_fields.def). */
static const char *const pool_fields[] = {
#define ESB_WARM_POOL_FIELD(name, kind, doc) name,
#include "policy/warm_pool_fields.def"
#undef ESB_WARM_POOL_FIELD
  NULL
};

/* A pool's name as its pods' label and their names take it: lower-case
 * letters, digits and '-' inside, at most 40 (the pod's name is the
 * prefix, the name and a random part, within a DNS-1123 label's 63). */
static bool pool_name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 40 || s[0] == '-' || s[n - 1] == '-')
    return false;
  return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

/* The entry's kinds: the tables are k8s_pod.lua's to check, once rendered. */
static void read_kinds(struct esb_fields *f, int t, struct esb_warm_pool *pool) {
  pool->image = esb_fields_string(f, t, "image");
  if (!f->failed && (!pool->image || !*pool->image))
    esb_fields_bad(f, t, "image", "an image reference");
  pool->namespace_ = esb_fields_string(f, t, "namespace");
  esb_fields_bool(f, t, "network", &pool->network);
  free(esb_fields_string(f, t, "runtime_class"));
  if (!esb_fields_uint(f, t, "size", 0, &pool->size) && !f->failed)
    esb_fields_bad(f, t, "size", "how many ready pods to keep (0 or more)");
  if (!f->failed && pool->size > 1000)
    esb_fields_bad(f, t, "size", "at most 1000 pods");
  /* a minute at least: a pod is claimed only where its age leaves the
   * run's deadline and a margin (ESB_WARM_MARGIN_S) */
  if ((!esb_fields_uint(f, t, "max_age_s", 1, &pool->max_age_s) || pool->max_age_s < 60) && !f->failed)
    esb_fields_bad(f, t, "max_age_s", "the pods' most age in seconds, 60 or more");
  pool->claim_grace_ms = ESB_WARM_CLAIM_GRACE_MS;
  esb_fields_uint(f, t, "claim_grace_ms", 0, &pool->claim_grace_ms);
  for (const char *const *table = (const char *const[]){"resources", "pod", NULL}; *table; table++)
    if (esb_fields_enter(f, t, *table))
      esb_fields_leave(f);
}

int esb_read_warm_pool(lua_State *L, size_t idx, struct esb_warm_pool *pool, struct esb_error *err) {
  struct esb_fields f = ESB_FIELDS_INIT(L, "k8s.warm_pools", err);
  int t = lua_gettop(L);
  pool->name = esb_fields_string(&f, t, "name");
  if (!f.failed && (!pool->name || !pool_name_ok(pool->name)))
    esb_fields_bad(&f, t, "name", "lower-case letters, digits and '-' inside, at most 40");
  if (f.failed) {
    char why[ESB_MESSAGE_MAX];
    snprintf(why, sizeof why, "%s", err->message);
    return esb_error_set(err, ESB_E_POLICY, "k8s.warm_pools[%zu]: %.3900s", idx, why);
  }
  snprintf(f.path, sizeof f.path, "%s.", pool->name);
  esb_fields_only(&f, t, pool_fields);
  read_kinds(&f, t, pool);
  return f.failed ? -1 : 0;
}
