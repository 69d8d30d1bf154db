/* A session kernel's reply (kernels/python.py says the protocol), read in
 * C: one JSON object a line, {"id": N, "status": S, "value": TEXT|null,
 * "error": {"name", "message", "traceback"}}. The reply is the program's
 * word (the kernel runs the cell's code in its own process): the reader
 * takes any bytes without harm, and keys it does not know are skipped.
 * Only what a reply needs of JSON is read: objects, strings (with every
 * escape), integers, null, true, false; arrays and fractions are refused. */
#ifndef ESB_BACKEND_KERNEL_REPLY_H
#define ESB_BACKEND_KERNEL_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct esb_kernel_reply {
  int64_t id;          /* -1: none (null, or not an integer) */
  char status[16];     /* "ok", "error", "interrupted"; "" where missing */
  char *value;         /* owned; NULL: null or missing */
  char *name, *message, *traceback; /* owned, of "error"; NULL: missing */
};

#define ESB_KERNEL_REPLY_INIT { .id = -1 }

/* 0, or -1 where text is not such an object (what was read is released). */
int esb_kernel_reply_parse(const char *text, size_t len, struct esb_kernel_reply *r);
void esb_kernel_reply_release(struct esb_kernel_reply *r);

/* text as a JSON string's contents (no quotes), appended to *buf (malloc'd,
 * grown as needed; *len its length). 0, or -1 when out of memory. */
int esb_json_escape_append(char **buf, size_t *len, size_t *cap, const char *text, size_t n);

#endif
