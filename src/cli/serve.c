/* echo-sandbox serve: execs the daemon program, echo-sandbox-serve (see
 * src/daemon/main.c for why it is a program of its own). It is looked up
 * next to this executable first (a build tree, or both installed in one
 * directory), then in the libexec directory the build was configured for. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static const char daemon_name[] = "echo-sandbox-serve";

/* Fills path with the sibling of our own executable; -1 if it has none. */
static int sibling_path(char *path, size_t size) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0)
    return -1;
  self[n] = '\0';
  char *slash = strrchr(self, '/');
  if (!slash)
    return -1;
  *slash = '\0';
  int len = snprintf(path, size, "%s/%s", self, daemon_name);
  return len > 0 && (size_t)len < size ? 0 : -1;
}

int esb_cli_serve(int argc, char **argv) {
  char path[PATH_MAX];
  const char *candidates[2];
  int ncandidates = 0;
  if (sibling_path(path, sizeof path) == 0)
    candidates[ncandidates++] = path;
  candidates[ncandidates++] = ESB_LIBEXEC_DIR "/echo-sandbox-serve";
  for (int i = 0; i < ncandidates; i++) {
    if (access(candidates[i], X_OK) != 0)
      continue;
    argv[0] = (char *)candidates[i];
    execv(candidates[i], argv);
    fprintf(stderr, "echo-sandbox serve: cannot start %s: %s\n", candidates[i], strerror(errno));
    return 125;
  }
  (void)argc;
  fprintf(stderr, "echo-sandbox serve: %s is not installed (looked next to this program and in %s)\n",
          daemon_name, ESB_LIBEXEC_DIR);
  return 125;
}
