/* The session's pid 1 (engine/sandbox/session_holder.h says what it does).
 *
 * Decisions of this first version, beside the header's:
 *  - The holder is an in-process clone of the engine that made the session
 *    (not echo-sandbox-init): it reads run plans with the same code
 *    (engine/sandbox/child_wire.h) and needs no wire of its own for the
 *    session's fds. It is single-threaded (a clone), so it may allocate.
 *  - A run's processes see the session's /proc (the run has a pid namespace
 *    of its own, not a /proc of its own): they cannot signal the holder,
 *    which is the init of an ancestor namespace with default dispositions
 *    (the kernel drops such signals from below), nor trace it (it holds
 *    capabilities they lack).
 *  - At most MAX_RUNS runs at once; one more is refused (its connection
 *    closed without a report: the engine says so). */
#include "engine/sandbox/session_holder.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/sandbox/child_wire.h"
#include "engine/sandbox/clone.h"
#include "engine/sandbox/fd_passing.h"
#include "engine/sandbox/sandbox_child.h"
#include "engine/sandbox/session_kernel.h"

static const char *const end_names[ESB_SESSION_END__COUNT] = {
  [ESB_SESSION_ALIVE] = "alive", [ESB_SESSION_END_TTL] = "ttl", [ESB_SESSION_END_IDLE] = "idle",
  [ESB_SESSION_END_DELETED] = "deleted", [ESB_SESSION_END_DIED] = "died", [ESB_SESSION_END_MEMORY] = "memory",
};

const char *esb_session_end_name(enum esb_session_end end) {
  return end < ESB_SESSION_END__COUNT ? end_names[end] : "unknown";
}

int esb_session_end_parse(const char *word, enum esb_session_end *end) {
  for (int i = 0; i < ESB_SESSION_END__COUNT; i++)
    if (strcmp(word, end_names[i]) == 0) {
      *end = (enum esb_session_end)i;
      return 0;
    }
  return -1;
}

#define MAX_RUNS 64

struct holder {
  const struct esb_session_hold *h;
  int sigfd, timerfd;
  int workdir;                    /* O_PATH: the working dir's tmpfs root (WORKDIR) */
  uint64_t ttl_at_ns, idle_at_ns; /* CLOCK_MONOTONIC */
  uint64_t runs;                  /* started so far */
  struct run {
    pid_t pid;
    int conn;                     /* -1 once DONE came (poll skips it) */
    bool killed;
    int cgroups[ESB_CGROUP__COUNT]; /* the run's cgroups' files: their slot's lock (engine/cgroup.h) */
    int n_cgroups;
  } active[MAX_RUNS];
  size_t n_active;
  pid_t warm;                     /* the next run's pid 1, made ahead; 0: none */
  int warm_sock;                  /* ours of its socket; -1: none */
  bool warm_failed;               /* one could not be made, or ended without a run: no more */
  uint32_t warm_print;            /* esb_session_filter_print of the filter it installed */
  struct sock_fprog ahead;        /* the filter the next is made with (its own copy; none: len 0):
                                     the session's, then that of the last run whose pid 1 had another */
  struct esb_kernels kernels;
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One write of one fixed-width line at the file's start, never truncated
 * first: a reader never finds the file empty or half of two lines. */
static void write_state(const struct holder *hs, enum esb_session_end end) {
  char line[ESB_SESSION_STATE_MAX];
  int n = snprintf(line, sizeof line, "%-8s %20llu\n", esb_session_end_name(end), (unsigned long long)hs->runs);
  if (pwrite(hs->h->state_fd, line, (size_t)n, 0) == n)
    return;
  /* Nothing to tell it to: `session show` then says "died". */
}

/* The session's end: said first, then pid 1 exits, and with it every
 * process of the session (the kernel's end of a pid namespace). */
_Noreturn static void end_session(struct holder *hs, enum esb_session_end end) {
  write_state(hs, end);
  _exit(0);
}

/* A run or a cell goes on: the session is not idle. */
static bool busy(const struct holder *hs) {
  return hs->n_active > 0 || esb_kernels_busy(&hs->kernels);
}

/* The one timer: the TTL, or the idle deadline while no run or cell goes on. */
static void arm_timer(struct holder *hs) {
  uint64_t at = hs->ttl_at_ns;
  if (!busy(hs) && hs->idle_at_ns < at)
    at = hs->idle_at_ns;
  struct itimerspec its = { .it_value = { .tv_sec = (time_t)(at / 1000000000u),
                                          .tv_nsec = (long)(at % 1000000000u) } };
  if (timerfd_settime(hs->timerfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
    end_session(hs, ESB_SESSION_END_DIED); /* a session nothing would end must not stay */
}

static void close_fds(int *fds, int n) {
  for (int i = 0; i < n; i++)
    close(fds[i]);
}

/* The run's cgroups (the engine's, below the session's): the plan says
 * which it has, the message's last fds are theirs, in order. -1 where
 * the two do not agree. */
static int take_cgroups(struct esb_child_wire *w, const int *fds, int n) {
  int next = ESB_SESSION_FD_CGROUP;
  for (int i = 0; i < ESB_CGROUP__COUNT; i++)
    if (w->cgroup_procs[i] >= 0)
      w->cgroup_procs[i] = next < n ? fds[next++] : -1;
  return next == n ? 0 : -1;
}

/* The run's pid 1, in a pid namespace of its own below the session's;
 * prepared: made ahead (warm_child), its mount namespace and /proc are
 * there already, and the filter `ahead`. */
_Noreturn static void run_child(struct esb_child_wire *w, const int *fds, bool prepared,
                                const struct sock_fprog *ahead) {
  struct esb_child_plan *p = &w->plan;
  for (int i = 0; i < 3; i++)
    p->stdio[i] = fds[ESB_SESSION_FD_STDIN + i];
  p->report_fd = fds[ESB_SESSION_FD_REPORT];
  p->collect_fd = p->collect_fd >= 0 ? fds[ESB_SESSION_FD_COLLECT] : -1; /* the plan's word */
  p->sync_fd = -1;
  if (prepared)
    esb_child_run_prepared(p, ahead);
  esb_child_run_in_session(p);
}

/* What esb_child_wire_read allocated, and w. */
static void free_wire(struct esb_child_wire *w) {
  if (!w)
    return;
  free(w->net_rules);
  free(w->bytes);
  free(w->vectors);
  free(w->rootfs.steps);
  free(w->seccomp.filter);
  free(w);
}

/* Makes `filter` (NULL: none) the one the next run's pid 1 is made with.
 * Where there is no memory for it, the one before stays: a run that wants
 * another lets that pid 1 go, as now. */
static void filter_ahead(struct holder *hs, const struct sock_fprog *filter) {
  size_t size = filter ? filter->len * sizeof *filter->filter : 0;
  struct sock_filter *copy = size ? malloc(size) : NULL;
  if (size && !copy)
    return;
  if (size)
    memcpy(copy, filter->filter, size);
  free(hs->ahead.filter);
  hs->ahead = (struct sock_fprog){ .len = size ? filter->len : 0, .filter = copy };
}

/* A RUN message's plan, its cgroups' fds in it; NULL where it is not one. */
static struct esb_child_wire *read_run(const int *fds, int n) {
  struct esb_child_wire *w = calloc(1, sizeof *w);
  if (w && esb_child_wire_read(fds[ESB_SESSION_FD_PLAN], w) == 0 && w->plan.sandbox && take_cgroups(w, fds, n) == 0)
    return w;
  free_wire(w);
  return NULL;
}

/* ---- the next run's pid 1, made ahead ------------------------------------
 *
 * What no request decides of a run's pid 1 (its pid namespace, its mount
 * namespace with a /proc of its own: most of the holder's work for a run)
 * is done before the run comes: the holder keeps one such pid 1 waiting,
 * made while no run or cell goes on (at its start, and once the run that
 * took the last has ended), so that it never takes a process of the
 * session's budget (max_processes) from a run that goes on: a run uses
 * what it used before, the waiting pid 1 becoming its own. It holds nothing
 * of the holder's but its socket: no run's connection or slot lock, so
 * its wait keeps nothing of another run open. The run's message comes to
 * it as the engine sent it, and all that the plan decides is done then,
 * as for a pid 1 made for the run (esb_child_run_prepared). It is a
 * process of the session's (its cgroups', its pid namespace's): it ends
 * with the session. Where one ends without a run (killed, or it could not
 * make its namespaces), the session's runs go on without one. */

_Noreturn static void warm_child(int sock, const struct sock_fprog *ahead) {
  esb_child_close_all_but(&sock, 1);
  if (esb_child_session_prepare(ahead) != 0)
    _exit(125);
  struct esb_session_msg m;
  int fds[ESB_SESSION_FD__MAX], n = 0;
  ssize_t got;
  do got = esb_fd_recv(sock, &m, sizeof m, fds, ESB_SESSION_FD__MAX, &n); while (got < 0 && errno == EINTR);
  if (got != (ssize_t)sizeof m || n < ESB_SESSION_FD_CGROUP)
    _exit(125); /* the holder let it go: no run comes */
  close(sock);
  struct esb_child_wire *w = read_run(fds, n);
  if (!w)
    esb_child_plan_unreadable(fds[ESB_SESSION_FD_REPORT]);
  run_child(w, fds, true, ahead);
}

/* Makes the next run's pid 1 where there is none. */
static void warm_up(struct holder *hs) {
  if (hs->warm > 0 || hs->warm_failed)
    return;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return;
  const struct sock_fprog *ahead = hs->ahead.len ? &hs->ahead : NULL;
  pid_t pid = esb_clone(CLONE_NEWPID, NULL, SIGCHLD, -1, NULL);
  if (pid == 0)
    warm_child(sv[1], ahead);
  close(sv[1]);
  if (pid < 0) {
    close(sv[0]);
    hs->warm_failed = true; /* the session's process or memory limit: runs need them more */
    return;
  }
  hs->warm = pid;
  hs->warm_sock = sv[0];
  hs->warm_print = esb_session_filter_print(ahead);
}

/* The waiting pid 1 is gone (handed a run, or it ended). */
static void let_warm_go(struct holder *hs) {
  if (hs->warm_sock >= 0)
    close(hs->warm_sock);
  hs->warm = 0;
  hs->warm_sock = -1;
}

/* Hands the run's message to the waiting pid 1: its pid, or -1 where there
 * is none (or it is gone: it is reaped as any). One whose filter is not
 * the one the message says the plan has is let go (killed, and reaped as
 * any): start_run makes the next with the run's. */
static pid_t start_warm(struct holder *hs, const struct esb_session_msg *m, const int *fds, int n) {
  pid_t pid = hs->warm;
  if (pid <= 0)
    return -1;
  if (m->seccomp != hs->warm_print) {
    let_warm_go(hs);
    kill(pid, SIGKILL);
    return -1;
  }
  int rc = esb_fd_send(hs->warm_sock, m, sizeof *m, fds, n);
  let_warm_go(hs);
  if (rc < 0) {
    kill(pid, SIGKILL);
    return -1;
  }
  return pid;
}

/* A RUN: its pid 1 started, the waiting one or a new one (its plan read
 * first). Returns the pid, or -1 (the connection is then closed: no
 * report tells the engine it was refused). */
static pid_t start_run(struct holder *hs, const struct esb_session_msg *m, const int *fds, int n) {
  if (n < ESB_SESSION_FD_CGROUP || hs->n_active == MAX_RUNS)
    return -1;
  pid_t warm = start_warm(hs, m, fds, n);
  if (warm > 0)
    return warm;
  struct esb_child_wire *w = read_run(fds, n);
  if (!w)
    return -1;
  if (esb_session_filter_print(w->plan.sandbox->seccomp) != esb_session_filter_print(hs->ahead.len ? &hs->ahead : NULL))
    filter_ahead(hs, w->plan.sandbox->seccomp); /* the session's runs have another than the last */
  pid_t pid = esb_clone(CLONE_NEWPID, NULL, SIGCHLD, -1, NULL);
  if (pid == 0)
    run_child(w, fds, false, NULL);
  if (pid < 0) {
    /* Said on the run's report pipe, as its pid 1 would: the session's
     * memory (its working dir's files count) or process limit, mostly.
     * Where the write fails too, the engine sees the run go without a word. */
    struct esb_report r = { .kind = ESB_REPORT_SETUP_FAILED, .step = esb_child_fork_step(), .error = errno };
    ssize_t said = write(fds[ESB_SESSION_FD_REPORT], &r, sizeof r);
    (void)said;
  }
  free_wire(w);
  return pid;
}

/* A connection's one message. */
static void serve(struct holder *hs, int conn) {
  struct esb_session_msg m;
  int fds[ESB_SESSION_FD__MAX], n = 0;
  ssize_t got = esb_fd_recv(conn, &m, sizeof m, fds, ESB_SESSION_FD__MAX, &n);
  if (got == (ssize_t)sizeof m && m.magic == ESB_SESSION_MAGIC && m.kind == ESB_SESSION_DELETE)
    end_session(hs, ESB_SESSION_END_DELETED);
  if (got == (ssize_t)sizeof m && m.magic == ESB_SESSION_MAGIC && m.kind == ESB_SESSION_CELL) {
    esb_kernels_cell(&hs->kernels, conn, &m, fds, n);
    close_fds(fds, n);
    return;
  }
  if (got == (ssize_t)sizeof m && m.magic == ESB_SESSION_MAGIC && m.kind == ESB_SESSION_WORKDIR) {
    esb_fd_send(conn, &m, sizeof m, &hs->workdir, 1); /* where it fails, the engine sees EOF */
    close_fds(fds, n);
    close(conn);
    return;
  }
  pid_t pid = -1;
  if (got == (ssize_t)sizeof m && m.magic == ESB_SESSION_MAGIC && m.kind == ESB_SESSION_RUN)
    pid = start_run(hs, &m, fds, n);
  if (pid < 0) {
    close_fds(fds, n);
    close(conn);
    return;
  }
  /* The run's cgroups' files stay open until its pid 1 is reaped: their
   * lock keeps the slot from another run while any process of this one
   * lives, though the engine that took it be gone. */
  int kept = n > ESB_SESSION_FD_CGROUP ? n - ESB_SESSION_FD_CGROUP : 0;
  close_fds(fds, n - kept);
  struct run *run = &hs->active[hs->n_active++];
  *run = (struct run){ .pid = pid, .conn = conn, .n_cgroups = kept };
  memcpy(run->cgroups, fds + ESB_SESSION_FD_CGROUP, (size_t)kept * sizeof *fds);
  hs->runs++;
  write_state(hs, ESB_SESSION_ALIVE);
}

static void accept_one(struct holder *hs) {
  int conn = accept4(hs->h->control_fd, NULL, NULL, SOCK_CLOEXEC);
  if (conn >= 0)
    serve(hs, conn);
}

/* Runs whose pid 1 ended: their connections closed, the idle clock
 * started once none is left. */
static void reap(struct holder *hs) {
  struct signalfd_siginfo si;
  while (read(hs->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
    ;
  pid_t pid;
  int status;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    if (esb_kernels_reaped(&hs->kernels, pid, status))
      continue;
    if (pid == hs->warm) {
      let_warm_go(hs);
      hs->warm_failed = true;
      continue;
    }
    for (size_t i = 0; i < hs->n_active; i++) {
      if (hs->active[i].pid != pid)
        continue;
      /* The slot's lock first: the engine, woken by the connection's
       * end, may hand the slot to the session's next run at once. */
      close_fds(hs->active[i].cgroups, hs->active[i].n_cgroups);
      if (hs->active[i].conn >= 0)
        close(hs->active[i].conn);
      hs->active[i] = hs->active[--hs->n_active];
      break;
    }
  }
  if (!busy(hs))
    hs->idle_at_ns = now_ns() + hs->h->idle_timeout_ms * 1000000u;
}

/* A word on a run's connection: TERM (the engine's deadline) goes to the
 * run's process group (the run's pid 1 made it: setsid), where the program
 * has its grace; pid 1 itself, the init of the run's pid namespace, takes
 * no SIGTERM from here. DONE (its pid 1 said it ended alone): the run's
 * cgroups' files and the connection are closed now, pid 1 left to end.
 * Anything else (the engine closed the connection: the grace is over, or
 * it went away) ends the run now: pid 1 is SIGKILLed and with it the run's
 * pid namespace, and reaped as any. */
static void hung_up(struct holder *hs, size_t i) {
  struct esb_session_msg m;
  int fds[1], n = 0;
  struct run *run = &hs->active[i];
  ssize_t got = esb_fd_recv(run->conn, &m, sizeof m, fds, 1, &n);
  close_fds(fds, n);
  bool word = got == (ssize_t)sizeof m && m.magic == ESB_SESSION_MAGIC;
  if (word && m.kind == ESB_SESSION_TERM) {
    kill(-run->pid, SIGTERM);
    return;
  }
  if (word && m.kind == ESB_SESSION_DONE) {
    close_fds(run->cgroups, run->n_cgroups);
    run->n_cgroups = 0;
    close(run->conn);
    run->conn = -1; /* not polled again; its pid 1 is reaped as any */
    return;
  }
  kill(hs->active[i].pid, SIGKILL);
  hs->active[i].killed = true; /* not polled again: its end comes as SIGCHLD */
}

static void timer_fired(struct holder *hs) {
  uint64_t ticks;
  if (read(hs->timerfd, &ticks, sizeof ticks) < 0 && errno == EAGAIN)
    return;
  uint64_t now = now_ns();
  if (now >= hs->ttl_at_ns)
    end_session(hs, ESB_SESSION_END_TTL);
  if (!busy(hs) && now >= hs->idle_at_ns)
    end_session(hs, ESB_SESSION_END_IDLE);
}

_Noreturn static void serve_forever(struct holder *hs) {
  for (;;) {
    if (!busy(hs))
      warm_up(hs);
    arm_timer(hs);
    struct pollfd pfd[3 + MAX_RUNS + ESB_SESSION_KERNELS];
    pfd[0] = (struct pollfd){ .fd = hs->h->control_fd, .events = POLLIN };
    pfd[1] = (struct pollfd){ .fd = hs->sigfd, .events = POLLIN };
    pfd[2] = (struct pollfd){ .fd = hs->timerfd, .events = POLLIN };
    for (size_t i = 0; i < hs->n_active; i++)
      pfd[3 + i] = (struct pollfd){ .fd = hs->active[i].killed ? -1 : hs->active[i].conn, .events = POLLIN };
    size_t n_active = hs->n_active;
    esb_kernels_poll(&hs->kernels, pfd + 3 + n_active);
    if (poll(pfd, 3 + n_active + ESB_SESSION_KERNELS, -1) < 0)
      continue; /* EINTR: nothing handles a signal here, but a stop/continue */
    if (esb_kernels_events(&hs->kernels, pfd + 3 + n_active) && !busy(hs))
      hs->idle_at_ns = now_ns() + hs->h->idle_timeout_ms * 1000000u; /* a cell is activity */
    for (size_t i = 0; i < n_active; i++)
      if (pfd[3 + i].revents)
        hung_up(hs, i); /* a word, EOF or a hangup: the engine is done with it */
    if (pfd[1].revents)
      reap(hs);
    if (pfd[2].revents)
      timer_fired(hs);
    if (pfd[0].revents)
      accept_one(hs);
  }
}

_Noreturn void esb_session_hold(const struct esb_child_plan *p) {
  const struct esb_session_hold *h = p->session;
  struct holder hs = { .h = h, .warm_sock = -1 };
  filter_ahead(&hs, p->sandbox->seccomp);
  esb_kernels_init(&hs.kernels);
  /* The session outlives whoever made it. */
  prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
  /* A second layer under the capabilities a run's processes lack: no
   * ptrace of the holder, and its /proc files (mem, fd, environ) are
   * root's of the session's user namespace, not its uid's. */
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  int keep[4 + ESB_CGROUP__COUNT + 1] = { h->control_fd, h->state_fd, p->report_fd };
  int n_keep = 3;
  for (int i = 0; i < ESB_CGROUP__COUNT + 1; i++)
    keep[n_keep++] = h->keep_fds[i];
  esb_child_close_all_but(keep, n_keep);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  hs.sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  hs.timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  hs.workdir = open(p->sandbox->workdir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  uint64_t now = now_ns();
  hs.ttl_at_ns = now + h->ttl_ms * 1000000u;
  hs.idle_at_ns = now + h->idle_timeout_ms * 1000000u;
  write_state(&hs, ESB_SESSION_ALIVE);
  struct esb_report ready = { .kind = ESB_REPORT_READY };
  if (hs.sigfd < 0 || hs.timerfd < 0 || hs.workdir < 0 ||
      write(p->report_fd, &ready, sizeof ready) != (ssize_t)sizeof ready)
    _exit(125); /* the engine sees no READY: the create fails */
  close(p->report_fd);
  serve_forever(&hs);
}
