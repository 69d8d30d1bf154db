/* A fork-like clone: clone3 where the kernel (or valgrind) has it, clone
 * otherwise. Internal to the engine. Async-signal-safe. */
#ifndef ESB_ENGINE_CLONE_H
#define ESB_ENGINE_CLONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/capability.h>
#include <sys/types.h>

/* flags: CLONE_* (namespaces, CLONE_PIDFD with *pidfd); exit_signal: 0 or
 * SIGCHLD; cgroup_fd: -1, or a cgroup v2 directory the child starts in
 * (CLONE_INTO_CGROUP). *into_cgroup (when not NULL) tells the child too
 * whether it did: clone(2), the fallback, cannot. Returns the pid in the
 * parent, 0 in the child, -1 with errno. */
pid_t esb_clone(uint64_t flags, int *pidfd, int exit_signal, int cgroup_fd, bool *into_cgroup);

/* ESB_NS_* (engine/sandbox/spawn.h) as CLONE_NEW* flags, for clone3 and unshare
 * alike. */
uint64_t esb_namespace_flags(unsigned namespaces);

/* posix_spawn's clone: clone3(CLONE_VM | CLONE_VFORK | CLONE_PIDFD, into
 * cgroup_fd when not -1, no exit signal) running fn(arg) on the stack given
 * (16-byte aligned size), while the caller waits until fn's process execs
 * or exits; fn's return value is its exit status. fn shares the caller's
 * memory: it may only place fds and exec. Returns the pid, or -1 with
 * errno (ENOSYS where the kernel, valgrind or the architecture has no
 * clone3 for it: x86-64 only). */
pid_t esb_clone_vfork(int (*fn)(void *), void *arg, void *stack, size_t stack_size, int *pidfd,
                      int cgroup_fd);

/* The user namespace a clone or unshare makes is owned by the caller's
 * effective uid, and what its processes charge to a per-user kernel
 * counter (inotify, message queues, processes) is charged, one level up,
 * to that owner: a run's namespace made by root charges root's. Between
 * esb_owner_enter and esb_owner_leave the calling thread (only it: the
 * system calls, not glibc's wrappers, which change every thread's ids) has
 * uid as its effective (and filesystem) uid (the gid plays no part: each
 * cred change costs some 2.5 µs), with its effective capabilities raised
 * again from its permitted set (which stays while its real and saved uids
 * are root; no CAP_SETPCAP needed), so a clone or unshare of CLONE_NEWUSER
 * made in between makes a namespace that uid owns, with every permission
 * check of root's still passing (CLONE_INTO_CGROUP's write to the cgroup).
 * The caller's dumpable flag, which the kernel clears with the ids, is set
 * again at once (a clone copies it). Leaving restores the ids, the
 * capability sets, and what else the kernel reset with the ids: the
 * parent-death signal. Async-signal-safe. Root only; 0, or -1 with errno
 * (nothing changed). */
struct esb_owner_saved {
  uid_t euid;
  int dumpable, pdeath_signal;
  struct __user_cap_data_struct caps[2];
};
int esb_owner_enter(uid_t uid, struct esb_owner_saved *saved);
void esb_owner_leave(const struct esb_owner_saved *saved);

#endif
