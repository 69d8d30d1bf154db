/* A small TAP producer for the C unit tests (CTest label "unit"), in the
 * spirit of bubblewrap's tests/test-utils.c: each check prints "ok N - what"
 * or "not ok N - what" with where it failed, and tap_done() prints the plan
 * and turns any failure into the exit status CTest reads. */
#ifndef ESB_TESTS_TAP_H
#define ESB_TESTS_TAP_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int tap_count, tap_failed;

static inline bool tap_check(bool ok, const char *what, const char *file, int line) {
  tap_count++;
  printf("%sok %d - %s\n", ok ? "" : "not ", tap_count, what);
  if (!ok) {
    tap_failed++;
    printf("#   failed at %s:%d\n", file, line);
  }
  return ok;
}

#define ok(cond, what) tap_check((cond), (what), __FILE__, __LINE__)

#define is_int(got, want, what) do { \
    long long g_ = (long long)(got), w_ = (long long)(want); \
    if (!ok(g_ == w_, what)) printf("#   got %lld, want %lld\n", g_, w_); \
  } while (0)

#define is_str(got, want, what) do { \
    const char *g_ = (got), *w_ = (want); \
    bool same_ = (g_ == NULL && w_ == NULL) || (g_ && w_ && strcmp(g_, w_) == 0); \
    if (!ok(same_, what)) printf("#   got \"%s\", want \"%s\"\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
  } while (0)

static inline int tap_done(void) {
  printf("1..%d\n", tap_count);
  if (tap_failed)
    printf("# %d of %d failed\n", tap_failed, tap_count);
  return tap_failed ? 1 : 0;
}

#endif
