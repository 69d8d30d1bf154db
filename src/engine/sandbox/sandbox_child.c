#include "engine/sandbox/sandbox_child.h"

#include "engine/sandbox/clone.h"
#include "engine/contract/collect.h"
#include "engine/cgroup.h"
#include "engine/sandbox/fd_passing.h"
#include "engine/sandbox/netrules.h"
#include "engine/sandbox/session_holder.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <grp.h>

enum step {
  STEP_SIGNALS = 1, STEP_SYNC, STEP_SETSID, STEP_FSIDS, STEP_PRIVATE, STEP_ROOTFS, STEP_HOSTNAME,
  STEP_LOOPBACK, STEP_FORK, STEP_STDIO, STEP_FDS, STEP_GROUPS, STEP_GID, STEP_UID,
  STEP_NO_NEW_PRIVS, STEP_RLIMIT, STEP_PDEATHSIG, STEP_CHDIR, STEP_CGROUP, STEP_NO_USERNS,
  STEP_SECCOMP, STEP_LINK_LOCAL, STEP_UNSHARE, STEP_PLAN, STEP_INIT, STEP_NET_RULES, STEP_CGROUP_NS,
  STEP_OWNER, STEP_SESSION_PROC, STEP__COUNT
};

static const char *const step_names[STEP__COUNT] = {
  [STEP_CGROUP] = "join the run's cgroups", [STEP_SIGNALS] = "reset signals", [STEP_SYNC] = "wait for the id maps",
  [STEP_SETSID] = "new session", [STEP_FSIDS] = "set filesystem ids",
  [STEP_PRIVATE] = "make mounts private", [STEP_ROOTFS] = "build the root filesystem",
  [STEP_HOSTNAME] = "set the hostname", [STEP_LOOPBACK] = "bring up loopback",
  [STEP_FORK] = "fork the program", [STEP_STDIO] = "set up stdin/stdout/stderr",
  [STEP_FDS] = "close inherited fds", [STEP_GROUPS] = "drop supplementary groups",
  [STEP_GID] = "set gid", [STEP_UID] = "set uid", [STEP_NO_NEW_PRIVS] = "set no_new_privs",
  [STEP_RLIMIT] = "set resource limits", [STEP_PDEATHSIG] = "set the parent-death signal",
  [STEP_CHDIR] = "enter the working dir",
  [STEP_NO_USERNS] = "limit the user namespace (nested ones, inotify)", [STEP_SECCOMP] = "install the seccomp filter",
  [STEP_LINK_LOCAL] = "make 169.254.0.0/16 unreachable",
  [STEP_UNSHARE] = "make the namespaces", [STEP_PLAN] = "read the plan (echo-sandbox-init)",
  [STEP_INIT] = "start echo-sandbox-init",
  [STEP_NET_RULES] = "refuse the host's and private addresses",
  [STEP_CGROUP_NS] = "make the cgroup namespace",
  [STEP_OWNER] = "take the run's host uid for its user namespace",
  [STEP_SESSION_PROC] = "mount the run's own /proc in its session",
};

const char *esb_setup_step_name(int step) {
  if (step > 0 && step < STEP__COUNT && step_names[step])
    return step_names[step];
  return "sandbox setup";
}

static void report(const struct esb_child_plan *p, int kind, int step, int err, int status) {
  struct esb_report r = { .kind = kind, .step = step, .error = err, .status = status };
  ssize_t n;
  do n = write(p->report_fd, &r, sizeof r); while (n < 0 && errno == EINTR);
}

_Noreturn static void fail(const struct esb_child_plan *p, int step) {
  report(p, ESB_REPORT_SETUP_FAILED, step, errno, 0);
  _exit(125);
}

/* Whether this process's dispositions are all SIG_DFL already: set by
 * the fork server once it reset its own (which it never changes after),
 * so that each run it forks makes none of its 64 sigaction calls again;
 * read once, by that run (esb_child_main_exec), and cleared there. */
static bool dispositions_default;

static void reset_dispositions(void) {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      sigaction(sig, &dfl, NULL); /* fails harmlessly for the reserved ones */
}

void esb_child_reset_dispositions_once(void) {
  reset_dispositions();
  dispositions_default = true;
}

/* Default dispositions (an ignored signal stays ignored across exec) and
 * an empty mask: the parent blocked every signal around the clone so none
 * of its handlers can run here. */
static void reset_signals(void) {
  if (!dispositions_default)
    reset_dispositions();
  dispositions_default = false; /* what a process below us changes is its own */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Puts plan->stdio on 0, 1, 2 and closes every other fd but `keep` and the
 * inherited ones. */
static void setup_fds(const struct esb_child_plan *p, int keep) {
  for (int i = 0; i < 3; i++) {
    if (p->stdio[i] == i) {
      if (fcntl(i, F_SETFD, 0) < 0) fail(p, STEP_STDIO);
    } else if (dup2(p->stdio[i], i) < 0) {
      fail(p, STEP_STDIO);
    }
  }
  /* The host may hold fds without close-on-exec, and other executions' pipes
   * must not stay open in this tree (a stdin pipe would never see EOF). */
  unsigned first = 3u + (unsigned)p->n_inherit;
  if ((unsigned)keep > first && syscall(SYS_close_range, first, (unsigned)keep - 1, 0u) < 0) fail(p, STEP_FDS);
  if (syscall(SYS_close_range, (unsigned)keep + 1, ~0u, 0u) < 0) fail(p, STEP_FDS);
}

/* Lowers a limit to at most soft/hard; a limit already lower stays (raising
 * it would need privilege and is never what a sandbox wants). */
static void set_rlimit(const struct esb_child_plan *p, int resource, uint64_t soft, uint64_t hard) {
  struct rlimit rl;
  if (getrlimit(resource, &rl) < 0) fail(p, STEP_RLIMIT);
  if (hard < rl.rlim_max) rl.rlim_max = hard;
  rl.rlim_cur = soft < rl.rlim_max ? soft : rl.rlim_max;
  if (setrlimit(resource, &rl) < 0) fail(p, STEP_RLIMIT);
}

/* The limits that stand with cgroups the engine made late (join_cgroups):
 * ours alone, as a clone's memory is (the program's vfork shares it). */
static struct {
  bool told;
  uint64_t address_space, cpu_secs;
} late_limits;

static void apply_rlimits(const struct esb_child_plan *p, const struct esb_rlimits *l) {
  uint64_t address_space = late_limits.told ? late_limits.address_space : l->address_space;
  uint64_t cpu_secs = late_limits.told ? late_limits.cpu_secs : l->cpu_secs;
  if (address_space) set_rlimit(p, RLIMIT_AS, address_space, address_space);
  if (cpu_secs) set_rlimit(p, RLIMIT_CPU, cpu_secs, cpu_secs + 1);
  if (l->file_size) set_rlimit(p, RLIMIT_FSIZE, l->file_size, l->file_size);
  if (l->open_files) set_rlimit(p, RLIMIT_NOFILE, l->open_files, l->open_files);
  if (l->processes) set_rlimit(p, RLIMIT_NPROC, l->processes, l->processes);
  if (l->no_core) set_rlimit(p, RLIMIT_CORE, 0, 0);
}

/* The plan's filter, installed by a session's pid 1 made ahead before its
 * plan came (esb_child_run_prepared): none is installed again. */
static bool seccomp_ahead;

/* A run's pid 1 in a session (esb_child_run_prepared): it ends its run
 * alone (run_init), and the program, not it, joins the run's cgroups. */
static bool in_session;

static void join_cgroups(const struct esb_child_plan *p);

/* The last steps before the program: ids, limits, directory, exec. */
_Noreturn static void exec_program(const struct esb_child_plan *p) {
  const struct esb_sandbox *sb = p->sandbox;
  if (in_session)
    join_cgroups(p); /* this one thread, the program to be: its pid 1 stays out */
  setup_fds(p, p->report_fd);
  if (sb && sb->switch_ids) {
    uid_t uid = (sb->namespaces & ESB_NS_USER) ? sb->inner_uid : sb->uid;
    gid_t gid = (sb->namespaces & ESB_NS_USER) ? sb->inner_gid : sb->gid;
    /* The system calls, not glibc's wrappers: those change the ids of every
     * thread glibc knows of, signalling each and waiting for it, and this
     * process is a clone of a host whose other threads (the loop's, the
     * spawner's) are not here to answer: it would wait forever. */
    if (syscall(SYS_setgroups, 0, NULL) < 0) fail(p, STEP_GROUPS);
    if (syscall(SYS_setresgid, gid, gid, gid) < 0) fail(p, STEP_GID);
    if (syscall(SYS_setresuid, uid, uid, uid) < 0) fail(p, STEP_UID);
  }
  if (sb) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail(p, STEP_NO_NEW_PRIVS);
    apply_rlimits(p, &sb->limits);
  }
  /* Changing ids clears the parent-death signal, so it is set afterwards. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) fail(p, STEP_PDEATHSIG);
  if (p->dir && chdir(p->dir) < 0) fail(p, STEP_CHDIR);
  /* Last, so that nothing above needs a call the filter denies; unless a
   * session's pid 1 made ahead installed it already (esb_child_session_prepare:
   * the deny lists refuse nothing that it and this do). */
  if (sb && sb->seccomp && !seccomp_ahead && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, sb->seccomp, 0, 0) < 0)
    fail(p, STEP_SECCOMP);

  /* Like execvp, prepared: ENOENT/ENOTDIR try the next candidate, EACCES is
   * remembered, anything else stops the search. */
  int err = ENOENT;
  for (const char *const *path = p->exec_paths; *path; path++) {
    execve(*path, p->argv, p->envp);
    if (errno == EACCES) err = EACCES;
    else if (errno != ENOENT && errno != ENOTDIR) { err = errno; break; }
  }
  report(p, ESB_REPORT_EXEC_FAILED, 0, err, 0);
  _exit(err == ENOENT ? 127 : 126);
}

/* A "prohibit" route for 169.254.0.0/16 in the sandbox's own network
 * namespace: the link-local range, where clouds serve instance metadata and
 * credentials (169.254.169.254), is unreachable however the namespace is
 * connected. The program, without CAP_NET_ADMIN, cannot remove it. */
static void prohibit_link_local(const struct esb_child_plan *p) {
  struct {
    struct nlmsghdr nh;
    struct rtmsg rt;
    struct rtattr dst_attr;
    unsigned char dst[4];
  } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = sizeof req;
  req.nh.nlmsg_type = RTM_NEWROUTE;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
  req.rt.rtm_family = AF_INET;
  req.rt.rtm_dst_len = 16;
  req.rt.rtm_table = RT_TABLE_MAIN;
  req.rt.rtm_protocol = RTPROT_STATIC;
  req.rt.rtm_scope = RT_SCOPE_NOWHERE;
  req.rt.rtm_type = RTN_PROHIBIT;
  req.dst_attr.rta_len = RTA_LENGTH(4);
  req.dst_attr.rta_type = RTA_DST;
  req.dst[0] = 169;
  req.dst[1] = 254;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0 || send(fd, &req, sizeof req, 0) != (ssize_t)sizeof req) fail(p, STEP_LINK_LOCAL);
  struct {
    struct nlmsghdr nh;
    struct nlmsgerr err;
  } ack;
  ssize_t n = recv(fd, &ack, sizeof ack, 0);
  if (n < (ssize_t)sizeof ack || ack.nh.nlmsg_type != NLMSG_ERROR || ack.err.error != 0) {
    errno = n >= (ssize_t)sizeof ack && ack.err.error ? -ack.err.error : EPROTO;
    fail(p, STEP_LINK_LOCAL);
  }
  close(fd);
}

static void bring_up_loopback(const struct esb_child_plan *p) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(p, STEP_LOOPBACK);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, "lo", 3);
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) fail(p, STEP_LOOPBACK);
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) fail(p, STEP_LOOPBACK);
  close(fd);
}

/* The minimal root (engine/sandbox/rootfs.h), in a mount namespace of our own. */
static void build_root(const struct esb_child_plan *p) {
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) fail(p, STEP_PRIVATE);
  long failed;
  int rc = p->rootfs_template ? esb_rootfs_apply_template(p->rootfs, p->rootfs_template, &failed)
                              : esb_rootfs_apply(p->rootfs, &failed);
  if (rc < 0) fail(p, STEP_ROOTFS);
}

/* Limits of our own user namespace, below the host's per-user ones (the
 * kernel checks a count against every namespace up to the host's): no
 * user namespace can be made below ours, whatever the filter lets through
 * (what bubblewrap's --disable-userns does), and inotify is held to half
 * of the host's default per-user instances (128) and a run's share of
 * watches. The limits are per user namespace, and only we, with the
 * capabilities the program will not have, may raise them again. The
 * other namespace kinds need a capability the program never has here;
 * fanotify is bounded by the run's own host uid's limits (each write costs
 * some 5 µs). A limit this kernel lacks (its file is not there) is left:
 * only the first must hold. */
static const struct { const char *name, *value; } namespace_limits[] = {
  { "max_user_namespaces", "0" },
  { "max_inotify_instances", "64" },
  { "max_inotify_watches", "16384" },
};

static void limit_namespace(const struct esb_child_plan *p) {
  /* The directory looked up once: each lookup in a /proc just mounted
   * makes its dentries anew. */
  int dir = open("/proc/sys/user", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) fail(p, STEP_NO_USERNS);
  for (size_t i = 0; i < sizeof namespace_limits / sizeof namespace_limits[0]; i++) {
    int fd = openat(dir, namespace_limits[i].name, O_WRONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && i > 0)
      continue;
    size_t len = strlen(namespace_limits[i].value);
    if (fd < 0 || write(fd, namespace_limits[i].value, len) != (ssize_t)len) fail(p, STEP_NO_USERNS);
    close(fd);
  }
  close(dir);
}

/* Namespaces are in place: finish the sandbox around this process. */
static void prepare_sandbox(const struct esb_child_plan *p) {
  const struct esb_sandbox *sb = p->sandbox;
  if (sb->namespaces & ESB_NS_USER) {
    /* Files we create (the new root's mount points and /etc files) need a
     * mapped owner. */
    setfsgid(sb->inner_gid);
    setfsuid(sb->inner_uid);
    if ((gid_t)setfsgid((gid_t)-1) != sb->inner_gid || (uid_t)setfsuid((uid_t)-1) != sb->inner_uid) {
      errno = EPERM;
      fail(p, STEP_FSIDS);
    }
  }
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) fail(p, STEP_PDEATHSIG);
  if (sb->namespaces & ESB_NS_MOUNT) build_root(p);
  if ((sb->namespaces & (ESB_NS_USER | ESB_NS_PID)) == (ESB_NS_USER | ESB_NS_PID))
    limit_namespace(p); /* through our own /proc: the host's is read-only here */
  if (sb->namespaces & ESB_NS_UTS && sb->hostname &&
      sethostname(sb->hostname, strlen(sb->hostname)) < 0)
    fail(p, STEP_HOSTNAME);
  if (sb->namespaces & ESB_NS_NET) {
    bring_up_loopback(p);
    prohibit_link_local(p);
    if (sb->n_net_rules && esb_netrules_apply(sb->net_rules, sb->n_net_rules) < 0)
      fail(p, STEP_NET_RULES);
  }
}

void esb_child_close_all_but(int *keep, int n) {
  for (int i = 0; i < n; i++) /* sorted, for the ranges between */
    for (int j = i + 1; j < n; j++)
      if (keep[j] < keep[i]) { int t = keep[i]; keep[i] = keep[j]; keep[j] = t; }
  unsigned from = 0;
  for (int i = 0; i < n; i++) {
    if (keep[i] < 0 || (unsigned)keep[i] < from) continue;
    if ((unsigned)keep[i] > from) syscall(SYS_close_range, from, (unsigned)keep[i] - 1, 0u);
    from = (unsigned)keep[i] + 1;
  }
  syscall(SYS_close_range, from, ~0u, 0u);
}

/* Files out, once the program has ended: first every other process of the
 * run goes (nothing writes while we read, and nothing of the program
 * outlives its status anyway), then the working dir is walked as the
 * program's own ids (our filesystem ids are its). A failure to collect is
 * no failure of the run: what was written before it is read back. */
static void end_the_rest(void) {
  kill(-1, SIGKILL); /* all of our pid namespace but us */
  for (;;) {
    pid_t w = waitpid(-1, NULL, 0);
    if (w < 0 && errno != EINTR) break;
  }
}

static void collect_files(const struct esb_child_plan *p, int workdir) {
  end_the_rest();
  esb_collect_walk(workdir, p->sandbox->collect, p->collect_fd);
}

/* pid 1 of the sandbox: start the program, reap everything until it ends. */
_Noreturn static void run_init(const struct esb_child_plan *p) {
  /* The working dir, by an fd taken before the program runs: the walk
   * never looks a path up again. (volatile: it lives across the vfork.) */
  volatile int workdir = -1;
  if (p->collect_fd >= 0 && p->sandbox->collect)
    workdir = open(p->dir ? p->dir : "/", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  /* vfork, as posix_spawn does: the program borrows this process's memory
   * until its exec instead of copying the page tables of what is a copy of
   * the whole host (about 6% of a batch of short runs), and no atfork
   * handler runs (fork's could wait for locks that another thread of the
   * host held at clone time). The child only calls exec_program, which
   * execs or reports and _exits, and never returns here. */
  pid_t program = vfork();
  if (program < 0) fail(p, STEP_FORK);
  if (program == 0) exec_program(p);

  /* Hold only the report pipe and the program's stdout and stderr: not its
   * stdin (its reader must be the program alone, so a writer sees EPIPE
   * once the program is gone), nor anything else. Holding stdout and stderr
   * until the status is reported makes all three end together: one wake-up
   * of the engine's loop instead of two. And, to collect files, the working
   * dir and the file they go to. */
  int keep[5] = { p->stdio[1], p->stdio[2], p->report_fd, workdir >= 0 ? p->collect_fd : -1, workdir };
  esb_child_close_all_but(keep, 5);
  for (;;) {
    int status;
    pid_t w = waitpid(-1, &status, 0);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) _exit(125);
    if (w == program) {
      if (workdir >= 0)
        collect_files(p, workdir);
      else if (in_session)
        end_the_rest();
      /* In a session, the run is over here: the status says so
       * (ESB_REPORT_ALONE), and our fds go now, so that the engine sees
       * the output's end before our exit takes the run's namespaces
       * down (a mount namespace's end waits for an RCU grace period),
       * which it need not wait for. */
      report(p, ESB_REPORT_STATUS, in_session ? ESB_REPORT_ALONE : 0, 0, status);
      if (in_session)
        syscall(SYS_close_range, 0u, ~0u, 0u);
      _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
  }
}

/* The cgroups the engine made while we built the sandbox
 * (esb_sandbox.make_cgroups): their cgroup.procs files and the limits
 * that stand with them, on the sync socket; then joined as below. */
static void join_late_cgroups(const struct esb_child_plan *p) {
  struct esb_late_cgroups said;
  int fds[ESB_CGROUP__COUNT], n = 0;
  ssize_t got = esb_fd_recv(p->sync_fd, &said, sizeof said, fds, ESB_CGROUP__COUNT, &n);
  if (got != (ssize_t)sizeof said || said.magic != ESB_LATE_CGROUPS_MAGIC ||
      n != __builtin_popcount(said.present)) {
    errno = got < 0 ? errno : EPROTO;
    fail(p, STEP_SYNC);
  }
  close(p->sync_fd);
  late_limits.told = true;
  late_limits.address_space = said.address_space;
  late_limits.cpu_secs = said.cpu_secs;
  for (int i = 0; i < n; i++) {
    if (write(fds[i], "0", 1) != 1)
      fail(p, STEP_CGROUP);
    close(fds[i]);
  }
}

/* Joins the run's cgroups, when the clone did not start us in one: we write
 * "0", ourselves, so that the kernel moves this one thread (all there is
 * of us) without the global lock of a whole-process move, whose RCU grace
 * period costs a cgroup v1 attach 7 ms or more (engine/cgroup.h). Done once
 * the sandbox is built, just before the program starts: the kernel objects
 * of our own setup (mounts, namespaces) are not the program's to pay for,
 * and charging them to a new memory cgroup costs more than the rest of
 * the cgroup's work (per-cgroup lists for each new file system). */
static void join_cgroups(const struct esb_child_plan *p) {
  const struct esb_sandbox *sb = p->sandbox;
  if (p->cgroups_late) {
    join_late_cgroups(p);
    return;
  }
  for (size_t i = 0; sb && !p->started_in_cgroup && i < sb->n_cgroup_procs; i++)
    if (sb->cgroup_procs[i] >= 0 && write(sb->cgroup_procs[i], "0", 1) != 1)
      fail(p, STEP_CGROUP);
}

/* A cgroup namespace rooted where we are now, in the run's cgroups (or
 * ours, where there are none): /proc/self/cgroup and the cgroup paths the
 * program can see say "/", not the host's paths (and the engine's pid in
 * them). After join_cgroups: the namespace's root is the cgroup a process
 * is in when it makes it. */
static void enter_cgroup_namespace(const struct esb_child_plan *p) {
  if (p->sandbox && (p->sandbox->namespaces & ESB_NS_USER) && unshare(CLONE_NEWCGROUP) < 0)
    fail(p, STEP_CGROUP_NS);
}

/* The engine wrote our id maps (and did what else comes first): go on. */
static void await_release(const struct esb_child_plan *p) {
  char go;
  ssize_t n;
  do n = read(p->sync_fd, &go, 1); while (n < 0 && errno == EINTR);
  if (n != 1) { errno = n == 0 ? EPIPE : errno; fail(p, STEP_SYNC); }
  if (!p->cgroups_late) /* else it brings them (join_late_cgroups) */
    close(p->sync_fd);
}

/* The sync socket's half of the id-map handshake: say the namespaces exist,
 * wait for the maps. */
static void await_maps(const struct esb_child_plan *p) {
  ssize_t n;
  do n = write(p->sync_fd, "u", 1); while (n < 0 && errno == EINTR);
  if (n != 1) fail(p, STEP_SYNC);
  await_release(p);
}

_Noreturn void esb_child_main(const struct esb_child_plan *p) {
  reset_signals();
  /* A new session, so a new process group and no controlling terminal: the
   * program cannot open /dev/tty and push keystrokes into the terminal of
   * whoever started us (TIOCSTI), nor get its signals. */
  if (setsid() < 0) fail(p, STEP_SETSID);
  /* The parent writes our id maps first. */
  if (p->sync_fd >= 0) await_release(p);
  if (p->sandbox && p->sandbox->namespaces) prepare_sandbox(p);
  join_cgroups(p);
  enter_cgroup_namespace(p);
  if (p->session) esb_session_hold(p); /* pid 1 of a session: it holds the sandbox */
  if (p->sandbox && (p->sandbox->namespaces & ESB_NS_PID)) run_init(p);
  exec_program(p);
}

int esb_child_session_prepare(const struct sock_fprog *ahead) {
  reset_signals();
  if (setsid() < 0) return STEP_SETSID;
  /* A /proc of the run's own pid namespace, in a mount namespace of its
   * own: the session's /proc shows every run of the session, all of one
   * uid, and through /proc/PID/mem and environ one run could read and
   * rewrite another (its output, its exit). The working dir is the same
   * file system: its files stay the session's. */
  if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
      mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    return STEP_SESSION_PROC;
  /* The filter's install (the kernel checks and compiles it, and works out
   * which calls it always allows) is a tenth of a run of /bin/true: done
   * while no run waits. We are root of the session's user namespace: no
   * no_new_privs needed, which the program's ids change sets anyway. */
  if (ahead && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ahead, 0, 0) < 0)
    return STEP_SECCOMP;
  return 0;
}

/* Whether two filters are the same program. */
static bool same_filter(const struct sock_fprog *a, const struct sock_fprog *b) {
  return a && b && a->len == b->len && memcmp(a->filter, b->filter, a->len * sizeof *a->filter) == 0;
}

_Noreturn void esb_child_run_prepared(const struct esb_child_plan *p, const struct sock_fprog *ahead) {
  if (ahead) {
    /* No filter comes off: a plan that wants another one (or none) is the
     * holder's mistake, refused rather than run under the wrong one. */
    if (!same_filter(ahead, p->sandbox ? p->sandbox->seccomp : NULL)) {
      errno = EPROTO;
      fail(p, STEP_SECCOMP);
    }
    seccomp_ahead = true;
  }
  /* The run's own cgroups below the session's (its pids budget, its CPU
   * time and peak, its OOM kills) are joined by the program before it
   * starts (exec_program), and so hold only the run's processes, none
   * once its pid 1 has said its status: the engine may give their slot
   * back before this process has ended. */
  in_session = true;
  run_init(p);
}

_Noreturn void esb_child_run_in_session(const struct esb_child_plan *p) {
  int step = esb_child_session_prepare(NULL);
  if (step)
    fail(p, step);
  esb_child_run_prepared(p, NULL);
}

int esb_child_unshare_step(void) { return STEP_UNSHARE; }
int esb_child_init_step(void) { return STEP_INIT; }
int esb_child_fork_step(void) { return STEP_FORK; }

_Noreturn void esb_child_plan_unreadable(int report_fd) {
  struct esb_child_plan p = { .report_fd = report_fd };
  fail(&p, STEP_PLAN);
}

_Noreturn void esb_child_main_exec(const struct esb_child_plan *p, uint64_t namespaces_made) {
  const struct esb_sandbox *sb = p->sandbox;
  uint64_t rest = esb_namespace_flags(sb->namespaces) & ~namespaces_made;
  /* Our user namespace is the run's host uid's, not root's (engine/sandbox/clone.h):
   * we take that uid as our effective one for the unshare, which gives us
   * the namespace's own creds. First: the change of ids resets the
   * parent-death signal. */
  struct esb_owner_saved ids;
  if ((rest & CLONE_NEWUSER) && sb->switch_ids && sb->owns_userns && esb_owner_enter(sb->uid, &ids) < 0)
    fail(p, STEP_OWNER);
  /* Every signal stays blocked here (the engine blocked them around the
   * clone): a SIGTERM for the program's group must not end us, the pid 1
   * below would die with us before the program had its grace. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) fail(p, STEP_PDEATHSIG);
  if (setsid() < 0) fail(p, STEP_SETSID);
  if (rest && unshare((int)rest) < 0) fail(p, STEP_UNSHARE);
  if (p->sync_fd >= 0) await_maps(p);
  if ((sb->namespaces & ESB_NS_PID) && !(namespaces_made & CLONE_NEWPID)) {
    /* Our next child is pid 1 of the new namespace: it goes on; we wait
     * for it, holding nothing of the run's pipes, and end as it ends. */
    pid_t init = fork();
    if (init < 0) fail(p, STEP_FORK);
    if (init > 0) {
      syscall(SYS_close_range, 0u, ~0u, 0u);
      int status;
      while (waitpid(init, &status, 0) < 0)
        if (errno != EINTR) _exit(125);
      _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
  }
  reset_signals();
  prepare_sandbox(p);
  join_cgroups(p);
  enter_cgroup_namespace(p);
  if (sb->namespaces & ESB_NS_PID) run_init(p);
  exec_program(p);
}
