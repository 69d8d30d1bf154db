#include "engine/sandbox/clone.h"

#include <errno.h>
#include <linux/sched.h>
#include <linux/capability.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/sandbox/spawn.h"

/* One table: which kernel flag makes which of our namespaces. */
static const struct { unsigned ours; uint64_t clone; } namespace_flags[] = {
  {ESB_NS_USER, CLONE_NEWUSER}, {ESB_NS_MOUNT, CLONE_NEWNS}, {ESB_NS_PID, CLONE_NEWPID},
  {ESB_NS_NET, CLONE_NEWNET},   {ESB_NS_IPC, CLONE_NEWIPC},  {ESB_NS_UTS, CLONE_NEWUTS},
};

uint64_t esb_namespace_flags(unsigned namespaces) {
  uint64_t flags = 0;
  for (size_t i = 0; i < sizeof namespace_flags / sizeof namespace_flags[0]; i++)
    if (namespaces & namespace_flags[i].ours)
      flags |= namespace_flags[i].clone;
  return flags;
}

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

#if defined(__x86_64__)
/* The child starts on the new stack at the instruction after `syscall`:
 * it must not return into C, so it calls fn (kept in registers the system
 * call preserves) and exits with what fn returns. */
static long clone3_calling(struct clone_args *args, int (*fn)(void *), void *arg) {
  register long rax __asm__("rax") = SYS_clone3;
  register struct clone_args *rdi __asm__("rdi") = args;
  register size_t rsi __asm__("rsi") = sizeof *args;
  register int (*r12)(void *) __asm__("r12") = fn;
  register void *r13 __asm__("r13") = arg;
  __asm__ volatile("syscall\n\t"
                   "test %%rax, %%rax\n\t"
                   "jnz 1f\n\t"
                   "xor %%ebp, %%ebp\n\t"
                   "mov %%r13, %%rdi\n\t"
                   "call *%%r12\n\t"
                   "mov %%eax, %%edi\n\t"
                   "mov $60, %%eax\n\t" /* SYS_exit */
                   "syscall\n\t"
                   "hlt\n"
                   "1:"
                   : "+r"(rax)
                   : "r"(rdi), "r"(rsi), "r"(r12), "r"(r13)
                   : "rcx", "r11", "memory", "cc");
  return rax;
}
#endif

pid_t esb_clone_vfork(int (*fn)(void *), void *arg, void *stack, size_t stack_size, int *pidfd,
                      int cgroup_fd) {
#if defined(__x86_64__)
  struct clone_args args;
  memset(&args, 0, sizeof args);
  args.flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD;
  if (cgroup_fd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = (uint64_t)cgroup_fd;
  }
  args.pidfd = (uint64_t)(uintptr_t)pidfd;
  args.stack = (uint64_t)(uintptr_t)stack;
  args.stack_size = stack_size;
  long rc = clone3_calling(&args, fn, arg);
  if (rc < 0) {
    errno = (int)-rc;
    return -1;
  }
  return (pid_t)rc;
#else
  (void)fn; (void)arg; (void)stack; (void)stack_size; (void)pidfd; (void)cgroup_fd;
  errno = ENOSYS;
  return -1;
#endif
}

/* The thread's capability sets, through the system calls (per thread). */
static int caps_get(struct __user_cap_data_struct data[2]) {
  struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
  return (int)syscall(SYS_capget, &header, data);
}

static int caps_set(const struct __user_cap_data_struct data[2]) {
  struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
  return (int)syscall(SYS_capset, &header, data);
}

/* The process's dumpable flag before any thread took a run's uid: the flag
 * is the whole process's, so a thread that read it while another was in
 * its window would read the 0 the kernel set there, and leave it. Kept
 * from the first call, which precedes every window. */
static int process_dumpable(void) {
  static int dumpable = -1;
  int d = __atomic_load_n(&dumpable, __ATOMIC_ACQUIRE);
  if (d < 0) {
    d = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    __atomic_store_n(&dumpable, d, __ATOMIC_RELEASE);
  }
  return d;
}

int esb_owner_enter(uid_t uid, struct esb_owner_saved *saved) {
  saved->euid = geteuid();
  saved->dumpable = process_dumpable();
  saved->pdeath_signal = 0;
  if (saved->dumpable < 0 || prctl(PR_GET_PDEATHSIG, &saved->pdeath_signal, 0, 0, 0) < 0 ||
      caps_get(saved->caps) < 0)
    return -1;
  if (syscall(SYS_setresuid, -1, uid, -1) < 0)
    return -1;
  /* The kernel cleared the effective set with the effective uid; the
   * permitted set stays while the real and saved uids are still root, and
   * raising the effective set within it needs no capability (securebits,
   * which would keep it, need CAP_SETPCAP, which a unit may not grant). */
  struct __user_cap_data_struct raised[2] = { saved->caps[0], saved->caps[1] };
  for (int i = 0; i < 2; i++)
    raised[i].effective = raised[i].permitted;
  if (caps_set(raised) < 0) {
    int saved_errno = errno;
    esb_owner_leave(saved);
    errno = saved_errno;
    return -1;
  }
  /* A clone copies the dumpable flag the change of ids cleared: without
   * it the run's first process could not be entered by the engine's
   * helpers that drop their capabilities first (pasta). */
  prctl(PR_SET_DUMPABLE, (unsigned long)saved->dumpable, 0, 0, 0);
  return 0;
}

void esb_owner_leave(const struct esb_owner_saved *saved) {
  syscall(SYS_setresuid, -1, saved->euid, -1);
  caps_set(saved->caps); /* back to root, the effective set is the permitted: make it what it was */
  prctl(PR_SET_DUMPABLE, (unsigned long)saved->dumpable, 0, 0, 0);
  prctl(PR_SET_PDEATHSIG, (unsigned long)saved->pdeath_signal, 0, 0, 0);
}
