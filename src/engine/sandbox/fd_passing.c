#include "engine/sandbox/fd_passing.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

union control {
  char buf[CMSG_SPACE(sizeof(int) * ESB_FD_PASSING_MAX)];
  struct cmsghdr align;
};

int esb_fd_send(int sock, const void *data, size_t len, const int *fds, int n) {
  assert(n >= 0 && n <= ESB_FD_PASSING_MAX);
  union control control;
  struct iovec iov = { (void *)data, len };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
  if (n > 0) {
    memset(&control, 0, sizeof control); /* the padding after the fds too */
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
  }
  ssize_t sent;
  do sent = sendmsg(sock, &msg, MSG_NOSIGNAL); while (sent < 0 && errno == EINTR);
  return sent < 0 ? -1 : 0;
}

ssize_t esb_fd_recv(int sock, void *data, size_t len, int *fds, int max, int *n) {
  assert(max >= 0 && max <= ESB_FD_PASSING_MAX);
  union control control;
  struct iovec iov = { data, len };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                        .msg_controllen = sizeof control.buf };
  ssize_t got;
  do got = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); while (got < 0 && errno == EINTR);
  *n = 0;
  bool cut = got >= 0 && (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC));
  for (struct cmsghdr *c = got > 0 ? CMSG_FIRSTHDR(&msg) : NULL; c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
      continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (*n < max)
        fds[(*n)++] = fd;
      else {
        close(fd);
        cut = true;
      }
    }
  }
  if (cut) {
    for (int i = 0; i < *n; i++)
      close(fds[i]);
    *n = 0;
    errno = EPROTO;
    return -1;
  }
  return got;
}
