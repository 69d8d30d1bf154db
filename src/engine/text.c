#include "engine/text.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* The length of the valid UTF-8 character at s (n > 0 bytes there), or 0
 * where the bytes are none (strict, as esb_utf8_valid says). */
static size_t utf8_char(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  if (c < 0x80)
    return 1;
  size_t len;
  uint32_t min, cp;
  if ((c & 0xE0) == 0xC0) { len = 2; min = 0x80; cp = c & 0x1F; }
  else if ((c & 0xF0) == 0xE0) { len = 3; min = 0x800; cp = c & 0x0F; }
  else if ((c & 0xF8) == 0xF0) { len = 4; min = 0x10000; cp = c & 0x07; }
  else return 0;
  if (n < len) return 0;
  for (size_t k = 1; k < len; k++) {
    if ((s[k] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[k] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

size_t esb_utf8_prefix(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  for (size_t len; i < n && (len = utf8_char(s + i, n - i)); i += len)
    ;
  return i;
}

bool esb_utf8_valid(const char *s, size_t n) { return esb_utf8_prefix(s, n) == n; }

size_t esb_utf8_scrub(const char *str, size_t n, char *out) {
  const unsigned char *s = (const unsigned char *)str;
  size_t o = 0;
  for (size_t i = 0, len; i < n; i += len ? len : 1) {
    len = utf8_char(s + i, n - i);
    if (len) {
      memcpy(out + o, s + i, len);
      o += len;
    } else {
      memcpy(out + o, "\xEF\xBF\xBD", 3); /* U+FFFD REPLACEMENT CHARACTER */
      o += 3;
    }
  }
  return o;
}

void esb_base64_encode(const char *str, size_t n, char *out) {
  static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const unsigned char *s = (const unsigned char *)str;
  char *o = out;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
    *o++ = alphabet[v >> 18 & 63]; *o++ = alphabet[v >> 12 & 63];
    *o++ = alphabet[v >> 6 & 63];  *o++ = alphabet[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
    *o++ = alphabet[v >> 18 & 63]; *o++ = alphabet[v >> 12 & 63];
    *o++ = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
    *o++ = '=';
  }
}

static int base64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

int esb_base64_decode(const char *str, size_t n, char *out, size_t *outlen) {
  const unsigned char *s = (const unsigned char *)str;
  if (n % 4)
    return -1;
  size_t o = 0;
  for (size_t i = 0; i < n; i += 4) {
    bool last = i + 4 == n;
    int pad = last && s[i + 3] == '=' ? (s[i + 2] == '=' ? 2 : 1) : 0;
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
      int d = k >= 4 - pad ? 0 : base64_value(s[i + k]);
      if (d < 0)
        return -1;
      v = v << 6 | (uint32_t)d;
    }
    /* the bits a padded group leaves unused must be zero: one text per bytes */
    if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff)))
      return -1;
    out[o++] = (char)(v >> 16);
    if (pad < 2) out[o++] = (char)(v >> 8 & 0xff);
    if (pad < 1) out[o++] = (char)(v & 0xff);
  }
  *outlen = o;
  return 0;
}
