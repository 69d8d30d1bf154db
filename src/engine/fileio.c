#include "engine/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *esb_read_file(const char *path, size_t *lenp) {
  int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  char *buf = esb_read_fd(fd, lenp);
  if (fd > 0) {
    int e = errno;
    close(fd);
    errno = e;
  }
  return buf;
}

char *esb_read_fd(int fd, size_t *lenp) {
  size_t len = 0, cap = 65536;
  char *buf = malloc(cap);
  while (buf) {
    if (len + 1 >= cap) { /* room for the NUL after the bytes, always */
      char *p = realloc(buf, cap *= 2);
      if (!p) { free(buf); buf = NULL; errno = ENOMEM; break; }
      buf = p;
    }
    ssize_t n = read(fd, buf + len, cap - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) { int e = errno; free(buf); buf = NULL; errno = e; break; }
    if (n == 0) break;
    len += (size_t)n;
  }
  if (buf)
    buf[len] = '\0';
  *lenp = len;
  return buf;
}

int esb_write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  size_t len = strlen(text);
  ssize_t n = write(fd, text, len);
  int saved = errno;
  close(fd);
  errno = saved;
  return n == (ssize_t)len ? 0 : -1;
}

int esb_write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}
