#include "daemon/pool_keeper.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/install_paths.h"

/* The child, between fork and exec: only async-signal-safe calls (the
 * daemon has threads). Its stdout is the daemon's stderr, the log; it
 * keeps no fd of the daemon's but the standard ones; the signals the
 * daemon blocks for its signalfd are unblocked (pool run blocks its own). */
static void exec_keeper(const char *path, char *const argv[], pid_t daemon) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != daemon)
    _exit(127); /* the daemon is gone already */
  dup2(2, 1);
  close_range(3, ~0U, 0);
  execv(path, argv);
  _exit(127);
}

/* The directory of the status file, made once: under $TMPDIR (else /tmp). */
static bool make_dir(struct esb_pool_keeper *k) {
  if (k->dir[0])
    return true;
  const char *tmp = getenv("TMPDIR");
  snprintf(k->dir, sizeof k->dir, "%s/echo-sandbox-serve-pools.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(k->dir)) {
    fprintf(stderr, "echo-sandbox serve: %s: %s\n", k->dir, strerror(errno));
    k->dir[0] = '\0';
    return false;
  }
  snprintf(k->status, sizeof k->status, "%s/pools", k->dir);
  return true;
}

static void start(struct esb_pool_keeper *k) {
  const char *bin = esb_install_dir(ESB_DIR_BIN);
  char path[PATH_MAX];
  if (!bin || snprintf(path, sizeof path, "%s/echo-sandbox", bin) >= (int)sizeof path) {
    fprintf(stderr, "echo-sandbox serve: cannot tell where echo-sandbox is: the warm pools are not kept\n");
    return;
  }
  if (!make_dir(k))
    return;
  char *argv[] = { path, "pool", "run", "--status-file", k->status,
                   k->policy_path ? "--policy" : NULL, (char *)k->policy_path, NULL };
  pid_t daemon = getpid();
  pid_t pid = fork();
  if (pid == 0)
    exec_keeper(path, argv, daemon);
  if (pid < 0) {
    fprintf(stderr, "echo-sandbox serve: cannot start the warm pools' keeper: %s\n", strerror(errno));
    return;
  }
  k->pid = pid;
  fprintf(stderr, "echo-sandbox serve: keeping the warm pools (pool run, pid %d)\n", (int)pid);
}

/* Whether the helper has ended (reaped, said); true where none runs. */
static bool ended(struct esb_pool_keeper *k, bool block) {
  if (!k->pid)
    return true;
  int status;
  pid_t got = waitpid(k->pid, &status, block ? 0 : WNOHANG);
  if (got == 0 || (got < 0 && errno == EINTR))
    return false;
  if (got == k->pid && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
    fprintf(stderr, "echo-sandbox serve: the warm pools' keeper (pid %d) ended: %s %d\n", (int)k->pid,
            WIFEXITED(status) ? "exit" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  k->pid = 0;
  return true;
}

void esb_pool_keeper_look(struct esb_pool_keeper *k, bool has_pools) {
  if (ended(k, false) && has_pools)
    start(k);
}

void esb_pool_keeper_reload(struct esb_pool_keeper *k) {
  if (k->pid)
    kill(k->pid, SIGHUP);
}

const char *esb_pool_keeper_status(const struct esb_pool_keeper *k) {
  return k->dir[0] ? k->status : NULL;
}

/* Ends the helper: SIGTERM, then SIGKILL past grace_ms. */
static void end_helper(struct esb_pool_keeper *k, unsigned grace_ms) {
  if (!k->pid)
    return;
  kill(k->pid, SIGTERM);
  for (unsigned waited = 0; waited < grace_ms; waited += 10) {
    if (ended(k, false))
      return;
    nanosleep(&(struct timespec){ 0, 10 * 1000000L }, NULL);
  }
  kill(k->pid, SIGKILL);
  ended(k, true);
}

void esb_pool_keeper_stop(struct esb_pool_keeper *k, unsigned grace_ms) {
  end_helper(k, grace_ms);
  if (!k->dir[0])
    return;
  char tmp[PATH_MAX + 16];
  snprintf(tmp, sizeof tmp, "%s.tmp", k->status);
  unlink(tmp);
  unlink(k->status);
  rmdir(k->dir);
  k->dir[0] = '\0';
}
