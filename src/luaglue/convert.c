#include "luaglue/convert.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "engine/cpu.h"
#include "engine/strv.h"
#include "engine/text.h"
#include "luaglue/tables.h"

struct checker {
  lua_State *L;
  char *err;
  size_t errlen;
  bool failed;
};

static const char *type_of(lua_State *L, int idx) {
  return lua_typename(L, lua_type(L, idx));
}

static void reject(struct checker *c, const char *field, const char *what, int idx) {
  if (c->failed)
    return;
  c->failed = true;
  snprintf(c->err, c->errlen, "invalid request: '%s' %s (got %s)", field, what, type_of(c->L, idx));
}

/* cjson.null (a NULL light userdata) counts as absent. */
static bool absent(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  return t == LUA_TNIL || (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL);
}

/* Pushes t[key] raw; t is at the absolute index t. */
static bool get(lua_State *L, int t, const char *key) {
  lua_pushstring(L, key);
  lua_rawget(L, t);
  if (absent(L, -1)) {
    lua_pop(L, 1);
    return false;
  }
  return true;
}

static char *take_string(struct checker *c, int t, const char *key) {
  char *v = NULL;
  if (!get(c->L, t, key))
    return NULL;
  const char *s = esb_lua_plain_string(c->L, -1);
  if (!s)
    reject(c, key, "must be a string without NUL bytes", -1);
  else if (!(v = strdup(s)))
    reject(c, key, "could not be copied (out of memory)", -1);
  lua_pop(c->L, 1);
  return v;
}

static uint64_t take_count(struct checker *c, int t, const char *key, const char *name) {
  uint64_t v = 0;
  if (!get(c->L, t, key))
    return 0;
  int isint = 0;
  lua_Integer i = lua_type(c->L, -1) == LUA_TNUMBER ? lua_tointegerx(c->L, -1, &isint) : 0;
  if (!isint || i <= 0)
    reject(c, name, "must be a positive integer", -1);
  else
    v = (uint64_t)i;
  lua_pop(c->L, 1);
  return v;
}

/* limits.cpu: cores as a number (0.5) or a Kubernetes quantity ("500m",
 * "2"), as millicores. */
static uint64_t take_cpu(struct checker *c, int t) {
  uint64_t v = 0;
  if (!get(c->L, t, "cpu"))
    return 0;
  int rc = -1;
  if (lua_type(c->L, -1) == LUA_TNUMBER)
    rc = esb_cpu_from_cores((double)lua_tonumber(c->L, -1), &v);
  else if (lua_type(c->L, -1) == LUA_TSTRING)
    rc = esb_cpu_parse(lua_tostring(c->L, -1), &v);
  if (rc < 0)
    reject(c, "limits.cpu", "must be a positive number of cores (0.5) or a quantity like \"500m\" or \"2\"", -1);
  lua_pop(c->L, 1);
  return v;
}

/* An array of strings (map false) or an object of strings as "NAME=value"
 * (map true), as a NULL-terminated vector with its length in *np. */
static char **take_vector(struct checker *c, int t, const char *key, bool map, size_t *np) {
  struct esb_strv sv = ESB_STRV_INIT;
  if (!get(c->L, t, key))
    return NULL;
  enum esb_lua_vec rc = ESB_LUA_VEC_BAD;
  if (lua_type(c->L, -1) == LUA_TTABLE)
    rc = map ? esb_lua_map_to_strv(c->L, -1, &sv) : esb_lua_array_to_strv(c->L, -1, &sv);
  if (rc == ESB_LUA_VEC_NOMEM)
    reject(c, key, "could not be copied (out of memory)", -1);
  else if (rc == ESB_LUA_VEC_BAD)
    reject(c, key, map ? "must be an object of strings, with names that are non-empty and without '='"
                       : "must be an array of strings", -1);
  lua_pop(c->L, 1);
  if (c->failed) {
    esb_strv_clear(&sv);
    return NULL;
  }
  *np = sv.n;
  return esb_strv_detach(&sv);
}

/* Every key must be one of `known`: a typo is an error, not a silent default. */
static void check_keys(struct checker *c, int t, const char *const *known, const char *where) {
  lua_pushnil(c->L);
  while (lua_next(c->L, t)) {
    lua_pop(c->L, 1);
    if (c->failed)
      continue;
    const char *k = lua_type(c->L, -1) == LUA_TSTRING ? lua_tostring(c->L, -1) : NULL;
    bool ok = false;
    for (const char *const *p = known; k && *p && !ok; p++)
      ok = strcmp(k, *p) == 0;
    if (!ok) {
      c->failed = true;
      if (k)
        snprintf(c->err, c->errlen, "invalid request: unknown field '%s%s'", where, k);
      else
        snprintf(c->err, c->errlen, "invalid request: %s must be an object with named fields, "
                 "not an array", *where ? where : "the request");
    }
  }
}

static void take_limits(struct checker *c, int t, struct esb_limits *l) {
  static const char *const known[] = {"memory_bytes", "cpu_time_secs", "max_output_bytes",
                                      "max_processes", "cpu", "network", NULL};
  if (!get(c->L, t, "limits"))
    return;
  int lt = lua_gettop(c->L);
  if (lua_type(c->L, lt) != LUA_TTABLE) {
    reject(c, "limits", "must be an object", lt);
  } else {
    check_keys(c, lt, known, "limits.");
    l->memory_bytes = take_count(c, lt, "memory_bytes", "limits.memory_bytes");
    l->cpu_time_secs = take_count(c, lt, "cpu_time_secs", "limits.cpu_time_secs");
    l->max_output_bytes = take_count(c, lt, "max_output_bytes", "limits.max_output_bytes");
    l->max_processes = take_count(c, lt, "max_processes", "limits.max_processes");
    l->cpu_millicores = take_cpu(c, lt);
    if (get(c->L, lt, "network")) {
      if (lua_type(c->L, -1) != LUA_TBOOLEAN)
        reject(c, "limits.network", "must be a boolean", -1);
      else
        l->network = lua_toboolean(c->L, -1);
      lua_pop(c->L, 1);
    }
  }
  lua_pop(c->L, 1);
}

static void take_backend(struct checker *c, int t, struct esb_request *req) {
  if (!get(c->L, t, "backend"))
    return;
  const char *s = esb_lua_plain_string(c->L, -1);
  if (esb_backend_parse(s, &req->backend) < 0)
    reject(c, "backend", "must be \"auto\", \"local\" or \"k8s\"", -1);
  lua_pop(c->L, 1);
}

int esb_lua_to_request(lua_State *L, int idx, struct esb_request *req, char *err, size_t errlen) {
  static const char *const known[] = {"shell", "program", "args", "language", "code", "stdin",
                                      "env", "working_dir", "timeout_ms", "backend", "limits",
                                      "labels", "id", NULL};
  struct checker c = { L, err, errlen, false };
  int t = lua_absindex(L, idx);
  if (lua_type(L, t) != LUA_TTABLE) {
    snprintf(err, errlen, "invalid request: expected an object, got %s", type_of(L, t));
    return -1;
  }
  check_keys(&c, t, known, "");
  req->shell = take_string(&c, t, "shell");
  req->program = take_string(&c, t, "program");
  req->language = take_string(&c, t, "language");
  req->code = take_string(&c, t, "code");
  req->args = take_vector(&c, t, "args", false, &req->nargs);
  req->env = take_vector(&c, t, "env", true, &req->nenv);
  req->labels = take_vector(&c, t, "labels", true, &req->nlabels);
  req->working_dir = take_string(&c, t, "working_dir");
  req->timeout_ms = take_count(&c, t, "timeout_ms", "timeout_ms");
  take_backend(&c, t, req);
  take_limits(&c, t, &req->limits);
  if (!c.failed && get(L, t, "stdin")) {
    size_t len;
    if (lua_type(L, -1) != LUA_TSTRING) {
      reject(&c, "stdin", "must be a string", -1);
    } else {
      const char *s = lua_tolstring(L, -1, &len);
      if ((req->stdin_data = malloc(len + 1))) {
        memcpy(req->stdin_data, s, len + 1);
        req->stdin_len = len;
      } else {
        reject(&c, "stdin", "could not be copied (out of memory)", -1);
      }
    }
    lua_pop(L, 1);
  }
  if (!c.failed) {
    int kinds = !!req->shell + !!req->program + !!req->code;
    if (kinds != 1)
      snprintf(err, errlen, "invalid request: give exactly one of 'shell', 'program' or 'code' (%s)",
               kinds ? "got more than one" : "got none"), c.failed = true;
    else if (req->code && !req->language)
      snprintf(err, errlen, "invalid request: 'code' needs a 'language'"), c.failed = true;
    else if (req->language && !req->code)
      snprintf(err, errlen, "invalid request: 'language' goes with 'code'"), c.failed = true;
    else if (req->args && req->shell)
      snprintf(err, errlen, "invalid request: 'args' goes with 'program' or 'code', not 'shell'"), c.failed = true;
    else if (req->program && !*req->program)
      snprintf(err, errlen, "invalid request: 'program' is empty"), c.failed = true;
    req->kind = req->shell ? ESB_REQUEST_SHELL : req->program ? ESB_REQUEST_PROGRAM : ESB_REQUEST_CODE;
  }
  if (c.failed) {
    esb_request_release(req);
    return -1;
  }
  return 0;
}

/* ---- results ---- */

static void push_stream(lua_State *L, const char *name, const struct esb_capture *cap) {
  const char *data = cap->data ? cap->data : "";
  char key[32];
  if (esb_utf8_valid(data, cap->len)) {
    lua_pushlstring(L, data, cap->len);
    lua_setfield(L, -2, name);
  } else {
    /* Encoded into GC-owned memory: nothing leaks if a push raises. */
    size_t n = esb_base64_length(cap->len);
    char *buf = lua_newuserdatauv(L, n ? n : 1, 0);
    esb_base64_encode(data, cap->len, buf);
    lua_pushlstring(L, buf, n);
    snprintf(key, sizeof key, "%s_base64", name);
    lua_setfield(L, -3, key);
    lua_pop(L, 1);
  }
  snprintf(key, sizeof key, "%s_truncated", name);
  lua_pushboolean(L, esb_capture_truncated(cap));
  lua_setfield(L, -2, key);
  snprintf(key, sizeof key, "%s_bytes", name);
  lua_pushinteger(L, (lua_Integer)cap->total);
  lua_setfield(L, -2, key);
}

/* A usage figure, or null (nil without a null value) where unknown. */
static void push_usage(lua_State *L, const char *key, int64_t value, int null_idx) {
  if (value >= 0)
    lua_pushinteger(L, (lua_Integer)value);
  else if (null_idx)
    lua_pushvalue(L, null_idx);
  else
    lua_pushnil(L);
  lua_setfield(L, -2, key);
}

void esb_lua_push_result(lua_State *L, const struct esb_result *r, int null_idx) {
  if (null_idx)
    null_idx = lua_absindex(L, null_idx);
  lua_createtable(L, 0, 20);
  lua_pushinteger(L, esb_result_exit_code(r));
  lua_setfield(L, -2, "exit_code");
  push_stream(L, "stdout", &r->out);
  push_stream(L, "stderr", &r->err);
  lua_pushnumber(L, (lua_Number)((long long)(r->duration_ms * 1000.0 + 0.5)) / 1000.0);
  lua_setfield(L, -2, "duration_ms");
  lua_pushstring(L, r->sandbox_type ? r->sandbox_type : "local");
  lua_setfield(L, -2, "sandbox_type");
  lua_pushboolean(L, r->status == ESB_STATUS_TIMED_OUT);
  lua_setfield(L, -2, "timed_out");
  lua_pushstring(L, esb_status_name(r->status));
  lua_setfield(L, -2, "status");
  if (r->signal)
    lua_pushinteger(L, r->signal);
  else if (null_idx)
    lua_pushvalue(L, null_idx);
  else
    lua_pushnil(L);
  lua_setfield(L, -2, "signal");
  lua_pushboolean(L, r->killed_by_us);
  lua_setfield(L, -2, "killed_by_us");
  if (r->reason) {
    lua_pushstring(L, r->reason);
    lua_setfield(L, -2, "reason");
  }
  if (r->isolation) {
    lua_pushstring(L, r->isolation);
    lua_setfield(L, -2, "isolation");
  }
  if (r->sandbox_name[0]) {
    lua_pushstring(L, r->sandbox_name);
    lua_setfield(L, -2, "pod"); /* k8s is the one backend that names it */
  }
  if (r->cleanup_error) {
    lua_pushstring(L, r->cleanup_error);
    lua_setfield(L, -2, "cleanup_error");
  }
  if (r->warning) {
    lua_pushstring(L, r->warning);
    lua_setfield(L, -2, "warning");
  }
  push_usage(L, "cpu_time_ms", r->cpu_time_ms, null_idx);
  push_usage(L, "memory_peak_bytes", r->memory_peak_bytes, null_idx);
  if (r->status == ESB_STATUS_ERROR) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, esb_error_name(r->error));
    lua_setfield(L, -2, "code");
    lua_pushstring(L, r->error_message ? r->error_message : esb_strerror(r->error));
    lua_setfield(L, -2, "message");
    lua_pushboolean(L, r->retryable);
    lua_setfield(L, -2, "retryable");
    lua_setfield(L, -2, "error");
  }
}
