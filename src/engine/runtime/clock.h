/* The one clock of deadlines and durations: CLOCK_MONOTONIC, in ns. */
#ifndef ESB_ENGINE_CLOCK_H
#define ESB_ENGINE_CLOCK_H

#include <stdint.h>

uint64_t esb_now_ns(void);

#endif
