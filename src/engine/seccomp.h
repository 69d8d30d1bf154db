/* The sandbox's system-call filter, built with libseccomp.
 *
 * A profile is a deny list kept as data (seccomp.c), modelled on the Docker
 * and containerd default profile and nsjail's: what a program in a sandbox
 * has no business calling and what is the kernel's largest attack surface
 * (namespaces, the mount API, keyrings, bpf, perf, userfaultfd, io_uring,
 * module and kexec loading, clocks, TIOCSTI). Denied calls fail with EPERM
 * (clone3 with ENOSYS, so that libc falls back to clone, whose flags the
 * filter can see); calls of another ABI (i386, x32) kill the process.
 *
 * libseccomp compiles the filters to BPF at build time (seccomp_gen.c), so
 * a run pays nothing for it; the engine hands the child a filter that it
 * installs as its last step before exec (PR_SET_SECCOMP needs no privilege
 * after no_new_privs, and is async-signal-safe, unlike libseccomp's own
 * loader). */
#ifndef ESB_ENGINE_SECCOMP_H
#define ESB_ENGINE_SECCOMP_H

#include <stddef.h>

struct sock_fprog;

enum esb_seccomp_profile {
  ESB_SECCOMP_DEFAULT, /* the deny list */
  ESB_SECCOMP_STRICT,  /* also ptrace, process_vm_*, and sockets other than unix, IPv4, IPv6 */
  ESB_SECCOMP_NONE,    /* no filter */
  ESB_SECCOMP__COUNT
};

/* The profile's name ("default", "strict", "none"); NULL for no profile. */
const char *esb_seccomp_profile_name(enum esb_seccomp_profile profile);

/* Parses a name; returns 0, or -1 when it names no profile. */
int esb_seccomp_profile_parse(const char *name, enum esb_seccomp_profile *profile);

/* The BPF program of a profile: *prog is NULL for ESB_SECCOMP_NONE, else it
 * points to storage that lives as long as the process. Returns 0, or -1
 * with a reason (a profile that does not exist). */
int esb_seccomp_program(enum esb_seccomp_profile profile, const struct sock_fprog **prog,
                        char *why, size_t whylen);

#endif
