#include "engine/strv.h"

#include <stdlib.h>

#include "tap.h"

int main(void) {
  struct esb_strv sv = ESB_STRV_INIT;
  char **v = esb_strv_detach(&sv);
  ok(v && v[0] == NULL, "an empty vector detaches as {NULL}");
  is_int(esb_strv_length(v), 0, "and has no strings");
  esb_strv_free(v);

  char word[] = "two";
  ok(esb_strv_push(&sv, "one") == 0, "push copies a string");
  ok(esb_strv_push(&sv, word) == 0, "push copies another");
  word[0] = 'X';
  ok(esb_strv_take(&sv, strdup("three")) == 0, "take keeps a malloc'd string");
  ok(esb_strv_take(&sv, NULL) < 0, "take of NULL is out of memory");
  is_int(sv.n, 3, "the failed take left the vector as it was");
  for (int i = 0; i < 100; i++)
    esb_strv_push(&sv, "more");
  v = esb_strv_detach(&sv);
  ok(sv.v == NULL && sv.n == 0, "detach leaves the builder empty");
  is_int(esb_strv_length(v), 103, "the vector grew past its first allocation");
  is_str(v[0], "one", "the first string");
  is_str(v[1], "two", "a pushed string is a copy");
  is_str(v[2], "three", "a taken string");
  ok(v[103] == NULL, "the vector is NULL-terminated");
  esb_strv_free(v);
  esb_strv_free(NULL);

  esb_strv_push(&sv, "dropped");
  esb_strv_clear(&sv);
  ok(sv.v == NULL && sv.n == 0, "clear frees what was pushed");
  return tap_done();
}
