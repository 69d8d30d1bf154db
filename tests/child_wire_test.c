/* The plan echo-sandbox-init reads back is the plan the engine wrote. */
#include "engine/sandbox/child_wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>

#include "tap.h"

int main(void) {
  char *argv[] = {"python3", "-c", "print('hi')", NULL};
  char *envp[] = {"PATH=/usr/bin:/bin", "HOME=/work", "EMPTY=", NULL};
  const char *paths[] = {"/usr/bin/python3", "/bin/python3", NULL};
  struct sock_filter filter[] = { BPF_STMT(BPF_RET | BPF_K, 0x7fff0000), BPF_STMT(BPF_RET | BPF_K, 0) };
  struct sock_fprog prog = { .len = 2, .filter = filter };
  int cgroup_fds[ESB_CGROUP__COUNT] = { 40, -1, 42, -1 };
  struct esb_net_rule rules[] = { { .range = { AF_INET, 8, { 10 } }, .action = ESB_NET_REFUSE, .priority = 3000 },
                                  { .range = { AF_INET6, 7, { 0xfc } }, .action = ESB_NET_ALLOW, .protocol = 17,
                                    .port = 53, .priority = 500 } };
  struct esb_sandbox sb = { .namespaces = 0x3f, .switch_ids = true, .uid = 1000, .gid = 1001, .inner_uid = 1000,
                            .inner_gid = 1001, .hostname = "echo-sandbox", .seccomp = &prog,
                            .limits = { .address_space = 1 << 30, .cpu_secs = 30, .processes = 64, .no_core = true },
                            .cgroup_procs = cgroup_fds, .n_cgroup_procs = ESB_CGROUP__COUNT,
                            .net_rules = rules, .n_net_rules = 2 };
  struct esb_rootfs_step steps[] = {
    { .kind = ESB_ROOTFS_DIR, .dest = "/usr" },
    { .kind = ESB_ROOTFS_BIND, .source = "/.oldroot/usr", .dest = "/usr", .writable = false,
      .source_dev = 2049, .source_ino = 77 },
    { .kind = ESB_ROOTFS_FILE, .dest = "/etc/passwd", .data = "root:x:0:0::/:/bin/sh\n" },
    { .kind = ESB_ROOTFS_TMPFS, .dest = "/work", .data = "mode=0755,size=1024", .writable = true, .per_run = true },
  };
  struct esb_rootfs fs = { .steps = steps, .count = 4, .cap = 4 };
  struct esb_child_plan plan = { .argv = argv, .envp = envp, .exec_paths = paths, .dir = "/work", .sandbox = &sb,
                                 .stdio = {7, 8, 9}, .report_fd = 10, .sync_fd = 11, .rootfs = &fs,
                                 .started_in_cgroup = true };
  int fd = esb_child_wire_write(&plan);
  if (!ok(fd >= 0, "the plan is written to a memfd"))
    return tap_done();
  struct esb_child_wire w;
  ok(esb_child_wire_read(fd, &w) == 0, "and read back");
  close(fd);
  const struct esb_child_plan *p = &w.plan;
  is_str(p->argv[0], "python3", "argv[0]");
  is_str(p->argv[2], "print('hi')", "argv[2]");
  ok(p->argv[3] == NULL, "argv ends");
  is_str(p->envp[2], "EMPTY=", "an empty value");
  ok(p->envp[3] == NULL, "envp ends");
  is_str(p->exec_paths[1], "/bin/python3", "the executable's candidates");
  is_str(p->dir, "/work", "the working dir");
  ok(p->stdio[0] == 0 && p->stdio[1] == 1 && p->stdio[2] == 2, "stdio is 0, 1, 2 in the init program");
  is_int(p->report_fd, ESB_WIRE_FD_REPORT, "the report pipe at its number");
  is_int(p->sync_fd, ESB_WIRE_FD_SYNC, "the sync socket at its number");
  ok(p->started_in_cgroup, "started in its cgroup");
  const struct esb_sandbox *s = p->sandbox;
  if (ok(s != NULL, "the sandbox")) {
    ok(s->namespaces == 0x3f && s->switch_ids && s->uid == 1000 && s->gid == 1001 && s->inner_uid == 1000 &&
       s->inner_gid == 1001, "its namespaces and ids");
    is_str(s->hostname, "echo-sandbox", "its hostname");
    ok(s->limits.address_space == 1 << 30 && s->limits.cpu_secs == 30 && s->limits.processes == 64 &&
       s->limits.no_core, "its rlimits");
    ok(s->seccomp && s->seccomp->len == 2 && memcmp(s->seccomp->filter, filter, sizeof filter) == 0,
       "its seccomp filter, byte for byte");
    ok(s->n_net_rules == 2 && memcmp(s->net_rules, rules, sizeof rules) == 0, "its network rules, byte for byte");
    ok(s->cgroup_procs[0] == ESB_WIRE_FD_CGROUP && s->cgroup_procs[1] == -1 &&
       s->cgroup_procs[2] == ESB_WIRE_FD_CGROUP + 2, "its cgroup files at their numbers, where it had them");
  }
  if (ok(p->rootfs && p->rootfs->count == 4, "the root's four steps")) {
    const struct esb_rootfs_step *st = p->rootfs->steps;
    ok(st[0].kind == ESB_ROOTFS_DIR && st[0].source == NULL && st[0].data == NULL, "a step without source and data");
    is_str(st[1].source, "/.oldroot/usr", "a bind's source");
    ok(st[1].source_dev == 2049 && st[1].source_ino == 77, "and the file it was when planned");
    is_str(st[2].data, "root:x:0:0::/:/bin/sh\n", "a file's contents");
    ok(st[3].kind == ESB_ROOTFS_TMPFS && st[3].writable && st[3].per_run, "a writable tmpfs of the run's own");
    ok(!st[0].per_run && !st[2].per_run, "the other steps a template's");
  }
  free(w.bytes);
  free(w.vectors);
  free(w.rootfs.steps);
  free((void *)w.seccomp.filter);
  free(w.net_rules);

  /* A plan cut short, or of another version, is refused. */
  int cut = esb_child_wire_write(&plan);
  ok(cut >= 0 && ftruncate(cut, 100) == 0, "a plan cut short");
  ok(esb_child_wire_read(cut, &w) < 0 && errno == EPROTO, "is refused (EPROTO)");
  free(w.bytes);
  free(w.vectors);
  close(cut);

  /* A root's template: the steps that are not the run's own, and the ids. */
  char *key;
  size_t key_len;
  ok(esb_child_wire_template_write(&fs, 1000, 1001, &key, &key_len) == 0, "a template's key is written");
  struct esb_rootfs t;
  uid_t uid;
  gid_t gid;
  ok(esb_child_wire_template_read(key, key_len, &t, &uid, &gid) == 0, "and read back");
  is_int(t.count, 3, "with the three steps that are not the run's own");
  ok(uid == 1000 && gid == 1001, "and the ids its files are made with");
  is_str(t.steps[1].dest, "/usr", "a step's dest");
  ok(t.steps[1].source_ino == 77, "a bind's source file");
  free(t.steps);
  char *other;
  size_t other_len;
  steps[1].source_ino = 78;
  ok(esb_child_wire_template_write(&fs, 1000, 1001, &other, &other_len) == 0 &&
     (other_len != key_len || memcmp(other, key, key_len) != 0), "a bind's source replaced: another key");
  free(other);
  steps[1].source_ino = 77;
  steps[3].data = "mode=0755,size=2048";
  ok(esb_child_wire_template_write(&fs, 1000, 1001, &other, &other_len) == 0 && other_len == key_len &&
     memcmp(other, key, key_len) == 0, "a run's own step changed: the same key");
  free(other);
  ok(esb_child_wire_template_write(&fs, 1000, 1002, &other, &other_len) == 0 &&
     memcmp(other, key, key_len) != 0, "other ids: another key");
  free(other);
  ok(esb_child_wire_template_read(key, key_len - 1, &t, &uid, &gid) < 0 && errno == EPROTO,
     "a key cut short is refused (EPROTO)");
  free(key);
  return tap_done();
}
