/* Splits a byte stream of concatenated JSON objects, as `kubectl get -w -o
 * json` writes them (each pretty-printed, one after the other), into the
 * objects: the text of each is handed on once its closing brace arrives.
 * Braces inside strings (escapes included) do not count; anything between
 * top-level objects is skipped. Nothing is parsed. */
#ifndef ESB_BACKEND_JSON_SPLIT_H
#define ESB_BACKEND_JSON_SPLIT_H

#include <stdbool.h>
#include <stddef.h>

struct esb_json_split {
  char *buf;       /* owned: the object so far */
  size_t len, cap;
  int depth;       /* of braces and brackets; 0: between objects */
  bool in_string, escaped;
  bool dropping;   /* the object is over the size limit: counted, not kept */
};

#define ESB_JSON_SPLIT_INIT { .buf = NULL }

typedef void (*esb_json_emit_fn)(const char *text, size_t len, void *userdata);

/* Feeds data; calls emit for every object it completes. Returns 0, or -1
 * when out of memory (what was fed is then lost). An object larger than
 * max_bytes is dropped whole (returns 0). */
int esb_json_split_feed(struct esb_json_split *s, const char *data, size_t len, size_t max_bytes,
                        esb_json_emit_fn emit, void *userdata);

void esb_json_split_release(struct esb_json_split *s);

#endif
