#include "daemon/listen.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Makes the directories above a socket path that do not exist yet (mode
 * 0755, as systemd's RuntimeDirectory= would), so that --listen
 * unix:/run/echo-sandbox/x.sock works outside systemd too. Who may connect is
 * the socket's own mode (--socket-mode). Returns 0, or -1 with errno. */
static int make_parents(const char *path) {
  char dir[sizeof ((struct sockaddr_un *)0)->sun_path];
  snprintf(dir, sizeof dir, "%s", path);
  for (char *slash = strchr(dir + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
    *slash = '\0';
    if (mkdir(dir, 0755) == 0) {
      if (chmod(dir, 0755) < 0) /* whatever the umask (the unit's is 0077) */
        return -1;
    } else if (errno != EEXIST) {
      return -1;
    }
    *slash = '/';
  }
  return 0;
}

int esb_daemon_listen(const char *spec, unsigned socket_mode, gid_t socket_gid, char **unix_path, char *where,
                      size_t wlen, struct esb_error *err) {
  int fd;
  if (!strncmp(spec, "unix:", 5)) {
    const char *path = spec + 5;
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof a.sun_path) {
      esb_error_set(err, ESB_E_INVALID_REQUEST, "socket path too long: %s", path);
      return -1;
    }
    strcpy(a.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
      unlink(path); /* a stale socket of an earlier daemon */
    if (make_parents(path) < 0) {
      esb_error_errno(err, ESB_E_SYSTEM, "making the directory of %s", path);
      return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 512) < 0) {
      esb_error_errno(err, ESB_E_SYSTEM, "listening on %s", spec);
      if (fd >= 0) close(fd);
      return -1;
    }
    /* The group first: until the mode is set, the socket is the umask's. */
    if (socket_gid != (gid_t)-1 && chown(path, (uid_t)-1, socket_gid) < 0) {
      esb_error_errno(err, ESB_E_SYSTEM, "--socket-group: chown %s", path);
      close(fd);
      unlink(path);
      return -1;
    }
    if (chmod(path, socket_mode) < 0) {
      esb_error_errno(err, ESB_E_SYSTEM, "chmod %s", path);
      close(fd);
      unlink(path);
      return -1;
    }
    *unix_path = strdup(path);
    snprintf(where, wlen, "%s", path);
    return fd;
  }
  char host[256];
  const char *colon = strrchr(spec, ':');
  if (!colon || (size_t)(colon - spec) >= sizeof host) {
    esb_error_set(err, ESB_E_INVALID_REQUEST, "--listen %s: expected HOST:PORT or unix:/path", spec);
    return -1;
  }
  snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
  if (host[0] == '[' && host[strlen(host) - 1] == ']') {
    memmove(host, host + 1, strlen(host));
    host[strlen(host) - 1] = '\0';
  }
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai;
  int rc = getaddrinfo(host, colon + 1, &hints, &ai);
  if (rc) {
    esb_error_set(err, ESB_E_INVALID_REQUEST, "--listen %s: %s", spec, gai_strerror(rc));
    return -1;
  }
  fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0)
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 512) < 0) {
    esb_error_errno(err, ESB_E_SYSTEM, "listening on %s", spec);
    if (fd >= 0) close(fd);
    freeaddrinfo(ai);
    return -1;
  }
  freeaddrinfo(ai);
  struct sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  getsockname(fd, (struct sockaddr *)&bound, &blen);
  int port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                               : ((struct sockaddr_in *)&bound)->sin_port);
  snprintf(where, wlen, "%d", port);
  return fd;
}
