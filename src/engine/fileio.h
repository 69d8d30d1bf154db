/* Whole-file reads and whole-buffer writes: for front ends (requests, token
 * files, results), and the collect walk's frames (esb_write_all). */
#ifndef ESB_ENGINE_FILEIO_H
#define ESB_ENGINE_FILEIO_H

#include <stddef.h>

/* Reads all of PATH ('-': stdin) into a malloc'd buffer the caller frees;
 * *lenp gets its length, and a NUL follows the bytes (not counted), so
 * that text may be parsed as a C string. NULL with errno on failure. */
char *esb_read_file(const char *path, size_t *lenp);

/* The same for what is left to read of an open fd (not closed). */
char *esb_read_fd(int fd, size_t *lenp);

/* Replaces the content of an existing file (a /proc or cgroup control file)
 * with text in one write: 0, or -1 with errno. */
int esb_write_file(const char *path, const char *text);

/* Writes all N bytes, retrying short writes and EINTR: 0, or -1 where the
 * write failed (a caller printing a result nobody reads may ignore it: not
 * an error of ours). Async-signal-safe. */
int esb_write_all(int fd, const char *p, size_t n);

#endif
