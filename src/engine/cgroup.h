/* A cgroup per run for the memory and process limits, where the host lets
 * the engine make one: cgroup v1's memory and pids controllers, as a child of
 * the cgroup the engine itself is in (/proc/self/cgroup). The memory limit
 * then counts what the program really uses (RSS, page cache, tmpfs) instead
 * of the address space it reserves, so runtimes that reserve gigabytes
 * (V8, the JVM, Go) run under small limits, and a run the kernel's OOM killer
 * ended is reported as such (memory.oom_control's oom_kill counter).
 *
 * Where there is no such controller, or the engine may not create cgroups
 * (not root, read-only cgroupfs, a cgroup v2-only host: not supported yet),
 * esb_cgroup_create fails with a reason and the caller falls back to
 * RLIMIT_AS and RLIMIT_NPROC, which work everywhere.
 *
 * The caller owns the struct; esb_cgroup_destroy kills whatever is left in
 * the cgroups and removes them, and is safe on ESB_CGROUP_INIT. Cgroups are
 * named echo-sandbox-PID-N after the process that made them; the first one a
 * process makes also removes the empty ones of engines that are gone (killed
 * before they could clean up). */
#ifndef ESB_ENGINE_CGROUP_H
#define ESB_ENGINE_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { ESB_CGROUP_MEMORY, ESB_CGROUP_PIDS, ESB_CGROUP__COUNT };

struct esb_cgroup {
  char *dirs[ESB_CGROUP__COUNT]; /* owned: the directories made, NULL when not */
  int procs[ESB_CGROUP__COUNT];  /* their cgroup.procs, open for writing; -1 when not:
                                    what esb_sandbox.cgroup_procs points at */
  uint64_t memory_limit;         /* what memory.limit_in_bytes says */
  uint64_t oom_kills_before;     /* the oom_kill counter when this run got the cgroup */
};

#define ESB_CGROUP_INIT { .procs = { -1, -1 } }

/* Idle cgroups that a long-lived caller (batch, serve) keeps for its next
 * runs: making and removing a memory cgroup per run costs more than the
 * rest of the cgroup work. An idle cgroup has no process; before it is
 * handed out again its limits are set for the new run and its usage
 * high-water marks and failure counts reset (the OOM-kill counter cannot
 * be: its value at hand-out is kept instead). The owner empties the pool
 * with esb_cgroup_pool_clear before it exits. */
#define ESB_CGROUP_POOL_SIZE 64
struct esb_cgroup_pool {
  struct esb_cgroup idle[ESB_CGROUP_POOL_SIZE];
  size_t count;
};

#define ESB_CGROUP_POOL_INIT { .count = 0 }

/* esb_cgroup_create, taking an idle cgroup from pool when it has one. */
int esb_cgroup_acquire(struct esb_cgroup_pool *pool, struct esb_cgroup *cg, uint64_t memory_bytes,
                       uint64_t max_pids, char *why, size_t whylen);

/* Gives a cgroup whose run is over back to pool (NULL: destroys it); one
 * that still has processes, or a full pool, gets esb_cgroup_destroy. */
void esb_cgroup_release(struct esb_cgroup_pool *pool, struct esb_cgroup *cg);

/* Destroys every idle cgroup of the pool. */
void esb_cgroup_pool_clear(struct esb_cgroup_pool *pool);

/* Makes the cgroups: memory (limit memory_bytes, swap included where the
 * kernel accounts it) and, when available, pids (limit max_pids; 0: none).
 * Returns 0 when at least the memory cgroup exists; -1 with a reason and
 * nothing left behind otherwise. */
int esb_cgroup_create(struct esb_cgroup *cg, uint64_t memory_bytes, uint64_t max_pids,
                      char *why, size_t whylen);

/* True when the kernel's OOM killer killed a process of the memory cgroup. */
bool esb_cgroup_oom_killed(const struct esb_cgroup *cg);

/* SIGKILLs what is left in the cgroups, removes them, frees the struct's
 * memory and leaves it as ESB_CGROUP_INIT. */
void esb_cgroup_destroy(struct esb_cgroup *cg);

#endif
