/* esb-seccomp-gen: compiles the sandbox's system-call filters with
 * libseccomp at build time and prints them as C (seccomp_filters.c), so
 * that a run pays nothing to build its filter (compiling it cost each CLI
 * run about 0.45 ms) and the engine does not link libseccomp. The filter is
 * for the architecture the build runs on, which is the one it targets.
 *
 *   esb-seccomp-gen OUTPUT.c
 */
#include <errno.h>
#include <linux/filter.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <seccomp.h>

#include "engine/result.h"
#include "engine/seccomp.h"

/* Denied outright in every profile but none: they fail with EPERM. */
static const char *const denied[] = {
  /* new namespaces and joining others' (clone's flags: below) */
  "unshare", "setns",
  /* the mount API, old and new */
  "mount", "umount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen",
  "fsconfig", "fsmount", "fspick", "mount_setattr",
  /* keyrings: not namespaced */
  "add_key", "keyctl", "request_key",
  /* the kernel's largest attack surfaces that programs do without */
  "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
  "io_uring_register", "fanotify_init", "open_by_handle_at", "name_to_handle_at",
  "lookup_dcookie", "uselib", "vm86", "vm86old", "iopl", "ioperm", "modify_ldt",
  /* the machine's, not the program's */
  "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
  "reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog",
  "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "stime",
  "nfsservctl", "vhangup", "_sysctl",
};

/* Also denied by strict. */
static const char *const denied_strict[] = {
  "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "personality",
};

/* clone with any of these fails with EPERM. */
static const uint64_t namespace_flags[] = {
  CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS,
  CLONE_NEWCGROUP, 0x00000080 /* CLONE_NEWTIME */,
};

/* ioctl requests that reach beyond the program: typing into a terminal, the
 * console's own commands. */
static const uint64_t denied_ioctls[] = { TIOCSTI, TIOCLINUX };

static int add(scmp_filter_ctx ctx, int err, const char *name, unsigned n, const struct scmp_arg_cmp *cmp) {
  int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR)
    return 0; /* not a call of this architecture (vm86 on x86-64) */
  int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO((uint32_t)err), nr, n, cmp);
  return rc == -EACCES ? 0 : rc; /* a pseudo-syscall libseccomp cannot filter here */
}

static int add_rules(scmp_filter_ctx ctx, enum esb_seccomp_profile profile) {
  int rc = 0;
  for (size_t i = 0; !rc && i < sizeof denied / sizeof denied[0]; i++)
    rc = add(ctx, EPERM, denied[i], 0, NULL);
  for (size_t i = 0; !rc && i < sizeof namespace_flags / sizeof namespace_flags[0]; i++) {
    struct scmp_arg_cmp has_flag = SCMP_A0(SCMP_CMP_MASKED_EQ, namespace_flags[i], namespace_flags[i]);
    rc = add(ctx, EPERM, "clone", 1, &has_flag);
  }
  /* clone3 passes its flags in memory the filter cannot read */
  if (!rc) rc = add(ctx, ENOSYS, "clone3", 0, NULL);
  for (size_t i = 0; !rc && i < sizeof denied_ioctls / sizeof denied_ioctls[0]; i++) {
    /* the request is an int: compare its low 32 bits, whatever the high ones */
    struct scmp_arg_cmp is = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, denied_ioctls[i]);
    rc = add(ctx, EPERM, "ioctl", 1, &is);
  }
  if (profile != ESB_SECCOMP_STRICT)
    return rc;
  for (size_t i = 0; !rc && i < sizeof denied_strict / sizeof denied_strict[0]; i++)
    rc = add(ctx, EPERM, denied_strict[i], 0, NULL);
  /* sockets: unix, IPv4 and IPv6 only (netlink, packet, vsock, alg ... not) */
  for (uint64_t family = AF_UNIX + 1; !rc && family < AF_INET6; family++) {
    if (family == AF_INET)
      continue;
    struct scmp_arg_cmp is = SCMP_A0(SCMP_CMP_EQ, family);
    rc = add(ctx, EAFNOSUPPORT, "socket", 1, &is);
  }
  struct scmp_arg_cmp above = SCMP_A0(SCMP_CMP_GT, AF_INET6);
  if (!rc) rc = add(ctx, EAFNOSUPPORT, "socket", 1, &above);
  return rc;
}

/* Builds the filter and copies its BPF out (through a memfd: libseccomp
 * 2.5 exports to an fd only). */
static int build(enum esb_seccomp_profile profile, struct sock_fprog *prog, char *why, size_t whylen) {
  /* The filter is only compiled here, never loaded by libseccomp: name the
   * API level it may use (3: SCMP_ACT_KILL_PROCESS, kernel 4.14) instead of
   * letting it probe the build machine's kernel. */
  seccomp_api_set(3);
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) {
    snprintf(why, whylen, "cannot make a filter");
    return -1;
  }
  int fd = -1, rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  if (!rc) rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0); /* the child sets it itself */
  /* A binary tree of the system call numbers rather than a chain: when the
   * filter is installed the kernel runs it for every number of every
   * architecture to cache which are always allowed (with interrupts off, in
   * each run), and a chain of some 90 compares made that 80 µs a run. */
  if (!rc) rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
  if (!rc) rc = add_rules(ctx, profile);
  if (rc) {
    snprintf(why, whylen, "building the filter of profile %d: %s", (int)profile, strerror(-rc));
    goto out;
  }
  if ((fd = memfd_create("esb-seccomp", MFD_CLOEXEC)) < 0 || (rc = seccomp_export_bpf(ctx, fd)) < 0) {
    snprintf(why, whylen, "exporting the filter: %s", strerror(rc < 0 ? -rc : errno));
    rc = -1;
    goto out;
  }
  off_t size = lseek(fd, 0, SEEK_END);
  struct sock_filter *code = size > 0 ? malloc((size_t)size) : NULL;
  if (!code || pread(fd, code, (size_t)size, 0) != size) {
    snprintf(why, whylen, "reading the filter back: %s", strerror(code ? errno : ENOMEM));
    free(code);
    rc = -1;
    goto out;
  }
  prog->filter = code;
  prog->len = (unsigned short)((size_t)size / sizeof *code);
out:
  if (fd >= 0)
    close(fd);
  seccomp_release(ctx);
  return rc ? -1 : 0;
}

int main(int argc, char **argv) {
  if (argc != 2 || !freopen(argv[1], "w", stdout)) {
    fprintf(stderr, "usage: esb-seccomp-gen OUTPUT.c\n");
    return 2;
  }
  printf("/* Generated by esb-seccomp-gen (src/engine/seccomp_gen.c): do not edit. */\n"
         "#include <linux/filter.h>\n\n#include \"engine/seccomp.h\"\n\n");
  for (int p = 0; p < ESB_SECCOMP__COUNT; p++) {
    struct sock_fprog prog = { 0 };
    char why[ESB_MESSAGE_MAX];
    if (p != ESB_SECCOMP_NONE && build((enum esb_seccomp_profile)p, &prog, why, sizeof why) < 0) {
      fprintf(stderr, "esb-seccomp-gen: %s\n", why);
      return 1;
    }
    printf("static const struct sock_filter filter_%d[] = {\n", p);
    for (unsigned short i = 0; i < prog.len; i++)
      printf("  { 0x%04x, %u, %u, 0x%08x },\n", prog.filter[i].code, prog.filter[i].jt, prog.filter[i].jf,
             prog.filter[i].k);
    if (!prog.len)
      printf("  { 0, 0, 0, 0 },\n");
    printf("};\n");
    free(prog.filter);
  }
  printf("\nconst struct sock_filter *const esb_seccomp_filters[ESB_SECCOMP__COUNT] = {");
  for (int p = 0; p < ESB_SECCOMP__COUNT; p++)
    printf(" filter_%d,", p);
  printf(" };\nconst unsigned short esb_seccomp_lengths[ESB_SECCOMP__COUNT] = {");
  for (int p = 0; p < ESB_SECCOMP__COUNT; p++)
    printf(" sizeof filter_%d / sizeof filter_%d[0] * %d,", p, p, p != ESB_SECCOMP_NONE);
  printf(" };\n");
  return fclose(stdout) == 0 ? 0 : 1;
}
