/* The C parser against the table of cases the Lua one is tested against
 * too (spec/quantity_spec.lua): one grammar. */
#include "engine/contract/quantity.h"
#include "engine/runtime/cpu.h"

#include <math.h>
#include <stdlib.h>

#include "tap.h"

static void shared_cases(void) {
  FILE *f = fopen(ESB_SOURCE_DIR "/spec/support/quantities.txt", "re");
  if (!ok(f != NULL, "the shared cases are there"))
    return;
  char line[256];
  int n = 0;
  while (fgets(line, sizeof line, f)) {
    char text[128], want[128], what[300];
    if (line[0] == '#' || sscanf(line, "%127s %127s", text, want) != 2)
      continue;
    n++;
    double v = -1;
    int rc = esb_quantity_parse(text, &v);
    if (strcmp(want, "invalid") == 0) {
      snprintf(what, sizeof what, "\"%s\" is not a quantity", text);
      ok(rc < 0, what);
    } else {
      snprintf(what, sizeof what, "\"%s\" is %s", text, want);
      double w = strtod(want, NULL);
      if (!ok(rc == 0 && v == w, what))
        printf("#   got %d, %.17g\n", rc, v);
    }
  }
  fclose(f);
  ok(n > 30, "more than 30 shared cases");
}

int main(void) {
  shared_cases();
  uint64_t v = 0;
  ok(esb_quantity_whole("1.5Gi", 1, UINT64_MAX, &v) == 0 && v == 1610612736, "1.5Gi is a whole number of bytes");
  ok(esb_quantity_whole("1.5", 1, UINT64_MAX, &v) < 0, "1.5 is not");
  ok(esb_quantity_whole("0", 1, UINT64_MAX, &v) < 0, "0 is under a minimum of 1");
  ok(esb_quantity_whole("2k", 1, 1000, &v) < 0, "2k is over a maximum of 1000");
  ok(esb_quantity_whole("1k", 1, 1000, &v) == 0 && v == 1000, "1k is at it");
  ok(esb_quantity_whole("16Ei", 1, UINT64_MAX, &v) < 0, "16Ei does not fit 64 bits");
  ok(esb_quantity_whole("1500m", 0, 10, &v) < 0, "1500m is not whole");

  uint64_t mc = 0;
  ok(esb_cpu_parse("500m", &mc) == 0 && mc == 500, "cpu 500m is 500 millicores");
  ok(esb_cpu_parse("2", &mc) == 0 && mc == 2000, "cpu 2 is 2000 millicores");
  ok(esb_cpu_parse("0.25", &mc) == 0 && mc == 250, "cpu 0.25 is 250 millicores");
  ok(esb_cpu_parse("1.0001", &mc) == 0 && mc == 1001, "a fraction of a millicore rounds up");
  ok(esb_cpu_parse("0", &mc) < 0, "no cpu is refused");
  ok(esb_cpu_parse("-1", &mc) < 0, "a negative cpu is refused");
  ok(esb_cpu_parse("1Gi", &mc) < 0, "a cpu beyond the ceiling is refused");
  ok(esb_cpu_parse("abc", &mc) < 0, "text is refused");
  ok(esb_cpu_from_cores(NAN, &mc) < 0, "NaN cores are refused");
  ok(esb_cpu_from_cores(0.0001, &mc) == 0 && mc == 1, "a sliver of a core is one millicore");
  return tap_done();
}
