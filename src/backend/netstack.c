#include "backend/netstack.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/fileio.h"
#include "engine/result.h"
#include "engine/spawn.h"

int esb_netstack_attach(struct esb_netstack *ns, pid_t child, char *why, size_t whylen) {
  const char *tmp = getenv("TMPDIR");
  char pidfile[4096], target[64], runas[32];
  snprintf(pidfile, sizeof pidfile, "%s/echo-sandbox-pasta-XXXXXX", tmp && tmp[0] == '/' ? tmp : "/tmp");
  int fd = mkstemp(pidfile);
  if (fd < 0) {
    snprintf(why, whylen, "network: a pid file for pasta: %s", strerror(errno));
    return -1;
  }
  close(fd);
  /* The child's namespaces, opened here and given to pasta as its stdin
   * and stdout: the child runs as the run's own host uid, not ours, and
   * pasta, which keeps no CAP_SYS_PTRACE, could not open them by its pid. */
  int userns, netns;
  snprintf(target, sizeof target, "/proc/%d/ns/user", (int)child);
  userns = open(target, O_RDONLY | O_CLOEXEC);
  snprintf(target, sizeof target, "/proc/%d/ns/net", (int)child);
  netns = open(target, O_RDONLY | O_CLOEXEC);
  if (userns < 0 || netns < 0) {
    snprintf(why, whylen, "network: opening the sandbox's namespaces: %s", strerror(errno));
    if (userns >= 0)
      close(userns);
    unlink(pidfile);
    return -1;
  }
  /* As root pasta would drop to nobody, who cannot enter the namespaces we
   * made; it drops its capabilities and sandboxes itself once set up. */
  snprintf(runas, sizeof runas, "%u", (unsigned)geteuid());
  const char *argv[] = {"pasta", "--runas", runas, "--config-net", "--no-map-gw", "--quiet",
                        "-t", "none", "-u", "none", "-T", "none", "-U", "none",
                        "--pid", pidfile, "--userns", "/proc/self/fd/0", "--netns", "/proc/self/fd/1", NULL};
  const char *env[] = {"PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin", NULL};
  struct esb_child c = ESB_CHILD_INIT;
  c.argv = argv;
  c.env = env;
  c.in = userns;
  c.out = netns;
  c.err = ESB_CHILD_PIPE;
  int status = 0, rc = -1;
  char cwhy[ESB_MESSAGE_MAX], err[256] = "";
  if (esb_child_start(&c, cwhy, sizeof cwhy) < 0) {
    snprintf(why, whylen, "network: starting pasta: %s", cwhy);
    goto out;
  }
  /* pasta forks itself into the background once the namespace is set up */
  if (esb_child_reap(&c, &status, false) != 1) {
    snprintf(why, whylen, "network: waiting for pasta: %s", strerror(errno));
    goto out;
  }
  ssize_t n = read(c.err, err, sizeof err - 1);
  err[n > 0 ? n : 0] = '\0';
  err[strcspn(err, "\n")] = '\0';
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    struct esb_report r;
    bool not_found = read(c.report, &r, sizeof r) == sizeof r && r.kind == ESB_REPORT_EXEC_FAILED;
    snprintf(why, whylen, "network: %s", not_found ? "pasta is not installed (Debian's passt package)"
             : err[0] ? err : "pasta failed");
    goto out;
  }
  size_t len;
  char *text = esb_read_file(pidfile, &len);
  int pid = text ? atoi(text) : 0;
  free(text);
  if (pid <= 0 || (ns->pidfd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0) {
    snprintf(why, whylen, "network: pasta's pid (%d): %s", pid, strerror(errno));
    goto out;
  }
  rc = 0;
out:
  esb_child_close(&c);
  close(userns);
  close(netns);
  unlink(pidfile);
  return rc;
}

void esb_netstack_detach(struct esb_netstack *ns) {
  if (ns->pidfd < 0)
    return;
  syscall(SYS_pidfd_send_signal, ns->pidfd, SIGTERM, NULL, 0);
  close(ns->pidfd);
  ns->pidfd = -1;
}
