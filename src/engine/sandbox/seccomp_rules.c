/* The rows of the sandbox's system-call filter (engine/sandbox/seccomp.h): data
 * only, read by esb-seccomp-gen to compile the filters and by `policy
 * explain` to say what they refuse, so that the two cannot disagree. */
#include "engine/sandbox/seccomp.h"

#include <errno.h>
#include <linux/netlink.h>
#include <sched.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/socket.h>

#define CALLS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define VALUES(...) ((const struct esb_seccomp_value[]){ __VA_ARGS__, { 0, NULL } })
#define V(name) { (uint64_t)(name), #name }
#define REFUSE(e) .err = e, .err_name = #e
#define BOTH (1u << ESB_SECCOMP_DEFAULT | 1u << ESB_SECCOMP_STRICT)
#define DEFAULT (1u << ESB_SECCOMP_DEFAULT)
#define STRICT (1u << ESB_SECCOMP_STRICT)

const struct esb_seccomp_rule esb_seccomp_rules[] = {
  { BOTH, CALLS("unshare", "setns"), ESB_SECCOMP_ALWAYS, REFUSE(EPERM),
    .why = "new namespaces and joining others'" },
  { BOTH, CALLS("clone"), ESB_SECCOMP_ANY_BIT, 0, "flags",
    VALUES(V(CLONE_NEWNS), V(CLONE_NEWUSER), V(CLONE_NEWPID), V(CLONE_NEWNET), V(CLONE_NEWIPC),
           V(CLONE_NEWUTS), V(CLONE_NEWCGROUP), V(CLONE_NEWTIME)),
    REFUSE(EPERM), .why = "new namespaces" },
  { BOTH, CALLS("clone3"), ESB_SECCOMP_ALWAYS, REFUSE(ENOSYS),
    .why = "its flags are in memory the filter cannot read: libc falls back to clone" },
  { BOTH,
    CALLS("mount", "umount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen",
          "fsconfig", "fsmount", "fspick", "mount_setattr"),
    ESB_SECCOMP_ALWAYS, REFUSE(EPERM), .why = "the mount API, old and new" },
  { BOTH, CALLS("add_key", "keyctl", "request_key"), ESB_SECCOMP_ALWAYS, REFUSE(EPERM),
    .why = "keyrings: not namespaced" },
  { BOTH,
    CALLS("bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
          "fanotify_init", "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "uselib", "vm86",
          "vm86old", "iopl", "ioperm", "modify_ldt"),
    ESB_SECCOMP_ALWAYS, REFUSE(EPERM), .why = "the kernel's largest attack surfaces, which programs do without" },
  /* Pages taken out of the kernel's direct map (splitting its huge pages,
   * for every process of the host) and never swapped. */
  { BOTH, CALLS("memfd_secret"), ESB_SECCOMP_ALWAYS, REFUSE(EPERM),
    .why = "secret memory, unmapped from the kernel, unswappable" },
  /* Where the host's memory comes from is the host's to decide.
   * get_mempolicy stays: it reads the caller's own policy, and libnuma's
   * numa_available() asks it. */
  { BOTH, CALLS("mbind", "set_mempolicy", "set_mempolicy_home_node", "migrate_pages", "move_pages"),
    ESB_SECCOMP_ALWAYS, REFUSE(EPERM), .why = "NUMA memory placement on the host's nodes" },
  { BOTH,
    CALLS("kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
          "swapoff", "acct", "quotactl", "quotactl_fd", "syslog", "settimeofday", "clock_settime",
          "clock_adjtime", "adjtimex", "stime", "nfsservctl", "vhangup", "_sysctl"),
    ESB_SECCOMP_ALWAYS, REFUSE(EPERM), .why = "the machine's, not the program's" },
  /* The request is an int: its low 32 bits are compared, whatever the high ones. */
  { BOTH, CALLS("ioctl"), ESB_SECCOMP_ONE_OF, 1, "request", VALUES(V(TIOCSTI), V(TIOCLINUX)), REFUSE(EPERM),
    .why = "typing into a terminal, the console's own commands" },
  /* ADDR_NO_RANDOMIZE turns ASLR off for what the program execs next,
   * READ_IMPLIES_EXEC makes its data executable. */
  { DEFAULT, CALLS("personality"), ESB_SECCOMP_NONE_OF, 0, "persona",
    VALUES(V(PER_LINUX), { 0xffffffff, "0xffffffff (the query)" }), REFUSE(EPERM),
    .why = "ASLR off, executable data and other personas" },
  /* vsock knows no network namespace: it reaches the host's and the
   * hypervisor's ports; packet, alg, tipc, rds, ... are surface that no
   * program here needs. The kernel's answer for a family it lacks, so that
   * programs take their fallback. */
  { DEFAULT, CALLS("socket", "socketpair"), ESB_SECCOMP_NONE_OF, 0, "family",
    VALUES(V(AF_UNIX), V(AF_INET), V(AF_INET6), V(AF_NETLINK)), REFUSE(EAFNOSUPPORT),
    .why = "vsock, packet, alg and every other family" },
  /* route: getaddrinfo, getifaddrs, ip; sock_diag: ss. Audit and the
   * others (netfilter, xfrm, generic, uevents) are the host's business.
   * socketpair too: it makes the sockets (and may load the protocol's
   * module) before netlink says it has no pairs. */
  { DEFAULT, CALLS("socket", "socketpair"), ESB_SECCOMP_NONE_OF, 2, "protocol",
    VALUES(V(NETLINK_ROUTE), V(NETLINK_SOCK_DIAG)), VALUES(V(AF_NETLINK)), REFUSE(EPROTONOSUPPORT),
    .why = "audit and every other netlink protocol" },
  { STRICT, CALLS("ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "personality"), ESB_SECCOMP_ALWAYS,
    REFUSE(EPERM), .why = "other processes' memory, personas" },
  { STRICT, CALLS("socket", "socketpair"), ESB_SECCOMP_NONE_OF, 0, "family",
    VALUES(V(AF_UNIX), V(AF_INET), V(AF_INET6)), REFUSE(EAFNOSUPPORT), .why = "every other family, netlink too" },
  { BOTH, NULL, ESB_SECCOMP_OTHER_ABI, .why = "i386 int 0x80, x32" },
  { 0 },
};

int esb_seccomp_rule_text(const struct esb_seccomp_rule *rule, char *buf, size_t len) {
  static const char *const tests[] = {
    [ESB_SECCOMP_ANY_BIT] = "having any of", [ESB_SECCOMP_ONE_OF] = "one of", [ESB_SECCOMP_NONE_OF] = "other than",
  };
  if (rule->test == ESB_SECCOMP_OTHER_ABI)
    return snprintf(buf, len, "a call of another ABI kills the process (SIGSYS): %s", rule->why);
  size_t n = 0;
#define PUT(...) (n += (size_t)snprintf(buf + (n < len ? n : len), n < len ? len - n : 0, __VA_ARGS__))
  for (const char *const *call = rule->calls; *call; call++)
    PUT("%s%s", call == rule->calls ? "" : ", ", *call);
  if (rule->when)
    PUT(" of %s", rule->when->name);
  if (rule->test != ESB_SECCOMP_ALWAYS) {
    PUT(" with %s %s ", rule->arg_name, tests[rule->test]);
    for (const struct esb_seccomp_value *v = rule->values; v->name; v++)
      PUT("%s%s", v == rule->values ? "" : ", ", v->name);
  }
  PUT(": %s (%s)", rule->err_name, rule->why);
#undef PUT
  return (int)n;
}
