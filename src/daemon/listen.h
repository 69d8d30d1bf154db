/* The daemon's listening socket, for --listen: HOST:PORT (IPv4 or [IPv6];
 * port 0 for any free one) or unix:/path (the directories above it made
 * when missing, a stale socket replaced, then chown to socket_gid unless
 * it is (gid_t)-1, and chmod socket_mode). */
#ifndef ESB_DAEMON_LISTEN_H
#define ESB_DAEMON_LISTEN_H

#include <stddef.h>
#include <sys/types.h>

#include "engine/error.h"

/* Returns the listening fd (close-on-exec), with where the bound port or
 * the socket's path, and for a unix socket *unix_path (malloc'd: the caller
 * removes the socket and frees it); or -1 with *err. */
int esb_daemon_listen(const char *spec, unsigned socket_mode, gid_t socket_gid, char **unix_path, char *where,
                      size_t wlen, struct esb_error *err);

#endif
