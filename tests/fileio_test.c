#include "engine/fileio.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"

/* What esb_read_fd reads of n bytes through a pipe: all of them, and a NUL
 * after them (the session's files are parsed as C strings: without it,
 * strchr ran on into the heap). */
static void reads(size_t n, const char *what) {
  int p[2];
  if (pipe(p) < 0)
    abort();
  char *bytes = malloc(n);
  memset(bytes, 'x', n);
  if (fork() == 0) { /* a writer of its own: n may be more than the pipe holds */
    close(p[0]);
    for (size_t done = 0; done < n;) {
      ssize_t w = write(p[1], bytes + done, n - done);
      if (w <= 0) _exit(1);
      done += (size_t)w;
    }
    _exit(0);
  }
  close(p[1]);
  size_t len = 0;
  char *got = esb_read_fd(p[0], &len);
  close(p[0]);
  ok(got && len == n && memcmp(got, bytes, n) == 0, what);
  ok(got && got[len] == '\0', "and a NUL follows them");
  free(got);
  free(bytes);
}

int main(void) {
  reads(0, "nothing read is an empty buffer");
  reads(5, "a few bytes");
  reads(65535, "one byte less than the first buffer");
  reads(65536, "exactly the first buffer");
  reads(200000, "more than the first buffer");
  return tap_done();
}
