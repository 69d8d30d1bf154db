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
 * the cgroups and removes them, and is safe on ESB_CGROUP_INIT. */
#ifndef ESB_ENGINE_CGROUP_H
#define ESB_ENGINE_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { ESB_CGROUP_MEMORY, ESB_CGROUP_PIDS, ESB_CGROUP__COUNT };

struct esb_cgroup {
  char *dirs[ESB_CGROUP__COUNT]; /* owned: the directories made, NULL when not */
  int procs[ESB_CGROUP__COUNT];  /* their cgroup.procs, open for writing; -1 when not */
};

#define ESB_CGROUP_INIT { .procs = { -1, -1 } }

/* Makes the cgroups: memory (limit memory_bytes, swap included where the
 * kernel accounts it) and, when available, pids (limit max_pids; 0: none).
 * Returns 0 when at least the memory cgroup exists; -1 with a reason and
 * nothing left behind otherwise. */
int esb_cgroup_create(struct esb_cgroup *cg, uint64_t memory_bytes, uint64_t max_pids,
                      char *why, size_t whylen);

/* The fds to write a new process's pid to (ESB_CGROUP__COUNT of them, -1 for
 * a controller not used): what esb_sandbox.cgroup_procs points at. */
const int *esb_cgroup_procs_fds(const struct esb_cgroup *cg);

/* True when the kernel's OOM killer killed a process of the memory cgroup. */
bool esb_cgroup_oom_killed(const struct esb_cgroup *cg);

/* SIGKILLs what is left in the cgroups, removes them, frees the struct's
 * memory and leaves it as ESB_CGROUP_INIT. */
void esb_cgroup_destroy(struct esb_cgroup *cg);

#endif
