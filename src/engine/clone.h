/* A fork-like clone: clone3 where the kernel (or valgrind) has it, clone
 * otherwise. Internal to the engine. Async-signal-safe. */
#ifndef ESB_CLONE_H
#define ESB_CLONE_H

#include <stdint.h>
#include <sys/types.h>

/* flags: CLONE_* (namespaces, CLONE_PIDFD with *pidfd); exit_signal: 0 or
 * SIGCHLD. Returns the pid in the parent, 0 in the child, -1 with errno. */
pid_t esb_clone(uint64_t flags, int *pidfd, int exit_signal);

#endif
