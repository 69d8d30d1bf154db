/* Files out: the files of a run's working dir that its request's `collect`
 * patterns match, gathered once the program has ended.
 *
 * In two halves, so that the half that touches the program's files runs
 * where they are. esb_collect_walk runs inside the sandbox, in its pid 1,
 * once every process of the run is gone (or, for a run without namespaces,
 * on the host): it makes system calls and pure computations only (no
 * allocation: it may run in a clone of a threaded host) and writes what it
 * finds as frames to a file of the engine's (a memfd). esb_collect_read, in
 * the engine, reads the frames back into a result's files and trusts none
 * of them: sizes, counts and paths are checked again.
 *
 * What is collected: regular files with a single link, reached from the
 * working dir one component at a time without following a symlink and
 * without leaving the working dir's file system, whose paths relative to
 * it match one of the patterns. A special file (a fifo, a device) is never
 * opened for reading; a hard link is no way to reach a file outside.
 *
 * The pattern grammar (esb_glob_match), segment by segment ('/' apart):
 * '*' matches any run of characters but '/', '?' one character, "[...]"
 * one of a class ("[!...]" or "[^...]" none of it, "a-z" ranges), "\\x"
 * the character x; a segment that is exactly "**" matches any number of
 * directories, none included. As in the shell and Python's glob, a name
 * starting with '.' is matched only by a segment that starts with '.'. */
#ifndef ESB_ENGINE_COLLECT_H
#define ESB_ENGINE_COLLECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct esb_collect_spec {
  const char *const *patterns;
  size_t n_patterns;
  uint64_t max_count;      /* files, at most; the others are left out (incomplete) */
  uint64_t max_file_bytes; /* bytes of one file, at most: the rest is cut (truncated) */
  uint64_t max_bytes;      /* bytes of all files together, at most: later files are cut */
};

/* The walk's own bounds, whatever the policy: directory depth, and entries
 * looked at (a working dir of a million empty files must not hold pid 1). */
#define ESB_COLLECT_MAX_DEPTH 16
#define ESB_COLLECT_MAX_ENTRIES 100000
/* The request's patterns: how many, and how long each. */
#define ESB_COLLECT_MAX_PATTERNS 64
#define ESB_COLLECT_PATTERN_MAX 1024

/* Whether path (relative, '/' apart) matches pattern. */
bool esb_glob_match(const char *pattern, const char *path);

/* Whether something below the directory dir (relative, '/' apart) may
 * match pattern: the walk enters only such directories. */
bool esb_glob_may_match_below(const char *pattern, const char *dir);

/* Whether pattern is one a request may give: not empty, relative, no empty
 * or ".." segment, at most ESB_COLLECT_PATTERN_MAX bytes. */
bool esb_collect_pattern_ok(const char *pattern);

/* Walks the directory dir (an fd, not closed; its file system bounds the
 * walk) and writes a frame for each matching file to out, a file at its
 * end. Returns 0, or -1 with errno when out could not be written.
 * Async-signal-safe. */
int esb_collect_walk(int dir, const struct esb_collect_spec *spec, int out);

struct esb_collected_file {
  char *path;      /* relative to the working dir */
  char *data;      /* its first len bytes */
  size_t len;
  uint64_t size;   /* its size when it was read */
  bool truncated;  /* len < size: a ceiling cut it */
};

struct esb_collected {
  bool wanted;     /* the request had patterns: the result lists the files */
  bool incomplete; /* more files matched than the ceilings (or the walk's bounds) let through */
  struct esb_collected_file *files; /* owned, sorted by path */
  size_t count;
};

/* Reads the frames of the file fd (from its start) into *c, whose files it
 * replaces. Returns 0, or -1 with errno (EPROTO: not frames within spec's
 * ceilings, which the walker never writes). */
int esb_collect_read(int fd, const struct esb_collect_spec *spec, struct esb_collected *c);

/* Adds a copy of one file to *c (path of path_len bytes, no NUL in it):
 * 0, or -1 with errno (ENOMEM). */
int esb_collected_push(struct esb_collected *c, const char *path, size_t path_len, const char *data, size_t len,
                       uint64_t size);

/* Sorts the files by path, as a result lists them. */
void esb_collected_sort(struct esb_collected *c);

/* The readers' way out: frees the files and returns -1 with errno err. */
int esb_collected_discard(struct esb_collected *c, int err);

/* Frees the files and leaves *c empty (wanted stays as it was). */
void esb_collected_release(struct esb_collected *c);

#endif
