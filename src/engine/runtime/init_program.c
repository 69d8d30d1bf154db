#include "engine/runtime/init_program.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/sandbox/clone.h"
#include "engine/sandbox/fd_passing.h"
#include "engine/sandbox/fork_server.h"
#include "engine/install_paths.h"
#include "engine/sandbox/sandbox_child.h"
#include "engine/sandbox/spawn.h"
#include "engine/runtime/spawner.h"

/* echo-sandbox-init: $ECHO_SANDBOX_INIT ("none": do without), else the
 * installation's (engine/install_paths.h: the build's in a build tree).
 * It is opened for each exec: the engine keeps no fd of its own open but
 * the fork server's (a host such as nginx, which does not use the
 * program, sees every fd it did not open as a leak). */
const char *esb_init_program(void) {
  const char *named = getenv("ECHO_SANDBOX_INIT");
  return named && strcmp(named, "none") == 0 ? NULL : esb_install_program(ESB_PROGRAM_INIT);
}

/* What the vfork-like child needs: all prepared, as it may not allocate. */
struct init_exec {
  int program;                 /* echo-sandbox-init */
  const int *from;             /* the fd that becomes each of its fds; -1: none */
  char *const *argv, *const *envp;
  bool report;                 /* a failed exec is reported on ESB_WIRE_FD_REPORT (which is
                                  the fork server's socket when the program is that) */
};

/* The child of esb_clone_vfork: the fds in place, then exec. It shares our
 * memory while we wait, so system calls only, and no sanitizer's hooks. */
__attribute__((no_sanitize("address", "undefined")))
static int exec_init(void *arg) {
  struct init_exec *x = arg;
  /* Above the numbers being placed, so that it survives their placing. */
  int program = (int)syscall(SYS_fcntl, x->program, F_DUPFD_CLOEXEC, ESB_WIRE_FD__END);
  esb_child_wire_place(x->from, false);
  syscall(SYS_execveat, program, "", x->argv, x->envp, AT_EMPTY_PATH);
  struct esb_report r = { .kind = ESB_REPORT_SETUP_FAILED, .step = esb_child_init_step(), .error = errno };
  if (x->report) /* placed: the caller's number for it may be another fd's now */
    syscall(SYS_write, ESB_WIRE_FD_REPORT, &r, sizeof r);
  return 127;
}

/* Execs the program with the fds from[] in place: its pid, or -1 with
 * errno (ENOSYS: no vfork-like clone here). */
static pid_t exec_program(const int from[ESB_WIRE_FD__END], char *const *argv, bool report,
                          int cgroup_fd, int *pidfd) {
  const char *path = esb_init_program();
  int program = path ? open(path, O_PATH | O_CLOEXEC) : (errno = ENOENT, -1);
  if (program < 0)
    return -1;
  static char *const envp[] = { NULL };
  struct init_exec x = { .program = program, .from = from, .argv = argv, .envp = envp,
                         .report = report };
  enum { STACK_SIZE = 64 * 1024 };
  void *stack = malloc(STACK_SIZE);
  pid_t pid = -1;
  if (stack)
    pid = esb_clone_vfork(exec_init, &x, stack, STACK_SIZE, pidfd, cgroup_fd);
  int saved = stack ? errno : ENOMEM;
  free(stack);
  close(program);
  errno = saved;
  return pid;
}

/* The fork server, shared by every thread of the process. */
static struct {
  pthread_mutex_t lock;
  int sock, pidfd;  /* our end of its socket, its pidfd: -1 while none runs */
  bool failed;      /* it could not be started: runs exec the program */
} server = { PTHREAD_MUTEX_INITIALIZER, -1, -1, false };

static void close_fd(int *fd) {
  if (*fd >= 0) {
    close(*fd);
    *fd = -1;
  }
}

/* Whether the server may be used by this process and this thread. */
static bool server_wanted(void) {
  const char *env = getenv("ECHO_SANDBOX_FORK_SERVER");
  if (env && strcmp(env, "0") == 0)
    return false;
  return esb_spawner_on_pool() || (pid_t)syscall(SYS_gettid) == getpid();
}

/* One reply: 0 with *reply (and *fd, or -1 when none came), or -1 with
 * errno (EPIPE: the server is gone; EPROTO: not a reply of this
 * version). */
static int receive_reply(struct esb_fork_reply *reply, int *fd) {
  int n;
  ssize_t got = esb_fd_recv(server.sock, reply, sizeof *reply, fd, 1, &n);
  if (n == 0)
    *fd = -1;
  if (got == (ssize_t)sizeof *reply && reply->magic == ESB_FORK_SERVER_MAGIC)
    return 0;
  close_fd(fd);
  errno = got == 0 ? EPIPE : got > 0 ? EPROTO : errno;
  return -1;
}

/* Reaps a server that is gone (or is made to go), so that the next run
 * starts another. Called with the lock held. */
static void server_drop(void) {
  if (server.pidfd >= 0) {
    syscall(SYS_pidfd_send_signal, server.pidfd, SIGKILL, NULL, 0);
    siginfo_t info;
    syscall(SYS_waitid, P_PIDFD, server.pidfd, &info, WEXITED | __WALL, NULL);
  }
  close_fd(&server.pidfd);
  close_fd(&server.sock);
}

/* Starts the server and waits for its greeting. Called with the lock
 * held. 0, or -1 (nothing left behind). */
static int server_start(void) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
    return -1;
  int from[ESB_WIRE_FD__END];
  for (int i = 0; i < ESB_WIRE_FD__END; i++)
    from[i] = -1;
  from[ESB_FORK_SERVER_FD] = fds[1];
  static char *const argv[] = { "echo-sandbox-init", ESB_FORK_SERVER_ARG, NULL };
  pid_t pid = exec_program(from, argv, false, -1, &server.pidfd);
  close(fds[1]);
  server.sock = fds[0];
  if (pid < 0) {
    server.pidfd = -1;
    close_fd(&server.sock);
    return -1;
  }
  struct esb_fork_reply hello;
  int fd;
  if (receive_reply(&hello, &fd) < 0 || hello.pid != 0 || fd >= 0) {
    close_fd(&fd);
    server_drop();
    return -1;
  }
  return 0;
}

/* Asks the server for a run's init: its pid, or -1 with errno (EPIPE or
 * EPROTO: the server is of no use; else the clone's errno, and the
 * server goes on). Called with the lock held. */
static pid_t server_fork(const int from[ESB_WIRE_FD__END], int cgroup_fd, const char *key, size_t key_len,
                         uint64_t clone_flags, uid_t owner, int *pidfd) {
  static union {
    struct esb_fork_request req;
    char bytes[sizeof(struct esb_fork_request) + ESB_FORK_KEY_MAX];
  } message; /* the lock is held */
  struct esb_fork_request *req = &message.req;
  *req = (struct esb_fork_request){ .magic = ESB_FORK_SERVER_MAGIC, .cgroup = -1,
                                    .namespaces = clone_flags & ESB_FORK_NAMESPACES,
                                    .owner_uid = owner == (uid_t)-1 ? ESB_FORK_NO_OWNER : (uint32_t)owner };
  if (key_len <= ESB_FORK_KEY_MAX) { /* a larger root is built by its run */
    req->key_len = (uint32_t)key_len;
    memcpy(message.bytes + sizeof *req, key, key_len);
  }
  int fds[ESB_WIRE_FD__END + 1], n = 0;
  for (int i = 0; i < ESB_WIRE_FD__END; i++) {
    req->slot[i] = from[i] < 0 ? -1 : n;
    if (from[i] >= 0)
      fds[n++] = from[i];
  }
  if (cgroup_fd >= 0) {
    req->cgroup = n;
    fds[n++] = cgroup_fd;
  }
  if (esb_fd_send(server.sock, message.bytes, sizeof *req + req->key_len, fds, n) < 0) {
    errno = EPIPE;
    return -1;
  }
  struct esb_fork_reply reply;
  int fd;
  if (receive_reply(&reply, &fd) < 0)
    return -1;
  if (reply.pid <= 0 || fd < 0) {
    close_fd(&fd);
    errno = reply.pid <= 0 && reply.error > 0 && reply.error != EPIPE && reply.error != EPROTO
              ? reply.error : EPROTO;
    return -1;
  }
  *pidfd = fd;
  return reply.pid;
}

pid_t esb_init_start(const int from[ESB_WIRE_FD__END], int cgroup_fd, const char *key, size_t key_len,
                     uint64_t clone_flags, uid_t owner, int *pidfd) {
  if (server_wanted()) {
    pthread_mutex_lock(&server.lock);
    pid_t pid = -1;
    /* A server found gone (killed) is replaced once, for this run. */
    for (int tries = 0; pid < 0 && tries < 2; tries++) {
      if (server.sock < 0 && !server.failed && server_start() < 0)
        server.failed = true; /* it would fail the same way each time */
      if (server.sock < 0)
        break;
      pid = server_fork(from, cgroup_fd, key, key_len, clone_flags, owner, pidfd);
      if (pid < 0 && errno != EPIPE && errno != EPROTO)
        break; /* its clone failed: the exec below says why */
      if (pid < 0)
        server_drop();
    }
    pthread_mutex_unlock(&server.lock);
    if (pid >= 0)
      return pid;
    /* Else this run execs the program, which then tells what failed (a
     * clone refused its namespaces: the program's unshare says why). */
  }
  static char *const argv[] = { "echo-sandbox-init", NULL };
  return exec_program(from, argv, from[ESB_WIRE_FD_REPORT] >= 0, cgroup_fd, pidfd);
}
