/* Reading a Lua table into C: the one field reader that requests (from the
 * faces), plans and k8s settings (from the policy's hooks) go through.
 *
 * A reader carries the path of the table it is in ("limits.") and the first
 * error, in the caller's struct esb_error (ESB_E_INVALID_REQUEST for a
 * request, ESB_E_POLICY for a hook's table). After an error every read is a
 * no-op that reports the field absent, so a caller reads all its fields and
 * checks `failed` once, as lauxlib's luaL_check* would if they did not raise.
 * Absent, nil and cjson.null (a NULL light userdata) are alike.
 *
 * Raw access only: nothing here raises a Lua error, so a caller may hold C
 * allocations while it reads. Stack effects: every function leaves the stack
 * as it found it, but esb_fields_enter (pushes the table it enters) and
 * esb_fields_leave (pops it). T is an absolute or relative index of the table
 * being read. Errors say what was expected and what was there:
 *   a request: invalid request: 'limits.cpu' must be <expected> (got string)
 *   a hook:    policy hook 'plan' returned a bad field 'k8s.image': expected
 *              <expected>, got number */
#ifndef ESB_LUAGLUE_FIELDS_H
#define ESB_LUAGLUE_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "engine/error.h"

#define ESB_FIELDS_DEPTH 8

struct esb_fields {
  lua_State *L;
  const char *hook;   /* NULL: the table is a request; else the policy hook that returned it */
  struct esb_error *err; /* the first failure, the one recorded */
  bool failed;
  size_t depth;       /* tables entered, at most ESB_FIELDS_DEPTH */
  size_t marks[ESB_FIELDS_DEPTH]; /* where each entered table's part of path starts */
  char path[128];     /* "" at the top, "local.mounts[2]." two tables down */
};

#define ESB_FIELDS_INIT(L_, hook_, err_) \
  { .L = (L_), .hook = (hook_), .err = (err_) }

/* Vector shapes: an array of strings, or an object of strings read as
 * "NAME=value" (names non-empty and without '='). */
enum esb_fields_shape { ESB_FIELDS_ARRAY, ESB_FIELDS_MAP };

/* Whether t[key] is there (neither nil nor cjson.null); pushes it if so. */
bool esb_fields_push(struct esb_fields *f, int t, const char *key);

/* Records "t[key] is not <expected>", describing what t[key] holds. */
void esb_fields_bad(struct esb_fields *f, int t, const char *key, const char *expected);

/* The same for a value already on the stack at idx, named `name` below the
 * current path. */
void esb_fields_bad_value(struct esb_fields *f, int idx, const char *name, const char *expected);

/* What the value at idx is, for a message: a string quoted and escaped
 * (its first ESB_FIELDS_DESCRIBE_MAX bytes only), a number or boolean as it
 * is, else its type ("nothing" for nil and cjson.null). Into buf where it
 * needs one: ESB_FIELDS_DESCRIBE_SIZE bytes hold any description whole. */
#define ESB_FIELDS_DESCRIBE_MAX 40
#define ESB_FIELDS_DESCRIBE_SIZE (4 * ESB_FIELDS_DESCRIBE_MAX + 32)
const char *esb_fields_describe(lua_State *L, int idx, char *buf, size_t buflen);

/* Records the printf-style message as the reader's failure, with the
 * reader's code, unless it has failed already: a reader's own check beyond a
 * field's type ("give one of 'text' and 'base64'"). */
void esb_fields_fail(struct esb_fields *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records an allocation failure while reading t[key]. */
void esb_fields_nomem(struct esb_fields *f, const char *key);

/* Every key of t must be one of the NULL-terminated `known`: a typo is an
 * error, not a silent default. */
void esb_fields_only(struct esb_fields *f, int t, const char *const *known);

/* A string without NUL bytes, copied (the caller frees it); NULL when absent
 * or bad. */
char *esb_fields_string(struct esb_fields *f, int t, const char *key);

/* An integer >= min (0 or 1) into *v; *v is left as it was when absent.
 * Returns whether it was there and good. */
bool esb_fields_uint(struct esb_fields *f, int t, const char *key, uint64_t min, uint64_t *v);

/* A boolean into *v, left as it was when absent. */
bool esb_fields_bool(struct esb_fields *f, int t, const char *key, bool *v);

/* A NULL-terminated vector of copies (esb_strv_free), its length in *n when
 * n is not NULL; NULL when absent or bad. */
char **esb_fields_strv(struct esb_fields *f, int t, const char *key, enum esb_fields_shape shape, size_t *n);

/* esb_fields_strv of an array whose entries are egress allow-list entries
 * (engine/contract/egress.h), each checked: a bad one fails the reader,
 * naming it and why. */
char **esb_fields_egress_list(struct esb_fields *f, int t, const char *key, size_t *n);

/* Enters the table t[key]: pushes it and adds it to the path. Returns false,
 * pushing nothing, when it is absent or, with an error, not a table. */
bool esb_fields_enter(struct esb_fields *f, int t, const char *key);

/* Enters the value the caller pushed, named `name` ("mounts[2]"); when it is
 * not a table (an error) or the reader has failed, pops it and returns false. */
bool esb_fields_enter_value(struct esb_fields *f, const char *name);

/* Leaves the table last entered: pops it and its part of the path. */
void esb_fields_leave(struct esb_fields *f);

#endif
