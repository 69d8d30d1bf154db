#include "backend/local_session_files.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <signal.h>
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
#include <sys/wait.h>
#include <unistd.h>

#include "engine/fileio.h"
#include "engine/sandbox/clone.h"
#include "engine/sandbox/fd_passing.h"
#include "engine/sandbox/spawn.h"

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

/* Field 3 (the state), field 9 (the kernel's flags) and field 22 (the
 * start time) of /proc/PID/stat, read after the command's closing
 * parenthesis (a command may hold any). */
static uint64_t proc_stat(pid_t pid, char *state, unsigned *flags) {
  char path[64];
  size_t len;
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  char *text = esb_read_file(path, &len);
  char *p = text ? strrchr(text, ')') : NULL;
  unsigned long long start = 0;
  if (p && sscanf(p + 2, "%c %*s %*s %*s %*s %*s %u %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu",
                  state, flags, &start) != 3)
    start = 0;
  free(text);
  return start;
}

uint64_t esb_session_proc_start(pid_t pid) {
  char state;
  unsigned flags;
  return proc_stat(pid, &state, &flags);
}

/* The kernel's PF_EXITING (include/linux/sched.h), in field 9: set when
 * a process begins to exit, before its fds are closed. */
#define PF_EXITING 0x4u

bool esb_session_holder_alive(pid_t pid, uint64_t start) {
  char state = 0;
  unsigned flags = 0;
  /* One that is exiting is not: a run learns of the holder's end when its
   * connection closes, while the holder, killed, is still on its way to a
   * zombie. */
  return pid > 0 && start && proc_stat(pid, &state, &flags) == start && state != 'Z' && state != 'X' &&
         !(flags & PF_EXITING);
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
 * O_PATH fd, or -1 with errno. Done in a clone of a threaded process
 * (below): system calls only. */
static int parent_of(int workdir, const char *path) {
  char buf[ESB_FILE_PATH_MAX + 1];
  size_t len = strnlen(path, ESB_FILE_PATH_MAX); /* check_path bounds it */
  memcpy(buf, path, len);
  buf[len] = '\0';
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

/* The name a put's bytes go to first, anew each time: a name the put
 * renames over the file's. 0, or -1 with errno. */
#define NEW_NAME_MAX 64
static int new_name(char name[NEW_NAME_MAX]) {
  unsigned char r[6];
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
    return -1;
  snprintf(name, NEW_NAME_MAX, ".echo-sandbox-put-%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5]);
  return 0;
}

/* f's bytes into the new file name of dir, fsync'd not. 0, or -1 with
 * errno (the file removed). */
static int write_new(int dir, const char *name, const struct esb_file *f) {
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

/* put, with the owner's ids, its bytes first under name. 0, or -1 with
 * errno (EISDIR: a directory is where the file goes). System calls only. */
static int put_as_owner(int workdir, const struct esb_file *f, const char *name) {
  int dir = parent_of(workdir, f->path);
  if (dir < 0)
    return -1;
  const char *leaf = strrchr(f->path, '/') ? strrchr(f->path, '/') + 1 : f->path;
  /* renameat replaces a file or a link (never followed) and refuses a
   * directory: the old name is never opened. */
  int rc = write_new(dir, name, f);
  if (rc == 0 && (rc = renameat(dir, name, dir, leaf)) < 0) {
    int saved = errno;
    unlinkat(dir, name, 0);
    errno = saved;
  }
  int saved = errno;
  close(dir);
  errno = saved == ENOTEMPTY || saved == EEXIST ? EISDIR : saved;
  return rc;
}

/* ---- writes charged to the session ---------------------------------------
 *
 * A tmpfs page is charged to the memory cgroup of the process whose write
 * allocates it (v1 and v2 alike: its mm's owner's), and stays charged there
 * while the file holds it. Written by the engine's own process, a
 * session's files would count against the engine's memory (the CLI's, the
 * daemon's: every tenant's files, in one daemon's limit) and not against
 * the session's, which they would then exceed. So where the session has a
 * memory cgroup, a put is made by a short-lived clone of ours that joins it
 * first (v2: it starts in the holder's leaf, CLONE_INTO_CGROUP; v1: it
 * writes "0" to the memory cgroup's tasks) and makes itself the OOM
 * killer's first choice there (oom_score_adj 1000): a file the session's
 * memory cannot hold ends the clone, not the session's kernels or runs,
 * and is an error of the put that names the session's memory limit; the
 * bytes it wrote are removed. The clone (of a threaded process, with our
 * memory copied) makes system calls only, with every signal blocked, and
 * says how it ended on a pipe. */
enum put_step { PUT_DONE, PUT_JOIN, PUT_WRITE };

struct put_said {
  int step;   /* enum put_step: the one that failed, or PUT_DONE */
  int error;  /* its errno */
};

/* The clone's side: never returns. */
static void put_in_clone(int workdir, int procs, const struct esb_file *f, const char *name, int said_fd) {
  struct put_said said = { .step = PUT_JOIN };
  if (procs < 0 || write(procs, "0", 1) == 1) {
    int adj = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (adj >= 0) {
      (void)!write(adj, "1000", 4);
      close(adj);
    }
    struct fsids was;
    said.step = as_owner(workdir, &was) < 0 || put_as_owner(workdir, f, name) < 0 ? PUT_WRITE : PUT_DONE;
  }
  said.error = said.step == PUT_DONE ? 0 : errno;
  (void)!write(said_fd, &said, sizeof said);
  _exit(0);
}

/* The session's memory cgroup, for the clone: v2 the holder's leaf (its
 * cgroup has children with controllers, so no process of its own;
 * local_session.c names it), as a directory (*leaf) and its cgroup.procs;
 * v1 the memory cgroup's tasks. 0, or -1 with errno and *where the path. */
static int open_charge(const struct esb_session_record *rec, int *leaf, int *procs, char *where, size_t n) {
  bool v2 = rec->cgroup_version == ESB_CGROUP_V2;
  *leaf = *procs = -1;
  if ((size_t)snprintf(where, n, "%s%s", rec->cgroups[ESB_CGROUP_MEMORY], v2 ? "/holder" : "") >= n) {
    errno = ENAMETOOLONG;
    return -1;
  }
  int dir = open(where, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  *procs = dir < 0 ? -1 : openat(dir, v2 ? "cgroup.procs" : "tasks", O_WRONLY | O_CLOEXEC);
  int saved = errno;
  if (*procs >= 0 && v2)
    *leaf = dir;
  else if (dir >= 0)
    close(dir);
  errno = saved;
  return *procs >= 0 ? 0 : -1;
}

/* The bytes of a clone that did not end its put (killed): removed. */
static void remove_new(int workdir, const struct esb_file *f, const char *name) {
  char dir_path[ESB_FILE_PATH_MAX + 1];
  const char *slash = strrchr(f->path, '/');
  snprintf(dir_path, sizeof dir_path, "%.*s", slash ? (int)(slash - f->path) : 1, slash ? f->path : ".");
  int dir = open_as_owner(workdir, dir_path, O_PATH | O_DIRECTORY);
  struct fsids was;
  if (dir >= 0 && as_owner(workdir, &was) == 0) {
    unlinkat(dir, name, 0);
    back_from_owner(&was);
  }
  if (dir >= 0)
    close(dir);
}

/* How the clone ended, as the put's result: 0, or -1 with err. */
static int put_outcome(int workdir, const struct esb_session_record *rec, const struct esb_file *f,
                       const char *name, const struct esb_child_exit *ex, const struct put_said *said,
                       bool said_whole, const char *where, struct esb_error *err) {
  bool killed = !said_whole && WIFSIGNALED(ex->wstatus);
  if (killed)
    remove_new(workdir, f, name);
  if ((killed && WTERMSIG(ex->wstatus) == SIGKILL) || (said_whole && said->step == PUT_WRITE && said->error == ENOMEM))
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "writing '%s': its %zu bytes do not fit in the session's "
                         "memory limit (%llu bytes), which holds the working dir's files beside its runs and "
                         "kernels", f->path, f->len, (unsigned long long)rec->memory_bytes);
  if (!said_whole)
    return esb_error_set(err, ESB_E_SYSTEM, "writing '%s': the session's writer ended without a word (%s %d)",
                         f->path, killed ? "signal" : "status",
                         killed ? WTERMSIG(ex->wstatus) : WEXITSTATUS(ex->wstatus));
  if (said->step == PUT_JOIN)
    return esb_error_set(err, ESB_E_SYSTEM, "writing '%s': joining the session's memory cgroup %s: %s", f->path,
                         where, strerror(said->error));
  return said->step == PUT_DONE ? 0 : path_error(err, "writing", f->path, said->error);
}

/* put by a clone in the session's memory cgroup (above). 0, or -1 with err. */
static int put_charged(int workdir, const struct esb_session_record *rec, const struct esb_file *f,
                       const char *name, struct esb_error *err) {
  char where[4200];
  int leaf, procs, said_pipe[2];
  if (open_charge(rec, &leaf, &procs, where, sizeof where) < 0)
    return esb_error_errno(err, ESB_E_SYSTEM, "writing '%s': opening the session's memory cgroup %s", f->path,
                           where);
  if (pipe2(said_pipe, O_CLOEXEC) < 0) {
    int saved = errno;
    close(procs);
    if (leaf >= 0)
      close(leaf);
    errno = saved;
    return esb_error_errno(err, ESB_E_SYSTEM, "writing '%s': a pipe", f->path);
  }
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int pidfd = -1;
  bool into = false;
  pid_t pid = esb_clone(CLONE_PIDFD, &pidfd, 0, leaf, &into);
  if (pid == 0)
    put_in_clone(workdir, into ? -1 : procs, f, name, said_pipe[1]);
  int saved = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  close(said_pipe[1]);
  close(procs);
  if (leaf >= 0)
    close(leaf);
  struct esb_child_exit ex = { 0 };
  struct put_said said = { 0 };
  ssize_t got = -1;
  if (pid > 0 && esb_child_wait(pidfd, false, &ex) == 1)
    got = read(said_pipe[0], &said, sizeof said);
  else if (pid > 0)
    saved = errno;
  close(said_pipe[0]);
  if (pidfd >= 0)
    close(pidfd);
  if (got < 0 && pid <= 0) {
    errno = saved;
    return esb_error_errno(err, ESB_E_SYSTEM, "writing '%s': starting the session's writer", f->path);
  }
  return put_outcome(workdir, rec, f, name, &ex, &said, got == (ssize_t)sizeof said, where, err);
}

int esb_session_workdir_put(int workdir, const struct esb_session_record *rec, const struct esb_file *f,
                            struct esb_error *err) {
  if (check_path(f->path, "writing", err) < 0)
    return -1;
  uint64_t limit = esb_session_workdir_limit(workdir);
  if (limit && f->len > limit)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "writing '%s': %zu bytes are more than the session's "
                         "working dir holds (%llu)", f->path, f->len, (unsigned long long)limit);
  char name[NEW_NAME_MAX];
  if (new_name(name) < 0)
    return esb_error_errno(err, ESB_E_SYSTEM, "writing '%s': naming its new file", f->path);
  if (rec->cgroups[ESB_CGROUP_MEMORY] && rec->cgroup_version != ESB_CGROUP_NONE)
    return put_charged(workdir, rec, f, name, err);
  /* No memory cgroup: each process's address space is the session's limit,
   * and the working dir's size bounds its files. */
  struct fsids was;
  if (as_owner(workdir, &was) < 0)
    return esb_error_errno(err, ESB_E_SYSTEM, "taking the working dir owner's ids");
  int rc = put_as_owner(workdir, f, name);
  back_from_owner(&was);
  return rc < 0 ? path_error(err, "writing", f->path, errno) : 0;
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
