/* echo-sandbox-probe: the attacks of `doctor --prove` (dispatch/prove.h),
 * one a verb, run inside a sandbox like any request's program. Static and
 * self-contained, so that it runs in a sandbox that mounts nothing of the
 * host: the doctor carries it in the request's files.
 *
 * Each verb tries its attack and says what it saw on stdout, one line a
 * try. Its exit status is what the doctor reads: 0, the attack got through;
 * 1, it was refused; 2, the probe could not try (a bad word, a failed
 * setup). Where the engine or the host sees the outcome itself (an OOM
 * kill, a deadline, a listener's accept, a marker file), the doctor decides
 * from that instead. Every attack is bounded: a limit that does not hold
 * costs the host what the doctor asked for and no more. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GOT_THROUGH 0
#define REFUSED 1
#define CANNOT 2

static int refused_or_through(bool through) {
  return through ? GOT_THROUGH : REFUSED;
}

/* files PATH TOKEN: read PATH (a marker the doctor made on the host) and
 * append to it. Whether TOKEN shows in our output and the marker changed
 * is what the doctor looks at. */
static int probe_files(char **argv) {
  char buf[256];
  bool through = false;
  int fd = open(argv[0], O_RDONLY);
  if (fd < 0) {
    printf("read %s: %s\n", argv[0], strerror(errno));
  } else {
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = '\0';
    printf("read %s: %s\n", argv[0], buf);
    close(fd);
    through = true;
  }
  fd = open(argv[0], O_WRONLY | O_APPEND);
  if (fd < 0 || write(fd, "written from the sandbox\n", 25) != 25) {
    printf("write %s: %s\n", argv[0], strerror(errno));
  } else {
    printf("write %s: done\n", argv[0]);
    through = true;
  }
  if (fd >= 0)
    close(fd);
  return refused_or_through(through);
}

/* userns: a user namespace of our own (where a root of its own is had). */
static int probe_userns(char **argv) {
  (void)argv;
  if (unshare(CLONE_NEWUSER) == 0) {
    printf("unshare(CLONE_NEWUSER): made one\n");
    return GOT_THROUGH;
  }
  printf("unshare(CLONE_NEWUSER): %s\n", strerror(errno));
  return REFUSED;
}

/* mount: a tmpfs on /tmp, then the same in a user and mount namespace of
 * our own (which a filter without the namespace rows would give). */
static int probe_mount(char **argv) {
  (void)argv;
  if (mount("none", "/tmp", "tmpfs", 0, "size=1m") == 0) {
    printf("mount tmpfs on /tmp: mounted\n");
    return GOT_THROUGH;
  }
  printf("mount tmpfs on /tmp: %s\n", strerror(errno));
  if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) {
    printf("unshare(CLONE_NEWUSER|CLONE_NEWNS): %s\n", strerror(errno));
    return REFUSED;
  }
  if (mount("none", "/tmp", "tmpfs", 0, "size=1m") == 0) {
    printf("mount tmpfs on /tmp in a user namespace of its own: mounted\n");
    return GOT_THROUGH;
  }
  printf("mount tmpfs on /tmp in a user namespace of its own: %s\n", strerror(errno));
  return REFUSED;
}

/* One call of a filter's class: called with arguments the kernel itself
 * would reject (or that change only the probe), so that an answer other
 * than the filter's error means the call reached the kernel. */
struct sample {
  const char *what;
  long (*call)(void);
  int filter_errno;
  bool strict_only, default_only;
};

static long call_setns(void) { return syscall(SYS_setns, -1, 0); }
static long call_chroot(void) { return syscall(SYS_chroot, "/esb-probe-none"); }
static long call_keyctl(void) { return syscall(SYS_keyctl, -1L, 0L, 0L, 0L, 0L); }
static long call_perf(void) { return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0); }
static long call_mempolicy(void) { return syscall(SYS_set_mempolicy, -1, NULL, 0); }
static long call_clock(void) { return syscall(SYS_clock_settime, CLOCK_REALTIME, NULL); }
static long call_tiocsti(void) { char c = ' '; return ioctl(0, TIOCSTI, &c); }
static long call_personality(void) { return syscall(SYS_personality, (unsigned long)ADDR_NO_RANDOMIZE); }
static long call_alg(void) { return syscall(SYS_socket, AF_ALG, SOCK_SEQPACKET, 0); }
static long call_audit(void) { return syscall(SYS_socket, AF_NETLINK, SOCK_RAW, NETLINK_AUDIT); }
static long call_vm_read(void) { return syscall(SYS_process_vm_readv, getpid(), NULL, 0, NULL, 0, 0); }

static const struct sample samples[] = {
  { "setns (namespaces)", call_setns, EPERM, false, false },
  { "chroot (the mount API)", call_chroot, EPERM, false, false },
  { "keyctl (keyrings)", call_keyctl, EPERM, false, false },
  { "perf_event_open (attack surface)", call_perf, EPERM, false, false },
  { "set_mempolicy (NUMA placement)", call_mempolicy, EPERM, false, false },
  { "clock_settime (the machine's)", call_clock, EPERM, false, false },
  { "ioctl TIOCSTI (terminals)", call_tiocsti, EPERM, false, false },
  { "personality ADDR_NO_RANDOMIZE (personas)", call_personality, EPERM, false, true },
  { "socket AF_ALG (socket families)", call_alg, EAFNOSUPPORT, false, false },
  { "socket NETLINK_AUDIT (netlink protocols)", call_audit, EPROTONOSUPPORT, false, true },
  { "process_vm_readv (other processes' memory)", call_vm_read, EPERM, true, false },
};

/* A call of the x32 ABI (getpid), in a child: the filter kills it with
 * SIGSYS. */
static bool other_abi_refused(void) {
#ifdef __x86_64__
  pid_t pid = fork();
  if (pid == 0) {
    long r = syscall(0x40000000 | SYS_getpid);
    _exit(r < 0 ? 3 : 4);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0)
    return printf("x32 getpid: could not try: %s\n", strerror(errno)), true;
  bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS;
  printf("x32 getpid: %s\n", killed ? "killed (SIGSYS)" : "reached the kernel");
  return killed;
#else
  return true;
#endif
}

/* syscalls PROFILE: a sample of each class the profile's filter refuses. */
static int probe_syscalls(char **argv) {
  bool strict = !strcmp(argv[0], "strict");
  bool through = false;
  for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
    const struct sample *s = &samples[i];
    if ((s->strict_only && !strict) || (s->default_only && strict))
      continue;
    errno = 0;
    long r = s->call();
    int e = errno;
    bool refused = r < 0 && e == s->filter_errno;
    if (r >= 0 && s->call == call_alg)
      close((int)r);
    if (s->call == call_personality && r >= 0)
      syscall(SYS_personality, (unsigned long)r); /* back as it was */
    printf("%s: %s%s\n", s->what, refused ? "refused, " : "reached the kernel, ", r < 0 ? strerror(e) : "done");
    through |= !refused;
  }
  through |= !other_abi_refused();
  return refused_or_through(through);
}

/* tiocsti: the caller's terminal through /dev/tty (never typed into), and
 * TIOCSTI on stdin. */
static int probe_tiocsti(char **argv) {
  (void)argv;
  bool through = false;
  int fd = open("/dev/tty", O_RDWR | O_NOCTTY);
  if (fd >= 0) {
    printf("open /dev/tty: opened a controlling terminal (nothing was typed into it)\n");
    close(fd);
    through = true;
  } else {
    printf("open /dev/tty: %s\n", strerror(errno));
  }
  char c = ' ';
  if (ioctl(0, TIOCSTI, &c) == 0) {
    printf("ioctl(0, TIOCSTI): typed a space into stdin's terminal\n");
    through = true;
  } else {
    printf("ioctl(0, TIOCSTI): %s\n", strerror(errno));
  }
  return refused_or_through(through);
}

/* One TCP connect to ADDRESS:PORT within a second: 0 when it connected. */
static int connect_once(const char *address, const char *port) {
  struct sockaddr_storage ss = { 0 };
  struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
  socklen_t len;
  if (inet_pton(AF_INET, address, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET, in4->sin_port = htons((uint16_t)atoi(port)), len = sizeof *in4;
  } else if (inet_pton(AF_INET6, address, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6, in6->sin6_port = htons((uint16_t)atoi(port)), len = sizeof *in6;
  } else {
    return EINVAL;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return errno;
  int err = connect(fd, (struct sockaddr *)&ss, len) == 0 ? 0 : errno;
  if (err == EINPROGRESS) {
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    socklen_t n = sizeof err;
    if (poll(&p, 1, 1000) != 1)
      err = ETIMEDOUT;
    else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &n) < 0)
      err = errno;
  }
  close(fd);
  return err;
}

/* connect ADDRESS PORT ...: each in turn. An ADDRESS and PORT of $NAME
 * are our environment's (the API server's Service, which the kubelet puts
 * in every container's: KUBERNETES_SERVICE_HOST and _PORT). */
static int probe_connect(char **argv) {
  bool through = false;
  for (; argv[0] && argv[1]; argv += 2) {
    const char *address = argv[0][0] == '$' ? getenv(argv[0] + 1) : argv[0];
    const char *port = argv[1][0] == '$' ? getenv(argv[1] + 1) : argv[1];
    if (!address || !port) {
      printf("connect %s port %s: not in the environment\n", argv[0], argv[1]);
      continue;
    }
    int err = connect_once(address, port);
    printf("connect %s port %s%s%s%s: %s\n", address, port, argv[0][0] == '$' ? " (" : "",
           argv[0][0] == '$' ? argv[0] : "", argv[0][0] == '$' ? ")" : "", err ? strerror(err) : "connected");
    through |= err == 0;
  }
  return refused_or_through(through);
}

/* A listening socket on every address, port chosen by the kernel: IPv6
 * taking IPv4 too, or IPv4 alone where the host has no IPv6. */
static int listen_any(int *port) {
  struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
  struct sockaddr_in in4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
  int off = 0, fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool v6 = fd >= 0 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) == 0 &&
            bind(fd, (struct sockaddr *)&in6, sizeof in6) == 0;
  if (!v6) {
    if (fd >= 0)
      close(fd);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&in4, sizeof in4) < 0)
      return fd >= 0 ? (close(fd), -1) : -1;
  }
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (listen(fd, 8) < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
    return close(fd), -1;
  *port = ntohs(((struct sockaddr_in *)&ss)->sin_port); /* the same place in both families */
  return fd;
}

/* listen SECONDS: the pod another probe tries to reach. Says its port and
 * its pod's name (the kubelet's HOSTNAME), then waits for a connection, at
 * most SECONDS: 0 when one came. */
static int probe_listen(char **argv) {
  int port = 0, fd = listen_any(&port);
  char host[256] = "";
  const char *pod = getenv("HOSTNAME");
  if (!pod || !*pod)
    pod = gethostname(host, sizeof host - 1) == 0 ? host : "";
  if (fd < 0)
    return printf("listen: %s\n", strerror(errno)), CANNOT;
  printf("listening on port %d in pod %s\n", port, pod);
  struct pollfd p = { .fd = fd, .events = POLLIN };
  int ready = poll(&p, 1, atoi(argv[0]) * 1000);
  int c = ready == 1 ? accept(fd, NULL, NULL) : -1;
  printf("%s\n", c >= 0 ? "accepted a connection" : "no connection came");
  if (c >= 0)
    close(c);
  close(fd);
  return refused_or_through(c >= 0);
}

/* memory MIB: touches MIB MiB, a MiB at a time. */
static int probe_memory(char **argv) {
  long mib = atol(argv[0]);
  for (long i = 0; i < mib; i++) {
    char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      printf("refused after %ld MiB: %s\n", i, strerror(errno));
      return REFUSED;
    }
    memset(p, 0x5a, 1 << 20);
  }
  printf("touched %ld MiB\n", mib);
  return GOT_THROUGH;
}

/* fork N: N children at once, each waiting for us to end. */
static int probe_fork(char **argv) {
  long n = atol(argv[0]), made = 0;
  pid_t parent = getpid();
  for (; made < n; made++) {
    pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent)
        _exit(0);
      pause();
      _exit(0);
    }
    if (pid < 0) {
      printf("refused after %ld processes: %s\n", made, strerror(errno));
      break;
    }
  }
  if (made == n)
    printf("%ld processes at once\n", n);
  /* the children end with us (their parent-death signal) */
  return refused_or_through(made == n);
}

/* Spins until this process has used SECONDS of CPU time. */
static void spin_until(double seconds) {
  struct timespec t;
  do {
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  } while (t.tv_sec + t.tv_nsec / 1e9 < seconds);
}

/* cpu SECONDS: spins until it has used SECONDS of CPU time. */
static int probe_cpu(char **argv) {
  double want = atof(argv[0]);
  spin_until(want);
  printf("spun %.1f s of CPU time\n", want);
  return GOT_THROUGH;
}

/* spin N MS: N processes at once, each spinning MS/N ms of CPU time: a
 * fixed amount of work, whose CPU time per wall time the engine measures
 * (the run's cgroup's count, not ours). */
static int probe_spin(char **argv) {
  long n = atol(argv[0]), ms = atol(argv[1]), made = 0;
  if (n < 1 || n > 64 || ms < 1)
    return printf("spin: N from 1 to 64, MS at least 1\n"), CANNOT;
  for (; made < n; made++) {
    pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      spin_until(ms / 1000.0 / (double)n);
      _exit(0);
    }
    if (pid < 0) {
      printf("fork: %s\n", strerror(errno));
      break;
    }
  }
  while (wait(NULL) > 0) {}
  printf("spun %ld ms of CPU time in %ld processes\n", ms * made / n, made);
  return made == n ? GOT_THROUGH : CANNOT;
}

/* outlive NAME SECONDS: a child in a session of its own named NAME, deaf to
 * SIGTERM and SIGHUP, that lives SECONDS; we say "ready" once it is there
 * and wait for the deadline. */
static int probe_outlive(char **argv) {
  int fds[2];
  if (pipe(fds) < 0)
    return CANNOT;
  pid_t pid = fork();
  if (pid == 0) {
    setsid();
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    prctl(PR_SET_NAME, argv[0]);
    if (fork() > 0) /* the grandchild, whose parent is gone: reparented */
      _exit(0);
    prctl(PR_SET_NAME, argv[0]);
    close(fds[0]);
    if (write(fds[1], "x", 1) != 1)
      _exit(2);
    close(fds[1]);
    sleep((unsigned)atoi(argv[1]));
    _exit(0);
  }
  close(fds[1]);
  char c;
  if (pid < 0 || read(fds[0], &c, 1) != 1)
    return printf("could not start the child: %s\n", strerror(errno)), CANNOT;
  waitpid(pid, NULL, 0); /* only the grandchild is left */
  printf("ready\n");
  fflush(stdout);
  sleep((unsigned)atoi(argv[1]));
  return GOT_THROUGH;
}

/* workdir MIB [hold]: writes MIB MiB into files of 1 MiB in the working
 * dir; with hold, keeps them there until the run's deadline (what a kubelet
 * that evicts for ephemeral storage needs the time to see). */
static int probe_workdir(char **argv) {
  static char block[1 << 20];
  long mib = atol(argv[0]);
  memset(block, 0x5a, sizeof block);
  for (long i = 0; i < mib; i++) {
    char name[48];
    snprintf(name, sizeof name, "esb-probe-fill-%ld", i);
    int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ssize_t n = fd < 0 ? -1 : write(fd, block, sizeof block);
    int e = errno;
    if (fd >= 0)
      close(fd);
    if (n != (ssize_t)sizeof block) {
      printf("refused after %ld MiB: %s\n", i, n < 0 ? strerror(e) : "a short write");
      return REFUSED;
    }
  }
  printf("wrote %ld MiB\n", mib);
  if (argv[1] && !strcmp(argv[1], "hold")) /* for its deadline, which ends it */
    for (;;)
      pause();
  return GOT_THROUGH;
}

/* uid [hold]: our uid on the host (read from our uid map), then, with
 * hold, stays until stdin ends. */
static int probe_uid(char **argv) {
  uid_t uid = getuid();
  unsigned long inside, outside, count, host = uid;
  FILE *f = fopen("/proc/self/uid_map", "r");
  while (f && fscanf(f, "%lu %lu %lu", &inside, &outside, &count) == 3)
    if (uid >= inside && uid - inside < count)
      host = outside + (uid - inside);
  if (f)
    fclose(f);
  printf("host uid %lu\n", host);
  fflush(stdout);
  if (argv[0] && !strcmp(argv[0], "hold"))
    while (read(0, &inside, 1) > 0) {}
  return GOT_THROUGH;
}

/* podsec: what a pod's container is, as the kernel says in our status,
 * and whether its root takes a file (an unnamed one, gone at once). */
static int probe_podsec(char **argv) {
  (void)argv;
  unsigned long uid = 0;
  int nnp = -1, seccomp = -1;
  unsigned long long cap = ~0ULL;
  char line[256];
  FILE *f = fopen("/proc/self/status", "r");
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "Uid: %lu", &uid) || sscanf(line, "NoNewPrivs: %d", &nnp) ||
        sscanf(line, "Seccomp: %d", &seccomp) || sscanf(line, "CapEff: %llx", &cap)) {}
  if (f)
    fclose(f);
  bool through = uid == 0 || nnp != 1 || seccomp < 1 || cap != 0;
  printf("uid %lu%s\n", uid, uid ? "" : " (root)");
  printf("no_new_privs %d%s\n", nnp, nnp == 1 ? "" : " (privileges may be gained)");
  printf("seccomp %d%s\n", seccomp, seccomp >= 1 ? "" : " (no filter)");
  printf("effective capabilities %016llx%s\n", cap, cap ? " (not dropped)" : "");
  int fd = open("/", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd >= 0) {
    printf("root: writable\n");
    close(fd);
    through = true;
  } else {
    printf("root: %s\n", strerror(errno));
  }
  return refused_or_through(through);
}

static const struct {
  const char *verb;
  int nargs;
  int (*probe)(char **argv);
} verbs[] = {
  { "files", 2, probe_files }, { "userns", 0, probe_userns }, { "mount", 0, probe_mount },
  { "syscalls", 1, probe_syscalls }, { "tiocsti", 0, probe_tiocsti }, { "connect", 2, probe_connect },
  { "memory", 1, probe_memory }, { "fork", 1, probe_fork }, { "cpu", 1, probe_cpu }, { "spin", 2, probe_spin },
  { "outlive", 2, probe_outlive }, { "workdir", 1, probe_workdir }, { "uid", 0, probe_uid },
  { "podsec", 0, probe_podsec }, { "listen", 1, probe_listen },
};

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (size_t i = 0; argc > 1 && i < sizeof verbs / sizeof verbs[0]; i++)
    if (!strcmp(argv[1], verbs[i].verb) && argc - 2 >= verbs[i].nargs)
      return verbs[i].probe(argv + 2);
  fprintf(stderr, "usage: echo-sandbox-probe VERB ARGS (the attacks of echo-sandbox doctor --prove)\n");
  return CANNOT;
}
