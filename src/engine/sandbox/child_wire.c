#include "engine/sandbox/child_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

__attribute__((no_sanitize("address", "undefined")))
void esb_child_wire_place(const int from[ESB_WIRE_FD__END], bool close_rest) {
  int moved[ESB_WIRE_FD__END];
  /* Above the numbers being placed first, so none is clobbered. */
  for (int i = 0; i < ESB_WIRE_FD__END; i++)
    moved[i] = from[i] < 0 ? -1 : (int)syscall(SYS_fcntl, from[i], F_DUPFD_CLOEXEC, ESB_WIRE_FD__END);
  for (int i = 0; i < ESB_WIRE_FD__END; i++) {
    if (moved[i] >= 0)
      syscall(SYS_dup2, moved[i], i); /* without close-on-exec */
    else
      syscall(SYS_close, i);
  }
  syscall(SYS_close_range, (unsigned)ESB_WIRE_FD__END, ~0u, close_rest ? 0u : CLOSE_RANGE_CLOEXEC);
}

#define WIRE_MAGIC 0x45534234u /* "ESB4": bump with any change below */

struct out {
  char *buf;
  size_t len, cap;
  bool failed;
};

static void put(struct out *o, const void *data, size_t n) {
  if (o->failed)
    return;
  if (o->len + n > o->cap) {
    size_t cap = o->cap ? o->cap * 2 : 4096;
    while (cap < o->len + n)
      cap *= 2;
    char *buf = realloc(o->buf, cap);
    if (!buf) {
      o->failed = true;
      return;
    }
    o->buf = buf;
    o->cap = cap;
  }
  memcpy(o->buf + o->len, data, n);
  o->len += n;
}

static void put_u64(struct out *o, uint64_t v) { put(o, &v, sizeof v); }

/* A string with its terminator, after its length; UINT64_MAX for NULL. */
static void put_str(struct out *o, const char *s) {
  if (!s) {
    put_u64(o, UINT64_MAX);
    return;
  }
  size_t n = strlen(s);
  put_u64(o, n);
  put(o, s, n + 1);
}

static void put_strv(struct out *o, char *const *v) {
  size_t n = 0;
  while (v && v[n])
    n++;
  put_u64(o, n);
  for (size_t i = 0; i < n; i++)
    put_str(o, v[i]);
}

static void put_step(struct out *o, const struct esb_rootfs_step *s) {
  put_u64(o, s->kind);
  put_str(o, s->source);
  put_str(o, s->dest);
  if (s->kind == ESB_ROOTFS_DATA) { /* bytes, not a string */
    put_u64(o, s->len);
    put(o, s->data, s->len);
  } else {
    put_str(o, s->data);
  }
  put_u64(o, s->writable);
  put_u64(o, s->mode);
  put_u64(o, s->uid);
  put_u64(o, s->gid);
  put_u64(o, s->source_dev);
  put_u64(o, s->source_ino);
  put_u64(o, s->per_run);
  put_u64(o, s->copy);
}

/* A template's steps: those not per run, and the binds it may hold a
 * copy of instead (engine/sandbox/rootfs_copy.h). */
static bool in_template(const struct esb_rootfs_step *s) {
  return !s->per_run || (s->kind == ESB_ROOTFS_BIND && s->copy);
}

int esb_child_wire_template_write(const struct esb_rootfs *fs, uid_t uid, gid_t gid, char **bytes, size_t *len) {
  struct out o = { 0 };
  size_t count = 0;
  for (size_t i = 0; i < fs->count; i++)
    count += in_template(&fs->steps[i]);
  put_u64(&o, WIRE_MAGIC);
  put_u64(&o, uid);
  put_u64(&o, gid);
  put_u64(&o, count);
  for (size_t i = 0; i < fs->count; i++)
    if (in_template(&fs->steps[i]))
      put_step(&o, &fs->steps[i]);
  if (o.failed) {
    free(o.buf);
    errno = ENOMEM;
    return -1;
  }
  *bytes = o.buf;
  *len = o.len;
  return 0;
}

int esb_child_wire_write(const struct esb_child_plan *p) {
  struct out o = { 0 };
  const struct esb_sandbox *sb = p->sandbox;
  put_u64(&o, WIRE_MAGIC);
  put_strv(&o, p->argv);
  put_strv(&o, p->envp);
  put_strv(&o, (char *const *)p->exec_paths);
  put_str(&o, p->dir);
  put_u64(&o, p->started_in_cgroup);
  put_u64(&o, p->cgroups_late);
  put_u64(&o, p->sync_fd >= 0);
  put_u64(&o, sb != NULL);
  if (sb) {
    put_u64(&o, sb->namespaces);
    put_u64(&o, sb->switch_ids);
    put_u64(&o, sb->owns_userns);
    put_u64(&o, sb->uid);
    put_u64(&o, sb->gid);
    put_u64(&o, sb->inner_uid);
    put_u64(&o, sb->inner_gid);
    put_str(&o, sb->hostname);
    put(&o, &sb->limits, sizeof sb->limits);
    put_u64(&o, sb->seccomp ? sb->seccomp->len : 0);
    if (sb->seccomp)
      put(&o, sb->seccomp->filter, sb->seccomp->len * sizeof *sb->seccomp->filter);
    for (size_t i = 0; i < ESB_CGROUP__COUNT; i++)
      put_u64(&o, i < sb->n_cgroup_procs && sb->cgroup_procs[i] >= 0);
    put_u64(&o, sb->n_net_rules);
    if (sb->n_net_rules)
      put(&o, sb->net_rules, sb->n_net_rules * sizeof *sb->net_rules);
    const struct esb_collect_spec *c = p->collect_fd >= 0 ? sb->collect : NULL;
    put_u64(&o, c != NULL);
    if (c) {
      put_u64(&o, c->n_patterns);
      for (size_t i = 0; i < c->n_patterns; i++)
        put_str(&o, c->patterns[i]);
      put_u64(&o, c->max_count);
      put_u64(&o, c->max_file_bytes);
      put_u64(&o, c->max_bytes);
    }
  }
  const struct esb_rootfs *fs = p->rootfs;
  put_u64(&o, fs ? fs->count : 0);
  for (size_t i = 0; fs && i < fs->count; i++)
    put_step(&o, &fs->steps[i]);
  put_u64(&o, WIRE_MAGIC);
  if (o.failed) {
    free(o.buf);
    errno = ENOMEM;
    return -1;
  }
  int fd = memfd_create("echo-sandbox-plan", MFD_CLOEXEC);
  size_t done = 0;
  while (fd >= 0 && done < o.len) {
    ssize_t n = write(fd, o.buf + done, o.len - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int saved = n < 0 ? errno : EIO;
      close(fd);
      fd = -1;
      errno = saved;
      break;
    }
    done += (size_t)n;
  }
  free(o.buf);
  if (fd >= 0 && lseek(fd, 0, SEEK_SET) < 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

struct in {
  char *p, *end;
  bool bad;
};

static void *take(struct in *in, size_t n) {
  if (in->bad || (size_t)(in->end - in->p) < n) {
    in->bad = true;
    return NULL;
  }
  void *at = in->p;
  in->p += n;
  return at;
}

static uint64_t take_u64(struct in *in) {
  uint64_t v = 0;
  void *at = take(in, sizeof v);
  if (at)
    memcpy(&v, at, sizeof v);
  return v;
}

static char *take_str(struct in *in) {
  uint64_t n = take_u64(in);
  if (n == UINT64_MAX || in->bad)
    return NULL;
  char *s = n < SIZE_MAX ? take(in, (size_t)n + 1) : NULL;
  if (!s || s[n] != '\0') {
    in->bad = true;
    return NULL;
  }
  return s;
}

/* A vector's strings into slots, from *next on; NULL-terminated. */
static char **take_strv(struct in *in, char **slots, size_t nslots, size_t *next) {
  uint64_t n = take_u64(in);
  if (in->bad || n > nslots - *next - 1) {
    in->bad = true;
    return NULL;
  }
  char **v = slots + *next;
  for (uint64_t i = 0; i < n; i++)
    v[i] = take_str(in);
  v[n] = NULL;
  *next += (size_t)n + 1;
  return v;
}

static char *read_all(int fd, size_t *len) {
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (!buf)
      return NULL;
    if (n == cap) {
      char *bigger = realloc(buf, cap *= 2);
      if (!bigger) {
        free(buf);
        return NULL;
      }
      buf = bigger;
    }
    ssize_t got = read(fd, buf + n, cap - n);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      free(buf);
      return NULL;
    }
    if (got == 0)
      break;
    n += (size_t)got;
  }
  *len = n;
  return buf;
}

static int take_step(struct in *in, struct esb_rootfs_step *s) {
  s->kind = (enum esb_rootfs_step_kind)take_u64(in);
  s->source = take_str(in);
  s->dest = take_str(in);
  if (s->kind == ESB_ROOTFS_DATA) {
    uint64_t n = take_u64(in);
    s->data = n <= (uint64_t)(in->end - in->p) ? take(in, (size_t)n) : NULL;
    s->len = (size_t)n;
    if (!s->data && n)
      return -1;
  } else {
    s->data = take_str(in);
  }
  s->writable = take_u64(in);
  s->mode = (unsigned)take_u64(in);
  s->uid = (unsigned)take_u64(in);
  s->gid = (unsigned)take_u64(in);
  s->source_dev = take_u64(in);
  s->source_ino = take_u64(in);
  s->per_run = take_u64(in);
  s->copy = take_u64(in);
  return in->bad || !s->dest ? -1 : 0;
}

int esb_child_wire_template_read(char *bytes, size_t len, struct esb_rootfs *fs, uid_t *uid, gid_t *gid) {
  struct in in = { bytes, bytes + len, false };
  *fs = (struct esb_rootfs)ESB_ROOTFS_INIT;
  if (take_u64(&in) != WIRE_MAGIC)
    goto bad;
  *uid = (uid_t)take_u64(&in);
  *gid = (gid_t)take_u64(&in);
  uint64_t count = take_u64(&in);
  if (in.bad || count > len)
    goto bad;
  fs->steps = calloc((size_t)count + 1, sizeof *fs->steps);
  if (!fs->steps)
    return -1;
  fs->count = fs->cap = (size_t)count;
  for (size_t i = 0; i < count; i++)
    if (take_step(&in, &fs->steps[i]) < 0 || !in_template(&fs->steps[i]))
      goto bad;
  if (in.p != in.end)
    goto bad;
  return 0;
bad:
  free(fs->steps);
  *fs = (struct esb_rootfs)ESB_ROOTFS_INIT;
  errno = EPROTO;
  return -1;
}

/* The error of a plan that is not one: EPROTO, -1. */
static int wire_bad(void) {
  errno = EPROTO;
  return -1;
}

/* The string slots of a read: every string is at least 9 bytes of the
 * plan, which bounds them. */
struct slots {
  char **v;
  size_t n, next;
};

/* The seccomp filter, if any. 0, or -1 (EPROTO). */
static int take_seccomp(struct in *in, struct esb_child_wire *w) {
  uint64_t n = take_u64(in);
  if (!n)
    return 0;
  /* copied: the bytes need not be aligned for sock_filter */
  void *filter = n <= UINT16_MAX ? take(in, n * sizeof(struct sock_filter)) : NULL;
  struct sock_filter *copy = filter ? malloc(n * sizeof *copy) : NULL;
  if (!copy)
    return wire_bad();
  memcpy(copy, filter, n * sizeof *copy);
  w->seccomp = (struct sock_fprog){ .len = (unsigned short)n, .filter = copy };
  w->sandbox.seccomp = &w->seccomp;
  return 0;
}

/* The network namespace's rules, if any, at most one a len bytes of the
 * plan. 0, or -1 (EPROTO). */
static int take_net_rules(struct in *in, struct esb_child_wire *w, size_t len) {
  uint64_t rules = take_u64(in);
  if (rules > len / sizeof *w->net_rules)
    return wire_bad();
  if (rules) { /* copied: the bytes need not be aligned */
    void *bytes = take(in, (size_t)rules * sizeof *w->net_rules);
    if (!bytes || !(w->net_rules = malloc((size_t)rules * sizeof *w->net_rules)))
      return wire_bad();
    memcpy(w->net_rules, bytes, (size_t)rules * sizeof *w->net_rules);
    w->sandbox.net_rules = w->net_rules;
    w->sandbox.n_net_rules = (size_t)rules;
  }
  return 0;
}

/* What to collect after the run, if anything: its patterns take string
 * slots. 0, or -1 (EPROTO). */
static int take_collect(struct in *in, struct esb_child_wire *w, struct slots *slots) {
  w->plan.collect_fd = -1;
  if (!take_u64(in))
    return 0;
  struct esb_collect_spec *c = &w->collect;
  uint64_t n = take_u64(in);
  if (in->bad || n > slots->n - slots->next - 1)
    return wire_bad();
  char **patterns = slots->v + slots->next;
  slots->next += (size_t)n + 1;
  for (uint64_t i = 0; i < n; i++)
    if (!(patterns[i] = take_str(in)))
      return wire_bad();
  *c = (struct esb_collect_spec){ .patterns = (const char *const *)patterns, .n_patterns = (size_t)n };
  c->max_count = take_u64(in);
  c->max_file_bytes = take_u64(in);
  c->max_bytes = take_u64(in);
  w->sandbox.collect = c;
  w->plan.collect_fd = ESB_WIRE_FD_COLLECT;
  return 0;
}

/* The sandbox of a plan that has one. 0, or -1 (EPROTO). */
static int take_sandbox(struct in *in, struct esb_child_wire *w, size_t len, struct slots *slots) {
  struct esb_sandbox *sb = &w->sandbox;
  sb->namespaces = (unsigned)take_u64(in);
  sb->switch_ids = take_u64(in);
  sb->owns_userns = take_u64(in);
  sb->uid = (uid_t)take_u64(in);
  sb->gid = (gid_t)take_u64(in);
  sb->inner_uid = (uid_t)take_u64(in);
  sb->inner_gid = (gid_t)take_u64(in);
  sb->hostname = take_str(in);
  void *limits = take(in, sizeof sb->limits);
  if (limits)
    memcpy(&sb->limits, limits, sizeof sb->limits);
  if (take_seccomp(in, w) < 0)
    return -1;
  for (int i = 0; i < ESB_CGROUP__COUNT; i++)
    w->cgroup_procs[i] = take_u64(in) ? ESB_WIRE_FD_CGROUP + i : -1;
  sb->cgroup_procs = w->cgroup_procs;
  sb->n_cgroup_procs = ESB_CGROUP__COUNT;
  if (take_net_rules(in, w, len) < 0 || take_collect(in, w, slots) < 0)
    return -1;
  sb->workdir = w->plan.dir;
  w->plan.sandbox = sb;
  return 0;
}

/* The root filesystem's steps, if any, at most one a byte of the plan.
 * 0, or -1 (EPROTO, or ENOMEM). */
static int take_rootfs(struct in *in, struct esb_child_wire *w, size_t len) {
  uint64_t steps = take_u64(in);
  if (steps > len)
    return wire_bad();
  if (!steps)
    return 0;
  w->rootfs.steps = calloc((size_t)steps, sizeof *w->rootfs.steps);
  if (!w->rootfs.steps)
    return -1;
  w->rootfs.count = w->rootfs.cap = (size_t)steps;
  for (size_t i = 0; i < steps; i++)
    if (take_step(in, &w->rootfs.steps[i]) < 0)
      return wire_bad();
  w->plan.rootfs = &w->rootfs;
  return 0;
}

int esb_child_wire_read(int fd, struct esb_child_wire *w) {
  memset(w, 0, sizeof *w);
  size_t len;
  if (!(w->bytes = read_all(fd, &len)))
    return -1;
  struct in in = { w->bytes, w->bytes + len, false };
  struct slots slots = { .n = len / 9 + 3 };
  if (!(w->vectors = slots.v = calloc(slots.n, sizeof *w->vectors)))
    return -1;
  struct esb_child_plan *p = &w->plan;
  if (take_u64(&in) != WIRE_MAGIC)
    return wire_bad();
  p->argv = take_strv(&in, w->vectors, slots.n, &slots.next);
  p->envp = take_strv(&in, w->vectors, slots.n, &slots.next);
  p->exec_paths = (const char *const *)take_strv(&in, w->vectors, slots.n, &slots.next);
  p->dir = take_str(&in);
  p->started_in_cgroup = take_u64(&in);
  p->cgroups_late = take_u64(&in);
  for (int i = 0; i < 3; i++)
    p->stdio[i] = i;
  p->report_fd = ESB_WIRE_FD_REPORT;
  p->sync_fd = take_u64(&in) ? ESB_WIRE_FD_SYNC : -1;
  p->collect_fd = -1;
  if (take_u64(&in) && take_sandbox(&in, w, len, &slots) < 0)
    return -1;
  if (take_rootfs(&in, w, len) < 0)
    return -1;
  if (take_u64(&in) != WIRE_MAGIC || in.bad || !p->argv || !p->envp || !p->exec_paths)
    return wire_bad();
  return 0;
}
