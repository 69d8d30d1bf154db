#include "backend/netstack.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/sandbox/clone.h"
#include "engine/fileio.h"
#include "engine/contract/result.h"
#include "engine/sandbox/spawn.h"

int esb_netstack_prepare(struct esb_netstack *ns, const struct esb_net_range *allow, size_t n_allow, uid_t uid,
                         gid_t gid, bool owner, struct esb_error *err) {
  ns->uid = uid;
  ns->gid = gid;
  ns->owner = owner;
  free(ns->rules);
  ns->rules = NULL;
  ns->n_rules = 0;
  if (esb_netrules_build("/etc/resolv.conf", allow, n_allow, &ns->rules, &ns->n_rules) < 0) {
    esb_error_errno(err, ESB_E_SYSTEM, "network: the host's addresses");
    return -1;
  }
  return 0;
}

/* Whether uid/gid (no other groups) may open /dev/net/tun for writing. */
static bool tun_open_to(uid_t uid, gid_t gid) {
  struct stat st;
  if (stat("/dev/net/tun", &st) < 0)
    return false;
  mode_t rw = st.st_uid == uid ? S_IRUSR | S_IWUSR : st.st_gid == gid ? S_IRGRP | S_IWGRP : S_IROTH | S_IWOTH;
  return (st.st_mode & rw) == rw;
}

bool esb_netstack_unprivileged(uid_t uid, gid_t gid) {
  return geteuid() == 0 && uid != 0 && tun_open_to(uid, gid);
}

/* A file for pasta's pid, which pasta (perhaps as the run's uid) writes. */
static int make_pidfile(const struct esb_netstack *ns, bool as_run, char *path, size_t len) {
  const char *tmp = getenv("TMPDIR");
  snprintf(path, len, "%s/echo-sandbox-pasta-XXXXXX", tmp && tmp[0] == '/' ? tmp : "/tmp");
  int fd = mkstemp(path);
  if (fd < 0)
    return -1;
  int rc = as_run ? fchown(fd, ns->uid, ns->gid) : 0;
  int saved = errno;
  close(fd);
  if (rc < 0)
    unlink(path);
  errno = saved;
  return rc;
}

/* pasta's words, into argv (room for 32). It joins the sandbox's namespaces
 * through fds 0 (user) and 1 (net) that the engine opened: the sandbox runs
 * as the run's own host uid, and pasta, which keeps no CAP_SYS_PTRACE, could
 * not open them by the child's pid. As root, with a run's uid that may use
 * the tun device: setpriv makes pasta that uid, with no capability where
 * that uid owns the namespaces (it has every one inside them), else with
 * CAP_SYS_ADMIN only (ambient, so it holds across the exec; the bounding
 * set keeps it from gaining more). Else pasta runs as the engine's uid, as
 * root would drop to nobody, who cannot enter the namespaces (root needs
 * CAP_SYS_ADMIN on the host to enter those the run's uid owns); it drops its
 * capabilities and sandboxes itself once set up. */
static void pasta_argv(const struct esb_netstack *ns, bool as_run, const char *pidfile, char ids[3][32],
                       const char **argv) {
  size_t n = 0;
  if (as_run && ns->owner) {
    /* The run's uid owns the namespaces: pasta needs no capability at all */
    snprintf(ids[0], 32, "--reuid=%u", (unsigned)ns->uid);
    snprintf(ids[1], 32, "--regid=%u", (unsigned)ns->gid);
    snprintf(ids[2], 32, "%u:%u", (unsigned)ns->uid, (unsigned)ns->gid);
    const char *setpriv[] = { "setpriv", ids[0], ids[1], "--clear-groups", "--inh-caps=-all", "--", "pasta" };
    memcpy(argv, setpriv, sizeof setpriv);
    n = sizeof setpriv / sizeof *setpriv;
  } else if (as_run) {
    snprintf(ids[0], 32, "--reuid=%u", (unsigned)ns->uid);
    snprintf(ids[1], 32, "--regid=%u", (unsigned)ns->gid);
    snprintf(ids[2], 32, "%u:%u", (unsigned)ns->uid, (unsigned)ns->gid);
    const char *setpriv[] = { "setpriv", ids[0], ids[1], "--clear-groups", "--inh-caps=-all,+sys_admin",
                              "--ambient-caps=-all,+sys_admin", "--bounding-set=-all,+sys_admin", "--", "pasta" };
    memcpy(argv, setpriv, sizeof setpriv);
    n = sizeof setpriv / sizeof *setpriv;
  } else {
    argv[n++] = "pasta";
    snprintf(ids[2], 32, "%u", (unsigned)geteuid());
  }
  const char *rest[] = { "--runas", ids[2], "--config-net", "--no-map-gw", "--quiet", "-t", "none", "-u", "none",
                         "-T", "none", "-U", "none", "--pid", pidfile, "--userns", "/proc/self/fd/0",
                         "--netns", "/proc/self/fd/1", NULL };
  memcpy(argv + n, rest, sizeof rest);
}

/* The child's namespace of this kind, opened for pasta. The open asks for
 * ptrace's read access to the child: a child whose user namespace the
 * run's uid owns is opened as that uid, which has every capability there,
 * not with CAP_SYS_PTRACE on the host (a unit's bounding set may leave it
 * out). */
static int open_ns(const struct esb_netstack *ns, pid_t child, const char *kind, struct esb_error *err) {
  char path[64];
  struct esb_owner_saved ids;
  snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)child, kind);
  if (ns->owner && esb_owner_enter(ns->uid, &ids) < 0) {
    esb_error_errno(err, ESB_E_SANDBOX_SETUP, "network: taking the run's host uid %u", (unsigned)ns->uid);
    return -1;
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC), saved = errno;
  if (ns->owner)
    esb_owner_leave(&ids);
  errno = saved;
  if (fd < 0)
    esb_error_errno(err, ESB_E_SANDBOX_SETUP, "network: the sandbox's %s namespace", kind);
  return fd;
}

/* pasta's pid, from its file, as a pidfd. */
static int read_pid(struct esb_netstack *ns, const char *pidfile, struct esb_error *err) {
  size_t len;
  char *text = esb_read_file(pidfile, &len);
  int pid = text ? atoi(text) : 0;
  free(text);
  if (pid <= 0 || (ns->pidfd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0) {
    esb_error_errno(err, ESB_E_SANDBOX_SETUP, "network: pasta's pid (%d)", pid);
    return -1;
  }
  return 0;
}

int esb_netstack_attach(struct esb_netstack *ns, pid_t child, struct esb_error *err) {
  char pidfile[4096], ids[3][32], said[ESB_MESSAGE_MAX] = "";
  bool as_run = esb_netstack_unprivileged(ns->uid, ns->gid);
  if (make_pidfile(ns, as_run, pidfile, sizeof pidfile) < 0) {
    esb_error_errno(err, ESB_E_SANDBOX_SETUP, "network: a pid file for pasta");
    return -1;
  }
  const char *argv[32];
  pasta_argv(ns, as_run, pidfile, ids, argv);
  const char *env[] = {"PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin", NULL};
  struct esb_child c = ESB_CHILD_INIT;
  c.argv = argv;
  c.env = env;
  c.err = ESB_CHILD_PIPE;
  int status = 0, rc = -1;
  if ((c.in = open_ns(ns, child, "user", err)) < 0 || (c.out = open_ns(ns, child, "net", err)) < 0)
    goto out;
  if (esb_child_start(&c, err) < 0) {
    esb_error_prefix(err, "network: starting pasta");
    goto out;
  }
  /* pasta forks itself into the background once the namespace is set up */
  if (esb_child_reap(&c, &status, false) != 1) {
    esb_error_errno(err, ESB_E_SANDBOX_SETUP, "network: waiting for pasta");
    goto out;
  }
  ssize_t got = read(c.err, said, sizeof said - 1); /* its first line says why it failed */
  said[got > 0 ? got : 0] = '\0';
  said[strcspn(said, "\n")] = '\0';
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    struct esb_report r;
    bool not_found = read(c.report, &r, sizeof r) == sizeof r && r.kind == ESB_REPORT_EXEC_FAILED;
    esb_error_set(err, ESB_E_SANDBOX_SETUP, "network: %s", not_found ? "pasta is not installed (Debian's passt package)"
                  : said[0] ? said : "pasta failed");
    goto out;
  }
  rc = read_pid(ns, pidfile, err);
out:
  /* Ours, not the child machinery's: esb_child_close leaves given fds alone. */
  if (c.in >= 0)
    close(c.in);
  if (c.out >= 0)
    close(c.out);
  c.in = c.out = ESB_CHILD_NULL;
  esb_child_close(&c);
  unlink(pidfile);
  return rc;
}

void esb_netstack_detach(struct esb_netstack *ns) {
  free(ns->rules);
  ns->rules = NULL;
  ns->n_rules = 0;
  if (ns->pidfd < 0)
    return;
  /* Killed and waited for: it runs as the run's uid, which is given to
   * another run once the run is over. It has nothing to flush. */
  if (syscall(SYS_pidfd_send_signal, ns->pidfd, SIGKILL, NULL, 0) == 0) {
    struct pollfd exited = { .fd = ns->pidfd, .events = POLLIN };
    while (poll(&exited, 1, 5000) < 0 && errno == EINTR) {
    }
  }
  close(ns->pidfd);
  ns->pidfd = -1;
}
