/* Where an installation's parts are, found from the running binary itself
 * (the CLI, the daemon or the Lua module), so that an installation works
 * wherever `cmake --install --prefix P` put it, whatever prefix it was
 * configured with: the parts are found relative to the binary, as the
 * install layout places them. A binary that runs from its build tree (its
 * directory is the build directory) finds the build's programs and the
 * source tree's policies and Lua files instead. An installed binary never
 * looks at the source tree. */
#ifndef ESB_ENGINE_INSTALL_PATHS_H
#define ESB_ENGINE_INSTALL_PATHS_H

enum esb_install_dir {
  ESB_DIR_LIBEXEC,  /* echo-sandbox-serve, echo-sandbox-init */
  ESB_DIR_POLICIES, /* default.lua and the other shipped policies */
  ESB_DIR_LUA,      /* the echo_sandbox Lua modules (a policy's require) */
  ESB_DIR_BIN,      /* echo-sandbox (the daemon's pool keeper runs it) */
  ESB_DIR__COUNT
};

/* The directory, without a trailing '/'; NULL where the binary's own path
 * cannot be read. Worked out once, thread-safe; static storage. */
const char *esb_install_dir(enum esb_install_dir which);

/* The programs of the installation the engine starts, each named by a
 * variable of its own or found in ESB_DIR_LIBEXEC. */
enum esb_install_program {
  ESB_PROGRAM_INIT,   /* echo-sandbox-init, $ECHO_SANDBOX_INIT */
  ESB_PROGRAM_EGRESS, /* echo-sandbox-egress, $ECHO_SANDBOX_EGRESS */
  ESB_PROGRAM_KUBE,   /* echo-sandbox-kube, $ECHO_SANDBOX_KUBE */
  ESB_PROGRAM__COUNT
};

/* The program's path: the one its variable names where that is set and
 * not empty (only that one: a name that is wrong is not passed over for
 * the installed program), else the installation's; NULL where it is not
 * an executable file. Worked out once, thread-safe; static storage. */
const char *esb_install_program(enum esb_install_program which);

#endif
