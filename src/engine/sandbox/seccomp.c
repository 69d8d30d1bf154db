#include "engine/sandbox/seccomp.h"

#include <linux/filter.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* The filters, compiled from the deny list at build time by
 * esb-seccomp-gen (seccomp_gen.c): esb_seccomp_filters[profile] and
 * esb_seccomp_lengths[profile], empty for "none". */
extern const struct sock_filter *const esb_seccomp_filters[ESB_SECCOMP__COUNT];
extern const unsigned short esb_seccomp_lengths[ESB_SECCOMP__COUNT];

static const char *const profile_names[ESB_SECCOMP__COUNT] = {
  [ESB_SECCOMP_DEFAULT] = "default", [ESB_SECCOMP_STRICT] = "strict", [ESB_SECCOMP_NONE] = "none",
};

const char *esb_seccomp_profile_name(enum esb_seccomp_profile profile) {
  return (unsigned)profile < ESB_SECCOMP__COUNT ? profile_names[profile] : NULL;
}

int esb_seccomp_profile_parse(const char *name, enum esb_seccomp_profile *profile) {
  for (int i = 0; i < ESB_SECCOMP__COUNT; i++) {
    if (!strcmp(name, profile_names[i])) {
      *profile = (enum esb_seccomp_profile)i;
      return 0;
    }
  }
  return -1;
}

/* The programs, filled once: a daemon's threads ask for them at once (its
 * loop's one-shot runs, its session runs' threads). */
static struct sock_fprog programs[ESB_SECCOMP__COUNT];
static pthread_once_t programs_once = PTHREAD_ONCE_INIT;

static void fill_programs(void) {
  for (int i = 0; i < ESB_SECCOMP__COUNT; i++) {
    programs[i].len = esb_seccomp_lengths[i];
    programs[i].filter = (struct sock_filter *)esb_seccomp_filters[i];
  }
}

int esb_seccomp_program(enum esb_seccomp_profile profile, const struct sock_fprog **prog,
                        struct esb_error *err) {
  *prog = NULL;
  if ((unsigned)profile >= ESB_SECCOMP__COUNT) {
    esb_error_set(err, ESB_E_SANDBOX_SETUP, "seccomp: no profile %d", (int)profile);
    return -1;
  }
  if (!esb_seccomp_lengths[profile])
    return 0;
  pthread_once(&programs_once, fill_programs);
  *prog = &programs[profile];
  return 0;
}
