/* Output encoding helpers: a result carries a stream as text only when it is
 * valid UTF-8, otherwise as base64, so bytes are never silently corrupted. */
#ifndef ESB_ENGINE_TEXT_H
#define ESB_ENGINE_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
bool esb_utf8_valid(const char *s, size_t n);

/* How many of the n bytes at s are valid UTF-8 before the first that is
 * not (n: all are). */
size_t esb_utf8_prefix(const char *s, size_t n);

/* Text for people (a message that quotes bytes from outside the engine) as
 * valid UTF-8: each byte that starts no valid character becomes U+FFFD.
 * out holds 3 * n bytes; returns the length written (no terminator). Not
 * for output or data, which esb_utf8_valid sends to base64 whole. */
size_t esb_utf8_scrub(const char *s, size_t n, char *out);

/* Standard base64 with padding: esb_base64_length(n) bytes go to out (no
 * terminator is written). */
static inline size_t esb_base64_length(size_t n) { return (n + 2) / 3 * 4; }
void esb_base64_encode(const char *s, size_t n, char *out);

/* Decodes standard base64 with padding (no line breaks, nothing else) into
 * out, which holds n / 4 * 3 bytes; *outlen gets the length. 0, or -1 for
 * text that is not such base64. */
int esb_base64_decode(const char *s, size_t n, char *out, size_t *outlen);

#endif
