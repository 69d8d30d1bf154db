#include "engine/sandbox/rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/mount.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/contract/request.h"
#include "engine/sandbox/host_paths.h"
#include "engine/sandbox/rootfs_copy.h"
#include "engine/sandbox/spawn.h"

bool esb_rootfs_path_ok(const char *path) {
  if (path[0] != '/' || !path[1] || strlen(path) >= 1024)
    return false;
  for (const char *c = path + 1;; ) {
    size_t len = strcspn(c, "/");
    if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
      return false;
    if (!c[len])
      return true;
    c += len + 1;
  }
}

/* Whether path is dir or below it. */
static bool within(const char *path, const char *dir) {
  size_t n = strlen(dir);
  return !strncmp(path, dir, n) && (path[n] == '\0' || path[n] == '/');
}

int esb_rootfs_check_workdir(const struct esb_mount *mounts, size_t n, const char *workdir,
                             struct esb_error *err) {
  static const char *const generated[] = {"/proc", "/dev", "/etc"};
  if (!esb_rootfs_path_ok(workdir)) {
    esb_error_set(err, ESB_E_INVALID_REQUEST, "working_dir %s: expected an absolute path inside the sandbox, "
                  "without '.' or '..'", workdir);
    return -1;
  }
  for (size_t i = 0; i < sizeof generated / sizeof generated[0]; i++) {
    if (within(workdir, generated[i])) {
      esb_error_set(err, ESB_E_INVALID_REQUEST, "working_dir %s: %s belongs to the sandbox", workdir, generated[i]);
      return -1;
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (within(workdir, mounts[i].path)) {
      esb_error_set(err, ESB_E_INVALID_REQUEST, "working_dir %s: %s is a mount of the policy", workdir, mounts[i].path);
      return -1;
    }
  }
  return 0;
}

/* ---- the parent's side: the steps ---- */

static int push(struct esb_rootfs *fs, enum esb_rootfs_step_kind kind, const char *source, const char *dest,
                const char *data, bool writable) {
  if (fs->count == fs->cap) {
    size_t cap = fs->cap ? fs->cap * 2 : 32;
    struct esb_rootfs_step *steps = realloc(fs->steps, cap * sizeof *steps);
    if (!steps)
      return -1;
    fs->steps = steps;
    fs->cap = cap;
  }
  struct esb_rootfs_step *s = &fs->steps[fs->count];
  *s = (struct esb_rootfs_step){ .kind = kind, .writable = writable };
  if ((source && !(s->source = strdup(source))) || !(s->dest = strdup(dest)) || (data && !(s->data = strdup(data)))) {
    free(s->source);
    free(s->dest);
    return -1;
  }
  fs->count++;
  return 0;
}

/* Whether path is a directory of the new root once the steps so far are
 * applied: "/", one they make, or one inside a host directory they bind
 * (which the host has, or the bind of path fails). */
static bool is_dir(const struct esb_rootfs *fs, const char *path) {
  if (!strcmp(path, "/"))
    return true;
  size_t len = strlen(path);
  for (size_t i = 0; i < fs->count; i++) {
    const struct esb_rootfs_step *s = &fs->steps[i];
    size_t dlen = strlen(s->dest);
    bool container = s->kind == ESB_ROOTFS_DIR || s->kind == ESB_ROOTFS_TMPFS;
    if (container && dlen == len && !memcmp(s->dest, path, len))
      return true;
    if (s->kind == ESB_ROOTFS_BIND && dlen < len && !memcmp(s->dest, path, dlen) && path[dlen] == '/')
      return true;
  }
  return false;
}

/* Marks the step pushed last as one of each run's own (engine/sandbox/rootfs.h). */
static int per_run(int pushed, struct esb_rootfs *fs) {
  if (pushed == 0)
    fs->steps[fs->count - 1].per_run = true;
  return pushed;
}

/* Whether path is dir or below it. */
static bool at_or_below(const char *path, const char *dir) {
  size_t n = strlen(dir);
  return !strncmp(path, dir, n) && (path[n] == '\0' || path[n] == '/');
}

/* A step below a run's own mount (made after it) is the run's own too:
 * a template has no such mount to make it in. */
static void mark_below_per_run(struct esb_rootfs *fs) {
  for (size_t i = 0; i < fs->count; i++) {
    const struct esb_rootfs_step *m = &fs->steps[i];
    bool mount = m->kind == ESB_ROOTFS_TMPFS || m->kind == ESB_ROOTFS_PROC || m->kind == ESB_ROOTFS_DEVPTS ||
                 m->kind == ESB_ROOTFS_BIND;
    if (!m->per_run || !mount)
      continue;
    for (size_t j = i + 1; j < fs->count; j++)
      if (at_or_below(fs->steps[j].dest, m->dest))
        fs->steps[j].per_run = true;
  }
}

static bool has_dest(const struct esb_rootfs *fs, const char *path) {
  for (size_t i = 0; i < fs->count; i++)
    if (!strcmp(fs->steps[i].dest, path))
      return true;
  return false;
}

/* The request's files (sb->files) below the working dir, owned by the
 * program's ids: OWN_DIR steps for the directories above them, DATA steps
 * for the files. Their paths were checked (esb_file_path_ok), so nothing
 * here leaves the working dir; the steps run before the program does, in a
 * tmpfs nothing else has touched, and open without following links. */
static int add_files(struct esb_rootfs *fs, const struct esb_sandbox *sb) {
  char dest[ESB_FILE_PATH_MAX + 4096 + 2];
  for (size_t i = 0; i < sb->n_files; i++) {
    const struct esb_file *f = &sb->files[i];
    int n = snprintf(dest, sizeof dest, "%s/%s", sb->workdir, f->path);
    if (n < 0 || (size_t)n >= sizeof dest) {
      errno = ENAMETOOLONG;
      return -1;
    }
    size_t base = strlen(sb->workdir) + 1;
    for (char *slash = strchr(dest + base, '/'); slash; slash = strchr(slash + 1, '/')) {
      *slash = '\0';
      if (!has_dest(fs, dest) && push(fs, ESB_ROOTFS_OWN_DIR, NULL, dest, NULL, false) < 0)
        return -1;
      fs->steps[fs->count - 1].uid = sb->inner_uid;
      fs->steps[fs->count - 1].gid = sb->inner_gid;
      *slash = '/';
    }
    if (has_dest(fs, dest)) { /* "a" as a file and "a/b" beside it */
      errno = EEXIST;
      return -1;
    }
    if (push(fs, ESB_ROOTFS_DATA, NULL, dest, NULL, false) < 0)
      return -1;
    struct esb_rootfs_step *s = &fs->steps[fs->count - 1];
    if (!(s->data = malloc(f->len ? f->len : 1)))
      return -1;
    memcpy(s->data, f->data, f->len);
    s->len = f->len;
    s->mode = f->mode & 0777;
    s->uid = sb->inner_uid;
    s->gid = sb->inner_gid;
  }
  return 0;
}

/* DIR steps for path and the directories above it that are not there yet. */
static int make_dirs(struct esb_rootfs *fs, const char *path) {
  char buf[4096];
  size_t len = strlen(path);
  if (len >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(buf, path, len + 1);
  for (size_t i = 1; i <= len; i++) {
    if (buf[i] != '/' && buf[i] != '\0')
      continue;
    char c = buf[i];
    buf[i] = '\0';
    if (!is_dir(fs, buf) && push(fs, ESB_ROOTFS_DIR, NULL, buf, NULL, false) < 0)
      return -1;
    buf[i] = c;
  }
  return 0;
}

static int make_parent_dirs(struct esb_rootfs *fs, const char *path) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  char *slash = strrchr(buf, '/');
  if (!slash || slash == buf)
    return 0;
  *slash = '\0';
  return make_dirs(fs, buf);
}

/* The empty directory of every root that an overlay takes as its second
 * layer (the kernel wants two where there is no upper one): /proc, made
 * before any overlay and empty until the sandbox's proc is mounted on it. */
#define EMPTY_LAYER "/proc"

/* An overlay for the read-only bind of host (engine/sandbox/rootfs.h): of its
 * directory, or of itself right below "/" (the host's root has mounts
 * below it). None for a file there, nor where one is made already at or
 * above that directory (the bind goes through it). */
static int add_overlay(struct esb_rootfs *fs, const char *host, bool is_dir) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s%s", ESB_ROOTFS_OLDROOT, host);
  char *slash = strrchr(dir, '/');
  if (slash > dir + strlen(ESB_ROOTFS_OLDROOT))
    *slash = '\0';
  else if (!is_dir)
    return 0;
  for (size_t i = 0; i < fs->count; i++)
    if (fs->steps[i].kind == ESB_ROOTFS_OVERLAY && at_or_below(dir, fs->steps[i].source))
      return 0;
  return per_run(push(fs, ESB_ROOTFS_OVERLAY, dir, dir, EMPTY_LAYER, false), fs);
}

/* One host path of the mount list: the same symlink, or a bind of the
 * directory or file; nothing when the host has no such path. */
static int add_mount(struct esb_rootfs *fs, const struct esb_mount *m, struct esb_error *err) {
  /* The plan reader refuses such paths already; here too, since the
   * refusal of /proc and /sys below compares strings ("//proc"). */
  if (!esb_rootfs_path_ok(m->host)) {
    esb_error_set(err, ESB_E_POLICY, "mount %.200s: the host path is not absolute, or has an empty, '.' or '..' "
                  "component", m->host);
    errno = EINVAL;
    return -1;
  }
  if (!esb_rootfs_path_ok(m->path)) {
    esb_error_set(err, ESB_E_POLICY, "mount %.200s: its path inside, %.200s, is not absolute, or has an empty, "
                  "'.' or '..' component", m->host, m->path);
    errno = EINVAL;
    return -1;
  }
  if (at_or_below(m->host, "/proc") || at_or_below(m->host, "/sys")) {
    /* The host's processes and devices; /sys is also where the fork
     * server keeps the roots' templates (engine/sandbox/fork_server.h). */
    esb_error_set(err, ESB_E_POLICY, "mount %s: the host's /proc and /sys are no part of a sandbox", m->host);
    errno = EINVAL;
    return -1;
  }
  struct stat st;
  char source[4096], target[4096];
  if (esb_host_paths_lstat(m->host, &st, target, sizeof target) < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return 0;
    esb_error_errno(err, ESB_E_SANDBOX_SETUP, "mount %s", m->host);
    return -1;
  }
  snprintf(source, sizeof source, "%s%s", ESB_ROOTFS_OLDROOT, m->host);
  if (make_parent_dirs(fs, m->path) < 0)
    goto oom;
  if (S_ISLNK(st.st_mode)) {
    if (push(fs, ESB_ROOTFS_SYMLINK, NULL, m->path, target, false) < 0)
      goto oom;
    return 0;
  }
  if (push(fs, S_ISDIR(st.st_mode) ? ESB_ROOTFS_DIR : ESB_ROOTFS_FILE, NULL, m->path, S_ISDIR(st.st_mode) ? NULL : "",
           false) < 0 ||
      (!m->writable && add_overlay(fs, m->host, S_ISDIR(st.st_mode)) < 0) ||
      push(fs, ESB_ROOTFS_BIND, source, m->path, NULL, m->writable) < 0)
    goto oom;
  struct esb_rootfs_step *bind = &fs->steps[fs->count - 1];
  bind->source_dev = st.st_dev;
  bind->source_ino = st.st_ino;
  bind->copy = !m->writable;
  /* Each run's own, from its overlays (or the host's, writable): a
   * template holds no mount below its root (engine/sandbox/rootfs.h). */
  bind->per_run = true;
  return 0;
oom:
  esb_error_errno(err, ESB_E_SANDBOX_SETUP, "planning the sandbox's root");
  return -1;
}

/* The account files a program may look itself up in. */
static int add_etc(struct esb_rootfs *fs, const struct esb_sandbox *sb) {
  char passwd[512], group[256];
  const char *name = sb->inner_uid == 65534 ? "nobody" : "sandbox";
  const char *gname = sb->inner_gid == 65534 ? "nogroup" : "sandbox";
  int n = snprintf(passwd, sizeof passwd, "root:x:0:0:root:/root:/usr/sbin/nologin\n%s:x:%u:%u:%s:%s:/bin/sh\n",
                   name, (unsigned)sb->inner_uid, (unsigned)sb->inner_gid, name, sb->workdir);
  if (n < 0 || (size_t)n >= sizeof passwd) {
    errno = ENAMETOOLONG;
    return -1;
  }
  snprintf(group, sizeof group, "root:x:0:\n%s:x:%u:\n", gname, (unsigned)sb->inner_gid);
  static const char hosts[] = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
  const struct { const char *path, *data; } files[] = {
    {"/etc/passwd", passwd}, {"/etc/group", group}, {"/etc/hosts", hosts}};
  if (make_dirs(fs, "/etc") < 0)
    return -1;
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
    if (!has_dest(fs, files[i].path) && push(fs, ESB_ROOTFS_FILE, NULL, files[i].path, files[i].data, false) < 0)
      return -1;
  return 0;
}

static int add_dev(struct esb_rootfs *fs, const char *shm_options) {
  static const char *const nodes[] = {"null", "zero", "full", "random", "urandom"};
  static const char *const links[][2] = {
    {"/dev/fd", "/proc/self/fd"}, {"/dev/stdin", "/proc/self/fd/0"}, {"/dev/stdout", "/proc/self/fd/1"},
    {"/dev/stderr", "/proc/self/fd/2"}, {"/dev/ptmx", "pts/ptmx"}};
  if (push(fs, ESB_ROOTFS_DIR, NULL, "/dev", NULL, false) < 0 ||
      push(fs, ESB_ROOTFS_TMPFS, NULL, "/dev", "mode=0755,size=64k,nr_inodes=64", false) < 0)
    return -1;
  for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
    char dest[32], source[64];
    snprintf(dest, sizeof dest, "/dev/%s", nodes[i]);
    snprintf(source, sizeof source, "%s/dev/%s", ESB_ROOTFS_OLDROOT, nodes[i]);
    if (push(fs, ESB_ROOTFS_FILE, NULL, dest, "", false) < 0 ||
        push(fs, ESB_ROOTFS_BIND, source, dest, NULL, true) < 0)
      return -1;
  }
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
    if (push(fs, ESB_ROOTFS_SYMLINK, NULL, links[i][0], links[i][1], false) < 0)
      return -1;
  return push(fs, ESB_ROOTFS_DIR, NULL, "/dev/pts", NULL, false) < 0 ||
         per_run(push(fs, ESB_ROOTFS_DEVPTS, NULL, "/dev/pts", NULL, false), fs) < 0 ||
         push(fs, ESB_ROOTFS_DIR, NULL, "/dev/shm", NULL, false) < 0 ||
         per_run(push(fs, ESB_ROOTFS_TMPFS, NULL, "/dev/shm", shm_options, false), fs) < 0 ? -1 : 0;
}

unsigned long long esb_rootfs_tmpfs_inodes(uint64_t size_bytes) {
  uint64_t pages = size_bytes / ESB_ROOTFS_BYTES_PER_INODE;
  return pages > ESB_ROOTFS_MIN_INODES ? (unsigned long long)pages : ESB_ROOTFS_MIN_INODES;
}

int esb_rootfs_plan(const struct esb_sandbox *sb, struct esb_rootfs *fs, struct esb_error *err) {
  char tmp_options[96], workdir_options[160];
  *fs = (struct esb_rootfs)ESB_ROOTFS_INIT;
  if (!sb->workdir || sb->workdir[0] != '/') {
    esb_error_set(err, ESB_E_SANDBOX_SETUP, "the working dir %s is not an absolute path",
                  sb->workdir ? sb->workdir : "(none)");
    errno = EINVAL;
    return -1;
  }
  if (!esb_rootfs_path_ok(sb->workdir)) { /* as esb_rootfs_check_workdir has it */
    esb_error_set(err, ESB_E_SANDBOX_SETUP, "the working dir %.200s has an empty, '.' or '..' component, or is "
                  "too long", sb->workdir);
    errno = EINVAL;
    return -1;
  }
  if (push(fs, ESB_ROOTFS_DIR, NULL, EMPTY_LAYER, NULL, false) < 0) {
    esb_error_errno(err, ESB_E_SANDBOX_SETUP, "planning the sandbox's root");
    goto fail;
  }
  /* The host's paths as kept from the plans before, unless the host told
   * of a change since (engine/sandbox/host_paths.h). */
  esb_host_paths_begin();
  int added = 0;
  for (size_t i = 0; i < sb->n_mounts && added == 0; i++)
    added = add_mount(fs, &sb->mounts[i], err);
  esb_host_paths_end();
  if (added < 0)
    goto fail;
  snprintf(tmp_options, sizeof tmp_options, "mode=1777,size=%llu,nr_inodes=%llu",
           (unsigned long long)sb->tmp_size_bytes, esb_rootfs_tmpfs_inodes(sb->tmp_size_bytes));
  snprintf(workdir_options, sizeof workdir_options, "mode=0755,uid=%u,gid=%u,size=%llu,nr_inodes=%llu",
           (unsigned)sb->inner_uid, (unsigned)sb->inner_gid, (unsigned long long)sb->workdir_size_bytes,
           esb_rootfs_tmpfs_inodes(sb->workdir_size_bytes));
  if (add_etc(fs, sb) < 0 || add_dev(fs, tmp_options) < 0 ||
      per_run(push(fs, ESB_ROOTFS_PROC, NULL, "/proc", NULL, false), fs) < 0 ||
      make_dirs(fs, "/tmp") < 0 || per_run(push(fs, ESB_ROOTFS_TMPFS, NULL, "/tmp", tmp_options, false), fs) < 0 ||
      make_dirs(fs, sb->workdir) < 0 ||
      per_run(push(fs, ESB_ROOTFS_TMPFS, NULL, sb->workdir, workdir_options, false), fs) < 0) {
    esb_error_errno(err, ESB_E_SANDBOX_SETUP, "planning the sandbox's root");
    goto fail;
  }
  if (add_files(fs, sb) < 0) {
    esb_error_errno(err, ESB_E_SANDBOX_SETUP, "planning the request's files");
    goto fail;
  }
  mark_below_per_run(fs);
  return 0;
fail:
  esb_rootfs_release(fs);
  return -1;
}

void esb_rootfs_release(struct esb_rootfs *fs) {
  for (size_t i = 0; i < fs->count; i++) {
    free(fs->steps[i].source);
    free(fs->steps[i].dest);
    free(fs->steps[i].data);
  }
  free(fs->steps);
  *fs = (struct esb_rootfs)ESB_ROOTFS_INIT;
}

/* ---- the child's side: async-signal-safe calls only ---- */

static int write_file(const char *path, const char *data) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0)
    return -1;
  size_t len = strlen(data), done = 0;
  while (done < len) {
    ssize_t n = write(fd, data + done, len - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      close(fd);
      return -1;
    }
    done += (size_t)n;
  }
  return close(fd);
}

int esb_rootfs_write_file_at(int dirfd, const char *path, const char *data, size_t len, unsigned mode,
                             uid_t uid, gid_t gid) {
  int fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return -1;
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, data + done, len - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    done += (size_t)n;
  }
  if (done < len || fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0) {
    int saved = done < len && !errno ? EIO : errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return close(fd);
}

int esb_rootfs_make_dir_at(int dirfd, const char *path, uid_t uid, gid_t gid) {
  if (mkdirat(dirfd, path, 0755) < 0 && errno != EEXIST)
    return -1;
  return fchownat(dirfd, path, uid, gid, AT_SYMLINK_NOFOLLOW);
}

/* prefix + path into buf (PATH_MAX): with memcpy, safe after a fork. */
static const char *join(char *buf, const char *prefix, const char *path) {
  size_t a = strlen(prefix), b = strlen(path);
  if (a + b >= PATH_MAX) {
    errno = ENAMETOOLONG;
    return NULL;
  }
  memcpy(buf, prefix, a);
  memcpy(buf + a, path, b + 1);
  return buf;
}

/* A read-only overlay of lower, its second layer the empty directory
 * empty, mounted on target. 0, or -1 with errno. */
static int overlay(const char *lower, const char *empty, const char *target) {
  int fs = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC), mnt = -1, rc = -1;
  if (fs < 0)
    return -1;
  if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "lowerdir+", lower, 0) == 0 &&
      syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "lowerdir+", empty, 0) == 0 &&
      syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
    mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
  if (mnt >= 0) {
    rc = (int)syscall(SYS_move_mount, mnt, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
    close(mnt);
  }
  int saved = errno;
  close(fs);
  errno = saved;
  return rc;
}

/* Whether the mount at path has the attributes already: a bind of one of
 * our overlays (fsmount'ed read-only, nosuid, nodev, with nothing mounted
 * below it) takes its flags from it, and setting them again costs a
 * system call per bind. Not for a host path: its flags are the host's. */
static bool has_attrs(const char *path, uint64_t attrs) {
  struct statvfs v;
  if (statvfs(path, &v) < 0)
    return false;
  return (!(attrs & MOUNT_ATTR_RDONLY) || (v.f_flag & ST_RDONLY)) &&
         (!(attrs & MOUNT_ATTR_NOSUID) || (v.f_flag & ST_NOSUID)) &&
         (!(attrs & MOUNT_ATTR_NODEV) || (v.f_flag & ST_NODEV));
}

int esb_rootfs_probe_overlays(const struct esb_rootfs *fs, char *refused, size_t n) {
  char empty[] = "/tmp/echo-sandbox-overlay-probe.XXXXXX";
  if (!mkdtemp(empty))
    return -1;
  int made = 0;
  size_t skip = strlen(ESB_ROOTFS_OLDROOT);
  for (size_t i = 0; i < fs->count && made >= 0; i++) {
    const struct esb_rootfs_step *s = &fs->steps[i];
    if (s->kind != ESB_ROOTFS_OVERLAY)
      continue;
    const char *host = strncmp(s->source, ESB_ROOTFS_OLDROOT, skip) ? s->source : s->source + skip;
    int ctx = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
    bool ok = ctx >= 0 && syscall(SYS_fsconfig, ctx, FSCONFIG_SET_STRING, "lowerdir+", host, 0) == 0 &&
              syscall(SYS_fsconfig, ctx, FSCONFIG_SET_STRING, "lowerdir+", empty, 0) == 0 &&
              syscall(SYS_fsconfig, ctx, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0;
    int saved = errno;
    if (ctx >= 0)
      close(ctx);
    if (ok) {
      made++;
    } else {
      snprintf(refused, n, "%s", host);
      errno = saved;
      made = -1;
    }
  }
  int saved = errno;
  rmdir(empty);
  errno = saved;
  return made;
}

/* One step, its dest below prefix ("" in the new root itself); a source
 * under OLDROOT is found under host_root, where the host's root is ("" for
 * a template's builder, which sees it as its own). */
static int apply(const struct esb_rootfs_step *s, const char *prefix, const char *host_root) {
  char dest_buf[PATH_MAX], source_buf[PATH_MAX];
  const char *dest = *prefix ? join(dest_buf, prefix, s->dest) : s->dest;
  if (!dest)
    return -1;
  size_t skip = strlen(ESB_ROOTFS_OLDROOT);
  const char *source = s->source;
  if (source && !strncmp(source, ESB_ROOTFS_OLDROOT "/", skip + 1) && !(source = join(source_buf, host_root, source + skip)))
    return -1;
  switch (s->kind) {
  case ESB_ROOTFS_DIR:
    return mkdir(dest, 0755) < 0 && errno != EEXIST ? -1 : 0;
  case ESB_ROOTFS_FILE:
    return write_file(dest, s->data);
  case ESB_ROOTFS_SYMLINK:
    return symlink(s->data, dest);
  case ESB_ROOTFS_BIND: {
    if (mount(source, dest, NULL, MS_BIND | MS_REC, NULL) < 0)
      return -1;
    /* Only adds restrictions, which a user namespace may do to the host's
     * locked mounts too. */
    struct mount_attr attr = { .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV };
    if (!s->writable)
      attr.attr_set |= MOUNT_ATTR_RDONLY;
    if (!strncmp(s->dest, "/dev/", 5))
      attr.attr_set &= ~(uint64_t)MOUNT_ATTR_NODEV; /* the device nodes themselves */
    if (has_attrs(dest, attr.attr_set))
      return 0;
    return (int)syscall(SYS_mount_setattr, AT_FDCWD, dest, AT_RECURSIVE, &attr, sizeof attr);
  }
  case ESB_ROOTFS_TMPFS:
    return mount("tmpfs", dest, "tmpfs", MS_NOSUID | MS_NODEV, s->data);
  case ESB_ROOTFS_DEVPTS:
    return mount("devpts", dest, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
  case ESB_ROOTFS_PROC:
    return mount("proc", dest, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  case ESB_ROOTFS_DATA:
    return esb_rootfs_write_file_at(AT_FDCWD, dest, s->data, s->len, s->mode, s->uid, s->gid);
  case ESB_ROOTFS_OWN_DIR:
    return esb_rootfs_make_dir_at(AT_FDCWD, dest, s->uid, s->gid);
  case ESB_ROOTFS_OVERLAY:
    /* One the kernel refuses is no failure: the host's directory stays. */
    overlay(source, s->data, source);
    return 0;
  }
  errno = EINVAL;
  return -1;
}

static int remount_read_only(const char *path) {
  return mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL);
}

/* A template (engine/sandbox/rootfs.h) is a small tmpfs holding its root, its /dev
 * beside the root and not in it (the one mount a template holds), and an
 * empty directory: a root with no mount below it can be the first layer
 * of a run's overlay, and the empty directory its second. */
#define TEMPLATE_ROOT "/root"
#define TEMPLATE_EMPTY "/empty"

/* The prefix of a step's dest: beside for /dev and below, root for the
 * rest (both "" in a root built step by step). */
static const char *prefix_of(const char *dest, const char *root, const char *beside) {
  return at_or_below(dest, "/dev") ? beside : root;
}

/* The tmpfs a template holds (/dev) read-only: whatever a run writes there
 * would be every run's. Built step by step, a root is made the same. */
static int seal_tmpfs(const struct esb_rootfs *fs, const char *root, const char *beside) {
  char buf[PATH_MAX];
  for (size_t i = 0; i < fs->count; i++) {
    const struct esb_rootfs_step *s = &fs->steps[i];
    if (s->kind != ESB_ROOTFS_TMPFS || s->per_run)
      continue;
    const char *path = join(buf, prefix_of(s->dest, root, beside), s->dest);
    if (!path || remount_read_only(path) < 0)
      return -1;
  }
  return 0;
}

int esb_rootfs_apply(const struct esb_rootfs *fs, long *failed) {
  *failed = -1;
  /* The new root, mounted where every host has a directory; then the host's
   * root goes under it, so that steps can still name host paths. */
  if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m,nr_inodes=4096") < 0 ||
      mkdir("/tmp" ESB_ROOTFS_OLDROOT, 0700) < 0 ||
      syscall(SYS_pivot_root, "/tmp", "/tmp" ESB_ROOTFS_OLDROOT) < 0 || chdir("/") < 0)
    return -1;
  for (size_t i = 0; i < fs->count; i++) {
    if (apply(&fs->steps[i], "", ESB_ROOTFS_OLDROOT) < 0) {
      *failed = (long)i;
      return -1;
    }
  }
  if (seal_tmpfs(fs, "", "") < 0 || umount2(ESB_ROOTFS_OLDROOT, MNT_DETACH) < 0 || rmdir(ESB_ROOTFS_OLDROOT) < 0)
    return -1;
  return remount_read_only("/");
}

/* Whether a step's dest below dir would go through a symlink (one a step
 * made): the builder's root is the host's, so an absolute link's target
 * would be the host's own path. Such a root is built by its runs, where the
 * link resolves inside it. The last component counts for a mount, which
 * follows it; a file or directory step makes its last component itself. */
static bool through_link(const char *dir, const struct esb_rootfs_step *s) {
  char path[PATH_MAX];
  if (!join(path, dir, s->dest))
    return true;
  bool mounts = s->kind == ESB_ROOTFS_BIND || s->kind == ESB_ROOTFS_TMPFS || s->kind == ESB_ROOTFS_PROC ||
                s->kind == ESB_ROOTFS_DEVPTS;
  for (char *slash = path + strlen(dir) + 1;; slash++) {
    slash = strchr(slash, '/');
    if (!slash && !mounts)
      return false;
    if (slash)
      *slash = '\0';
    struct stat st;
    bool link = lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
    if (link || !slash)
      return link;
    *slash = '/';
  }
}

/* The copies a template holds (engine/sandbox/rootfs_copy.h), as the build
 * made them: in the template's COPIED file, one '1' (copied) or '0'
 * (bound by each run) for each of the plan's copy steps in order. */
#define TEMPLATE_COPIED "/copied"
#define COPIED_MAX 256 /* copy steps past these are bound by each run */

/* The builder's copies of fs's copy steps that copy allows, below root
 * (dev beside it), said in dir's COPIED file. One that fails is bound by
 * each run instead. 0, or -1 with errno when the file cannot be written. */
static int make_copies(const struct esb_rootfs *fs, const char *dir, const char *root, const bool *copy) {
  char said[COPIED_MAX + 1] = "";
  size_t k = 0;
  struct esb_rootfs_copy_budget budget = ESB_ROOTFS_COPY_BUDGET_INIT;
  for (size_t i = 0; i < fs->count && k < sizeof said - 1; i++) {
    const struct esb_rootfs_step *s = &fs->steps[i];
    if (s->kind != ESB_ROOTFS_BIND || !s->copy)
      continue;
    char dest[PATH_MAX], stage[PATH_MAX];
    const char *prefix = prefix_of(s->dest, root, dir);
    bool made = copy && copy[k] && !through_link(prefix, s) && join(dest, prefix, s->dest) &&
                snprintf(stage, sizeof stage, "%s.esb-copy", dest) < (int)sizeof stage &&
                esb_rootfs_copy(s->source + strlen(ESB_ROOTFS_OLDROOT), dest, stage, &budget) == 0;
    said[k++] = made ? '1' : '0';
  }
  char path[PATH_MAX];
  return join(path, dir, TEMPLATE_COPIED) ? write_file(path, said) : -1;
}

int esb_rootfs_build_template(const struct esb_rootfs *fs, const char *dir, uid_t uid, gid_t gid,
                              const bool *copy, long *failed) {
  *failed = -1;
  char root[PATH_MAX], empty[PATH_MAX], root_dev[PATH_MAX];
  if (!join(root, dir, TEMPLATE_ROOT) || !join(empty, dir, TEMPLATE_EMPTY) || !join(root_dev, root, "/dev") ||
      mkdir(dir, 0711) < 0)
    return -1;
  /* What the steps make is owned as a run's own root would have it: the
   * tmpfs takes our fs ids for its root. */
  setfsgid(gid);
  setfsuid(uid);
  if ((gid_t)setfsgid((gid_t)-1) != gid || (uid_t)setfsuid((uid_t)-1) != uid) {
    errno = EPERM;
    return -1;
  }
  /* The root's bounds: the steps' files, and the copies' (rootfs_copy.h). */
  if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16k,nr_inodes=16") < 0 ||
      mkdir(root, 0755) < 0 || mkdir(empty, 0755) < 0 ||
      mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=6m,nr_inodes=8192") < 0 ||
      mkdir(root_dev, 0755) < 0)
    return -1;
  for (size_t i = 0; i < fs->count; i++) {
    const struct esb_rootfs_step *s = &fs->steps[i];
    if (s->per_run)
      continue;
    const char *prefix = prefix_of(s->dest, root, dir);
    if (through_link(prefix, s)) {
      *failed = (long)i;
      errno = ELOOP;
      return -1;
    }
    if (apply(s, prefix, "") < 0) {
      *failed = (long)i;
      return -1;
    }
  }
  if (make_copies(fs, dir, root, copy) < 0)
    return -1;
  return seal_tmpfs(fs, root, dir) < 0 || remount_read_only(root) < 0 ? -1 : remount_read_only(dir);
}

/* Which of fs's copy steps dir's template holds copies of: copied[k] for
 * the k-th ('1'), read from its COPIED file ("" when it has none).
 * Async-signal-safe. */
static void read_copied(const char *dir, char copied[COPIED_MAX + 1]) {
  char path[PATH_MAX];
  copied[0] = '\0';
  int fd = join(path, dir, TEMPLATE_COPIED) ? open(path, O_RDONLY | O_CLOEXEC) : -1;
  if (fd < 0)
    return;
  ssize_t n = read(fd, copied, COPIED_MAX);
  copied[n > 0 ? n : 0] = '\0';
  close(fd);
}

/* Whether a per-run step is done by the template: a copied bind, or an
 * overlay that no bind left to the run comes from. */
static bool done_by_template(const struct esb_rootfs *fs, size_t i, const char *copied) {
  const struct esb_rootfs_step *s = &fs->steps[i];
  if (s->kind != ESB_ROOTFS_BIND && s->kind != ESB_ROOTFS_OVERLAY)
    return false;
  size_t k = 0;
  for (size_t j = 0; j < fs->count; j++) {
    const struct esb_rootfs_step *b = &fs->steps[j];
    if (b->kind != ESB_ROOTFS_BIND)
      continue;
    bool is_copied = b->copy && copied[k] == '1';
    k += b->copy && copied[k];
    if (s->kind == ESB_ROOTFS_BIND && j == i)
      return is_copied;
    if (s->kind == ESB_ROOTFS_OVERLAY && !is_copied && at_or_below(b->source, s->source))
      return false;
  }
  return true;
}

int esb_rootfs_apply_template(const struct esb_rootfs *fs, const char *dir, long *failed) {
  *failed = -1;
  char root[PATH_MAX], empty[PATH_MAX], dev[PATH_MAX], root_dev[PATH_MAX];
  if (!join(root, dir, TEMPLATE_ROOT) || !join(empty, dir, TEMPLATE_EMPTY) || !join(dev, dir, "/dev") ||
      !join(root_dev, root, "/dev"))
    return -1;
  /* The root: an overlay of the template's, its inodes the run's own (a
   * watch or a lock on the template's /etc/passwd would reach every run of
   * it). Every run's: a run given the template's own inodes would see the
   * others' accesses through their overlays, which reach the layer's
   * inodes too. Where the kernel refuses the overlay, a bind of the
   * template's (whose copy is locked to the host's root below it, so it
   * cannot be pivoted to itself: a bind of it, ours, can). */
  if (overlay(root, empty, root) < 0 && mount(root, root, NULL, MS_BIND, NULL) < 0)
    return errno == ENOENT ? esb_rootfs_apply(fs, failed) : -1;
  char copied[COPIED_MAX + 1];
  read_copied(dir, copied);
  /* The host's directories' overlays, on the host's root while it is ours:
   * their second layer is the template's empty directory, whose (negative)
   * entries stay cached from run to run, where the root's /proc, an
   * overlay's, would be looked up afresh in each. */
  for (size_t i = 0; i < fs->count; i++) {
    const struct esb_rootfs_step *s = &fs->steps[i];
    if (s->kind == ESB_ROOTFS_OVERLAY && !done_by_template(fs, i, copied))
      overlay(s->source + strlen(ESB_ROOTFS_OLDROOT), empty, s->source + strlen(ESB_ROOTFS_OLDROOT));
  }
  /* The host's root goes on /tmp (every root has it) until /proc is
   * mounted, which the kernel allows only while a proc of the host is in
   * the namespace. */
  if (mount(dev, root_dev, NULL, MS_BIND | MS_REC, NULL) < 0 || chdir(root) < 0 ||
      syscall(SYS_pivot_root, ".", "tmp") < 0 || chdir("/") < 0)
    return -1;
  bool host_root = true;
  for (size_t i = 0; i < fs->count; i++) {
    const struct esb_rootfs_step *s = &fs->steps[i];
    if (!s->per_run || s->kind == ESB_ROOTFS_OVERLAY || done_by_template(fs, i, copied))
      continue;
    if (host_root && at_or_below(s->dest, "/tmp")) {
      if (umount2("/tmp", MNT_DETACH) < 0)
        return -1;
      host_root = false;
    }
    if (apply(s, "", "/tmp") < 0) {
      *failed = (long)i;
      return -1;
    }
  }
  return host_root ? umount2("/tmp", MNT_DETACH) : 0;
}
