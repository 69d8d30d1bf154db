#include "backend/local_session_files.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "engine/fileio.h"
#include "engine/sandbox/fd_passing.h"

int esb_session_files_base(const char *base, struct esb_error *err) {
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s", base) >= sizeof path)
    return esb_error_set(err, ESB_E_SYSTEM, "the session directory's path is too long: %s", base);
  for (char *slash = strchr(path + 1, '/');; slash = strchr(slash + 1, '/')) {
    if (slash)
      *slash = '\0';
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
      return esb_error_errno(err, ESB_E_SYSTEM, "making %s", path);
    if (!slash)
      break;
    *slash = '/';
  }
  struct stat st;
  if (lstat(base, &st) < 0)
    return esb_error_errno(err, ESB_E_SYSTEM, "%s", base);
  /* Only our uid may reach the sockets below: the socket's permission is
   * the directory's. */
  if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
    return esb_error_set(err, ESB_E_SYSTEM, "%s must be a directory of uid %u that no one else may enter",
                         base, (unsigned)geteuid());
  return 0;
}

bool esb_session_id_valid(const char *id) {
  size_t n = 0;
  for (; id[n]; n++)
    if (!isxdigit((unsigned char)id[n]) || isupper((unsigned char)id[n]))
      return false;
  return n == 32;
}

int esb_session_record_write(const char *dir, const struct esb_session_record *rec, struct esb_error *err) {
  char path[4200];
  snprintf(path, sizeof path, "%s/info", dir);
  FILE *f = fopen(path, "wx");
  if (!f)
    return esb_error_errno(err, ESB_E_SYSTEM, "writing %s", path);
  fprintf(f, "pid %d\nstart %llu\ncreated_ms %llu\nttl_ms %llu\nidle_timeout_ms %llu\ninner_ids %u %u\n"
          "address_space %llu\nmemory_bytes %llu\n", (int)rec->pid, (unsigned long long)rec->start,
          (unsigned long long)rec->created_ms, (unsigned long long)rec->ttl_ms,
          (unsigned long long)rec->idle_timeout_ms, (unsigned)rec->inner_uid, (unsigned)rec->inner_gid,
          (unsigned long long)rec->address_space, (unsigned long long)rec->memory_bytes);
  fprintf(f, "cgroup_version %d\n", (int)rec->cgroup_version);
  for (int i = 0; i < ESB_CGROUP__COUNT; i++)
    if (rec->cgroups[i])
      fprintf(f, "cgroup %d %s\n", i, rec->cgroups[i]);
  for (size_t i = 0; i < rec->n_labels; i++)
    fprintf(f, "label %s\n", rec->labels[i]);
  for (size_t i = 0; i < rec->n_kernels; i++)
    fprintf(f, "kernel %s\n", rec->kernels[i]);
  if (fclose(f) != 0)
    return esb_error_errno(err, ESB_E_SYSTEM, "writing %s", path);
  return 0;
}

static void read_line(struct esb_session_record *rec, char *line) {
  char *value = strchr(line, ' ');
  if (!value)
    return;
  *value++ = '\0';
  unsigned long long v = strtoull(value, NULL, 10);
  if (strcmp(line, "pid") == 0) rec->pid = (pid_t)v;
  else if (strcmp(line, "start") == 0) rec->start = v;
  else if (strcmp(line, "created_ms") == 0) rec->created_ms = v;
  else if (strcmp(line, "ttl_ms") == 0) rec->ttl_ms = v;
  else if (strcmp(line, "idle_timeout_ms") == 0) rec->idle_timeout_ms = v;
  else if (strcmp(line, "address_space") == 0) rec->address_space = v;
  else if (strcmp(line, "memory_bytes") == 0) rec->memory_bytes = v;
  else if (strcmp(line, "cgroup_version") == 0) rec->cgroup_version = (enum esb_cgroup_version)v;
  else if (strcmp(line, "inner_ids") == 0) {
    unsigned u, g;
    if (sscanf(value, "%u %u", &u, &g) == 2) {
      rec->inner_uid = u;
      rec->inner_gid = g;
    }
  } else if (strcmp(line, "cgroup") == 0 && v < ESB_CGROUP__COUNT && strchr(value, ' ')) {
    rec->cgroups[v] = strchr(value, ' ') + 1;
  } else if (strcmp(line, "label") == 0 && rec->n_labels < ESB_SESSION_RECORD_LABELS) {
    rec->labels[rec->n_labels++] = value;
  } else if (strcmp(line, "kernel") == 0 && rec->n_kernels < ESB_SESSION_RECORD_KERNELS) {
    rec->kernels[rec->n_kernels++] = value;
  }
}

int esb_session_record_read(const char *dir, struct esb_session_record *rec) {
  char path[4200];
  size_t len;
  snprintf(path, sizeof path, "%s/info", dir);
  *rec = (struct esb_session_record){ 0 };
  if (!(rec->owned = esb_read_file(path, &len)))
    return -1;
  for (char *line = rec->owned, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next)
      *next++ = '\0';
    read_line(rec, line);
  }
  return rec->pid > 0 ? 0 : (errno = EPROTO, -1);
}

void esb_session_record_release(struct esb_session_record *rec) {
  free(rec->owned);
  *rec = (struct esb_session_record){ 0 };
}

void esb_session_state_read(const char *dir, enum esb_session_end *end, uint64_t *runs) {
  char path[4200], word[32];
  size_t len;
  snprintf(path, sizeof path, "%s/state", dir);
  char *text = esb_read_file(path, &len);
  unsigned long long n = 0;
  /* No word (yet): alive for as long as the holder is (the caller asks). */
  *end = ESB_SESSION_ALIVE;
  if (text && sscanf(text, "%31s %llu", word, &n) == 2 && esb_session_end_parse(word, end) < 0)
    *end = ESB_SESSION_ALIVE;
  *runs = n;
  free(text);
}

/* Field 3 (the state) and field 22 (the start time) of /proc/PID/stat,
 * read after the command's closing parenthesis (a command may hold any). */
static uint64_t proc_stat(pid_t pid, char *state) {
  char path[64];
  size_t len;
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  char *text = esb_read_file(path, &len);
  char *p = text ? strrchr(text, ')') : NULL;
  unsigned long long start = 0;
  if (p && sscanf(p + 2, "%c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu",
                  state, &start) != 2)
    start = 0;
  free(text);
  return start;
}

uint64_t esb_session_proc_start(pid_t pid) {
  char state;
  return proc_stat(pid, &state);
}

bool esb_session_holder_alive(pid_t pid, uint64_t start) {
  char state = 0;
  return pid > 0 && start && proc_stat(pid, &state) == start && state != 'Z' && state != 'X';
}

void esb_session_files_remove(const char *dir) {
  static const char *const names[] = { "control", "state", "info" };
  char path[4200];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    unlink(path);
  }
  rmdir(dir);
}

bool esb_session_cgroup_view(const struct esb_session_record *rec, struct esb_cgroup *cg) {
  *cg = (struct esb_cgroup)ESB_CGROUP_INIT;
  if (!rec->cgroups[ESB_CGROUP_MEMORY] || rec->cgroup_version == ESB_CGROUP_NONE)
    return false;
  cg->version = rec->cgroup_version;
  for (int i = 0; i < ESB_CGROUP__COUNT; i++)
    cg->dirs[i] = (char *)rec->cgroups[i];
  return true;
}

void esb_session_cgroup_forget(struct esb_cgroup *cg) {
  for (int i = 0; i < ESB_CGROUP__COUNT; i++) {
    free(cg->dirs[i]);
    if (cg->procs[i] >= 0)
      close(cg->procs[i]);
    if (cg->slot_fds[i] >= 0)
      close(cg->slot_fds[i]);
  }
  if (cg->dir_fd >= 0)
    close(cg->dir_fd);
  if (cg->peak_fd >= 0)
    close(cg->peak_fd);
  *cg = (struct esb_cgroup)ESB_CGROUP_INIT;
}

int esb_session_connect(const char *dir) {
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if ((size_t)snprintf(addr.sun_path, sizeof addr.sun_path, "%s/control", dir) >= sizeof addr.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (sock >= 0 && connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0) {
    int saved = errno;
    close(sock);
    errno = saved;
    return -1;
  }
  return sock;
}

int esb_session_workdir_open(const char *dir) {
  int sock = esb_session_connect(dir);
  if (sock < 0)
    return -1;
  struct esb_session_msg m = { .magic = ESB_SESSION_MAGIC, .kind = ESB_SESSION_WORKDIR };
  int fd = -1, n = 0;
  ssize_t got = esb_fd_send(sock, &m, sizeof m, NULL, 0) < 0 ? -1 : esb_fd_recv(sock, &m, sizeof m, &fd, 1, &n);
  int saved = errno;
  close(sock);
  if (got == (ssize_t)sizeof m && n == 1)
    return fd;
  if (n == 1)
    close(fd);
  errno = got < 0 ? saved : EPIPE; /* the holder is gone, or refused */
  return -1;
}

/* ---- files beneath the working dir --------------------------------------
 *
 * The engine (the host's root, often) works on a tree that runs of the
 * session control: any name may be a symlink (to the host's /etc, to
 * /proc/self/root), a fifo, a file a run swaps for another while we look.
 * So every path is resolved by openat2 from the working dir's fd with
 * RESOLVE_BENEATH (no "..", no absolute symlink, nothing that leaves the
 * tree, even through a concurrent rename), RESOLVE_NO_MAGICLINKS and
 * RESOLVE_NO_XDEV (its tmpfs only); a directory is made only by one name
 * in a directory so opened; a file is written as a new name (O_EXCL, never
 * followed) renamed over the old one, which is replaced, never opened; a
 * file is read only when it is regular, opened O_NONBLOCK (a fifo, a lease
 * never holds us). And all of it is done with the filesystem ids of the
 * working dir's owner, the program's (setfsuid: this thread's only, and
 * the capabilities that bypass permissions go with a root fsuid): the
 * engine may do in there what a run may, no more; what it makes is the
 * program's (the tmpfs, the session user namespace's, refuses an owner
 * it does not map: the host's root). */
struct fsids {
  uid_t uid;
  gid_t gid;
};

static const uint64_t beneath = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

static int open_beneath(int dir, const char *path, int flags) {
  struct open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC), .resolve = beneath };
  return (int)syscall(SYS_openat2, dir, path, &how, sizeof how);
}

static int as_owner(int workdir, struct fsids *was);
static void back_from_owner(const struct fsids *was);

/* open_beneath from the working dir itself, with its owner's ids. */
static int open_as_owner(int workdir, const char *path, int flags) {
  struct fsids was;
  if (as_owner(workdir, &was) < 0)
    return -1;
  int fd = open_beneath(workdir, path, flags);
  back_from_owner(&was);
  return fd;
}

/* The words for what stopped a path, as errno says it. */
static int path_error(struct esb_error *err, const char *what, const char *path, int e) {
  const char *why = e == EXDEV || e == ELOOP ? "it leads outside the session's working dir (a link, or '..')"
                  : e == ENOENT            ? "no such file in the session's working dir"
                  : e == ENOTDIR           ? "a part of it is not a directory"
                  : e == EISDIR            ? "it is a directory"
                  : e == ENOSPC || e == EDQUOT || e == EFBIG ? "the session's working dir is full"
                  : e == EAGAIN || e == EWOULDBLOCK ? "the file is busy (a run holds a lease on it)"
                                             : strerror(e);
  enum esb_error_code code = e == EIO || e == ENOMEM || e == EMFILE || e == ENFILE ? ESB_E_SYSTEM
                                                                                   : ESB_E_INVALID_REQUEST;
  return esb_error_set(err, code, "%s '%s': %s", what, path, why);
}

/* Takes the working dir owner's filesystem ids; *was gets ours. */
static int as_owner(int workdir, struct fsids *was) {
  struct stat st;
  if (fstat(workdir, &st) < 0)
    return -1;
  was->gid = (gid_t)setfsgid(st.st_gid);
  was->uid = (uid_t)setfsuid(st.st_uid);
  if ((uid_t)setfsuid((uid_t)-1) != st.st_uid || (gid_t)setfsgid((gid_t)-1) != st.st_gid) {
    setfsuid(was->uid);
    setfsgid(was->gid);
    errno = EPERM;
    return -1;
  }
  return 0;
}

static void back_from_owner(const struct fsids *was) {
  int saved = errno;
  setfsuid(was->uid);
  setfsgid(was->gid);
  errno = saved;
}

static int check_path(const char *path, const char *what, struct esb_error *err) {
  if (esb_file_path_ok(path))
    return 0;
  return esb_error_set(err, ESB_E_INVALID_REQUEST, "%s '%s': a path in the session's working dir is relative, "
                       "without empty, '.' or '..' parts, at most %d bytes", what, path, ESB_FILE_PATH_MAX);
}

uint64_t esb_session_workdir_limit(int workdir) {
  struct statfs fs;
  return fstatfs(workdir, &fs) == 0 ? (uint64_t)fs.f_blocks * (uint64_t)fs.f_bsize : 0;
}

/* The directory above path's last part, made where missing (0755): an
 * O_PATH fd, or -1 with errno. */
static int parent_of(int workdir, const char *path) {
  char buf[ESB_FILE_PATH_MAX + 1];
  snprintf(buf, sizeof buf, "%s", path);
  int cur = fcntl(workdir, F_DUPFD_CLOEXEC, 0);
  for (char *part = buf, *slash; cur >= 0 && (slash = strchr(part, '/')); part = slash + 1) {
    *slash = '\0';
    mkdirat(cur, part, 0755); /* one name in a directory opened beneath: EEXIST is fine */
    int next = open_beneath(cur, part, O_PATH | O_DIRECTORY);
    int saved = errno;
    close(cur);
    cur = next;
    errno = saved;
  }
  return cur;
}

/* len bytes into a new file of dir, named anew, fsync'd not: a name the
 * caller renames. 0, or -1 with errno (the file removed). */
static int write_new(int dir, char *name, size_t size, const struct esb_file *f) {
  unsigned char r[6];
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
    return -1;
  snprintf(name, size, ".echo-sandbox-put-%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5]);
  int fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return -1;
  int rc = esb_write_all(fd, f->data, f->len) < 0 || fchmod(fd, f->mode & 0777) < 0 ? -1 : 0;
  int saved = errno;
  if (close(fd) < 0 && rc == 0) {
    rc = -1;
    saved = errno;
  }
  if (rc < 0) {
    unlinkat(dir, name, 0);
    errno = saved;
  }
  return rc;
}

/* put, with the owner's ids. */
static int put_as_owner(int workdir, const struct esb_file *f, struct esb_error *err) {
  const char *what = "writing";
  int dir = parent_of(workdir, f->path);
  if (dir < 0)
    return path_error(err, what, f->path, errno);
  const char *leaf = strrchr(f->path, '/') ? strrchr(f->path, '/') + 1 : f->path;
  char name[64];
  /* renameat replaces a file or a link (never followed) and refuses a
   * directory: the old name is never opened. */
  int rc = write_new(dir, name, sizeof name, f);
  if (rc == 0 && (rc = renameat(dir, name, dir, leaf)) < 0) {
    int saved = errno;
    unlinkat(dir, name, 0);
    errno = saved;
  }
  int saved = errno;
  close(dir);
  if (rc < 0)
    return path_error(err, what, f->path, saved == ENOTEMPTY || saved == EEXIST ? EISDIR : saved);
  return 0;
}

int esb_session_workdir_put(int workdir, const struct esb_file *f, struct esb_error *err) {
  if (check_path(f->path, "writing", err) < 0)
    return -1;
  uint64_t limit = esb_session_workdir_limit(workdir);
  if (limit && f->len > limit)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "writing '%s': %zu bytes are more than the session's "
                         "working dir holds (%llu)", f->path, f->len, (unsigned long long)limit);
  struct fsids was;
  if (as_owner(workdir, &was) < 0)
    return esb_error_errno(err, ESB_E_SYSTEM, "taking the working dir owner's ids");
  int rc = put_as_owner(workdir, f, err);
  back_from_owner(&was);
  return rc;
}

int esb_session_workdir_get(int workdir, const char *path, char **data, size_t *len, struct esb_error *err) {
  const char *what = "reading";
  *data = NULL;
  *len = 0;
  if (check_path(path, what, err) < 0)
    return -1;
  int fd = open_as_owner(workdir, path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    int saved = errno;
    if (fd >= 0)
      close(fd);
    return path_error(err, what, path, saved);
  }
  uint64_t limit = esb_session_workdir_limit(workdir);
  const char *refused = S_ISDIR(st.st_mode) ? "it is a directory (`session files` lists one)"
                      : !S_ISREG(st.st_mode) ? "not a regular file"
                      : limit && (uint64_t)st.st_size > limit ? "larger than the session's working dir holds "
                                                                "(a sparse file)" : NULL;
  char *buf = refused ? NULL : malloc((size_t)st.st_size + 1);
  size_t got = 0;
  while (buf && got <= (size_t)st.st_size) { /* one byte more: a file that grew is cut at its size then */
    ssize_t n = read(fd, buf + got, (size_t)st.st_size + 1 - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(fd);
  if (refused)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "%s '%s': %s", what, path, refused);
  if (!buf)
    return esb_error_set(err, ESB_E_SYSTEM, "%s '%s': out of memory", what, path);
  *data = buf;
  *len = got > (size_t)st.st_size ? (size_t)st.st_size : got;
  return 0;
}

static char entry_type(mode_t mode) {
  return S_ISREG(mode) ? 'f' : S_ISDIR(mode) ? 'd' : S_ISLNK(mode) ? 'l' : 'o';
}

int esb_session_workdir_list(int workdir, const char *path, void (*fn)(const struct esb_session_entry *e, void *arg),
                             void *arg, struct esb_error *err) {
  const char *what = "listing";
  if (path && path[0] && check_path(path, what, err) < 0)
    return -1;
  int fd = open_as_owner(workdir, path && path[0] ? path : ".", O_RDONLY | O_DIRECTORY | O_NONBLOCK);
  DIR *d = fd < 0 ? NULL : fdopendir(fd);
  if (!d) {
    int saved = errno;
    if (fd >= 0)
      close(fd);
    return path_error(err, what, path && path[0] ? path : ".", saved);
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    struct stat st;
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
        fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
      continue; /* gone since: a run removed it */
    struct esb_session_entry entry = { .name = e->d_name, .type = entry_type(st.st_mode),
                                       .size = (uint64_t)st.st_size, .mode = st.st_mode & 07777 };
    fn(&entry, arg);
  }
  closedir(d);
  return 0;
}
