/* Copies of small read-only host trees in a root's template
 * (engine/sandbox/rootfs_copy.h says what a copy is). Both sides run in a
 * process of the fork server's (the server itself, or its builder child),
 * never in a sandbox: they may allocate. Host trees are the policy's
 * paths, which no sandboxed program writes; each is walked without
 * following a symlink all the same, and what changed between the walk and
 * the copy is bounded again by the copy. */
#include "engine/sandbox/rootfs_copy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the server's side: measure and watch ---- */

static bool fits(const char *path, const struct stat *st, struct esb_rootfs_copy_budget *b, int fd, int *wds,
                 size_t *n);

static bool watch(const char *dir, struct esb_rootfs_copy_budget *b, int fd, int *wds, size_t *n) {
  if (b->watches == 0)
    return false;
  int wd = inotify_add_watch(fd, dir, ESB_ROOTFS_COPY_EVENTS | IN_DONT_FOLLOW);
  if (wd < 0)
    return false;
  wds[(*n)++] = wd;
  b->watches--;
  return true;
}

static bool fits_dir(const char *path, struct esb_rootfs_copy_budget *b, int fd, int *wds, size_t *n) {
  if (!watch(path, b, fd, wds, n))
    return false;
  int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
  if (!d) {
    if (dfd >= 0)
      close(dfd);
    return false;
  }
  bool ok = true;
  struct dirent *e;
  while (ok && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    char child[PATH_MAX];
    struct stat st;
    ok = snprintf(child, sizeof child, "%s/%s", path, e->d_name) < (int)sizeof child &&
         fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && fits(child, &st, b, fd, wds, n);
  }
  closedir(d);
  return ok;
}

static bool fits(const char *path, const struct stat *st, struct esb_rootfs_copy_budget *b, int fd, int *wds,
                 size_t *n) {
  if (b->entries == 0)
    return false;
  b->entries--;
  if (S_ISREG(st->st_mode)) {
    if ((size_t)st->st_size > b->bytes)
      return false;
    b->bytes -= (size_t)st->st_size;
    return true;
  }
  if (S_ISLNK(st->st_mode))
    return true;
  return S_ISDIR(st->st_mode) && fits_dir(path, b, fd, wds, n);
}

bool esb_rootfs_copy_watch(const char *host, struct esb_rootfs_copy_budget *budget, int inotify_fd, int *wds,
                           size_t *n) {
  struct esb_rootfs_copy_budget b = *budget;
  struct stat st;
  if (lstat(host, &st) < 0)
    return false;
  if (!S_ISDIR(st.st_mode)) {
    /* A file's directory tells of its replacement (a rename over it) as
     * well as of a write to it. */
    char dir[PATH_MAX];
    const char *slash = strrchr(host, '/');
    if (!slash || (size_t)(slash - host) >= sizeof dir)
      return false;
    memcpy(dir, host, (size_t)(slash - host));
    dir[slash - host] = '\0';
    if (!watch(*dir ? dir : "/", &b, inotify_fd, wds, n))
      return false;
  }
  if (!fits(host, &st, &b, inotify_fd, wds, n))
    return false;
  *budget = b;
  return true;
}

/* ---- the builder's side: copy ---- */

/* What the program may do with a host file of mode m, as it would be
 * shown for a copy it owns (rootfs_copy.h). */
static bool mode_exact(mode_t m) {
  unsigned o = m & 05;
  return ((m >> 6) & 05) == o && ((m >> 3) & 05) == o;
}

static mode_t mode_shown(mode_t m) {
  return mode_exact(m) ? (m & 0777) : (m & 07) * 0111;
}

static int copy_at(int from, const char *name, const struct stat *st, int to, const char *to_name,
                   struct esb_rootfs_copy_budget *b);

static int copy_bytes(int in, int out, struct esb_rootfs_copy_budget *b) {
  char buf[16384];
  for (;;) {
    ssize_t got = read(in, buf, sizeof buf);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      return (int)got;
    if ((size_t)got > b->bytes) {
      errno = EFBIG;
      return -1;
    }
    b->bytes -= (size_t)got;
    for (ssize_t done = 0; done < got;) {
      ssize_t put = write(out, buf + done, (size_t)(got - done));
      if (put < 0 && errno != EINTR)
        return -1;
      done += put > 0 ? put : 0;
    }
  }
}

static int copy_file(int from, const char *name, const struct stat *st, int to, const char *to_name,
                     struct esb_rootfs_copy_budget *b) {
  bool readable = st->st_mode & S_IROTH;
  if (!readable && (st->st_mode & S_IXOTH)) {
    errno = EACCES; /* others may run it but not read it: a copy cannot be both */
    return -1;
  }
  int in = readable ? openat(from, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC) : -1;
  struct stat now;
  if (readable && (in < 0 || fstat(in, &now) < 0 || !S_ISREG(now.st_mode))) {
    if (in >= 0)
      close(in);
    errno = in < 0 ? errno : ENOTSUP;
    return -1;
  }
  int out = openat(to, to_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  int rc = out < 0 || (in >= 0 && copy_bytes(in, out, b) < 0) ? -1 : 0;
  struct timespec times[2] = { st->st_atim, st->st_mtim };
  if (rc == 0 && (fchmod(out, mode_shown(st->st_mode)) < 0 || futimens(out, times) < 0))
    rc = -1;
  int saved = errno;
  if (in >= 0)
    close(in);
  if (out >= 0)
    close(out);
  errno = saved;
  return rc;
}

static int copy_dir_entries(int from, int to, struct esb_rootfs_copy_budget *b) {
  DIR *d = fdopendir(from);
  if (!d) {
    close(from);
    return -1;
  }
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (errno = 0, e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    struct stat st;
    rc = fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ? -1
         : copy_at(dirfd(d), e->d_name, &st, to, e->d_name, b);
  }
  if (rc == 0 && errno)
    rc = -1;
  int saved = errno;
  closedir(d);
  errno = saved;
  return rc;
}

static int copy_dir(int from, const char *name, const struct stat *st, int to, const char *to_name,
                    struct esb_rootfs_copy_budget *b) {
  mode_t others = st->st_mode & 05;
  if (others != 0 && others != 05) {
    errno = EACCES; /* listed but not searched, or searched but not listed */
    return -1;
  }
  if (mkdirat(to, to_name, 0700) < 0)
    return -1;
  int out = openat(to, to_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (out < 0)
    return -1;
  int rc = 0;
  if (others == 05) {
    int in = openat(from, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    rc = in < 0 ? -1 : copy_dir_entries(in, out, b);
  }
  struct timespec times[2] = { st->st_atim, st->st_mtim };
  if (rc == 0 && (fchmod(out, mode_shown(st->st_mode)) < 0 || futimens(out, times) < 0))
    rc = -1;
  int saved = errno;
  close(out);
  errno = saved;
  return rc;
}

static int copy_at(int from, const char *name, const struct stat *st, int to, const char *to_name,
                   struct esb_rootfs_copy_budget *b) {
  if (b->entries == 0) {
    errno = EFBIG;
    return -1;
  }
  b->entries--;
  if (S_ISREG(st->st_mode))
    return copy_file(from, name, st, to, to_name, b);
  if (S_ISDIR(st->st_mode))
    return copy_dir(from, name, st, to, to_name, b);
  if (S_ISLNK(st->st_mode)) {
    char target[PATH_MAX];
    ssize_t len = readlinkat(from, name, target, sizeof target - 1);
    if (len < 0)
      return -1;
    target[len] = '\0';
    return symlinkat(target, to, to_name);
  }
  errno = ENOTSUP; /* a device, a fifo, a socket: bound, not copied */
  return -1;
}

/* nftw's callbacks, to remove a stage that failed: first every directory
 * made ours to enter and write (one may have its shown mode already),
 * then everything, deepest first. */
static int open_up(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)ftw;
  if (flag == FTW_D || flag == FTW_DNR)
    chmod(path, 0700);
  return 0;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)ftw;
  if (flag == FTW_DP)
    rmdir(path);
  else
    unlink(path);
  return 0;
}

int esb_rootfs_copy(const char *host, const char *dest, const char *stage, struct esb_rootfs_copy_budget *budget) {
  struct esb_rootfs_copy_budget b = *budget;
  struct stat st;
  if (lstat(host, &st) < 0)
    return -1;
  int rc = copy_at(AT_FDCWD, host, &st, AT_FDCWD, stage, &b);
  if (rc == 0)
    rc = rename(stage, dest);
  if (rc < 0) {
    int saved = errno;
    nftw(stage, open_up, 16, FTW_PHYS);
    nftw(stage, remove_one, 16, FTW_PHYS | FTW_DEPTH);
    errno = saved;
    return -1;
  }
  *budget = b;
  return 0;
}
