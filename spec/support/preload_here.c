/* Preloaded, after the sanitizers' runtimes, into busted's lua5.4 on a
 * sanitized build (spec/run, spec/support/sanitized_lua): that process
 * loads the instrumented module, so the runtimes must come first in it,
 * and nowhere else. Every program the
 * specs start (shells, python3's fake API server, curl, mktemp) inherited
 * them: an ASan runtime costs each process some 17 ms of CPU to start, and
 * its allocator slows a long-lived python3 far more. So the variable goes
 * before main: this process keeps what was preloaded, the programs it
 * starts get none of it. A lua5.4 that a spec starts to load the module
 * preloads $ESB_SANITIZER_PRELOAD itself (env.module_lua). */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>

__attribute__((constructor)) static void preload_here_only(void) {
  unsetenv("LD_PRELOAD");
}
