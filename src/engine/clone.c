#include "engine/clone.h"

#include <errno.h>
#include <linux/sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

pid_t esb_clone(uint64_t flags, int *pidfd, int exit_signal) {
  struct clone_args args;
  memset(&args, 0, sizeof args);
  args.flags = flags;
  args.pidfd = (uint64_t)(uintptr_t)pidfd;
  args.exit_signal = (uint64_t)exit_signal;
  long pid = syscall(SYS_clone3, &args, sizeof args);
  if (pid >= 0 || errno != ENOSYS)
    return (pid_t)pid;
  /* clone(2): the pidfd comes back through the parent_tid argument, which is
   * the third on every architecture we build for. No stack: fork semantics. */
  return (pid_t)syscall(SYS_clone, (unsigned long)flags | (unsigned long)exit_signal, 0UL,
                        (unsigned long)(uintptr_t)pidfd, 0UL, 0UL);
}
