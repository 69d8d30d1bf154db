/* A run in a local session (backend/local_session.h): its plan goes to the
 * session's holder with its stdio and report pipes (engine/sandbox/session_holder.h),
 * which starts it in a pid namespace of its own inside the session's
 * sandbox; here, a small poll loop moves its bytes and keeps its deadline.
 * The result is a run's, and who ended the run comes from what the engine
 * saw: a status on the report pipe (which the program cannot write: it is
 * pid 1's, closed before exec), its own deadline (SIGTERM to the run's
 * process group through the holder, SIGKILL of the run once the grace is
 * over), or the holder's end.
 *
 * What a one-shot run has, a session run has too:
 *  - the request's files (and the code, which goes as a file): written by
 *    the engine before the run, beneath the working dir's fd that the
 *    holder hands over (local_session_files.c: openat2 RESOLVE_BENEATH,
 *    never a path a run could change into a way out). Not in the run's
 *    own process: the files' bytes need not cross to the holder, and a
 *    refusal (a link planted where a file goes) is an error of the
 *    request, said before anything runs;
 *  - stdin from an fd (--stdin-file): that fd, as the run's stdin;
 *  - collect: the run's pid 1 walks the working dir once the program
 *    ended, as a one-shot run's does, into a memfd of ours;
 *  - cgroups of its own below the session's (the session's limits hold
 *    them all): its CPU time and peak memory, the OOM kills of its own
 *    processes only, and its own pids budget (max_processes), which no
 *    other run of the session can use up. RLIMIT_NPROC, counted per uid
 *    and so shared by every run of the session, is set only where the run
 *    has no pids cgroup.
 * A session's network is the session's, decided at its create: a run
 * asking for another is refused. */
#include "backend/local_session.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend/local.h"
#include "backend/local_session_files.h"
#include "engine/fileio.h"
#include "engine/runtime/clock.h"
#include "engine/runtime/exec_path.h"
#include "engine/contract/collect.h"
#include "engine/sandbox/child_wire.h"
#include "engine/sandbox/fd_passing.h"
#include "engine/sandbox/seccomp.h"
#include "engine/strv.h"

struct session_run {
  int in, out, err, report, conn, interrupt_fd;
  int stdin_fd;               /* the request's (--stdin-file), or -1 */
  int collect;                /* a memfd the run's pid 1 writes collected files to, or -1 */
  struct esb_cgroup cg;       /* the run's own, below the session's */
  bool has_cg;
  bool term_sent;             /* the deadline came: TERM went to the holder */
  uint32_t seccomp;           /* the plan's filter, as the RUN message says it (esb_session_filter_print) */
  uint64_t grace_ms, kill_at_ns;
  const char *stdin_data;
  size_t stdin_len, stdin_off;
  struct esb_report rep;
  size_t rep_got;
  bool killed, interrupted;
  bool lost;                  /* it ended with no word of its pid 1 (its status, its failure) */
  bool done_sent;             /* its pid 1 ended it alone: DONE went to the holder */
  uint64_t deadline_ns;       /* 0: none */
  const struct esb_output_sink *sink;
  struct esb_result *result;
};

static void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

/* What the session's state makes of a run that cannot go in, or that
 * lost its session. */
static void gone_as(const char *id, const struct esb_session_info *info, struct esb_result *r, bool during) {
  if (info->end == ESB_SESSION_ALIVE)
    esb_result_fail(r, ESB_E_BACKEND, "session %s %s", id,
                    during ? "ended the run without its status (more than 64 runs at once, or the "
                             "run's pid 1 was killed)"
                           : "did not take the run");
  else
    esb_result_fail(r, during ? ESB_E_BACKEND : ESB_E_INVALID_REQUEST, "session %s %s (%s)", id,
                    during ? "ended during the run" : "has ended", esb_session_end_name(info->end));
}

static void session_gone(const char *id, struct esb_result *r, bool during) {
  struct esb_session_info info;
  struct esb_error err;
  if (esb_session_info(id, &info, &err) < 0)
    esb_result_fail(r, err.code, "%s", err.message);
  else
    gone_as(id, &info, r, during);
}

/* The session's network is decided at its create (none, for now): a run
 * cannot ask for another. */
static int refuse_network(const struct esb_plan *plan, struct esb_result *r) {
  if (!plan->local.network && !plan->egress_allow)
    return 0;
  esb_result_fail(r, ESB_E_INVALID_REQUEST, "network: a run in a session has the session's network, decided "
                  "when it was made (this one has none): a run cannot ask for network: %s",
                  plan->egress_allow ? "{\"allow\": [...]}" : "true");
  return -1;
}

/* The request's files into the session's working dir, before the run. */
static int put_files(const char *dir, const struct esb_session_record *rec, const struct esb_plan *plan,
                     struct esb_result *r) {
  if (!plan->n_files)
    return 0;
  struct esb_error err = ESB_ERROR_INIT;
  int workdir = esb_session_workdir_open(dir);
  if (workdir < 0) {
    esb_result_fail(r, ESB_E_BACKEND, "the session did not give its working dir: %s", strerror(errno));
    return -1;
  }
  int rc = 0;
  for (size_t i = 0; i < plan->n_files && rc == 0; i++)
    if ((rc = esb_session_workdir_put(workdir, rec, &plan->files[i], &err)) < 0) {
      esb_error_prefix(&err, "the request's files");
      esb_result_fail_error(r, &err);
    }
  close(workdir);
  return rc;
}

/* The run's own cgroups below the session's, where it has some: its pids
 * budget (the run's max_processes), and its counts; a slot of the
 * session's that an earlier run left, where one is free (engine/cgroup.h:
 * the holder keeps the slot's lock until the run's last process is gone).
 * Where they cannot be had the run goes on in the session's, and a
 * warning says what it lost. */
static void make_run_cgroups(struct session_run *s, const struct esb_plan *plan,
                             const struct esb_session_record *rec) {
  struct esb_cgroup session;
  if (!esb_session_cgroup_view(rec, &session))
    return;
  struct esb_cgroup_limits limits = { .memory_bytes = rec->memory_bytes ? rec->memory_bytes : UINT64_MAX,
                                      .max_pids = plan->local.limits.processes, .count_cpu = true };
  struct esb_error err = ESB_ERROR_INIT;
  if (esb_cgroup_claim_below(&s->cg, &session, &limits, &err) == 0)
    s->has_cg = true;
  else
    esb_result_warn(s->result, "no cgroup of the run's own (%s): its processes count against the session's, "
                    "and its CPU time and peak memory are not known", err.message);
}

/* The run's child plan as a one-shot run's (backend/local.c), inside the
 * session's sandbox as it is: no root to build; the cgroups it joins are
 * the run's own, where it has some. */
static int write_plan(struct session_run *s, const struct esb_plan *plan,
                      const struct esb_session_record *rec, int *fd, struct esb_result *r) {
  struct esb_sandbox sb;
  esb_local_sandbox_for(plan, false, &sb);
  sb.inner_uid = rec->inner_uid; /* the session's id maps decide them */
  sb.inner_gid = rec->inner_gid;
  sb.limits.address_space = rec->address_space;
  if (s->has_cg) {
    sb.cgroup_procs = s->cg.procs;
    sb.n_cgroup_procs = ESB_CGROUP__COUNT;
    if (s->cg.procs[ESB_CGROUP_PIDS] >= 0 || s->cg.version == ESB_CGROUP_V2)
      sb.limits.processes = 0; /* the run's pids cgroup holds it: RLIMIT_NPROC is the whole session's uid's */
  }
  struct esb_error err = ESB_ERROR_INIT;
  if (esb_seccomp_program(plan->local.seccomp, &sb.seccomp, &err) < 0) {
    esb_result_fail_error(r, &err);
    return -1;
  }
  s->seccomp = esb_session_filter_print(sb.seccomp);
  struct esb_strv env = ESB_STRV_INIT;
  bool home = false;
  for (char **e = plan->env; e && *e; e++) {
    home |= strncmp(*e, "HOME=", 5) == 0;
    esb_strv_push(&env, *e);
  }
  char *home_var = NULL;
  if (!home && asprintf(&home_var, "HOME=%s", sb.workdir) > 0)
    esb_strv_take(&env, home_var);
  char **envp = esb_strv_detach(&env);
  char **paths = envp ? esb_exec_candidates(plan->argv[0], esb_env_path((const char *const *)envp)) : NULL;
  struct esb_child_plan cp = { .argv = plan->argv, .envp = envp, .exec_paths = (const char *const *)paths,
                               .dir = sb.workdir, .sandbox = &sb, .stdio = { 0, 1, 2 },
                               .report_fd = ESB_WIRE_FD_REPORT, .sync_fd = -1,
                               .collect_fd = s->collect >= 0 ? ESB_WIRE_FD_COLLECT : -1 };
  *fd = paths ? esb_child_wire_write(&cp) : -1;
  int saved = errno;
  esb_strv_free(envp);
  esb_strv_free(paths);
  if (*fd < 0) {
    esb_result_fail(r, ESB_E_SYSTEM, "writing the run's plan: %s", strerror(saved));
    return -1;
  }
  return 0;
}

int esb_session_write_plan(const struct esb_plan *plan, const struct esb_session_record *rec, int *fd,
                           struct esb_result *r) {
  struct session_run none = { .collect = -1 }; /* a kernel: no cgroup of its own, nothing collected */
  return write_plan(&none, plan, rec, fd, r);
}

/* Pipes for the run: ours non-blocking, theirs into `theirs`. */
static int make_pipes(struct session_run *s, int theirs[4]) {
  int fds[4][2];
  int made = 0;
  for (; made < 4; made++)
    if (pipe2(fds[made], O_CLOEXEC) < 0)
      break;
  if (made < 4) {
    for (int i = 0; i < made; i++) {
      close(fds[i][0]);
      close(fds[i][1]);
    }
    return -1;
  }
  s->in = fds[0][1];
  theirs[0] = fds[0][0];
  s->out = fds[1][0];
  theirs[1] = fds[1][1];
  s->err = fds[2][0];
  theirs[2] = fds[2][1];
  s->report = fds[3][0];
  theirs[3] = fds[3][1];
  int ours[4] = { s->in, s->out, s->err, s->report };
  for (int i = 0; i < 4; i++)
    fcntl(ours[i], F_SETFL, fcntl(ours[i], F_GETFL) | O_NONBLOCK);
  return 0;
}

/* Connects to the holder and hands it the run: the fds of enum
 * esb_session_fd (the plan's own fd where it collects nothing), then the
 * run's cgroups' that the plan says it has. */
static int hand_over(struct session_run *s, const char *dir, int plan_fd, struct esb_result *r) {
  int theirs[4];
  if (make_pipes(s, theirs) < 0) {
    esb_result_fail(r, ESB_E_SYSTEM, "making the run's pipes: %s", strerror(errno));
    return -1;
  }
  int fds[ESB_SESSION_FD__MAX] = { plan_fd, s->stdin_fd >= 0 ? s->stdin_fd : theirs[0], theirs[1], theirs[2],
                                   theirs[3], s->collect >= 0 ? s->collect : plan_fd };
  int n = ESB_SESSION_FD_CGROUP;
  for (int i = 0; s->has_cg && i < ESB_CGROUP__COUNT; i++)
    if (s->cg.procs[i] >= 0)
      fds[n++] = s->cg.procs[i];
  if (s->stdin_fd >= 0)
    close_fd(&s->in); /* the program reads the request's fd itself */
  struct esb_session_msg m = { .magic = ESB_SESSION_MAGIC, .kind = ESB_SESSION_RUN, .seccomp = s->seccomp };
  s->conn = esb_session_connect(dir);
  int rc = s->conn < 0 || esb_fd_send(s->conn, &m, sizeof m, fds, n) < 0 ? -1 : 0;
  int saved = errno;
  for (int i = 0; i < 4; i++)
    close(theirs[i]);
  if (rc < 0)
    errno = saved;
  return rc;
}

static void feed_stdin(struct session_run *s) {
  while (s->stdin_off < s->stdin_len) {
    ssize_t n = write(s->in, s->stdin_data + s->stdin_off, s->stdin_len - s->stdin_off);
    if (n < 0 && errno == EAGAIN)
      return;
    if (n <= 0)
      break; /* EPIPE: the program took what it wanted */
    s->stdin_off += (size_t)n;
  }
  close_fd(&s->in);
}

static void read_output(struct session_run *s, int *fd, int stream) {
  char buf[65536];
  ssize_t n = read(*fd, buf, sizeof buf);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (n <= 0) {
    close_fd(fd);
    return;
  }
  esb_capture_append(stream == 1 ? &s->result->out : &s->result->err, buf, (size_t)n);
  if (s->sink && s->sink->fds[stream - 1] >= 0)
    esb_write_all(s->sink->fds[stream - 1], buf, (size_t)n);
  else if (s->sink && s->sink->fn)
    s->sink->fn(stream, buf, (size_t)n, s->sink->userdata);
}

/* pid 1's reports: a failure ends them; a status is followed by EOF. */
static void read_report(struct session_run *s) {
  ssize_t n = read(s->report, (char *)&s->rep + s->rep_got, sizeof s->rep - s->rep_got);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (n <= 0) {
    close_fd(&s->report);
    return;
  }
  s->rep_got += (size_t)n;
  if (s->rep_got == sizeof s->rep && s->rep.kind != ESB_REPORT_STATUS)
    close_fd(&s->report);
}

/* The run ends now: the holder SIGKILLs its pid 1 once our half of the
 * connection is shut, and with it the run's pid namespace; it closes the
 * connection once it reaped that pid 1. */
static void kill_run(struct session_run *s) {
  if (s->conn >= 0)
    shutdown(s->conn, SHUT_WR);
  s->killed = true;
  close_fd(&s->in);
}

/* The deadline: TERM to the run's process group (through the holder), and
 * the grace until kill_run; with no grace, or no holder to hear it,
 * kill_run at once. */
static void deadline_reached(struct session_run *s) {
  struct esb_session_msg m = { .magic = ESB_SESSION_MAGIC, .kind = ESB_SESSION_TERM };
  s->term_sent = true;
  if (!s->grace_ms || s->conn < 0 || esb_fd_send(s->conn, &m, sizeof m, NULL, 0) < 0) {
    kill_run(s);
    return;
  }
  s->kill_at_ns = esb_now_ns() + s->grace_ms * 1000000u;
}

/* The next thing due: the deadline, then the grace's end. */
static int poll_timeout(const struct session_run *s) {
  uint64_t at = s->killed ? 0 : s->term_sent ? s->kill_at_ns : s->deadline_ns;
  if (!at)
    return -1;
  uint64_t now = esb_now_ns();
  return now >= at ? 0 : (int)((at - now) / 1000000 + 1);
}

/* Its pid 1's status came, said once every other process of the run was
 * gone (ESB_REPORT_ALONE), and the output and the report have ended (its
 * pid 1 closed them): DONE, so that the holder closes the connection (and
 * the run's cgroups' files, their slot's lock) now, not once it reaped
 * that pid 1 (its end, the run's namespaces' too, is 0.2 ms and more). */
static void say_done(struct session_run *s) {
  struct esb_session_msg m = { .magic = ESB_SESSION_MAGIC, .kind = ESB_SESSION_DONE };
  bool alone = s->rep_got == sizeof s->rep && s->rep.kind == ESB_REPORT_STATUS && s->rep.step == ESB_REPORT_ALONE;
  if (s->done_sent || !alone || s->out >= 0 || s->err >= 0 || s->report >= 0 || s->conn < 0)
    return;
  s->done_sent = true;
  if (esb_fd_send(s->conn, &m, sizeof m, NULL, 0) < 0)
    close_fd(&s->conn); /* the holder is gone: nothing of the run is left */
}

/* Until the run's output, its report and its connection have ended: the
 * holder closes the connection once it reaped the run's pid 1, which the
 * kernel lets go only after every other process of the run's pid
 * namespace, or once DONE came (say_done): the result comes after the
 * last process of the run. */
static void move_bytes(struct session_run *s) {
  for (;;) {
    say_done(s);
    if (s->out < 0 && s->err < 0 && s->report < 0 && s->conn < 0)
      break;
    struct pollfd p[6] = {
      { .fd = s->in, .events = POLLOUT }, { .fd = s->out, .events = POLLIN },
      { .fd = s->err, .events = POLLIN }, { .fd = s->report, .events = POLLIN },
      { .fd = s->conn, .events = POLLIN }, { .fd = s->interrupted ? -1 : s->interrupt_fd, .events = POLLIN },
    };
    int rc = poll(p, 6, poll_timeout(s));
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc > 0 && p[5].revents && !s->interrupted)
      s->interrupted = true; /* as a one-shot run's: the deadline now, the grace, then SIGKILL */
    if ((rc == 0 || s->interrupted) && !s->term_sent) {
      deadline_reached(s);
      continue;
    }
    if (rc == 0) {
      kill_run(s);
      continue;
    }
    if (p[0].revents)
      feed_stdin(s);
    if (p[1].revents)
      read_output(s, &s->out, 1);
    if (p[2].revents)
      read_output(s, &s->err, 2);
    if (p[3].revents)
      read_report(s);
    if (p[4].revents)
      close_fd(&s->conn); /* the holder let it go: the run's pid 1 was reaped, or the holder ended */
  }
}

static void finish(struct session_run *s, const char *id, const struct esb_plan *plan) {
  struct esb_result *r = s->result;
  const char *prog = plan->argv[0];
  bool reported = s->rep_got == sizeof s->rep;
  if (s->interrupted)
    esb_result_fail(r, ESB_E_INTERRUPTED, "the executor was interrupted by a signal; the run was killed");
  else if (reported && s->rep.kind == ESB_REPORT_EXEC_FAILED && s->rep.error == ENOENT)
    esb_result_fail(r, ESB_E_EXEC_NOT_FOUND, "program not found: %s", prog);
  else if (reported && s->rep.kind == ESB_REPORT_EXEC_FAILED)
    esb_result_fail(r, ESB_E_EXEC_DENIED, "cannot execute %s: %s", prog, strerror(s->rep.error));
  else if (reported && s->rep.kind == ESB_REPORT_SETUP_FAILED)
    esb_result_fail(r, ESB_E_SANDBOX_SETUP, "the run's setup in the session failed (%s): %s",
                    esb_setup_step_name(s->rep.step), strerror(s->rep.error));
  else if (reported && s->rep.kind == ESB_REPORT_STATUS) {
    esb_result_wait_status(r, s->rep.status);
    if (s->term_sent) /* ended within its grace, or at its end */
      esb_result_timed_out(r);
    r->killed_by_us = s->term_sent;
  } else if (s->term_sent && s->killed) {
    /* Its pid 1 went with the SIGKILL before it said the program's status. */
    r->signal = SIGKILL;
    esb_result_timed_out(r);
    r->killed_by_us = true;
  } else {
    s->lost = true;
    session_gone(id, r, true);
  }
}

/* The run's own memory cgroup saw the OOM killer take one of its
 * processes, and the program (or the shell around it) died of SIGKILL, or
 * the run's pid 1 did (no word of it came): what a one-shot run reports as
 * OOMKilled (backend/local.c). The kill is counted in the cgroup of the
 * process killed: a run whose neighbour in the session was killed is not
 * said to be. Without a cgroup of its own, the session's count stands in
 * (then any run that died so during an OOM kill in the session says so). */
static void note_oom(struct esb_cgroup *cg, bool has_cgroup, bool lost, struct esb_result *r) {
  bool killed = (r->status == ESB_STATUS_SIGNALED && r->signal == SIGKILL) ||
                (r->status == ESB_STATUS_EXITED && r->exit_code == 128 + SIGKILL) || lost;
  if (!has_cgroup || !esb_cgroup_oom_killed(cg) || !killed)
    return;
  free(r->error_message); /* the lost run's words: the OOM killer's are better */
  r->error_message = NULL;
  r->error = ESB_OK;
  esb_result_oom_killed(r);
}

/* What the run's cgroups saw, into the result; then they go (empty: the
 * holder reaped the run's pid 1, the last of the run's pid namespace). */
static void note_cgroups(struct session_run *s, struct esb_cgroup *session, bool has_session) {
  struct esb_result *r = s->result;
  note_oom(s->has_cg ? &s->cg : session, s->has_cg || has_session, s->lost, r);
  if (!s->has_cg)
    return;
  int64_t cpu_ms, peak;
  esb_cgroup_usage(&s->cg, &cpu_ms, &peak);
  if (r->status != ESB_STATUS_ERROR) {
    r->cpu_time_ms = cpu_ms;
    r->memory_peak_bytes = peak;
  }
}

/* Files out: the frames the run's pid 1 wrote. */
static void read_collected(struct session_run *s, const struct esb_plan *plan) {
  struct esb_result *r = s->result;
  if (s->collect < 0 || r->status == ESB_STATUS_ERROR)
    return;
  r->files.wanted = true;
  if (esb_collect_read(s->collect, &plan->collect, &r->files) < 0)
    esb_result_warn(r, "the run's files (collect) could not be read back (%s): none are listed", strerror(errno));
}

/* Hands the run over and sees it to its end. */
static void go(struct session_run *s, const char *id, const char *dir, const struct esb_plan *plan,
               const struct esb_session_record *rec, int plan_fd) {
  struct esb_cgroup session;
  bool has_session = esb_session_cgroup_view(rec, &session);
  if (has_session && !s->has_cg)
    esb_cgroup_oom_killed(&session); /* the count before the run */
  if (hand_over(s, dir, plan_fd, s->result) < 0) {
    if (s->result->status != ESB_STATUS_ERROR || !s->result->error_message)
      session_gone(id, s->result, false);
    return;
  }
  feed_stdin(s);
  move_bytes(s);
  finish(s, id, plan);
  note_cgroups(s, &session, has_session);
  read_collected(s, plan);
  if (!has_session && plan->local.memory_bytes && s->result->status != ESB_STATUS_ERROR)
    esb_result_warn(s->result, "the session has no cgroup: its memory limit was each process's address "
                    "space (RLIMIT_AS), and no OOM kill can be seen");
}

/* Up to the run's start: the files in, the collect file, the cgroups, the
 * plan. 0, or -1 with the result failed. */
static int prepare(struct session_run *s, const char *dir, const struct esb_plan *plan,
                   const struct esb_session_record *rec, int *plan_fd) {
  struct esb_result *r = s->result;
  if (refuse_network(plan, r) < 0 || put_files(dir, rec, plan, r) < 0)
    return -1;
  if (plan->stdin_fd >= 0 && (s->stdin_fd = fcntl(plan->stdin_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
    esb_result_fail(r, ESB_E_SYSTEM, "stdin: %s", strerror(errno));
    return -1;
  }
  if (plan->collect.n_patterns && (s->collect = memfd_create("echo-sandbox-collect", MFD_CLOEXEC)) < 0) {
    esb_result_fail(r, ESB_E_SYSTEM, "memfd_create: %s", strerror(errno));
    return -1;
  }
  make_run_cgroups(s, plan, rec);
  return write_plan(s, plan, rec, plan_fd, r);
}

void esb_session_run(const char *id, const struct esb_plan *plan, struct esb_result *r, int interrupt_fd,
                     const struct esb_output_sink *output) {
  uint64_t started = esb_now_ns();
  r->sandbox_type = "local";
  r->isolation = "namespaces";
  struct esb_session_info info;
  struct esb_session_record rec;
  struct esb_error err;
  if (esb_session_read(id, &rec, &info, &err) < 0) {
    esb_result_fail(r, err.code, "%s", err.message);
    return;
  }
  snprintf(r->session, sizeof r->session, "%s", info.id); /* a session's id: 32 hex digits */
  if (info.end != ESB_SESSION_ALIVE) {
    esb_session_record_release(&rec);
    gone_as(id, &info, r, false);
    return;
  }
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/%s", esb_session_dir(), id);
  int plan_fd = -1;
  struct session_run s = { .in = -1, .out = -1, .err = -1, .report = -1, .conn = -1, .stdin_fd = -1,
                           .collect = -1, .cg = ESB_CGROUP_INIT, .grace_ms = plan->kill_grace_ms,
                           .interrupt_fd = interrupt_fd, .stdin_data = plan->stdin_data,
                           .stdin_len = plan->stdin_len, .sink = output, .result = r };
  if (prepare(&s, dir, plan, &rec, &plan_fd) == 0) {
    r->out.cap = r->err.cap = plan->max_output_bytes;
    if (plan->timeout_ms)
      s.deadline_ns = started + plan->timeout_ms * 1000000u;
    go(&s, id, dir, plan, &rec, plan_fd);
  }
  if (plan_fd >= 0)
    close(plan_fd);
  if (s.has_cg)
    esb_cgroup_destroy(&s.cg); /* every path: a slot back to the session, or removed */
  esb_session_record_release(&rec);
  int *fds[] = { &s.in, &s.out, &s.err, &s.report, &s.conn, &s.stdin_fd, &s.collect };
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
    close_fd(fds[i]);
  r->duration_ms = (double)(esb_now_ns() - started) / 1e6;
}
