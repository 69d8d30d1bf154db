/* esb-spec-helper: what the specs need on the host side that Lua alone
 * cannot do.
 *
 *   esb-spec-helper listen PORTFILE       accept TCP connections on 127.0.0.1 (free port
 *                                         written to PORTFILE), answer "hello\n", forever
 *   esb-spec-helper leaks PID             print what could leak from process PID: its open
 *                                         fds, its descendants (but this helper and its shell),
 *                                         processes of uid 65534, processes that carry PID's
 *                                         $ESB_SPEC_MARK in their environment (started by the
 *                                         specs, even if reparented), echo-sandbox-* temp dirs
 *                                         and echo-sandbox-* cgroups (v1 memory and pids)
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int cmd_listen(const char *portfile) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  socklen_t len = sizeof a;
  if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 16) < 0 ||
      getsockname(s, (struct sockaddr *)&a, &len) < 0) {
    perror("listen");
    return 1;
  }
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", portfile);
  FILE *f = fopen(tmp, "w");
  if (!f) { perror(tmp); return 1; }
  fprintf(f, "%d\n", ntohs(a.sin_port));
  fclose(f);
  rename(tmp, portfile);
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    (void)!write(c, "hello\n", 6);
    close(c);
  }
}

static int read_stat(int pid, int *ppid, unsigned *uid, char *cmd, size_t cmdlen) {
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *close_paren = strrchr(buf, ')');
  if (!close_paren || sscanf(close_paren + 2, "%*c %d", ppid) != 1) return -1;
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  *uid = (unsigned)-1;
  if ((f = fopen(path, "r"))) {
    while (fgets(buf, sizeof buf, f))
      if (sscanf(buf, "Uid: %u", uid) == 1) break;
    fclose(f);
  }
  snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
  cmd[0] = 0;
  if ((f = fopen(path, "r"))) {
    n = fread(cmd, 1, cmdlen - 1, f);
    fclose(f);
    for (size_t i = 0; i < n; i++) if (!cmd[i]) cmd[i] = ' ';
    cmd[n] = 0;
  }
  return 0;
}

/* Descendants of root, found by walking parents up from every process. */
static int is_descendant(int pid, int root) {
  for (int depth = 0; pid > 1 && depth < 64; depth++) {
    int ppid;
    unsigned uid;
    char cmd[8];
    if (read_stat(pid, &ppid, &uid, cmd, sizeof cmd) < 0) return 0;
    if (ppid == root) return 1;
    pid = ppid;
  }
  return 0;
}

static int has_mark(int pid, const char *mark) {
  char path[64], buf[65536];
  snprintf(path, sizeof path, "/proc/%d/environ", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  size_t mlen = strlen(mark);
  for (size_t i = 0; i + mlen <= n; i += strlen(buf + i) + 1)
    if (!memcmp(buf + i, mark, mlen) && (i + mlen == n || buf[i + mlen] == 0)) return 1;
  return 0;
}

/* root and the processes above it (they carry the mark too). */
static int is_ancestor_or_self(int pid, int root) {
  for (int depth = 0; root > 1 && depth < 64; depth++) {
    if (pid == root) return 1;
    int ppid;
    unsigned uid;
    char cmd[8];
    if (read_stat(root, &ppid, &uid, cmd, sizeof cmd) < 0) return 0;
    root = ppid;
  }
  return 0;
}

static int print_cgroup(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  if (type == FTW_D && ftw->level > 0 && !strncmp(path + ftw->base, "echo-sandbox-", 13))
    printf("cgroup %s\n", path);
  return 0;
}

static int cmd_leaks(const char *pidarg) {
  int root = atoi(pidarg), self = getpid(), shell = getppid();
  char path[64], target[PATH_MAX], cmd[256];
  snprintf(path, sizeof path, "/proc/%d/fd", root);
  DIR *d = opendir(path);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char link[PATH_MAX];
    snprintf(link, sizeof link, "%s/%s", path, e->d_name);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n > 0 ? n : 0] = 0;
    /* the pipe of the popen that runs us is new each time: name it by kind */
    if (!strncmp(target, "pipe:", 5)) strcpy(target, "pipe");
    printf("fd %s %s\n", e->d_name, target);
  }
  if (d) closedir(d);
  char mark[256] = "";
  const char *m = getenv("ESB_SPEC_MARK");
  if (m && *m) snprintf(mark, sizeof mark, "ESB_SPEC_MARK=%s", m);
  DIR *proc = opendir("/proc");
  while (proc && (e = readdir(proc))) {
    if (!isdigit((unsigned char)e->d_name[0])) continue;
    int pid = atoi(e->d_name), ppid;
    unsigned uid;
    if (pid == self || pid == shell || read_stat(pid, &ppid, &uid, cmd, sizeof cmd) < 0) continue;
    if (uid == 65534) printf("proc %d uid 65534: %s\n", pid, cmd);
    else if (is_descendant(pid, root)) printf("child %d: %s\n", pid, cmd);
    else if (*mark && has_mark(pid, mark) && !is_ancestor_or_self(pid, root))
      printf("proc %d started by the specs: %s\n", pid, cmd);
  }
  if (proc) closedir(proc);
  const char *tmp = getenv("TMPDIR");
  DIR *t = opendir(tmp && *tmp ? tmp : "/tmp");
  while (t && (e = readdir(t)))
    if (!strncmp(e->d_name, "echo-sandbox-", 13)) printf("tmp %s\n", e->d_name);
  if (t) closedir(t);
  nftw("/sys/fs/cgroup/memory", print_cgroup, 16, FTW_PHYS | FTW_MOUNT);
  nftw("/sys/fs/cgroup/pids", print_cgroup, 16, FTW_PHYS | FTW_MOUNT);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && !strcmp(argv[1], "listen")) return cmd_listen(argv[2]);
  if (argc >= 3 && !strcmp(argv[1], "leaks")) return cmd_leaks(argv[2]);
  fprintf(stderr, "usage: esb-spec-helper listen PORTFILE | leaks PID ...\n");
  return 2;
}
