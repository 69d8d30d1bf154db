/* The kept answers of lstat for the host's paths (engine/sandbox/host_paths.h
 * says when one is given). */
#include "engine/sandbox/host_paths.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/statfs.h>
#include <unistd.h>

/* The changes to a directory's entries, and to the directory itself, that
 * could make a path below it resolve to another file. */
#define WATCHED (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF)

enum { MAX_KEPT = 128 };

static struct kept {
  char *path;     /* owned */
  int error;      /* lstat's errno, 0 when it found the path */
  mode_t mode;
  dev_t dev;
  ino_t ino;
  char *target;   /* owned: a symlink's target; NULL when not one */
} kept[MAX_KEPT];
static size_t n_kept;
static int changes = -1; /* inotify: the watched directories */
static int mounts = -1;  /* /proc/self/mountinfo: POLLPRI when a mount came or went */
static bool keeping;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void drop_all(void) {
  for (size_t i = 0; i < n_kept; i++) {
    free(kept[i].path);
    free(kept[i].target);
  }
  n_kept = 0;
  /* The watches go with their inotify instance. */
  if (changes >= 0)
    close(changes);
  if (mounts >= 0)
    close(mounts);
  changes = mounts = -1;
}

void esb_host_paths_keep(bool on) {
  pthread_mutex_lock(&lock);
  keeping = on;
  if (!on)
    drop_all();
  pthread_mutex_unlock(&lock);
}

void esb_host_paths_begin(void) {
  pthread_mutex_lock(&lock);
  if (changes < 0)
    return;
  /* Any event at all (an entry's change, IN_IGNORED, IN_Q_OVERFLOW) or a
   * mount table's change: all of it goes. A failed poll tells nothing. */
  struct pollfd told[2] = { { .fd = changes, .events = POLLIN }, { .fd = mounts, .events = POLLPRI } };
  if (poll(told, 2, 0) != 0)
    drop_all();
}

void esb_host_paths_end(void) {
  pthread_mutex_unlock(&lock);
}

/* Whether inotify tells of every change to a directory on fs type t: the
 * local file systems, whose changes all go through this kernel's VFS. */
static bool told_here(long t) {
  static const long local[] = { EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC, BTRFS_SUPER_MAGIC, TMPFS_MAGIC,
                                OVERLAYFS_SUPER_MAGIC, F2FS_SUPER_MAGIC, SQUASHFS_MAGIC, EROFS_SUPER_MAGIC_V1 };
  for (size_t i = 0; i < sizeof local / sizeof local[0]; i++)
    if (t == local[i])
      return true;
  return false;
}

/* Watches "/" and each directory below it down to path's own (a prefix
 * that is not there ends the walk: its parent tells of its making). Whether
 * path's lstat may be kept: false where an ancestor is a symlink or on a
 * file system inotify may not hear from. */
static bool watch_ancestors(const char *path) {
  char dir[PATH_MAX];
  size_t len = strlen(path);
  if (len >= sizeof dir || path[0] != '/')
    return false;
  for (size_t end = 1; end < len; end++) {
    if (end > 1 && path[end] != '/')
      continue;
    memcpy(dir, path, end);
    dir[end] = '\0';
    if (inotify_add_watch(changes, dir, WATCHED | IN_DONT_FOLLOW | IN_ONLYDIR) < 0)
      return errno == ENOENT; /* ENOTDIR: a file, or a symlink, on the way */
    struct statfs fs;
    if (statfs(dir, &fs) < 0 || !told_here((long)fs.f_type))
      return false;
  }
  return true;
}

/* Whether changes can be told at all: inotify and the mount table open. */
static bool listening(void) {
  if (changes >= 0)
    return true;
  changes = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  mounts = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  if (changes >= 0 && mounts >= 0)
    return true;
  drop_all();
  return false;
}

static int answer(const struct kept *k, struct stat *st, char *target, size_t n) {
  if (k->error || (k->target && strlen(k->target) >= n)) {
    errno = k->error ? k->error : ENAMETOOLONG;
    return -1;
  }
  memset(st, 0, sizeof *st);
  st->st_mode = k->mode;
  st->st_dev = k->dev;
  st->st_ino = k->ino;
  if (k->target)
    snprintf(target, n, "%s", k->target);
  return 0;
}

/* lstat and readlink, as asked. */
static int look_up(const char *path, struct stat *st, char *target, size_t n) {
  if (lstat(path, st) < 0)
    return -1;
  if (S_ISLNK(st->st_mode)) {
    ssize_t got = readlink(path, target, n);
    if (got < 0)
      return -1;
    if ((size_t)got >= n) {
      errno = ENAMETOOLONG;
      return -1;
    }
    target[got] = '\0';
  }
  return 0;
}

static void keep(const char *path, int rc, const struct stat *st, const char *target) {
  struct kept k = { .path = strdup(path), .error = rc < 0 ? errno : 0 };
  if (rc == 0) {
    k.mode = st->st_mode;
    k.dev = st->st_dev;
    k.ino = st->st_ino;
    k.target = S_ISLNK(st->st_mode) ? strdup(target) : NULL;
  }
  if (!k.path || (rc == 0 && S_ISLNK(st->st_mode) && !k.target)) {
    free(k.path);
    free(k.target);
    return;
  }
  kept[n_kept++] = k;
}

int esb_host_paths_lstat(const char *path, struct stat *st, char *target, size_t n) {
  for (size_t i = 0; i < n_kept; i++) {
    if (!strcmp(kept[i].path, path))
      return answer(&kept[i], st, target, n);
  }
  /* Watched before the lookup: a change after the watch is told. */
  bool keepable = keeping && n_kept < MAX_KEPT && listening() && watch_ancestors(path);
  int rc = look_up(path, st, target, n);
  int saved = errno;
  if (keepable && (rc == 0 || errno == ENOENT || errno == ENOTDIR))
    keep(path, rc, st, target);
  errno = saved;
  return rc;
}
