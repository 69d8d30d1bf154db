/* Starting a child process, optionally inside a namespace sandbox.
 *
 * Shaped like git's run-command: fill a struct esb_child (ESB_CHILD_INIT), call
 * esb_child_start, drive its pipes (the loop does), then esb_child_reap and
 * esb_child_close. Everything the child needs is prepared before the clone; the
 * child itself makes only async-signal-safe calls.
 *
 * The child is created with clone3(CLONE_PIDFD) and no exit signal, so no
 * SIGCHLD reaches the host and a host's own waitpid(-1) cannot reap it; it is
 * waited for through its pidfd only. (A sandbox started in echo-sandbox-init
 * is the exception: see esb_init_program.) It leads its own session and process
 * group (setsid: it has no controlling terminal).
 *
 * With a sandbox that has ESB_NS_PID, the cloned child is an init process (pid
 * 1 of the new namespace): it sets up the mounts, forks the program, reaps
 * everything, reports the program's wait status over the report pipe and
 * exits; the kernel then kills whatever is left in the namespace. Started
 * in echo-sandbox-init (esb_init_program), the child is that program, and
 * pid 1 is its own child, which it waits for.
 *
 * A sandbox with cgroup_dir (cgroup v2) is cloned into that cgroup; one with
 * cgroup_procs (v1: each hierarchy's `tasks` file) has the child write "0"
 * to each once the sandbox is built, before the program starts, so
 * everything the program ever starts is in them.
 * The kernel checks the permission of whoever opened the file (cgroup v1),
 * so this works from inside the new user namespace, and the attach holds up
 * this run only, not the caller's loop.
 *
 * Errors: esb_child_start returns -1 with errno set and *err filled
 * when the clone or its preparation failed; nothing is left behind (pipes it
 * made are closed and their fields set to -1). Failures
 * after the clone (sandbox setup, exec) arrive as reports (esb_child_read_report). */
#ifndef ESB_ENGINE_SPAWN_H
#define ESB_ENGINE_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/error.h"

struct sock_fprog;
struct esb_mount;
struct esb_collect_spec;
struct esb_net_rule;
struct esb_session_hold;

enum {
  ESB_NS_USER = 1 << 0,
  ESB_NS_MOUNT = 1 << 1,
  ESB_NS_PID = 1 << 2,
  ESB_NS_NET = 1 << 3,
  ESB_NS_IPC = 1 << 4,
  ESB_NS_UTS = 1 << 5,
};

/* 0 means "leave unlimited" except where noted. */
struct esb_rlimits {
  uint64_t address_space; /* RLIMIT_AS, bytes */
  uint64_t cpu_secs;      /* RLIMIT_CPU soft; hard is one second more */
  uint64_t file_size;     /* RLIMIT_FSIZE, bytes */
  uint64_t open_files;    /* RLIMIT_NOFILE */
  uint64_t processes;     /* RLIMIT_NPROC (counted per user namespace) */
  bool no_core;           /* RLIMIT_CORE 0 */
};

struct esb_sandbox {
  unsigned namespaces;      /* ESB_NS_* */
  bool switch_ids;          /* become uid/gid before exec (the engine runs as root) */
  bool owns_userns;         /* with switch_ids and ESB_NS_USER: uid/gid, the run's own,
                               own its user namespace (made as them: engine/sandbox/clone.h) */
  uid_t uid;                /* host uid the program runs as */
  gid_t gid;
  uid_t inner_uid;          /* the same ids as seen inside the user namespace */
  gid_t inner_gid;
  /* With ESB_NS_MOUNT, the program sees a minimal root of its own
   * (engine/sandbox/rootfs.h): these host paths, a fresh /dev, /proc, /tmp, and the
   * working dir, a tmpfs of its own. */
  const struct esb_mount *mounts; /* the host paths, in order */
  size_t n_mounts;
  const char *workdir;      /* the working dir's path inside */
  const struct esb_file *files; /* the request's files, written into the working
                               dir before the program starts (engine/contract/request.h) */
  size_t n_files;
  uint64_t workdir_size_bytes; /* the size of its tmpfs */
  uint64_t tmp_size_bytes;  /* the size of /tmp and of /dev/shm */
  const char *hostname;     /* with ESB_NS_UTS */
  /* Files out (engine/contract/collect.h), with ESB_NS_PID: once the program has
   * ended, pid 1 kills what else of the run is left and writes the working
   * dir's files that these patterns match to collect_fd, a file of the
   * caller's (a memfd), before it reports the program's status. NULL: none
   * (collect_fd is then not looked at). */
  const struct esb_collect_spec *collect;
  int collect_fd;
  struct esb_rlimits limits;
  const struct sock_fprog *seccomp; /* NULL, or the filter the program gets, installed last
                               before exec (engine/sandbox/seccomp.h) */
  /* With ESB_NS_USER: called once the child's namespaces exist, before it
   * goes on, to attach something to them from outside (the user-mode
   * network stack of network: true). Returns 0, or -1 with *err, which
   * fails the start. */
  int (*before_release)(pid_t child, void *arg, struct esb_error *err);
  void *before_release_arg;
  /* With ESB_NS_NET: routing-policy rules the child adds to its namespace
   * before the program runs (engine/sandbox/netrules.h), once before_release is
   * done. */
  const struct esb_net_rule *net_rules;
  size_t n_net_rules;
  const int *cgroup_procs;  /* open files (engine/cgroup.h) the child joins its cgroups by */
  size_t n_cgroup_procs;    /* before it runs anything; -1 entries are skipped */
  const int *cgroup_dir;    /* NULL, or a cgroup v2 directory the child starts in
                               (CLONE_INTO_CGROUP); cgroup_procs are then joined only
                               where the kernel has no clone3 */
  /* With ESB_NS_USER, instead of cgroups ready before the start: called on
   * the starting thread once the child is released, to make the run's
   * cgroups while the child builds its sandbox (on two cores the two
   * overlap: cgroup v1's four directories cost about 0.8 ms). It sets
   * cgroup_procs and n_cgroup_procs, and limits.address_space and
   * limits.cpu_secs as they are with the cgroups it made (or failed to
   * make); the child takes them over the sync socket before it joins.
   * NULL: the cgroups, if any, are ready at the start. */
  void (*make_cgroups)(void *arg);
  void *make_cgroups_arg;
  /* NULL, or pid 1 holds a session (engine/sandbox/session_holder.h) instead
   * of running argv: only in a sandbox cloned in process (with ESB_NS_PID),
   * never through echo-sandbox-init. */
  const struct esb_session_hold *session;
};

enum { ESB_CHILD_PIPE = -1, ESB_CHILD_NULL = -2 };

struct esb_child {
  /* inputs */
  const char *const *argv;  /* argv[0] without '/' is looked up in env's PATH */
  const char *const *env;   /* the whole environment, NULL-terminated */
  const char *dir;          /* working directory; NULL to keep ours */
  const struct esb_sandbox *sandbox; /* NULL: a plain child */
  int in, out, err;         /* ESB_CHILD_PIPE: a pipe whose other end (non-blocking,
                               close-on-exec) replaces the value; ESB_CHILD_NULL:
                               /dev/null; else an fd of ours to pass (not closed) */
  /* outputs of esb_child_start, owned by the child struct until esb_child_close */
  pid_t pid;
  int pidfd;
  int report;               /* read end of the report pipe, non-blocking */
  bool reaped;
  /* set by esb_child_reap: the child's and its reaped descendants' CPU time
   * (user + system) and largest resident set, from the kernel's rusage */
  int64_t cpu_time_ms;
  int64_t max_rss_bytes;
};

#define ESB_CHILD_INIT { .in = ESB_CHILD_NULL, .out = ESB_CHILD_NULL, \
                         .err = ESB_CHILD_NULL, .pid = -1, .pidfd = -1, .report = -1 }

int esb_child_start(struct esb_child *c, struct esb_error *err);

/* Signals the child's process group (group true) or the child alone. Does
 * nothing once the child has been reaped, so a reused pid is never hit. */
void esb_child_kill(struct esb_child *c, int sig, bool group);

/* Collects the exit status through the pidfd. Returns 1 when reaped (status
 * set), 0 when still running (nohang), -1 on error. */
int esb_child_reap(struct esb_child *c, int *wstatus, bool nohang);

/* The same in halves, for a reap on another thread while the struct is in
 * use: esb_child_wait touches nothing but *exit (1: reaped, 0: still
 * running with nohang, -1: error); esb_child_reaped then records it. */
struct esb_child_exit {
  int wstatus;
  int64_t cpu_time_ms, max_rss_bytes;
};
int esb_child_wait(int pidfd, bool nohang, struct esb_child_exit *exit);
void esb_child_reaped(struct esb_child *c, const struct esb_child_exit *exit);

/* Closes the fds the struct still holds; kills and reaps a child that was not
 * reaped yet, so nothing outlives it. */
void esb_child_close(struct esb_child *c);

/* The echo-sandbox-init program a sandbox with namespaces starts in
 * (engine/sandbox/init_main.c says why): $ECHO_SANDBOX_INIT, else the
 * installation's (engine/install_paths.h). NULL when there is none (or $ECHO_SANDBOX_INIT
 * is "none"): the engine then clones the sandbox from its own process.
 *
 * It is used only once a program turns it on with esb_spawn_use_init (the
 * CLI and the daemon do; the Lua module does not): a child that execs gets
 * SIGCHLD as its exit signal again (the kernel resets it on exec), so its
 * end reaches the host as SIGCHLD, and a host that reaps children it did not
 * start (waitpid(-1), SIGCHLD ignored, as nginx's processes do) could take
 * its status. Such a host keeps the in-process clone, whose child never
 * execs and so never signals. */
const char *esb_init_program(void);
void esb_spawn_use_init(bool on);

/* Messages the child sends over the report pipe. */
enum esb_report_kind { ESB_REPORT_SETUP_FAILED = 1, ESB_REPORT_EXEC_FAILED, ESB_REPORT_STATUS,
                       ESB_REPORT_READY /* a session's holder serves: engine/sandbox/session_holder.h */ };
struct esb_report {
  int32_t kind;   /* enum esb_report_kind */
  int32_t step;   /* SETUP_FAILED: which step (esb_setup_step_name); STATUS of a run's
                     pid 1 in a session: ESB_REPORT_ALONE */
  int32_t error;  /* errno of the failure */
  int32_t status; /* STATUS: the program's wait status */
};
/* A STATUS's step from a session's run's pid 1: every other process of the
 * run (of its pid namespace) was killed and reaped before it, and the
 * run's cgroups hold none (engine/sandbox/session_holder.h). */
#define ESB_REPORT_ALONE 1
const char *esb_setup_step_name(int step);

#endif
