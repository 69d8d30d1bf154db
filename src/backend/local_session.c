/* Local sessions: made, read, listed, removed (backend/local_session.h).
 * A run in one: backend/local_session_run.c. */
#include "backend/local_session.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "backend/local.h"
#include "backend/local_session_files.h"
#include "engine/cgroup.h"
#include "engine/fileio.h"
#include "engine/runtime/uid_slot.h"
#include "engine/sandbox/fd_passing.h"
#include "engine/sandbox/seccomp.h"
#include "engine/sandbox/spawn.h"

/* How long a holder has to build the sandbox and say READY, and to end
 * once told to: far more than either takes; a bound, not a clock. */
#define READY_WAIT_MS 30000
#define END_WAIT_MS 10000

static uint64_t realtime_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* What is made on the way to a session, undone where the create fails. */
struct making {
  char id[ESB_SESSION_ID_LEN + 1];
  char *dir;
  int control, state;
  struct esb_cgroup cgroup;
  bool has_cgroup;
  int holder_procs[ESB_CGROUP__COUNT]; /* where the holder goes: the session's cgroups (v2: its leaf) */
  int leaf_dir;                        /* v2: the session's leaf, for CLONE_INTO_CGROUP; else -1 */
  struct esb_uid_slot uid_slot;
  struct esb_sandbox sandbox;
  struct esb_session_hold hold;
  struct esb_child child;
};

static int new_id(char id[ESB_SESSION_ID_LEN + 1], struct esb_error *err) {
  unsigned char bytes[ESB_SESSION_ID_LEN / 2];
  if (getrandom(bytes, sizeof bytes, 0) != (ssize_t)sizeof bytes)
    return esb_error_errno(err, ESB_E_SYSTEM, "making a session id");
  for (size_t i = 0; i < sizeof bytes; i++)
    snprintf(id + 2 * i, 3, "%02x", bytes[i]);
  return 0;
}

/* The session's directory and its listening socket, bound before the
 * clone: the socket's path is in a directory only our uid may enter, so
 * only our uid can connect. */
static int make_dir_and_socket(struct making *m, struct esb_error *err) {
  const char *base = esb_session_dir();
  if (esb_session_files_base(base, err) < 0 || new_id(m->id, err) < 0)
    return -1;
  if (asprintf(&m->dir, "%s/%s", base, m->id) < 0) {
    m->dir = NULL;
    return esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  }
  if (mkdir(m->dir, 0700) < 0) {
    free(m->dir);
    m->dir = NULL;
    return esb_error_errno(err, ESB_E_SYSTEM, "making the session's directory under %s", base);
  }
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if ((size_t)snprintf(addr.sun_path, sizeof addr.sun_path, "%s/control", m->dir) >= sizeof addr.sun_path)
    return esb_error_set(err, ESB_E_SYSTEM, "the session directory's path is too long for a socket: %s", m->dir);
  m->control = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (m->control < 0 || bind(m->control, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(m->control, 64) < 0)
    return esb_error_errno(err, ESB_E_SYSTEM, "making the session's control socket %s", addr.sun_path);
  int dir = open(m->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  m->state = dir < 0 ? -1 : openat(dir, "state", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (dir >= 0)
    close(dir);
  if (m->state < 0)
    return esb_error_errno(err, ESB_E_SYSTEM, "making the session's state file in %s", m->dir);
  return 0;
}

/* The session's own cgroups (never a slot of the shared pool: a slot is
 * for one run), where the plan and the host allow; else its memory limit
 * is the address space's, per process. */
/* Each run gets cgroups of its own below these (backend/local_session_run.c):
 * they count CPU time (count_cpu: v1 makes a cpu or cpuacct cgroup for the
 * runs' to go below), and on v2 the holder stays in a leaf of the
 * session's cgroup, beside its runs' (esb_cgroup_v2_nest). */
static void make_cgroups(struct making *m, const struct esb_plan *plan) {
  const struct esb_local_settings *ls = &plan->local;
  if (!ls->cgroups || !ls->memory_bytes)
    return;
  struct esb_cgroup_limits limits = { .memory_bytes = ls->memory_bytes, .max_pids = ls->limits.processes,
                                      .cpu_millicores = ls->cpu_millicores, .count_cpu = true };
  struct esb_error refused = ESB_ERROR_INIT;
  if (esb_cgroup_create(&m->cgroup, &limits, &refused) < 0)
    return; /* rlimits stand in, as for a run; each run's result warns */
  int leaf_procs;
  if (esb_cgroup_v2_nest(&m->cgroup, "holder", &m->leaf_dir, &leaf_procs, &refused) < 0) {
    esb_cgroup_destroy(&m->cgroup);
    return;
  }
  m->has_cgroup = true;
  for (int i = 0; i < ESB_CGROUP__COUNT; i++)
    m->holder_procs[i] = i == 0 && leaf_procs >= 0 ? leaf_procs : m->cgroup.procs[i];
  m->sandbox.cgroup_procs = m->holder_procs;
  m->sandbox.n_cgroup_procs = ESB_CGROUP__COUNT;
  m->sandbox.cgroup_dir = m->leaf_dir >= 0 ? &m->leaf_dir : NULL;
  m->sandbox.limits.address_space = 0;
  for (int i = 0; i < ESB_CGROUP__COUNT; i++)
    m->hold.keep_fds[i] = m->cgroup.procs[i]; /* their locks (engine/cgroup.h) */
}

/* The sandbox as a run's (esb_local_sandbox_for), with its own host uid
 * where the policy gives a range. */
static int make_sandbox(struct making *m, const struct esb_plan *plan, struct esb_error *err) {
  esb_local_sandbox_for(plan, false, &m->sandbox);
  if (esb_seccomp_program(plan->local.seccomp, &m->sandbox.seccomp, err) < 0 ||
      esb_rootfs_check_workdir(plan->local.mounts, plan->local.n_mounts, m->sandbox.workdir, err) < 0)
    return -1;
  const struct esb_local_settings *ls = &plan->local;
  if (m->sandbox.switch_ids && ls->uid_count && esb_uid_slot_usable(ls->uid_first, ls->uid_count)) {
    if (esb_uid_slot_take(ls->uid_first, ls->uid_count, &m->uid_slot, err) < 0)
      return -1;
    m->sandbox.uid = m->uid_slot.uid;
    m->sandbox.gid = (gid_t)m->uid_slot.uid;
    m->sandbox.owns_userns = true;
    m->hold.keep_fds[ESB_CGROUP__COUNT] = m->uid_slot.fd;
  }
  make_cgroups(m, plan);
  return 0;
}

/* The holder says READY once its sandbox is built, or why it could not. */
static int await_ready(struct making *m, struct esb_error *err) {
  struct pollfd p = { .fd = m->child.report, .events = POLLIN };
  int rc;
  do rc = poll(&p, 1, READY_WAIT_MS); while (rc < 0 && errno == EINTR);
  struct esb_report r = { 0 };
  if (rc == 1 && read(m->child.report, &r, sizeof r) == (ssize_t)sizeof r) {
    if (r.kind == ESB_REPORT_READY)
      return 0;
    if (r.kind == ESB_REPORT_SETUP_FAILED)
      return esb_error_set(err, ESB_E_SANDBOX_SETUP, "sandbox setup failed (%s): %s",
                           esb_setup_step_name(r.step), strerror(r.error));
  }
  return esb_error_set(err, ESB_E_SANDBOX_SETUP, rc == 0 ? "the session's pid 1 did not start within %d ms"
                                                          : "the session's pid 1 ended before it served (%d)",
                       READY_WAIT_MS);
}

static int write_info(struct making *m, const struct esb_session_options *o, struct esb_error *err) {
  struct esb_session_record rec = { .pid = m->child.pid, .start = esb_session_proc_start(m->child.pid),
                                    .created_ms = realtime_ms(), .ttl_ms = m->hold.ttl_ms,
                                    .idle_timeout_ms = m->hold.idle_timeout_ms,
                                    .inner_uid = m->sandbox.inner_uid, .inner_gid = m->sandbox.inner_gid,
                                    .address_space = m->sandbox.limits.address_space,
                                    .memory_bytes = m->has_cgroup ? m->cgroup.memory_limit : 0 };
  for (char *const *l = o->labels; l && *l; l++) /* check_plan counted them */
    rec.labels[rec.n_labels++] = *l;
  for (char *const *k = o->kernels; k && *k && rec.n_kernels < ESB_SESSION_RECORD_KERNELS; k++)
    rec.kernels[rec.n_kernels++] = *k;
  for (int i = 0; i < ESB_CGROUP__COUNT; i++)
    rec.cgroups[i] = m->has_cgroup ? m->cgroup.dirs[i] : NULL;
  rec.cgroup_version = m->has_cgroup ? m->cgroup.version : ESB_CGROUP_NONE;
  return esb_session_record_write(m->dir, &rec, err);
}

/* Our copies of what the holder keeps: closed, never destroyed (the
 * cgroups are the session's now, their locks the holder's). */
static void let_go(struct making *m) {
  if (m->control >= 0)
    close(m->control);
  if (m->state >= 0)
    close(m->state);
  m->control = m->state = -1;
  if (m->leaf_dir >= 0) {
    close(m->leaf_dir);
    close(m->holder_procs[0]);
  }
  m->leaf_dir = -1;
  esb_session_cgroup_forget(&m->cgroup);
  if (m->uid_slot.fd >= 0)
    close(m->uid_slot.fd);
  m->uid_slot = (struct esb_uid_slot)ESB_UID_SLOT_INIT;
  if (m->child.pidfd >= 0)
    close(m->child.pidfd);
  if (m->child.report >= 0)
    close(m->child.report);
  free(m->dir);
}

static void remove_cgroup(const char *dir);

static void undo(struct making *m) {
  esb_child_close(&m->child); /* kills and reaps a holder that was started */
  if (m->has_cgroup && m->leaf_dir >= 0) {
    char leaf[4200];
    snprintf(leaf, sizeof leaf, "%s/holder", m->cgroup.dirs[0]);
    remove_cgroup(leaf);
  }
  if (m->has_cgroup)
    esb_cgroup_destroy(&m->cgroup);
  m->has_cgroup = false;
  esb_uid_slot_release(&m->uid_slot);
  if (m->dir)
    esb_session_files_remove(m->dir);
  let_go(m);
}

static int check_plan(const struct esb_plan *plan, const struct esb_session_options *o, struct esb_error *err) {
  if (plan->backend != ESB_BACKEND_LOCAL)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "sessions run on the local backend only, for now");
  if (plan->local.isolation == ESB_ISOLATION_RLIMITS)
    return esb_error_set(err, ESB_E_INVALID_REQUEST,
                         "a session needs namespaces: the policy's isolation is \"rlimits\"");
  if (plan->local.network)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "network: true is not available in sessions yet");
  if (o->ttl_ms > ESB_SESSION_TTL_MS_MAX)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "ttl_ms %llu is above the ceiling of %llu",
                         (unsigned long long)o->ttl_ms, (unsigned long long)ESB_SESSION_TTL_MS_MAX);
  if (o->idle_timeout_ms > ESB_SESSION_TTL_MS_MAX)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "idle_timeout_ms %llu is above the ceiling of %llu",
                         (unsigned long long)o->idle_timeout_ms, (unsigned long long)ESB_SESSION_TTL_MS_MAX);
  size_t labels = 0;
  while (o->labels && o->labels[labels])
    labels++;
  if (labels > ESB_SESSION_RECORD_LABELS)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "%zu labels: a session carries at most %d", labels,
                         ESB_SESSION_RECORD_LABELS);
  return 0;
}

/* Creates go one at a time from the count of the tenant's sessions to the
 * new one's record (from then on it counts): an flock of the sessions'
 * directory, which every engine on the host takes. The holder, a clone of
 * ours, shares the lock's open file description for a moment; LOCK_UN
 * releases it for both. Returns the fd, or -1 with err. */
static int lock_creates(struct esb_error *err) {
  const char *base = esb_session_dir();
  if (esb_session_files_base(base, err) < 0)
    return -1;
  int fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  int rc = fd < 0 ? -1 : 0;
  while (fd >= 0 && (rc = flock(fd, LOCK_EX)) < 0 && errno == EINTR)
    ;
  if (rc < 0) {
    esb_error_errno(err, ESB_E_SYSTEM, "locking %s", base);
    if (fd >= 0)
      close(fd);
    return -1;
  }
  return fd;
}

static void unlock_creates(int fd) {
  if (fd < 0)
    return;
  flock(fd, LOCK_UN);
  close(fd);
}

static int check_room(const struct esb_session_options *o, struct esb_error *err);

int esb_session_create(const struct esb_plan *plan, const struct esb_session_options *o,
                       char id[ESB_SESSION_ID_LEN + 1], struct esb_error *err) {
  if (check_plan(plan, o, err) < 0)
    return -1;
  struct making m = { .control = -1, .state = -1, .cgroup = ESB_CGROUP_INIT, .uid_slot = ESB_UID_SLOT_INIT,
                      .leaf_dir = -1,
                      .child = ESB_CHILD_INIT,
                      .hold = { .keep_fds = { -1, -1, -1, -1, -1 },
                                .ttl_ms = o->ttl_ms ? o->ttl_ms : ESB_SESSION_TTL_MS_DEFAULT,
                                .idle_timeout_ms = o->idle_timeout_ms ? o->idle_timeout_ms
                                                                      : ESB_SESSION_IDLE_MS_DEFAULT } };
  int lock = lock_creates(err);
  if (lock < 0)
    return -1;
  if (check_room(o, err) < 0 || make_dir_and_socket(&m, err) < 0 || make_sandbox(&m, plan, err) < 0)
    goto fail;
  m.hold.control_fd = m.control;
  m.hold.state_fd = m.state;
  m.sandbox.session = &m.hold;
  m.child.argv = (const char *const *)plan->argv;
  m.child.env = (const char *const *)plan->env;
  m.child.sandbox = &m.sandbox;
  if (esb_child_start(&m.child, err) < 0) {
    esb_error_prefix(err, "starting the session's pid 1");
    goto fail;
  }
  /* The record first: an engine that crashes from here on leaves a
   * session `cleanup` can tell alive or gone by its holder. */
  if (write_info(&m, o, err) < 0)
    goto fail;
  unlock_creates(lock);
  lock = -1;
  if (await_ready(&m, err) < 0)
    goto fail;
  memcpy(id, m.id, sizeof m.id);
  let_go(&m);
  return 0;
fail:
  undo(&m);
  unlock_creates(lock);
  return -1;
}

const char *esb_session_dir(void) {
  static char dir[4096];
  if (dir[0])
    return dir;
  const char *named = getenv("ECHO_SANDBOX_SESSION_DIR");
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  if (named && named[0] == '/')
    snprintf(dir, sizeof dir, "%s", named);
  else if (geteuid() == 0)
    snprintf(dir, sizeof dir, "%s/sessions", ESB_UID_SLOT_DIR);
  else if (xdg && xdg[0] == '/')
    snprintf(dir, sizeof dir, "%s/echo-sandbox/sessions", xdg);
  else
    snprintf(dir, sizeof dir, "/tmp/echo-sandbox.sessions.%u", (unsigned)geteuid()); /* one level in
                                  the sticky /tmp: no one else can move it, and it must be ours, 0700 */
  return dir;
}

/* A session's directory, for an id already checked. */
static void dir_of(const char *id, char *buf, size_t n) {
  snprintf(buf, n, "%s/%s", esb_session_dir(), id);
}

static void info_from(const char *id, const char *dir, const struct esb_session_record *rec,
                      struct esb_session_info *info) {
  *info = (struct esb_session_info){ .pid = rec->pid, .created_ms = rec->created_ms, .ttl_ms = rec->ttl_ms,
                                     .idle_timeout_ms = rec->idle_timeout_ms,
                                     .cgroups = rec->cgroups[ESB_CGROUP_MEMORY] != NULL };
  snprintf(info->id, sizeof info->id, "%s", id);
  esb_session_state_read(dir, &info->end, &info->runs);
  /* The holder's word "alive" holds only while it lives: gone without a
   * word, it died (killed). */
  if (info->end == ESB_SESSION_ALIVE && !esb_session_holder_alive(rec->pid, rec->start))
    info->end = ESB_SESSION_END_DIED;
  /* Gone without a word, from a session whose memory cgroup saw the OOM
   * killer: its memory limit ended it (the holder is the last process
   * the OOM killer takes: the smallest, once the runs are gone). */
  struct esb_cgroup cg;
  if (info->end == ESB_SESSION_END_DIED && esb_session_cgroup_view(rec, &cg) && esb_cgroup_oom_killed(&cg))
    info->end = ESB_SESSION_END_MEMORY;
}

struct live_walk {
  void (*fn)(const struct esb_session_record *rec, void *arg);
  void *arg;
};

static void live_one(const struct esb_session_info *info, void *arg) {
  struct live_walk *w = arg;
  char dir[4200];
  struct esb_session_record rec;
  if (info->end != ESB_SESSION_ALIVE)
    return;
  dir_of(info->id, dir, sizeof dir);
  if (esb_session_record_read(dir, &rec) == 0)
    w->fn(&rec, w->arg);
  esb_session_record_release(&rec);
}

/* Calls fn for the record of each live session. */
static int each_live(void (*fn)(const struct esb_session_record *rec, void *arg), void *arg,
                     struct esb_error *err) {
  struct live_walk w = { fn, arg };
  return esb_session_list(live_one, &w, err);
}

/* The value of the label key among labels (n of them, or NULL-terminated
 * where n is SIZE_MAX); NULL where there is none. */
static const char *label_value(const char *const *labels, size_t n, const char *key) {
  size_t len = strlen(key);
  for (size_t i = 0; i < n && labels && labels[i]; i++)
    if (strncmp(labels[i], key, len) == 0 && labels[i][len] == '=')
      return labels[i] + len + 1;
  return NULL;
}

struct census {
  char *const *labels;
  uint64_t live, *by_label;
  const char *key, *value; /* a tenant's label, and its value (NULL: the label's absence) */
};

static void census_one(const struct esb_session_record *rec, void *arg) {
  struct census *c = arg;
  c->live++;
  for (size_t i = 0; c->labels && c->labels[i]; i++)
    for (size_t j = 0; j < rec->n_labels; j++)
      c->by_label[i] += strcmp(rec->labels[j], c->labels[i]) == 0;
}

int esb_session_census(char *const *labels, uint64_t *live, uint64_t *by_label, struct esb_error *err) {
  struct census c = { .labels = labels, .by_label = by_label };
  for (size_t i = 0; labels && labels[i]; i++)
    by_label[i] = 0;
  int rc = each_live(census_one, &c, err);
  *live = c.live;
  return rc;
}

static void tenant_one(const struct esb_session_record *rec, void *arg) {
  struct census *c = arg;
  const char *v = label_value(rec->labels, rec->n_labels, c->key);
  if (v ? c->value && strcmp(v, c->value) == 0 : !c->value)
    c->live++;
}

/* Whether the tenant may have one more session: fewer live than
 * max_per_tenant. Under lock_creates. */
static int check_room(const struct esb_session_options *o, struct esb_error *err) {
  if (!o->tenant_label || !o->max_per_tenant)
    return 0;
  struct census c = { .key = o->tenant_label,
                      .value = label_value((const char *const *)o->labels, SIZE_MAX, o->tenant_label) };
  if (each_live(tenant_one, &c, err) < 0)
    return -1;
  if (c.live < o->max_per_tenant)
    return 0;
  char who[512];
  if (c.value)
    snprintf(who, sizeof who, "tenant '%s' (label %s)", c.value, o->tenant_label);
  else
    snprintf(who, sizeof who, "the sessions without the label %s (one tenant together)", o->tenant_label);
  return esb_error_set(err, ESB_E_TOO_MANY_SESSIONS, "too many sessions: %s: %llu live, the policy's limit "
                       "is %llu (max_per_tenant); one must end before another is made", who,
                       (unsigned long long)c.live, (unsigned long long)o->max_per_tenant);
}

int esb_session_read(const char *id, struct esb_session_record *rec, struct esb_session_info *info,
                     struct esb_error *err) {
  *rec = (struct esb_session_record){ 0 };
  if (!esb_session_id_valid(id))
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "no session '%s': a session id is 32 hex digits", id);
  char dir[4200];
  dir_of(id, dir, sizeof dir);
  if (esb_session_record_read(dir, rec) < 0) {
    esb_session_record_release(rec);
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "no session '%s' (in %s)", id, esb_session_dir());
  }
  info_from(id, dir, rec, info);
  return 0;
}

int esb_session_info(const char *id, struct esb_session_info *info, struct esb_error *err) {
  struct esb_session_record rec;
  int rc = esb_session_read(id, &rec, info, err);
  esb_session_record_release(&rec);
  return rc;
}

/* A live session's working dir (esb_session_workdir_open), or -1 with err:
 * an unknown session, or one that ended, and why. */
static int workdir_of(const char *id, struct esb_error *err) {
  struct esb_session_info info;
  if (esb_session_info(id, &info, err) < 0)
    return -1;
  if (info.end != ESB_SESSION_ALIVE)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "session %s has ended (%s)", id, esb_session_end_name(info.end));
  char dir[4200];
  dir_of(id, dir, sizeof dir);
  int fd = esb_session_workdir_open(dir);
  if (fd < 0)
    return esb_error_errno(err, ESB_E_BACKEND, "session %s did not give its working dir", id);
  return fd;
}

int esb_session_put(const char *id, const struct esb_file *f, struct esb_error *err) {
  int workdir = workdir_of(id, err);
  if (workdir < 0)
    return -1;
  char dir[4200];
  dir_of(id, dir, sizeof dir);
  struct esb_session_record rec; /* its memory cgroup, which the file is charged to */
  int rc = esb_session_record_read(dir, &rec) < 0
             ? esb_error_errno(err, ESB_E_BACKEND, "session %s: reading its record in %s", id, dir)
             : esb_session_workdir_put(workdir, &rec, f, err);
  esb_session_record_release(&rec);
  close(workdir);
  return rc;
}

int esb_session_get(const char *id, const char *path, char **data, size_t *len, struct esb_error *err) {
  int workdir = workdir_of(id, err);
  if (workdir < 0)
    return -1;
  int rc = esb_session_workdir_get(workdir, path, data, len, err);
  close(workdir);
  return rc;
}

int esb_session_files(const char *id, const char *path, void (*fn)(const struct esb_session_entry *e, void *arg),
                      void *arg, struct esb_error *err) {
  int workdir = workdir_of(id, err);
  if (workdir < 0)
    return -1;
  int rc = esb_session_workdir_list(workdir, path, fn, arg, err);
  close(workdir);
  return rc;
}

int esb_session_workdir_size(const char *id, uint64_t *bytes, struct esb_error *err) {
  int workdir = workdir_of(id, err);
  if (workdir < 0)
    return -1;
  *bytes = esb_session_workdir_limit(workdir);
  close(workdir);
  return 0;
}

int esb_session_list(void (*fn)(const struct esb_session_info *info, void *arg), void *arg,
                     struct esb_error *err) {
  DIR *d = opendir(esb_session_dir());
  if (!d)
    return errno == ENOENT ? 0 : esb_error_errno(err, ESB_E_SYSTEM, "reading %s", esb_session_dir());
  struct dirent *e;
  while ((e = readdir(d))) {
    struct esb_session_info info;
    struct esb_error ignored;
    if (esb_session_id_valid(e->d_name) && esb_session_info(e->d_name, &info, &ignored) == 0)
      fn(&info, arg);
  }
  closedir(d);
  return 0;
}

/* Tells a live holder to end, and waits for its end: its pid namespace,
 * and so every process of the session, is gone by then. SIGKILL where it
 * does not answer. */
static void end_holder(const char *dir, const struct esb_session_record *rec) {
  int pidfd = (int)syscall(SYS_pidfd_open, rec->pid, 0);
  if (pidfd < 0 || !esb_session_holder_alive(rec->pid, rec->start)) {
    if (pidfd >= 0)
      close(pidfd);
    return;
  }
  int sock = esb_session_connect(dir);
  struct esb_session_msg m = { .magic = ESB_SESSION_MAGIC, .kind = ESB_SESSION_DELETE };
  if (sock >= 0)
    esb_fd_send(sock, &m, sizeof m, NULL, 0);
  if (sock >= 0)
    close(sock);
  struct pollfd p = { .fd = pidfd, .events = POLLIN };
  if (poll(&p, 1, END_WAIT_MS) != 1) {
    syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    poll(&p, 1, END_WAIT_MS);
  }
  close(pidfd);
}

/* A cgroup a session's processes just left may be busy a moment longer
 * (the kernel's exit of the last ones): a bounded number of tries. */
static void remove_cgroup(const char *dir) {
  for (int tries = 0; tries < 200 && rmdir(dir) < 0 && errno == EBUSY; tries++)
    usleep(5000);
}

/* The session's cgroups, below them first: v2's leaf of the holder, and
 * the runs' own that an engine which died during a run left. */
static void remove_cgroups(const struct esb_session_record *rec) {
  for (int i = 0; i < ESB_CGROUP__COUNT; i++) {
    if (!rec->cgroups[i])
      continue;
    DIR *d = opendir(rec->cgroups[i]);
    struct dirent *e;
    while (d && (e = readdir(d))) {
      char path[4200];
      if (e->d_type == DT_DIR && e->d_name[0] != '.' &&
          (size_t)snprintf(path, sizeof path, "%s/%s", rec->cgroups[i], e->d_name) < sizeof path)
        remove_cgroup(path);
    }
    if (d)
      closedir(d);
    remove_cgroup(rec->cgroups[i]);
  }
}

static int remove_dir(const char *id, const char *dir, enum esb_session_end *was, struct esb_error *err) {
  struct esb_session_record rec;
  if (esb_session_record_read(dir, &rec) < 0) {
    esb_session_record_release(&rec);
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "no session '%s' (in %s)", id, esb_session_dir());
  }
  struct esb_session_info info;
  info_from(id, dir, &rec, &info);
  if (was)
    *was = info.end;
  if (info.end == ESB_SESSION_ALIVE)
    end_holder(dir, &rec);
  remove_cgroups(&rec);
  esb_session_record_release(&rec);
  esb_session_files_remove(dir);
  return 0;
}

int esb_session_remove(const char *id, enum esb_session_end *was, struct esb_error *err) {
  if (!esb_session_id_valid(id))
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "no session '%s': a session id is 32 hex digits", id);
  char dir[4200];
  dir_of(id, dir, sizeof dir);
  return remove_dir(id, dir, was, err);
}

/* A directory without a record is a session being made, or one whose
 * engine crashed while it made it: only the latter, old enough, goes. */
#define UNRECORDED_GRACE_S 120

static bool unrecorded_stale(const char *dir) {
  struct esb_session_record rec;
  int rc = esb_session_record_read(dir, &rec);
  esb_session_record_release(&rec);
  struct stat st;
  return rc < 0 && lstat(dir, &st) == 0 && time(NULL) - st.st_mtime > UNRECORDED_GRACE_S;
}

int esb_session_sweep(bool dry_run, void (*say)(const char *id, const char *why, void *arg), void *arg,
                      struct esb_error *err) {
  DIR *d = opendir(esb_session_dir());
  if (!d)
    return errno == ENOENT ? 0 : esb_error_errno(err, ESB_E_SYSTEM, "reading %s", esb_session_dir());
  int found = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!esb_session_id_valid(e->d_name))
      continue;
    char dir[4200];
    dir_of(e->d_name, dir, sizeof dir);
    struct esb_session_info info;
    struct esb_error ignored;
    bool recorded = esb_session_info(e->d_name, &info, &ignored) == 0;
    if (recorded ? info.end == ESB_SESSION_ALIVE : !unrecorded_stale(dir))
      continue;
    found++;
    say(e->d_name, recorded ? esb_session_end_name(info.end) : "never made", arg);
    if (dry_run)
      continue;
    if (recorded)
      remove_dir(e->d_name, dir, NULL, &ignored);
    else
      esb_session_files_remove(dir);
  }
  closedir(d);
  return found;
}
