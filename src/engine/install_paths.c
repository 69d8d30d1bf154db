#include "engine/install_paths.h"

#include <assert.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Each binary's way to the prefix, and the parts' ways from it (CMake
 * works them out from the install layout: CMakeLists.txt). */
static const struct {
  const char *name, *to_prefix;
} binaries[] = {
  { "echo-sandbox", ESB_BIN_TO_PREFIX },
  { "echo-sandbox-serve", ESB_LIBEXEC_TO_PREFIX },
  { "echo_sandbox.so", ESB_MODULE_TO_PREFIX },
};

static const char *const from_prefix[ESB_DIR__COUNT] = {
  [ESB_DIR_LIBEXEC] = ESB_REL_LIBEXEC,
  [ESB_DIR_POLICIES] = ESB_REL_DATA "/policies",
  [ESB_DIR_LUA] = ESB_REL_LUA,
  [ESB_DIR_BIN] = ESB_REL_BIN,
};

static const char *const in_build_tree[ESB_DIR__COUNT] = {
  [ESB_DIR_LIBEXEC] = ESB_BUILD_DIR,
  [ESB_DIR_POLICIES] = ESB_SOURCE_DIR "/policies",
  [ESB_DIR_LUA] = ESB_SOURCE_DIR "/lua",
  [ESB_DIR_BIN] = ESB_BUILD_DIR,
};

static char dirs[ESB_DIR__COUNT][PATH_MAX];
static bool known;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* This code's own file: the Lua module's, when it is in one; else the
 * program's. */
static bool self_path(char out[PATH_MAX]) {
  Dl_info info;
  if (dladdr((void *)esb_install_dir, &info) && info.dli_fname && strstr(info.dli_fname, ".so"))
    return realpath(info.dli_fname, out) != NULL;
  return realpath("/proc/self/exe", out) != NULL;
}

static void work_out(void) {
  char self[PATH_MAX];
  if (!self_path(self))
    return;
  char *slash = strrchr(self, '/');
  *slash = '\0';
  const char *dir = self, *name = slash + 1;
  if (strcmp(dir, ESB_BUILD_DIR) == 0) {
    for (int i = 0; i < ESB_DIR__COUNT; i++)
      snprintf(dirs[i], sizeof dirs[i], "%s", in_build_tree[i]);
    known = true;
    return;
  }
  const char *to_prefix = ESB_BIN_TO_PREFIX;
  for (size_t i = 0; i < sizeof binaries / sizeof binaries[0]; i++)
    if (strcmp(name, binaries[i].name) == 0)
      to_prefix = binaries[i].to_prefix;
  char up[PATH_MAX], prefix[PATH_MAX];
  int n = snprintf(up, sizeof up, "%s/%s", dir, to_prefix);
  if (n < 0 || (size_t)n >= sizeof up || !realpath(up, prefix))
    return;
  for (int i = 0; i < ESB_DIR__COUNT; i++) {
    n = snprintf(dirs[i], sizeof dirs[i], "%s/%s", strcmp(prefix, "/") ? prefix : "", from_prefix[i]);
    if (n < 0 || (size_t)n >= sizeof dirs[i])
      return;
  }
  known = true;
}

const char *esb_install_dir(enum esb_install_dir which) {
  pthread_once(&once, work_out);
  return known && (unsigned)which < ESB_DIR__COUNT ? dirs[which] : NULL;
}

static const struct {
  const char *name, *variable;
} programs[ESB_PROGRAM__COUNT] = {
  [ESB_PROGRAM_INIT] = { "echo-sandbox-init", "ECHO_SANDBOX_INIT" },
  [ESB_PROGRAM_EGRESS] = { "echo-sandbox-egress", "ECHO_SANDBOX_EGRESS" },
  [ESB_PROGRAM_KUBE] = { "echo-sandbox-kube", "ECHO_SANDBOX_KUBE" },
};

static char program_paths[ESB_PROGRAM__COUNT][PATH_MAX];
static bool program_found[ESB_PROGRAM__COUNT];
static pthread_once_t programs_once = PTHREAD_ONCE_INIT;

static void find_programs(void) {
  const char *libexec = esb_install_dir(ESB_DIR_LIBEXEC);
  for (int i = 0; i < ESB_PROGRAM__COUNT; i++) {
    const char *named = getenv(programs[i].variable);
    int n = named && *named ? snprintf(program_paths[i], PATH_MAX, "%s", named)
          : libexec         ? snprintf(program_paths[i], PATH_MAX, "%s/%s", libexec, programs[i].name)
                            : -1;
    program_found[i] = n > 0 && n < PATH_MAX && access(program_paths[i], X_OK) == 0;
  }
}

const char *esb_install_program(enum esb_install_program which) {
  assert((unsigned)which < ESB_PROGRAM__COUNT);
  pthread_once(&programs_once, find_programs);
  return program_found[which] ? program_paths[which] : NULL;
}
