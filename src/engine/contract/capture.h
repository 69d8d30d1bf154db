/* A capped output buffer: keeps the first `cap` bytes of a stream and counts
 * the rest, so a flood costs the engine no memory beyond the cap. */
#ifndef ESB_ENGINE_CAPTURE_H
#define ESB_ENGINE_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct esb_capture {
  char *data;      /* owned; NUL-terminated for convenience, may contain NULs */
  size_t len;      /* bytes kept */
  size_t alloc;    /* bytes allocated for data */
  size_t cap;      /* most bytes kept */
  uint64_t total;  /* bytes the program wrote */
};

#define ESB_CAPTURE_INIT { 0 }

/* Keeps what fits under the cap and counts all. Returns -1 (errno ENOMEM)
 * when memory for kept bytes could not be had; the bytes are counted anyway. */
int esb_capture_append(struct esb_capture *c, const char *buf, size_t n);
static inline bool esb_capture_truncated(const struct esb_capture *c) { return c->total > c->len; }
void esb_capture_release(struct esb_capture *c);

#endif
