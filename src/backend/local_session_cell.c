/* Cells in a local session (backend/local_session.h): the holder hands us
 * its ends of the kernel's pipes (engine/sandbox/session_kernel.h), and
 * here a small poll loop speaks the kernel's protocol: the request out,
 * the cell's output and its reply in, the deadline kept. What ended a
 * cell that did not reply is the engine's word: its deadline, the reply
 * pipe's end (no process of the kernel holds it any longer), the holder's
 * closing of the connection once it reaped the kernel.
 *
 * Output the kernel wrote between cells (a thread or a child a cell left)
 * is dropped before the request goes: a cell's output is what the kernel
 * wrote after its request, up to its reply. */
#include "backend/local_session.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/kernel_reply.h"
#include "backend/local_session_files.h"
#include "engine/runtime/clock.h"
#include "engine/sandbox/fd_passing.h"

/* The kernels' sources (kernels/python.py, kernels/node.js), embedded at build time: a kernel is
 * started as `program flag SOURCE`, so no host path enters the sandbox. */
extern const char esb_kernel_python[], esb_kernel_node[];

/* The languages that have a kernel: the one list (a kernel's slot in the
 * holder is its index). The policy's session hook is to decide it. */
static const struct kernel {
  const char *language, *program, *flag, *source;
} kernels[] = {
  { "python", "python3", "-c", esb_kernel_python },
  { "node", "node", "-e", esb_kernel_node },
};
#define N_KERNELS (sizeof kernels / sizeof kernels[0])
_Static_assert(N_KERNELS <= ESB_SESSION_KERNELS, "a holder's slot a kernel");

static const struct {
  const char *name;
  int exit_code;
} statuses[ESB_CELL__COUNT] = {
  [ESB_CELL_OK] = { "ok", 0 }, [ESB_CELL_ERROR] = { "error", 1 }, [ESB_CELL_TIMED_OUT] = { "timed_out", 124 },
  [ESB_CELL_INTERRUPTED] = { "interrupted", 130 }, [ESB_CELL_DIED] = { "died", 125 },
  [ESB_CELL_BUSY] = { "busy", 125 }, [ESB_CELL_SESSION_ENDED] = { "session_ended", 125 },
  [ESB_CELL_FAILED] = { "failed", 125 },
};

/* The most a reply line may take: the value's text is bounded by nothing
 * but this. */
#define REPLY_MAX (16u << 20)
/* A bound, not a clock: how long the holder may take to answer a cell
 * and to reap a kernel it killed. */
#define HOLDER_WAIT_MS 10000

const char *esb_cell_status_name(enum esb_cell_status status) {
  return status < ESB_CELL__COUNT ? statuses[status].name : "unknown";
}

int esb_cell_exit_code(const struct esb_cell_result *r) {
  return r->status < ESB_CELL__COUNT ? statuses[r->status].exit_code : 125;
}

void esb_cell_result_release(struct esb_cell_result *r) {
  esb_capture_release(&r->out);
  esb_capture_release(&r->err);
  free(r->value);
  free(r->error_name);
  free(r->error_message);
  free(r->error_traceback);
  free(r->message);
  *r = (struct esb_cell_result)ESB_CELL_RESULT_INIT;
}

const char *esb_session_kernel_languages(void) {
  static char list[256];
  if (!list[0])
    for (size_t i = 0, n = 0; i < N_KERNELS; i++)
      n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", kernels[i].language);
  return list;
}

static int slot_of(const char *language) {
  for (size_t i = 0; language && i < N_KERNELS; i++)
    if (strcmp(language, kernels[i].language) == 0)
      return (int)i;
  return -1;
}

int esb_session_kernel_argv(const char *language, const char *argv[3], struct esb_error *err) {
  int slot = slot_of(language);
  if (slot < 0)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "no kernel for language '%s': the languages with one are %s",
                         language ? language : "", esb_session_kernel_languages());
  argv[0] = kernels[slot].program;
  argv[1] = kernels[slot].flag;
  argv[2] = kernels[slot].source;
  return 0;
}

/* The engine's word on the cell; the status, and message (printf-style). */
__attribute__((format(printf, 4, 5)))
static void say(struct esb_cell_result *r, enum esb_cell_status status, enum esb_error_code code,
                const char *fmt, ...) {
  r->status = status;
  r->failure = code;
  free(r->message);
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&r->message, fmt, ap) < 0)
    r->message = NULL;
  va_end(ap);
}

struct cell {
  int conn, fds[ESB_SESSION_CELL_FD__MAX], interrupt_fd;
  const char *language, *id;
  char *req;                  /* the request line */
  size_t req_len, req_off;
  char *rep;                  /* reply bytes, up to a line */
  size_t rep_len, rep_cap;
  uint64_t cell;              /* the request's id */
  uint64_t deadline_ns;       /* 0: none */
  enum { RUNNING, STOPPING, KILLING } phase;
  enum esb_cell_status stop;  /* STOPPING, KILLING: why */
  bool replied, conn_ended;
  bool write_refused;         /* the request's write met no reader (EPIPE): the kernel was gone */
  bool untaken;               /* the kernel ended before it read a byte of the request */
  bool left_replies;          /* killed: it closed its fd 4 and did not end within the grace */
  struct esb_kernel_reply reply;
  struct esb_report report;   /* the kernel's pid 1's word at its end */
  size_t report_got;
  struct esb_cell_result *r;
};

static void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

/* Connects, says CELL with the kernel's plan, and takes the answer. 0, or
 * -1 with r said. */
static int ask(struct cell *c, const char *dir, int slot, int plan_fd, struct esb_session_cell_answer *a) {
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if ((size_t)snprintf(addr.sun_path, sizeof addr.sun_path, "%s/control", dir) >= sizeof addr.sun_path)
    return -1;
  struct esb_session_msg m = { .magic = ESB_SESSION_MAGIC, .kind = ESB_SESSION_CELL, .kernel = (uint32_t)slot };
  c->conn = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (c->conn < 0 || connect(c->conn, (struct sockaddr *)&addr, sizeof addr) < 0 ||
      esb_fd_send(c->conn, &m, sizeof m, &plan_fd, 1) < 0)
    return -1;
  struct pollfd p = { .fd = c->conn, .events = POLLIN };
  int n = 0, rc;
  do rc = poll(&p, 1, HOLDER_WAIT_MS); while (rc < 0 && errno == EINTR);
  ssize_t got = rc == 1 ? esb_fd_recv(c->conn, a, sizeof *a, c->fds, ESB_SESSION_CELL_FD__MAX, &n) : -1;
  if (got != (ssize_t)sizeof *a || a->magic != ESB_SESSION_MAGIC) {
    for (int i = 0; i < n; i++)
      close_fd(&c->fds[i]);
    return -1;
  }
  if (a->word == ESB_SESSION_CELL_GO && n == ESB_SESSION_CELL_FD__MAX) {
    c->cell = a->cell;
    return 0;
  }
  if (a->word == ESB_SESSION_CELL_BUSY)
    say(c->r, ESB_CELL_BUSY, ESB_E_INVALID_REQUEST, "a cell of the %s kernel of session %s is going on: "
        "one cell at a time a kernel (send the next once it ended)", c->language, c->id);
  else
    say(c->r, ESB_CELL_FAILED, ESB_E_SANDBOX_SETUP, "the session could not start its %s kernel: %s", c->language,
        strerror(a->word == ESB_SESSION_CELL_FAILED ? a->error : EPROTO));
  for (int i = 0; i < n; i++)
    close_fd(&c->fds[i]);
  return -1;
}

/* Drops what a pipe holds now. */
static void drain(int fd) {
  char buf[65536];
  while (read(fd, buf, sizeof buf) > 0)
    ;
}

static int make_request(struct cell *c, const char *code, size_t len) {
  char head[64];
  int n = snprintf(head, sizeof head, "{\"id\": %llu, \"code\": \"", (unsigned long long)c->cell);
  size_t cap = (size_t)n + len + 64;
  if (!(c->req = malloc(cap)))
    return -1;
  memcpy(c->req, head, (size_t)n);
  c->req_len = (size_t)n;
  if (esb_json_escape_append(&c->req, &c->req_len, &cap, code, len) < 0)
    return -1;
  char *grown = cap - c->req_len < 3 ? realloc(c->req, cap + 3) : c->req;
  if (!grown)
    return -1;
  c->req = grown;
  memcpy(c->req + c->req_len, "\"}\n", 3);
  c->req_len += 3;
  return 0;
}

static void write_request(struct cell *c) {
  while (c->req_off < c->req_len) {
    ssize_t n = write(c->fds[ESB_SESSION_CELL_FD_REQUESTS], c->req + c->req_off, c->req_len - c->req_off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN)
      return;
    if (n <= 0) {
      c->req_off = c->req_len; /* EPIPE: the kernel is gone; its reply pipe says so */
      c->write_refused = true;
      return;
    }
    c->req_off += (size_t)n;
  }
}

static void read_output(struct cell *c, int which) {
  int *fd = &c->fds[which];
  char buf[65536];
  for (;;) {
    ssize_t n = read(*fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN)
      return;
    if (n <= 0) {
      close_fd(fd);
      return;
    }
    esb_capture_append(which == ESB_SESSION_CELL_FD_STDOUT ? &c->r->out : &c->r->err, buf, (size_t)n);
  }
}

/* A whole reply line: ours (its id) ends the cell; another (a line the
 * cell's code wrote on fd 4 itself) is dropped. */
static void take_line(struct cell *c, const char *line, size_t len) {
  struct esb_kernel_reply reply;
  if (esb_kernel_reply_parse(line, len, &reply) < 0)
    return;
  if (reply.id >= 0 && (uint64_t)reply.id == c->cell && !c->replied) {
    c->reply = reply;
    c->replied = true;
    return;
  }
  esb_kernel_reply_release(&reply);
}

static void read_replies(struct cell *c) {
  int *fd = &c->fds[ESB_SESSION_CELL_FD_REPLIES];
  while (*fd >= 0 && !c->replied) {
    if (c->rep_cap - c->rep_len < 65536) {
      size_t want = c->rep_cap ? c->rep_cap * 2 : 65536 * 2;
      char *grown = want <= 2 * (size_t)REPLY_MAX ? realloc(c->rep, want) : NULL;
      if (!grown) {
        c->rep_len = 0; /* a line over the bound: dropped; the deadline ends a cell that waits on it */
        continue;
      }
      c->rep = grown;
      c->rep_cap = want;
    }
    ssize_t n = read(*fd, c->rep + c->rep_len, 65536);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN)
      return;
    if (n <= 0) {
      close_fd(fd); /* no process of the kernel holds its fd 4 any longer */
      return;
    }
    c->rep_len += (size_t)n;
    char *nl;
    while (!c->replied && (nl = memchr(c->rep, '\n', c->rep_len))) {
      take_line(c, c->rep, (size_t)(nl - c->rep));
      c->rep_len -= (size_t)(nl + 1 - c->rep);
      memmove(c->rep, nl + 1, c->rep_len);
    }
  }
}

static void read_report(struct cell *c) {
  int *fd = &c->fds[ESB_SESSION_CELL_FD_REPORT];
  ssize_t n = read(*fd, (char *)&c->report + c->report_got, sizeof c->report - c->report_got);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (n <= 0 || (c->report_got += (size_t)n) == sizeof c->report)
    close_fd(fd);
}

/* At the deadline or the caller's signal: SIGINT through the holder, and
 * the grace to answer it. */
static void interrupt(struct cell *c, enum esb_cell_status why) {
  struct esb_session_msg m = { .magic = ESB_SESSION_MAGIC, .kind = ESB_SESSION_CELL_INTERRUPT };
  c->stop = why;
  c->phase = STOPPING;
  c->deadline_ns = esb_now_ns() + ESB_CELL_GRACE_MS * 1000000ull;
  if (esb_fd_send(c->conn, &m, sizeof m, NULL, 0) < 0)
    c->deadline_ns = esb_now_ns(); /* the holder is gone: its end says so */
}

/* Our half of the connection shut without DONE: the holder kills the
 * kernel and closes the connection once it reaped it. */
static void kill_kernel(struct cell *c) {
  shutdown(c->conn, SHUT_WR);
  c->phase = KILLING;
  c->deadline_ns = esb_now_ns() + HOLDER_WAIT_MS * 1000000ull;
}

static int poll_timeout(const struct cell *c) {
  if (!c->deadline_ns)
    return -1;
  uint64_t now = esb_now_ns();
  return now >= c->deadline_ns ? 0 : (int)((c->deadline_ns - now) / 1000000 + 1);
}

static void on_timeout(struct cell *c) {
  if (c->phase == RUNNING)
    interrupt(c, ESB_CELL_TIMED_OUT);
  else if (c->phase == STOPPING) {
    c->left_replies = c->stop == ESB_CELL__COUNT;
    kill_kernel(c);
  }
  else
    c->conn_ended = true; /* the holder did not answer: a bound, the result says what we know */
}

/* Until the reply, or the holder's end of the connection (the kernel
 * reaped, or the session's end). */
static void converse(struct cell *c) {
  while (!c->replied && !c->conn_ended) {
    int *f = c->fds;
    bool pending = c->req_off < c->req_len;
    struct pollfd p[7] = {
      { .fd = pending ? f[ESB_SESSION_CELL_FD_REQUESTS] : -1, .events = POLLOUT },
      { .fd = f[ESB_SESSION_CELL_FD_REPLIES], .events = POLLIN },
      { .fd = f[ESB_SESSION_CELL_FD_STDOUT], .events = POLLIN }, { .fd = f[ESB_SESSION_CELL_FD_STDERR], .events = POLLIN },
      { .fd = f[ESB_SESSION_CELL_FD_REPORT], .events = POLLIN }, { .fd = c->conn, .events = POLLIN },
      { .fd = c->phase == RUNNING ? c->interrupt_fd : -1, .events = POLLIN },
    };
    int rc = poll(p, 7, poll_timeout(c));
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc == 0) {
      on_timeout(c);
      continue;
    }
    if (p[0].revents)
      write_request(c);
    if (p[2].revents)
      read_output(c, ESB_SESSION_CELL_FD_STDOUT);
    if (p[3].revents)
      read_output(c, ESB_SESSION_CELL_FD_STDERR);
    if (p[1].revents)
      read_replies(c);
    if (p[4].revents)
      read_report(c);
    if (p[5].revents)
      c->conn_ended = true; /* nothing else comes on it from the holder */
    if (p[6].revents)
      interrupt(c, ESB_CELL_INTERRUPTED);
    if (!c->replied && f[ESB_SESSION_CELL_FD_REPLIES] < 0 && c->phase == RUNNING) {
      /* The kernel is gone (or closed its fd 4): its pid 1 reports and
       * ends, the holder reaps it and lets go; a kernel that is not gone
       * is killed after the grace. */
      c->phase = STOPPING;
      c->deadline_ns = esb_now_ns() + ESB_CELL_GRACE_MS * 1000000ull;
    }
  }
}

/* The kernel's end as its pid 1 reported it. */
static void kernel_end(const struct cell *c, char *buf, size_t n) {
  const struct esb_report *rep = &c->report;
  if (c->report_got < sizeof *rep)
    snprintf(buf, n, "without a word of its pid 1");
  else if (rep->kind == ESB_REPORT_EXEC_FAILED)
    snprintf(buf, n, "could not start: %s", strerror(rep->error));
  else if (rep->kind == ESB_REPORT_SETUP_FAILED)
    snprintf(buf, n, "could not start (%s): %s", esb_setup_step_name(rep->step), strerror(rep->error));
  else if (WIFSIGNALED(rep->status))
    snprintf(buf, n, "killed by signal %d", WTERMSIG(rep->status));
  else
    snprintf(buf, n, "exited with status %d", WEXITSTATUS(rep->status));
}

static char *take_str(char **s) {
  char *v = *s;
  *s = NULL;
  return v;
}

/* A reply came: the kernel's word on the cell. */
static void replied(struct cell *c) {
  struct esb_cell_result *r = c->r;
  struct esb_kernel_reply *k = &c->reply;
  if (strcmp(k->status, "interrupted") == 0 && c->phase == STOPPING) {
    say(r, c->stop, ESB_OK, "the cell was %s: the %s kernel keeps its state",
        c->stop == ESB_CELL_TIMED_OUT ? "interrupted at its deadline" : "interrupted", c->language);
    return;
  }
  r->status = strcmp(k->status, "ok") == 0 ? ESB_CELL_OK : ESB_CELL_ERROR;
  r->value = take_str(&k->value);
  r->error_name = take_str(&k->name);
  r->error_message = take_str(&k->message);
  r->error_traceback = take_str(&k->traceback);
  if (r->status == ESB_CELL_ERROR && !r->error_name) /* "interrupted" by the cell's own raise */
    r->error_name = strdup(strcmp(k->status, "interrupted") == 0 ? "KeyboardInterrupt" : "KernelError");
}

/* No reply: the engine says what it saw. */
static void unanswered(struct cell *c, bool oom) {
  char end[256];
  kernel_end(c, end, sizeof end);
  struct esb_session_info info;
  struct esb_error err;
  c->r->state_lost = true;
  if (c->phase == KILLING && c->stop != ESB_CELL__COUNT)
    say(c->r, c->stop, ESB_OK, "the cell was interrupted%s and the %s kernel did not answer within %d ms: "
        "it was killed, its state is lost", c->stop == ESB_CELL_TIMED_OUT ? " at its deadline" : "", c->language,
        ESB_CELL_GRACE_MS);
  else if (esb_session_info(c->id, &info, &err) == 0 && info.end != ESB_SESSION_ALIVE)
    say(c->r, ESB_CELL_SESSION_ENDED, ESB_E_BACKEND, "session %s ended during the cell (%s)", c->id,
        esb_session_end_name(info.end));
  else if (c->left_replies && !oom && c->report_got < sizeof c->report)
    /* Its pid 1 said nothing of an end: the kill was ours, not the kernel's end. */
    say(c->r, ESB_CELL_DIED, ESB_OK, "the %s kernel closed its replies (fd 4) during the cell and did not end "
        "within %d ms: it was killed, its state is lost", c->language, ESB_CELL_GRACE_MS);
  else if (c->report_got == sizeof c->report && c->report.kind == ESB_REPORT_EXEC_FAILED) {
    c->r->state_lost = false; /* it never ran */
    say(c->r, ESB_CELL_FAILED, c->report.error == ENOENT ? ESB_E_EXEC_NOT_FOUND : ESB_E_EXEC_DENIED,
        "the %s kernel (%s) %s", c->language, kernels[slot_of(c->language)].program, end);
  }
  else
    say(c->r, ESB_CELL_DIED, ESB_OK, "the %s kernel ended during the cell (%s%s): its state is lost",
        c->language, oom ? "the session's memory limit; " : "", end);
}

/* The cell's end with the holder: DONE where the kernel answered (it is
 * free), else the connection shut, and its end awaited (the holder closes
 * it once it reaped the kernel: the result comes after its processes). */
static void let_go(struct cell *c) {
  if (c->replied) {
    struct esb_session_msg m = { .magic = ESB_SESSION_MAGIC, .kind = ESB_SESSION_CELL_DONE };
    esb_fd_send(c->conn, &m, sizeof m, NULL, 0);
    return;
  }
  if (c->phase != KILLING)
    kill_kernel(c);
  struct pollfd p = { .fd = c->conn, .events = POLLIN };
  int rc;
  do rc = poll(&p, 1, poll_timeout(c)); while (rc < 0 && errno == EINTR);
  for (int i = ESB_SESSION_CELL_FD_STDOUT; i <= ESB_SESSION_CELL_FD_STDERR; i++)
    if (c->fds[i] >= 0)
      read_output(c, i);
  while (c->fds[ESB_SESSION_CELL_FD_REPORT] >= 0 && c->report_got < sizeof c->report)
    read_report(c); /* the kernel's pid 1 wrote it before it ended, or never will: EOF */
}

/* The cell, on the kernel's fds the holder answered with. */
/* Whether the kernel, which ended without a reply, never read a byte of
 * the request: all of it is still in the pipe (FIONREAD counts a pipe's
 * bytes from either end), or none could be written. Such a kernel had
 * ended, or was ending, before the cell came: the cell's code never ran,
 * and a new kernel can take it. */
static bool request_untaken(const struct cell *c) {
  int unread = -1;
  if (c->write_refused)
    return true;
  return ioctl(c->fds[ESB_SESSION_CELL_FD_REQUESTS], FIONREAD, &unread) == 0 && unread >= 0 &&
         (size_t)unread == c->req_off;
}

static void go(struct cell *c, const struct esb_session_record *rec, const char *code, size_t len,
               const struct esb_plan *plan) {
  struct esb_cgroup cg;
  bool has_cgroup = esb_session_cgroup_view(rec, &cg);
  if (has_cgroup)
    esb_cgroup_oom_killed(&cg); /* the count before the cell */
  for (int i = ESB_SESSION_CELL_FD_REPLIES; i <= ESB_SESSION_CELL_FD_STDERR; i++)
    drain(c->fds[i]);
  if (make_request(c, code, len) < 0) {
    say(c->r, ESB_CELL_FAILED, ESB_E_SYSTEM, "out of memory");
    c->replied = false;
    let_go(c);
    return;
  }
  if (plan->timeout_ms)
    c->deadline_ns = esb_now_ns() + plan->timeout_ms * 1000000u;
  write_request(c);
  converse(c);
  c->untaken = !c->replied && c->stop == ESB_CELL__COUNT && request_untaken(c);
  let_go(c);
  if (c->untaken)
    return; /* cell_in asks again: a new kernel takes it */
  for (int i = ESB_SESSION_CELL_FD_STDOUT; i <= ESB_SESSION_CELL_FD_STDERR; i++)
    if (c->fds[i] >= 0)
      read_output(c, i); /* written before the reply: in the pipe already */
  if (c->replied)
    replied(c);
  else
    unanswered(c, has_cgroup && esb_cgroup_oom_killed(&cg));
}

/* The kernel this cell found had replaced one that ended: said. */
static void note_lost(struct cell *c, const struct esb_session_cell_answer *a) {
  struct esb_cell_result *r = c->r;
  r->state_lost = true;
  if (r->message)
    return;
  char how[64] = "";
  if (a->ended >= 0 && WIFSIGNALED(a->ended))
    snprintf(how, sizeof how, " (killed by signal %d)", WTERMSIG(a->ended));
  else if (a->ended >= 0)
    snprintf(how, sizeof how, " (exit status %d)", WEXITSTATUS(a->ended));
  if (asprintf(&r->message, "the %s kernel had ended%s: this cell ran in a new one, without the state of "
               "earlier cells", c->language, how) < 0)
    r->message = NULL;
}

/* The cell made ready to be asked again, of a new kernel: what the ended
 * one's connection and pipes gave is dropped. 0, or -1 (the plan's file
 * cannot be read again: the cell says the kernel ended). */
static int again(struct cell *c, int plan_fd) {
  close_fd(&c->conn);
  for (int i = 0; i < ESB_SESSION_CELL_FD__MAX; i++)
    close_fd(&c->fds[i]);
  free(c->req);
  free(c->rep);
  esb_kernel_reply_release(&c->reply);
  struct cell fresh = { .conn = -1, .fds = { -1, -1, -1, -1, -1 }, .interrupt_fd = c->interrupt_fd,
                        .language = c->language, .id = c->id, .stop = ESB_CELL__COUNT, .r = c->r };
  *c = fresh;
  struct esb_capture *outputs[2] = { &c->r->out, &c->r->err };
  for (int i = 0; i < 2; i++) {
    outputs[i]->len = 0;
    outputs[i]->total = 0;
    if (outputs[i]->data)
      outputs[i]->data[0] = '\0';
  }
  return lseek(plan_fd, 0, SEEK_SET) == 0 ? 0 : -1;
}

/* The kernel ended before it took the cell: asked again, once, the holder
 * (which reaped the ended kernel before it let go of the connection)
 * starts a new one, and the cell goes to it. A new kernel that ends before
 * it takes the cell too is the kernel's failure, said as died. */
static void take_again(struct cell *c, const char *dir, int slot, int plan_fd, struct esb_session_cell_answer *a,
                       const struct esb_session_record *rec, const char *code, size_t len,
                       const struct esb_plan *plan) {
  if (again(c, plan_fd) < 0) {
    say(c->r, ESB_CELL_DIED, ESB_OK, "the %s kernel had ended before it took the cell, and the cell could not be "
        "asked again (%s)", c->language, strerror(errno));
    return;
  }
  if (ask(c, dir, slot, plan_fd, a) < 0 && !c->r->message)
    say(c->r, ESB_CELL_SESSION_ENDED, ESB_E_INVALID_REQUEST, "session %s did not take the cell: it has ended",
        c->id);
  if (c->r->message)
    return;
  go(c, rec, code, len, plan);
  if (c->untaken)
    unanswered(c, false);
}

static void cell_in(struct cell *c, const char *dir, int slot, const struct esb_plan *plan, const char *code,
                    size_t len) {
  struct esb_session_record rec;
  struct esb_result planned = ESB_RESULT_INIT;
  int plan_fd = -1;
  struct esb_session_cell_answer a = { 0 };
  if (esb_session_record_read(dir, &rec) < 0)
    say(c->r, ESB_CELL_SESSION_ENDED, ESB_E_INVALID_REQUEST, "session %s has ended", c->id);
  else if (esb_session_write_plan(plan, &rec, &plan_fd, &planned) < 0)
    say(c->r, ESB_CELL_FAILED, planned.error, "%s", planned.error_message ? planned.error_message : "the plan");
  else if (ask(c, dir, slot, plan_fd, &a) < 0 && !c->r->message)
    say(c->r, ESB_CELL_SESSION_ENDED, ESB_E_INVALID_REQUEST, "session %s did not take the cell: it has ended",
        c->id);
  else if (!c->r->message) {
    go(c, &rec, code, len, plan);
    if (c->untaken)
      take_again(c, dir, slot, plan_fd, &a, &rec, code, len, plan);
    if (a.state_lost)
      note_lost(c, &a);
  }
  if (plan_fd >= 0)
    close(plan_fd);
  esb_result_release(&planned);
  esb_session_record_release(&rec);
}

/* Whether the policy gave the session in dir a kernel of language (its
 * record keeps the session hook's list); allowed gets the languages it
 * did that the engine has a kernel of, for the refusal. */
static bool policy_gave(const char *dir, const char *language, char *allowed, size_t n) {
  struct esb_session_record rec;
  allowed[0] = '\0';
  if (esb_session_record_read(dir, &rec) < 0)
    return true; /* the cell finds the session gone, and says so */
  bool gave = false;
  for (size_t i = 0, used = 0; i < rec.n_kernels; i++) {
    gave |= strcmp(rec.kernels[i], language) == 0;
    if (slot_of(rec.kernels[i]) >= 0 && used < n)
      used += (size_t)snprintf(allowed + used, n - used, "%s%s", used ? ", " : "", rec.kernels[i]);
  }
  esb_session_record_release(&rec);
  return gave;
}

void esb_session_cell(const char *id, const char *language, const char *code, size_t len,
                      const struct esb_plan *plan, struct esb_cell_result *r, int interrupt_fd) {
  uint64_t started = esb_now_ns();
  *r = (struct esb_cell_result)ESB_CELL_RESULT_INIT;
  r->out.cap = r->err.cap = plan->max_output_bytes;
  struct cell c = { .conn = -1, .fds = { -1, -1, -1, -1, -1 }, .interrupt_fd = interrupt_fd,
                    .language = language, .id = id, .stop = ESB_CELL__COUNT, .r = r };
  struct esb_session_info info;
  struct esb_error err;
  int slot = slot_of(language);
  if (slot < 0) {
    const char *argv[3];
    esb_session_kernel_argv(language, argv, &err);
    say(r, ESB_CELL_FAILED, err.code, "%s", err.message);
  } else if (esb_session_info(id, &info, &err) < 0) {
    say(r, ESB_CELL_FAILED, err.code, "%s", err.message);
  } else {
    snprintf(r->session, sizeof r->session, "%s", info.id);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", esb_session_dir(), info.id);
    char allowed[256];
    if (info.end != ESB_SESSION_ALIVE)
      say(r, ESB_CELL_SESSION_ENDED, ESB_E_INVALID_REQUEST, "session %s has ended (%s)", id,
          esb_session_end_name(info.end));
    else if (!policy_gave(dir, language, allowed, sizeof allowed))
      say(r, ESB_CELL_FAILED, ESB_E_INVALID_REQUEST, "no kernel for language '%s' in this session (the policy's "
          "session hook decides): the languages with one are %s", language, allowed[0] ? allowed : "none");
    else
      cell_in(&c, dir, slot, plan, code, len);
  }
  close_fd(&c.conn);
  for (int i = 0; i < ESB_SESSION_CELL_FD__MAX; i++)
    close_fd(&c.fds[i]);
  free(c.req);
  free(c.rep);
  esb_kernel_reply_release(&c.reply);
  r->duration_ms = (double)(esb_now_ns() - started) / 1e6;
}
