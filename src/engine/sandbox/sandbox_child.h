/* The child's side of esb_child_start: runs between clone and exec, so it may
 * make async-signal-safe calls only and touches nothing but this plan, which
 * the parent prepared completely before cloning. Internal to the engine. */
#ifndef ESB_ENGINE_SANDBOX_CHILD_H
#define ESB_ENGINE_SANDBOX_CHILD_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/sandbox/rootfs.h"
#include "engine/sandbox/spawn.h"

struct esb_child_plan {
  char *const *argv;
  char *const *envp;
  const char *const *exec_paths;  /* where to try argv[0], in order */
  const char *dir;
  const struct esb_sandbox *sandbox; /* NULL: plain child */
  int stdio[3];                   /* fds for 0, 1, 2 */
  int report_fd;                  /* write end, close-on-exec */
  int sync_fd;                    /* read end: one byte once the id maps are written; -1 without */
  int collect_fd;                 /* where pid 1 writes the collected files; -1: none */
  const struct esb_rootfs *rootfs; /* the root's steps, with ESB_NS_MOUNT */
  bool started_in_cgroup;         /* the clone put us in sandbox->cgroup_dir: nothing to join */
  bool cgroups_late;              /* the cgroups come over sync_fd once the engine made them
                                     (esb_sandbox.make_cgroups, struct esb_late_cgroups) */
  const char *rootfs_template;    /* a template of rootfs below our working dir (engine/sandbox/rootfs.h),
                                     which the fork server that forked us built; NULL: none */
  const struct esb_session_hold *session; /* pid 1 holds a session instead of running argv
                                     (engine/sandbox/session_holder.h); NULL: a run */
  int n_inherit;                  /* fds 3 .. 3 + n_inherit - 1 stay open for the program, as
                                     they are (a session kernel's requests and replies) */
};

/* The engine's word on sync_fd, after the release byte, to a child with
 * cgroups_late: the cgroup.procs files of the cgroups it made follow as
 * SCM_RIGHTS, one for each bit of `present` (ESB_CGROUP__COUNT at most),
 * with the limits that stand with them (none made: the rlimits of the
 * plan, unchanged). */
#define ESB_LATE_CGROUPS_MAGIC 0x4c434731u /* "LCG1" */
struct esb_late_cgroups {
  uint32_t magic;
  uint32_t present;
  uint64_t address_space, cpu_secs;
};

_Noreturn void esb_child_main(const struct esb_child_plan *plan);

/* The same in echo-sandbox-init (engine/sandbox/init_main.c), a fresh program the
 * engine started without namespaces (a vfork-like clone: nothing of the
 * engine's memory is copied or shared for the run's life): it makes the
 * sandbox's namespaces itself, tells the engine over sync_fd ("u"), waits
 * for the id maps ("g"), forks pid 1 of the new pid namespace and waits
 * for it. plan->sandbox has namespaces. namespaces_made: the CLONE_NEW*
 * flags of those the fork server cloned us into (engine/sandbox/fork_server.h),
 * which we do not make; cloned into its pid namespace, we are pid 1 of it
 * already. */
_Noreturn void esb_child_main_exec(const struct esb_child_plan *plan, uint64_t namespaces_made);

/* The step a failed unshare reports (the engine takes it for a clone that
 * failed: the host refuses namespaces). */
int esb_child_unshare_step(void);
/* The step an exec of echo-sandbox-init that failed reports. */
int esb_child_init_step(void);
/* The step a fork of the program (or of a session's run) that failed reports. */
int esb_child_fork_step(void);

/* A run in a session: p's pid 1, forked by the session's holder into a
 * pid namespace of its own, inside the session's sandbox (built already).
 * It starts the program and reports as a one-shot run's pid 1 does. */
_Noreturn void esb_child_run_in_session(const struct esb_child_plan *p);

/* The same in two halves, for a pid 1 made before its plan is known (the
 * holder's next run's): prepare does what no plan decides (signals reset,
 * a session of its own, its mount namespace and /proc) and installs
 * `ahead`, the seccomp filter the holder expects the run's plan to give
 * (NULL: none), 0 or the setup step that failed, with errno; run_prepared
 * the rest, all that the plan decides (the run's cgroups, ids, limits,
 * env, working dir; its seccomp filter unless it is `ahead`'s, installed
 * already: a plan with another filter is refused, as a setup failure of
 * the filter's step, EPROTO). */
int esb_child_session_prepare(const struct sock_fprog *ahead);
_Noreturn void esb_child_run_prepared(const struct esb_child_plan *p, const struct sock_fprog *ahead);

/* Closes every fd but those of keep (-1 entries aside; keep is sorted). */
void esb_child_close_all_but(int *keep, int n);

/* Reports that the plan could not be read, on report_fd, and exits. */
_Noreturn void esb_child_plan_unreadable(int report_fd);

/* The fork server's, once at its start: every disposition to SIG_DFL, as
 * each run's init would set them; the runs it forks then leave them. */
void esb_child_reset_dispositions_once(void);

#endif
