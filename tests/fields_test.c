/* The field reader (src/luaglue/fields.c): paths in messages, the two
 * voices, absent vs nil vs cjson.null, a reader that stops at its first
 * error, and a stack left as it was. */
#include "luaglue/fields.h"

#include <stdlib.h>

#include <lauxlib.h>
#include <lualib.h>

#include "engine/strv.h"
#include "lua_expr.h"
#include "tap.h"

int main(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  struct esb_error err = ESB_ERROR_INIT;

  push(L, "{ name = 'a', n = 3, zero = 0, yes = true, gone = null, list = { 'x', 'y' }, "
          "map = { K = 'v' }, limits = { cpu = 'lots', deep = { n = -1 } } }");
  int top = lua_gettop(L);
  struct esb_fields f = ESB_FIELDS_INIT(L, NULL, &err);
  char *name = esb_fields_string(&f, top, "name");
  is_str(name, "a", "a string is copied");
  free(name);
  is_str(esb_fields_string(&f, top, "gone"), NULL, "cjson.null is absent");
  is_str(esb_fields_string(&f, top, "nothing"), NULL, "nil is absent");
  uint64_t n = 7;
  ok(!esb_fields_uint(&f, top, "nothing", 1, &n) && n == 7, "an absent integer leaves the default");
  ok(esb_fields_uint(&f, top, "n", 1, &n) && n == 3, "an integer is read");
  ok(esb_fields_uint(&f, top, "zero", 0, &n) && n == 0, "0 where 0 is allowed");
  bool yes = false;
  ok(esb_fields_bool(&f, top, "yes", &yes) && yes, "a boolean is read");
  size_t count = 0;
  char **list = esb_fields_strv(&f, top, "list", ESB_FIELDS_ARRAY, &count);
  ok(list && count == 2 && strcmp(list[1], "y") == 0 && !list[2], "an array of strings");
  esb_strv_free(list);
  char **map = esb_fields_strv(&f, top, "map", ESB_FIELDS_MAP, NULL);
  ok(map && strcmp(map[0], "K=v") == 0 && !map[1], "a map as NAME=value");
  esb_strv_free(map);
  ok(!f.failed, "no error so far");
  is_int(lua_gettop(L), top, "reads leave the stack as it was");

  ok(esb_fields_enter(&f, top, "limits"), "enter a table");
  is_int(lua_gettop(L), top + 1, "enter pushes the table");
  ok(esb_fields_enter(&f, -1, "deep"), "and one below it");
  ok(!esb_fields_uint(&f, -1, "n", 0, &n), "a negative integer is refused");
  is_str(err.message, "invalid request: 'limits.deep.n' must be a non-negative integer (got -1)",
         "a request's message names the path");
  is_int(err.code, ESB_E_INVALID_REQUEST, "a request's field is an invalid request");
  esb_fields_leave(&f);
  esb_fields_leave(&f);
  is_int(lua_gettop(L), top, "leave pops what enter pushed");
  is_str(f.path, "", "and the path with it");
  ok(!esb_fields_string(&f, top, "name"), "after an error every read is absent");
  is_str(err.message, "invalid request: 'limits.deep.n' must be a non-negative integer (got -1)",
         "and the first error stays");
  lua_settop(L, 0);

  push(L, "{ a = 1, b = 2, [1] = 'x' }");
  f = (struct esb_fields)ESB_FIELDS_INIT(L, NULL, &err);
  static const char *const known[] = {"a", "b", NULL};
  esb_fields_only(&f, 1, known);
  is_str(err.message, "invalid request: the request must be an object with named fields, not an array",
         "a key that is not a name is refused");
  lua_settop(L, 0);
  push(L, "{ a = 1, typo = 2 }");
  f = (struct esb_fields)ESB_FIELDS_INIT(L, NULL, &err);
  esb_fields_only(&f, 1, known);
  is_str(err.message, "invalid request: unknown field 'typo'", "an unknown field is named");
  is_int(lua_gettop(L), 1, "the key check leaves the stack as it was");
  lua_settop(L, 0);

  push(L, "{ k8s = { image = 3 }, s = 'a\\0b', list = { 'a', 2 } }");
  f = (struct esb_fields)ESB_FIELDS_INIT(L, "plan", &err);
  ok(esb_fields_enter(&f, 1, "k8s"), "a hook's table");
  ok(!esb_fields_string(&f, -1, "image"), "a number is no string");
  is_str(err.message, "policy hook 'plan' returned a bad field 'k8s.image': expected a string, got 3",
         "a hook's message names the hook and the path");
  is_int(err.code, ESB_E_POLICY, "a hook's field is the policy's error");
  esb_fields_leave(&f);
  f = (struct esb_fields)ESB_FIELDS_INIT(L, "plan", &err);
  ok(!esb_fields_string(&f, 1, "s"), "a string with a NUL byte is refused");
  is_str(err.message,
         "policy hook 'plan' returned a bad field 's': expected a string without NUL bytes, got \"a\\x00b\"",
         "saying why");
  f = (struct esb_fields)ESB_FIELDS_INIT(L, "plan", &err);
  ok(!esb_fields_strv(&f, 1, "list", ESB_FIELDS_ARRAY, NULL), "an array with a number is refused");
  f = (struct esb_fields)ESB_FIELDS_INIT(L, "plan", &err);
  ok(!esb_fields_enter(&f, 1, "s"), "a string is no table to enter");
  is_str(err.message, "policy hook 'plan' returned a bad field 's': expected a table, got \"a\\x00b\"",
         "said as a table");
  is_int(lua_gettop(L), 1, "a failed enter pushes nothing");
  f = (struct esb_fields)ESB_FIELDS_INIT(L, NULL, &err);
  ok(!esb_fields_enter(&f, 1, "s"), "nor in a request");
  is_str(err.message, "invalid request: 's' must be an object (got \"a\\x00b\")", "said as JSON says it");
  f = (struct esb_fields)ESB_FIELDS_INIT(L, "plan", &err);
  esb_fields_bad(&f, 1, "missing", "a positive integer");
  is_str(err.message, "policy hook 'plan' returned a bad field 'missing': expected a positive integer, got nothing",
         "a missing field is said to be nothing");

  lua_close(L);
  return tap_done();
}
