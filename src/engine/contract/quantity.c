#include "engine/contract/quantity.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct {
  const char *suffix;
  double factor;
} suffixes[] = {
  {"", 1}, {"m", 1e-3}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}, {"E", 1e18},
  {"Ki", 0x1p10}, {"Mi", 0x1p20}, {"Gi", 0x1p30}, {"Ti", 0x1p40}, {"Pi", 0x1p50}, {"Ei", 0x1p60},
};

/* "e3", "E-2": the exponent's power of ten, or -1 when s is not one. */
static int exponent_factor(const char *s, double *factor) {
  if (*s != 'e' && *s != 'E')
    return -1;
  s++;
  const char *digits = s + (*s == '+' || *s == '-');
  if (!*digits || strspn(digits, "0123456789") != strlen(digits))
    return -1;
  *factor = pow(10.0, (double)strtol(s, NULL, 10));
  return 0;
}

/* The length of the decimal number text starts with (0: none). */
static size_t number_length(const char *text) {
  size_t len = strspn(text, "0123456789");
  if (text[len] == '.') {
    size_t frac = strspn(text + len + 1, "0123456789");
    if (frac == 0)
      return 0; /* "5." or "." */
    len += 1 + frac;
  }
  return len;
}

int esb_quantity_number(const char *text, double *value) {
  size_t len = number_length(text);
  if (len == 0 || text[len])
    return -1;
  return esb_quantity_parse(text, value);
}

int esb_quantity_parse(const char *text, double *value) {
  size_t len = number_length(text);
  if (len == 0)
    return -1;
  const char *suffix = text + len;
  double factor = 0;
  for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
    if (strcmp(suffix, suffixes[i].suffix) == 0)
      factor = suffixes[i].factor;
  if (factor == 0 && exponent_factor(suffix, &factor) < 0)
    return -1;
  char number[64]; /* strtod alone: it would read an exponent suffix itself */
  if (len >= sizeof number)
    return -1;
  memcpy(number, text, len);
  number[len] = '\0';
  errno = 0;
  double v = strtod(number, NULL) * factor;
  if (errno == ERANGE && v != 0)
    return -1;
  if (!isfinite(v))
    return -1;
  *value = v;
  return 0;
}

int esb_quantity_whole(const char *text, uint64_t min, uint64_t max, uint64_t *value) {
  double v;
  if (esb_quantity_parse(text, &v) < 0 || v != floor(v) || v < (double)min || v > (double)max ||
      v >= 0x1p64)
    return -1;
  *value = (uint64_t)v;
  return 0;
}
