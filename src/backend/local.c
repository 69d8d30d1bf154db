#include "backend/local.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/install_paths.h"
#include "engine/sandbox/rootfs.h"
#include "engine/sandbox/seccomp.h"
#include "engine/strv.h"

static const unsigned all_namespaces =
  ESB_NS_USER | ESB_NS_MOUNT | ESB_NS_PID | ESB_NS_NET | ESB_NS_IPC | ESB_NS_UTS;

static int make_removable(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)ftw;
  if (type == FTW_D || type == FTW_DNR)
    chmod(path, (st->st_mode & 07777) | S_IRWXU);
  return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st; (void)type; (void)ftw;
  remove(path);
  return 0;
}

/* rm -rf that also gets through directories the program made unreadable.
 * It goes by path, so a directory the program swaps for a symlink while it
 * runs could lead it elsewhere: only for what runs as our own uid. */
static void remove_tree(const char *dir) {
  nftw(dir, make_removable, 16, FTW_PHYS | FTW_MOUNT);
  nftw(dir, remove_entry, 16, FTW_PHYS | FTW_MOUNT | FTW_DEPTH);
}

/* Removes the host working dir of a run without namespaces (isolation
 * rlimits); -1 with *err where it is left. As root, the removal runs as the program's own uid, in a child
 * of its own: whatever the program planted there (a symlink swapped in
 * mid-removal), the removal can delete nothing the program could not have
 * deleted itself. Otherwise we are the program's uid already. The
 * directory itself, empty by then, we remove. */
static int remove_workdir(const struct esb_sandbox *sb, const char *dir, struct esb_error *err) {
  if (!sb->switch_ids) {
    remove_tree(dir);
    return access(dir, F_OK) == 0 ? esb_error_set(err, ESB_E_SYSTEM, "the working dir %s was left", dir) : 0;
  }
  if (rmdir(dir) == 0)
    return 0; /* left empty: nothing to walk, no child needed */
  struct esb_sandbox as_program = { .switch_ids = true, .uid = sb->uid, .gid = sb->gid };
  const char *argv[] = {"/bin/sh", "-c", "chmod -R u+rwx -- \"$0\" 2>/dev/null; exec rm -rf -- \"$0\"", dir, NULL};
  const char *env[] = {"PATH=/usr/bin:/bin", NULL};
  struct esb_child c = ESB_CHILD_INIT;
  c.argv = argv;
  c.env = env;
  c.sandbox = &as_program;
  int status, rc = esb_child_start(&c, err);
  if (rc == 0)
    esb_child_reap(&c, &status, false);
  esb_child_close(&c);
  /* Its parent may not be the program's to write in ($TMPDIR): the empty
   * directory itself is ours to remove, and rmdir follows no symlink. */
  if (rmdir(dir) == 0 || errno == ENOENT)
    return 0;
  if (rc == 0)
    esb_error_errno(err, ESB_E_SYSTEM, "removing the working dir %s", dir);
  return -1;
}

/* The cgroup's part of after_exit, on whichever thread reaped the child: what the
 * cgroup saw (an OOM kill, the run's CPU time and peak memory, counting
 * every process of the run, also those the kernel killed with the
 * namespace) and whether it is empty, for finished() to apply. */
static void read_cgroup(struct esb_exec *exec, void *userdata) {
  (void)exec;
  struct esb_local_run *run = userdata;
  if (!run->cgroup.dirs[0])
    return;
  run->seen.oom_killed = esb_cgroup_oom_killed(&run->cgroup);
  esb_cgroup_usage(&run->cgroup, &run->seen.cpu_time_ms, &run->seen.memory_peak_bytes);
  /* In a pid namespace of its own the run has no process left once we
   * reaped its child: the kernel ends pid 1 of a namespace only after every
   * other process in it is gone, and no process leaves the namespace. */
  if (!(run->sandbox.namespaces & ESB_NS_PID))
    esb_cgroup_settle(&run->cgroup);
}

/* Files out: the frames pid 1 wrote, or, for a run without namespaces,
 * the host working dir walked here first (not followed anywhere by a link
 * the program left: engine/contract/collect.h). On the reaper's thread, with the
 * cgroup's reading. */
static void read_collected(struct esb_local_run *run) {
  run->collect_errno = 0;
  if (run->collect_fd < 0)
    return;
  if (!run->sandbox.namespaces && run->tmpdir) {
    int dir = open(run->tmpdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir < 0 || esb_collect_walk(dir, &run->plan->collect, run->collect_fd) < 0)
      run->collect_errno = errno;
    if (dir >= 0)
      close(dir);
  }
  /* None where it fails; finished() says so in a warning. */
  if (esb_collect_read(run->collect_fd, &run->plan->collect, &run->collected) < 0 && !run->collect_errno)
    run->collect_errno = errno;
}

/* The exec's after_exit, on whichever thread reaped the child. */
static void after_exit(struct esb_exec *exec, void *userdata) {
  read_cgroup(exec, userdata);
  read_collected(userdata);
}

/* ---- the CPU-time budget of the whole run -------------------------------
 *
 * cpu_time_secs counts every process of the run together: RLIMIT_CPU alone
 * holds each process to it, and a program that forks N workers gets N times
 * the budget. The run's cgroup counts them all, so the loop reads that
 * count when the budget could be spent at the fastest the run may go (its
 * CPU rate, or every CPU of the host), and again then for what is left: a
 * run well under its budget costs one small read per budget/rate, a run
 * that reaches it is stopped within CPU_WATCH_MIN_NS of it, without a
 * grace (it has no CPU time left to spend in one). RLIMIT_CPU stays, a
 * second later per process, as the backstop. Without a cgroup that counts
 * (none, or the policy's cgroups = false) the budget is RLIMIT_CPU's, per
 * process, and a warning of the result says so. */
#define CPU_WATCH_MIN_NS 10000000ull   /* 10 ms between two reads at most */
#define CPU_WATCH_MAX_USEC 3600000000ull /* an hour of CPU: a policy's huge budget, read hourly */

/* Read once: glibc reads /sys for it each time, a path walk a run. */
static long online_cpus(void) {
  static _Atomic long online;
  if (!online)
    online = sysconf(_SC_NPROCESSORS_ONLN);
  return online;
}

static void watch_cpu_at(struct esb_local_run *run, uint64_t cpu_left_usec, uint64_t rate_millicores) {
  long online = online_cpus();
  uint64_t cpus = online > 0 ? (uint64_t)online * 1000 : 1000;
  if (!rate_millicores || rate_millicores > cpus)
    rate_millicores = cpus;
  if (cpu_left_usec > CPU_WATCH_MAX_USEC)
    cpu_left_usec = CPU_WATCH_MAX_USEC;
  uint64_t wait_ns = cpu_left_usec * 1000000 / rate_millicores;
  run->cpu_watch.at_ns = esb_now_ns() + (wait_ns > CPU_WATCH_MIN_NS ? wait_ns : CPU_WATCH_MIN_NS);
  esb_timer_start(run->loop, &run->cpu_watch);
}

static void watch_cpu(void *userdata) {
  struct esb_local_run *run = userdata;
  struct esb_exec *e = &run->exec;
  uint64_t budget_usec = run->plan->local.limits.cpu_secs * 1000000;
  switch (esb_exec_phase(e)) {
  case ESB_EXEC_STARTING: /* its child may run already, not yet seen to by the loop */
    watch_cpu_at(run, 0, 0);
    return;
  case ESB_EXEC_ENDING:
    return;
  case ESB_EXEC_RUNNING:
    break;
  }
  int64_t used = run->cgroup_ready ? esb_cgroup_cpu_usec(&run->cgroup) : -1;
  if (used < 0)
    return; /* nothing counts the run: RLIMIT_CPU does, per process */
  if ((uint64_t)used >= budget_usec) {
    run->cpu_exceeded = true;
    esb_exec_kill(e);
    return;
  }
  watch_cpu_at(run, budget_usec - (uint64_t)used, esb_cgroup_cpu_rate(&run->cgroup));
}

/* Whether the run's cgroup counts its CPU time for the budget. */
static bool counts_cpu(const struct esb_plan *plan) {
  return plan->local.limits.cpu_secs && plan->local.cgroups && plan->local.memory_bytes;
}

static void start_cpu_watch(struct esb_local_run *run) {
  if (!counts_cpu(run->plan))
    return;
  run->cpu_watch = (struct esb_timer){ .fire = watch_cpu, .userdata = run };
  watch_cpu_at(run, run->plan->local.limits.cpu_secs * 1000000, 0);
}

/* A limit the run was held to less strictly than the plan asked, one
 * warning each: no failure to set one up is dropped. */
static void warn_degraded(const struct esb_local_run *run, struct esb_result *r) {
  const struct esb_local_settings *ls = &run->plan->local;
  bool refused = run->cgroup_refused.code != ESB_OK;
  if (refused)
    esb_result_warn(r, "no cgroup for the run (%s): its memory limit was the address space's (RLIMIT_AS)",
                    run->cgroup_refused.message);
  if (ls->cpu_millicores && !run->cpu_rate_held)
    esb_result_warn(r, "cpu_millicores was not held: %s",
                    run->cgroup_ready ? "the run's cgroup has no CPU controller" : "no cgroup for the run");
  if (ls->limits.cpu_secs && run->seen.cpu_time_ms < 0)
    esb_result_warn(r, "cpu_time_secs was a limit per process (RLIMIT_CPU), not of the whole run: no cgroup "
                    "counted the run's CPU time");
}

/* The cgroup's word into the result. The OOM killer ended the program (or
 * the shell around it saw its child die of SIGKILL): what Kubernetes
 * reports as OOMKilled. */
static void note_cgroup(struct esb_local_run *run, struct esb_result *r) {
  bool killed = (r->status == ESB_STATUS_SIGNALED && r->signal == SIGKILL) ||
                (r->status == ESB_STATUS_EXITED && r->exit_code == 128 + SIGKILL);
  if (run->seen.oom_killed && killed)
    esb_result_oom_killed(r);
  if (run->cpu_exceeded && r->status == ESB_STATUS_TIMED_OUT)
    esb_result_cpu_time_exceeded(r);
  if (r->status == ESB_STATUS_ERROR)
    return;
  warn_degraded(run, r);
  if (run->seen.cpu_time_ms >= 0)
    r->cpu_time_ms = run->seen.cpu_time_ms;
  if (run->seen.memory_peak_bytes >= 0)
    r->memory_peak_bytes = run->seen.memory_peak_bytes;
}

static int make_workdir(struct esb_local_run *run, struct esb_error *err) {
  const char *base = getenv("TMPDIR");
  if (!base || base[0] != '/')
    base = "/tmp";
  if (asprintf(&run->tmpdir, "%s/echo-sandbox-XXXXXX", base) < 0) {
    run->tmpdir = NULL;
    esb_error_set(err, ESB_E_SYSTEM, "out of memory");
    return -1;
  }
  if (!mkdtemp(run->tmpdir)) {
    esb_error_errno(err, ESB_E_SYSTEM, "creating the working dir under %s", base);
    free(run->tmpdir);
    run->tmpdir = NULL;
    return -1;
  }
  return 0;
}

/* The working dir goes to the program's uid only once the request's files
 * are in: until then it is mkdtemp's 0700 of ours, which no other user (a
 * sandbox of another run among them) can enter to swap a directory for a
 * link while we write. */
static int hand_over_workdir(struct esb_local_run *run, struct esb_error *err) {
  if (geteuid() == 0 && chown(run->tmpdir, run->sandbox.uid, run->sandbox.gid) < 0) {
    esb_error_errno(err, ESB_E_SANDBOX_SETUP, "handing the working dir to uid %u", (unsigned)run->sandbox.uid);
    return -1; /* removed with the run's host side */
  }
  return 0;
}

static int build_env(struct esb_local_run *run, const struct esb_plan *plan, const char *dir) {
  struct esb_strv env = ESB_STRV_INIT;
  bool has_home = false;
  for (char **e = plan->env; e && *e; e++) {
    has_home |= strncmp(*e, "HOME=", 5) == 0;
    if (esb_strv_push(&env, *e) < 0)
      goto oom;
  }
  if (!has_home) {
    char *home;
    if (asprintf(&home, "HOME=%s", dir) < 0 || esb_strv_take(&env, home) < 0)
      goto oom;
  }
  /* The network by name: every client that follows these finds the proxy
   * (backend/egress_proxy.h); one that does not reaches nothing. */
  static const char *const proxy_vars[] = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                                           "http_proxy", "https_proxy", "all_proxy"};
  for (size_t i = 0; plan->egress_allow && i < sizeof proxy_vars / sizeof proxy_vars[0]; i++) {
    char *var;
    if (asprintf(&var, "%s=%s", proxy_vars[i], ESB_EGRESS_PROXY_URL) < 0 || esb_strv_take(&env, var) < 0)
      goto oom;
  }
  /* Credentials added outside: the run's CA is the program's to trust
   * (backend/egress_inject.h), with the host's store in the bundle. */
  const struct { const char *var, *file; } ca_vars[] = {
    {"SSL_CERT_FILE", ESB_EGRESS_BUNDLE_FILE}, {"REQUESTS_CA_BUNDLE", ESB_EGRESS_BUNDLE_FILE},
    {"CURL_CA_BUNDLE", ESB_EGRESS_BUNDLE_FILE}, {"NODE_EXTRA_CA_CERTS", ESB_EGRESS_CA_FILE}};
  for (size_t i = 0; plan->n_egress_inject && i < sizeof ca_vars / sizeof ca_vars[0]; i++) {
    char *var;
    if (asprintf(&var, "%s=%s/%s", ca_vars[i].var, dir, ca_vars[i].file) < 0 || esb_strv_take(&env, var) < 0)
      goto oom;
  }
  if (!(run->env = esb_strv_detach(&env)))
    return -1;
  return 0;
oom:
  esb_strv_clear(&env);
  return -1;
}

void esb_local_sandbox_for(const struct esb_plan *plan, bool fallback, struct esb_sandbox *sb) {
  const struct esb_local_settings *ls = &plan->local;
  bool root = geteuid() == 0;
  *sb = (struct esb_sandbox){ .switch_ids = root, .uid = ls->uid, .gid = ls->gid, .limits = ls->limits };
  sb->limits.address_space = ls->memory_bytes; /* until a cgroup takes the limit (ready_cgroups) */
  if (plan->collect.n_patterns)
    sb->collect = &plan->collect; /* its fd is the run's (esb_local_start) */
  if (fallback || ls->isolation == ESB_ISOLATION_RLIMITS)
    return; /* rlimits, and other ids when we are root */
  sb->namespaces = all_namespaces; /* network: a namespace of its own all the same */
  sb->inner_uid = root ? ls->uid : 65534;
  sb->inner_gid = root ? ls->gid : 65534;
  sb->mounts = ls->mounts;
  sb->n_mounts = ls->n_mounts;
  sb->workdir = plan->working_dir ? plan->working_dir : ls->working_dir;
  sb->workdir_size_bytes = ls->workdir_size_bytes;
  sb->files = plan->files;
  sb->n_files = plan->n_files;
  sb->tmp_size_bytes = ls->tmp_size_bytes;
  sb->hostname = "echo-sandbox";
}

/* The run's own host uid, where the policy gives a range and we are root
 * (engine/runtime/uid_slot.h): taken once, it holds for the run's sandbox and a
 * start again without namespaces alike. 0, or -1 with the result saying
 * why. */
static int own_host_ids(struct esb_local_run *run, const struct esb_plan *plan) {
  if (!run->sandbox.switch_ids || !plan->local.uid_count ||
      !esb_uid_slot_usable(plan->local.uid_first, plan->local.uid_count))
    return 0;
  struct esb_error err = ESB_ERROR_INIT;
  if (run->uid_slot.fd < 0 &&
      esb_uid_slot_take(plan->local.uid_first, plan->local.uid_count, &run->uid_slot, &err) < 0) {
    esb_result_fail_error(&run->exec.result, &err);
    return -1;
  }
  run->sandbox.uid = run->uid_slot.uid;
  run->sandbox.gid = (gid_t)run->uid_slot.uid;
  run->sandbox.owns_userns = true;
  return 0;
}

/* Memory, pids and the CPU rate by cgroup where the host lets us: then the
 * address space is left alone. Without a cgroup, RLIMIT_AS stands in, and
 * there is no CPU rate limit (RLIMIT_CPU still bounds the CPU time). */
static bool wants_cgroups(const struct esb_plan *plan) {
  return plan->local.cgroups && plan->local.memory_bytes;
}

/* On whichever thread starts the child: the file work of readying the
 * cgroup an idle one taken from the pool or a new one. */
static void make_cgroups(void *userdata) {
  struct esb_local_run *run = userdata;
  const struct esb_plan *plan = run->plan;
  const struct esb_rlimits *l = &plan->local.limits;
  if (!run->cgroup_ready) {
    struct esb_cgroup_limits limits = { .memory_bytes = plan->local.memory_bytes, .max_pids = l->processes,
                                        .cpu_millicores = plan->local.cpu_millicores,
                                        .count_cpu = counts_cpu(plan),
                                        .pids_by_uid = run->uid_slot.fd >= 0 && l->processes };
    struct esb_error *refused = &run->cgroup_refused;
    /* An engine with no pool of its own (one run: the CLI's run) takes a
     * slot of the pool engines share (engine/cgroup.h). */
    int rc = run->cgroup_pool ? esb_cgroup_ready(&run->cgroup, &limits, refused)
                              : esb_cgroup_claim(&run->cgroup, &limits, refused);
    if (rc < 0) {
      refused->code = ESB_E_SANDBOX_SETUP; /* said in a warning: the run goes on with rlimits */
      return;
    }
    run->cgroup_ready = true;
  }
  run->cpu_rate_held = esb_cgroup_cpu_rate(&run->cgroup) > 0;
  run->sandbox.cgroup_procs = run->cgroup.procs;
  run->sandbox.n_cgroup_procs = ESB_CGROUP__COUNT;
  run->sandbox.cgroup_dir = run->cgroup.version == ESB_CGROUP_V2 ? &run->cgroup.dir_fd : NULL;
  run->sandbox.limits.address_space = 0;
  /* The cgroup holds the run to its CPU time (watch_cpu): RLIMIT_CPU,
   * a second later, only backs it up, rather than race it per process. */
  if (l->cpu_secs && esb_cgroup_counts_cpu(&run->cgroup))
    run->sandbox.limits.cpu_secs = l->cpu_secs + 1;
}

/* Before the start: a sandbox with a user namespace takes its cgroups late
 * (esb_sandbox.make_cgroups), once it builds itself, so that making them
 * costs a run nothing where a second core is free; one without (isolation
 * "rlimits") is started in them. */
static void ready_cgroups(struct esb_exec *exec, void *userdata) {
  (void)exec;
  struct esb_local_run *run = userdata;
  bool late = wants_cgroups(run->plan) && (run->sandbox.namespaces & ESB_NS_USER);
  run->sandbox.make_cgroups = late ? make_cgroups : NULL;
  run->sandbox.make_cgroups_arg = late ? run : NULL;
  if (late) {
    /* The engine's own place first (once a process): on cgroup v2 an
     * engine alone in its cgroup moves into a leaf of it, and a child
     * cloned before that would hold the cgroup where the runs' go. */
    struct esb_cgroup_host host;
    esb_cgroup_setup(&host);
  } else if (wants_cgroups(run->plan)) {
    make_cgroups(run);
  }
}

/* network: true: pasta on the sandbox's network namespace, before it goes on. */
static int attach_network(pid_t child, void *arg, struct esb_error *err) {
  struct esb_local_run *run = arg;
  return esb_netstack_attach(&run->net, child, err);
}

/* The network by name: the proxy listens in the sandbox's namespace
 * before it goes on. */
static int attach_egress(pid_t child, void *arg, struct esb_error *err) {
  struct esb_local_run *run = arg;
  return esb_egress_helper_start(&run->egress, child, err);
}

/* Whether the start failed because the host refuses namespaces: the errno
 * of a refused clone or unshare. A start the policy or the request failed
 * (a mount it may not make: EINVAL too) is not the host's refusal. */
static bool namespaces_refused(const struct esb_exec *e) {
  int err = e->start_error;
  if (e->start_err.code == ESB_E_POLICY || e->start_err.code == ESB_E_INVALID_REQUEST)
    return false;
  return err == EPERM || err == EINVAL || err == ENOSPC || err == EUSERS || err == EACCES;
}

/* The request's files into the fresh host working dir, before the program
 * starts and before the dir is the program's (hand_over_workdir): nothing
 * but us can have written there yet (engine/sandbox/rootfs.h). */
static int write_host_files(struct esb_local_run *run, const struct esb_plan *plan, struct esb_error *err) {
  if (!plan->n_files)
    return 0;
  int dir = open(run->tmpdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir < 0) {
    esb_error_errno(err, ESB_E_SANDBOX_SETUP, "opening the working dir");
    return -1;
  }
  uid_t uid = geteuid() == 0 ? run->sandbox.uid : (uid_t)-1; /* -1: as is */
  gid_t gid = geteuid() == 0 ? run->sandbox.gid : (gid_t)-1;
  int rc = 0;
  for (size_t i = 0; i < plan->n_files && rc == 0; i++) {
    const struct esb_file *f = &plan->files[i];
    char path[ESB_FILE_PATH_MAX + 1];
    snprintf(path, sizeof path, "%s", f->path);
    for (char *slash = strchr(path, '/'); slash && rc == 0; slash = strchr(slash + 1, '/')) {
      *slash = '\0';
      rc = esb_rootfs_make_dir_at(dir, path, uid, gid);
      *slash = '/';
    }
    if (rc == 0)
      rc = esb_rootfs_write_file_at(dir, path, f->data, f->len, f->mode & 0777, uid, gid);
    if (rc < 0)
      esb_error_errno(err, ESB_E_SANDBOX_SETUP, "writing the request's file '%s'", f->path);
  }
  close(dir);
  return rc;
}

/* A host working dir for a run without namespaces, and its environment. */
static int use_host_workdir(struct esb_local_run *run, const struct esb_plan *plan) {
  struct esb_error err = ESB_ERROR_INIT;
  struct esb_exec *e = &run->exec;
  if (make_workdir(run, &err) < 0 || write_host_files(run, plan, &err) < 0 || hand_over_workdir(run, &err) < 0) {
    esb_result_fail_error(&e->result, &err);
    return -1;
  }
  esb_strv_free(run->env);
  run->env = NULL;
  if (build_env(run, plan, run->tmpdir) < 0) {
    esb_result_fail(&e->result, ESB_E_SYSTEM, "out of memory");
    return -1;
  }
  run->exec_opts.dir = run->tmpdir;
  run->exec_opts.env = (const char *const *)run->env;
  return 0;
}

/* What a run holds on the host besides its child: the network stack, the
 * cgroups, the host working dir. */
static void release_host_side(struct esb_local_run *run) {
  esb_timer_stop(run->loop, &run->cpu_watch);
  esb_netstack_detach(&run->net);
  esb_egress_helper_finish(&run->egress, NULL);
  /* Without a pid namespace what the run left behind lives on as its uid */
  if (!(run->sandbox.namespaces & ESB_NS_PID))
    esb_uid_slot_end_processes(&run->uid_slot);
  if (run->collect_fd >= 0) /* read back once the child was reaped */
    close(run->collect_fd);
  run->collect_fd = -1;
  esb_cgroup_release(run->cgroup_pool, &run->cgroup);
  run->cgroup_refused = (struct esb_error)ESB_ERROR_INIT;
  run->cpu_rate_held = false;
  if (run->tmpdir) {
    struct esb_error err = ESB_ERROR_INIT;
    if (remove_workdir(&run->sandbox, run->tmpdir, &err) < 0) /* said, not dropped */
      esb_result_warn(&run->exec.result, "%s", err.message);
    free(run->tmpdir);
    run->tmpdir = NULL;
  }
  esb_uid_slot_release(&run->uid_slot); /* last: the removal above ran as it */
}

/* The sandbox's child could not be started (exec.start_error). Where the
 * policy's isolation is best_effort and the host refuses namespaces, the run
 * starts again without them. Returns 0 when it did; otherwise -1, with the
 * result saying why. */
static int start_failed(struct esb_local_run *run) {
  const struct esb_plan *plan = run->plan;
  struct esb_exec *e = &run->exec;
  bool refused = namespaces_refused(e);
  /* Without a network namespace the program would have the host's network:
   * the network by name never runs so. */
  if (plan->local.isolation != ESB_ISOLATION_BEST_EFFORT || !refused || plan->working_dir || plan->egress_allow) {
    if (refused)
      esb_result_fail(&e->result, ESB_E_SANDBOX_SETUP,
                      "this host refuses the namespaces the sandbox needs (%s) and the policy "
                      "requires them", e->result.error_message ? e->result.error_message : "clone");
    return -1;
  }
  const struct sock_fprog *filter = run->sandbox.seccomp;
  esb_netstack_detach(&run->net);
  esb_local_sandbox_for(plan, true, &run->sandbox);
  run->sandbox.seccomp = filter;
  if (own_host_ids(run, plan) < 0)
    return -1;
  esb_result_release(&e->result);
  e->result.sandbox_type = "local";
  e->result.isolation = "rlimits";
  if (run->collect_fd >= 0) {
    run->sandbox.collect_fd = run->collect_fd;
    if (ftruncate(run->collect_fd, 0) < 0)
      return -1;
  }
  if (use_host_workdir(run, plan) < 0)
    return -1;
  return esb_exec_start(run->loop, e, &run->exec_opts); /* the result's isolation says "rlimits" */
}

static void pass_output(struct esb_exec *exec, int stream, const char *data, size_t len, void *userdata) {
  (void)exec;
  struct esb_local_run *run = userdata;
  run->output.fn(stream, data, len, run->output.userdata);
}

static void finished(struct esb_exec *exec, void *userdata) {
  struct esb_local_run *run = userdata;
  if (exec->start_error && start_failed(run) == 0)
    return; /* started again without namespaces: this runs again at its end */
  note_cgroup(run, &exec->result);
  if (run->plan->egress_allow) { /* every connection ended first: the ledger is whole */
    exec->result.egress.wanted = true;
    if (esb_egress_helper_finish(&run->egress, &exec->result.egress) < 0)
      esb_result_warn(&exec->result, "the egress proxy's ledger could not be read whole: left_off counts what it "
                      "did not say");
  }
  if (run->collect_fd >= 0 && exec->result.status != ESB_STATUS_ERROR) {
    exec->result.files = run->collected; /* moved */
    run->collected = (struct esb_collected){ 0 };
    exec->result.files.wanted = true;
    if (run->collect_errno)
      esb_result_warn(&exec->result, "the run's files (collect) could not be read back (%s): none are listed",
                      strerror(run->collect_errno));
  }
  esb_cgroup_pool_put(run->cgroup_pool, &run->cgroup); /* read_cgroup settled it */
  run->cgroup_ready = false;
  run->cgroup_refused = (struct esb_error)ESB_ERROR_INIT;
  run->cpu_rate_held = false;
  release_host_side(run);
  if (run->on_done)
    run->on_done(run, run->userdata);
}

/* The run's network: pasta and the rules of its namespace, attached before
 * the child is released. 0, or -1 with the result failed. */
static int prepare_network(struct esb_local_run *run, const struct esb_plan *plan) {
  struct esb_error err = ESB_ERROR_INIT;
  const struct esb_local_settings *ls = &plan->local;
  /* pasta, where it can run unprivileged, runs as the run's own host ids */
  if (esb_netstack_prepare(&run->net, ls->network_allow, ls->n_network_allow, run->sandbox.uid,
                           run->sandbox.gid, run->sandbox.owns_userns, &err) < 0) {
    esb_result_fail_error(&run->exec.result, &err);
    return -1;
  }
  run->sandbox.net_rules = run->net.rules;
  run->sandbox.n_net_rules = run->net.n_rules;
  run->sandbox.before_release = attach_network;
  run->sandbox.before_release_arg = run;
  return 0;
}

/* The network by name: the proxy's program (backend/egress_helper.h)
 * started and listening once the sandbox's namespace is there. 0, or -1
 * with the result failed. */
static int prepare_egress(struct esb_local_run *run) {
  if (!(run->sandbox.namespaces & ESB_NS_NET)) {
    esb_result_fail(&run->exec.result, ESB_E_POLICY, "limits.network.allow: the policy's isolation \"rlimits\" "
                    "leaves the program the host's network, so no allow list can hold it");
    return -1;
  }
  if (!esb_install_program(ESB_PROGRAM_EGRESS)) {
    esb_result_fail(&run->exec.result, ESB_E_SANDBOX_SETUP, "limits.network.allow: echo-sandbox-egress, the "
                    "proxy's program, is not installed beside the engine");
    return -1;
  }
  struct esb_error err = ESB_ERROR_INIT;
  run->egress.on_seen = run->output.on_egress;
  run->egress.seen_userdata = run->output.userdata;
  if (esb_egress_helper_prepare(&run->egress, run->plan, &err) < 0) {
    esb_result_fail_error(&run->exec.result, &err);
    return -1;
  }
  if (esb_egress_helper_sandbox_files(&run->egress, run->sandbox.files, run->sandbox.n_files, &run->sandbox.files,
                                      &run->sandbox.n_files) < 0) {
    esb_result_fail(&run->exec.result, ESB_E_SYSTEM, "out of memory");
    return -1;
  }
  run->sandbox.before_release = attach_egress;
  run->sandbox.before_release_arg = run;
  return 0;
}

/* The proxy said something while the run goes on: its verdicts, told. */
static bool poll_egress(struct esb_exec *exec, void *userdata) {
  (void)exec;
  struct esb_local_run *run = userdata;
  return esb_egress_helper_poll(&run->egress);
}

/* The rest of what the exec runs (its dir and env are the working dir's:
 * use_host_workdir, or the sandbox's own). */
static void exec_options_for(struct esb_local_run *run, const struct esb_plan *plan) {
  struct esb_exec_options *o = &run->exec_opts;
  o->before_start = ready_cgroups;
  o->after_exit = after_exit;
  o->argv = (const char *const *)plan->argv;
  o->sandbox = &run->sandbox;
  o->stdin_data = plan->stdin_data;
  o->stdin_len = plan->stdin_len;
  o->stdin_fd = plan->stdin_fd;
  o->timeout_ms = plan->timeout_ms;
  o->kill_grace_ms = plan->kill_grace_ms;
  o->max_output_bytes = plan->max_output_bytes;
  o->on_done = finished;
  o->userdata = run;
  if (run->output.fn)
    o->on_output = pass_output;
  o->sink_fds[0] = run->output.fds[0];
  o->sink_fds[1] = run->output.fds[1];
  if (run->egress.started && run->egress.on_seen) {
    o->aux_fd = run->egress.child.out;
    o->on_aux = poll_egress;
  }
}

int esb_local_start(struct esb_local_run *run, struct esb_loop *loop, const struct esb_plan *plan) {
  struct esb_exec *e = &run->exec;
  struct esb_error err = ESB_ERROR_INIT;
  e->result.sandbox_type = "local";
  run->loop = loop;
  run->plan = plan;
  run->cgroup_pool = loop->cgroup_pool;
  esb_local_sandbox_for(plan, false, &run->sandbox);
  if (own_host_ids(run, plan) < 0)
    return -1;
  if (esb_seccomp_program(plan->local.seccomp, &run->sandbox.seccomp, &err) < 0) {
    esb_result_fail_error(&e->result, &err);
    return -1;
  }
  if (run->sandbox.namespaces) {
    /* The working dir is a path inside: a tmpfs the sandbox makes there. */
    if (esb_rootfs_check_workdir(plan->local.mounts, plan->local.n_mounts, run->sandbox.workdir, &err) < 0) {
      esb_result_fail_error(&e->result, &err);
      return -1;
    }
    if (build_env(run, plan, run->sandbox.workdir) < 0) {
      esb_result_fail(&e->result, ESB_E_SYSTEM, "out of memory");
      goto fail;
    }
    run->exec_opts.dir = run->sandbox.workdir;
    run->exec_opts.env = (const char *const *)run->env;
  } else if (plan->working_dir) {
    esb_result_fail(&e->result, ESB_E_INVALID_REQUEST,
                    "working_dir %s: the policy's isolation \"rlimits\" gives the program no filesystem of "
                    "its own to make it in", plan->working_dir);
    return -1;
  } else if (use_host_workdir(run, plan) < 0) {
    goto fail;
  }
  if (run->sandbox.namespaces && plan->local.network && prepare_network(run, plan) < 0)
    goto fail;
  if (plan->egress_allow && prepare_egress(run) < 0)
    goto fail;
  if (plan->collect.n_patterns) {
    if ((run->collect_fd = memfd_create("echo-sandbox-collect", MFD_CLOEXEC)) < 0) {
      esb_result_fail(&e->result, ESB_E_SYSTEM, "memfd_create: %s", strerror(errno));
      goto fail;
    }
    run->sandbox.collect_fd = run->collect_fd;
  }
  if (wants_cgroups(plan))
    esb_cgroup_pool_take(run->cgroup_pool, &run->cgroup);
  exec_options_for(run, plan);
  e->result.isolation = plan->local.isolation == ESB_ISOLATION_RLIMITS ? "rlimits" : "namespaces";
  if (esb_exec_start(loop, e, &run->exec_opts) == 0 || start_failed(run) == 0) {
    start_cpu_watch(run);
    return 0;
  }
fail:
  release_host_side(run);
  return -1;
}

void esb_local_release(struct esb_local_run *run) {
  release_host_side(run); /* a tmpdir is left only when the run never completed */
  esb_collected_release(&run->collected);
  esb_strv_free(run->env);
  run->env = NULL;
}

struct plan_run {
  struct esb_local_run run;
  const struct esb_plan *plan;
};

static int start_plan(struct esb_loop *loop, void *arg) {
  struct plan_run *x = arg;
  return esb_local_start(&x->run, loop, x->plan);
}

void esb_local_run_plan(const struct esb_plan *plan, struct esb_result *result, int interrupt_fd) {
  struct plan_run x = { .run = ESB_LOCAL_RUN_INIT, .plan = plan };
  esb_loop_run_job(interrupt_fd, start_plan, &x);
  esb_result_move(result, &x.run.exec.result);
  esb_local_release(&x.run);
}
