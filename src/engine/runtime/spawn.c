#include "engine/sandbox/spawn.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/sandbox/child_wire.h"
#include "engine/sandbox/clone.h"
#include "engine/runtime/init_program.h"
#include "engine/runtime/exec_path.h"
#include "engine/sandbox/fd_passing.h"
#include "engine/fileio.h"
#include "engine/sandbox/sandbox_child.h"
#include "engine/strv.h"

static void close_fd(int *fd) {
  if (*fd >= 0) {
    close(*fd);
    *fd = -1;
  }
}

/* A close-on-exec pipe whose ends are both above stdio, so that placing the
 * child's 0/1/2 can never clobber one of them. */
static int pipe_above_stdio(int fds[2]) {
  if (pipe2(fds, O_CLOEXEC) < 0)
    return -1;
  for (int i = 0; i < 2; i++) {
    if (fds[i] > 2)
      continue;
    int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
    if (moved < 0) {
      close(fds[0]);
      close(fds[1]);
      return -1;
    }
    close(fds[i]);
    fds[i] = moved;
  }
  return 0;
}

static int set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Everything the child needs, allocated before the clone. */
struct prepared {
  struct esb_child_plan plan;
  char **exec_paths;
  int child_ends[3];   /* fds that go to the child's stdio and that we close after */
  int report_w, sync_r, sync_w;
  bool made_pipe[3];   /* our end of a pipe we made sits in the child struct */
  struct esb_rootfs rootfs; /* the sandbox's root, with ESB_NS_MOUNT */
};

static void prepared_release(struct prepared *pr) {
  esb_strv_free(pr->exec_paths);
  for (int i = 0; i < 3; i++)
    close_fd(&pr->child_ends[i]);
  close_fd(&pr->report_w);
  close_fd(&pr->sync_r);
  close_fd(&pr->sync_w);
  esb_rootfs_release(&pr->rootfs);
}

/* stdio slot i: a pipe (our end into *ours), /dev/null, or a passed fd. */
static int prepare_stdio(struct prepared *pr, int i, int *ours) {
  if (*ours == ESB_CHILD_PIPE) {
    int fds[2];
    if (pipe_above_stdio(fds) < 0)
      return -1;
    int mine = i == 0 ? fds[1] : fds[0], theirs = i == 0 ? fds[0] : fds[1];
    if (set_nonblock(mine) < 0) {
      close(fds[0]);
      close(fds[1]);
      return -1;
    }
    *ours = mine;
    pr->child_ends[i] = theirs;
    pr->made_pipe[i] = true;
  } else if (*ours == ESB_CHILD_NULL) {
    int fd = open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
    if (fd >= 0 && fd <= 2) {
      int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
      close(fd);
      fd = moved;
    }
    if (fd < 0)
      return -1;
    pr->child_ends[i] = fd;
  }
  pr->plan.stdio[i] = pr->child_ends[i] >= 0 ? pr->child_ends[i] : *ours;
  return 0;
}

/* The host ids the program runs as: the sandbox's, or ours. */
static void outer_ids(const struct esb_sandbox *sb, uid_t *uid, gid_t *gid) {
  *uid = sb->switch_ids ? sb->uid : geteuid();
  *gid = sb->switch_ids ? sb->gid : getegid();
}

/* The uid a sandbox's user namespace is made as: the run's own host uid
 * (engine/sandbox/clone.h says why), or -1: ours. */
static uid_t ns_owner(const struct esb_sandbox *sb) {
  if (!sb || !sb->switch_ids || !sb->owns_userns || !(sb->namespaces & ESB_NS_USER))
    return (uid_t)-1;
  return sb->uid;
}

/* Maps the sandbox's single uid/gid onto the host ids the program runs as. As
 * root any host id may be mapped; otherwise only our own, without setgroups. */
static int write_maps(pid_t pid, const struct esb_sandbox *sb, struct esb_error *err) {
  char path[64], line[64];
  uid_t outer_uid;
  gid_t outer_gid;
  outer_ids(sb, &outer_uid, &outer_gid);
  snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
  snprintf(line, sizeof line, "%u %u 1\n", (unsigned)sb->inner_uid, (unsigned)outer_uid);
  if (esb_write_file(path, line) < 0) {
    esb_error_errno(err, ESB_E_SANDBOX_SETUP, "writing %s", path);
    return -1;
  }
  if (!sb->switch_ids) {
    snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
    if (esb_write_file(path, "deny") < 0) {
      esb_error_errno(err, ESB_E_SANDBOX_SETUP, "writing %s", path);
      return -1;
    }
  }
  snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
  snprintf(line, sizeof line, "%u %u 1\n", (unsigned)sb->inner_gid, (unsigned)outer_gid);
  if (esb_write_file(path, line) < 0) {
    esb_error_errno(err, ESB_E_SANDBOX_SETUP, "writing %s", path);
    return -1;
  }
  return 0;
}

/* A namespace the run's uid owns is written to as its owner: the kernel
 * asks a map's writer for CAP_SYS_ADMIN over the namespace, which only its
 * owner has without CAP_SYS_ADMIN on the host (a unit's bounding set may
 * leave that out); the map of uid 0 to the owner's own uid needs nothing
 * more, the gid map our CAP_SETGID. */
static int write_id_maps(pid_t pid, const struct esb_sandbox *sb, struct esb_error *err) {
  uid_t owner = ns_owner(sb);
  struct esb_owner_saved ids;
  if (owner != (uid_t)-1 && esb_owner_enter(owner, &ids) < 0) {
    esb_error_errno(err, ESB_E_SANDBOX_SETUP, "taking the run's host uid %u to write its id maps", (unsigned)owner);
    return -1;
  }
  int rc = write_maps(pid, sb, err);
  if (owner != (uid_t)-1) {
    int saved = errno;
    esb_owner_leave(&ids);
    errno = saved;
  }
  return rc;
}

static int prepare(struct esb_child *c, struct prepared *pr, struct esb_error *err) {
  const struct esb_sandbox *sb = c->sandbox;
  struct esb_child_plan *plan = &pr->plan;
  plan->argv = (char *const *)c->argv;
  plan->envp = (char *const *)c->env;
  plan->dir = c->dir;
  plan->sandbox = sb;
  plan->sync_fd = -1;
  plan->collect_fd = sb && sb->collect && (sb->namespaces & ESB_NS_PID) ? sb->collect_fd : -1;
  plan->session = sb ? sb->session : NULL;
  if (!c->argv || !c->argv[0] || !c->argv[0][0]) {
    errno = EINVAL;
    esb_error_set(err, ESB_E_SYSTEM, "no program to run");
    return -1;
  }
  pr->exec_paths = esb_exec_candidates(c->argv[0], esb_env_path(c->env));
  if (!pr->exec_paths)
    goto sys;
  plan->exec_paths = (const char *const *)pr->exec_paths;
  if (prepare_stdio(pr, 0, &c->in) < 0 || prepare_stdio(pr, 1, &c->out) < 0 ||
      prepare_stdio(pr, 2, &c->err) < 0)
    goto sys;
  int fds[2];
  if (pipe_above_stdio(fds) < 0)
    goto sys;
  c->report = fds[0];
  pr->report_w = fds[1];
  plan->report_fd = fds[1];
  if (set_nonblock(c->report) < 0)
    goto sys;
  if (sb && (sb->namespaces & ESB_NS_USER)) {
    /* A socket: echo-sandbox-init talks back on it (engine/sandbox/child_wire.h). */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0 ||
        ((fds[0] <= 2 || fds[1] <= 2) && (close(fds[0]), close(fds[1]), errno = EMFILE)))
      goto sys;
    pr->sync_r = fds[1];
    pr->sync_w = fds[0];
    plan->sync_fd = fds[1];
    plan->cgroups_late = sb->make_cgroups != NULL;
  }
  if (sb && (sb->namespaces & ESB_NS_MOUNT)) {
    if (esb_rootfs_plan(sb, &pr->rootfs, err) < 0)
      return -1;
    plan->rootfs = &pr->rootfs;
  }
  return 0;
sys:
  esb_error_errno(err, ESB_E_SYSTEM, "preparing the child");
  return -1;
}

static bool use_init;

void esb_spawn_use_init(bool on) {
  use_init = on;
}

/* Starts echo-sandbox-init for the prepared plan (engine/runtime/init_program.h).
 * Returns its pid, or -1 with errno (ENOSYS: no vfork-like clone here; do
 * it in process). */
static pid_t start_init(struct esb_child *c, struct prepared *pr, int *pidfd, int cgroup_fd) {
  int plan = esb_child_wire_write(&pr->plan);
  if (plan < 0)
    return -1;
  int from[ESB_WIRE_FD__END];
  for (int i = 0; i < ESB_WIRE_FD__END; i++)
    from[i] = -1;
  for (int i = 0; i < 3; i++)
    from[i] = pr->plan.stdio[i];
  from[ESB_WIRE_FD_REPORT] = pr->report_w;
  from[ESB_WIRE_FD_SYNC] = pr->sync_r;
  from[ESB_WIRE_FD_PLAN] = plan;
  from[ESB_WIRE_FD_COLLECT] = pr->plan.collect_fd;
  const struct esb_sandbox *sb = c->sandbox;
  for (size_t i = 0; i < sb->n_cgroup_procs && i < ESB_CGROUP__COUNT; i++)
    from[ESB_WIRE_FD_CGROUP + i] = sb->cgroup_procs[i];
  /* The key of the root's template (engine/sandbox/rootfs.h), made with the ids
   * its files are owned by. Without one the run builds its root itself. */
  char *key = NULL;
  size_t key_len = 0;
  if (pr->plan.rootfs) {
    /* The policy's ids (the program's inside), not the run's own host
     * ids, which differ from run to run: one template serves every run of
     * the policy. A run with a host uid of its own does not map the
     * template's owner, which the kernel shows it as the overflow id
     * (nobody, 65534: the default policy's ids inside too). */
    uid_t uid = sb->inner_uid;
    gid_t gid = sb->inner_gid;
    if (!sb->switch_ids)
      outer_ids(sb, &uid, &gid);
    if (esb_child_wire_template_write(pr->plan.rootfs, uid, gid, &key, &key_len) < 0)
      key_len = 0;
  }
  pid_t pid = esb_init_start(from, cgroup_fd, key, key_len, esb_namespace_flags(sb->namespaces),
                             ns_owner(sb), pidfd);
  int saved = errno;
  free(key);
  close(plan);
  errno = saved;
  return pid;
}

/* The run's cgroups, made now that the child builds its sandbox, and sent
 * to it (struct esb_late_cgroups). A child already gone is not our error:
 * its report says what ended it. */
static int send_late_cgroups(const struct esb_sandbox *sb, int sock, struct esb_error *err) {
  sb->make_cgroups(sb->make_cgroups_arg);
  struct esb_late_cgroups said = { .magic = ESB_LATE_CGROUPS_MAGIC,
                                   .address_space = sb->limits.address_space,
                                   .cpu_secs = sb->limits.cpu_secs };
  int fds[ESB_CGROUP__COUNT], n = 0;
  for (size_t i = 0; i < sb->n_cgroup_procs && i < ESB_CGROUP__COUNT; i++) {
    if (sb->cgroup_procs[i] >= 0) {
      said.present |= 1u << i;
      fds[n++] = sb->cgroup_procs[i];
    }
  }
  if (esb_fd_send(sock, &said, sizeof said, fds, n) < 0 && errno != EPIPE && errno != ECONNRESET) {
    esb_error_errno(err, ESB_E_SYSTEM, "sending the child its cgroups");
    return -1;
  }
  return 0;
}

/* echo-sandbox-init says "u" once its namespaces exist. If it ended
 * instead, its report says why: a refused unshare is what a refused clone
 * was (errno kept, so isolation best_effort can do without namespaces). */
static int await_namespaces(struct esb_child *c, struct prepared *pr, struct esb_error *err) {
  char said = 0;
  ssize_t n;
  do n = read(pr->sync_w, &said, 1); while (n < 0 && errno == EINTR);
  if (n == 1 && said == 'u')
    return 0;
  struct esb_report r = { 0 };
  if (read(c->report, &r, sizeof r) == (ssize_t)sizeof r && r.kind == ESB_REPORT_SETUP_FAILED) {
    errno = r.error;
    if (r.step == esb_child_unshare_step())
      esb_error_set(err, ESB_E_SANDBOX_SETUP, "unshare: %s", strerror(r.error));
    else
      esb_error_set(err, ESB_E_SANDBOX_SETUP, "sandbox setup failed (%s): %s", esb_setup_step_name(r.step),
                    strerror(r.error));
  } else {
    errno = EPROTO;
    esb_error_set(err, ESB_E_SANDBOX_SETUP, "echo-sandbox-init ended before making the namespaces");
  }
  return -1;
}

/* Clones the child for the prepared plan, every signal blocked across the
 * clone: the child must not run a handler of ours before it has reset them
 * all. Through echo-sandbox-init where it is in use (*via_init), else in
 * process. Returns its pid, or -1 with errno. */
static pid_t clone_child(struct esb_child *c, struct prepared *pr, int *pidfd, bool *via_init) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  /* No exit signal, so no SIGCHLD: see the header. */
  int cgroup_fd = c->sandbox && c->sandbox->cgroup_dir ? *c->sandbox->cgroup_dir : -1;
  pid_t pid = -1;
  *via_init = false;
  if (c->sandbox && c->sandbox->namespaces) {
    if (use_init && esb_init_program() && !c->sandbox->session) {
      pr->plan.started_in_cgroup = cgroup_fd >= 0;
      pid = start_init(c, pr, pidfd, cgroup_fd);
      *via_init = pid >= 0 || errno != ENOSYS;
    }
  }
  if (!*via_init) {
    uid_t owner = ns_owner(c->sandbox);
    bool as_owner = owner != (uid_t)-1;
    struct esb_owner_saved ids;
    if (as_owner && esb_owner_enter(owner, &ids) < 0) {
      pid = -1;
    } else {
      pid = esb_clone(CLONE_PIDFD | (c->sandbox ? esb_namespace_flags(c->sandbox->namespaces) : 0), pidfd, 0,
                      cgroup_fd, &pr->plan.started_in_cgroup);
      if (pid == 0)
        esb_child_main(&pr->plan);
      if (as_owner) {
        int saved = errno;
        esb_owner_leave(&ids);
        errno = saved;
      }
    }
  }
  int saved = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = saved;
  return pid;
}

/* A child with a user namespace waits on its sync socket: once its
 * namespaces are there, its id maps are written and before_release run,
 * then it is released to build its sandbox, and its cgroups are made and
 * sent to it meanwhile (the late cgroups). */
static int sync_child(struct esb_child *c, struct prepared *pr, bool via_init, struct esb_error *err) {
  if (via_init && await_namespaces(c, pr, err) < 0)
    return -1;
  if (write_id_maps(c->pid, c->sandbox, err) < 0)
    return -1;
  if (c->sandbox->before_release &&
      c->sandbox->before_release(c->pid, c->sandbox->before_release_arg, err) < 0)
    return -1;
  if (write(pr->sync_w, "", 1) != 1)
    return esb_error_errno(err, ESB_E_SYSTEM, "releasing the child");
  if (pr->plan.cgroups_late && send_late_cgroups(c->sandbox, pr->sync_w, err) < 0)
    return -1;
  return 0;
}

int esb_child_start(struct esb_child *c, struct esb_error *err) {
  assert(c && c->pidfd < 0 && (c->pid <= 0 || c->reaped)); /* ESB_CHILD_INIT, or closed */
  struct prepared pr = { .child_ends = {-1, -1, -1}, .report_w = -1, .sync_r = -1, .sync_w = -1 };
  int saved;
  c->pid = -1;
  c->pidfd = -1;
  c->report = -1;
  c->reaped = false;
  if (prepare(c, &pr, err) < 0)
    goto fail;
  int pidfd = -1;
  bool via_init;
  pid_t pid = clone_child(c, &pr, &pidfd, &via_init);
  if (pid < 0) {
    esb_error_errno(err, ESB_E_SYSTEM, "clone");
    goto fail;
  }
  c->pid = (pid_t)pid;
  c->pidfd = pidfd;
  /* The child's end of the sync socket is the child's alone now: should it
   * end before it says "u" (its unshare refused), our read sees the end
   * instead of waiting for a byte that will never come. */
  close_fd(&pr.sync_r);
  /* The child makes its own session (so its group) first thing; until then
   * esb_child_kill reaches it through its pid, and it has started nothing. */
  if (pr.sync_w >= 0 && sync_child(c, &pr, via_init, err) < 0)
    goto kill;
  prepared_release(&pr);
  return 0;
kill:
  esb_child_close(c);
fail:
  saved = errno;
  int *ends[3] = { &c->in, &c->out, &c->err };
  for (int i = 0; i < 3; i++)
    if (pr.made_pipe[i])
      close_fd(ends[i]);
  prepared_release(&pr);
  close_fd(&c->report);
  errno = saved;
  return -1;
}

void esb_child_kill(struct esb_child *c, int sig, bool group) {
  if (c->pid <= 0 || c->reaped)
    return;
  if (group)
    kill(-c->pid, sig);
  /* The pid cannot be reused before we reap it; the pidfd is the belt to
   * those braces where the kernel (or valgrind) has pidfd_send_signal. */
  if (c->pidfd < 0 || (syscall(SYS_pidfd_send_signal, c->pidfd, sig, NULL, 0) < 0 && errno == ENOSYS))
    kill(c->pid, sig);
}

int esb_child_wait(int pidfd, bool nohang, struct esb_child_exit *out) {
  siginfo_t info;
  struct rusage ru;
  for (;;) {
    memset(&info, 0, sizeof info);
    memset(&ru, 0, sizeof ru);
    /* The system call, not glibc's waitid: only it gives the rusage. */
    long rc = syscall(SYS_waitid, P_PIDFD, pidfd, &info, WEXITED | __WALL | (nohang ? WNOHANG : 0), &ru);
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc < 0 && errno == ECHILD) {
      /* Someone else reaped it (a host's waitpid(-1)): gone, status lost;
       * the report pipe usually has the program's. */
      *out = (struct esb_child_exit){ .wstatus = 125 << 8, .cpu_time_ms = -1, .max_rss_bytes = -1 };
      return 1;
    }
    if (rc < 0)
      return -1;
    break;
  }
  if (info.si_pid == 0)
    return 0;
  out->cpu_time_ms = (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
                     (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
  out->max_rss_bytes = (int64_t)ru.ru_maxrss * 1024;
  out->wstatus = info.si_code == CLD_EXITED ? (info.si_status & 0xff) << 8 : info.si_status & 0x7f;
  return 1;
}

void esb_child_reaped(struct esb_child *c, const struct esb_child_exit *exit) {
  c->reaped = true;
  c->cpu_time_ms = exit->cpu_time_ms;
  c->max_rss_bytes = exit->max_rss_bytes;
}

int esb_child_reap(struct esb_child *c, int *wstatus, bool nohang) {
  if (c->reaped || c->pidfd < 0) {
    errno = ECHILD;
    return -1;
  }
  struct esb_child_exit exit;
  int rc = esb_child_wait(c->pidfd, nohang, &exit);
  if (rc == 1) {
    esb_child_reaped(c, &exit);
    *wstatus = exit.wstatus;
  }
  return rc;
}

void esb_child_close(struct esb_child *c) {
  if (c->pid > 0 && !c->reaped) {
    int status;
    esb_child_kill(c, SIGKILL, true);
    esb_child_reap(c, &status, false);
  }
  close_fd(&c->pidfd);
  close_fd(&c->report);
}
