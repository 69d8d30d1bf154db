/* A session's kernels on the holder's side (engine/sandbox/session_kernel.h).
 *
 * Decisions:
 *  - The interrupt goes to the kernel's process group (its pid 1's, which
 *    the kernel is in unless it left it), as a terminal's ^C would: its
 *    pid 1, the init of the kernel's pid namespace with default
 *    dispositions, drops a SIGINT from the holder's namespace; the kernel,
 *    with a handler, takes it, and so does a subprocess the cell waits on.
 *  - A second cell of a busy kernel is refused (BUSY), not queued: it
 *    would wait on another caller's cell, of whose deadline it knows
 *    nothing, and the caller that wants order can wait for its first. */
#include "engine/sandbox/session_kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/sandbox/child_wire.h"
#include "engine/sandbox/clone.h"
#include "engine/sandbox/fd_passing.h"

/* The kernel's ends of its pipes, as the clone gets them. */
enum { THEIR_STDIN, THEIR_STDOUT, THEIR_STDERR, THEIR_REPORT, THEIR_REQUESTS, THEIR_REPLIES, THEIR__COUNT };

void esb_kernels_init(struct esb_kernels *ks) {
  for (int i = 0; i < ESB_SESSION_KERNELS; i++) {
    ks->k[i] = (struct esb_kernel){ .conn = -1, .ended = -1 };
    for (int j = 0; j < ESB_SESSION_CELL_FD__MAX; j++)
      ks->k[i].fds[j] = -1;
  }
}

static void close_all(int *fds, int n) {
  for (int i = 0; i < n; i++)
    if (fds[i] >= 0) {
      close(fds[i]);
      fds[i] = -1;
    }
}

/* The kernel's pid 1, in a pid namespace of its own: its fds out of the
 * way first (any of them may sit on 3 or 4), then requests on 3 and
 * replies on 4, which the program inherits. */
_Noreturn static void kernel_child(struct esb_child_wire *w, const int theirs[THEIR__COUNT]) {
  int high[THEIR__COUNT];
  for (int i = 0; i < THEIR__COUNT; i++)
    if ((high[i] = fcntl(theirs[i], F_DUPFD_CLOEXEC, 10)) < 0)
      _exit(125);
  if (dup2(high[THEIR_REQUESTS], 3) < 0 || dup2(high[THEIR_REPLIES], 4) < 0)
    _exit(125);
  struct esb_child_plan *p = &w->plan;
  for (int i = 0; i < 3; i++)
    p->stdio[i] = high[THEIR_STDIN + i];
  p->report_fd = high[THEIR_REPORT];
  p->collect_fd = p->sync_fd = -1;
  p->n_inherit = 2;
  esb_child_run_in_session(p);
}

static void wire_free(struct esb_child_wire *w) {
  free(w->net_rules);
  free(w->bytes);
  free(w->vectors);
  free(w->rootfs.steps);
  free(w);
}

/* Pipes: ours into k->fds (non-blocking: the clients read them so), the
 * kernel's into theirs. 0, or -1 with errno and nothing left open. */
static int make_pipes(struct esb_kernel *k, int theirs[THEIR__COUNT]) {
  int p[THEIR__COUNT][2];
  int made = 0;
  for (; made < THEIR__COUNT; made++)
    if (pipe2(p[made], O_CLOEXEC) < 0)
      break;
  if (made < THEIR__COUNT) {
    int saved = errno;
    for (int i = 0; i < made; i++)
      close_all(p[i], 2);
    errno = saved;
    return -1;
  }
  close(p[THEIR_STDIN][1]); /* the kernel's stdin is empty: cells come on fd 3 */
  theirs[THEIR_STDIN] = p[THEIR_STDIN][0];
  theirs[THEIR_REQUESTS] = p[THEIR_REQUESTS][0];
  k->fds[ESB_SESSION_CELL_FD_REQUESTS] = p[THEIR_REQUESTS][1];
  static const int read_side[][2] = { { THEIR_REPLIES, ESB_SESSION_CELL_FD_REPLIES },
    { THEIR_STDOUT, ESB_SESSION_CELL_FD_STDOUT }, { THEIR_STDERR, ESB_SESSION_CELL_FD_STDERR },
    { THEIR_REPORT, ESB_SESSION_CELL_FD_REPORT } };
  for (size_t i = 0; i < sizeof read_side / sizeof read_side[0]; i++) {
    theirs[read_side[i][0]] = p[read_side[i][0]][1];
    k->fds[read_side[i][1]] = p[read_side[i][0]][0];
  }
  for (int i = 0; i < ESB_SESSION_CELL_FD__MAX; i++)
    fcntl(k->fds[i], F_SETFL, fcntl(k->fds[i], F_GETFL) | O_NONBLOCK);
  return 0;
}

/* Starts the slot's kernel from the plan on plan_fd. 0, or -1 with errno. */
static int start(struct esb_kernel *k, int plan_fd) {
  struct esb_child_wire *w = calloc(1, sizeof *w);
  if (!w)
    return -1;
  if (esb_child_wire_read(plan_fd, w) < 0 || !w->plan.sandbox) {
    int saved = w->plan.sandbox ? errno : EPROTO;
    wire_free(w);
    errno = saved;
    return -1;
  }
  int theirs[THEIR__COUNT];
  if (make_pipes(k, theirs) < 0) {
    int saved = errno;
    wire_free(w);
    errno = saved;
    return -1;
  }
  pid_t pid = esb_clone(CLONE_NEWPID, NULL, SIGCHLD, -1, NULL);
  if (pid == 0)
    kernel_child(w, theirs);
  int saved = errno;
  close_all(theirs, THEIR__COUNT);
  wire_free(w);
  if (pid < 0) {
    close_all(k->fds, ESB_SESSION_CELL_FD__MAX);
    errno = saved;
    return -1;
  }
  k->pid = pid;
  return 0;
}

static void answer(int conn, const struct esb_session_cell_answer *a, const int *fds, int n) {
  if (esb_fd_send(conn, a, sizeof *a, fds, n) < 0)
    return; /* the client is gone: its connection's end says so */
}

/* Whether the slot's kernel has ended though its SIGCHLD is not read yet:
 * its pid 1 writes its report only as it ends (or closes the pipe by
 * ending), and nobody reads the pipe between cells. Such a kernel is
 * reaped here (its pid 1 _exits right after the report, so the wait is
 * short), so that a cell never goes to a kernel that has ended. */
static void reap_if_ended(struct esb_kernels *ks, struct esb_kernel *k) {
  struct pollfd p = { .fd = k->fds[ESB_SESSION_CELL_FD_REPORT], .events = POLLIN };
  if (!k->pid || k->conn >= 0 || k->killing || poll(&p, 1, 0) != 1)
    return;
  int status;
  pid_t pid;
  do pid = waitpid(k->pid, &status, 0); while (pid < 0 && errno == EINTR);
  if (pid == k->pid)
    esb_kernels_reaped(ks, pid, status);
}

void esb_kernels_cell(struct esb_kernels *ks, int conn, const struct esb_session_msg *m, const int *fds, int n) {
  struct esb_session_cell_answer a = { .magic = ESB_SESSION_MAGIC, .ended = -1 };
  struct esb_kernel *k = m->kernel < ESB_SESSION_KERNELS ? &ks->k[m->kernel] : NULL;
  if (k)
    reap_if_ended(ks, k);
  if (!k || n < 1) {
    a.word = ESB_SESSION_CELL_FAILED;
    a.error = EPROTO;
  } else if (k->conn >= 0 || k->killing) {
    a.word = ESB_SESSION_CELL_BUSY;
  } else if (!k->pid && start(k, fds[0]) < 0) {
    a.word = ESB_SESSION_CELL_FAILED;
    a.error = errno;
  } else {
    a.word = ESB_SESSION_CELL_GO;
    a.cell = ++k->cells;
    a.state_lost = k->lost;
    a.ended = k->lost ? k->ended : -1;
    k->lost = false;
  }
  answer(conn, &a, a.word == ESB_SESSION_CELL_GO ? k->fds : NULL,
         a.word == ESB_SESSION_CELL_GO ? ESB_SESSION_CELL_FD__MAX : 0);
  if (a.word == ESB_SESSION_CELL_GO)
    k->conn = conn;
  else
    close(conn);
}

void esb_kernels_poll(const struct esb_kernels *ks, struct pollfd *p) {
  for (int i = 0; i < ESB_SESSION_KERNELS; i++) {
    const struct esb_kernel *k = &ks->k[i];
    p[i] = (struct pollfd){ .fd = k->killing ? -1 : k->conn, .events = POLLIN };
  }
}

/* A word on a cell's connection, or its end. true: the cell ended. */
static bool on_conn(struct esb_kernel *k) {
  struct esb_session_msg m;
  int fds[1], n = 0;
  ssize_t got = esb_fd_recv(k->conn, &m, sizeof m, fds, 1, &n);
  close_all(fds, n);
  bool word = got == (ssize_t)sizeof m && m.magic == ESB_SESSION_MAGIC;
  if (word && m.kind == ESB_SESSION_CELL_INTERRUPT) {
    kill(-k->pid, SIGINT);
    return false;
  }
  if (word && m.kind == ESB_SESSION_CELL_DONE) {
    close(k->conn);
    k->conn = -1;
    return true;
  }
  if (got < 0 && (errno == EAGAIN || errno == EINTR))
    return false;
  /* Ended without DONE: the kernel's state is unknown, so it ends. Its
   * pid 1 is not reaped yet (only reap() does that): the pid is still its. */
  kill(k->pid, SIGKILL);
  k->killing = true;
  return true;
}

bool esb_kernels_events(struct esb_kernels *ks, const struct pollfd *p) {
  bool ended = false;
  for (int i = 0; i < ESB_SESSION_KERNELS; i++)
    if (p[i].fd >= 0 && p[i].revents)
      ended |= on_conn(&ks->k[i]);
  return ended;
}

bool esb_kernels_reaped(struct esb_kernels *ks, pid_t pid, int status) {
  for (int i = 0; i < ESB_SESSION_KERNELS; i++) {
    struct esb_kernel *k = &ks->k[i];
    if (k->pid != pid || pid <= 0)
      continue;
    close_all(k->fds, ESB_SESSION_CELL_FD__MAX);
    close_all(&k->conn, 1); /* the client waits for this: the kernel is gone */
    k->pid = 0;
    k->killing = false;
    k->lost = true;
    k->ended = status;
    return true;
  }
  return false;
}

bool esb_kernels_busy(const struct esb_kernels *ks) {
  for (int i = 0; i < ESB_SESSION_KERNELS; i++)
    if (ks->k[i].conn >= 0)
      return true;
  return false;
}
