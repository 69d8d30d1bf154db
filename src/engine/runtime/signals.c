#include "engine/runtime/signals.h"

#include <signal.h>
#include <sys/signalfd.h>

int esb_signal_fd(const int *signals, size_t n) {
  sigset_t set;
  sigemptyset(&set);
  for (size_t i = 0; i < n; i++)
    sigaddset(&set, signals[i]);
  if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
    return -1;
  return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}
