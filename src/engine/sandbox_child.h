/* The child's side of esb_child_start: runs between clone and exec, so it may
 * make async-signal-safe calls only and touches nothing but this plan, which
 * the parent prepared completely before cloning. Internal to the engine. */
#ifndef ESB_SANDBOX_CHILD_H
#define ESB_SANDBOX_CHILD_H

#include <stdbool.h>

#include "engine/rootfs.h"
#include "engine/spawn.h"

struct esb_child_plan {
  char *const *argv;
  char *const *envp;
  const char *const *exec_paths;  /* where to try argv[0], in order */
  const char *dir;
  const struct esb_sandbox *sandbox; /* NULL: plain child */
  int stdio[3];                   /* fds for 0, 1, 2 */
  int report_fd;                  /* write end, close-on-exec */
  int sync_fd;                    /* read end: one byte once the id maps are written; -1 without */
  const struct esb_rootfs *rootfs; /* the root's steps, with ESB_NS_MOUNT */
  bool started_in_cgroup;         /* the clone put us in sandbox->cgroup_dir: nothing to join */
};

_Noreturn void esb_child_main(const struct esb_child_plan *plan);

#endif
