#include "engine/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/fileio.h"

static const char *const controller_names[ESB_CGROUP__COUNT] = { "memory", "pids" };

/* Is name one of the comma-separated words of list? */
static bool has_word(const char *list, const char *name) {
  size_t n = strlen(name);
  for (const char *p = list; p && *p;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (len == n && strncmp(p, name, n) == 0)
      return true;
    p = comma ? comma + 1 : NULL;
  }
  return false;
}

/* Where the v1 hierarchy of the controller is mounted, and the root of that
 * mount ("/" unless a container shows only part of the hierarchy). */
static int find_mount(const char *controller, char **mountpoint, char **root) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f)
    return -1;
  char *line = NULL;
  size_t cap = 0;
  int rc = -1;
  while (rc < 0 && getline(&line, &cap, f) > 0) {
    /* id parent major:minor root mountpoint options [optional...] - fstype source superoptions */
    char *dash = strstr(line, " - ");
    if (!dash)
      continue;
    char fstype[32], source[256], super[512];
    if (sscanf(dash + 3, "%31s %255s %511s", fstype, source, super) != 3 || strcmp(fstype, "cgroup") != 0 ||
        !has_word(super, controller))
      continue;
    char r[4096], m[4096];
    if (sscanf(line, "%*s %*s %*s %4095s %4095s", r, m) != 2)
      continue;
    *root = strdup(r);
    *mountpoint = strdup(m);
    if (*root && *mountpoint)
      rc = 0;
    else {
      free(*root);
      free(*mountpoint);
    }
  }
  free(line);
  fclose(f);
  return rc;
}

/* Our own cgroup in the controller's hierarchy, from /proc/self/cgroup. */
static char *own_path(const char *controller) {
  FILE *f = fopen("/proc/self/cgroup", "re");
  if (!f)
    return NULL;
  char *line = NULL, *path = NULL;
  size_t cap = 0;
  while (!path && getline(&line, &cap, f) > 0) {
    char *first = strchr(line, ':');
    char *second = first ? strchr(first + 1, ':') : NULL;
    if (!second)
      continue;
    *second = '\0';
    if (!has_word(first + 1, controller))
      continue;
    second[1 + strcspn(second + 1, "\n")] = '\0';
    path = strdup(second + 1);
  }
  free(line);
  fclose(f);
  return path;
}

/* Our own cgroup's directory in the controller's hierarchy. */
static char *own_dir(const char *controller) {
  char *mountpoint = NULL, *root = NULL, *own = own_path(controller), *dir = NULL;
  if (own && find_mount(controller, &mountpoint, &root) == 0) {
    /* Without a cgroup namespace the path is the full one; the mount may
     * show only the part of the hierarchy below its root. */
    const char *rel = own;
    size_t rootlen = strlen(root);
    if (strcmp(root, "/") != 0 && strncmp(own, root, rootlen) == 0 && (own[rootlen] == '/' || !own[rootlen]))
      rel = own + rootlen;
    size_t len = strlen(rel);
    while (len > 0 && rel[len - 1] == '/')
      len--;
    if (asprintf(&dir, "%s%.*s", mountpoint, (int)len, rel) < 0)
      dir = NULL;
  }
  free(own);
  free(mountpoint);
  free(root);
  return dir;
}

/* Removes the cgroups that engines which are gone left in parent (killed
 * before they could clean up): echo-sandbox-PID-N whose PID is no process.
 * Only empty ones: an engine in another pid namespace would look gone from
 * here, and its runs must not be touched (a gone engine's runs died with it:
 * their parent-death signal). Once per process and controller. */
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
    if (sscanf(e->d_name, "echo-sandbox-%ld-%lu%c", &pid, &n, &tail) != 2 || pid <= 0 || pid == (long)getpid())
      continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
      continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", parent, e->d_name);
    rmdir(path);
  }
  closedir(d);
}

/* The directory of a new cgroup for this run: a child of our own cgroup,
 * named after this process so that a sweep can tell whose it is. */
static char *new_cgroup_dir(int which) {
  static unsigned long counter;
  char *parent = own_dir(controller_names[which]), *dir = NULL;
  if (parent) {
    sweep_stale(parent, which);
    unsigned long n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
    if (asprintf(&dir, "%s/echo-sandbox-%ld-%lu", parent, (long)getpid(), n) < 0)
      dir = NULL;
  }
  free(parent);
  return dir;
}

static int write_file_text(const char *dir, const char *name, const char *text) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return esb_write_file(path, text);
}

static int write_file(const char *dir, const char *name, uint64_t value) {
  char text[32];
  snprintf(text, sizeof text, "%" PRIu64, value);
  return write_file_text(dir, name, text);
}

static unsigned long long oom_kills(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/memory.oom_control", dir);
  FILE *f = fopen(path, "re");
  if (!f)
    return 0;
  unsigned long long kills = 0, value;
  char key[64];
  while (fscanf(f, "%63s %llu", key, &value) == 2)
    if (strcmp(key, "oom_kill") == 0)
      kills = value;
  fclose(f);
  return kills;
}

/* The limit of one controller: memory (swap included where the kernel
 * accounts it: memsw must never be below the plain limit, so the order of
 * the two writes follows the direction of the change) or pids (0: none). */
static int set_limit(struct esb_cgroup *cg, int which, uint64_t limit) {
  const char *dir = cg->dirs[which];
  if (which == ESB_CGROUP_PIDS)
    return limit ? write_file(dir, "pids.max", limit) : write_file_text(dir, "pids.max", "max");
  bool raising = limit > cg->memory_limit;
  const char *first = raising ? "memory.memsw.limit_in_bytes" : "memory.limit_in_bytes";
  const char *second = raising ? "memory.limit_in_bytes" : "memory.memsw.limit_in_bytes";
  /* memsw is absent where swap is not accounted. */
  if (write_file(dir, first, limit) < 0 && (errno != ENOENT || !raising))
    return -1;
  if (write_file(dir, second, limit) < 0 && (errno != ENOENT || raising))
    return -1;
  cg->memory_limit = limit;
  return 0;
}

static int open_procs(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/cgroup.procs", dir);
  return open(path, O_WRONLY | O_CLOEXEC);
}

/* Makes one controller's cgroup and applies its limit. */
static int make_one(struct esb_cgroup *cg, int which, uint64_t limit, char *why, size_t whylen) {
  const char *name = controller_names[which];
  char *dir = NULL;
  /* A name can be taken already by a cgroup that a gone engine with our pid
   * left with processes in it: the next number is free. */
  for (int attempt = 0; attempt < 8; attempt++) {
    if (!(dir = new_cgroup_dir(which))) {
      snprintf(why, whylen, "no cgroup v1 %s hierarchy of ours to use", name);
      return -1;
    }
    if (mkdir(dir, 0755) == 0)
      break;
    snprintf(why, whylen, "making %s: %s", dir, strerror(errno));
    free(dir);
    dir = NULL;
    if (errno != EEXIST)
      return -1;
  }
  if (!dir)
    return -1;
  cg->dirs[which] = dir;
  if (which == ESB_CGROUP_MEMORY)
    cg->memory_limit = UINT64_MAX; /* a new memory cgroup starts unlimited */
  int rc = set_limit(cg, which, limit);
  if (rc == 0 && (cg->procs[which] = open_procs(dir)) < 0)
    rc = -1;
  if (rc < 0)
    snprintf(why, whylen, "setting up %s: %s", dir, strerror(errno));
  return rc;
}

int esb_cgroup_create(struct esb_cgroup *cg, uint64_t memory_bytes, uint64_t max_pids,
                      char *why, size_t whylen) {
  *cg = (struct esb_cgroup)ESB_CGROUP_INIT;
  if (make_one(cg, ESB_CGROUP_MEMORY, memory_bytes, why, whylen) < 0) {
    esb_cgroup_destroy(cg);
    return -1;
  }
  /* pids is a bonus: RLIMIT_NPROC still bounds the processes without it. */
  char ignored[256];
  if (make_one(cg, ESB_CGROUP_PIDS, max_pids, ignored, sizeof ignored) < 0 && cg->dirs[ESB_CGROUP_PIDS]) {
    close(cg->procs[ESB_CGROUP_PIDS]);
    cg->procs[ESB_CGROUP_PIDS] = -1;
    rmdir(cg->dirs[ESB_CGROUP_PIDS]);
    free(cg->dirs[ESB_CGROUP_PIDS]);
    cg->dirs[ESB_CGROUP_PIDS] = NULL;
  }
  return 0;
}

bool esb_cgroup_oom_killed(const struct esb_cgroup *cg) {
  return cg->dirs[ESB_CGROUP_MEMORY] && oom_kills(cg->dirs[ESB_CGROUP_MEMORY]) > cg->oom_kills_before;
}

/* SIGKILLs every process listed in dir/cgroup.procs; returns how many. */
static int kill_members(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/cgroup.procs", dir);
  FILE *f = fopen(path, "re");
  if (!f)
    return 0;
  int n = 0;
  long pid;
  while (fscanf(f, "%ld", &pid) == 1) {
    kill((pid_t)pid, SIGKILL);
    n++;
  }
  fclose(f);
  return n;
}

/* A cgroup whose last process is still being released (it was reaped a
 * moment ago) cannot be removed yet: kill what is left and wait, starting
 * with a few microseconds, for at most about half a second. */
static void remove_dir(const char *dir) {
  long pause_ns = 10000;
  for (long waited = 0; waited < 500000000L; waited += pause_ns, pause_ns = pause_ns < 10000000L ? pause_ns * 2 : pause_ns) {
    if (rmdir(dir) == 0 || errno != EBUSY)
      return;
    kill_members(dir);
    struct timespec pause = { 0, pause_ns };
    nanosleep(&pause, NULL);
  }
}

void esb_cgroup_destroy(struct esb_cgroup *cg) {
  for (int i = 0; i < ESB_CGROUP__COUNT; i++) {
    if (cg->procs[i] >= 0)
      close(cg->procs[i]);
    if (cg->dirs[i]) {
      remove_dir(cg->dirs[i]);
      free(cg->dirs[i]);
    }
  }
  *cg = (struct esb_cgroup)ESB_CGROUP_INIT;
}

/* Does dir/cgroup.procs list any process? */
static bool has_members(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/cgroup.procs", dir);
  FILE *f = fopen(path, "re");
  if (!f)
    return true;
  long pid;
  bool any = fscanf(f, "%ld", &pid) == 1;
  fclose(f);
  return any;
}

/* Readies an idle cgroup for a new run; -1 when it cannot be. */
static int reuse(struct esb_cgroup *cg, uint64_t memory_bytes, uint64_t max_pids) {
  const char *mem = cg->dirs[ESB_CGROUP_MEMORY];
  if (set_limit(cg, ESB_CGROUP_MEMORY, memory_bytes) < 0)
    return -1;
  if (cg->dirs[ESB_CGROUP_PIDS] && set_limit(cg, ESB_CGROUP_PIDS, max_pids) < 0)
    return -1;
  /* What the last run left readable in its cgroup: its peak and failures. */
  static const char *const counters[] = { "memory.max_usage_in_bytes", "memory.failcnt",
                                          "memory.memsw.max_usage_in_bytes", "memory.memsw.failcnt" };
  for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
    write_file_text(mem, counters[i], "0");
  cg->oom_kills_before = oom_kills(mem);
  return 0;
}

int esb_cgroup_acquire(struct esb_cgroup_pool *pool, struct esb_cgroup *cg, uint64_t memory_bytes,
                       uint64_t max_pids, char *why, size_t whylen) {
  while (pool && pool->count > 0) {
    *cg = pool->idle[--pool->count];
    if (reuse(cg, memory_bytes, max_pids) == 0)
      return 0;
    esb_cgroup_destroy(cg);
  }
  return esb_cgroup_create(cg, memory_bytes, max_pids, why, whylen);
}

void esb_cgroup_release(struct esb_cgroup_pool *pool, struct esb_cgroup *cg) {
  if (pool && cg->dirs[ESB_CGROUP_MEMORY] && pool->count < ESB_CGROUP_POOL_SIZE) {
    bool busy = false;
    for (int i = 0; i < ESB_CGROUP__COUNT; i++)
      busy |= cg->dirs[i] && has_members(cg->dirs[i]);
    if (!busy) {
      pool->idle[pool->count++] = *cg;
      *cg = (struct esb_cgroup)ESB_CGROUP_INIT;
      return;
    }
  }
  esb_cgroup_destroy(cg);
}

void esb_cgroup_pool_clear(struct esb_cgroup_pool *pool) {
  while (pool->count > 0)
    esb_cgroup_destroy(&pool->idle[--pool->count]);
}
