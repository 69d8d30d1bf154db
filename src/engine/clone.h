/* A fork-like clone: clone3 where the kernel (or valgrind) has it, clone
 * otherwise. Internal to the engine. Async-signal-safe. */
#ifndef ESB_CLONE_H
#define ESB_CLONE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* flags: CLONE_* (namespaces, CLONE_PIDFD with *pidfd); exit_signal: 0 or
 * SIGCHLD; cgroup_fd: -1, or a cgroup v2 directory the child starts in
 * (CLONE_INTO_CGROUP). *into_cgroup (when not NULL) tells the child too
 * whether it did: clone(2), the fallback, cannot. Returns the pid in the
 * parent, 0 in the child, -1 with errno. */
pid_t esb_clone(uint64_t flags, int *pidfd, int exit_signal, int cgroup_fd, bool *into_cgroup);

#endif
