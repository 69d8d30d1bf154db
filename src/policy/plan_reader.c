#include "policy/plan_reader.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>

#include "backend/egress_helper.h"
#include "engine/contract/egress.h"
#include "engine/strv.h"
#include "luaglue/fields.h"
#include "luaglue/tables.h"

/* local.mounts: an array of host paths (seen at the same path, read-only)
 * or of tables { host = ..., path = ... (default: host), writable = bool }. */
static void read_mounts(struct esb_fields *f, int t, struct esb_local_settings *ls) {
  lua_State *L = f->L;
  if (!esb_fields_enter(f, t, "mounts"))
    return;                                    /* mounts */
  lua_Unsigned n = lua_rawlen(L, -1);
  if (n > 256) {
    esb_fields_bad_value(f, -1, "", "at most 256 entries");
  } else if (!(ls->mounts = calloc(n ? n : 1, sizeof *ls->mounts))) {
    esb_fields_nomem(f, "");
  }
  for (lua_Unsigned i = 1; i <= n && !f->failed; i++) {
    struct esb_mount *m = &ls->mounts[ls->n_mounts++];
    char name[32];
    snprintf(name, sizeof name, "[%llu]", (unsigned long long)i);
    if (lua_rawgeti(L, -1, (lua_Integer)i) == LUA_TSTRING) { /* mounts, mounts[i] */
      const char *host = esb_lua_plain_string(L, -1);
      if (host && !(m->host = strdup(host)))
        esb_fields_nomem(f, name);
      lua_pop(L, 1);                           /* mounts */
    } else if (esb_fields_enter_value(f, name)) { /* mounts, mounts[i] */
      m->host = esb_fields_string(f, -1, "host");
      m->path = esb_fields_string(f, -1, "path");
      esb_fields_bool(f, -1, "writable", &m->writable);
      esb_fields_leave(f);                     /* mounts */
    }
    if (!f->failed && m->host && !m->path && !(m->path = strdup(m->host)))
      esb_fields_nomem(f, name);
    if (!f->failed && (!m->host || !esb_rootfs_path_ok(m->host) || !esb_rootfs_path_ok(m->path))) {
      lua_rawgeti(L, -1, (lua_Integer)i);      /* mounts, mounts[i] */
      esb_fields_bad_value(f, -1, name, "a host path and a sandbox path, each absolute without '.' or '..'");
      lua_pop(L, 1);                           /* mounts */
    }
  }
  esb_fields_leave(f);                         /* -- */
}

static int compare_strings(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

const size_t esb_plan_limit_offsets[ESB_LIMIT__COUNT] = {
#define ESB_LIMIT(id, kind, key, plan_key, request_member, plan_member, ...) \
  [ESB_LIMIT_##id] = offsetof(struct esb_plan, plan_member),
#include "engine/contract/limits.def"
#undef ESB_LIMIT
};

/* The plan's members are of the types their kinds say: the reader writes
 * through the offsets above. */
#define ESB_LIMIT(id, kind, key, plan_key, request_member, plan_member, ...) \
  _Static_assert(sizeof(((struct esb_plan *)0)->plan_member) == \
                 (ESB_LIMIT_IS_##kind == ESB_LIMIT_IS_BOOL ? sizeof(bool) : sizeof(uint64_t)), \
                 "struct esb_plan." #plan_member ": not the type its kind says");
#include "engine/contract/limits.def"
#undef ESB_LIMIT

/* limits: each under its policy name (engine/contract/limits.def); one the
 * plan leaves out keeps the table's default, else the plan's own. */
static void read_limits(struct esb_fields *f, int t, struct esb_plan *plan) {
  if (!esb_fields_enter(f, t, "limits")) {
    esb_fields_bad(f, t, "limits", "a table");
    return;
  }                                            /* limits */
  for (size_t i = 0; i < ESB_LIMIT__COUNT; i++) {
    const struct esb_limit_field *d = &esb_limit_fields[i];
    void *member = (char *)plan + esb_plan_limit_offsets[i];
    if (d->kind == ESB_LIMIT_IS_BOOL) {
      esb_fields_bool(f, -1, d->plan_key, member);
      continue;
    }
    if (d->default_value)
      *(uint64_t *)member = d->default_value;
    esb_fields_uint(f, -1, d->plan_key, 0, member);
  }
  esb_fields_leave(f);                         /* -- */
}

int esb_read_net_ranges(lua_State *L, int idx, struct esb_net_range **ranges, size_t *n, struct esb_error *err) {
  *ranges = NULL;
  *n = 0;
  if (!lua_istable(L, idx))
    return esb_error_set(err, ESB_E_POLICY, "not an array");
  lua_Unsigned count = lua_rawlen(L, idx);
  if (count > 256)
    return esb_error_set(err, ESB_E_POLICY, "more than 256 entries");
  if (!(*ranges = calloc(count ? count : 1, sizeof **ranges)))
    return esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  for (lua_Unsigned i = 1; i <= count; i++) {
    struct esb_error reason;
    size_t len = 0;
    const char *text = lua_rawgeti(L, idx, (lua_Integer)i) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    const char *bad = !text ? "not a string" : strlen(text) != len ? "a NUL byte in it" : NULL;
    int rc = bad ? -1 : esb_net_range_parse(text, &(*ranges)[i - 1], &reason);
    if (rc < 0)
      esb_error_set(err, ESB_E_POLICY, "[%llu] '%.64s': %s", (unsigned long long)i,
                    text ? text : luaL_typename(L, -1), bad ? bad : reason.message);
    lua_pop(L, 1);
    if (rc < 0) {
      free(*ranges);
      *ranges = NULL;
      return -1;
    }
  }
  *n = (size_t)count;
  return 0;
}

/* local.network_allow, read as esb_read_net_ranges reads it. */
static void read_network_allow(struct esb_fields *f, int t, struct esb_local_settings *ls) {
  if (!esb_fields_push(f, t, "network_allow"))
    return;                                    /* network_allow */
  struct esb_error why;
  char expected[ESB_MESSAGE_MAX];
  if (esb_read_net_ranges(f->L, -1, &ls->network_allow, &ls->n_network_allow, &why) < 0) {
    snprintf(expected, sizeof expected, "an array of address ranges such as \"10.1.0.0/16\" (%.3900s)", why.message);
    esb_fields_bad_value(f, -1, "network_allow", expected);
  }
  lua_pop(f->L, 1);                            /* -- */
}

/* uid_range = { first = N, count = N }: each run's own host uid; false
 * (or absent): every run has uid/gid on the host. */
static void read_uid_range(struct esb_fields *f, struct esb_local_settings *ls) {
  if (esb_fields_push(f, -1, "uid_range")) {
    bool off = lua_isboolean(f->L, -1) && !lua_toboolean(f->L, -1);
    lua_pop(f->L, 1);
    if (off) {
      ls->uid_count = 0;
      return;
    }
  }
  if (!esb_fields_enter(f, -1, "uid_range"))
    return;                                    /* local.uid_range */
  static const char *const known[] = { "first", "count", NULL };
  esb_fields_only(f, -1, known);
  if (!esb_fields_uint(f, -1, "first", 1, &ls->uid_first))
    esb_fields_bad(f, -1, "first", "a host uid above 0");
  if (!esb_fields_uint(f, -1, "count", 1, &ls->uid_count) || ls->uid_first + ls->uid_count - 1 >= UINT32_MAX)
    esb_fields_bad(f, -1, "count", "a positive number of uids that ends the range below 4294967295");
  esb_fields_leave(f);                         /* -- */
}

/* The plan's fields, by the table they are in (policy/plan_fields.def). */
static const struct { const char *table, *name; } plan_fields[] = {
#define ESB_PLAN_FIELD(name, table, kind, doc) {table, name},
#include "policy/plan_fields.def"
#undef ESB_PLAN_FIELD
};

/* Refuses a name of the table at t that the table `table` of
 * plan_fields.def ("" the plan's own) does not have: one misspelt would
 * otherwise be dropped, and the run go without the setting. */
static void only_plan_fields(struct esb_fields *f, int t, const char *table) {
  const char *known[sizeof plan_fields / sizeof plan_fields[0] + 1];
  size_t n = 0;
  for (size_t i = 0; i < sizeof plan_fields / sizeof plan_fields[0]; i++)
    if (!strcmp(plan_fields[i].table, table))
      known[n++] = plan_fields[i].name;
  known[n] = NULL;
  esb_fields_only(f, t, known);
}

static void read_local(struct esb_fields *f, int t, struct esb_local_settings *ls) {
  if (!esb_fields_enter(f, t, "local"))
    return;                                    /* local */
  only_plan_fields(f, -1, "local");
  uint64_t uid = ls->uid, gid = ls->gid;
  esb_fields_uint(f, -1, "uid", 0, &uid);
  esb_fields_uint(f, -1, "gid", 0, &gid);
  if (uid == 0 || gid == 0)
    esb_fields_bad(f, -1, uid == 0 ? "uid" : "gid", "an id other than 0 (the program never runs as root)");
  ls->uid = (uid_t)uid;
  ls->gid = (gid_t)gid;
  read_uid_range(f, ls);
  char *isolation = esb_fields_string(f, -1, "isolation");
  if (isolation && esb_isolation_parse(isolation, &ls->isolation) < 0)
    esb_fields_bad(f, -1, "isolation", "\"namespaces\", \"best_effort\" or \"rlimits\"");
  free(isolation);
  esb_fields_bool(f, -1, "cgroups", &ls->cgroups);
  char *profile = esb_fields_string(f, -1, "seccomp");
  if (profile && esb_seccomp_profile_parse(profile, &ls->seccomp) < 0)
    esb_fields_bad(f, -1, "seccomp", "\"default\", \"strict\" or \"none\"");
  free(profile);
  esb_fields_uint(f, -1, "tmp_size_bytes", 0, &ls->tmp_size_bytes);
  esb_fields_uint(f, -1, "workdir_size_bytes", 0, &ls->workdir_size_bytes);
  ls->working_dir = esb_fields_string(f, -1, "working_dir");
  if (ls->working_dir && !esb_rootfs_path_ok(ls->working_dir))
    esb_fields_bad(f, -1, "working_dir", "an absolute path without '.' or '..'");
  read_mounts(f, -1, ls);
  read_network_allow(f, -1, ls);
  esb_fields_uint(f, -1, "file_size_bytes", 0, &ls->limits.file_size);
  esb_fields_uint(f, -1, "open_files", 0, &ls->limits.open_files);
  esb_fields_leave(f);                         /* -- */
}

/* Whether name is an HTTP token (RFC 9110's tchar) a proxy may set: not
 * one that frames the message or names its host, which the program's
 * request keeps. */
static bool header_name_ok(const char *name) {
  static const char *const kept[] = {"host", "content-length", "transfer-encoding", "connection", NULL};
  size_t len = strlen(name);
  if (!len || len > 64 || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                      "!#$%&'*+-.^_`|~") != len)
    return false;
  for (size_t i = 0; kept[i]; i++)
    if (!strcasecmp(name, kept[i]))
      return false;
  return true;
}

/* One entry of egress.inject, the table on top under the host name key
 * (at -2): its host, header and secret, the secret one egress.secrets
 * names. */
static void read_inject_entry(struct esb_fields *f, struct esb_plan *plan, struct esb_egress_inject *e) {
  static const char *const known[] = {"header", "secret", NULL};
  const char *host = lua_type(f->L, -2) == LUA_TSTRING ? lua_tostring(f->L, -2) : "";
  char name[300];
  snprintf(name, sizeof name, "[\"%.260s\"]", host);
  if (esb_egress_host_problem(host)) {
    int at = (int)strlen(f->path) - 1; /* "egress.inject." less its dot */
    esb_fields_fail(f, "policy: '%.*s%s' must be keyed by a host name (no \"*.\", no port): %s", at, f->path,
                    name, esb_egress_host_problem(host));
    lua_pop(f->L, 1);                          /* inject, key */
    return;
  }
  if (!esb_fields_enter_value(f, name))
    return;                                    /* inject, key, entry */
  esb_fields_only(f, -1, known);
  e->host = strdup(host);
  e->header = esb_fields_string(f, -1, "header");
  e->secret = esb_fields_string(f, -1, "secret");
  if (!e->host)
    esb_fields_nomem(f, name);
  if (!e->header || !header_name_ok(e->header))
    esb_fields_bad(f, -1, "header", "a header's name (an HTTP token; not Host, Connection, Content-Length "
                   "or Transfer-Encoding)");
  size_t len = e->secret ? strlen(e->secret) : 0;
  bool named = false;
  for (char **s = plan->egress_secrets; len && s && *s; s++)
    named |= !strncmp(*s, e->secret, len) && (*s)[len] == '=';
  if (!named && !f->failed)
    esb_fields_bad(f, -1, "secret", "the name of one of egress.secrets");
  esb_fields_leave(f);                         /* inject, key */
}

/* egress.inject: { ["host"] = { header = ..., secret = ... } }, and the
 * secrets' files (the values stay the engine's: the plan names files). */
static void read_inject(struct esb_fields *f, struct esb_plan *plan) {
  plan->egress_secrets = esb_fields_strv(f, -1, "secrets", ESB_FIELDS_MAP, NULL);
  for (char **s = plan->egress_secrets; s && *s && !f->failed; s++)
    if (strchr(*s, '=')[1] != '/' || strchr(*s, '\n'))
      esb_fields_fail(f, "policy: '%ssecrets' (\"%.64s\") must name a secret's absolute file path (one line)",
                      f->path, *s);
  plan->egress_upstream_ca = esb_fields_string(f, -1, "upstream_ca");
  const char *ca = plan->egress_upstream_ca;
  if (ca && (ca[0] != '/' || strchr(ca, '\n')))
    esb_fields_bad(f, -1, "upstream_ca", "an absolute path of a PEM file");
  if (f->failed || !esb_fields_enter(f, -1, "inject"))
    return;                                    /* egress, inject */
  size_t cap = 0;
  lua_pushnil(f->L);
  while (!f->failed && lua_next(f->L, -2)) {   /* inject, key, entry */
    if (plan->n_egress_inject == cap) {
      struct esb_egress_inject *grown = realloc(plan->egress_inject, (cap = cap ? 2 * cap : 4) * sizeof *grown);
      if (!grown) {
        esb_fields_nomem(f, "inject");
        lua_pop(f->L, 2);
        break;
      }
      plan->egress_inject = grown;
    }
    struct esb_egress_inject *e = &plan->egress_inject[plan->n_egress_inject++];
    *e = (struct esb_egress_inject){ 0 };
    read_inject_entry(f, plan, e);             /* inject, key */
    if (f->failed)
      lua_pop(f->L, 1);                        /* inject */
  }
  esb_fields_leave(f);                         /* egress */
}

/* egress.k8s: { proxy = "http://HOST:PORT", key_file = "/...", ca_file =
 * "/...", grace_s = N }, the shared proxy of the k8s backend
 * (backend/egress_token.h). */
static void read_egress_k8s(struct esb_fields *f, struct esb_plan *plan) {
  static const char *const known[] = {"proxy", "key_file", "ca_file", "grace_s", NULL};
  struct esb_egress_k8s *k = &plan->egress_k8s;
  if (!esb_fields_enter(f, -1, "k8s"))
    return;                                    /* egress, k8s */
  esb_fields_only(f, -1, known);
  k->proxy = esb_fields_string(f, -1, "proxy");
  k->key_file = esb_fields_string(f, -1, "key_file");
  k->ca_file = esb_fields_string(f, -1, "ca_file");
  k->grace_s = ESB_EGRESS_K8S_GRACE_S;
  esb_fields_uint(f, -1, "grace_s", 1, &k->grace_s);
  struct esb_error why = ESB_ERROR_INIT;
  if (!f->failed && esb_egress_k8s_check(k->proxy, k->key_file, k->ca_file, &why) < 0)
    esb_fields_fail(f, "policy: %s", why.message);
  esb_fields_leave(f);                         /* egress */
}

/* egress: { allow = {...}, deny = {...}, inject, secrets, upstream_ca },
 * the network by name; each entry checked as a request's are. With it the
 * run's network is the proxy's, never network: true as well. */
static void read_egress(struct esb_fields *f, int t, struct esb_plan *plan) {
  static const char *const known[] = {"allow", "deny", "inject", "secrets", "upstream_ca", "k8s", "hosts_file",
                                      NULL};
  if (!esb_fields_enter(f, t, "egress"))
    return;                                    /* egress */
  esb_fields_only(f, -1, known);
  plan->egress_allow = esb_fields_egress_list(f, -1, "allow", NULL);
  if (!plan->egress_allow && !f->failed)
    esb_fields_bad(f, -1, "allow", "an array of host names");
  plan->egress_deny = esb_fields_egress_list(f, -1, "deny", NULL);
  read_inject(f, plan);
  plan->egress_hosts_file = esb_fields_string(f, -1, "hosts_file");
  const char *hosts = plan->egress_hosts_file;
  if (hosts && (hosts[0] != '/' || strchr(hosts, '\n')))
    esb_fields_bad(f, -1, "hosts_file", "an absolute path of a hosts(5) file");
  if (!f->failed)
    read_egress_k8s(f, plan);
  esb_fields_leave(f);                         /* -- */
  if (plan->local.network && !f->failed)
    esb_fields_fail(f, "policy: the plan has both limits.network = true and egress: one network or the other");
  /* Without the shared proxy a pod would run with no way out and no
   * ledger, whatever a policy plans. */
  if (plan->backend == ESB_BACKEND_K8S && !plan->egress_k8s.proxy && !f->failed)
    esb_fields_fail(f, "policy: the plan has egress and backend k8s but no egress.k8s (proxy = "
                    "\"http://HOST:PORT\", key_file = ...: the shared egress proxy, doc/network.md)");
  if (plan->backend == ESB_BACKEND_K8S && plan->n_egress_inject && !plan->egress_k8s.ca_file && !f->failed)
    esb_fields_fail(f, "policy: the plan injects credentials (egress.inject) on backend k8s but egress.k8s has "
                    "no ca_file (the shared proxy's CA certificate, which the pods trust)");
}

int esb_read_plan(lua_State *L, struct esb_plan *plan, struct esb_error *err) {
  struct esb_fields f = ESB_FIELDS_INIT(L, "plan", err);
  int t = lua_gettop(L);                       /* plan */
  only_plan_fields(&f, t, "");
  if (esb_fields_enter(&f, t, "k8s")) {          /* k8s: its values are k8s_pod.lua's to check */
    only_plan_fields(&f, -1, "k8s");
    esb_fields_leave(&f);                         /* -- */
  }
  char *backend = esb_fields_string(&f, t, "backend");
  if (backend && (esb_backend_parse(backend, &plan->backend) < 0 || plan->backend == ESB_BACKEND_AUTO))
    esb_fields_bad(&f, t, "backend", "\"local\" or \"k8s\"");
  free(backend);
  char *fallback = esb_fields_string(&f, t, "fallback");
  if (fallback && strcmp(fallback, "local") != 0)
    esb_fields_bad(&f, t, "fallback", "\"local\" or nil");
  plan->fallback_local = fallback != NULL;
  free(fallback);
  plan->argv = esb_fields_strv(&f, t, "argv", ESB_FIELDS_ARRAY, NULL);
  if (!plan->argv || !plan->argv[0])
    esb_fields_bad(&f, t, "argv", "a non-empty array of strings without NUL bytes");
  plan->env = esb_fields_strv(&f, t, "env", ESB_FIELDS_MAP, NULL);
  if (plan->env) /* a map has no order; the environment (and explain) get one */
    qsort(plan->env, esb_strv_length(plan->env), sizeof *plan->env, compare_strings);
  plan->clamped = esb_fields_strv(&f, t, "clamped", ESB_FIELDS_ARRAY, NULL);
  if (plan->clamped && !plan->clamped[0]) { /* none: NULL, as the plan says */
    esb_strv_free(plan->clamped);
    plan->clamped = NULL;
  }
  plan->working_dir = esb_fields_string(&f, t, "working_dir");
  if (!esb_fields_uint(&f, t, "timeout_ms", 1, &plan->timeout_ms))
    esb_fields_bad(&f, t, "timeout_ms", "a positive integer");
  esb_fields_uint(&f, t, "kill_grace_ms", 0, &plan->kill_grace_ms);
  esb_fields_uint(&f, t, "max_stream_bytes", 0, &plan->max_stream_bytes);
  esb_fields_uint(&f, t, "max_code_bytes", 0, &plan->max_code_bytes);
  plan->code_file = esb_fields_string(&f, t, "code_file");
  if (plan->code_file && !esb_file_path_ok(plan->code_file))
    esb_fields_bad(&f, t, "code_file", "a path relative to the working dir, without empty, '.' or '..' components, "
                   "at most 1024 bytes and 255 a component");
  read_limits(&f, t, plan);
  if (esb_fields_enter(&f, t, "files")) {        /* files */
    esb_fields_uint(&f, -1, "max_count", 0, &plan->max_files);
    esb_fields_uint(&f, -1, "max_bytes", 0, &plan->max_files_bytes);
    esb_fields_leave(&f);                         /* -- */
  }
  if (esb_fields_enter(&f, t, "collect")) {      /* collect */
    esb_fields_uint(&f, -1, "max_count", 0, &plan->collect.max_count);
    esb_fields_uint(&f, -1, "max_file_bytes", 0, &plan->collect.max_file_bytes);
    esb_fields_uint(&f, -1, "max_bytes", 0, &plan->collect.max_bytes);
    esb_fields_leave(&f);                         /* -- */
  }
  read_local(&f, t, &plan->local);
  read_egress(&f, t, plan);
  /* RLIMIT_NOFILE: the run's max_open_files, never above the local
   * sandbox's open_files (the operator's ceiling there); 0 is neither. */
  uint64_t *open_files = &plan->local.limits.open_files;
  if (plan->max_open_files && (!*open_files || plan->max_open_files < *open_files))
    *open_files = plan->max_open_files;
  plan->local.limits.no_core = true;
  if (!f.failed && !plan->local.working_dir && !(plan->local.working_dir = strdup("/work")))
    esb_fields_nomem(&f, "local.working_dir");
  return f.failed ? -1 : 0;
}
