/* The daemon's keeper of the policy's warm pools (doc/warm-pods.md): the
 * maintainer of `echo-sandbox pool run`, as a helper process of the daemon,
 * so that no pass of it (kubectl lists and creates, seconds on a slow
 * cluster) ever holds up the loop that serves runs. It runs while the
 * policy has pools; it gets SIGHUP when the daemon's policy is reloaded
 * (it reloads the same file: stale pods drain, new ones of the new shape
 * are made), SIGTERM when the daemon stops, and SIGTERM from the kernel
 * when the daemon dies without stopping (PR_SET_PDEATHSIG). One that ended
 * by itself is started again at the next look, a second later at least.
 * Several daemons and `pool run`s may keep one pool: each makes one pod a
 * list (cli/pool.c). */
#ifndef ESB_DAEMON_POOL_KEEPER_H
#define ESB_DAEMON_POOL_KEEPER_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

struct esb_pool_keeper {
  pid_t pid;                /* 0: none runs */
  const char *policy_path;  /* the daemon's --policy (NULL: the default search) */
  char dir[PATH_MAX];       /* a directory of the daemon's own ("": none yet), removed at
                               the stop, that holds the helper's status file */
  char status[PATH_MAX + 8]; /* that file (pool run --status-file): its last look at each
                               pool, for /metrics */
};

/* Starts the helper where the policy has pools and none runs, and reaps
 * one that ended (said on stderr). Cheap: called once a second. */
void esb_pool_keeper_look(struct esb_pool_keeper *k, bool has_pools);

/* The daemon's policy was reloaded: the helper loads it too. */
void esb_pool_keeper_reload(struct esb_pool_keeper *k);

/* The helper's status file, or NULL where none was started. */
const char *esb_pool_keeper_status(const struct esb_pool_keeper *k);

/* Stops the helper and waits for it (SIGKILL past grace_ms); removes its
 * status file. */
void esb_pool_keeper_stop(struct esb_pool_keeper *k, unsigned grace_ms);

#endif
