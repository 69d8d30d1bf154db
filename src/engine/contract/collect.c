#include "engine/contract/collect.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/fileio.h"
#include "engine/contract/request.h"

/* ---- patterns ---- */

static size_t segment_length(const char *s) {
  size_t n = 0;
  while (s[n] && s[n] != '/')
    n++;
  return n;
}

/* Whether the one pattern character (or class, or escape) at p[*at] takes
 * c; *at moves past it. */
static bool one_char(const char *p, size_t n, size_t *at, char c) {
  size_t i = *at;
  if (p[i] == '?') {
    *at = i + 1;
    return true;
  }
  if (p[i] == '\\' && i + 1 < n) {
    *at = i + 2;
    return p[i + 1] == c;
  }
  if (p[i] == '[') {
    size_t j = i + 1;
    bool negate = j < n && (p[j] == '!' || p[j] == '^');
    if (negate)
      j++;
    size_t first = j;
    bool in = false;
    while (j < n && (p[j] != ']' || j == first)) {
      unsigned char lo = (unsigned char)p[j], hi = lo;
      if (j + 2 < n && p[j + 1] == '-' && p[j + 2] != ']') {
        hi = (unsigned char)p[j + 2];
        j += 2;
      }
      if ((unsigned char)c >= lo && (unsigned char)c <= hi)
        in = true;
      j++;
    }
    if (j < n) { /* closed: a class */
      *at = j + 1;
      return in != negate;
    }
  } /* an unclosed '[' is itself */
  *at = i + 1;
  return p[i] == c;
}

/* One segment of a pattern against one name, '*' backtracking as usual. */
static bool segment_match(const char *p, size_t pn, const char *s, size_t sn) {
  if (sn && s[0] == '.' && !(pn && p[0] == '.'))
    return false; /* hidden names are matched only explicitly */
  size_t pi = 0, si = 0, star_p = 0, star_s = 0;
  bool star = false;
  while (si < sn) {
    if (pi < pn && p[pi] == '*') {
      star = true;
      star_p = ++pi;
      star_s = si;
      continue;
    }
    size_t next = pi;
    if (pi < pn && one_char(p, pn, &next, s[si])) {
      pi = next;
      si++;
      continue;
    }
    if (!star)
      return false;
    pi = star_p;
    si = ++star_s;
  }
  while (pi < pn && p[pi] == '*')
    pi++;
  return pi == pn;
}

/* The pattern's segments from pat against the path's from path. below:
 * whether path is a directory below which something may match. */
static bool match_from(const char *pat, const char *path, bool below) {
  for (;;) {
    size_t pl = segment_length(pat);
    if (pl == 2 && pat[0] == '*' && pat[1] == '*') {
      if (!pat[2]) { /* a final "**": every file below, hidden names aside */
        if (!*path)
          return below;
        for (const char *s = path;; s++) {
          if (*s == '.')
            return false;
          s += segment_length(s);
          if (!*s)
            return true;
        }
      }
      if (match_from(pat + 3, path, below)) /* no directory */
        return true;
      if (!*path || *path == '.')
        return false;
      path += segment_length(path); /* one directory more */
      if (*path)
        path++;
      continue;
    }
    if (!*path)
      return below;
    size_t sl = segment_length(path);
    if (!segment_match(pat, pl, path, sl))
      return false;
    pat += pl;
    path += sl;
    if (!*pat)
      return !below && !*path;
    pat++;
    if (*path)
      path++;
  }
}

bool esb_glob_match(const char *pattern, const char *path) {
  return *pattern && match_from(pattern, path, false);
}

bool esb_glob_may_match_below(const char *pattern, const char *dir) {
  return *pattern && match_from(pattern, dir, true);
}

bool esb_collect_pattern_ok(const char *pattern) {
  size_t n = strlen(pattern);
  if (n == 0 || n > ESB_COLLECT_PATTERN_MAX || pattern[0] == '/')
    return false;
  for (const char *s = pattern;; s++) {
    size_t l = segment_length(s);
    if (l == 0 || (l == 1 && s[0] == '.') || (l == 2 && s[0] == '.' && s[1] == '.'))
      return false;
    s += l;
    if (!*s)
      return true;
  }
}

/* ---- the walk (async-signal-safe from here to the reader) ---- */

/* A frame: this header, the path's bytes, then len bytes of the file. */
struct frame {
  uint32_t kind;
  uint32_t path_len;
  uint64_t size;
  uint64_t len;
};

enum { FRAME_FILE = 0x454c4946, /* "FILE" */ FRAME_MORE = 0x45524f4d /* "MORE": some were left out */ };

struct walk {
  const struct esb_collect_spec *spec;
  int out;
  dev_t dev;
  uint64_t count, bytes, entries;
  bool more;
  char path[ESB_FILE_PATH_MAX + 1];
};

struct kernel_dirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

static bool wanted(const struct walk *w, bool below) {
  for (size_t i = 0; i < w->spec->n_patterns; i++)
    if (below ? esb_glob_may_match_below(w->spec->patterns[i], w->path)
              : esb_glob_match(w->spec->patterns[i], w->path))
      return true;
  return false;
}

/* The file name (in dir, at w->path) as a frame, within the ceilings. Its
 * length is known once it is copied: the header is written again then. */
static int emit(struct walk *w, int dir, const char *name, size_t path_len) {
  int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0)
    return 0; /* unreadable, or a symlink: not collected */
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_dev != w->dev) {
    close(fd);
    return 0;
  }
  if (w->count >= w->spec->max_count) {
    w->more = true;
    close(fd);
    return 0;
  }
  uint64_t room = w->spec->max_bytes - w->bytes;
  if (room > w->spec->max_file_bytes)
    room = w->spec->max_file_bytes;
  if (room > (uint64_t)st.st_size)
    room = (uint64_t)st.st_size; /* what grows while it is read is not waited for */
  struct frame f = { .kind = FRAME_FILE, .path_len = (uint32_t)path_len, .size = (uint64_t)st.st_size };
  off_t at = lseek(w->out, 0, SEEK_END);
  int rc = at < 0 || esb_write_all(w->out, (const char *)&f, sizeof f) < 0 ||
           esb_write_all(w->out, w->path, path_len) < 0 ? -1 : 0;
  char buf[4096];
  while (rc == 0 && f.len < room) {
    size_t want = room - f.len < sizeof buf ? (size_t)(room - f.len) : sizeof buf;
    ssize_t n = read(fd, buf, want);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break; /* its end, or unreadable from here: what there was */
    rc = esb_write_all(w->out, buf, (size_t)n);
    f.len += (uint64_t)n;
  }
  close(fd);
  if (rc == 0 && f.len != 0 && pwrite(w->out, &f, sizeof f, at) != (ssize_t)sizeof f)
    rc = -1;
  w->count++;
  w->bytes += f.len;
  return rc;
}

static int walk_dir(struct walk *w, int dir, size_t path_len, int depth) {
  char buf[2048] __attribute__((aligned(8)));
  for (;;) {
    long n = syscall(SYS_getdents64, dir, buf, sizeof buf);
    if (n <= 0)
      return 0; /* the end, or unreadable from here */
    for (long off = 0; off < n;) {
      struct kernel_dirent64 *d = (struct kernel_dirent64 *)(void *)(buf + off);
      off += d->d_reclen;
      const char *name = d->d_name;
      if (name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2])))
        continue;
      if (++w->entries > ESB_COLLECT_MAX_ENTRIES) {
        w->more = true;
        return 0;
      }
      size_t len = strlen(name), at = path_len ? path_len + 1 : 0;
      if (at + len > ESB_FILE_PATH_MAX)
        continue;
      if (path_len)
        w->path[path_len] = '/';
      memcpy(w->path + at, name, len + 1);
      int rc = 0;
      if (d->d_type == DT_DIR) {
        if (depth + 1 < ESB_COLLECT_MAX_DEPTH && wanted(w, true)) {
          int sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          struct stat st;
          if (sub >= 0 && fstat(sub, &st) == 0 && st.st_dev == w->dev)
            rc = walk_dir(w, sub, at + len, depth + 1);
          if (sub >= 0)
            close(sub);
        }
      } else if ((d->d_type == DT_REG || d->d_type == DT_UNKNOWN) && wanted(w, false)) {
        rc = emit(w, dir, name, at + len);
      }
      w->path[path_len] = '\0';
      if (rc < 0)
        return -1;
    }
  }
}

int esb_collect_walk(int dir, const struct esb_collect_spec *spec, int out) {
  struct walk w = { .spec = spec, .out = out };
  struct stat st;
  /* An fd of our own: the caller's keeps its offset, and we start at 0. */
  int top = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (top < 0 || fstat(top, &st) < 0) {
    if (top >= 0)
      close(top);
    return 0; /* nothing to walk: no files */
  }
  w.dev = st.st_dev;
  int rc = walk_dir(&w, top, 0, 0);
  close(top);
  if (rc < 0)
    return -1;
  if (w.more) {
    struct frame f = { .kind = FRAME_MORE };
    if (lseek(out, 0, SEEK_END) < 0 || esb_write_all(out, (const char *)&f, sizeof f) < 0)
      return -1;
  }
  return 0;
}

/* ---- the engine's side ---- */

void esb_collected_release(struct esb_collected *c) {
  for (size_t i = 0; i < c->count; i++) {
    free(c->files[i].path);
    free(c->files[i].data);
  }
  free(c->files);
  c->files = NULL;
  c->count = 0;
  c->incomplete = false;
}

static int by_path(const void *a, const void *b) {
  return strcmp(((const struct esb_collected_file *)a)->path, ((const struct esb_collected_file *)b)->path);
}

static int read_at(int fd, void *buf, size_t n, uint64_t at) {
  char *p = buf;
  while (n) {
    ssize_t r = pread(fd, p, n, (off_t)at);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -1;
    if (r == 0) {
      errno = EPROTO;
      return -1;
    }
    p += r;
    n -= (size_t)r;
    at += (uint64_t)r;
  }
  return 0;
}

int esb_collected_push(struct esb_collected *c, const char *path, size_t path_len, const char *data, size_t len,
                       uint64_t size) {
  struct esb_collected_file *files = realloc(c->files, (c->count + 1) * sizeof *files);
  if (!files)
    return -1;
  c->files = files;
  struct esb_collected_file *file = &files[c->count];
  *file = (struct esb_collected_file){ .len = len, .size = size, .truncated = len < size };
  file->path = malloc(path_len + 1);
  file->data = malloc(len ? len : 1);
  if (!file->path || !file->data) {
    free(file->path);
    free(file->data);
    errno = ENOMEM;
    return -1;
  }
  memcpy(file->path, path, path_len);
  file->path[path_len] = '\0';
  if (len)
    memcpy(file->data, data, len);
  c->count++;
  return 0;
}

void esb_collected_sort(struct esb_collected *c) {
  if (c->count > 1)
    qsort(c->files, c->count, sizeof *c->files, by_path);
}

int esb_collect_read(int fd, const struct esb_collect_spec *spec, struct esb_collected *c) {
  esb_collected_release(c);
  struct stat st;
  if (fstat(fd, &st) < 0)
    return -1;
  uint64_t end = (uint64_t)st.st_size, at = 0, bytes = 0;
  if (end > spec->max_bytes + (spec->max_count + 1) * (sizeof(struct frame) + ESB_FILE_PATH_MAX)) {
    errno = EPROTO;
    return -1;
  }
  char *buf = malloc(end ? (size_t)end : 1);
  if (!buf || read_at(fd, buf, (size_t)end, 0) < 0)
    goto fail;
  while (at < end) {
    struct frame f;
    if (end - at < sizeof f)
      goto bad;
    memcpy(&f, buf + at, sizeof f);
    at += sizeof f;
    if (f.kind == FRAME_MORE) {
      c->incomplete = true;
      continue;
    }
    if (f.kind != FRAME_FILE || f.path_len == 0 || f.path_len > ESB_FILE_PATH_MAX || c->count >= spec->max_count ||
        f.len > spec->max_file_bytes || f.len > spec->max_bytes - bytes || f.path_len > end - at ||
        f.len > end - at - f.path_len || f.len > f.size)
      goto bad;
    const char *path = buf + at;
    if (memchr(path, '\0', f.path_len) || esb_collected_push(c, path, f.path_len, path + f.path_len,
                                                              (size_t)f.len, f.size) < 0)
      goto bad;
    if (!esb_file_path_ok(c->files[c->count - 1].path))
      goto bad;
    at += f.path_len + f.len;
    bytes += f.len;
  }
  free(buf);
  esb_collected_sort(c);
  return 0;
bad:
  errno = EPROTO;
fail:;
  int saved = errno;
  free(buf);
  return esb_collected_discard(c, saved);
}

int esb_collected_discard(struct esb_collected *c, int err) {
  esb_collected_release(c);
  errno = err;
  return -1;
}
