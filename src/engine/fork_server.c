/* The fork server's side, in echo-sandbox-init (engine/fork_server.h). */
#include "engine/fork_server.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/fd_passing.h"

enum { MAX_FDS = ESB_WIRE_FD__END + 1 };
_Static_assert((int)MAX_FDS <= (int)ESB_FD_PASSING_MAX, "a request's fds fit one message");

static void close_all(const int *fds, int n) {
  for (int i = 0; i < n; i++)
    close(fds[i]);
}

/* One request: its fds into fds[], their count into *n. 1: a request, 0:
 * the engine is gone, -1: a malformed one (its fds are closed). */
static int receive(struct esb_fork_request *req, int *fds, int *n) {
  ssize_t got = esb_fd_recv(ESB_FORK_SERVER_FD, req, sizeof *req, fds, MAX_FDS, n);
  if (got == 0 || (got < 0 && errno != EPROTO))
    return 0;
  bool ok = got == (ssize_t)sizeof *req && req->magic == ESB_FORK_SERVER_MAGIC && req->cgroup >= -1 &&
            req->cgroup < *n;
  for (int i = 0; ok && i < ESB_WIRE_FD__END; i++)
    ok = req->slot[i] >= -1 && req->slot[i] < *n;
  if (!ok) {
    close_all(fds, *n);
    return -1;
  }
  return 1;
}

static void answer(pid_t pid, int error, int pidfd) {
  struct esb_fork_reply reply = { ESB_FORK_SERVER_MAGIC, pid, error };
  if (esb_fd_send(ESB_FORK_SERVER_FD, &reply, sizeof reply, &pidfd, pidfd >= 0 ? 1 : 0) < 0)
    _exit(0); /* the engine is gone */
}

_Noreturn void esb_fork_server_main(void (*run_init)(void)) {
  /* Our end of the socket crosses no exec; the engine's end tells us when
   * it is gone, and so does this signal should it die first. */
  fcntl(ESB_FORK_SERVER_FD, F_SETFD, FD_CLOEXEC);
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  answer(0, 0, -1);
  for (;;) {
    struct esb_fork_request req;
    int fds[MAX_FDS], n = 0;
    int got = receive(&req, fds, &n);
    if (got == 0)
      _exit(0);
    if (got < 0) {
      answer(-1, EPROTO, -1);
      continue;
    }
    struct clone_args args;
    memset(&args, 0, sizeof args);
    int pidfd = -1;
    args.flags = CLONE_PARENT | CLONE_PIDFD;
    args.pidfd = (uint64_t)(uintptr_t)&pidfd;
    if (req.cgroup >= 0) {
      args.flags |= CLONE_INTO_CGROUP;
      args.cgroup = (uint64_t)fds[req.cgroup];
    }
    /* No stack of its own: fork semantics, the child on a copy of ours. */
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) {
      int from[ESB_WIRE_FD__END];
      for (int i = 0; i < ESB_WIRE_FD__END; i++)
        from[i] = req.slot[i] < 0 ? -1 : fds[req.slot[i]];
      esb_child_wire_place(from, true);
      run_init();
      _exit(127);
    }
    int error = pid < 0 ? errno : 0;
    close_all(fds, n);
    answer(pid < 0 ? -1 : (pid_t)pid, error, pid < 0 ? -1 : pidfd);
    if (pidfd >= 0)
      close(pidfd);
  }
}
