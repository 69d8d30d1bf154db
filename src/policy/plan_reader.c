#include "policy/plan_reader.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "engine/strv.h"
#include "luaglue/tables.h"



struct reader {
  lua_State *L;
  char *err;
  size_t errlen;
  bool failed;
};

static void bad(struct reader *rd, const char *field, const char *expected) {
  if (rd->failed)
    return;
  rd->failed = true;
  snprintf(rd->err, rd->errlen, "policy hook 'plan' returned a bad field '%s': expected %s, got %s",
           field, expected, luaL_typename(rd->L, -1));
}

/* Pushes t[key] (raw) for the table at idx. */
static int field(struct reader *rd, int idx, const char *key) {
  lua_pushstring(rd->L, key);
  return lua_rawget(rd->L, idx < 0 ? idx - 1 : idx);
}

static uint64_t read_uint(struct reader *rd, int idx, const char *key, const char *name, uint64_t dflt) {
  uint64_t v = dflt;
  int isint = 0;
  if (field(rd, idx, key) != LUA_TNIL) {
    lua_Integer i = lua_type(rd->L, -1) == LUA_TNUMBER ? lua_tointegerx(rd->L, -1, &isint) : 0;
    if (!isint || i < 0)
      bad(rd, name, "a non-negative integer");
    else
      v = (uint64_t)i;
  }
  lua_pop(rd->L, 1);
  return v;
}

static bool read_bool(struct reader *rd, int idx, const char *key, const char *name, bool dflt) {
  bool v = dflt;
  int t = field(rd, idx, key);
  if (t == LUA_TBOOLEAN)
    v = lua_toboolean(rd->L, -1);
  else if (t != LUA_TNIL)
    bad(rd, name, "a boolean");
  lua_pop(rd->L, 1);
  return v;
}

/* A string without NUL bytes, copied; NULL when absent or bad. */
static char *read_string(struct reader *rd, int idx, const char *key, const char *name) {
  char *v = NULL;
  int t = field(rd, idx, key);
  if (t == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(rd->L, -1, &len);
    if (strlen(s) != len)
      bad(rd, name, "a string without NUL bytes");
    else if (!(v = strdup(s)))
      bad(rd, name, "memory for it");
  } else if (t != LUA_TNIL) {
    bad(rd, name, "a string");
  }
  lua_pop(rd->L, 1);
  return v;
}

/* An array of strings (map false) or a map of names to strings (map true).
 * optional: an absent or empty array is NULL rather than an error. */
static char **read_vector(struct reader *rd, int idx, const char *key, bool map, bool optional) {
  struct esb_strv sv = ESB_STRV_INIT;
  int t = field(rd, idx, key);
  enum esb_lua_vec rc = ESB_LUA_VEC_BAD;
  if (t == LUA_TTABLE && (map || lua_rawlen(rd->L, -1) > 0))
    rc = map ? esb_lua_map_to_strv(rd->L, -1, &sv) : esb_lua_array_to_strv(rd->L, -1, &sv);
  else if ((t == LUA_TNIL && (map || optional)) || (t == LUA_TTABLE && optional))
    rc = ESB_LUA_VEC_OK;
  if (rc == ESB_LUA_VEC_NOMEM)
    bad(rd, key, "memory for it");
  else if (rc == ESB_LUA_VEC_BAD)
    bad(rd, key, map ? "a map of names (no '=') to strings without NUL bytes"
                     : optional ? "an array of strings without NUL bytes"
                                : "a non-empty array of strings without NUL bytes");
  lua_pop(rd->L, 1);
  if (rd->failed) {
    esb_strv_clear(&sv);
    return NULL;
  }
  return esb_strv_detach(&sv);
}

/* local.mounts: an array of host paths (seen at the same path, read-only)
 * or of tables { host = ..., path = ... (default: host), writable = bool }. */
static void read_mounts(struct reader *rd, int idx, struct esb_local_settings *ls) {
  lua_State *L = rd->L;
  int t = field(rd, idx, "mounts");
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (t != LUA_TTABLE) {
    bad(rd, "local.mounts", "an array of paths or of {host, path, writable}");
    lua_pop(L, 1);
    return;
  }
  lua_Unsigned n = lua_rawlen(L, -1);
  if (n > 256 || !(ls->mounts = calloc(n ? n : 1, sizeof *ls->mounts))) {
    bad(rd, "local.mounts", n > 256 ? "at most 256 entries" : "memory for it");
    lua_pop(L, 1);
    return;
  }
  for (lua_Unsigned i = 1; i <= n && !rd->failed; i++) {
    struct esb_mount *m = &ls->mounts[ls->n_mounts];
    char name[64];
    snprintf(name, sizeof name, "local.mounts[%llu]", (unsigned long long)i);
    int kind = lua_rawgeti(L, -1, (lua_Integer)i);
    char *host = NULL, *path = NULL;
    if (kind == LUA_TSTRING) {
      size_t len;
      const char *v = lua_tolstring(L, -1, &len);
      if (strlen(v) != len || !(host = strdup(v)))
        bad(rd, name, "a path without NUL bytes");
    } else if (kind == LUA_TTABLE) {
      host = read_string(rd, -1, "host", name);
      path = read_string(rd, -1, "path", name);
      m->writable = read_bool(rd, -1, "writable", name, false);
    }
    if (!path && host)
      path = strdup(host);
    if (!rd->failed && (!host || !path || !esb_rootfs_path_ok(host) || !esb_rootfs_path_ok(path)))
      bad(rd, name, "a host path and a sandbox path, each absolute without '.' or '..'");
    m->host = host;
    m->path = path;
    ls->n_mounts++;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static int compare_strings(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void read_plan(struct reader *rd, struct esb_plan *plan) {
  lua_State *L = rd->L;
  char *backend = read_string(rd, -1, "backend", "backend");
  if (backend && strcmp(backend, "local") == 0) plan->backend = ESB_BACKEND_LOCAL;
  else if (backend && strcmp(backend, "k8s") == 0) plan->backend = ESB_BACKEND_K8S;
  else if (backend) bad(rd, "backend", "\"local\" or \"k8s\"");
  free(backend);
  plan->argv = read_vector(rd, -1, "argv", false, false);
  plan->env = read_vector(rd, -1, "env", true, false);
  plan->clamped = read_vector(rd, -1, "clamped", false, true);
  if (plan->clamped && !plan->clamped[0]) { /* none: NULL, as the plan says */
    esb_strv_free(plan->clamped);
    plan->clamped = NULL;
  }
  if (plan->env) /* a map has no order; the environment (and explain) get one */
    qsort(plan->env, esb_strv_length(plan->env), sizeof *plan->env, compare_strings);
  plan->working_dir = read_string(rd, -1, "working_dir", "working_dir");
  plan->timeout_ms = read_uint(rd, -1, "timeout_ms", "timeout_ms", 0);
  if (!rd->failed && plan->timeout_ms == 0) {
    lua_pushnil(L);
    bad(rd, "timeout_ms", "a positive integer");
    lua_pop(L, 1);
  }
  plan->kill_grace_ms = read_uint(rd, -1, "kill_grace_ms", "kill_grace_ms", plan->kill_grace_ms);
  struct esb_local_settings *ls = &plan->local;
  if (field(rd, -1, "limits") == LUA_TTABLE) {
    plan->max_output_bytes = read_uint(rd, -1, "max_output_bytes", "limits.max_output_bytes", 1 << 20);
    ls->memory_bytes = read_uint(rd, -1, "memory_bytes", "limits.memory_bytes", 0);
    ls->limits.cpu_secs = read_uint(rd, -1, "cpu_time_secs", "limits.cpu_time_secs", 0);
    ls->limits.processes = read_uint(rd, -1, "max_processes", "limits.max_processes", 0);
    ls->cpu_millicores = read_uint(rd, -1, "cpu_millicores", "limits.cpu_millicores", 0);
    ls->network = read_bool(rd, -1, "network", "limits.network", false);
  } else {
    bad(rd, "limits", "a table");
  }
  lua_pop(L, 1);
  int t = field(rd, -1, "local");
  if (t == LUA_TTABLE) {
    ls->uid = (uid_t)read_uint(rd, -1, "uid", "local.uid", ls->uid);
    ls->gid = (gid_t)read_uint(rd, -1, "gid", "local.gid", ls->gid);
    char *iso = read_string(rd, -1, "isolation", "local.isolation");
    if (!iso || strcmp(iso, "namespaces") == 0) ls->isolation = ESB_ISOLATION_NAMESPACES;
    else if (strcmp(iso, "best_effort") == 0) ls->isolation = ESB_ISOLATION_BEST_EFFORT;
    else if (strcmp(iso, "rlimits") == 0) ls->isolation = ESB_ISOLATION_RLIMITS;
    else {
      field(rd, -1, "isolation");
      bad(rd, "local.isolation", "\"namespaces\", \"best_effort\" or \"rlimits\"");
      lua_pop(L, 1);
    }
    free(iso);
    ls->cgroups = read_bool(rd, -1, "cgroups", "local.cgroups", ls->cgroups);
    char *profile = read_string(rd, -1, "seccomp", "local.seccomp");
    if (profile && esb_seccomp_profile_parse(profile, &ls->seccomp) < 0) {
      field(rd, -1, "seccomp");
      bad(rd, "local.seccomp", "\"default\", \"strict\" or \"none\"");
      lua_pop(L, 1);
    }
    free(profile);
    ls->tmp_size_bytes = read_uint(rd, -1, "tmp_size_bytes", "local.tmp_size_bytes", 64 << 20);
    ls->workdir_size_bytes = read_uint(rd, -1, "workdir_size_bytes", "local.workdir_size_bytes", 256 << 20);
    ls->working_dir = read_string(rd, -1, "working_dir", "local.working_dir");
    read_mounts(rd, -1, ls);
    ls->limits.file_size = read_uint(rd, -1, "file_size_bytes", "local.file_size_bytes", 0);
    ls->limits.open_files = read_uint(rd, -1, "open_files", "local.open_files", 0);
  } else if (t != LUA_TNIL) {
    bad(rd, "local", "a table");
  }
  lua_pop(L, 1);
  if (!rd->failed && !ls->working_dir && !(ls->working_dir = strdup("/work"))) {
    lua_pushnil(L);
    bad(rd, "local.working_dir", "memory for it");
    lua_pop(L, 1);
  }
  if (!rd->failed && !esb_rootfs_path_ok(ls->working_dir)) {
    field(rd, -1, "local");
    lua_getfield(L, -1, "working_dir");
    bad(rd, "local.working_dir", "an absolute path without '.' or '..'");
    lua_pop(L, 2);
  }
  ls->limits.no_core = true;
  if (!rd->failed && (ls->uid == 0 || ls->gid == 0)) {
    lua_pushnil(L);
    bad(rd, "local.uid/gid", "ids other than 0 (the program never runs as root)");
    lua_pop(L, 1);
  }
}

int esb_read_plan(lua_State *L, struct esb_plan *plan, char *err, size_t errlen) {
  struct reader rd = { L, err, errlen, false };
  read_plan(&rd, plan);
  return rd.failed ? -1 : 0;
}
