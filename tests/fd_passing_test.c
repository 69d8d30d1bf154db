#include "engine/sandbox/fd_passing.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"

/* How many fds this process has open. */
static int open_fds(void) {
  int n = 0;
  for (int fd = 0; fd < 1024; fd++)
    n += fcntl(fd, F_GETFD) >= 0;
  return n;
}

/* Whether a and b are the same open file. */
static bool same_file(int a, int b) {
  struct stat sa, sb;
  return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int main(void) {
  int sock[2], pipe_fds[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sock) < 0 || pipe(pipe_fds) < 0)
    return 1;

  int sent[3] = { pipe_fds[0], pipe_fds[1], pipe_fds[0] };
  ok(esb_fd_send(sock[0], "abc", 3, sent, 3) == 0, "a message with three fds goes");
  char data[8] = "";
  int got[4], n = -1;
  is_int(esb_fd_recv(sock[1], data, sizeof data, got, 4, &n), 3, "its three bytes come");
  is_int(n, 3, "and its three fds, the same one twice as two");
  ok(same_file(got[0], pipe_fds[0]) && same_file(got[1], pipe_fds[1]) && same_file(got[2], pipe_fds[0]),
     "each is the file sent, in order");
  ok(got[0] != pipe_fds[0] && got[0] != got[2], "each is an fd of its own");
  ok((fcntl(got[0], F_GETFD) & FD_CLOEXEC) && (fcntl(got[2], F_GETFD) & FD_CLOEXEC),
     "received fds are close-on-exec");
  for (int i = 0; i < n; i++)
    close(got[i]);

  ok(esb_fd_send(sock[0], "x", 1, NULL, 0) == 0, "a message without fds goes");
  is_int(esb_fd_recv(sock[1], data, sizeof data, got, 4, &n), 1, "and comes");
  is_int(n, 0, "with none");

  ok(esb_fd_send(sock[0], "y", 1, sent, 3) == 0, "three fds go to a reader with room for two");
  int before = open_fds();
  errno = 0;
  is_int(esb_fd_recv(sock[1], data, sizeof data, got, 2, &n), -1, "the message is refused");
  is_int(errno, EPROTO, "as cut short");
  is_int(n, 0, "with no fd left to the reader");
  is_int(open_fds(), before, "the fds that came were closed");

  ok(esb_fd_send(sock[0], "0123456789", 10, NULL, 0) == 0, "a message longer than the reader's room goes");
  is_int(esb_fd_recv(sock[1], data, 4, got, 4, &n), -1, "and is refused as cut short");

  close(sock[0]);
  is_int(esb_fd_recv(sock[1], data, sizeof data, got, 4, &n), 0, "once the other end is gone: 0");
  errno = 0;
  ok(esb_fd_send(sock[1], "z", 1, NULL, 0) < 0 && errno == EPIPE, "and a send is EPIPE, with no SIGPIPE");
  close(sock[1]);
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  return tap_done();
}
