/* A run in a local session (backend/local_session.h): its plan goes to the
 * session's holder with its stdio and report pipes (engine/sandbox/session_holder.h),
 * which starts it in a pid namespace of its own inside the session's
 * sandbox; here, a small poll loop moves its bytes and keeps its deadline.
 * The result is a run's, and who ended the run comes from what the engine
 * saw: a status on the report pipe (which the program cannot write: it is
 * pid 1's, closed before exec), its own kill at the deadline, or the
 * holder's end.
 *
 * Not yet in a session run (each refused with a clear error): the
 * request's files (and so code, which goes as a file), stdin from an fd
 * (--stdin-file), network. At the deadline the run is SIGKILLed at once
 * (no SIGTERM grace). */
#include "backend/local_session.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "backend/local.h"
#include "backend/local_session_files.h"
#include "engine/fileio.h"
#include "engine/runtime/clock.h"
#include "engine/runtime/exec_path.h"
#include "engine/sandbox/child_wire.h"
#include "engine/sandbox/fd_passing.h"
#include "engine/sandbox/seccomp.h"
#include "engine/strv.h"

struct session_run {
  int in, out, err, report, conn, interrupt_fd;
  const char *stdin_data;
  size_t stdin_len, stdin_off;
  struct esb_report rep;
  size_t rep_got;
  bool killed, interrupted;
  bool lost;                  /* it ended with no word of its pid 1 (its status, its failure) */
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
static void session_gone(const char *id, struct esb_result *r, bool during) {
  struct esb_session_info info;
  struct esb_error err;
  if (esb_session_info(id, &info, &err) < 0) {
    esb_result_fail(r, err.code, "%s", err.message);
    return;
  }
  if (info.end == ESB_SESSION_ALIVE)
    esb_result_fail(r, ESB_E_BACKEND, "session %s %s", id,
                    during ? "ended the run without its status (more than 64 runs at once, or the "
                             "run's pid 1 was killed)"
                           : "did not take the run");
  else
    esb_result_fail(r, during ? ESB_E_BACKEND : ESB_E_INVALID_REQUEST, "session %s %s (%s)", id,
                    during ? "ended during the run" : "has ended", esb_session_end_name(info.end));
}

static int refuse_unsupported(const struct esb_plan *plan, struct esb_result *r) {
  const char *what = plan->n_files ? "files (and code, which goes in as a file)"
                   : plan->stdin_fd >= 0 ? "stdin from a file (--stdin-file)"
                   : plan->local.network ? "network: true"
                   : plan->collect.n_patterns ? "collect" : NULL;
  if (!what)
    return 0;
  esb_result_fail(r, ESB_E_INVALID_REQUEST, "a run in a session cannot take %s yet: give a command "
                  "(--shell, or -- PROGRAM) and stdin as data", what);
  return -1;
}

/* The run's child plan as a one-shot run's (backend/local.c), inside the
 * session's sandbox as it is: no root to build, no cgroup to join. */
int esb_session_write_plan(const struct esb_plan *plan, const struct esb_session_record *rec, int *fd,
                           struct esb_result *r) {
  struct esb_sandbox sb;
  esb_local_sandbox_for(plan, false, &sb);
  sb.inner_uid = rec->inner_uid; /* the session's id maps decide them */
  sb.inner_gid = rec->inner_gid;
  sb.limits.address_space = rec->address_space;
  struct esb_error err = ESB_ERROR_INIT;
  if (esb_seccomp_program(plan->local.seccomp, &sb.seccomp, &err) < 0) {
    esb_result_fail_error(r, &err);
    return -1;
  }
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
                               .report_fd = ESB_WIRE_FD_REPORT, .sync_fd = -1, .collect_fd = -1 };
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

/* Connects to the holder and hands it the run. */
static int hand_over(struct session_run *s, const char *dir, int plan_fd, struct esb_result *r) {
  int theirs[4];
  if (make_pipes(s, theirs) < 0) {
    esb_result_fail(r, ESB_E_SYSTEM, "making the run's pipes: %s", strerror(errno));
    return -1;
  }
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if ((size_t)snprintf(addr.sun_path, sizeof addr.sun_path, "%s/control", dir) < sizeof addr.sun_path)
    s->conn = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  struct esb_session_msg m = { .magic = ESB_SESSION_MAGIC, .kind = ESB_SESSION_RUN };
  int fds[ESB_SESSION_FD_COLLECT] = { plan_fd, theirs[0], theirs[1], theirs[2], theirs[3] };
  int rc = s->conn < 0 || connect(s->conn, (struct sockaddr *)&addr, sizeof addr) < 0 ||
           esb_fd_send(s->conn, &m, sizeof m, fds, ESB_SESSION_FD_COLLECT) < 0 ? -1 : 0;
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
  close_fd(&s->in);
}

static int poll_timeout(const struct session_run *s) {
  if (!s->deadline_ns || s->killed)
    return -1;
  uint64_t now = esb_now_ns();
  return now >= s->deadline_ns ? 0 : (int)((s->deadline_ns - now) / 1000000 + 1);
}

/* Until the run's output, its report and its connection have ended: the
 * holder closes the connection only once it reaped the run's pid 1, which
 * the kernel lets go only after every other process of the run's pid
 * namespace: the result comes after the last process of the run. */
static void move_bytes(struct session_run *s) {
  while (s->out >= 0 || s->err >= 0 || s->report >= 0 || s->conn >= 0) {
    struct pollfd p[6] = {
      { .fd = s->in, .events = POLLOUT }, { .fd = s->out, .events = POLLIN },
      { .fd = s->err, .events = POLLIN }, { .fd = s->report, .events = POLLIN },
      { .fd = s->conn, .events = POLLIN }, { .fd = s->interrupted ? -1 : s->interrupt_fd, .events = POLLIN },
    };
    int rc = poll(p, 6, poll_timeout(s));
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc == 0 || (p[5].revents && !s->interrupted)) {
      s->killed |= rc == 0;
      s->interrupted |= rc != 0;
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
  else if (s->killed) {
    esb_result_timed_out(r);
    r->killed_by_us = true;
  } else if (reported && s->rep.kind == ESB_REPORT_STATUS)
    esb_result_wait_status(r, s->rep.status);
  else {
    s->lost = true;
    session_gone(id, r, true);
  }
}

/* The session's memory cgroup saw the OOM killer during the run, and the
 * program (or the shell around it) died of SIGKILL, or the run's pid 1
 * did (no word of it came): what a one-shot run reports as OOMKilled
 * (backend/local.c). Runs side by side in one session share the cgroup:
 * each that died so then says so. */
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

/* Hands the run over and sees it to its end. */
static void go(struct session_run *s, const char *id, const char *dir, const struct esb_plan *plan,
               const struct esb_session_record *rec, int plan_fd) {
  struct esb_cgroup cg;
  bool has_cgroup = esb_session_cgroup_view(rec, &cg);
  if (has_cgroup)
    esb_cgroup_oom_killed(&cg); /* the count before the run */
  if (hand_over(s, dir, plan_fd, s->result) < 0) {
    if (s->result->status != ESB_STATUS_ERROR || !s->result->error_message)
      session_gone(id, s->result, false);
    return;
  }
  feed_stdin(s);
  move_bytes(s);
  finish(s, id, plan);
  note_oom(&cg, has_cgroup, s->lost, s->result);
  if (!has_cgroup && plan->local.memory_bytes && s->result->status != ESB_STATUS_ERROR)
    esb_result_warn(s->result, "the session has no cgroup: its memory limit was each process's address "
                    "space (RLIMIT_AS), and no OOM kill can be seen");
}

void esb_session_run(const char *id, const struct esb_plan *plan, struct esb_result *r, int interrupt_fd,
                     const struct esb_output_sink *output) {
  uint64_t started = esb_now_ns();
  r->sandbox_type = "local";
  r->isolation = "namespaces";
  struct esb_session_info info;
  struct esb_error err;
  if (esb_session_info(id, &info, &err) < 0) {
    esb_result_fail(r, err.code, "%s", err.message);
    return;
  }
  snprintf(r->session, sizeof r->session, "%s", info.id); /* a session's id: 32 hex digits */
  if (info.end != ESB_SESSION_ALIVE) {
    session_gone(id, r, false);
    return;
  }
  if (refuse_unsupported(plan, r) < 0)
    return;
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/%s", esb_session_dir(), id);
  struct esb_session_record rec;
  int plan_fd = -1;
  struct session_run s = { .in = -1, .out = -1, .err = -1, .report = -1, .conn = -1,
                           .interrupt_fd = interrupt_fd, .stdin_data = plan->stdin_data,
                           .stdin_len = plan->stdin_len, .sink = output, .result = r };
  if (esb_session_record_read(dir, &rec) < 0)
    session_gone(id, r, false);
  else if (esb_session_write_plan(plan, &rec, &plan_fd, r) == 0) {
    r->out.cap = r->err.cap = plan->max_output_bytes;
    if (plan->timeout_ms)
      s.deadline_ns = started + plan->timeout_ms * 1000000u;
    go(&s, id, dir, plan, &rec, plan_fd);
    close(plan_fd);
  }
  esb_session_record_release(&rec);
  int *fds[] = { &s.in, &s.out, &s.err, &s.report, &s.conn };
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
    close_fd(fds[i]);
  r->duration_ms = (double)(esb_now_ns() - started) / 1e6;
}
