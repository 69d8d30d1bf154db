/* echo-sandbox serve: execs the daemon program, echo-sandbox-serve (see
 * src/daemon/main.c for why it is a program of its own), from the
 * installation's libexec directory (engine/install_paths.h: the build
 * directory in a build tree). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "engine/install_paths.h"

static const char daemon_name[] = "echo-sandbox-serve";

int esb_cli_serve(int argc, char **argv) {
  (void)argc;
  const char *libexec = esb_install_dir(ESB_DIR_LIBEXEC);
  char path[PATH_MAX];
  if (!libexec || snprintf(path, sizeof path, "%s/%s", libexec, daemon_name) >= (int)sizeof path) {
    fprintf(stderr, "echo-sandbox serve: cannot tell where this installation is (/proc/self/exe)\n");
    return 125;
  }
  if (access(path, X_OK) == 0) {
    argv[0] = path;
    execv(path, argv);
    fprintf(stderr, "echo-sandbox serve: cannot start %s: %s\n", path, strerror(errno));
    return 125;
  }
  fprintf(stderr, "echo-sandbox serve: %s is not installed (looked in %s)\n", daemon_name, libexec);
  return 125;
}
