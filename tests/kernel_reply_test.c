#include "backend/kernel_reply.h"

#include <stdlib.h>

#include "tap.h"

static int parse(const char *text, struct esb_kernel_reply *r) {
  return esb_kernel_reply_parse(text, strlen(text), r);
}

int main(void) {
  struct esb_kernel_reply r;
  ok(parse("{\"id\": 7, \"status\": \"ok\", \"value\": \"42\"}", &r) == 0, "a reply");
  ok(r.id == 7, "its id");
  is_str(r.status, "ok", "its status");
  is_str(r.value, "42", "its value");
  ok(!r.name && !r.traceback, "no error");
  esb_kernel_reply_release(&r);

  ok(parse("{\"id\": 2, \"status\": \"error\", \"value\": null, \"extra\": {\"a\": [1]}}", &r) < 0,
       "an array (no reply has one) is refused");
  ok(parse("{\"id\": 2, \"status\": \"error\", \"value\": null, \"error\": {\"name\": \"E\", \"message\": "
           "\"m\\n\\\"q\\\" \\u00e9\\ud83d\\ude00\\ud800\", \"traceback\": \"t\", \"more\": true}, \"x\": -3}", &r) == 0,
     "an error, escapes of every kind, keys it does not know");
  is_str(r.name, "E", "the error's name");
  is_str(r.message, "m\n\"q\" \xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbd", "escapes decoded; a lone surrogate is U+FFFD");
  is_str(r.traceback, "t", "the traceback");
  ok(r.value == NULL, "a null value");
  esb_kernel_reply_release(&r);

  static const char *const bad[] = {
    "", "{", "{\"id\": 1", "{\"id\": 1.5}", "{\"id\": 1}x", "{\"status\": \"a\x01\"}", "{\"value\": \"\\x\"}",
    "{\"value\": \"\\u12\"}", "{\"value\": \"open}", "[1]", "{\"e\": {\"e\": {\"e\": {\"e\": {\"e\": {\"e\": "
    "{\"e\": {\"e\": {\"e\": {\"e\": 1}}}}}}}}}}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ok(parse(bad[i], &r) < 0, bad[i]);
    ok(r.value == NULL && r.name == NULL && r.id == -1, "nothing is left of a refused one");
  }
  ok(parse("{\"id\": null, \"status\": \"error\"}", &r) == 0 && r.id == -1, "a null id is none");
  esb_kernel_reply_release(&r);

  char *buf = NULL;
  size_t len = 0, cap = 0;
  ok(esb_json_escape_append(&buf, &len, &cap, "a\"b\\c\n\x01\xc3\xa9", 9) == 0, "escapes");
  buf[len] = '\0';
  is_str(buf, "a\\\"b\\\\c\\u000a\\u0001\xc3\xa9", "quotes, backslashes and control bytes; UTF-8 as it is");
  free(buf);
  return tap_done();
}
