/* The sandbox's system-call filter, built with libseccomp.
 *
 * A profile is a list of rules kept as data (esb_seccomp_rules,
 * seccomp_rules.c), modelled on the Docker and containerd default profile
 * and nsjail's: what a program in a sandbox has no business calling and
 * what is the kernel's largest attack surface (namespaces, the mount API,
 * keyrings, bpf, perf, userfaultfd, io_uring, module and kexec loading,
 * clocks, TIOCSTI, socket families other than unix, IP and netlink, ...).
 * Denied calls fail with EPERM (clone3 with ENOSYS, so that libc falls back
 * to clone, whose flags the filter can see; a socket family or netlink
 * protocol with the error of one the kernel lacks, so that programs take
 * their fallback); calls of another ABI (i386, x32) kill the process. The
 * same rows are what `policy explain` prints.
 *
 * libseccomp compiles the filters to BPF at build time (seccomp_gen.c), so
 * a run pays nothing for it; the engine hands the child a filter that it
 * installs as its last step before exec (PR_SET_SECCOMP needs no privilege
 * after no_new_privs, and is async-signal-safe, unlike libseccomp's own
 * loader). */
#ifndef ESB_ENGINE_SECCOMP_H
#define ESB_ENGINE_SECCOMP_H

#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

struct sock_fprog;

enum esb_seccomp_profile {
  ESB_SECCOMP_DEFAULT, /* the deny list */
  ESB_SECCOMP_STRICT,  /* also ptrace, process_vm_*, personality, and sockets other than unix, IPv4, IPv6 */
  ESB_SECCOMP_NONE,    /* no filter */
  ESB_SECCOMP__COUNT
};

/* What a rule looks at in a call of one of its system calls. */
enum esb_seccomp_test {
  ESB_SECCOMP_ALWAYS,      /* nothing: every call is refused */
  ESB_SECCOMP_ANY_BIT,     /* refused when the argument has any of the values' bits */
  ESB_SECCOMP_ONE_OF,      /* refused when the argument's low 32 bits are one of the values */
  ESB_SECCOMP_NONE_OF,     /* refused unless the argument is one of the values (an allow-list) */
  ESB_SECCOMP_OTHER_ABI,   /* no call: a call of another ABI (i386, x32) kills the process */
};

/* A value an argument is compared with, and its name for people. */
struct esb_seccomp_value {
  uint64_t value;
  const char *name;
};

/* One row of the filter: the generator compiles it, `policy explain`
 * prints it. A value list ends with a NULL name. */
struct esb_seccomp_rule {
  unsigned profiles;                     /* 1u << profile for each profile it is in */
  const char *const *calls;              /* system call names, NULL-terminated */
  enum esb_seccomp_test test;
  unsigned arg;                          /* the argument tested (0-based) */
  const char *arg_name;                  /* "family", for people */
  const struct esb_seccomp_value *values;
  const struct esb_seccomp_value *when;  /* NULL, or: only when argument 0 is this */
  int err;                               /* what a refused call fails with */
  const char *err_name;                  /* "EPERM" */
  const char *why;
};

/* The rows, ending with one of no profile (profiles 0). */
extern const struct esb_seccomp_rule esb_seccomp_rules[];

/* The row in words: "clone with flags having any of CLONE_NEWNS, ...:
 * EPERM (new namespaces)". Returns what snprintf would. */
int esb_seccomp_rule_text(const struct esb_seccomp_rule *rule, char *buf, size_t len);

/* The profile's name ("default", "strict", "none"); NULL for no profile. */
const char *esb_seccomp_profile_name(enum esb_seccomp_profile profile);

/* Parses a name; returns 0, or -1 when it names no profile. */
int esb_seccomp_profile_parse(const char *name, enum esb_seccomp_profile *profile);

/* The BPF program of a profile: *prog is NULL for ESB_SECCOMP_NONE, else it
 * points to storage that lives as long as the process. Returns 0, or -1
 * with *err (a profile that does not exist). */
int esb_seccomp_program(enum esb_seccomp_profile profile, const struct sock_fprog **prog,
                        struct esb_error *err);

#endif
