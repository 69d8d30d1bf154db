/* One message with fds (SCM_RIGHTS) over a SOCK_SEQPACKET socket, both
 * ways: the engine and echo-sandbox-init's fork server speak so
 * (engine/sandbox/fork_server.h). Internal to the engine. */
#ifndef ESB_ENGINE_FD_PASSING_H
#define ESB_ENGINE_FD_PASSING_H

#include <stddef.h>
#include <sys/types.h>

enum { ESB_FD_PASSING_MAX = 16 };

/* Sends len bytes of data with the n fds (n <= ESB_FD_PASSING_MAX; ours
 * still). Returns 0, or -1 with errno (EPIPE: no one at the other end). */
int esb_fd_send(int sock, const void *data, size_t len, const int *fds, int n);

/* Receives one message into data (len bytes at most) and its fds, made
 * close-on-exec, into fds[] (*n of them, max at most). Returns the bytes
 * received (0: the other end is gone), or -1 with errno; a message cut
 * short (more bytes or fds than room) is EPROTO, its fds closed. */
ssize_t esb_fd_recv(int sock, void *data, size_t len, int *fds, int max, int *n);

#endif
