/* The JSON front end the CLI and the daemon share (src/codec/json.c):
 * decoding refuses what is not JSON or not UTF-8 with a message that says
 * where, and leaves the stack as it was; encoding refuses what JSON cannot
 * hold; results, output events and the languages' list come out in their
 * documented shapes; a line printed is the JSON and one newline.
 *
 * Checked: without strict_decode (cjson's own decode in its place), the
 * non-UTF-8 documents are taken and their cases fail; without its NUL
 * check, '{"a":1}' then a NUL and anything is taken as '{"a":1}'; with esb_json_decode's
 * prefix changed, every refusal's case fails; with esb_json_print's
 * newline dropped (both writes of it), the line case fails. */
#include "codec/json.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "lua_expr.h"
#include "tap.h"

/* The message esb_json_decode gives for text ("" when it decodes it: the
 * value is then set as the global `v`); the stack is left as it was. */
static const char *decoded(lua_State *L, const char *text, size_t len) {
  static struct esb_error err;
  int top = lua_gettop(L);
  err = (struct esb_error)ESB_ERROR_INIT;
  if (esb_json_decode(L, text, len, &err) == 0) {
    if (err.message[0] || err.code != ESB_OK)
      return "(decoded, with a message)";
    lua_setglobal(L, "v");
  } else if (!err.message[0]) {
    return "(refused without a message)";
  } else if (err.code != ESB_E_INVALID_REQUEST) {
    return "(refused, not as an invalid request)";
  }
  return lua_gettop(L) == top ? err.message : "(the stack was not left as it was)";
}

#define DECODED(L, lit) decoded((L), (lit), sizeof (lit) - 1)

static void decode(lua_State *L) {
  is_str(DECODED(L, "{\"a\": [1, \"x\", null, true]}"), "", "an object is decoded");
  holds(L, "v.a[1] == 1 and v.a[2] == 'x' and v.a[3] == null and v.a[4] == true", "its values, null as cjson.null");
  is_str(DECODED(L, "\"\\u00e9\\u0000\""), "", "escapes, \\u0000 too");
  holds(L, "v == '\\u{e9}\\0'", "a string with a NUL in it");
  is_str(DECODED(L, "{\"a\": \"\xc3\xa9\"}"), "", "UTF-8 bytes in a string");
  is_str(DECODED(L, "{\"a\": \"\xff\"}"), "invalid request JSON: not UTF-8 at byte 8", "a byte that is no UTF-8");
  is_str(DECODED(L, "{\"a\": \"\xc3\"}"), "invalid request JSON: not UTF-8 at byte 8", "a sequence cut short");
  is_str(DECODED(L, "{\"a\": \"\xed\xa0\x80\"}"), "invalid request JSON: not UTF-8 at byte 8",
         "a surrogate's bytes are no UTF-8");
  is_str(DECODED(L, "{\"a\":1}\0{}"), "invalid request JSON: a NUL byte at byte 8", "a NUL after the document");
  is_str(DECODED(L, "{\"a\": \"x\0y\"}"), "invalid request JSON: a NUL byte at byte 9", "a NUL in a string");
  is_str(DECODED(L, "{\"a\": \"\xff\0\"}"), "invalid request JSON: not UTF-8 at byte 8",
         "the first thing wrong is named");
  is_str(DECODED(L, ""), "invalid request JSON: Expected value but found T_END at character 1", "nothing");
  is_str(DECODED(L, "{"), "invalid request JSON: Expected object key string but found T_END at character 2",
         "an object cut short");
  is_str(DECODED(L, "[1, 2"), "invalid request JSON: Expected comma or array end but found T_END at character 6",
         "an array cut short");
  is_str(DECODED(L, "{\"a\": 1} x"), "invalid request JSON: Expected the end but found invalid token at character 10",
         "something after the document");
  is_str(DECODED(L, "\xef\xbb\xbf{}"), "invalid request JSON: Expected value but found invalid token at character 1",
         "a byte-order mark");
  is_str(DECODED(L, "{\"a\": \"\\ud800\"}"),
         "invalid request JSON: Expected value but found invalid unicode escape code at character 8",
         "a lone surrogate escape");
  char deep[4000];
  memset(deep, '[', 2000);
  memset(deep + 2000, ']', 2000);
  is_str(decoded(L, deep, sizeof deep), "invalid request JSON: Found too many nested data structures (1001) at "
         "character 1001", "2000 arrays deep");
}

/* The value on top encoded: its text (static), or the message. */
static const char *encoded(lua_State *L) {
  static char text[4096];
  static struct esb_error err;
  int top = lua_gettop(L);
  if (esb_json_encode(L, &err) < 0)
    return lua_gettop(L) == top - 1 ? err.message : "(a failed encode left the stack changed)";
  snprintf(text, sizeof text, "%s", lua_tostring(L, -1));
  lua_pop(L, 1);
  return text;
}

static void encode(lua_State *L) {
  push(L, "{1, 'x'}");
  is_str(encoded(L), "[1,\"x\"]", "an array");
  push(L, "{a = 0/0}");
  is_str(encoded(L), "cannot encode JSON: Cannot serialise number: must not be NaN or Inf", "NaN is refused");
  push(L, "{a = print}");
  is_str(encoded(L), "cannot encode JSON: Cannot serialise function: type not supported", "a function is refused");
  push(L, "'\\0'");
  is_str(encoded(L), "\"\\u0000\"", "a NUL is escaped");
}

static void results(lua_State *L) {
  struct esb_result r = ESB_RESULT_INIT;
  esb_result_fail(&r, ESB_E_SANDBOX_SETUP, "no \xff room");
  r.out.data = strdup("\x80");
  r.out.len = r.out.total = 1;
  ok(esb_json_push_result(L, &r) == 0, "a result is pushed");
  lua_setglobal(L, "v");
  holds(L, "v.status == 'error' and v.error.code == 'sandbox_setup' and v.error.message == 'no \\u{FFFD} room'",
        "its error, the message scrubbed");
  holds(L, "v.signal == null and v.cpu_time_ms == null and v.stdout == nil and v.stdout_base64 == 'gA=='",
        "null for unknowns, bytes that are not UTF-8 as base64");
  lua_getglobal(L, "v");
  const char *text = encoded(L);
  ok(strstr(text, "\"signal\":null") && strstr(text, "\"stdout_base64\":\"gA==\""), "and it encodes as JSON");
  esb_result_release(&r);

  struct esb_json_event ev = { .stream = 1, .data = "hi", .len = 2, .text = true };
  ok(esb_json_push_event(L, &ev) == 0, "an output event is pushed");
  lua_setglobal(L, "v");
  holds(L, "v.event == 'output' and v.stream == 'stdout' and v.data == 'hi' and v.data_base64 == nil",
        "stdout's text as data");
  ev = (struct esb_json_event){ .stream = 2, .data = "\0\xff", .len = 2, .text = false };
  ok(esb_json_push_event(L, &ev) == 0, "stderr's bytes are pushed");
  lua_setglobal(L, "v");
  holds(L, "v.stream == 'stderr' and v.data == nil and v.data_base64 == 'AP8='", "as data_base64");
  ev = (struct esb_json_event){ .stream = 0, .ceiling = 4096 };
  ok(esb_json_push_event(L, &ev) == 0, "a truncation event is pushed");
  lua_setglobal(L, "v");
  holds(L, "v.event == 'truncated' and v.max_stream_bytes == 4096 and v.stream == nil", "with its ceiling");

  struct esb_language langs[] = {{"python", "python:3.12", "main.py"}, {"sh", NULL, NULL}};
  ok(esb_json_push_languages(L, langs, 2) == 0, "the languages are pushed");
  lua_setglobal(L, "v");
  holds(L, "#v.languages == 2 and v.languages[1].name == 'python' and v.languages[1].image == 'python:3.12' and "
        "v.languages[1].file == 'main.py'", "in order, with their fields");
  holds(L, "v.languages[2].name == 'sh' and v.languages[2].image == nil and v.languages[2].file == nil",
        "absent fields left out");
  ok(esb_json_push_languages(L, NULL, 0) == 0, "no languages");
  is_str(encoded(L), "{\"languages\":{}}", "an empty list (cjson writes an empty table as {})");
}

/* What esb_json_print writes to fd 1 (and to fd 2) for the value on top. */
static void print_to(lua_State *L, char *out, size_t outlen, char *err, size_t errlen) {
  char outpath[] = "/tmp/esb-json-test-XXXXXX", errpath[] = "/tmp/esb-json-test-XXXXXX";
  int ofd = mkstemp(outpath), efd = mkstemp(errpath);
  fflush(stdout);
  fflush(stderr);
  int saved_out = dup(1), saved_err = dup(2);
  if (ofd < 0 || efd < 0 || saved_out < 0 || saved_err < 0 || dup2(ofd, 1) < 0 || dup2(efd, 2) < 0)
    abort();
  esb_json_print(L);
  fflush(stderr);
  dup2(saved_out, 1);
  dup2(saved_err, 2);
  close(saved_out);
  close(saved_err);
  ssize_t n = pread(ofd, out, outlen - 1, 0);
  out[n > 0 ? n : 0] = '\0';
  n = pread(efd, err, errlen - 1, 0);
  err[n > 0 ? n : 0] = '\0';
  close(ofd);
  close(efd);
  unlink(outpath);
  unlink(errpath);
}

static void print(lua_State *L) {
  char out[256], err[256];
  int top = lua_gettop(L);
  push(L, "{ok = true}");
  print_to(L, out, sizeof out, err, sizeof err);
  is_str(out, "{\"ok\":true}\n", "a line: the JSON and one newline");
  is_str(err, "", "nothing on stderr");
  ok(lua_gettop(L) == top, "the value is popped");
  push(L, "{a = 1/0}");
  print_to(L, out, sizeof out, err, sizeof err);
  is_str(out, "", "nothing on stdout for what cannot be encoded");
  is_str(err, "echo-sandbox: cannot encode JSON: Cannot serialise number: must not be NaN or Inf\n", "but why, on stderr");
  ok(lua_gettop(L) == top, "and the value is popped");
}

int main(void) {
  lua_State *L = esb_json_state();
  if (!L)
    abort();
  esb_json_field(L, "null");
  ok(lua_type(L, -1) == LUA_TLIGHTUSERDATA && !lua_touserdata(L, -1), "cjson.null is a NULL light userdata");
  lua_pop(L, 1);
  esb_json_field(L, "nothing");
  ok(lua_isnil(L, -1), "a field cjson does not have is nil");
  lua_pop(L, 1);
  decode(L);
  encode(L);
  results(L);
  print(L);
  lua_close(L);
  return tap_done();
}
