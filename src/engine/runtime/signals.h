/* Signals as fds, for a loop that installs no handler. */
#ifndef ESB_ENGINE_SIGNALS_H
#define ESB_ENGINE_SIGNALS_H

#include <stddef.h>

/* Blocks the n signals and returns a non-blocking, close-on-exec signalfd
 * that reads them (for a loop's interrupt_fd or a watch), or -1 with errno. */
int esb_signal_fd(const int *signals, size_t n);

#endif
