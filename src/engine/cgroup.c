#include "engine/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/fileio.h"

static const char *const controller_names[ESB_CGROUP__COUNT] = { "memory", "pids", "cpu", "cpuacct" };

/* The period of cpu.max and of v1's CFS bandwidth: the kernel's default. */
enum { CPU_PERIOD_USEC = 100000 };

/* Is name one of the words of list, separated by any of seps? */
static bool has_word(const char *list, const char *name, const char *seps) {
  size_t n = strlen(name);
  for (const char *p = list; p && *p;) {
    size_t len = strcspn(p, seps);
    if (len == n && strncmp(p, name, n) == 0)
      return true;
    p += len;
    p += strspn(p, seps);
  }
  return false;
}

/* ---- where the hierarchies are ---------------------------------------- */

/* The lines of text, one at a time, NUL-terminated in buf (cut at its
 * size): returns where the next line starts, NULL at the end. */
static const char *next_line(const char *text, char *buf, size_t n) {
  if (!text || !*text)
    return NULL;
  size_t len = strcspn(text, "\n");
  snprintf(buf, n, "%.*s", (int)len, text);
  return text + len + (text[len] == '\n');
}

/* Where a hierarchy is mounted, and the root of that mount ("/" unless a
 * container shows only part of it), from the text of /proc/self/mountinfo:
 * v1's of the controller (fstype "cgroup"), or the unified one (controller
 * NULL, fstype "cgroup2"). */
static int find_mount(const char *mountinfo, const char *controller, char **mountpoint, char **root) {
  char line[8192];
  for (const char *p = mountinfo; (p = next_line(p, line, sizeof line));) {
    /* id parent major:minor root mountpoint options [optional...] - fstype source superoptions;
     * a space in a path is "\\040": only a cgroup mount has " - cgroup", and
     * only one that names the controller is parsed. */
    char *dash = strstr(line, " - cgroup");
    if (!dash || (controller && !strstr(dash, controller)))
      continue;
    char fstype[32], source[256], super[512];
    if (sscanf(dash + 3, "%31s %255s %511s", fstype, source, super) != 3)
      continue;
    if (controller ? strcmp(fstype, "cgroup") != 0 || !has_word(super, controller, ",")
                   : strcmp(fstype, "cgroup2") != 0)
      continue;
    char r[4096], m[4096];
    if (sscanf(line, "%*s %*s %*s %4095s %4095s", r, m) != 2)
      continue;
    *root = strdup(r);
    *mountpoint = strdup(m);
    if (*root && *mountpoint)
      return 0;
    free(*root);
    free(*mountpoint);
  }
  return -1;
}

/* Our own cgroup in a hierarchy, from the text of /proc/self/cgroup: the v1
 * one of the controller, or the unified one (NULL: the line "0::PATH"). */
static char *own_path(const char *cgroups, const char *controller) {
  char line[4096];
  for (const char *p = cgroups; (p = next_line(p, line, sizeof line));) {
    char *first = strchr(line, ':');
    char *second = first ? strchr(first + 1, ':') : NULL;
    if (!second)
      continue;
    *second = '\0';
    bool unified = first == line + 1 && line[0] == '0' && second == first + 1; /* "0::PATH" */
    if (controller ? has_word(first + 1, controller, ",") : unified)
      return strdup(second + 1);
  }
  return NULL;
}

/* What the kernel says of our cgroups: /proc/self/mountinfo and
 * /proc/self/cgroup, read once. */
struct proc_view {
  char *mountinfo, *cgroups;
};

static void proc_view_read(struct proc_view *v) {
  size_t len;
  v->mountinfo = esb_read_file("/proc/self/mountinfo", &len);
  v->cgroups = esb_read_file("/proc/self/cgroup", &len);
}

static void proc_view_release(struct proc_view *v) {
  free(v->mountinfo);
  free(v->cgroups);
}

/* Our own cgroup's directory in a hierarchy (controller as for own_path);
 * *at_root tells whether it is the mount's root. */
static char *own_dir(const struct proc_view *v, const char *controller, bool *at_root) {
  char *mountpoint = NULL, *root = NULL, *own = own_path(v->cgroups, controller), *dir = NULL;
  if (own && find_mount(v->mountinfo, controller, &mountpoint, &root) == 0) {
    /* Without a cgroup namespace the path is the full one; the mount may
     * show only the part of the hierarchy below its root. */
    const char *rel = own;
    size_t rootlen = strlen(root);
    if (strcmp(root, "/") != 0 && strncmp(own, root, rootlen) == 0 && (own[rootlen] == '/' || !own[rootlen]))
      rel = own + rootlen;
    size_t len = strlen(rel);
    while (len > 0 && rel[len - 1] == '/')
      len--;
    if (at_root)
      *at_root = len == 0;
    if (asprintf(&dir, "%s%.*s", mountpoint, (int)len, rel) < 0)
      dir = NULL;
  }
  free(own);
  free(mountpoint);
  free(root);
  return dir;
}

/* ---- control files ----------------------------------------------------- */

static int write_file_text(const char *dir, const char *name, const char *text) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return esb_write_file(path, text);
}

/* The first line of dir/name, without its newline; "" when unreadable. */
static void read_line(const char *dir, const char *name, char *buf, size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  buf[0] = '\0';
  FILE *f = fopen(path, "re");
  if (!f)
    return;
  if (!fgets(buf, (int)n, f))
    buf[0] = '\0';
  buf[strcspn(buf, "\n")] = '\0';
  fclose(f);
}

/* What the open control file fd says now, read from its start: its
 * number, or with key, the value of `key` in a flat keyed file
 * (memory.events, cpu.stat, memory.oom_control); -1 when absent or
 * unreadable. A file kept open is read again this way without a walk of
 * its path. */
static int64_t value_at(int fd, const char *key) {
  char text[1024];
  ssize_t n = fd >= 0 ? pread(fd, text, sizeof text - 1, 0) : -1;
  if (n <= 0)
    return -1;
  text[n] = '\0';
  size_t klen = key ? strlen(key) : 0;
  const char *line = text;
  while (key && line && (strncmp(line, key, klen) != 0 || line[klen] != ' ')) {
    line = strchr(line, '\n');
    line = line ? line + 1 : NULL;
  }
  if (!line)
    return -1;
  char *end;
  long long v = strtoll(line + klen, &end, 10);
  return end == line + klen ? -1 : v;
}

/* Who is in dir: *any* process, and *others* than this one. Unreadable
 * counts as both. */
static void members(const char *dir, bool *any, bool *others) {
  char path[4096];
  snprintf(path, sizeof path, "%s/cgroup.procs", dir);
  FILE *f = fopen(path, "re");
  *any = *others = f == NULL;
  long pid;
  while (f && fscanf(f, "%ld", &pid) == 1) {
    *any = true;
    *others |= pid != (long)getpid();
  }
  if (f)
    fclose(f);
}

static bool has_members(const char *dir) {
  bool any, others;
  members(dir, &any, &others);
  return any;
}

/* Is this process the only one in dir? */
static bool alone_in(const char *dir) {
  bool any, others;
  members(dir, &any, &others);
  return any && !others;
}

/* ---- the parent of the runs' cgroups, found once per process ------------ */

struct setup {
  struct esb_cgroup_host host;
  char *parents[ESB_CGROUP__COUNT]; /* v1: one per hierarchy; v2: parents[0] */
  bool cpu_counts;                  /* v1: cpuacct is mounted with cpu (parents[ESB_CGROUP_CPUACCT]
                                       is then NULL: the cpu cgroup counts) */
};

static bool v2_enabled(const char *dir, int which) {
  char line[512];
  read_line(dir, "cgroup.subtree_control", line, sizeof line);
  return has_word(line, controller_names[which], " ");
}

/* Enables in dir's subtree what of memory, pids and cpu its cgroup.controllers
 * offers (act false: only says whether they are, or could be, enabled:
 * the root cgroup, or one with no process). True when memory is. */
static bool v2_enable(const char *dir, bool is_root, bool act, bool *controllers) {
  char offered[512];
  read_line(dir, "cgroup.controllers", offered, sizeof offered);
  bool may = is_root || !has_members(dir);
  for (int i = 0; i < ESB_CGROUP__COUNT; i++) {
    controllers[i] = v2_enabled(dir, i);
    if (controllers[i] || !has_word(offered, controller_names[i], " "))
      continue;
    if (!act) {
      controllers[i] = may;
      continue;
    }
    char plus[16];
    snprintf(plus, sizeof plus, "+%s", controller_names[i]);
    controllers[i] = write_file_text(dir, "cgroup.subtree_control", plus) == 0;
  }
  return controllers[ESB_CGROUP_MEMORY];
}

/* The unified hierarchy: the steps of the header, acted on or not. */
static void find_v2(struct setup *s, const struct proc_view *v, bool act) {
  struct esb_cgroup_host *h = &s->host;
  bool at_root = false;
  char *own = own_dir(v, NULL, &at_root);
  if (!own) {
    snprintf(h->why, sizeof h->why, "no cgroup v1 memory hierarchy and no cgroup v2 of ours to use");
    return;
  }
  char offered[512];
  read_line(own, "cgroup.controllers", offered, sizeof offered);
  if (!has_word(offered, "memory", " ")) {
    snprintf(h->why, sizeof h->why, "cgroup v2: %s does not offer the memory controller (cgroup.controllers: \"%.200s\")",
             own, offered);
    free(own);
    return;
  }
  /* 1. Our own cgroup, enabled already or where it may be. */
  if (v2_enabled(own, ESB_CGROUP_MEMORY) || at_root) {
    if (v2_enable(own, at_root, act, h->controllers)) {
      h->version = ESB_CGROUP_V2;
      s->parents[0] = own;
      snprintf(h->where, sizeof h->where, "below %s, the engine's own cgroup", own);
      return;
    }
  }
  /* 2. Alone in it: into a leaf of its own, then enable. */
  if (alone_in(own)) {
    char *leaf = NULL;
    if (asprintf(&leaf, "%s/echo-sandbox-engine-%ld", own, (long)getpid()) < 0) {
      free(own);
      snprintf(h->why, sizeof h->why, "out of memory");
      return;
    }
    bool moved = !act || ((mkdir(leaf, 0755) == 0 || errno == EEXIST) &&
                          write_file_text(leaf, "cgroup.procs", "0") == 0);
    int err = errno;
    if (moved && (!act || v2_enable(own, false, true, h->controllers))) {
      if (!act)
        v2_enable(own, true, false, h->controllers); /* what it offers, once we are out */
      h->version = ESB_CGROUP_V2;
      s->parents[0] = own;
      snprintf(h->where, sizeof h->where, "below %s, the engine's own cgroup (the engine %s into %s)", own,
               act ? "moved" : "moves", leaf);
      free(leaf);
      return;
    }
    if (moved) { /* back where we were: nothing of ours left behind */
      write_file_text(own, "cgroup.procs", "0");
      rmdir(leaf);
    }
    snprintf(h->why, sizeof h->why, "cgroup v2: cannot delegate %s to its runs (%s)", own,
             moved ? "enabling its controllers failed" : strerror(err));
    free(leaf);
    free(own);
    return;
  }
  /* 3. Shared with other processes: beside it, in its parent. */
  char *slash = strrchr(own, '/');
  if (!at_root && slash) {
    char *parent = strndup(own, (size_t)(slash - own));
    if (parent && v2_enable(parent, false, act, h->controllers)) {
      h->version = ESB_CGROUP_V2;
      s->parents[0] = parent;
      snprintf(h->where, sizeof h->where, "below %s, beside the engine's own cgroup %s (which other processes share)",
               parent, own);
      free(own);
      return;
    }
    free(parent);
  }
  snprintf(h->why, sizeof h->why,
           "cgroup v2: %s holds other processes and its parent cannot be used; start echo-sandbox in a "
           "cgroup of its own (a systemd service with Delegate=yes, or systemd-run --scope -p Delegate=yes)",
           own);
  free(own);
}

static void find_parents(struct setup *s, bool act) {
  struct proc_view v;
  proc_view_read(&v);
  char *mountpoint = NULL, *root = NULL;
  if (find_mount(v.mountinfo, "memory", &mountpoint, &root) < 0) {
    find_v2(s, &v, act);
    proc_view_release(&v);
    return;
  }
  free(mountpoint);
  free(root);
  struct esb_cgroup_host *h = &s->host;
  for (int i = 0; i < ESB_CGROUP__COUNT; i++) {
    s->parents[i] = own_dir(&v, controller_names[i], NULL);
    h->controllers[i] = s->parents[i] != NULL;
  }
  /* cpu,cpuacct mounted as one hierarchy: one cgroup there does both (two
   * in one hierarchy would take the run from each other). */
  char *acct = s->parents[ESB_CGROUP_CPUACCT], *cpu = s->parents[ESB_CGROUP_CPU];
  if (acct && cpu && strcmp(acct, cpu) == 0) {
    s->cpu_counts = true;
    free(acct);
    s->parents[ESB_CGROUP_CPUACCT] = NULL;
  }
  proc_view_release(&v);
  if (!s->parents[ESB_CGROUP_MEMORY]) {
    snprintf(h->why, sizeof h->why, "no cgroup v1 memory hierarchy of ours to use");
    return;
  }
  h->version = ESB_CGROUP_V1;
  snprintf(h->where, sizeof h->where, "below %s (and the engine's own pids, cpu and cpuacct cgroups)",
           s->parents[ESB_CGROUP_MEMORY]);
}

static struct setup setup;
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;

static void setup_now(void) {
  find_parents(&setup, true);
}

/* At exit, or when the Lua module that holds us is unloaded (its statics
 * go with it): what the setup found is freed. */
__attribute__((destructor)) static void setup_release(void) {
  for (int i = 0; i < ESB_CGROUP__COUNT; i++) {
    free(setup.parents[i]);
    setup.parents[i] = NULL;
  }
}

void esb_cgroup_setup(struct esb_cgroup_host *host) {
  pthread_once(&setup_once, setup_now);
  *host = setup.host;
}

void esb_cgroup_describe(const struct esb_cgroup_host *h, char *buf, size_t n) {
  if (h->version == ESB_CGROUP_NONE) {
    snprintf(buf, n, "no cgroup: %s", h->why);
    return;
  }
  char list[64] = "";
  for (int i = 0; i < ESB_CGROUP__COUNT; i++)
    if (h->controllers[i])
      snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", list[0] ? ", " : "", controller_names[i]);
  snprintf(buf, n, "cgroup v%d: %s %s", h->version == ESB_CGROUP_V1 ? 1 : 2, list, h->where);
}

void esb_cgroup_probe(struct esb_cgroup_host *host) {
  struct setup s;
  memset(&s, 0, sizeof s);
  find_parents(&s, false);
  *host = s.host;
  for (int i = 0; i < ESB_CGROUP__COUNT; i++)
    free(s.parents[i]);
}

/* The file a process joins a run's cgroup by: v1's `tasks` (the sandbox
 * moves its own single thread, which needs no grace period: cgroup.h), v2's
 * cgroup.procs. Its open file is also the cgroup's lock: the engine that
 * made the cgroup holds it (flock) for as long as the cgroup is its own. */
static const char *join_file(void) {
  return setup.host.version == ESB_CGROUP_V2 ? "cgroup.procs" : "tasks";
}

/* Removes the cgroups that engines which are gone left in parent (killed
 * before they could clean up): echo-sandbox-PID-N and echo-sandbox-engine-PID
 * whose PID is no process, which nobody holds the lock of (join_file), and
 * only empty ones. The PID alone cannot tell: an engine in another pid
 * namespace (a test suite run under unshare --pid, a container) looks gone
 * from here, and its cgroups are empty between their making and the run's
 * join, and while they wait idle in its pool; its lock says it is there (a
 * gone engine's runs died with it: their parent-death signal, and their
 * copies of the lock's file with them). Once per process and hierarchy. */
static void sweep_stale(const char *parent, int which) {
  static bool swept[ESB_CGROUP__COUNT];
  if (__atomic_exchange_n(&swept[which], true, __ATOMIC_RELAXED))
    return;
  DIR *d = opendir(parent);
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir(d))) {
    long pid;
    unsigned long n;
    char tail;
    if (sscanf(e->d_name, "echo-sandbox-%ld-%lu%c", &pid, &n, &tail) != 2 &&
        sscanf(e->d_name, "echo-sandbox-engine-%ld%c", &pid, &tail) != 1)
      continue;
    if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
      continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", parent, e->d_name, join_file());
    int lock = open(path, O_RDONLY | O_CLOEXEC);
    if (lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) == 0) {
      snprintf(path, sizeof path, "%s/%s", parent, e->d_name);
      rmdir(path);
    }
    if (lock >= 0)
      close(lock);
  }
  closedir(d);
}

/* ---- one run's cgroup ---------------------------------------------------- */

static void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

static int open_in(const char *dir, const char *name, int flags) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return open(path, flags | O_CLOEXEC);
}

/* A control file of cg's controller `which` (v2: of its one directory):
 * through the directory a slot of the shared pool holds open, which
 * spares the kernel the walk of the path, else by its path. */
static int cg_open(const struct esb_cgroup *cg, int which, const char *name, int flags) {
  if (cg->version == ESB_CGROUP_V2)
    which = 0;
  if (cg->slot_fds[which] >= 0)
    return openat(cg->slot_fds[which], name, flags | O_CLOEXEC);
  return open_in(cg->dirs[which], name, flags);
}

static int cg_write_text(const struct esb_cgroup *cg, int which, const char *name, const char *text) {
  int fd = cg_open(cg, which, name, O_WRONLY);
  if (fd < 0)
    return -1;
  int rc = esb_write_all(fd, text, strlen(text));
  int saved = errno;
  close(fd);
  errno = saved;
  return rc;
}

static int cg_write(const struct esb_cgroup *cg, int which, const char *name, uint64_t value) {
  char text[32];
  snprintf(text, sizeof text, "%" PRIu64, value);
  return cg_write_text(cg, which, name, text);
}

/* value_at of one of cg's control files, opened for it. */
static int64_t cg_value(const struct esb_cgroup *cg, int which, const char *name, const char *key) {
  int fd = cg_open(cg, which, name, O_RDONLY);
  int64_t v = value_at(fd, key);
  if (fd >= 0)
    close(fd);
  return v;
}

/* The limit of one controller. Memory: v1 counts swap in memsw, which must
 * never be below the plain limit, so the order of the two writes follows the
 * direction of the change (memsw is absent where swap is not accounted); v2
 * forbids swap outright. */
static int set_limit(struct esb_cgroup *cg, int which, const struct esb_cgroup_limits *l) {
  bool v2 = cg->version == ESB_CGROUP_V2;
  if (which == ESB_CGROUP_CPUACCT)
    return 0; /* it only counts */
  if (which == ESB_CGROUP_PIDS)
    return l->max_pids ? cg_write(cg, which, "pids.max", l->max_pids) : cg_write_text(cg, which, "pids.max", "max");
  if (which == ESB_CGROUP_CPU) {
    uint64_t quota = l->cpu_millicores * (CPU_PERIOD_USEC / 1000);
    if (quota && quota < 1000)
      quota = 1000; /* the kernel's smallest quota */
    char text[64];
    if (v2) {
      if (quota)
        snprintf(text, sizeof text, "%" PRIu64 " %d", quota, CPU_PERIOD_USEC);
      else
        snprintf(text, sizeof text, "max %d", CPU_PERIOD_USEC);
      return cg_write_text(cg, which, "cpu.max", text);
    }
    /* v1's period is the kernel's default in every cgroup made (nothing
     * here writes another): the quota alone sets the rate. */
    return quota ? cg_write(cg, which, "cpu.cfs_quota_us", quota) : cg_write_text(cg, which, "cpu.cfs_quota_us", "-1");
  }
  uint64_t limit = l->memory_bytes;
  if (v2) {
    if (cg_write(cg, which, "memory.max", limit) < 0)
      return -1;
    if (cg_write_text(cg, which, "memory.swap.max", "0") < 0 && errno != ENOENT)
      return -1;
    cg->memory_limit = limit;
    return 0;
  }
  /* A plain limit that holds the value already (a slot's last holder's)
   * is not written again; memsw, not read, is. */
  bool raising = limit > cg->memory_limit;
  const char *first = raising ? "memory.memsw.limit_in_bytes" : "memory.limit_in_bytes";
  const char *second = raising ? "memory.limit_in_bytes" : "memory.memsw.limit_in_bytes";
  if (limit != cg->memory_limit && cg_write(cg, which, first, limit) < 0 && (errno != ENOENT || !raising))
    return -1;
  if (cg_write(cg, which, second, limit) < 0 && (errno != ENOENT || raising))
    return -1;
  cg->memory_limit = limit;
  return 0;
}

/* Whether controller `which` is part of cg. */
static bool has_controller(const struct esb_cgroup *cg, int which) {
  return cg->version == ESB_CGROUP_V2 ? setup.host.controllers[which] : cg->dirs[which] != NULL;
}

static int set_limits(struct esb_cgroup *cg, const struct esb_cgroup_limits *l) {
  bool same = cg->limits_set && cg->limits.memory_bytes == l->memory_bytes &&
              cg->limits.max_pids == l->max_pids && cg->limits.cpu_millicores == l->cpu_millicores;
  if (same)
    return 0;
  cg->limits_set = false;
  for (int i = 0; i < ESB_CGROUP__COUNT; i++)
    if (has_controller(cg, i) && set_limit(cg, i, l) < 0)
      return -1;
  cg->limits = *l;
  cg->limits_set = true;
  return 0;
}

/* The files that a run's start and end read: the OOM-kill count's and the
 * CPU time's (v1's cpuacct: a hierarchy of its own, or sharing the cpu
 * one; -1: none). */
static const char *oom_file(const struct esb_cgroup *cg) {
  return cg->version == ESB_CGROUP_V2 ? "memory.events" : "memory.oom_control";
}

static int cpu_usage_dir(const struct esb_cgroup *cg) {
  if (cg->version == ESB_CGROUP_V2 || cg->dirs[ESB_CGROUP_CPUACCT])
    return cg->version == ESB_CGROUP_V2 ? 0 : ESB_CGROUP_CPUACCT;
  bool counts = setup.cpu_counts || cg->cpu_dir_counts;
  return cg->dirs[ESB_CGROUP_CPU] && counts && !cg->no_cpu_usage ? ESB_CGROUP_CPU : -1;
}

/* v1's counters that a reuse zeroes besides the peak (reuse): what the
 * last run left readable in its cgroup. */
static const char *const reset_files[] = { "memory.failcnt", "memory.memsw.max_usage_in_bytes",
                                           "memory.memsw.failcnt" };
_Static_assert(sizeof reset_files / sizeof reset_files[0] ==
               sizeof ((struct esb_cgroup *)0)->reset_fds / sizeof(int), "a kept fd for each");

/* Opens them (and v1's high-water mark and counters, reset through them)
 * for as long as a run holds the cgroup, and while it is idle in a pool
 * (esb_cgroup_pool_put): the reads when the run is over, on the way to its
 * result, and the resets of the next run then walk no path (six opens and
 * releases of kernfs files a run saved). Where one cannot be
 * opened it is read or written by its path. An fd names the file of the
 * directory it was opened in, which the cgroup keeps for its life. */
static void keep_files(struct esb_cgroup *cg) {
  int cpu = cpu_usage_dir(cg);
  if (cg->oom_fd < 0)
    cg->oom_fd = cg_open(cg, ESB_CGROUP_MEMORY, oom_file(cg), O_RDONLY);
  if (cg->cpu_fd < 0 && cpu >= 0)
    cg->cpu_fd = cg_open(cg, cpu, cg->version == ESB_CGROUP_V2 ? "cpu.stat" : "cpuacct.usage", O_RDONLY);
  if (cg->version != ESB_CGROUP_V1)
    return;
  if (cg->peak_fd < 0)
    cg->peak_fd = cg_open(cg, ESB_CGROUP_MEMORY, "memory.max_usage_in_bytes", O_RDWR);
  for (size_t i = 0; i < sizeof reset_files / sizeof reset_files[0]; i++)
    if (cg->reset_fds[i] < 0)
      cg->reset_fds[i] = cg_open(cg, ESB_CGROUP_MEMORY, reset_files[i], O_WRONLY);
}

static void close_kept_files(struct esb_cgroup *cg) {
  close_fd(&cg->oom_fd);
  close_fd(&cg->cpu_fd);
  close_fd(&cg->peak_fd);
  for (size_t i = 0; i < sizeof cg->reset_fds / sizeof cg->reset_fds[0]; i++)
    close_fd(&cg->reset_fds[i]);
}

static uint64_t oom_kills(const struct esb_cgroup *cg) {
  int64_t n = cg->oom_fd >= 0 ? value_at(cg->oom_fd, "oom_kill")
                              : cg_value(cg, ESB_CGROUP_MEMORY, oom_file(cg), "oom_kill");
  return n > 0 ? (uint64_t)n : 0;
}

/* CPU time in µs; -1 where nothing counts it. */
static int64_t cpu_usec(const struct esb_cgroup *cg) {
  bool v2 = cg->version == ESB_CGROUP_V2;
  const char *key = v2 ? "usage_usec" : NULL;
  int dir = cpu_usage_dir(cg);
  int64_t n = cg->cpu_fd >= 0 ? value_at(cg->cpu_fd, key)
              : dir >= 0      ? cg_value(cg, dir, v2 ? "cpu.stat" : "cpuacct.usage", key)
                              : -1;
  return n < 0 || v2 ? n : n / 1000;
}

/* Whether a v1 cgroup has a directory of its own where one is wanted:
 * the pids one unless RLIMIT_NPROC bounds the run alone, the cpu one for a
 * CPU rate, one that counts CPU time for a budget (wherever the host has
 * such hierarchies). */
static bool wanted_v1(int which, const struct esb_cgroup_limits *l) {
  if (which == ESB_CGROUP_PIDS)
    return !l->pids_by_uid;
  if (which == ESB_CGROUP_CPU)
    return l->cpu_millicores || (l->count_cpu && setup.cpu_counts);
  if (which == ESB_CGROUP_CPUACCT)
    return l->count_cpu;
  return true;
}

/* Opens dir's join_file and takes its lock: the fd, or -1. A sweep by
 * another engine (sweep_stale) may have removed dir between its mkdir and
 * the lock: then the file the path names now is not the one opened (or
 * none is), errno EEXIST, and the caller takes the next name. */
static int lock_new_dir(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, join_file());
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  struct stat opened, named;
  if (flock(fd, LOCK_EX) == 0 && fstat(fd, &opened) == 0) {
    if (stat(path, &named) == 0 && named.st_ino == opened.st_ino && named.st_dev == opened.st_dev)
      return fd;
    errno = EEXIST;
  }
  int err = errno;
  close(fd);
  errno = err;
  return -1;
}

/* A new directory for this run below parent, named after this process so
 * that a sweep can tell whose it is, with its join_file open and locked in
 * *fd. A name can be taken already by a cgroup that a gone engine with our
 * pid left with processes in it, or by an engine of another pid namespace
 * with our pid: the next number is free. */
static char *make_dir(const char *parent, int which, int *fd, struct esb_error *err) {
  static unsigned long counter;
  enum { TRIES = 8 };
  sweep_stale(parent, which);
  for (int attempt = 0; attempt < TRIES; attempt++) {
    char *dir = NULL;
    unsigned long n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
    if (asprintf(&dir, "%s/echo-sandbox-%ld-%lu", parent, (long)getpid(), n) < 0) {
      esb_error_set(err, ESB_E_SYSTEM, "out of memory");
      return NULL;
    }
    bool made = mkdir(dir, 0755) == 0;
    if (made && (*fd = lock_new_dir(dir)) >= 0)
      return dir;
    int failed = errno;
    if (made && failed != EEXIST)
      rmdir(dir); /* made but not opened: nothing of ours is left */
    if (failed != EEXIST || attempt == TRIES - 1) { /* err is filled only when we give up */
      errno = failed;
      esb_error_errno(err, ESB_E_SYSTEM, "making %s", dir);
      free(dir);
      return NULL;
    }
    free(dir);
  }
  return NULL;
}

/* esb_cgroup_create's work, below parents (v2: parents[0]). */
static int create_below(struct esb_cgroup *cg, char *const parents[ESB_CGROUP__COUNT],
                        const struct esb_cgroup_limits *limits, struct esb_error *err) {
  cg->version = setup.host.version;
  cg->memory_limit = UINT64_MAX; /* a new memory cgroup starts unlimited */
  cg->peak_is_this_runs = true;
  if (cg->version == ESB_CGROUP_V2) {
    if (!(cg->dirs[0] = make_dir(parents[0], 0, &cg->procs[0], err)))
      goto fail;
    if (set_limits(cg, limits) < 0 ||
        (cg->dir_fd = open(cg->dirs[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
      esb_error_errno(err, ESB_E_SYSTEM, "setting up %s", cg->dirs[0]);
      goto fail;
    }
    keep_files(cg);
    return 0;
  }
  for (int i = 0; i < ESB_CGROUP__COUNT; i++) {
    /* pids and cpu are a bonus: RLIMIT_NPROC still bounds the processes. */
    if (!parents[i] || !wanted_v1(i, limits))
      continue;
    /* Without a pids or cpu cgroup the run goes on; the backend's
     * warnings say what it was not held to (backend/local.c). */
    struct esb_error ignored = ESB_ERROR_INIT;
    bool required = i == ESB_CGROUP_MEMORY;
    if (!(cg->dirs[i] = make_dir(parents[i], i, &cg->procs[i], required ? err : &ignored))) {
      if (required)
        goto fail;
      continue;
    }
    if (set_limit(cg, i, limits) == 0)
      continue;
    if (required) {
      esb_error_errno(err, ESB_E_SYSTEM, "setting up %s", cg->dirs[i]);
      goto fail;
    }
    close_fd(&cg->procs[i]);
    rmdir(cg->dirs[i]);
    free(cg->dirs[i]);
    cg->dirs[i] = NULL;
  }
  cg->limits = *limits;
  cg->limits_set = true;
  keep_files(cg);
  return 0;
fail:
  esb_cgroup_destroy(cg);
  return -1;
}

int esb_cgroup_create(struct esb_cgroup *cg, const struct esb_cgroup_limits *limits, struct esb_error *err) {
  *cg = (struct esb_cgroup)ESB_CGROUP_INIT;
  pthread_once(&setup_once, setup_now);
  if (setup.host.version == ESB_CGROUP_NONE)
    return esb_error_set(err, ESB_E_SANDBOX_SETUP, "%s", setup.host.why);
  return create_below(cg, setup.parents, limits, err);
}

int esb_cgroup_create_below(struct esb_cgroup *cg, const struct esb_cgroup *parent,
                            const struct esb_cgroup_limits *limits, struct esb_error *err) {
  *cg = (struct esb_cgroup)ESB_CGROUP_INIT;
  pthread_once(&setup_once, setup_now);
  if (setup.host.version == ESB_CGROUP_NONE || parent->version != setup.host.version || !parent->dirs[0])
    return esb_error_set(err, ESB_E_SANDBOX_SETUP, "no cgroup to make one below");
  return create_below(cg, parent->dirs, limits, err);
}

int esb_cgroup_v2_nest(struct esb_cgroup *cg, const char *leaf, int *leaf_dir, int *leaf_procs,
                       struct esb_error *err) {
  *leaf_dir = *leaf_procs = -1;
  if (cg->version != ESB_CGROUP_V2)
    return 0;
  bool enabled[ESB_CGROUP__COUNT];
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", cg->dirs[0], leaf);
  if (!v2_enable(cg->dirs[0], false, true, enabled) || (mkdir(path, 0755) < 0 && errno != EEXIST) ||
      (*leaf_dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
      (*leaf_procs = openat(*leaf_dir, "cgroup.procs", O_WRONLY | O_CLOEXEC)) < 0) {
    esb_error_errno(err, ESB_E_SANDBOX_SETUP, "making %s a parent of cgroups", cg->dirs[0]);
    close_fd(leaf_dir);
    rmdir(path);
    return -1;
  }
  return 0;
}

bool esb_cgroup_oom_killed(struct esb_cgroup *cg) {
  if (!cg->dirs[0])
    return false;
  uint64_t now = oom_kills(cg), before = cg->oom_kills_before;
  cg->oom_kills_before = now;
  cg->oom_kills_known = true;
  return now > before;
}

void esb_cgroup_usage(const struct esb_cgroup *cg, int64_t *cpu_time_ms, int64_t *memory_peak_bytes) {
  *cpu_time_ms = *memory_peak_bytes = -1;
  if (!cg->dirs[0])
    return;
  int64_t usec = cpu_usec(cg);
  if (usec >= 0 && (uint64_t)usec >= cg->cpu_usec_before)
    *cpu_time_ms = (usec - (int64_t)cg->cpu_usec_before) / 1000;
  if (!cg->peak_is_this_runs)
    return;
  if (cg->peak_fd >= 0)
    *memory_peak_bytes = value_at(cg->peak_fd, NULL);
  else
    *memory_peak_bytes = cg_value(cg, ESB_CGROUP_MEMORY,
                                  cg->version == ESB_CGROUP_V1 ? "memory.max_usage_in_bytes" : "memory.peak", NULL);
  uint64_t base = cg->peak_base;
  if (*memory_peak_bytes > 0)
    *memory_peak_bytes = (uint64_t)*memory_peak_bytes > base ? *memory_peak_bytes - (int64_t)base : 0;
}

int64_t esb_cgroup_cpu_usec(const struct esb_cgroup *cg) {
  int64_t usec = cg->dirs[0] ? cpu_usec(cg) : -1;
  if (usec < 0)
    return -1;
  return (uint64_t)usec > cg->cpu_usec_before ? usec - (int64_t)cg->cpu_usec_before : 0;
}

bool esb_cgroup_counts_cpu(const struct esb_cgroup *cg) {
  if (cg->version == ESB_CGROUP_V2)
    return cg->dirs[0] != NULL;
  return cpu_usage_dir(cg) >= 0;
}

uint64_t esb_cgroup_cpu_rate(const struct esb_cgroup *cg) {
  bool limited = cg->version == ESB_CGROUP_V2 ? setup.host.controllers[ESB_CGROUP_CPU] : cg->dirs[ESB_CGROUP_CPU] != NULL;
  return limited && cg->limits_set ? cg->limits.cpu_millicores : 0;
}

/* SIGKILLs every process listed in dir/cgroup.procs. */
static void kill_members(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/cgroup.procs", dir);
  FILE *f = fopen(path, "re");
  if (!f)
    return;
  long pid;
  while (fscanf(f, "%ld", &pid) == 1)
    kill((pid_t)pid, SIGKILL);
  fclose(f);
}

/* A cgroup whose last process is still being released (it was reaped a
 * moment ago) cannot be removed yet: kill what is left (all at once through
 * cgroup.kill where the kernel has it) and wait, starting with a few
 * microseconds, for at most about half a second. */
static void remove_dir(const char *dir) {
  long pause_ns = 10000;
  bool killed = false;
  for (long waited = 0; waited < 500000000L; waited += pause_ns, pause_ns = pause_ns < 10000000L ? pause_ns * 2 : pause_ns) {
    if (rmdir(dir) == 0 || errno != EBUSY)
      return;
    if (!killed)
      killed = write_file_text(dir, "cgroup.kill", "1") == 0;
    if (!killed)
      kill_members(dir);
    struct timespec pause = { 0, pause_ns };
    nanosleep(&pause, NULL);
  }
}

/* Whether the cgroup dirfd is open on is there still and has no process. */
static bool idle_at(int dirfd) {
  int fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false; /* removed since it was opened */
  char c;
  ssize_t n = read(fd, &c, 1);
  close(fd);
  return n == 0;
}

void esb_cgroup_destroy(struct esb_cgroup *cg) {
  close_fd(&cg->dir_fd);
  close_kept_files(cg);
  for (int i = 0; i < ESB_CGROUP__COUNT; i++) {
    close_fd(&cg->procs[i]);
    /* A slot's directory goes back to the pool when nothing of the run is
     * left in it; the lock goes with the last fd of its open file. */
    if (cg->dirs[i] && (cg->slot_fds[i] < 0 || !idle_at(cg->slot_fds[i])))
      remove_dir(cg->dirs[i]);
    free(cg->dirs[i]);
    close_fd(&cg->slot_fds[i]);
  }
  *cg = (struct esb_cgroup)ESB_CGROUP_INIT;
}

/* Readies an idle cgroup for a new run; -1 when it cannot be. */
static int reuse(struct esb_cgroup *cg, const struct esb_cgroup_limits *limits) {
  if (set_limits(cg, limits) < 0)
    return -1;
  keep_files(cg);
  if (cg->version == ESB_CGROUP_V1) {
    /* What the last run left readable in its cgroup: its peak and failures. */
    if (cg->peak_fd < 0 || write(cg->peak_fd, "0", 1) != 1)
      cg_write_text(cg, ESB_CGROUP_MEMORY, "memory.max_usage_in_bytes", "0");
    for (size_t i = 0; i < sizeof reset_files / sizeof reset_files[0]; i++)
      if (cg->reset_fds[i] < 0 || write(cg->reset_fds[i], "0", 1) != 1)
        cg_write_text(cg, ESB_CGROUP_MEMORY, reset_files[i], "0");
  } else {
    /* Since Linux 6.12 a write to memory.peak makes it count from now, as
     * read through the same open file; before, the peak is the cgroup's
     * whole life's, not this run's. */
    close_fd(&cg->peak_fd);
    cg->peak_fd = cg_open(cg, 0, "memory.peak", O_RDWR);
    cg->peak_is_this_runs = cg->peak_fd >= 0 && write(cg->peak_fd, "reset\n", 6) == 6;
    if (!cg->peak_is_this_runs)
      close_fd(&cg->peak_fd);
  }
  if (!cg->oom_kills_known)
    cg->oom_kills_before = oom_kills(cg);
  cg->oom_kills_known = false;
  int64_t usec = cpu_usec(cg);
  cg->no_cpu_usage = usec < 0 && cg->version == ESB_CGROUP_V1;
  cg->cpu_usec_before = usec > 0 ? (uint64_t)usec : 0;
  return 0;
}

/* ---- the pool that engines share ---------------------------------------- */

#define SLOT_PREFIX "echo-sandbox-pool-"
enum { SLOTS = 32 };

/* parent/echo-sandbox-pool-K, made when there is none, open and locked:
 * the fd, with its path in *path; -1 when another engine holds it or it
 * has a process (or was removed meanwhile); -2 when it cannot be made or
 * opened, as no other slot there could. */
static int lock_slot_dir(const char *parent, unsigned k, char **path) {
  int fd = -1, rc = -2;
  if (asprintf(path, "%s/" SLOT_PREFIX "%u", parent, k) < 0) {
    *path = NULL;
    return -2;
  }
  /* Opened first: the slot is there but for the first run of a host. */
  fd = open(*path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT && (mkdir(*path, 0755) == 0 || errno == EEXIST))
    fd = open(*path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0 && idle_at(fd))
      return fd;
    rc = -1;
  } else if (errno == ENOENT) {
    rc = -1; /* removed between the two calls (cleanup) */
  }
  if (fd >= 0)
    close(fd);
  free(*path);
  *path = NULL;
  return rc;
}

/* The charge a slot may keep from its last holder: the kernel charges a
 * memory cgroup in batches of 64 pages per CPU, and keeps what a batch
 * has left over for the next charge; 1 MiB more of page cache or kernel
 * objects the next run may reclaim. More than that is reclaimed first. */
static int64_t slot_charge_max(void) {
  long cpus = sysconf(_SC_NPROCESSORS_CONF);
  return (int64_t)(cpus > 0 ? cpus : 1) * 64 * 4096 + (1 << 20);
}

/* Whether a charge is within it; the CPUs (a file read) are counted only
 * for a charge above what one CPU's batch allows. */
static bool charge_kept(int64_t charge) {
  return charge >= 0 && (charge <= 64 * 4096 + (1 << 20) || charge <= slot_charge_max());
}

/* What the memory cgroup is charged with now; -1 when unreadable. */
static int64_t charged(const struct esb_cgroup *cg) {
  return cg_value(cg, ESB_CGROUP_MEMORY, "memory.usage_in_bytes", NULL);
}

/* Empties what the last holder left charged to the slot, where it is
 * more than slot_charge_max: 0 when the slot is clean now. */
static int drop_charges(struct esb_cgroup *cg) {
  if (charge_kept(charged(cg)))
    return 0;
  cg_write_text(cg, ESB_CGROUP_MEMORY, "memory.force_empty", "0");
  return charge_kept(charged(cg)) ? 0 : -1;
}

/* Readies a locked slot for the run (as reuse does an idle cgroup of the
 * process's pool): 0; -1 when it stayed charged, and then it is removed
 * (its charges go to the parent; the next taker makes it anew); -2 when
 * it cannot be readied, as no other slot could. */
static int ready_slot(struct esb_cgroup *cg, const struct esb_cgroup_limits *limits) {
  for (int i = 0; i < ESB_CGROUP__COUNT; i++)
    if (cg->slot_fds[i] >= 0 && (cg->procs[i] = openat(cg->slot_fds[i], "tasks", O_WRONLY | O_CLOEXEC)) < 0)
      return -2;
  /* The memory limits are written in the order their direction needs. */
  int64_t limit = cg_value(cg, ESB_CGROUP_MEMORY, "memory.limit_in_bytes", NULL);
  cg->memory_limit = limit >= 0 ? (uint64_t)limit : UINT64_MAX;
  if (drop_charges(cg) < 0) {
    rmdir(cg->dirs[ESB_CGROUP_MEMORY]);
    return -1;
  }
  cg->peak_is_this_runs = true;
  return reuse(cg, limits) == 0 ? 0 : -2;
}

/* Takes the first free slot: its directory in each hierarchy the run
 * wants, each locked. -1 when none is free (or usable). */
static int take_slot(struct esb_cgroup *cg, const struct esb_cgroup_limits *limits) {
  for (unsigned k = 0; k < SLOTS; k++) {
    *cg = (struct esb_cgroup)ESB_CGROUP_INIT;
    cg->version = ESB_CGROUP_V1;
    int rc = 0;
    for (int i = 0; rc == 0 && i < ESB_CGROUP__COUNT; i++) {
      bool wanted = setup.parents[i] && wanted_v1(i, limits);
      if (wanted && k == 0)
        sweep_stale(setup.parents[i], i); /* as make_dir does */
      if (wanted)
        rc = (cg->slot_fds[i] = lock_slot_dir(setup.parents[i], k, &cg->dirs[i])) < 0 ? cg->slot_fds[i] : 0;
    }
    if (rc == 0)
      rc = ready_slot(cg, limits);
    if (rc == 0)
      return 0;
    esb_cgroup_destroy(cg); /* what was idle and empty is given back as it is */
    if (rc == -2)
      break; /* no slot can serve here */
  }
  return -1;
}

int esb_cgroup_claim(struct esb_cgroup *cg, const struct esb_cgroup_limits *limits, struct esb_error *err) {
  pthread_once(&setup_once, setup_now);
  if (setup.host.version == ESB_CGROUP_V1 && take_slot(cg, limits) == 0)
    return 0;
  return esb_cgroup_create(cg, limits, err);
}

/* ---- the slots of a session's runs --------------------------------------- */

#define RUN_SLOT_PREFIX "run-"
enum { RUN_SLOTS = 64 }; /* as many as a session's holder runs at once */

/* Whether a session's run slot has a directory in hierarchy `which`. */
static bool run_slot_wanted(const struct esb_cgroup *parent, int which, const struct esb_cgroup_limits *l) {
  if (!parent->dirs[which])
    return false;
  if (which == ESB_CGROUP_CPU)
    return l->cpu_millicores || !parent->dirs[ESB_CGROUP_CPUACCT];
  return true;
}

/* What an attempt at a slot holds, closed and freed: nothing removed (a
 * slot another run holds is left as it is). */
static void let_slot_go(struct esb_cgroup *cg) {
  close_kept_files(cg);
  for (int i = 0; i < ESB_CGROUP__COUNT; i++) {
    close_fd(&cg->procs[i]);
    close_fd(&cg->slot_fds[i]);
    free(cg->dirs[i]);
  }
  *cg = (struct esb_cgroup)ESB_CGROUP_INIT;
}

/* parent/run-K of hierarchy `which`, made where missing, its tasks file
 * open and locked in cg: 0; -1 when another holds it or it has a process
 * (or it was removed meanwhile); -2 when it cannot be made or opened, as
 * no other slot there could. */
static int lock_run_slot(struct esb_cgroup *cg, const char *parent, int which, unsigned k) {
  if (asprintf(&cg->dirs[which], "%s/" RUN_SLOT_PREFIX "%u", parent, k) < 0) {
    cg->dirs[which] = NULL;
    return -2;
  }
  int dir = open(cg->dirs[which], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0 && errno == ENOENT && (mkdir(cg->dirs[which], 0755) == 0 || errno == EEXIST))
    dir = open(cg->dirs[which], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if ((cg->slot_fds[which] = dir) < 0)
    return -2;
  if ((cg->procs[which] = openat(dir, "tasks", O_WRONLY | O_CLOEXEC)) < 0)
    return errno == ENOENT || errno == ENODEV ? -1 : -2;
  return flock(cg->procs[which], LOCK_EX | LOCK_NB) == 0 && idle_at(dir) ? 0 : -1;
}

/* Readies a locked run slot (as ready_slot does a slot of the shared
 * pool), but what earlier runs left charged to it stays: their files in
 * the session's working dir and the page cache they read in, which count
 * against the session's limit wherever they are charged, and which no
 * reclaim could take without swap (the files) or without the cost of a
 * new cgroup (the cache). The run's peak counts from that charge
 * (peak_base): the pages earlier runs brought in are not its own, as a
 * one-shot run does not pay for what others cached. 0, or -2: no slot
 * can serve. */
static int ready_run_slot(struct esb_cgroup *cg, const struct esb_cgroup_limits *limits) {
  cg->cpu_dir_counts = cg->dirs[ESB_CGROUP_CPU] && !cg->dirs[ESB_CGROUP_CPUACCT];
  int64_t limit = cg_value(cg, ESB_CGROUP_MEMORY, "memory.limit_in_bytes", NULL);
  cg->memory_limit = limit >= 0 ? (uint64_t)limit : UINT64_MAX;
  cg->peak_is_this_runs = true;
  if (reuse(cg, limits) < 0)
    return -2;
  int64_t base = charged(cg); /* after the reset: the high-water mark starts at least there */
  cg->peak_base = base > 0 ? (uint64_t)base : 0;
  return 0;
}

static int take_run_slot(struct esb_cgroup *cg, const struct esb_cgroup *parent,
                         const struct esb_cgroup_limits *limits) {
  for (unsigned k = 0; k < RUN_SLOTS; k++) {
    *cg = (struct esb_cgroup)ESB_CGROUP_INIT;
    cg->version = ESB_CGROUP_V1;
    int rc = 0;
    for (int i = 0; rc == 0 && i < ESB_CGROUP__COUNT; i++)
      if (run_slot_wanted(parent, i, limits))
        rc = lock_run_slot(cg, parent->dirs[i], i, k);
    if (rc == 0)
      rc = ready_run_slot(cg, limits);
    if (rc == 0)
      return 0;
    let_slot_go(cg);
    if (rc == -2)
      break;
  }
  return -1;
}

int esb_cgroup_claim_below(struct esb_cgroup *cg, const struct esb_cgroup *parent,
                           const struct esb_cgroup_limits *limits, struct esb_error *err) {
  if (parent->version == ESB_CGROUP_V1 && parent->dirs[ESB_CGROUP_MEMORY] && take_run_slot(cg, parent, limits) == 0)
    return 0;
  return esb_cgroup_create_below(cg, parent, limits, err);
}

int esb_cgroup_slots_remove(bool dry_run, void (*say)(const char *path, int err, void *arg), void *arg) {
  /* Found as doctor finds them: nothing moved or enabled (slots are v1's). */
  struct setup s;
  memset(&s, 0, sizeof s);
  find_parents(&s, false);
  int busy = 0;
  for (int i = 0; s.host.version == ESB_CGROUP_V1 && i < ESB_CGROUP__COUNT; i++) {
    DIR *d = s.parents[i] ? opendir(s.parents[i]) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
      unsigned k;
      char tail;
      if (sscanf(e->d_name, SLOT_PREFIX "%u%c", &k, &tail) != 1)
        continue;
      char *path = NULL, shown[4096];
      snprintf(shown, sizeof shown, "%s/%s", s.parents[i], e->d_name);
      int fd = lock_slot_dir(s.parents[i], k, &path);
      int err = fd < 0 ? EBUSY : dry_run || rmdir(path) == 0 ? 0 : errno;
      busy += err != 0;
      if (say)
        say(shown, err, arg);
      if (fd >= 0)
        close(fd);
      free(path);
    }
    if (d)
      closedir(d);
  }
  for (int i = 0; i < ESB_CGROUP__COUNT; i++)
    free(s.parents[i]);
  return busy;
}

bool esb_cgroup_pool_take(struct esb_cgroup_pool *pool, struct esb_cgroup *cg) {
  if (!pool || !pool->count)
    return false;
  *cg = pool->idle[--pool->count];
  pool->idle[pool->count] = (struct esb_cgroup)ESB_CGROUP_INIT;
  return true;
}

int esb_cgroup_ready(struct esb_cgroup *cg, const struct esb_cgroup_limits *limits, struct esb_error *err) {
  if (cg->dirs[0]) {
    /* A v1 cgroup without the pids, cpu or cpuacct directory the run
     * wants cannot bound its processes, take its CPU limit or count its
     * CPU time. */
    bool fits = true;
    for (int i = ESB_CGROUP_PIDS; cg->version == ESB_CGROUP_V1 && i <= ESB_CGROUP_CPUACCT; i++)
      fits &= cg->dirs[i] || !setup.parents[i] || !wanted_v1(i, limits);
    if (fits && reuse(cg, limits) == 0)
      return 0;
    esb_cgroup_destroy(cg);
  }
  return esb_cgroup_create(cg, limits, err);
}

int esb_cgroup_acquire(struct esb_cgroup_pool *pool, struct esb_cgroup *cg,
                       const struct esb_cgroup_limits *limits, struct esb_error *err) {
  esb_cgroup_pool_take(pool, cg);
  return esb_cgroup_ready(cg, limits, err);
}

void esb_cgroup_settle(struct esb_cgroup *cg) {
  bool busy = false;
  for (int i = 0; i < ESB_CGROUP__COUNT; i++)
    busy |= cg->dirs[i] && has_members(cg->dirs[i]);
  if (busy)
    esb_cgroup_destroy(cg);
}

void esb_cgroup_pool_put(struct esb_cgroup_pool *pool, struct esb_cgroup *cg) {
  if (pool && cg->dirs[0] && pool->count < ESB_CGROUP_POOL_SIZE) {
    /* The first few idle ones keep their files open for the next run
     * (keep_files); more would be fds a burst of runs leaves held. */
    if (pool->count >= ESB_CGROUP_POOL_KEEP_FILES)
      close_kept_files(cg);
    pool->idle[pool->count++] = *cg;
    *cg = (struct esb_cgroup)ESB_CGROUP_INIT;
    return;
  }
  esb_cgroup_destroy(cg);
}

void esb_cgroup_release(struct esb_cgroup_pool *pool, struct esb_cgroup *cg) {
  if (pool && cg->dirs[0] && pool->count < ESB_CGROUP_POOL_SIZE)
    esb_cgroup_settle(cg);
  esb_cgroup_pool_put(pool, cg);
}

void esb_cgroup_pool_clear(struct esb_cgroup_pool *pool) {
  while (pool->count > 0)
    esb_cgroup_destroy(&pool->idle[--pool->count]);
}
