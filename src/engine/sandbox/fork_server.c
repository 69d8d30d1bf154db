/* The fork server's side, in echo-sandbox-init (engine/sandbox/fork_server.h). */
#include "engine/sandbox/fork_server.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/sandbox/clone.h"
#include "engine/sandbox/fd_passing.h"
#include "engine/sandbox/rootfs.h"
#include "engine/sandbox/rootfs_copy.h"
#include "engine/sandbox/sandbox_child.h"

enum { MAX_FDS = ESB_WIRE_FD__END + 1 };
_Static_assert((int)MAX_FDS <= (int)ESB_FD_PASSING_MAX, "a request's fds fit one message");

static void close_all(const int *fds, int n) {
  for (int i = 0; i < n; i++)
    close(fds[i]);
}

/* A request and its key, as received. */
static union {
  struct esb_fork_request req;
  char bytes[sizeof(struct esb_fork_request) + ESB_FORK_KEY_MAX];
} message;

/* One request into message: its fds into fds[], their count into *n. 1: a
 * request, 0: the engine is gone, -1: a malformed one (its fds are
 * closed). */
static int receive(int *fds, int *n) {
  ssize_t got = esb_fd_recv(ESB_FORK_SERVER_FD, message.bytes, sizeof message.bytes, fds, MAX_FDS, n);
  if (got == 0 || (got < 0 && errno != EPROTO))
    return 0;
  const struct esb_fork_request *req = &message.req;
  bool ok = got >= (ssize_t)sizeof *req && req->magic == ESB_FORK_SERVER_MAGIC &&
            (size_t)got == sizeof *req + req->key_len && req->cgroup >= -1 && req->cgroup < *n &&
            !(req->namespaces & ~ESB_FORK_NAMESPACES);
  for (int i = 0; ok && i < ESB_WIRE_FD__END; i++)
    ok = req->slot[i] >= -1 && req->slot[i] < *n;
  if (!ok) {
    close_all(fds, *n);
    return -1;
  }
  return 1;
}

/* ---- templates of the runs' roots ---- */

enum { MAX_TEMPLATES = 8 };

static struct template {
  char name[16];       /* its directory in the hub ("" while the slot is free) */
  char *key;           /* owned */
  size_t len;
  bool failed;         /* its build failed: runs of this key build their own */
  unsigned long used;  /* when last used, for the eviction */
  int wds[ESB_ROOTFS_COPY_MAX_WATCHES]; /* the watches on its copies' host trees */
  size_t n_wds;
} templates[MAX_TEMPLATES];
static bool hub_ready;
static int changes = -1; /* inotify: the copies' host trees (engine/sandbox/rootfs_copy.h) */
static unsigned long uses, builds;

/* The server's own mount namespace, and the hub on /sys in it (see the
 * header), which becomes the working directory. */
static void hub_setup(void) {
  hub_ready = unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) == 0 &&
              mount("tmpfs", ESB_FORK_SERVER_HUB, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    "mode=0711,size=64k,nr_inodes=64") == 0 &&
              chdir(ESB_FORK_SERVER_HUB) == 0;
  /* Without it templates hold no copies: their runs bind every mount. */
  changes = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
}

/* Whether template t watches wd. */
static bool watches(const struct template *t, int wd) {
  for (size_t i = 0; i < t->n_wds; i++)
    if (t->wds[i] == wd)
      return true;
  return false;
}

static void drop(struct template *t) {
  if (t->name[0] && !t->failed) {
    umount2(t->name, MNT_DETACH); /* the runs that copied it keep their copies */
    rmdir(t->name);
  }
  /* A watch is one per directory, whoever added it: kept while another
   * template has it. */
  for (size_t i = 0; i < t->n_wds; i++) {
    bool shared = false;
    for (const struct template *o = templates; o < templates + MAX_TEMPLATES && !shared; o++)
      shared = o != t && watches(o, t->wds[i]);
    if (!shared)
      inotify_rm_watch(changes, t->wds[i]);
  }
  free(t->key);
  *t = (struct template){ 0 };
}

/* Drops each template a host tree of whose copies changed since the last
 * call (every template with copies when the kernel lost events); the next
 * run of its key builds it anew. */
static void drop_changed(void) {
  char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
  ssize_t got;
  while (changes >= 0 && (got = read(changes, buf, sizeof buf)) > 0) {
    for (char *p = buf; p < buf + got;) {
      const struct inotify_event *e = (const struct inotify_event *)p;
      for (struct template *t = templates; t < templates + MAX_TEMPLATES; t++)
        if (t->n_wds && ((e->mask & IN_Q_OVERFLOW) || watches(t, e->wd)))
          drop(t);
      p += sizeof *e + e->len;
    }
  }
}

/* Which of fs's copy steps the template may copy (copy[k] for the k-th),
 * their host trees watched from now on (in t's watches): a change from
 * here drops the template, even one the copy missed. */
static void choose_copies(struct template *t, const struct esb_rootfs *fs, bool *copy) {
  struct esb_rootfs_copy_budget budget = ESB_ROOTFS_COPY_BUDGET_INIT;
  size_t k = 0;
  for (size_t i = 0; i < fs->count; i++) {
    const struct esb_rootfs_step *s = &fs->steps[i];
    if (s->kind == ESB_ROOTFS_BIND && s->copy)
      copy[k++] = changes >= 0 &&
                  esb_rootfs_copy_watch(s->source + strlen(ESB_ROOTFS_OLDROOT), &budget, changes, t->wds, &t->n_wds);
  }
}

/* Builds key's template in t, by a child of ours (which shares our mount
 * namespace; its fs ids and what it leaves are its own). The steps are
 * read from t's own copy of the key, which they point into. */
static void build(struct template *t, const char *key, size_t len) {
  t->key = malloc(len);
  if (!t->key)
    return;
  memcpy(t->key, key, len);
  t->len = len;
  snprintf(t->name, sizeof t->name, "t%lu", ++builds);
  struct esb_rootfs fs = ESB_ROOTFS_INIT;
  uid_t uid;
  gid_t gid;
  int status = -1;
  bool *copy = NULL;
  if (esb_child_wire_template_read(t->key, len, &fs, &uid, &gid) == 0 && (copy = calloc(fs.count + 1, 1))) {
    choose_copies(t, &fs, copy);
    pid_t builder = fork();
    if (builder == 0) {
      /* The run being asked for has its fds open here (its pipes among
       * them): the builder holds none of them. */
      syscall(SYS_close_range, 0u, ~0u, 0u);
      long failed;
      _exit(esb_rootfs_build_template(&fs, t->name, uid, gid, copy, &failed) < 0 ? 1 : 0);
    }
    while (builder > 0 && waitpid(builder, &status, 0) < 0 && errno == EINTR)
      ;
  }
  free(copy);
  free(fs.steps);
  if (status != 0) {
    umount2(t->name, MNT_DETACH);
    rmdir(t->name);
    t->failed = true;
  }
}

/* The template for key (len bytes; none when 0): its directory, or NULL. */
static const char *template_for(const char *key, size_t len) {
  if (!hub_ready || len == 0)
    return NULL;
  struct template *slot = NULL;
  for (struct template *t = templates; t < templates + MAX_TEMPLATES; t++) {
    if (t->key && t->len == len && !memcmp(t->key, key, len)) {
      t->used = ++uses;
      return t->failed ? NULL : t->name;
    }
    if (!slot || (slot->key && (!t->key || t->used < slot->used)))
      slot = t;
  }
  drop(slot);
  build(slot, key, len);
  slot->used = ++uses;
  return slot->key && !slot->failed ? slot->name : NULL;
}

static void answer(pid_t pid, int error, int pidfd) {
  struct esb_fork_reply reply = { ESB_FORK_SERVER_MAGIC, pid, error };
  if (esb_fd_send(ESB_FORK_SERVER_FD, &reply, sizeof reply, &pidfd, pidfd >= 0 ? 1 : 0) < 0)
    _exit(0); /* the engine is gone */
}

_Noreturn void esb_fork_server_main(void (*run_init)(const char *rootfs_template, uint64_t namespaces_made)) {
  /* Our end of the socket crosses no exec; the engine's end tells us when
   * it is gone, and so does this signal should it die first. */
  fcntl(ESB_FORK_SERVER_FD, F_SETFD, FD_CLOEXEC);
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  /* What the engine ignores stays ignored across its exec of us. */
  esb_child_reset_dispositions_once();
  hub_setup();
  answer(0, 0, -1);
  for (;;) {
    int fds[MAX_FDS], n = 0;
    int got = receive(fds, &n);
    if (got == 0)
      _exit(0);
    if (got < 0) {
      answer(-1, EPROTO, -1);
      continue;
    }
    const struct esb_fork_request *req = &message.req;
    drop_changed();
    const char *rootfs_template = template_for(message.bytes + sizeof *req, req->key_len);
    struct clone_args args;
    memset(&args, 0, sizeof args);
    int pidfd = -1;
    args.flags = CLONE_PARENT | CLONE_PIDFD | req->namespaces;
    args.pidfd = (uint64_t)(uintptr_t)&pidfd;
    if (req->cgroup >= 0) {
      args.flags |= CLONE_INTO_CGROUP;
      args.cgroup = (uint64_t)fds[req->cgroup];
    }
    /* No stack of its own: fork semantics, the child on a copy of ours;
     * made as the run's owner where the engine names one. */
    struct esb_owner_saved ids;
    bool as_owner = req->owner_uid != ESB_FORK_NO_OWNER && (req->namespaces & CLONE_NEWUSER);
    bool entered = as_owner && esb_owner_enter(req->owner_uid, &ids) == 0;
    long pid = -1;
    if (!as_owner || entered)
      pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid != 0 && entered) {
      int saved = errno;
      esb_owner_leave(&ids);
      errno = saved;
    }
    if (pid == 0) {
      int from[ESB_WIRE_FD__END];
      for (int i = 0; i < ESB_WIRE_FD__END; i++)
        from[i] = req->slot[i] < 0 ? -1 : fds[req->slot[i]];
      esb_child_wire_place(from, true);
      run_init(rootfs_template, req->namespaces);
      _exit(127);
    }
    int error = pid < 0 ? errno : 0;
    close_all(fds, n);
    answer(pid < 0 ? -1 : (pid_t)pid, error, pid < 0 ? -1 : pidfd);
    if (pidfd >= 0)
      close(pidfd);
  }
}
