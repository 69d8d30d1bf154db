#include "backend/json_split.h"

#include <stdlib.h>

#include "tap.h"

struct seen {
  char texts[8][256];
  int n;
};

static void collect(const char *text, size_t len, void *userdata) {
  struct seen *s = userdata;
  if (s->n < 8)
    snprintf(s->texts[s->n], sizeof s->texts[0], "%.*s", (int)len, text);
  s->n++;
}

int main(void) {
  struct esb_json_split sp = ESB_JSON_SPLIT_INIT;
  struct seen s = { .n = 0 };
  const char *stream = "{\"a\": 1}\n{\n  \"b\": \"}{\\\"\",\n  \"c\": [ {} ]\n}garbage{\"d\":2}";
  ok(esb_json_split_feed(&sp, stream, strlen(stream), 1 << 20, collect, &s) == 0, "feeds a stream");
  is_int(s.n, 3, "three objects");
  is_str(s.texts[0], "{\"a\": 1}", "the first object");
  is_str(s.texts[1], "{\n  \"b\": \"}{\\\"\",\n  \"c\": [ {} ]\n}", "braces in strings and nested ones do not end it");
  is_str(s.texts[2], "{\"d\":2}", "what lies between objects is skipped");

  s.n = 0;
  const char *obj = "{\"key\": \"va\\\\\"}";
  for (size_t i = 0; i < strlen(obj); i++)
    esb_json_split_feed(&sp, obj + i, 1, 1 << 20, collect, &s);
  is_int(s.n, 1, "an object fed a byte at a time comes out once");
  is_str(s.texts[0], obj, "whole, an escaped backslash before the closing quote included");

  s.n = 0;
  char big[300];
  memset(big, ' ', sizeof big);
  big[0] = '{';
  big[sizeof big - 1] = '}';
  esb_json_split_feed(&sp, big, sizeof big, 100, collect, &s);
  is_int(s.n, 0, "an object over the limit is dropped");
  esb_json_split_feed(&sp, "{\"next\":1}", 10, 100, collect, &s);
  is_int(s.n, 1, "the one after it comes out");
  is_str(s.texts[0], "{\"next\":1}", "whole");
  esb_json_split_release(&sp);
  ok(sp.buf == NULL, "release frees the buffer");
  return tap_done();
}
