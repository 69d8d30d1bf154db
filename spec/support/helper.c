/* esb-spec-helper: what the specs need on the host side that Lua alone
 * cannot do.
 *
 *   esb-spec-helper listen PORTFILE [ADDR] accept TCP connections on 127.0.0.1 or ADDR (free port
 *                                         written to PORTFILE), answer "hello\n", forever
 *   esb-spec-helper closed-port PORTFILE  hold a 127.0.0.1 port bound, never listening (written
 *                                         to PORTFILE), until killed: it refuses connections
 *   esb-spec-helper leaks PID             print what could leak from process PID: its open
 *                                         fds, its descendants (but this helper and its shell),
 *                                         processes that carry PID's $ESB_SPEC_MARK in their
 *                                         environment (started by the specs, even if reparented),
 *                                         processes and cgroups inside the suite's own cgroups
 *                                         ($ESB_SPEC_CGROUPS: sandboxes, whose environment is
 *                                         cleared, are found there), and echo-sandbox-* temp
 *                                         dirs in $TMPDIR (the suite's own temp root); an idle
 *                                         slot of the engines' shared cgroup pool (no process,
 *                                         no engine holding its lock) is the engine's, not a leak
 *   esb-spec-helper cgroup-enter PID NAME make a cgroup NAME below PID's cgroup in each
 *                                         hierarchy the engine may use (v1 memory and pids, or
 *                                         v2), move PID into it, print the directories made.
 *                                         v2: PID goes into NAME/harness, a leaf, and NAME gets
 *                                         the memory, pids and cpu controllers where PID's cgroup
 *                                         can give them (PID was alone in it), so the engines the
 *                                         specs start make their runs' cgroups in NAME
 *   esb-spec-helper cgroup-leave PID DIR...  move PID back to each DIR's parent and remove DIR
 *                                         (and DIR/harness, and the idle slots of the engines'
 *                                         cgroup pool in DIR); exit 1 when one cannot be removed
 *                                         (something left in it)
 *   esb-spec-helper no-setrlimit CMD...   run CMD where setting a resource limit fails (EPERM; reading
 *                                         one works), as under a security module that denies it
 *   esb-spec-helper http PORT PATH [BODY] GET PATH of 127.0.0.1:PORT, or POST BODY there (JSON), and
 *                                         print the answer's body; exit 22 where its status is 400 or
 *                                         more, 1 where none came within 30 s (curl -sS
 *                                         --fail-with-body --max-time 30, for the fake API server's
 *                                         own endpoints: curl's start cost ~25 ms of CPU, some 1,300
 *                                         times a suite)
 *   esb-spec-helper fake-start SOCKET LOG ARG...  start a fake API server with ARGs, forked by the
 *                                         fake_kube_zygote.py listening on SOCKET (waiting up to
 *                                         30 s for it to listen), in this directory and
 *                                         environment, its output appended to LOG; print its pid
 *
 * The leak check looks only at what the suite started, so the suite passes
 * beside other users of the machine (a deployed serve, another checkout).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* The port number, to portfile whole or not at all. */
static int write_port(const char *portfile, const struct sockaddr_in *a) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", portfile);
  FILE *f = fopen(tmp, "w");
  if (!f) { perror(tmp); return -1; }
  fprintf(f, "%d\n", ntohs(a->sin_port));
  fclose(f);
  return rename(tmp, portfile);
}

/* A loopback port that refuses every connection, and that no other socket
 * takes while this runs (a port closed by its server may be the next
 * one's): bound, never listening. Its number goes to portfile. */
static int cmd_closed_port(const char *portfile) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  socklen_t len = sizeof a;
  if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(s, (struct sockaddr *)&a, &len) < 0) {
    perror("closed-port");
    return 1;
  }
  if (write_port(portfile, &a) < 0) return 1;
  for (;;) pause();
}

static int cmd_listen(const char *portfile, const char *addr) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  if (addr && inet_pton(AF_INET, addr, &a.sin_addr) != 1) {
    fprintf(stderr, "listen: not an IPv4 address: %s\n", addr);
    return 1;
  }
  socklen_t len = sizeof a;
  if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 16) < 0 ||
      getsockname(s, (struct sockaddr *)&a, &len) < 0) {
    perror("listen");
    return 1;
  }
  if (write_port(portfile, &a) < 0) return 1;
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    (void)!write(c, "hello\n", 6);
    close(c);
  }
}

static int parent_stat(int pid, int *ppid) {
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *close_paren = strrchr(buf, ')');
  return close_paren && sscanf(close_paren + 2, "%*c %d", ppid) == 1 ? 0 : -1;
}
static int read_stat(int pid, int *ppid, unsigned *uid, char *cmd, size_t cmdlen) {
  char path[64], buf[4096];
  FILE *f;
  size_t n;
  if (parent_stat(pid, ppid) < 0) return -1;
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  *uid = (unsigned)-1;
  if ((f = fopen(path, "r"))) {
    while (fgets(buf, sizeof buf, f))
      if (sscanf(buf, "Uid: %u", uid) == 1) break;
    fclose(f);
  }
  snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
  cmd[0] = 0;
  if ((f = fopen(path, "r"))) {
    n = fread(cmd, 1, cmdlen - 1, f);
    fclose(f);
    for (size_t i = 0; i < n; i++) if (!cmd[i]) cmd[i] = ' ';
    cmd[n] = 0;
  }
  return 0;
}

/* Every process's parent, read once a snapshot: the ancestry checks below
 * walk this table, not /proc (a walk there read three files a level, for
 * every process on the machine, twice a spec case). */
struct parent_link {
  int pid, ppid;
};
static struct parent_link *links;
static size_t nlinks;

static int by_pid(const void *a, const void *b) {
  int x = ((const struct parent_link *)a)->pid, y = ((const struct parent_link *)b)->pid;
  return (x > y) - (x < y);
}
static void read_parent_links(void) {
  size_t cap = 0;
  DIR *proc = opendir("/proc");
  struct dirent *e;
  while (proc && (e = readdir(proc))) {
    int ppid;
    if (!isdigit((unsigned char)e->d_name[0]) || parent_stat(atoi(e->d_name), &ppid) < 0) continue;
    if (nlinks == cap && !(links = realloc(links, (cap = cap ? 2 * cap : 512) * sizeof *links))) abort();
    links[nlinks++] = (struct parent_link){ atoi(e->d_name), ppid };
  }
  if (proc) closedir(proc);
  qsort(links, nlinks, sizeof *links, by_pid);
}
/* pid's parent in the table; 0 where pid is not there */
static int parent_of(int pid) {
  struct parent_link key = { pid, 0 }, *l = bsearch(&key, links, nlinks, sizeof *links, by_pid);
  return l ? l->ppid : 0;
}
/* Descendants of root, found by walking parents up from every process. */
static int is_descendant(int pid, int root) {
  for (int depth = 0; pid > 1 && depth < 64; depth++)
    if ((pid = parent_of(pid)) == root) return 1;
  return 0;
}

static int has_mark(int pid, const char *mark) {
  char path[64], buf[65536];
  snprintf(path, sizeof path, "/proc/%d/environ", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  size_t mlen = strlen(mark);
  for (size_t i = 0; i + mlen <= n; i += strlen(buf + i) + 1)
    if (!memcmp(buf + i, mark, mlen) && (i + mlen == n || buf[i + mlen] == 0)) return 1;
  return 0;
}

/* root and the processes above it (they carry the mark too). */
static int is_ancestor_or_self(int pid, int root) {
  for (int depth = 0; root > 1 && depth < 64; depth++, root = parent_of(root))
    if (pid == root) return 1;
  return 0;
}

/* The suite's cgroup directories ($ESB_SPEC_CGROUPS, space-separated). */
static int suite_cgroups(char dirs[][PATH_MAX], int max) {
  const char *list = getenv("ESB_SPEC_CGROUPS");
  int n = 0;
  while (list && *list && n < max) {
    size_t len = strcspn(list, " ");
    if (len > 0 && len < PATH_MAX) {
      memcpy(dirs[n], list, len);
      dirs[n++][len] = 0;
    }
    list += len + (list[len] == ' ');
  }
  return n;
}

static int walk_self, walk_shell, walk_procs;

/* An idle slot of the cgroup pool engines share (echo-sandbox-pool-K,
 * engine/cgroup.h): no process in it and no engine holding its lock. Its
 * lock is taken while it is looked at: an engine that wants it then takes
 * the next slot. With remove, it is removed under that lock. */
static int idle_pool_slot(const char *path, int remove) {
  const char *base = strrchr(path, '/');
  unsigned k;
  char tail;
  if (!base || sscanf(base + 1, "echo-sandbox-pool-%u%c", &k, &tail) != 1)
    return 0;
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  int idle = 0;
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
    char c;
    int procs = openat(fd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
    idle = procs >= 0 && read(procs, &c, 1) == 0;
    if (procs >= 0)
      close(procs);
    if (idle && remove)
      idle = rmdir(path) == 0;
  }
  close(fd);
  return idle;
}

static int remove_idle_slot(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  if (type == FTW_DP && ftw->level > 0)
    idle_pool_slot(path, 1);
  return 0;
}

/* Every cgroup below the suite's, and every process in any of them. */
static int print_cgroup(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  if (type != FTW_D)
    return 0;
  if (ftw->level > 0 && !idle_pool_slot(path, 0))
    printf("cgroup %s\n", path);
  if (!walk_procs)
    return 0;
  char procs[PATH_MAX + 16], cmd[256];
  snprintf(procs, sizeof procs, "%s/cgroup.procs", path);
  FILE *f = fopen(procs, "r");
  int pid, ppid;
  unsigned uid;
  while (f && fscanf(f, "%d", &pid) == 1)
    if (pid != walk_self && pid != walk_shell && read_stat(pid, &ppid, &uid, cmd, sizeof cmd) == 0)
      printf("proc %d in the suite's cgroup: %s\n", pid, cmd);
  if (f)
    fclose(f);
  return 0;
}

/* PID's cgroup directory in the hierarchy mounted at mountpoint with root
 * root, whose line in /proc/PID/cgroup has controllers (v2: empty). */
static int cgroup_dir_of(int pid, const char *controllers, const char *mountpoint, const char *root,
                         char *dir, size_t len) {
  char path[64], line[PATH_MAX + 64];
  snprintf(path, sizeof path, "/proc/%d/cgroup", pid);
  FILE *f = fopen(path, "r");
  int found = -1;
  while (f && found < 0 && fgets(line, sizeof line, f)) {
    char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
    if (!b)
      continue;
    *b = 0;
    if (strcmp(a + 1, controllers))
      continue;
    b[1 + strcspn(b + 1, "\n")] = 0;
    const char *rel = b + 1;
    size_t rootlen = strlen(root);
    if (strcmp(root, "/") && !strncmp(rel, root, rootlen))
      rel += rootlen;
    snprintf(dir, len, "%s%s", mountpoint, strcmp(rel, "/") ? rel : "");
    found = 0;
  }
  if (f)
    fclose(f);
  return found;
}

static int write_pid(const char *dir, int pid) {
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/cgroup.procs", dir);
  FILE *f = fopen(path, "w");
  if (!f)
    return -1;
  fprintf(f, "%d\n", pid);
  return fclose(f);
}

/* Enables what of memory, pids and cpu dir's cgroup.controllers offers in
 * its subtree; quietly does less where the kernel refuses (dir has processes). */
static void enable_controllers(const char *dir) {
  static const char *const names[] = {"memory", "pids", "cpu"};
  char path[PATH_MAX + 32], offered[512] = "";
  snprintf(path, sizeof path, "%s/cgroup.controllers", dir);
  FILE *f = fopen(path, "r");
  if (f) {
    if (!fgets(offered, sizeof offered, f)) offered[0] = 0;
    fclose(f);
  }
  snprintf(path, sizeof path, "%s/cgroup.subtree_control", dir);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (!strstr(offered, names[i])) continue;
    FILE *w = fopen(path, "w");
    if (w) {
      fprintf(w, "+%s", names[i]);
      fclose(w);
    }
  }
}

static int cmd_cgroup_enter(int pid, const char *name) {
  FILE *m = fopen("/proc/self/mountinfo", "r");
  char line[4096];
  while (m && fgets(line, sizeof line, m)) {
    char root[PATH_MAX], mountpoint[PATH_MAX], fstype[64], options[1024];
    const char *dash = strstr(line, " - ");
    if (!dash || sscanf(line, "%*s %*s %*s %4095s %4095s", root, mountpoint) != 2 ||
        sscanf(dash + 3, "%63s %*s %1023s", fstype, options) != 2)
      continue;
    const char *controllers = NULL;
    if (!strcmp(fstype, "cgroup2") && !strcmp(mountpoint, "/sys/fs/cgroup"))
      controllers = "";
    else if (!strcmp(fstype, "cgroup") && (strstr(options, ",memory") || strstr(options, ",pids")))
      controllers = strstr(options, ",memory") ? "memory" : "pids";
    char dir[PATH_MAX], made[PATH_MAX + 256];
    if (!controllers || cgroup_dir_of(pid, controllers, mountpoint, root, dir, sizeof dir) < 0)
      continue;
    snprintf(made, sizeof made, "%s/%s", dir, name);
    if (!*controllers) {
      /* v2: no process may stay where controllers are enabled for children. */
      char harness[PATH_MAX + 300];
      snprintf(harness, sizeof harness, "%s/harness", made);
      if ((mkdir(made, 0755) < 0 && errno != EEXIST) || (mkdir(harness, 0755) < 0 && errno != EEXIST) ||
          write_pid(harness, pid) < 0 || write_pid(harness, getpid()) < 0) {
        write_pid(dir, pid);
        rmdir(harness);
        rmdir(made);
        continue;
      }
      enable_controllers(dir);
      enable_controllers(made);
      printf("%s\n", made);
      continue;
    }
    if ((mkdir(made, 0755) < 0 && errno != EEXIST) || write_pid(made, pid) < 0) {
      rmdir(made);
      continue;
    }
    printf("%s\n", made);
  }
  if (m)
    fclose(m);
  return 0;
}

/* What keeps a cgroup from going: its child cgroups and their processes. */
static int say_what_is_left(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  if (type != FTW_D)
    return 0;
  char procs[PATH_MAX + 16], line[64], pids[512] = "";
  snprintf(procs, sizeof procs, "%s/cgroup.procs", path);
  FILE *f = fopen(procs, "r");
  while (f && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (strlen(pids) + strlen(line) + 2 > sizeof pids)
      break;
    strcat(pids, line);
    strcat(pids, " ");
  }
  if (f)
    fclose(f);
  fprintf(stderr, "esb-spec-helper:   %s (processes: %s)\n", path, *pids ? pids : "none");
  return 0;
}

/* Moves pid out of dir, into its parent; on cgroup v2 a parent with
 * controllers enabled for its children takes no process (we enabled them
 * there, cmd_cgroup_enter), so into the nearest ancestor that takes it:
 * the root always does. */
static void move_out(const char *dir, int pid) {
  char up[PATH_MAX];
  snprintf(up, sizeof up, "%s", dir);
  for (char *slash; (slash = strrchr(up, '/')) && slash != up;) {
    *slash = 0;
    if (write_pid(up, pid) == 0 || errno != EBUSY)
      return;
  }
}

static int cmd_cgroup_leave(int pid, char **dirs, int n) {
  int rc = 0;
  for (int i = 0; i < n; i++) {
    if (!strrchr(dirs[i], '/'))
      continue;
    move_out(dirs[i], pid);
    move_out(dirs[i], getpid()); /* we were started inside it too */
    char harness[PATH_MAX + 16];
    snprintf(harness, sizeof harness, "%s/harness", dirs[i]);
    rmdir(harness); /* v2's leaf, where there is one */
    nftw(dirs[i], remove_idle_slot, 8, FTW_PHYS | FTW_DEPTH);
    if (rmdir(dirs[i]) < 0 && errno != ENOENT) {
      fprintf(stderr, "esb-spec-helper: cannot remove the suite's cgroup %s: %s; left in it:\n", dirs[i],
              strerror(errno));
      nftw(dirs[i], say_what_is_left, 8, FTW_PHYS);
      rc = 1;
    }
  }
  return rc;
}

static int cmd_leaks(const char *pidarg) {
  int root = atoi(pidarg), self = getpid(), shell = getppid();
  char path[64], target[PATH_MAX], cmd[256];
  snprintf(path, sizeof path, "/proc/%d/fd", root);
  DIR *d = opendir(path);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char link[PATH_MAX];
    snprintf(link, sizeof link, "%s/%s", path, e->d_name);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n > 0 ? n : 0] = 0;
    /* the pipe of the popen that runs us is new each time: name it by kind */
    if (!strncmp(target, "pipe:", 5)) strcpy(target, "pipe");
    printf("fd %s %s\n", e->d_name, target);
  }
  if (d) closedir(d);
  char mark[256] = "";
  const char *m = getenv("ESB_SPEC_MARK");
  if (m && *m) snprintf(mark, sizeof mark, "ESB_SPEC_MARK=%s", m);
  read_parent_links();
  for (size_t i = 0; i < nlinks; i++) {
    int pid = links[i].pid, ppid;
    unsigned uid;
    if (pid == self || pid == shell) continue;
    int child = is_descendant(pid, root);
    if (!child && !(*mark && has_mark(pid, mark) && !is_ancestor_or_self(pid, root))) continue;
    if (read_stat(pid, &ppid, &uid, cmd, sizeof cmd) < 0) continue;
    if (child) printf("child %d: %s\n", pid, cmd);
    else printf("proc %d started by the specs: %s\n", pid, cmd);
  }
  free(links);
  const char *tmp = getenv("TMPDIR");
  DIR *t = opendir(tmp && *tmp ? tmp : "/tmp");
  while (t && (e = readdir(t)))
    if (!strncmp(e->d_name, "echo-sandbox-", 13)) printf("tmp %s\n", e->d_name);
  if (t) closedir(t);
  char cgroups[4][PATH_MAX];
  walk_self = self;
  walk_shell = shell;
  for (int i = 0, n = suite_cgroups(cgroups, 4); i < n; i++) {
    walk_procs = i == 0; /* a process is in one cgroup of each hierarchy: list it once */
    nftw(cgroups[i], print_cgroup, 16, FTW_PHYS | FTW_MOUNT);
  }
  return 0;
}

/* A seccomp filter: setrlimit, and prlimit64 with a new limit (its third
 * argument, either half of it non-zero), fail with EPERM; all else runs. */
static int cmd_no_setrlimit(char **argv) {
  struct sock_filter code[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_setrlimit, 6, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_prlimit64, 0, 4),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 3),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2]) + 4),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
  };
  struct sock_fprog prog = { .len = sizeof code / sizeof code[0], .filter = code };
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
    perror("no-setrlimit");
    return 1;
  }
  execvp(argv[0], argv);
  perror(argv[0]);
  return 127;
}

/* A connection to the zygote's socket, which its spec/run starts beside the
 * specs: it may not be listening yet (it renames its socket there once it
 * is). */
static int zygote_connect(const char *path) {
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof a.sun_path) {
    fprintf(stderr, "fake-start: the socket path %s is too long\n", path);
    return -1;
  }
  strcpy(a.sun_path, path);
  for (int tries = 0; tries < 3000; tries++) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      break;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
      return fd;
    int e = errno;
    close(fd);
    if (e != ENOENT && e != ECONNREFUSED) {
      errno = e;
      break;
    }
    nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
  }
  fprintf(stderr, "fake-start: no fake_kube_zygote.py on %s: %s\n", path, strerror(errno ? errno : ETIMEDOUT));
  return -1;
}

static int write_all(int fd, const char *data, size_t len) {
  for (size_t off = 0; off < len;) {
    ssize_t n = write(fd, data + off, len - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    off += (size_t)n;
  }
  return 0;
}

static int send_field(int fd, const char *text) {
  return write_all(fd, text, strlen(text) + 1); /* with its NUL */
}

static int cmd_fake_start(const char *path, const char *log, char **args, int n) {
  extern char **environ;
  char cwd[PATH_MAX], count[16], answer[64];
  int fd = zygote_connect(path);
  if (fd < 0)
    return 1;
  int bad = !getcwd(cwd, sizeof cwd);
  snprintf(count, sizeof count, "%d", n);
  bad = bad || send_field(fd, cwd) < 0 || send_field(fd, log) < 0 || send_field(fd, count) < 0;
  for (int i = 0; !bad && i < n; i++)
    bad = send_field(fd, args[i]) < 0;
  for (char **e = environ; !bad && *e; e++)
    bad = send_field(fd, *e) < 0;
  ssize_t got = 0, r;
  if (!bad && shutdown(fd, SHUT_WR) == 0)
    while (got < (ssize_t)sizeof answer - 1 && (r = read(fd, answer + got, sizeof answer - 1 - got)) > 0)
      got += r;
  close(fd);
  answer[got > 0 ? got : 0] = 0;
  if (bad || got <= 0 || !isdigit((unsigned char)answer[0])) {
    fprintf(stderr, "fake-start: %s\n", got > 0 ? answer : "the zygote did not answer");
    return 1;
  }
  fputs(answer, stdout);
  return 0;
}

/* The answer's body after its head, on stdout; 22 for a status of 400 or
 * more, 0 otherwise, 1 where no whole head came. */
static int print_answer(const char *answer, size_t len) {
  const char *body = memmem(answer, len, "\r\n\r\n", 4);
  int status = 0;
  if (!body || sscanf(answer, "HTTP/%*d.%*d %d", &status) != 1) {
    fprintf(stderr, "http: no answer's head came\n");
    return 1;
  }
  body += 4;
  fwrite(body, 1, len - (size_t)(body - answer), stdout);
  return status >= 400 ? 22 : 0;
}

static int cmd_http(const char *port, const char *path, const char *body) {
  alarm(30); /* as curl's --max-time: a fake that never answers ends this */
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    fprintf(stderr, "http: 127.0.0.1:%s: %s\n", port, strerror(errno));
    if (fd >= 0)
      close(fd);
    return 1;
  }
  size_t body_len = body ? strlen(body) : 0;
  char *request = NULL;
  int n = asprintf(&request, "%s %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", body ? "POST" : "GET", path, port,
                   body_len, body ? body : "");
  int sent = n >= 0 ? write_all(fd, request, (size_t)n) : -1;
  if (n >= 0)
    free(request);
  if (sent < 0) {
    fprintf(stderr, "http: sending the request: %s\n", strerror(errno));
    close(fd);
    return 1;
  }
  char *answer = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    char *grown = len == cap ? realloc(answer, cap = cap ? 2 * cap : 65536) : answer;
    ssize_t got = grown ? read(fd, (answer = grown) + len, cap - len) : -1;
    if (got < 0 && grown && errno == EINTR)
      continue;
    if (got < 0) {
      fprintf(stderr, "http: reading the answer: %s\n", grown ? strerror(errno) : "out of memory");
      free(answer);
      close(fd);
      return 1;
    }
    if (got == 0)
      break;
    len += (size_t)got;
  }
  close(fd);
  int rc = print_answer(answer ? answer : "", len);
  free(answer);
  return rc;
}

int main(int argc, char **argv) {
  if (argc >= 3 && !strcmp(argv[1], "listen")) return cmd_listen(argv[2], argc >= 4 ? argv[3] : NULL);
  if (argc == 3 && !strcmp(argv[1], "closed-port")) return cmd_closed_port(argv[2]);
  if (argc >= 3 && !strcmp(argv[1], "leaks")) return cmd_leaks(argv[2]);
  if (argc == 4 && !strcmp(argv[1], "cgroup-enter")) return cmd_cgroup_enter(atoi(argv[2]), argv[3]);
  if (argc >= 3 && !strcmp(argv[1], "cgroup-leave")) return cmd_cgroup_leave(atoi(argv[2]), argv + 3, argc - 3);
  if (argc >= 3 && !strcmp(argv[1], "no-setrlimit")) return cmd_no_setrlimit(argv + 2);
  if (argc >= 4 && !strcmp(argv[1], "fake-start")) return cmd_fake_start(argv[2], argv[3], argv + 4, argc - 4);
  if ((argc == 4 || argc == 5) && !strcmp(argv[1], "http")) return cmd_http(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
  fprintf(stderr, "usage: esb-spec-helper listen PORTFILE | closed-port PORTFILE | leaks PID | cgroup-enter PID NAME | "
                  "cgroup-leave PID DIR... | no-setrlimit CMD... | fake-start SOCKET LOG ARG... | "
                  "http PORT PATH [BODY]\n");
  return 2;
}
