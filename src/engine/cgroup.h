/* A cgroup per run for the memory, process and CPU limits, where the host
 * lets the engine make one. The memory limit then counts what the program
 * really uses (RSS, page cache, tmpfs) instead of the address space it
 * reserves, so runtimes that reserve gigabytes (V8, the JVM, Go) run under
 * small limits; a run the kernel's OOM killer ended is reported as such; the
 * CPU limit is a rate (cores), and the run's CPU time and peak memory are
 * read back.
 *
 * Two hierarchies:
 *  - cgroup v1 (a memory hierarchy is mounted): one child per controller
 *    (memory, pids, cpu, cpuacct) of the cgroup the engine is in; the sandbox joins
 *    them by writing "0" to their `tasks` files (esb_sandbox.cgroup_procs)
 *    while it is single-threaded: the kernel moves one thread that moves
 *    itself without taking cgroup_threadgroup_rwsem for writing, which a
 *    write to cgroup.procs does, and whose RCU grace period cost such a move
 *    7 ms and more whenever the lock had been idle for a while.
 *  - cgroup v2 (only the unified hierarchy): one child with memory.max,
 *    memory.swap.max 0, pids.max and cpu.max, made under a parent where those
 *    controllers are enabled, found or made once per process:
 *      1. the engine's own cgroup, when its subtree_control has them already
 *         (an operator or a previous engine set it up), or the kernel lets us
 *         enable them there (the root cgroup);
 *      2. else, when the engine is alone in its cgroup (a systemd service
 *         with Delegate=yes, `systemd-run --scope -p Delegate=yes`, a
 *         container's only process), it moves itself into a leaf child
 *         echo-sandbox-engine-PID and enables them in its cgroup: the
 *         no-internal-processes rule allows nothing else;
 *      3. else (a shell's or a CI job's cgroup, shared with other processes),
 *         the parent of the engine's cgroup, when they are enabled there or
 *         we may enable them: runs are siblings of the engine's cgroup.
 *    The sandbox starts inside its cgroup (clone3 CLONE_INTO_CGROUP through
 *    esb_sandbox.cgroup_dir), so nothing of it ever runs outside.
 * Where neither works (not root, no delegation, read-only cgroupfs),
 * esb_cgroup_create fails with a reason and the caller falls back to
 * RLIMIT_AS and RLIMIT_NPROC, which work everywhere, with no CPU rate limit.
 *
 * The caller owns the struct; esb_cgroup_destroy kills whatever is left in
 * the cgroups (cgroup.kill where the kernel has it) and removes them, and is
 * safe on ESB_CGROUP_INIT. Cgroups are named echo-sandbox-PID-N after the
 * process that made them, which holds a lock on each for as long as it is
 * its own; the first one a process makes also removes the empty, unlocked
 * ones of engines that are gone (killed before they could clean up). */
#ifndef ESB_ENGINE_CGROUP_H
#define ESB_ENGINE_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "engine/error.h"

enum esb_cgroup_version { ESB_CGROUP_NONE, ESB_CGROUP_V1, ESB_CGROUP_V2 };

/* The controllers, as v1 hierarchies (v2: one directory, dirs[0]). v1's
 * cpuacct counts the run's CPU time where a CPU-time budget needs it and
 * the host mounts it apart from cpu (co-mounted, the cpu directory counts;
 * v2's cpu.stat always does). */
enum { ESB_CGROUP_MEMORY, ESB_CGROUP_PIDS, ESB_CGROUP_CPU, ESB_CGROUP_CPUACCT, ESB_CGROUP__COUNT };

/* 0: no limit of that kind. */
struct esb_cgroup_limits {
  uint64_t memory_bytes;
  uint64_t max_pids;
  uint64_t cpu_millicores; /* cores x 1000: 500 is half a core */
  bool count_cpu;          /* the run's CPU time must be readable while it runs (a
                              CPU-time budget): on v1 a cpu or cpuacct cgroup is
                              made for it even without a CPU rate */
  bool pids_by_uid;        /* the run's processes are the only ones of their host
                              uid, so RLIMIT_NPROC (counted per uid) bounds the run
                              alone: v1 makes no pids cgroup for it (v2's pids.max
                              is one more write in the same directory, kept) */
};

struct esb_cgroup {
  enum esb_cgroup_version version;
  char *dirs[ESB_CGROUP__COUNT]; /* owned: the directories made, NULL when not */
  int procs[ESB_CGROUP__COUNT];  /* open for writing, -1 when not: v1 their `tasks`; v2
                                    procs[0] is cgroup.procs, for a kernel without
                                    clone3; what esb_sandbox.cgroup_procs points at */
  int dir_fd;                    /* v2: the directory, for CLONE_INTO_CGROUP; -1 when not */
  uint64_t memory_limit;         /* what the memory limit file says */
  uint64_t oom_kills_before;     /* the oom_kill counter when this run got the cgroup */
  uint64_t cpu_usec_before;      /* v2: cpu.stat usage_usec then */
  bool peak_is_this_runs;        /* the peak file counts this run only (a new cgroup, or
                                    one whose high-water mark could be reset) */
  uint64_t peak_base;            /* what the memory cgroup was charged with when the run got
                                    it, not the run's (a session's run slot): taken from its peak */
  int peak_fd;                   /* the peak file (v1 memory.max_usage_in_bytes; v2 memory.peak,
                                    when it was reset through it), open while a run holds
                                    the cgroup; -1 when not */
  int oom_fd, cpu_fd;            /* the same of the OOM-kill count's file (v1 memory.oom_control,
                                    v2 memory.events) and the CPU time's (cpuacct.usage,
                                    cpu.stat): read at the run's start and end */
  struct esb_cgroup_limits limits; /* what its limit files say, once limits_set: a run
                                    with the same limits rewrites none of them */
  bool limits_set;
  bool no_cpu_usage;             /* v1: no cpuacct.usage beside the cpu files (not asked again) */
  bool cpu_dir_counts;           /* v1: its cpu directory counts CPU time (cpu and cpuacct
                                    mounted as one), said by a session's run slot, which
                                    is readied without the engine's own setup */
  bool oom_kills_known;          /* oom_kills_before holds the count at the last run's end */
  int slot_fds[ESB_CGROUP__COUNT]; /* a slot of the shared pool (esb_cgroup_claim): its
                                    directories, open and flock'ed; -1 when not one */
  int reset_fds[3];              /* v1: the failure counts and memsw peak a reuse zeroes,
                                    kept open with the files above; -1 when not */
};

#define ESB_CGROUP_INIT { .procs = { -1, -1, -1, -1 }, .dir_fd = -1, .peak_fd = -1, .oom_fd = -1, \
                          .cpu_fd = -1, .slot_fds = { -1, -1, -1, -1 }, .reset_fds = { -1, -1, -1 } }

/* What a run's cgroup would be made of here, without making one (doctor,
 * policy explain): the hierarchy, the controllers that limits can use, and
 * where runs go. Nothing is moved or enabled. On ESB_CGROUP_NONE, `why`
 * says what stands in the way. */
struct esb_cgroup_host {
  enum esb_cgroup_version version;
  bool controllers[ESB_CGROUP__COUNT];
  char where[512];
  char why[ESB_MESSAGE_MAX];
};
void esb_cgroup_probe(struct esb_cgroup_host *host);

/* The same, as found (and acted on: moved, enabled) for this process's
 * runs: what esb_cgroup_create uses. Done once per process. */
void esb_cgroup_setup(struct esb_cgroup_host *host);

/* One line for people: "cgroup v2: memory, pids, cpu below ..." or, on
 * ESB_CGROUP_NONE, "no cgroup: WHY". */
void esb_cgroup_describe(const struct esb_cgroup_host *host, char *buf, size_t n);

/* Idle cgroups that a long-lived caller (batch, serve) keeps for its next
 * runs: making and removing a memory cgroup per run costs more than the
 * rest of the cgroup work. An idle cgroup has no process; before it is
 * handed out again its limits are set for the new run and its usage
 * high-water marks and failure counts reset (the OOM-kill counter and the
 * CPU time cannot be: their values at hand-out are kept instead). The owner
 * empties the pool with esb_cgroup_pool_clear before it exits. */
#define ESB_CGROUP_POOL_SIZE 64
#define ESB_CGROUP_POOL_KEEP_FILES 16 /* those that keep their files open (six fds each, v1) */
struct esb_cgroup_pool {
  struct esb_cgroup idle[ESB_CGROUP_POOL_SIZE];
  size_t count;
};

#define ESB_CGROUP_POOL_INIT { .count = 0 }

/* esb_cgroup_create, taking an idle cgroup from pool when it has one. */
int esb_cgroup_acquire(struct esb_cgroup_pool *pool, struct esb_cgroup *cg,
                       const struct esb_cgroup_limits *limits, struct esb_error *err);

/* Gives a cgroup whose run is over back to pool (NULL: destroys it); one
 * that still has processes, or a full pool, gets esb_cgroup_destroy. */
void esb_cgroup_release(struct esb_cgroup_pool *pool, struct esb_cgroup *cg);

/* The same two in halves, for a loop that does the file work off its own
 * thread (backend/local.c): the pool's halves only move structs, so only
 * they need the pool's owner's thread.
 *   take: pops an idle cgroup into cg (ESB_CGROUP_INIT), false when none;
 *   ready: readies what take gave (or makes one): esb_cgroup_acquire's
 *          work and return contract;
 *   settle: destroys a cgroup whose run is over that still has processes;
 *   put: into the pool when it has a cgroup and room, else destroyed. */
bool esb_cgroup_pool_take(struct esb_cgroup_pool *pool, struct esb_cgroup *cg);
int esb_cgroup_ready(struct esb_cgroup *cg, const struct esb_cgroup_limits *limits, struct esb_error *err);
void esb_cgroup_settle(struct esb_cgroup *cg);
void esb_cgroup_pool_put(struct esb_cgroup_pool *pool, struct esb_cgroup *cg);

/* Destroys every idle cgroup of the pool. */
void esb_cgroup_pool_clear(struct esb_cgroup_pool *pool);

/* Makes the run's cgroup(s): memory (limit memory_bytes, no swap beyond it)
 * and, where available, pids and cpu. Returns 0 when at least the memory
 * controller is there; -1 with err filled and nothing left behind otherwise. */
int esb_cgroup_create(struct esb_cgroup *cg, const struct esb_cgroup_limits *limits, struct esb_error *err);

/* The same, each cgroup below parent's (a session's: backend/local_session.h)
 * instead of below the engine's own: a run's own count of its CPU time,
 * peak memory, OOM kills and processes, inside a limit it shares. On v2
 * parent must have been made a parent (esb_cgroup_v2_nest). */
int esb_cgroup_create_below(struct esb_cgroup *cg, const struct esb_cgroup *parent,
                            const struct esb_cgroup_limits *limits, struct esb_error *err);

/* v2's rule that a cgroup with processes has no child with controllers:
 * enables memory, pids and cpu in cg's subtree (cg, new, has no process
 * yet) and makes its leaf child `leaf` for the processes that stay in cg
 * itself; *leaf_dir (for CLONE_INTO_CGROUP) and *leaf_procs (its
 * cgroup.procs) are its, for the caller to close. On v1 (no such rule)
 * nothing is done and both are -1. 0, or -1 with err (nothing left). */
int esb_cgroup_v2_nest(struct esb_cgroup *cg, const char *leaf, int *leaf_dir, int *leaf_procs,
                       struct esb_error *err);

/* The cgroups of an engine that keeps no pool of its own (one run per
 * process: the CLI's run, the Lua module): on cgroup v1, a slot of a pool
 * that every engine of the host shares, cgroups named echo-sandbox-pool-K
 * below the same parents, which outlive the runs; esb_cgroup_create where
 * no slot is free, and on v2 (where a slot would need memory.peak's reset,
 * Linux 6.12, to tell the run's peak). Making and removing a memory cgroup
 * per run costs more than the rest of the run's cgroup work, most of it
 * after the rmdir, when the kernel takes the cgroup down on the CPUs the
 * next run needs.
 *
 * A slot is held with flock on each of its directories, so a crashed
 * engine holds none, and is taken only with no process in it (a crashed
 * engine's run may still be dying in it: the next slot is taken). Before
 * the run it is readied as an idle cgroup of a pool is (limits written,
 * high-water marks and failure counts reset, the OOM-kill count and the
 * CPU time read as the run's start), and what the last holder left
 * charged to it (page cache, kernel objects) is reclaimed
 * (memory.force_empty) where it is more than the kernel's per-CPU charge
 * batches; a slot that stays charged is removed instead.
 * esb_cgroup_destroy gives a slot back (one with a process left is
 * removed, as a cgroup is). `echo-sandbox cleanup` removes the idle slots
 * (esb_cgroup_slots_remove). */
int esb_cgroup_claim(struct esb_cgroup *cg, const struct esb_cgroup_limits *limits, struct esb_error *err);

/* A run's cgroups below a session's (parent, as for esb_cgroup_create_below),
 * from slots that outlive the runs: PARENT/run-K in each hierarchy the
 * parent has (its cpu one only where no cpuacct one counts the run's CPU
 * time: a run has no rate of its own), so that a run in a session costs
 * no mkdir and rmdir of cgroups (most of a session run's cgroup work). On
 * v2 (no reset of the peak before Linux 6.12), esb_cgroup_create_below.
 *
 * A slot is held with flock on its `tasks` files, the fds the run's pid 1
 * joins by (cg->procs): whoever holds a copy of them holds the slot. The
 * session's holder keeps its copies until it reaped the run's pid 1, the
 * last process of the run, so a slot is never taken while its run lives,
 * even where the engine that took it was killed. A slot is taken only
 * unlocked and with no process in it, and readied as a slot of the shared
 * pool is (limits written, the peak and failure counts reset, the OOM-kill
 * count and the CPU time read as the run's start), but what earlier runs
 * left charged to it (their files in the session's working dir, the page
 * cache they read) stays, counted against the session's limit as it would
 * be in the session's cgroup, and the run's peak counts from it
 * (peak_base). esb_cgroup_destroy gives it back; the session's removal
 * removes the slots with the session's cgroups. The engine's own setup
 * (its /proc/self/mountinfo and cgroup) is not read: the paths are the
 * parent's. */
int esb_cgroup_claim_below(struct esb_cgroup *cg, const struct esb_cgroup *parent,
                           const struct esb_cgroup_limits *limits, struct esb_error *err);

/* Removes the idle slots of the shared pool below this engine's parents
 * (dry_run: only finds them), each under its lock; a slot in use (locked,
 * or with a process in it) is left. say(path, err, arg) is called for
 * each one found: err 0 (removed, or idle with dry_run), EBUSY (in use),
 * or why rmdir failed. Returns how many are left. */
int esb_cgroup_slots_remove(bool dry_run, void (*say)(const char *path, int err, void *arg), void *arg);

/* True when the kernel's OOM killer killed a process of the memory cgroup
 * during this run. The count read is kept as the next run's start: an
 * idle cgroup has no process to kill. */
bool esb_cgroup_oom_killed(struct esb_cgroup *cg);

/* The run's usage so far, where the cgroup knows it: CPU time (user +
 * system) in ms and the memory high-water mark in bytes; -1 where unknown. */
void esb_cgroup_usage(const struct esb_cgroup *cg, int64_t *cpu_time_ms, int64_t *memory_peak_bytes);

/* The run's CPU time (user + system, every process of it) so far in µs,
 * read now; -1 where the cgroup does not count it. Cheap (one small file):
 * for a watch of a CPU-time budget while the run goes on. */
int64_t esb_cgroup_cpu_usec(const struct esb_cgroup *cg);

/* Whether the cgroup counts its run's CPU time (without reading it). */
bool esb_cgroup_counts_cpu(const struct esb_cgroup *cg);

/* The CPU rate the cgroup holds its run to, in millicores; 0: none. */
uint64_t esb_cgroup_cpu_rate(const struct esb_cgroup *cg);

/* SIGKILLs what is left in the cgroups, removes them (a slot of the
 * shared pool with no process left is given back instead), frees the
 * struct's memory and leaves it as ESB_CGROUP_INIT. */
void esb_cgroup_destroy(struct esb_cgroup *cg);

#endif
