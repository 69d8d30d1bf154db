#include "engine/clone.h"

#include <errno.h>
#include <linux/sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

pid_t esb_clone(uint64_t flags, int *pidfd, int exit_signal, int cgroup_fd, bool *into_cgroup) {
  struct clone_args args;
  memset(&args, 0, sizeof args);
  args.flags = flags;
  if (cgroup_fd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = (uint64_t)cgroup_fd;
  }
  if (into_cgroup)
    *into_cgroup = cgroup_fd >= 0; /* what the child sees: it is a copy from now */
  args.pidfd = (uint64_t)(uintptr_t)pidfd;
  args.exit_signal = (uint64_t)exit_signal;
  long pid = syscall(SYS_clone3, &args, sizeof args);
  if (pid >= 0 || errno != ENOSYS)
    return (pid_t)pid;
  if (into_cgroup)
    *into_cgroup = false;
  /* clone(2): the pidfd comes back through the parent_tid argument, which is
   * the third on every architecture we build for. No stack: fork semantics. */
  return (pid_t)syscall(SYS_clone, (unsigned long)flags | (unsigned long)exit_signal, 0UL,
                        (unsigned long)(uintptr_t)pidfd, 0UL, 0UL);
}
