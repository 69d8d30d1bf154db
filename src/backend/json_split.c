#include "backend/json_split.h"

#include <stdlib.h>
#include <string.h>

static int keep(struct esb_json_split *s, char c, size_t max_bytes) {
  if (s->len >= max_bytes)
    return 1; /* too large: dropped */
  if (s->len == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 4096;
    char *buf = realloc(s->buf, cap);
    if (!buf)
      return -1;
    s->buf = buf;
    s->cap = cap;
  }
  s->buf[s->len++] = c;
  return 0;
}

int esb_json_split_feed(struct esb_json_split *s, const char *data, size_t len, size_t max_bytes,
                        esb_json_emit_fn emit, void *userdata) {
  for (size_t i = 0; i < len; i++) {
    char c = data[i];
    if (s->depth == 0 && c != '{')
      continue; /* between objects */
    if (!s->dropping) {
      int rc = keep(s, c, max_bytes);
      if (rc < 0)
        return -1;
      s->dropping = rc > 0;
    }
    if (s->in_string) {
      if (s->escaped)
        s->escaped = false;
      else if (c == '\\')
        s->escaped = true;
      else if (c == '"')
        s->in_string = false;
    } else if (c == '"') {
      s->in_string = true;
    } else if (c == '{' || c == '[') {
      s->depth++;
    } else if (c == '}' || c == ']') {
      if (--s->depth == 0) {
        if (!s->dropping)
          emit(s->buf, s->len, userdata);
        s->len = 0;
        s->dropping = false;
      }
    }
  }
  return 0;
}

void esb_json_split_release(struct esb_json_split *s) {
  free(s->buf);
  *s = (struct esb_json_split)ESB_JSON_SPLIT_INIT;
}
