/* The local backend: runs a plan on this machine in a namespace + rlimit
 * sandbox (see doc/local-sandbox.md). With namespaces, the program sees a
 * minimal root of its own (engine/sandbox/rootfs.h) whose working dir is a tmpfs
 * that vanishes with the sandbox: nothing of a run is on the host's disk.
 * With isolation "rlimits" only, a fresh working dir is made under $TMPDIR
 * (or /tmp) and removed afterwards as the program's own uid. The files a
 * request's collect patterns match are read once the program has ended
 * (engine/contract/collect.h): by the sandbox's pid 1 with namespaces, by us from
 * the host working dir without. With
 * plan->local.cgroups, the memory and process limits are a cgroup's where the
 * host lets the engine make one (engine/cgroup.h), else rlimits.
 *
 * The caller owns the struct esb_local_run (it may live on the stack for a
 * single run) and the plan, which must outlive the run. */
#ifndef ESB_BACKEND_LOCAL_H
#define ESB_BACKEND_LOCAL_H

#include "engine/cgroup.h"
#include "engine/runtime/loop.h"
#include "engine/runtime/uid_slot.h"
#include "backend/plan.h"
#include "backend/netstack.h"
#include "backend/egress_helper.h"

struct esb_local_run;
typedef void (*esb_local_done_fn)(struct esb_local_run *run, void *userdata);

struct esb_local_run {
  struct esb_exec exec;        /* exec.result is the result */
  struct esb_exec_options exec_opts; /* what exec runs, kept for a start again
                                        without namespaces (start_failed) */
  struct esb_sandbox sandbox;
  struct esb_cgroup cgroup;    /* the run's cgroups, when the plan and the host allow */
  struct esb_uid_slot uid_slot; /* the run's own host uid, held until its end (root only) */
  bool cgroup_ready;           /* limits set for this run */
  struct esb_error cgroup_refused; /* why the plan's cgroups could not be made: the run's
                                      limits were rlimits instead (code ESB_OK: none refused) */
  bool cpu_rate_held;          /* the run's cgroup holds it to its CPU rate (read when
                                  made: a cgroup settled at the end is gone) */
  struct {                     /* what the cgroup said when the child was reaped */
    bool oom_killed;
    int64_t cpu_time_ms, memory_peak_bytes; /* -1: unknown */
  } seen;
  struct esb_cgroup_pool *cgroup_pool; /* the loop's, where the cgroup goes back */
  struct esb_loop *loop;       /* where it runs */
  const struct esb_plan *plan; /* what it runs */
  struct esb_netstack net;     /* pasta, for network: true */
  struct esb_egress_helper egress; /* the proxy's process, for the network by name (plan->egress_allow) */
  char **env;                  /* plan env + HOME */
  char *tmpdir;                /* the host working dir (isolation rlimits), ours to remove */
  int collect_fd;              /* a memfd the collected files are framed into; -1: none */
  struct esb_collected collected; /* read back from it once the child is gone */
  int collect_errno;           /* why they could not be (0: they were), for a warning */
  esb_local_done_fn on_done;
  void *userdata;
  struct esb_output_sink output; /* optional: the program's output as it comes */
  struct esb_timer cpu_watch;  /* the CPU-time budget of the whole run, read off its cgroup */
  bool cpu_exceeded;           /* the watch ended the run: its result says CpuTimeExceeded */
};

#define ESB_LOCAL_RUN_INIT { .exec = ESB_EXEC_INIT, .exec_opts = ESB_EXEC_OPTIONS_INIT, .cgroup = ESB_CGROUP_INIT, .net = ESB_NETSTACK_INIT, \
                             .egress = ESB_EGRESS_HELPER_INIT, \
                             .output = ESB_OUTPUT_SINK_NONE, .collect_fd = -1, \
                             .uid_slot = ESB_UID_SLOT_INIT, \
                             .cgroup_refused = ESB_ERROR_INIT, \
                             .seen = { .cpu_time_ms = -1, .memory_peak_bytes = -1 } }

/* Starts the run on the loop. Returns 0, after which on_done runs once the
 * result is complete (the working dir is already removed then); or -1, with
 * the result saying why and nothing left behind (on_done does not run). */
int esb_local_start(struct esb_local_run *run, struct esb_loop *loop,
                    const struct esb_plan *plan);

/* Frees what the run holds except its result. */
void esb_local_release(struct esb_local_run *run);

/* The sandbox the plan gets: namespaces and the minimal root as its
 * isolation says, or rlimits only when fallback is set. It points into the
 * plan, which must outlive it. */
void esb_local_sandbox_for(const struct esb_plan *plan, bool fallback, struct esb_sandbox *sb);

/* Runs one plan to completion on a loop of its own; interrupt_fd as in
 * struct esb_loop (-1: none). */
void esb_local_run_plan(const struct esb_plan *plan, struct esb_result *result, int interrupt_fd);

#endif
