#include "luaglue/fields.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "engine/contract/egress.h"
#include "engine/strv.h"
#include "luaglue/tables.h"

static bool absent(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  return t == LUA_TNIL || (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL);
}

bool esb_fields_push(struct esb_fields *f, int t, const char *key) {
  if (f->failed)
    return false;
  t = lua_absindex(f->L, t);
  lua_pushstring(f->L, key);                   /* key */
  lua_rawget(f->L, t);                         /* t[key] */
  if (absent(f->L, -1)) {
    lua_pop(f->L, 1);                          /* -- */
    return false;
  }
  return true;
}

/* The bytes of a string as a quoted, escaped literal, its first
 * ESB_FIELDS_DESCRIBE_MAX bytes only: a message quotes what the caller sent,
 * never sending a terminal's control bytes back or growing with the input. */
static void quote_string(const char *s, size_t len, char *buf, size_t buflen) {
  size_t n = 0, shown = len < ESB_FIELDS_DESCRIBE_MAX ? len : ESB_FIELDS_DESCRIBE_MAX;
  buf[n++] = '"';
  for (size_t i = 0; i < shown && n + 8 < buflen; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\')
      n += (size_t)snprintf(buf + n, buflen - n, "\\%c", c);
    else if (c == '\n')
      n += (size_t)snprintf(buf + n, buflen - n, "\\n");
    else if (c < 0x20 || c >= 0x7f)
      n += (size_t)snprintf(buf + n, buflen - n, "\\x%02x", c);
    else
      buf[n++] = (char)c;
  }
  if (shown < len)
    snprintf(buf + n, buflen - n, "\"... (%zu bytes)", len);
  else
    snprintf(buf + n, buflen - n, "\"");
}

const char *esb_fields_describe(lua_State *L, int idx, char *buf, size_t buflen) {
  size_t len;
  const char *s;
  if (absent(L, idx))
    return "nothing";
  switch (lua_type(L, idx)) {
  case LUA_TSTRING:
    s = lua_tolstring(L, idx, &len);
    quote_string(s, len, buf, buflen);
    return buf;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx))
      snprintf(buf, buflen, "%lld", (long long)lua_tointeger(L, idx));
    else
      snprintf(buf, buflen, "%.17g", (double)lua_tonumber(L, idx));
    return buf;
  case LUA_TBOOLEAN:
    return lua_toboolean(L, idx) ? "true" : "false";
  default:
    return luaL_typename(L, idx);
  }
}

/* The name of the field `name` of the table the reader is in, for a
 * message: "limits.cpu"; an item right after its array, "local.mounts[2]"
 * (the path holds "local.mounts.[2]."); NULL: the table itself. */
static bool is_index(const char *s) {
  return s[0] == '[' && s[1] >= '0' && s[1] <= '9';
}

static const char *field_name(const struct esb_fields *f, const char *name, char *buf, size_t n) {
  size_t j = 0;
  for (const char *p = f->path; *p && j + 1 < n; p++)
    if (!(*p == '.' && is_index(p + 1)))
      buf[j++] = *p;
  if (j && buf[j - 1] == '.' && (!name || is_index(name)))
    j--;
  snprintf(buf + j, n - j, "%s", name ? name : "");
  return buf;
}

void esb_fields_fail(struct esb_fields *f, const char *fmt, ...) {
  if (f->failed)
    return;
  f->failed = true;
  f->err->code = f->hook ? ESB_E_POLICY : ESB_E_INVALID_REQUEST;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(f->err->message, sizeof f->err->message, fmt, ap);
  va_end(ap);
}

void esb_fields_bad_value(struct esb_fields *f, int idx, const char *name, const char *expected) {
  if (f->failed)
    return;
  char buf[ESB_FIELDS_DESCRIBE_SIZE], field[sizeof f->path + 64];
  const char *got = esb_fields_describe(f->L, idx, buf, sizeof buf);
  field_name(f, *name ? name : NULL, field, sizeof field);
  if (f->hook)
    esb_fields_fail(f, "policy hook '%s' returned a bad field '%s': expected %s, got %s", f->hook, field, expected,
                    got);
  else
    esb_fields_fail(f, "invalid request: '%s' must be %s (got %s)", field, expected, got);
}

void esb_fields_bad(struct esb_fields *f, int t, const char *key, const char *expected) {
  if (f->failed)
    return;
  t = lua_absindex(f->L, t);
  lua_pushstring(f->L, key);                   /* key */
  lua_rawget(f->L, t);                         /* t[key] */
  esb_fields_bad_value(f, -1, key, expected);
  lua_pop(f->L, 1);                            /* -- */
}

void esb_fields_nomem(struct esb_fields *f, const char *key) {
  if (f->failed)
    return;
  char field[sizeof f->path + 64];
  field_name(f, *key ? key : NULL, field, sizeof field);
  esb_fields_fail(f, "out of memory reading '%s'", field);
}

void esb_fields_only(struct esb_fields *f, int t, const char *const *known) {
  lua_State *L = f->L;
  t = lua_absindex(L, t);
  lua_pushnil(L);                              /* nil */
  while (!f->failed && lua_next(L, t)) {       /* key, value */
    lua_pop(L, 1);                             /* key */
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    bool ok = false;
    for (const char *const *p = known; k && *p && !ok; p++)
      ok = strcmp(k, *p) == 0;
    if (ok)
      continue;
    char field[sizeof f->path + 64];
    if (f->hook && k)
      esb_fields_fail(f, "policy hook '%s' returned an unknown field '%s'", f->hook,
                      field_name(f, k, field, sizeof field));
    else if (f->hook)
      esb_fields_fail(f, "policy hook '%s' returned a table with unnamed fields at '%s'", f->hook, f->path);
    else if (k)
      esb_fields_fail(f, "invalid request: unknown field '%s'", field_name(f, k, field, sizeof field));
    else
      esb_fields_fail(f, "invalid request: %.*s must be an object with named fields, not an array",
                      *f->path ? (int)strlen(f->path) - 1 : 11, *f->path ? f->path : "the request");
    lua_pop(L, 1);                             /* -- */
  }
}

char *esb_fields_string(struct esb_fields *f, int t, const char *key) {
  char *v = NULL;
  if (!esb_fields_push(f, t, key))
    return NULL;                               /* t[key] */
  const char *s = esb_lua_plain_string(f->L, -1);
  if (!s)
    esb_fields_bad_value(f, -1, key, lua_type(f->L, -1) == LUA_TSTRING ? "a string without NUL bytes" : "a string");
  else if (!(v = strdup(s)))
    esb_fields_nomem(f, key);
  lua_pop(f->L, 1);                            /* -- */
  return v;
}

bool esb_fields_uint(struct esb_fields *f, int t, const char *key, uint64_t min, uint64_t *v) {
  assert(min <= 1);
  if (!esb_fields_push(f, t, key))
    return false;                              /* t[key] */
  int isint = 0;
  lua_Integer i = lua_type(f->L, -1) == LUA_TNUMBER ? lua_tointegerx(f->L, -1, &isint) : 0;
  bool good = isint && i >= (lua_Integer)min;
  if (good)
    *v = (uint64_t)i;
  else
    esb_fields_bad_value(f, -1, key, min ? "a positive integer" : "a non-negative integer");
  lua_pop(f->L, 1);                            /* -- */
  return good;
}

bool esb_fields_bool(struct esb_fields *f, int t, const char *key, bool *v) {
  if (!esb_fields_push(f, t, key))
    return false;                              /* t[key] */
  bool good = lua_type(f->L, -1) == LUA_TBOOLEAN;
  if (good)
    *v = lua_toboolean(f->L, -1);
  else
    esb_fields_bad_value(f, -1, key, "a boolean");
  lua_pop(f->L, 1);                            /* -- */
  return good;
}

char **esb_fields_strv(struct esb_fields *f, int t, const char *key, enum esb_fields_shape shape, size_t *n) {
  struct esb_strv sv = ESB_STRV_INIT;
  if (!esb_fields_push(f, t, key))
    return NULL;                               /* t[key] */
  enum esb_lua_vec rc = ESB_LUA_VEC_BAD;
  if (lua_type(f->L, -1) == LUA_TTABLE)
    rc = shape == ESB_FIELDS_MAP ? esb_lua_map_to_strv(f->L, -1, &sv) : esb_lua_array_to_strv(f->L, -1, &sv);
  if (rc == ESB_LUA_VEC_NOMEM)
    esb_fields_nomem(f, key);
  else if (rc == ESB_LUA_VEC_BAD)
    esb_fields_bad_value(f, -1, key, shape == ESB_FIELDS_MAP
                         ? "an object of strings, with names that are non-empty and without '='"
                         : "an array of strings without NUL bytes");
  lua_pop(f->L, 1);                            /* -- */
  if (f->failed) {
    esb_strv_clear(&sv);
    return NULL;
  }
  if (n)
    *n = sv.n;
  return esb_strv_detach(&sv);
}

char **esb_fields_egress_list(struct esb_fields *f, int t, const char *key, size_t *n) {
  size_t count = 0;
  char **list = esb_fields_strv(f, t, key, ESB_FIELDS_ARRAY, &count);
  for (size_t i = 0; list && i < count; i++) {
    const char *problem = esb_egress_entry_problem(list[i]);
    if (!problem)
      continue;
    esb_fields_fail(f, "%s '%s%s[%zu]' (\"%.64s\") must be a host name, \"*.\" and a host name, an address or a "
                    "range, any of them with \":PORT\" (%s)", f->hook ? "policy:" : "invalid request:", f->path, key,
                    i + 1, list[i], problem);
    esb_strv_free(list);
    return NULL;
  }
  if (n)
    *n = count;
  return list;
}

/* Pushes the value already on top as the table entered under `name`. */
static bool enter(struct esb_fields *f, const char *name) {
  assert(f->depth < ESB_FIELDS_DEPTH);
  if (lua_type(f->L, -1) != LUA_TTABLE) {
    esb_fields_bad_value(f, -1, name, f->hook ? "a table" : "an object"); /* a request is JSON */
    lua_pop(f->L, 1);
    return false;
  }
  size_t at = strlen(f->path);
  f->marks[f->depth++] = at;
  snprintf(f->path + at, sizeof f->path - at, "%s.", name);
  return true;
}

bool esb_fields_enter(struct esb_fields *f, int t, const char *key) {
  return esb_fields_push(f, t, key) && enter(f, key);
}

bool esb_fields_enter_value(struct esb_fields *f, const char *name) {
  if (f->failed) {
    lua_pop(f->L, 1);
    return false;
  }
  return enter(f, name);
}

void esb_fields_leave(struct esb_fields *f) {
  assert(f->depth > 0);
  f->path[f->marks[--f->depth]] = '\0';
  lua_pop(f->L, 1);                            /* -- */
}
