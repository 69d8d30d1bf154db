#include "engine/contract/capture.h"

#include <stdlib.h>
#include <string.h>

int esb_capture_append(struct esb_capture *c, const char *buf, size_t n) {
  c->total += n;
  size_t room = c->cap > c->len ? c->cap - c->len : 0;
  size_t keep = n < room ? n : room;
  if (keep == 0)
    return 0;
  /* Grow geometrically but never past the cap (+1 for the terminator). */
  size_t need = c->len + keep + 1;
  if (need > c->alloc) {
    size_t want = c->len * 2 + 1;
    if (want < need) want = need;
    if (want < 4096) want = 4096;
    if (want > c->cap + 1) want = c->cap + 1;
    char *p = realloc(c->data, want);
    if (!p)
      return -1;
    c->data = p;
    c->alloc = want;
  }
  memcpy(c->data + c->len, buf, keep);
  c->len += keep;
  c->data[c->len] = '\0';
  return 0;
}

void esb_capture_release(struct esb_capture *c) {
  free(c->data);
  size_t cap = c->cap;
  *c = (struct esb_capture)ESB_CAPTURE_INIT;
  c->cap = cap;
}
