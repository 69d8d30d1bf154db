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
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <seccomp.h>

#include "engine/contract/result.h"
#include "engine/sandbox/seccomp.h"

static int add(scmp_filter_ctx ctx, int err, const char *name, unsigned n, const struct scmp_arg_cmp *cmp) {
  int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) {
    /* A name of no architecture: a typo, or a call newer than this
     * libseccomp, whose rule would be left out without a word. */
    const struct scmp_version *v = seccomp_version();
    fprintf(stderr, "esb-seccomp-gen: libseccomp %u.%u.%u knows no system call %s\n", v->major, v->minor,
            v->micro, name);
    return -ENOENT;
  }
  int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO((uint32_t)err), nr, n, cmp);
  return rc == -EACCES ? 0 : rc; /* not a call of this architecture (vm86 on x86-64) */
}

/* Adds the rule's calls, refused when the comparison holds (and its when). */
static int add_calls(scmp_filter_ctx ctx, const struct esb_seccomp_rule *r, struct scmp_arg_cmp cmp) {
  struct scmp_arg_cmp cmps[2] = { cmp };
  unsigned n = r->test != ESB_SECCOMP_ALWAYS;
  if (r->when)
    cmps[n++] = SCMP_A0(SCMP_CMP_EQ, r->when->value);
  int rc = 0;
  for (const char *const *call = r->calls; !rc && *call; call++)
    rc = add(ctx, r->err, *call, n, cmps);
  return rc;
}

static struct scmp_arg_cmp arg_cmp(unsigned arg, enum scmp_compare op, uint64_t a, uint64_t b) {
  return (struct scmp_arg_cmp){ .arg = arg, .op = op, .datum_a = a, .datum_b = b };
}

/* An allow-list: refuses every number but the values, the whole 64 bits
 * compared (a number with high bits set is refused even where the kernel
 * reads only the low 32, which is safe). The numbers below the largest
 * value are listed one by one; a gap too wide to list is one case only,
 * personality's 0 and 0xffffffff: a 32-bit word that is neither has, going
 * round it, a 1 bit followed by a 0 bit, so 32 masked compares. */
static int add_none_of(scmp_filter_ctx ctx, const struct esb_seccomp_rule *r) {
  uint64_t max = 0;
  size_t count = 0;
  for (const struct esb_seccomp_value *v = r->values; v->name; v++, count++)
    max = v->value > max ? v->value : max;
  int rc = add_calls(ctx, r, arg_cmp(r->arg, SCMP_CMP_GT, max, 0));
  if (count == 2 && max == 0xffffffff && (!r->values[0].value || !r->values[1].value)) {
    for (unsigned bit = 0; !rc && bit < 32; bit++) {
      uint64_t one = 1ull << bit, zero = 1ull << (bit + 1) % 32;
      rc = add_calls(ctx, r, arg_cmp(r->arg, SCMP_CMP_MASKED_EQ, one | zero, one));
    }
    return rc;
  }
  if (max > 255)
    return -E2BIG;
  for (uint64_t x = 0; !rc && x < max; x++) {
    bool listed = false;
    for (const struct esb_seccomp_value *v = r->values; v->name; v++)
      listed |= v->value == x;
    if (!listed)
      rc = add_calls(ctx, r, arg_cmp(r->arg, SCMP_CMP_EQ, x, 0));
  }
  return rc;
}

static int add_rule(scmp_filter_ctx ctx, const struct esb_seccomp_rule *r) {
  int rc = 0;
  switch (r->test) {
  case ESB_SECCOMP_ALWAYS:
    return add_calls(ctx, r, (struct scmp_arg_cmp){ 0 });
  case ESB_SECCOMP_ANY_BIT:
    for (const struct esb_seccomp_value *v = r->values; !rc && v->name; v++)
      rc = add_calls(ctx, r, arg_cmp(r->arg, SCMP_CMP_MASKED_EQ, v->value, v->value));
    return rc;
  case ESB_SECCOMP_ONE_OF:
    /* an int argument: its low 32 bits, whatever the high ones */
    for (const struct esb_seccomp_value *v = r->values; !rc && v->name; v++)
      rc = add_calls(ctx, r, arg_cmp(r->arg, SCMP_CMP_MASKED_EQ, 0xffffffffu, v->value));
    return rc;
  case ESB_SECCOMP_NONE_OF:
    return add_none_of(ctx, r);
  case ESB_SECCOMP_OTHER_ABI:
    return seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  }
  return -EINVAL;
}

static int add_rules(scmp_filter_ctx ctx, enum esb_seccomp_profile profile) {
  int rc = 0;
  for (const struct esb_seccomp_rule *r = esb_seccomp_rules; !rc && r->profiles; r++)
    if (r->profiles & 1u << profile)
      rc = add_rule(ctx, r);
  return rc;
}

/* Builds the filter and copies its BPF out (through a memfd: libseccomp
 * 2.5 exports to an fd only). */
static int build(enum esb_seccomp_profile profile, struct sock_fprog *prog, struct esb_error *err) {
  /* The filter is only compiled here, never loaded by libseccomp: name the
   * API level it may use (3: SCMP_ACT_KILL_PROCESS, kernel 4.14) instead of
   * letting it probe the build machine's kernel. */
  seccomp_api_set(3);
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) {
    esb_error_set(err, ESB_E_SANDBOX_SETUP, "cannot make a filter");
    return -1;
  }
  int fd = -1, rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0); /* the child sets it itself */
  /* A binary tree of the system call numbers rather than a chain: when the
   * filter is installed the kernel runs it for every number of every
   * architecture to cache which are always allowed (with interrupts off, in
   * each run), and a chain of some 90 compares made that 80 µs a run. */
  if (!rc) rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
  if (!rc) rc = add_rules(ctx, profile);
  if (rc) {
    esb_error_set(err, ESB_E_SANDBOX_SETUP, "building the filter of profile %d: %s", (int)profile, strerror(-rc));
    goto out;
  }
  if ((fd = memfd_create("esb-seccomp", MFD_CLOEXEC)) < 0 || (rc = seccomp_export_bpf(ctx, fd)) < 0) {
    esb_error_set(err, ESB_E_SANDBOX_SETUP, "exporting the filter: %s", strerror(rc < 0 ? -rc : errno));
    rc = -1;
    goto out;
  }
  off_t size = lseek(fd, 0, SEEK_END);
  struct sock_filter *code = size > 0 ? malloc((size_t)size) : NULL;
  if (!code || pread(fd, code, (size_t)size, 0) != size) {
    esb_error_set(err, ESB_E_SANDBOX_SETUP, "reading the filter back: %s", strerror(code ? errno : ENOMEM));
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
  printf("/* Generated by esb-seccomp-gen (src/engine/sandbox/seccomp_gen.c): do not edit. */\n"
         "#include <linux/filter.h>\n\n#include \"engine/sandbox/seccomp.h\"\n\n");
  for (int p = 0; p < ESB_SECCOMP__COUNT; p++) {
    struct sock_fprog prog = { 0 };
    struct esb_error err = ESB_ERROR_INIT;
    if (p != ESB_SECCOMP_NONE && build((enum esb_seccomp_profile)p, &prog, &err) < 0) {
      fprintf(stderr, "esb-seccomp-gen: %s\n", err.message);
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
