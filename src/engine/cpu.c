#include "engine/cpu.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int esb_cpu_from_cores(double cores, uint64_t *millicores) {
  /* NaN fails every comparison. */
  if (!(cores > 0) || !(cores * 1000.0 <= ESB_CPU_MAX_MILLICORES))
    return -1;
  *millicores = (uint64_t)ceil(cores * 1000.0 - 1e-9);
  if (*millicores == 0)
    *millicores = 1;
  return 0;
}

int esb_cpu_parse(const char *text, uint64_t *millicores) {
  /* Digits and at most one point: no sign, exponent, hex, inf or nan. */
  size_t digits = strspn(text, "0123456789");
  size_t len = digits;
  if (text[len] == '.')
    len += 1 + strspn(text + len + 1, "0123456789");
  if (len == 0 || (len == 1 && text[0] == '.'))
    return -1;
  const char *suffix = text + len;
  if (*suffix && strcmp(suffix, "m") != 0)
    return -1;
  errno = 0;
  double v = strtod(text, NULL);
  if (errno)
    return -1;
  return esb_cpu_from_cores(*suffix ? v / 1000.0 : v, millicores);
}
