/* A sandbox's child plan as bytes, for the sandbox's init program
 * (echo-sandbox-init, engine/sandbox/init_main.c): the engine writes the plan into a
 * memfd the program reads on its fd ESB_WIRE_FD_PLAN, its other fds placed
 * at the numbers below. Internal to the engine; both sides are built from
 * the same source, and a plan of another version is refused. */
#ifndef ESB_ENGINE_CHILD_WIRE_H
#define ESB_ENGINE_CHILD_WIRE_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "engine/cgroup.h"
#include "engine/contract/collect.h"
#include "engine/sandbox/netrules.h"
#include "engine/sandbox/rootfs.h"
#include "engine/sandbox/sandbox_child.h"

/* The init program's fds: 0, 1, 2 its stdio, then these; nothing else. */
enum {
  ESB_WIRE_FD_REPORT = 3,
  ESB_WIRE_FD_SYNC = 4,   /* a socket: "u" once the namespaces exist, "g" back once mapped */
  ESB_WIRE_FD_PLAN = 5,
  ESB_WIRE_FD_CGROUP = 6, /* ESB_CGROUP__COUNT of them, where the plan has them */
  ESB_WIRE_FD_COLLECT = ESB_WIRE_FD_CGROUP + ESB_CGROUP__COUNT, /* where the plan collects files */
  ESB_WIRE_FD__END,
};

/* A plan read back: everything points into this struct's own memory. */
struct esb_child_wire {
  struct esb_child_plan plan;
  struct esb_sandbox sandbox;
  struct esb_rootfs rootfs;
  struct sock_fprog seccomp;
  int cgroup_procs[ESB_CGROUP__COUNT];
  struct esb_collect_spec collect;
  struct esb_net_rule *net_rules; /* owned */
  char *bytes;             /* owned: the plan as read */
  char **vectors;          /* owned: argv, envp and exec_paths, one block */
};

/* Places the init program's fds: from[i] (-1: none, so fd i is closed)
 * becomes fd i, without close-on-exec; every fd from ESB_WIRE_FD__END up
 * is then closed (close_rest) or marked close-on-exec. Makes system calls
 * only (no errno, no sanitizer hooks): it runs in a vfork-like child. */
void esb_child_wire_place(const int from[ESB_WIRE_FD__END], bool close_rest);

/* A memfd holding plan (with the fd numbers above), positioned at its
 * start: the fd, or -1 with errno. */
int esb_child_wire_write(const struct esb_child_plan *plan);

/* Reads a plan from fd into w: 0, or -1 with errno (EPROTO: not a plan of
 * this version). */
int esb_child_wire_read(int fd, struct esb_child_wire *w);

/* A root's template (engine/sandbox/rootfs.h): the steps of fs that are not per
 * run, the binds it may copy instead (engine/sandbox/rootfs_copy.h), and the host ids their files are made with, as bytes, malloc'd into
 * *bytes. They are the fork server's key for the template as well as what
 * it builds one from. 0, or -1 with errno. */
int esb_child_wire_template_write(const struct esb_rootfs *fs, uid_t uid, gid_t gid, char **bytes,
                                  size_t *len);

/* Reads such bytes back into fs, whose strings point into bytes (fs->steps
 * is malloc'd: free it). 0, or -1 with errno (EPROTO: not a template of
 * this version). */
int esb_child_wire_template_read(char *bytes, size_t len, struct esb_rootfs *fs, uid_t *uid, gid_t *gid);

#endif
