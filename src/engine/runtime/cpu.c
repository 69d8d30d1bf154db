#include "engine/runtime/cpu.h"

#include <math.h>

#include "engine/contract/quantity.h"

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
  double cores;
  return esb_quantity_parse(text, &cores) < 0 ? -1 : esb_cpu_from_cores(cores, millicores);
}
