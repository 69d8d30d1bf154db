#include "dispatch/prove.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dispatch/execute.h"
#include "dispatch/job.h"
#include "codec/json.h"
#include "engine/contract/quantity.h"
#include "engine/fileio.h"
#include "engine/install_paths.h"
#include "engine/text.h"
#include "backend/k8s_command.h"

#define MiB (1024 * 1024)
/* The most memory, processes or working dir a bomb is sized to: a policy
 * that gives a run more is not the doctor's to fill. */
#define BOMB_MAX_MIB 1024
#define BOMB_MAX_PROCESSES 1024
#define PROBE_NAME "echo-sandbox-probe"
#define MAX_ARGS 32
/* A probe pod's deadline: its image pulled, scheduled and run. */
#define K8S_PROBE_MS 120000

/* What every check shares: the policy and the probe's bytes. */
struct prover {
  struct esb_policy *policy;
  const struct esb_prove_options *options;
  char *probe;
  size_t probe_len;
  char target_host[64], target_port[8]; /* options->target, split ("" where none) */
};

/* One request for the probe: program ./echo-sandbox-probe with ARGS, the
 * probe in its files. Its strings are borrowed (never released as a
 * request's). */
struct attempt {
  struct esb_request req;
  struct esb_file file;
  char program[sizeof "./" PROBE_NAME];
  char *args[MAX_ARGS + 1];
  char text[MAX_ARGS][128];
};

static void outcome(struct esb_prove_outcome *o, enum esb_prove_verdict v, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
static void outcome(struct esb_prove_outcome *o, enum esb_prove_verdict v, const char *fmt, ...) {
  o->verdict = v;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(o->detail, sizeof o->detail, fmt, ap);
  va_end(ap);
}

/* args: the probe's verb and words, NULL-terminated. */
static void attempt_init(struct attempt *a, const struct prover *p, const char *const *args) {
  *a = (struct attempt){ .req = ESB_REQUEST_INIT };
  snprintf(a->program, sizeof a->program, "./%s", PROBE_NAME);
  a->file = (struct esb_file){ .path = PROBE_NAME, .data = p->probe, .len = p->probe_len, .mode = 0755 };
  size_t n = 0;
  for (; args[n] && n < MAX_ARGS; n++) {
    snprintf(a->text[n], sizeof a->text[n], "%s", args[n]);
    a->args[n] = a->text[n];
  }
  a->req.kind = ESB_REQUEST_PROGRAM;
  a->req.program = a->program;
  a->req.args = a->args;
  a->req.nargs = n;
  a->req.backend = ESB_BACKEND_LOCAL;
  a->req.files = &a->file;
  a->req.nfiles = 1;
  a->req.timeout_ms = 10000;
}

/* The plan the policy makes of the attempt: 0, or -1 with o unproven. */
static int plan_of(const struct prover *p, const struct attempt *a, struct esb_plan *plan,
                   struct esb_prove_outcome *o) {
  struct esb_error err = ESB_ERROR_INIT;
  if (esb_policy_plan(p->policy, &a->req, plan, false, &err) == 0)
    return 0;
  outcome(o, ESB_PROVE_UNPROVEN, "the policy does not plan the probe's request: %s", err.message);
  return -1;
}

/* The run's output, its lines joined by "; ", for a detail. */
static const char *said(const struct esb_result *r, char *buf, size_t n) {
  size_t at = 0;
  for (size_t i = 0; i < r->out.len && at + 3 < n; i++) {
    char c = r->out.data[i];
    if (c != '\n')
      buf[at++] = c;
    else if (i + 1 < r->out.len)
      buf[at++] = ';', buf[at++] = ' ';
  }
  buf[at] = '\0';
  return buf;
}

/* Why the probe proves nothing: how its run ended. */
static void ended_oddly(const struct esb_result *r, struct esb_prove_outcome *o) {
  char err[256];
  snprintf(err, sizeof err, "%.*s", (int)r->err.len, r->err.data ? r->err.data : "");
  err[strcspn(err, "\n")] = '\0';
  if (r->status == ESB_STATUS_ERROR)
    outcome(o, ESB_PROVE_UNPROVEN, "the probe did not run: %s", r->error_message ? r->error_message : "an error");
  else
    outcome(o, ESB_PROVE_UNPROVEN, "the probe ended %s (exit code %d)%s%s", esb_status_name(r->status),
            r->exit_code, err[0] ? ": " : "", err);
}

/* The verdict of a probe whose exit status decides: 1 refused, 0 through. */
static void by_exit(const struct esb_result *r, struct esb_prove_outcome *o) {
  char line[ESB_PROVE_DETAIL_MAX - 64];
  if (r->status == ESB_STATUS_EXITED && (r->exit_code == 0 || r->exit_code == 1))
    outcome(o, r->exit_code ? ESB_PROVE_HELD : ESB_PROVE_FAILED, "%s%s", r->exit_code ? "" : "got through: ",
            said(r, line, sizeof line));
  else
    ended_oddly(r, o);
}

/* Runs ARGS as a request whose exit status decides. */
static void check_by_exit(const struct prover *p, const char *const *args, struct esb_prove_outcome *o) {
  struct attempt a;
  struct esb_result r = ESB_RESULT_INIT;
  attempt_init(&a, p, args);
  esb_execute(p->policy, &a.req, &r, -1, NULL, NULL);
  by_exit(&r, o);
  esb_result_release(&r);
}

static void check_user_namespace(const struct prover *p, struct esb_prove_outcome *o) {
  check_by_exit(p, (const char *const[]){ "userns", NULL }, o);
}

static void check_mount(const struct prover *p, struct esb_prove_outcome *o) {
  check_by_exit(p, (const char *const[]){ "mount", NULL }, o);
}

static void check_tiocsti(const struct prover *p, struct esb_prove_outcome *o) {
  check_by_exit(p, (const char *const[]){ "tiocsti", NULL }, o);
}

/* The filter's classes: those of the plan's profile ("none": the default's,
 * which then reach the kernel). */
static void check_syscall_filter(const struct prover *p, struct esb_prove_outcome *o) {
  struct attempt a;
  struct esb_plan plan = ESB_PLAN_INIT;
  attempt_init(&a, p, (const char *const[]){ "syscalls", "default", NULL });
  if (plan_of(p, &a, &plan, o) == 0) {
    bool strict = plan.local.seccomp == ESB_SECCOMP_STRICT;
    const char *none = plan.local.seccomp == ESB_SECCOMP_NONE ? "the policy's seccomp is \"none\"; " : "";
    esb_plan_release(&plan);
    check_by_exit(p, (const char *const[]){ "syscalls", strict ? "strict" : "default", NULL }, o);
    if (o->verdict == ESB_PROVE_FAILED && none[0]) {
      char was[ESB_PROVE_DETAIL_MAX];
      memcpy(was, o->detail, sizeof was);
      outcome(o, ESB_PROVE_FAILED, "%s%s", none, was);
    }
  }
  esb_plan_release(&plan);
}

/* Where the marker goes: a directory of the host outside every mount of
 * the plan. NULL when every candidate is inside one. */
static const char *marker_parent(const struct esb_plan *plan) {
  static const char *const candidates[] = { "/var/tmp", "/tmp", "/dev/shm", "/root" };
  for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
    bool inside = access(candidates[i], W_OK) != 0;
    for (size_t m = 0; m < plan->local.n_mounts && !inside; m++) {
      const char *host = plan->local.mounts[m].host;
      size_t len = strlen(host);
      inside = !strncmp(candidates[i], host, len) && (candidates[i][len] == '/' || !candidates[i][len] ||
                                                      (len == 1 && host[0] == '/'));
    }
    if (!inside)
      return candidates[i];
  }
  return NULL;
}

/* The marker: a directory anyone may enter and a file anyone may read and
 * write, so that only the sandbox keeps the run out (not the modes). */
static int make_marker(const char *parent, char *dir, size_t dn, char *file, size_t fn, char *secret, size_t sn) {
  snprintf(dir, dn, "%s/esb-prove-XXXXXX", parent);
  if (!mkdtemp(dir))
    return -1;
  snprintf(file, fn, "%s/marker", dir);
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  snprintf(secret, sn, "esb-prove-secret-%lx%lx", (unsigned long)t.tv_nsec, (unsigned long)getpid());
  int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0 || esb_write_all(fd, secret, strlen(secret)) < 0 || fchmod(fd, 0666) < 0 || chmod(dir, 0755) < 0) {
    if (fd >= 0)
      close(fd);
    unlink(file);
    rmdir(dir);
    return -1;
  }
  close(fd);
  return 0;
}

static void check_host_files(const struct prover *p, struct esb_prove_outcome *o) {
  struct attempt a;
  struct esb_plan plan = ESB_PLAN_INIT;
  char dir[64], file[80], secret[64];
  attempt_init(&a, p, (const char *const[]){ "files", "/", "-", NULL });
  if (plan_of(p, &a, &plan, o) < 0)
    return;
  const char *parent = marker_parent(&plan);
  esb_plan_release(&plan);
  if (!parent || make_marker(parent, dir, sizeof dir, file, sizeof file, secret, sizeof secret) < 0) {
    outcome(o, ESB_PROVE_UNPROVEN, "no marker could be made outside the policy's mounts (%s)",
            parent ? strerror(errno) : "every candidate directory is mounted");
    return;
  }
  attempt_init(&a, p, (const char *const[]){ "files", file, secret, NULL });
  struct esb_result r = ESB_RESULT_INIT;
  esb_execute(p->policy, &a.req, &r, -1, NULL, NULL);
  size_t len = 0;
  char *now = esb_read_file(file, &len);
  bool read = r.out.data && memmem(r.out.data, r.out.len, secret, strlen(secret));
  bool written = !now || len != strlen(secret) || memcmp(now, secret, len);
  free(now);
  unlink(file);
  rmdir(dir);
  char line[ESB_PROVE_DETAIL_MAX - 128];
  if (read || written)
    outcome(o, ESB_PROVE_FAILED, "the run %s%s%s the host's %s: %s", read ? "read" : "",
            read && written ? " and " : "", written ? "changed" : "", file, said(&r, line, sizeof line));
  else if (r.status == ESB_STATUS_ERROR)
    ended_oddly(&r, o);
  else
    outcome(o, ESB_PROVE_HELD, "the host's %s: %s", file, said(&r, line, sizeof line));
  esb_result_release(&r);
}

/* The doctor's listeners: one on each address of the host (up to 8),
 * whose queues say afterwards whether anything connected. */
struct listeners {
  int fd[8];
  char address[8][64];
  int port[8];
  size_t n;
};

static void listen_on(struct listeners *l, const struct sockaddr *sa) {
  socklen_t len = sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
  struct sockaddr_storage ss;
  memcpy(&ss, sa, len);
  if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_LINKLOCAL(&((struct sockaddr_in6 *)&ss)->sin6_addr))
    return; /* a connect to it needs the interface's scope */
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ((struct sockaddr_in *)&ss)->sin_port = 0; /* the same place in both families */
  if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 8) < 0 ||
      getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
    if (fd >= 0)
      close(fd);
    return;
  }
  const void *addr = sa->sa_family == AF_INET ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                                              : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
  inet_ntop(sa->sa_family, addr, l->address[l->n], sizeof l->address[l->n]);
  l->port[l->n] = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  l->fd[l->n++] = fd;
}

static void listeners_open(struct listeners *l) {
  struct ifaddrs *all = NULL;
  l->n = 0;
  if (getifaddrs(&all) < 0)
    return;
  for (struct ifaddrs *i = all; i && l->n < 8; i = i->ifa_next)
    if (i->ifa_addr && (i->ifa_addr->sa_family == AF_INET || i->ifa_addr->sa_family == AF_INET6))
      listen_on(l, i->ifa_addr);
  freeifaddrs(all);
}

/* The addresses whose listener took a connection, into buf; then closes
 * them all. Returns how many took one. */
static int listeners_close(struct listeners *l, char *buf, size_t n) {
  int reached = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < l->n; i++) {
    int c = accept4(l->fd[i], NULL, NULL, SOCK_CLOEXEC);
    if (c >= 0) {
      close(c);
      snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", reached++ ? ", " : "", l->address[i]);
    }
    close(l->fd[i]);
  }
  return reached;
}

/* The probe's words: connect to each listener, the metadata address and a
 * private one. */
static void network_args(const struct prover *p, const struct listeners *l, const char **args, char ports[][8],
                         bool with_target) {
  size_t n = 0;
  args[n++] = "connect";
  if (with_target && p->target_host[0]) {
    args[n++] = p->target_host;
    args[n++] = p->target_port;
  }
  for (size_t i = 0; i < l->n; i++) {
    snprintf(ports[i], 8, "%d", l->port[i]);
    args[n++] = l->address[i];
    args[n++] = ports[i];
  }
  static const char *const outside[] = { "169.254.169.254", "80", "10.255.255.1", "80", "fd00:ec2::254", "80" };
  for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++)
    args[n++] = outside[i];
  args[n] = NULL;
}

/* network: what the request asks. The listeners' queues decide where there
 * is one; the probe's connects elsewhere. */
static void check_network(const struct prover *p, bool network, struct esb_prove_outcome *o) {
  struct attempt a;
  struct esb_plan plan = ESB_PLAN_INIT;
  attempt_init(&a, p, (const char *const[]){ "connect", NULL });
  a.req.limits.network = network;
  if (plan_of(p, &a, &plan, o) < 0)
    return;
  bool given = plan.local.network;
  esb_plan_release(&plan);
  if (network && !given)
    return outcome(o, ESB_PROVE_NOT_APPLICABLE, "%s", "the policy gives no run the network");
  struct listeners l;
  const char *args[MAX_ARGS + 1];
  char ports[8][8], reached[600], line[ESB_PROVE_DETAIL_MAX - 700];
  listeners_open(&l);
  network_args(p, &l, args, ports, !network);
  attempt_init(&a, p, args);
  a.req.limits.network = network;
  struct esb_result r = ESB_RESULT_INIT;
  esb_execute(p->policy, &a.req, &r, -1, NULL, NULL);
  if (listeners_close(&l, reached, sizeof reached))
    outcome(o, ESB_PROVE_FAILED, "the doctor's listener on %s took a connection from the run: %s", reached,
            said(&r, line, sizeof line));
  else if (!network && given)
    outcome(o, ESB_PROVE_FAILED, "%s", "the policy gives the network to a run that asked for none");
  else
    by_exit(&r, o);
  esb_result_release(&r);
}

static void check_no_network(const struct prover *p, struct esb_prove_outcome *o) {
  check_network(p, false, o);
}

static void check_network_blocks(const struct prover *p, struct esb_prove_outcome *o) {
  check_network(p, true, o);
}

/* A bomb: the probe's verb, the request's limits, and the plan's limit
 * that sizes it (in MiB or processes): the limit, or `asked` where the plan
 * has none, and `more`; not applicable above `most`. */
struct bomb {
  const char *verb, *what, *unit;
  struct esb_limits limits;
  uint64_t (*limit)(const struct esb_plan *plan);
  uint64_t asked, more, most;
  bool k8s;                    /* in a probe pod (else the local sandbox) */
  const char *then;            /* the probe's word after the amount, or NULL */
};

static uint64_t memory_mib(const struct esb_plan *plan) { return plan->local.memory_bytes / MiB; }
static uint64_t processes(const struct esb_plan *plan) { return plan->local.limits.processes; }
static uint64_t workdir_mib(const struct esb_plan *plan) { return plan->local.workdir_size_bytes / MiB; }

/* The pod's ephemeral-storage limit in MiB, from its override
 * (spec.containers[0].resources.limits): 0 where it has none. */
static uint64_t pod_storage_mib(const struct esb_plan *plan) {
  static const char *const path[] = { "spec", "containers", NULL, "resources", "limits", "ephemeral-storage" };
  lua_State *L = plan->k8s.overrides_json ? esb_json_state() : NULL;
  struct esb_error err = ESB_ERROR_INIT;
  double bytes = 0;
  if (!L)
    return 0;
  if (esb_json_decode(L, plan->k8s.overrides_json, strlen(plan->k8s.overrides_json), &err) == 0) {
    for (size_t i = 0; i < sizeof path / sizeof path[0] && lua_istable(L, -1); i++) {
      if (path[i])
        lua_pushstring(L, path[i]);
      else
        lua_pushinteger(L, 1);
      lua_rawget(L, -2);
    }
    if (lua_type(L, -1) != LUA_TSTRING || esb_quantity_parse(lua_tostring(L, -1), &bytes) < 0)
      bytes = 0;
  }
  lua_close(L);
  return bytes > 0 ? ((uint64_t)bytes + MiB - 1) / MiB : 0;
}

static const struct bomb memory_bomb = { "memory", "memory limit", " MiB",
  { .memory_bytes = 64 * MiB, .network = -1 }, memory_mib, 64, 32, BOMB_MAX_MIB, false, NULL };
static const struct bomb process_bomb = { "fork", "process limit", "",
  { .max_processes = 16, .network = -1 }, processes, 16, 8, BOMB_MAX_PROCESSES, false, NULL };
static const struct bomb workdir_bomb = { "workdir", "working dir size", " MiB",
  { .memory_bytes = 64 * MiB, .network = -1 }, workdir_mib, 64, 8, BOMB_MAX_MIB, false, NULL };
static const struct bomb pod_memory_bomb = { "memory", "memory limit", " MiB",
  { .memory_bytes = 64 * MiB, .network = -1 }, memory_mib, 64, 32, BOMB_MAX_MIB, true, NULL };

/* Into the working dir: the writable place of a pod whose root is
 * read-only. It then waits for its deadline, which is the kubelet's time to
 * see the usage and evict the pod (its eviction manager looks every 10 s). */
static const struct bomb pod_storage_bomb = { "workdir", "ephemeral-storage limit", " MiB",
  { .memory_bytes = 64 * MiB, .network = -1 }, pod_storage_mib, 64, 8, BOMB_MAX_MIB, true, "hold" };

/* The bomb's size for the plan, and its limit in words into unit; 0 when
 * the limit is more than the doctor fills. */
static uint64_t bomb_size(const struct bomb *b, const struct esb_plan *plan, char *unit, size_t n) {
  uint64_t limit = b->limit(plan);
  if (!limit)
    snprintf(unit, n, "no %s", b->what);
  else if (limit > b->most)
    snprintf(unit, n, "the %s, %llu%s, is more than the doctor fills", b->what, (unsigned long long)limit, b->unit);
  else
    snprintf(unit, n, "%s %llu%s", b->what, (unsigned long long)limit, b->unit);
  return limit > b->most ? 0 : (limit ? limit : b->asked) + b->more;
}

/* The bomb's request, sized for the plan the policy makes of it: 0, or -1
 * with o decided (not applicable above the most it fills, unproven). */
static int bomb_attempt(const struct prover *p, const struct bomb *b, struct attempt *a, char *unit, size_t un,
                        struct esb_prove_outcome *o) {
  struct esb_plan plan = ESB_PLAN_INIT;
  char amount[32];
  attempt_init(a, p, (const char *const[]){ b->verb, "0", NULL });
  a->req.limits = b->limits;
  a->req.backend = b->k8s ? ESB_BACKEND_K8S : ESB_BACKEND_LOCAL;
  if (plan_of(p, a, &plan, o) < 0)
    return -1;
  uint64_t n = bomb_size(b, &plan, unit, un);
  esb_plan_release(&plan);
  if (!n) {
    outcome(o, ESB_PROVE_NOT_APPLICABLE, "%s", unit);
    return -1;
  }
  snprintf(amount, sizeof amount, "%llu", (unsigned long long)n);
  attempt_init(a, p, (const char *const[]){ b->verb, amount, b->then, NULL });
  a->req.limits = b->limits;
  a->req.backend = b->k8s ? ESB_BACKEND_K8S : ESB_BACKEND_LOCAL;
  a->req.timeout_ms = b->k8s ? K8S_PROBE_MS : a->req.timeout_ms;
  return 0;
}

/* The bomb against the plan of its request: the engine's OOM kill decides
 * where it saw one, the probe's exit status elsewhere. */
static void check_bomb(const struct prover *p, const struct bomb *b, struct esb_prove_outcome *o) {
  struct attempt a;
  char unit[128];
  if (bomb_attempt(p, b, &a, unit, sizeof unit, o) < 0)
    return;
  struct esb_result r = ESB_RESULT_INIT;
  esb_execute(p->policy, &a.req, &r, -1, NULL, NULL);
  if (r.status == ESB_STATUS_OOM_KILLED)
    outcome(o, ESB_PROVE_HELD, "the engine saw the run killed for memory (%s)", unit);
  else {
    by_exit(&r, o);
    size_t len = strlen(o->detail);
    snprintf(o->detail + len, sizeof o->detail - len, " (%s)", unit);
  }
  esb_result_release(&r);
}

static void check_memory_limit(const struct prover *p, struct esb_prove_outcome *o) {
  check_bomb(p, &memory_bomb, o);
}

static void check_process_limit(const struct prover *p, struct esb_prove_outcome *o) {
  check_bomb(p, &process_bomb, o);
}

static void check_workdir_size(const struct prover *p, struct esb_prove_outcome *o) {
  check_bomb(p, &workdir_bomb, o);
}

/* The kubelet's eviction decides; a probe that wrote it all and was still
 * there at its deadline got through. */
static void check_k8s_ephemeral_storage(const struct prover *p, struct esb_prove_outcome *o) {
  struct attempt a;
  char unit[128], line[ESB_PROVE_DETAIL_MAX - 256];
  if (bomb_attempt(p, &pod_storage_bomb, &a, unit, sizeof unit, o) < 0)
    return;
  struct esb_result r = ESB_RESULT_INIT;
  esb_execute(p->policy, &a.req, &r, -1, NULL, NULL);
  bool wrote = r.out.data && memmem(r.out.data, r.out.len, "wrote ", 6);
  if (r.reason && !strcmp(r.reason, "Evicted"))
    outcome(o, ESB_PROVE_HELD, "%s (%s)", r.error_message ? r.error_message : "the pod was evicted", unit);
  else if (r.status == ESB_STATUS_TIMED_OUT && wrote)
    outcome(o, ESB_PROVE_FAILED, "got through: the pod kept what it wrote until its deadline: %s (%s)",
            said(&r, line, sizeof line), unit);
  else {
    by_exit(&r, o);
    size_t len = strlen(o->detail);
    snprintf(o->detail + len, sizeof o->detail - len, " (%s)", unit);
  }
  esb_result_release(&r);
}

static void check_k8s_memory_limit(const struct prover *p, struct esb_prove_outcome *o) {
  check_bomb(p, &pod_memory_bomb, o);
}

/* The CPU time the check's probe asks, its limit, and the wall clock it
 * has: a busy host gives the probe a fraction of a core, and the wall
 * clock must hold more than the limit's CPU time even then. */
#define CPU_TIME_ASKED_SECS "3"
#define CPU_TIME_LIMIT_SECS 1
#define CPU_TIME_WALL_MS 30000

/* 3 s of CPU under a limit of 1 s: the engine's word decides. A run that
 * spun past the limit until its deadline got through as much as one that
 * finished: the engine saw it use more CPU time than it may, and did not
 * end it for that. */
static void check_cpu_time_limit(const struct prover *p, struct esb_prove_outcome *o) {
  struct attempt a;
  struct esb_result r = ESB_RESULT_INIT;
  char line[ESB_PROVE_DETAIL_MAX - 64];
  attempt_init(&a, p, (const char *const[]){ "cpu", CPU_TIME_ASKED_SECS, NULL });
  a.req.limits.cpu_time_secs = CPU_TIME_LIMIT_SECS;
  a.req.timeout_ms = CPU_TIME_WALL_MS;
  esb_execute(p->policy, &a.req, &r, -1, NULL, NULL);
  bool watched = r.status == ESB_STATUS_TIMED_OUT && r.reason && !strcmp(r.reason, "CpuTimeExceeded");
  bool xcpu = r.status == ESB_STATUS_SIGNALED && (r.signal == SIGXCPU || r.signal == SIGKILL);
  /* past the limit by more than a tick of the scheduler's accounting */
  bool spun_past = r.cpu_time_ms > CPU_TIME_LIMIT_SECS * 1000 + 100;
  if (watched || xcpu)
    outcome(o, ESB_PROVE_HELD, "the engine ended the run after %lld ms of CPU time: %s",
            (long long)r.cpu_time_ms, watched ? "CpuTimeExceeded" : strsignal(r.signal));
  else if (r.status == ESB_STATUS_EXITED && r.exit_code == 0)
    outcome(o, ESB_PROVE_FAILED, "got through: %s", said(&r, line, sizeof line));
  else if (r.status == ESB_STATUS_TIMED_OUT && spun_past)
    outcome(o, ESB_PROVE_FAILED, "got through: the run spun %lld ms of CPU time, past its limit of %d s, "
            "until its deadline", (long long)r.cpu_time_ms, CPU_TIME_LIMIT_SECS);
  else
    ended_oddly(&r, o);
  esb_result_release(&r);
}

/* The CPU rate the check asks (millicores), the CPU time it spins (ms),
 * and the margin of the rate it may show over the plan's: CFS lets a
 * period's quota run ahead, and a run's start and end count as wall time.
 * A loaded host only lowers what the run gets, with the rate or without:
 * the rate asked is low, so that a run without it still gets well above
 * the margin on a busy host (0.28 to 0.36 CPUs at a load of 16 to 18 on
 * 2 cores, where a run held to 0.05 got 0.05). */
#define CPU_RATE_ASKED 50
#define CPU_RATE_WORK_MS 300
#define CPU_RATE_MARGIN(cores) ((cores) * 1.5 + 0.05)

/* The CPU rate the plan gives the run, 0 where none: the engine's count of
 * the run's CPU time over its wall time decides. */
static void check_cpu_rate(const struct prover *p, struct esb_prove_outcome *o) {
  struct attempt a;
  struct esb_plan plan = ESB_PLAN_INIT;
  char procs[8], work[16], line[ESB_PROVE_DETAIL_MAX - 256];
  attempt_init(&a, p, (const char *const[]){ "spin", "1", "1", NULL });
  a.req.limits.cpu_millicores = CPU_RATE_ASKED;
  if (plan_of(p, &a, &plan, o) < 0)
    return;
  bool cgroup = plan.local.cgroups && plan.local.memory_bytes;
  double cores = (plan.local.cpu_millicores ? plan.local.cpu_millicores : CPU_RATE_ASKED) / 1000.0;
  bool none = !plan.local.cpu_millicores;
  esb_plan_release(&plan);
  if (!cgroup)
    return outcome(o, ESB_PROVE_NOT_APPLICABLE, "%s", "the policy's runs have no cgroup (cgroups off, or no memory "
                   "limit): nothing holds a CPU rate");
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  snprintf(procs, sizeof procs, "%ld", cpus < 1 ? 2 : cpus > 4 ? 8 : 2 * cpus);
  snprintf(work, sizeof work, "%d", CPU_RATE_WORK_MS);
  attempt_init(&a, p, (const char *const[]){ "spin", procs, work, NULL });
  a.req.limits.cpu_millicores = CPU_RATE_ASKED;
  struct esb_result r = ESB_RESULT_INIT;
  esb_execute(p->policy, &a.req, &r, -1, NULL, NULL);
  double got = r.duration_ms > 0 ? (double)r.cpu_time_ms / r.duration_ms : 0;
  said(&r, line, sizeof line);
  /* its deadline, where the rate is far below the plan's, ends a run measured too */
  bool measured = (r.status == ESB_STATUS_EXITED && r.exit_code == 0) || r.status == ESB_STATUS_TIMED_OUT;
  if (measured && r.cpu_time_ms < 0)
    outcome(o, ESB_PROVE_NOT_APPLICABLE, "%s", "no cgroup counted the run's CPU time (this host gave the run none)");
  else if (!measured)
    ended_oddly(&r, o);
  else
    outcome(o, got <= CPU_RATE_MARGIN(cores) ? ESB_PROVE_HELD : ESB_PROVE_FAILED,
            "%sthe run got %.2f CPUs (%lld ms of CPU time in %.0f ms) under %s%.2f CPUs: %s",
            got <= CPU_RATE_MARGIN(cores) ? "" : "got through: ", got, (long long)r.cpu_time_ms, r.duration_ms,
            none ? "no CPU rate, asked " : "a CPU rate of ", cores, line);
  esb_result_release(&r);
}

/* Whether process pid is still alive and no kill is on its way to it: not
 * a zombie (ended, its parent yet to reap it) nor dying, and no SIGKILL
 * pending (the engine's, sent a moment ago). Only such a process outlived
 * its run. */
static bool living(long pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%ld/status", pid);
  FILE *f = fopen(path, "re");
  if (!f)
    return false;
  bool alive = true;
  while (alive && fgets(line, sizeof line, f)) {
    unsigned long long mask;
    char state;
    if (sscanf(line, "State: %c", &state) == 1)
      alive = state != 'Z' && state != 'X' && state != 'x';
    else if (sscanf(line, "SigPnd: %llx", &mask) == 1 || sscanf(line, "ShdPnd: %llx", &mask) == 1)
      alive = !(mask & (1ull << (SIGKILL - 1)));
  }
  fclose(f);
  return alive;
}

/* Kills each process of the host named NAME (the probe's, a name no other
 * has); returns how many of them were living (above), the first's pid in
 * *first. */
static int kill_named(const char *name, long *first) {
  DIR *d = opendir("/proc");
  int found = 0;
  for (struct dirent *e; d && (e = readdir(d));) {
    char path[300], comm[32] = "";
    long pid = strtol(e->d_name, NULL, 10);
    if (pid <= 0)
      continue;
    snprintf(path, sizeof path, "/proc/%ld/comm", pid);
    FILE *f = fopen(path, "r");
    if (!f)
      continue;
    if (fgets(comm, sizeof comm, f) && !strncmp(comm, name, strlen(name)) && comm[strlen(name)] == '\n' &&
        living(pid)) {
      if (!found++)
        *first = pid;
      kill((pid_t)pid, SIGKILL);
    }
    fclose(f);
  }
  if (d)
    closedir(d);
  return found;
}

static void check_deadline(const struct prover *p, struct esb_prove_outcome *o) {
  struct attempt a;
  struct esb_result r = ESB_RESULT_INIT;
  char name[16];
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  snprintf(name, sizeof name, "esbprv%08lx", (unsigned long)(t.tv_nsec ^ getpid()) & 0xffffffffUL);
  attempt_init(&a, p, (const char *const[]){ "outlive", name, "20", NULL });
  a.req.timeout_ms = 1000;
  esb_execute(p->policy, &a.req, &r, -1, NULL, NULL);
  long pid = 0;
  int left = kill_named(name, &pid);
  bool ready = r.out.data && memmem(r.out.data, r.out.len, "ready\n", 6);
  if (left)
    outcome(o, ESB_PROVE_FAILED, "%d process%s of the run (pid %ld on the host) outlived its deadline; the doctor "
            "killed %s", left, left == 1 ? "" : "es", pid, left == 1 ? "it" : "them");
  else if (ready && r.status == ESB_STATUS_TIMED_OUT)
    outcome(o, ESB_PROVE_HELD, "the engine timed the run out after %.0f ms and nothing of it is left on the host",
            r.duration_ms);
  else
    ended_oddly(&r, o);
  esb_result_release(&r);
}

/* Two runs at once on one loop: the first says its host uid and holds its
 * own until its stdin ends; the second starts once the first has said it
 * (so both hold theirs together) and, ended, ends the first's stdin. */
struct uid_pair {
  const struct prover *p;
  struct esb_loop *loop;
  struct attempt first, second;
  struct esb_job a, b;
  int hold[2];
  bool started;
};

static void end_hold(struct uid_pair *u) {
  if (u->hold[1] >= 0)
    close(u->hold[1]);
  u->hold[1] = -1;
}

static void second_done(struct esb_job *job, void *userdata) {
  (void)job;
  end_hold(userdata);
}

static void first_said(int stream, const char *data, size_t len, void *userdata) {
  struct uid_pair *u = userdata;
  if (stream != 1 || u->started || !memchr(data, '\n', len))
    return;
  u->started = true;
  u->b.on_done = second_done;
  u->b.userdata = u;
  if (esb_job_start(&u->b, u->loop, u->p->policy, &u->second.req, NULL) < 0)
    end_hold(u);
}

static int start_first(struct esb_loop *loop, void *arg) {
  struct uid_pair *u = arg;
  u->loop = loop;
  u->a.output = (struct esb_output_sink){ .fn = first_said, .userdata = u, .fds = { -1, -1 } };
  return esb_job_start(&u->a, loop, u->p->policy, &u->first.req, NULL);
}

/* The host uid a run said, or -1. */
static long said_uid(const struct esb_result *r) {
  const char *at = r->out.data ? memmem(r->out.data, r->out.len, "host uid ", 9) : NULL;
  return at && r->status == ESB_STATUS_EXITED ? strtol(at + 9, NULL, 10) : -1;
}

static void check_per_run_uid(const struct prover *p, struct esb_prove_outcome *o) {
  if (geteuid() != 0)
    return outcome(o, ESB_PROVE_NOT_APPLICABLE, "the engine is not root: every run is its uid %u on the host",
                   (unsigned)geteuid());
  struct uid_pair *u = calloc(1, sizeof *u);
  if (!u || pipe2(u->hold, O_CLOEXEC) < 0) {
    outcome(o, ESB_PROVE_UNPROVEN, "%s", strerror(errno));
    free(u);
    return;
  }
  u->p = p;
  u->a = (struct esb_job)ESB_JOB_INIT;
  u->b = (struct esb_job)ESB_JOB_INIT;
  attempt_init(&u->first, p, (const char *const[]){ "uid", "hold", NULL });
  attempt_init(&u->second, p, (const char *const[]){ "uid", NULL });
  u->first.req.stdin_fd = u->hold[0];
  esb_loop_run_job(-1, start_first, u);
  end_hold(u);
  close(u->hold[0]);
  long a = said_uid(&u->a.result), b = said_uid(&u->b.result);
  if (a < 0 || b < 0)
    ended_oddly(a < 0 ? &u->a.result : &u->b.result, o);
  else if (a == b)
    outcome(o, ESB_PROVE_FAILED, "two runs at once were both host uid %ld", a);
  else
    outcome(o, ESB_PROVE_HELD, "two runs at once were host uids %ld and %ld", a, b);
  esb_result_release(&u->a.result);
  esb_result_release(&u->b.result);
  esb_job_release(&u->a);
  esb_job_release(&u->b);
  free(u);
}

static void check_k8s_pod_security(const struct prover *p, struct esb_prove_outcome *o) {
  struct attempt a;
  struct esb_result r = ESB_RESULT_INIT;
  attempt_init(&a, p, (const char *const[]){ "podsec", NULL });
  a.req.backend = ESB_BACKEND_K8S;
  a.req.timeout_ms = K8S_PROBE_MS;
  esb_execute(p->policy, &a.req, &r, -1, NULL, NULL);
  by_exit(&r, o);
  esb_result_release(&r);
}

/* Where the probe pods go: the namespace, context, kubeconfig and image of
 * a probe pod's plan (the policy may pick them per request), moved into k:
 * 0, or -1 with o unproven. */
static int probe_cluster(const struct prover *p, struct esb_k8s_settings *k, struct esb_prove_outcome *o) {
  struct attempt a;
  struct esb_plan plan = ESB_PLAN_INIT;
  attempt_init(&a, p, (const char *const[]){ "podsec", NULL });
  a.req.backend = ESB_BACKEND_K8S;
  if (plan_of(p, &a, &plan, o) < 0)
    return -1;
  *k = (struct esb_k8s_settings){ .namespace_ = plan.k8s.namespace_, .context = plan.k8s.context,
                                  .kubeconfig = plan.k8s.kubeconfig, .image = plan.k8s.image };
  plan.k8s.namespace_ = plan.k8s.context = plan.k8s.kubeconfig = plan.k8s.image = NULL;
  esb_plan_release(&plan);
  return 0;
}

/* kubectl's first line of stdout (or of stderr where it failed) into buf. */
static const char *first_line(const struct esb_result *r, char *buf, size_t n) {
  const struct esb_capture *b = r->status == ESB_STATUS_EXITED && r->exit_code == 0 ? &r->out : &r->err;
  snprintf(buf, n, "%.*s", (int)b->len, b->data ? b->data : "");
  buf[strcspn(buf, "\n")] = '\0';
  return buf;
}

/* Where the account may not read the namespace: the attack itself, a pod
 * that runs as root, keeps its capabilities and has no seccomp profile
 * (what "baseline" admits and "restricted" refuses), created as a
 * server-side dry run, which admission judges and nothing makes. */
static void admission_dry_run(const struct esb_k8s_settings *k, struct esb_prove_outcome *o) {
  char image[300], said_[256];
  snprintf(image, sizeof image, "--image=%s", k->image ? k->image : "debian:12-slim");
  const char *create[] = { "run", "echo-sandbox-prove-admission", image, "--restart=Never", "--dry-run=server",
                           "-o", "name", NULL };
  struct esb_result r = ESB_RESULT_INIT;
  esb_k8s_kubectl_run(k, create, K8S_PROBE_MS, &r);
  first_line(&r, said_, sizeof said_);
  bool admitted = r.status == ESB_STATUS_EXITED && r.exit_code == 0;
  bool refused = r.err.data && memmem(r.err.data, r.err.len, "violates PodSecurity", 20);
  if (admitted)
    outcome(o, ESB_PROVE_FAILED, "Pod Security not enforced: namespace %s admitted a pod that runs as root with its "
            "capabilities and no seccomp profile (a server-side dry run: the account may not read the namespace)",
            k->namespace_);
  else if (refused)
    outcome(o, ESB_PROVE_HELD, "namespace %s refused a pod that runs as root with its capabilities and no seccomp "
            "profile (a server-side dry run: the account may not read the namespace): %s", k->namespace_, said_);
  else
    outcome(o, ESB_PROVE_UNPROVEN, "the account may not read namespace %s, and a server-side dry run of a pod "
            "said: %s", k->namespace_, said_[0] ? said_ : esb_status_name(r.status));
  esb_result_release(&r);
}

/* The namespace's Pod Security admission: only "restricted" refuses a pod
 * that runs as root, keeps a capability or has no seccomp profile, whatever
 * the policy's pod_for made of the pod (deploy/namespace.yaml labels it so). */
static void check_k8s_pod_security_admission(const struct prover *p, struct esb_prove_outcome *o) {
  struct esb_k8s_settings k;
  struct esb_result r = ESB_RESULT_INIT;
  char level[256];
  if (probe_cluster(p, &k, o) < 0)
    return;
  const char *get[] = { "get", "namespace", k.namespace_, "-o",
                        "jsonpath={.metadata.labels.pod-security\\.kubernetes\\.io/enforce}", NULL };
  esb_k8s_kubectl_run(&k, get, K8S_PROBE_MS, &r);
  first_line(&r, level, sizeof level);
  if (r.status == ESB_STATUS_EXITED && r.exit_code != 0 && strstr(level, "is forbidden"))
    admission_dry_run(&k, o);
  else if (r.status != ESB_STATUS_EXITED || r.exit_code != 0)
    outcome(o, ESB_PROVE_UNPROVEN, "kubectl get namespace %s: %s", k.namespace_,
            level[0] ? level : r.error_message ? r.error_message : esb_status_name(r.status));
  else if (!strcmp(level, "restricted"))
    outcome(o, ESB_PROVE_HELD, "namespace %s enforces the Pod Security level \"restricted\"", k.namespace_);
  else if (!strcmp(level, "baseline"))
    outcome(o, ESB_PROVE_FAILED, "namespace %s enforces only the Pod Security level \"baseline\": it admits "
            "pods that run as root, keep capabilities or have no seccomp profile", k.namespace_);
  else if (level[0])
    outcome(o, ESB_PROVE_FAILED, "Pod Security not enforced: namespace %s enforces the level \"%s\"",
            k.namespace_, level);
  else
    outcome(o, ESB_PROVE_FAILED, "Pod Security not enforced: namespace %s has no "
            "pod-security.kubernetes.io/enforce label", k.namespace_);
  esb_result_release(&r);
  esb_k8s_settings_release(&k);
}

/* The API server's Service (kubernetes in default), asked of the API
 * server: its clusterIP and port into ip and port; where the account may
 * not read it, the words that make the probe read them from its
 * environment, where the kubelet puts them. */
static void api_service(const struct esb_k8s_settings *k, char *ip, size_t in, char *port, size_t pn) {
  struct esb_k8s_settings d = { .namespace_ = (char *)"default", .context = k->context, .kubeconfig = k->kubeconfig };
  const char *get[] = { "get", "service", "kubernetes", "-o", "jsonpath={.spec.clusterIP} {.spec.ports[0].port}",
                        NULL };
  struct esb_result r = ESB_RESULT_INIT;
  char line[160], a[64] = "", b[8] = "";
  esb_k8s_kubectl_run(&d, get, K8S_PROBE_MS, &r);
  bool ok = r.status == ESB_STATUS_EXITED && r.exit_code == 0 &&
            sscanf(first_line(&r, line, sizeof line), "%63[0-9a-fA-F.:] %7[0-9]", a, b) == 2;
  snprintf(ip, in, "%s", ok ? a : "$KUBERNETES_SERVICE_HOST");
  snprintf(port, pn, "%s", ok ? b : "$KUBERNETES_SERVICE_PORT");
  esb_result_release(&r);
}

/* The network check's pods, on one loop: first a listener, the pod of the
 * probe's own that the prober tries; the prober once the listener said its
 * port and pod (whose address the API server then tells), or once the
 * listener ended without; the listener's pod deleted once the prober
 * ended (it waits for a connection otherwise). */
struct pod_pair {
  const struct prover *p;
  const struct esb_k8s_settings *k;
  struct esb_loop *loop;
  const char **args;              /* the prober's words, NULL-terminated, with room for two more */
  struct attempt listener, prober;
  struct esb_job a, b;
  char heard[160];                /* the listener's first line, as it comes */
  size_t heard_len;
  char pod[64], ip[64], port[16]; /* the listener's pod, address and port, "" until known */
  char why[192];                  /* why the prober tries no pod of its own */
  bool started, listener_done;
};

static void prober_done(struct esb_job *job, void *userdata) {
  struct pod_pair *u = userdata;
  (void)job;
  if (u->listener_done || !u->pod[0])
    return;
  const char *del[] = { "delete", "pod", u->pod, "--wait=false", "--ignore-not-found", NULL };
  struct esb_result r = ESB_RESULT_INIT;
  esb_k8s_kubectl_run(u->k, del, K8S_PROBE_MS, &r);
  esb_result_release(&r);
}

static void start_prober(struct pod_pair *u) {
  size_t n = 0;
  u->started = true;
  while (u->args[n])
    n++;
  if (u->ip[0])
    u->args[n++] = u->ip, u->args[n++] = u->port, u->args[n] = NULL;
  attempt_init(&u->prober, u->p, u->args);
  u->prober.req.backend = ESB_BACKEND_K8S;
  u->prober.req.limits.network = 0;
  u->prober.req.timeout_ms = K8S_PROBE_MS;
  u->b.on_done = prober_done;
  u->b.userdata = u;
  if (esb_job_start(&u->b, u->loop, u->p->policy, &u->prober.req, NULL) < 0)
    prober_done(&u->b, u);
}

/* The listener's pod's address, asked of the API server. */
static void listener_address(struct pod_pair *u) {
  const char *get[] = { "get", "pod", u->pod, "-o", "jsonpath={.status.podIP}", NULL };
  struct esb_result r = ESB_RESULT_INIT;
  char line[160], ip[64] = "";
  esb_k8s_kubectl_run(u->k, get, K8S_PROBE_MS, &r);
  first_line(&r, line, sizeof line);
  if (r.status == ESB_STATUS_EXITED && r.exit_code == 0 && sscanf(line, "%63[0-9a-fA-F.:]", ip) == 1)
    snprintf(u->ip, sizeof u->ip, "%s", ip);
  else
    snprintf(u->why, sizeof u->why, "the address of pod %s: %.100s", u->pod, line[0] ? line : "none");
  esb_result_release(&r);
}

/* The listener's first line: "listening on port P in pod NAME". */
static void listener_said(int stream, const char *data, size_t len, void *userdata) {
  struct pod_pair *u = userdata;
  int port = 0;
  if (stream != 1 || u->started)
    return;
  len = len < sizeof u->heard - 1 - u->heard_len ? len : sizeof u->heard - 1 - u->heard_len;
  memcpy(u->heard + u->heard_len, data, len);
  u->heard[u->heard_len += len] = '\0';
  if (!strchr(u->heard, '\n') && u->heard_len < sizeof u->heard - 1)
    return;
  u->heard[strcspn(u->heard, "\n")] = '\0';
  if (sscanf(u->heard, "listening on port %d in pod %63[a-z0-9.-]", &port, u->pod) == 2 && port > 0) {
    snprintf(u->port, sizeof u->port, "%d", port);
    listener_address(u);
  } else {
    snprintf(u->why, sizeof u->why, "the pod of its own said: %s", u->heard);
  }
  start_prober(u);
}

static void listener_done(struct esb_job *job, void *userdata) {
  struct pod_pair *u = userdata;
  u->listener_done = true;
  if (u->started)
    return;
  char line[128];
  snprintf(u->why, sizeof u->why, "the pod of its own ended before it listened: %s",
           job->result.error_message ? job->result.error_message : said(&job->result, line, sizeof line));
  start_prober(u);
}

static int start_listener(struct esb_loop *loop, void *arg) {
  struct pod_pair *u = arg;
  u->loop = loop;
  u->a.output = (struct esb_output_sink){ .fn = listener_said, .userdata = u, .fds = { -1, -1 } };
  u->a.on_done = listener_done;
  u->a.userdata = u;
  return esb_job_start(&u->a, loop, u->p->policy, &u->listener.req, NULL);
}

/* Where the listener could not start: the prober alone. */
static int start_prober_alone(struct esb_loop *loop, void *arg) {
  struct pod_pair *u = arg;
  u->loop = loop;
  snprintf(u->why, sizeof u->why, "the pod of its own did not start: %s",
           u->a.result.error_message ? u->a.result.error_message : "an error");
  start_prober(u);
  return 0;
}

/* Whether ADDR PORT is one of the doctor's listeners (named apart). */
static bool is_listener(const struct listeners *l, const char *addr, const char *port) {
  for (size_t i = 0; i < l->n; i++)
    if (!strcmp(l->address[i], addr) && l->port[i] == atoi(port))
      return true;
  return false;
}

/* What the prober's lines say got through, each named, joined into buf. */
static void named_through(const struct esb_result *r, const struct pod_pair *u, const struct listeners *l,
                          const char *svc_ip, const char *svc_port, char *buf, size_t n) {
  char text[4096], *save = NULL;
  snprintf(text, sizeof text, "%.*s", (int)r->out.len, r->out.data ? r->out.data : "");
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char addr[64], port[8], what[192];
    size_t len = strlen(line);
    if (sscanf(line, "connect %63s port %7[0-9]", addr, port) != 2 || len < 11 ||
        strcmp(line + len - 11, ": connected") || is_listener(l, addr, port))
      continue;
    if (strstr(line, "($KUBERNETES_SERVICE_HOST)") || (!strcmp(addr, svc_ip) && !strcmp(port, svc_port)))
      snprintf(what, sizeof what, "the API server's Service kubernetes.default (%s port %s)", addr, port);
    else if (!strcmp(addr, u->ip) && !strcmp(port, u->port))
      snprintf(what, sizeof what, "a pod of its own, %s (%s port %s)", u->pod, addr, port);
    else if (!strcmp(addr, "169.254.169.254") || !strcmp(addr, "fd00:ec2::254"))
      snprintf(what, sizeof what, "the metadata address %s", addr);
    else
      snprintf(what, sizeof what, "%s port %s", addr, port);
    snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", buf[0] ? ", " : "", what);
  }
}

/* A pod without the network: only a NetworkPolicy that the CNI enforces
 * keeps it from the addresses it tries: the doctor's listeners, the API
 * server's Service, a pod of its own, the metadata address and
 * --prove-target. */
static void check_k8s_network_policy(const struct prover *p, struct esb_prove_outcome *o) {
  struct esb_k8s_settings k;
  if (probe_cluster(p, &k, o) < 0)
    return;
  struct listeners l;
  const char *args[MAX_ARGS + 1];
  char ports[8][8], svc_ip[64], svc_port[32], reached[300], through[600] = "", line[ESB_PROVE_DETAIL_MAX - 700];
  struct pod_pair *u = calloc(1, sizeof *u);
  if (!u)
    return outcome(o, ESB_PROVE_UNPROVEN, "%s", strerror(errno)), esb_k8s_settings_release(&k);
  api_service(&k, svc_ip, sizeof svc_ip, svc_port, sizeof svc_port);
  listeners_open(&l);
  network_args(p, &l, args, ports, true);
  size_t n = 0;
  while (args[n])
    n++;
  args[n++] = svc_ip, args[n++] = svc_port, args[n] = NULL;
  *u = (struct pod_pair){ .p = p, .k = &k, .args = args, .a = ESB_JOB_INIT, .b = ESB_JOB_INIT };
  char seconds[16];
  snprintf(seconds, sizeof seconds, "%d", 2 * K8S_PROBE_MS / 1000);
  attempt_init(&u->listener, p, (const char *const[]){ "listen", seconds, NULL });
  u->listener.req.backend = ESB_BACKEND_K8S;
  u->listener.req.limits.network = 0;
  u->listener.req.timeout_ms = 2 * K8S_PROBE_MS;
  esb_loop_run_job(-1, start_listener, u);
  if (!u->started)
    esb_loop_run_job(-1, start_prober_alone, u);
  int got = listeners_close(&l, reached, sizeof reached);
  const struct esb_result *r = &u->b.result;
  if (got)
    snprintf(through, sizeof through, "the doctor's listener on %s", reached);
  named_through(r, u, &l, svc_ip, svc_port, through, sizeof through);
  if (through[0])
    outcome(o, ESB_PROVE_FAILED, "NetworkPolicy not enforced: a pod with network: false reached %s: %s", through,
            said(r, line, sizeof line));
  else
    by_exit(r, o);
  size_t len = strlen(o->detail);
  if (u->why[0])
    snprintf(o->detail + len, sizeof o->detail - len, " (no pod of its own tried: %s)", u->why);
  esb_result_release(&u->a.result);
  esb_result_release(&u->b.result);
  esb_job_release(&u->a);
  esb_job_release(&u->b);
  free(u);
  esb_k8s_settings_release(&k);
}

/* The executor's account may not read the namespace's secrets. */
static void check_k8s_rbac(const struct prover *p, struct esb_prove_outcome *o) {
  struct esb_error err = ESB_ERROR_INIT;
  struct esb_k8s_settings k = { 0 };
  struct esb_result r = ESB_RESULT_INIT;
  if (esb_policy_cluster(p->policy, &k, &err) < 0)
    return outcome(o, ESB_PROVE_UNPROVEN, "%s", err.message);
  const char *can[] = { "auth", "can-i", "get", "secrets", NULL };
  esb_k8s_kubectl_run(&k, can, K8S_PROBE_MS, &r);
  char answer[64];
  snprintf(answer, sizeof answer, "%.*s", (int)r.out.len, r.out.data ? r.out.data : "");
  answer[strcspn(answer, "\n")] = '\0';
  if (r.status == ESB_STATUS_EXITED && r.exit_code == 0)
    outcome(o, ESB_PROVE_FAILED, "the account may get secrets in namespace %s (kubectl auth can-i: %s)",
            k.namespace_, answer);
  else if (r.status == ESB_STATUS_EXITED && !strcmp(answer, "no"))
    outcome(o, ESB_PROVE_HELD, "the account may not get secrets in namespace %s", k.namespace_);
  else
    ended_oddly(&r, o);
  esb_result_release(&r);
  esb_k8s_settings_release(&k);
}

static void (*const checks[ESB_PROVE__COUNT])(const struct prover *p, struct esb_prove_outcome *o) = {
  [ESB_PROVE_HOST_FILES] = check_host_files, [ESB_PROVE_USER_NAMESPACE] = check_user_namespace,
  [ESB_PROVE_MOUNT] = check_mount, [ESB_PROVE_SYSCALL_FILTER] = check_syscall_filter,
  [ESB_PROVE_TIOCSTI] = check_tiocsti, [ESB_PROVE_NO_NETWORK] = check_no_network,
  [ESB_PROVE_NETWORK_BLOCKS] = check_network_blocks, [ESB_PROVE_MEMORY_LIMIT] = check_memory_limit,
  [ESB_PROVE_PROCESS_LIMIT] = check_process_limit, [ESB_PROVE_CPU_TIME_LIMIT] = check_cpu_time_limit,
  [ESB_PROVE_CPU_RATE] = check_cpu_rate, [ESB_PROVE_DEADLINE] = check_deadline, [ESB_PROVE_WORKDIR_SIZE] = check_workdir_size,
  [ESB_PROVE_PER_RUN_UID] = check_per_run_uid, [ESB_PROVE_K8S_NETWORK_POLICY] = check_k8s_network_policy,
  [ESB_PROVE_K8S_POD_SECURITY] = check_k8s_pod_security, [ESB_PROVE_K8S_MEMORY_LIMIT] = check_k8s_memory_limit,
  [ESB_PROVE_K8S_POD_SECURITY_ADMISSION] = check_k8s_pod_security_admission,
  [ESB_PROVE_K8S_EPHEMERAL_STORAGE] = check_k8s_ephemeral_storage,
  [ESB_PROVE_K8S_RBAC] = check_k8s_rbac,
};

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* options->target, "HOST:PORT" or "[V6]:PORT", into p: 0, or -1. */
static int split_target(struct prover *p, const char *target) {
  const char *colon = target ? strrchr(target, ':') : NULL;
  if (!target)
    return 0;
  if (!colon || colon == target || !colon[1] || strlen(colon + 1) >= sizeof p->target_port)
    return -1;
  bool v6 = target[0] == '[' && colon[-1] == ']';
  snprintf(p->target_host, sizeof p->target_host, "%.*s", (int)(colon - target) - 2 * v6, target + v6);
  snprintf(p->target_port, sizeof p->target_port, "%s", colon + 1);
  return 0;
}

/* Why a check is not run or not applicable here (*v says which): NULL
 * when it runs. */
static const char *skipped(const struct esb_prove_options *opts, int i, enum esb_prove_verdict *v) {
  *v = ESB_PROVE_NOT_RUN;
  if (opts->quick && !esb_prove_checks[i].quick)
    return "";
  *v = ESB_PROVE_NOT_APPLICABLE;
  if (esb_prove_checks[i].k8s && opts->k8s_skipped)
    return opts->k8s_skipped;
  return NULL;
}

void esb_prove(struct esb_policy *policy, const struct esb_prove_options *opts, struct esb_prove_outcome *out) {
  char path[4096];
  const char *libexec = esb_install_dir(ESB_DIR_LIBEXEC);
  snprintf(path, sizeof path, "%s/%s", libexec ? libexec : ".", PROBE_NAME);
  struct prover p = { .policy = policy, .options = opts };
  p.probe = esb_read_file(path, &p.probe_len);
  int missing = errno;
  bool bad_target = split_target(&p, opts->target) < 0;
  for (int i = 0; i < ESB_PROVE__COUNT; i++) {
    struct esb_prove_outcome *o = &out[i];
    *o = (struct esb_prove_outcome){ .verdict = ESB_PROVE_NOT_RUN };
    const char *why = skipped(opts, i, &o->verdict);
    double start = now_ms();
    if (why)
      snprintf(o->detail, sizeof o->detail, "%s", why);
    else if (!p.probe)
      outcome(o, ESB_PROVE_UNPROVEN, "no probe to run: %s: %s", path, strerror(missing));
    else if (bad_target && esb_prove_checks[i].k8s)
      outcome(o, ESB_PROVE_UNPROVEN, "the probe target %s is not HOST:PORT", opts->target);
    else
      checks[i](&p, o);
    o->duration_ms = why ? 0 : now_ms() - start;
  }
  free(p.probe);
}

bool esb_prove_any_failed(const struct esb_prove_outcome *out) {
  for (int i = 0; i < ESB_PROVE__COUNT; i++)
    if (out[i].verdict == ESB_PROVE_FAILED || out[i].verdict == ESB_PROVE_UNPROVEN)
      return true;
  return false;
}

/* s as a JSON string at buf + *at (within n). */
static void json_string(char *buf, size_t n, size_t *at, const char *s) {
#define PUT(...) (*at += (size_t)snprintf(buf + (*at < n ? *at : n), *at < n ? n - *at : 0, __VA_ARGS__))
  PUT("\"");
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    if (*c == '"' || *c == '\\')
      PUT("\\%c", *c);
    else if (*c < 0x20)
      PUT("\\u%04x", *c);
    else
      PUT("%c", *c);
  }
  PUT("\"");
#undef PUT
}

size_t esb_prove_json(const struct esb_prove_outcome *out, char *buf, size_t n) {
  size_t at = 0;
  int failed = 0;
#define PUT(...) (at += (size_t)snprintf(buf + (at < n ? at : n), at < n ? n - at : 0, __VA_ARGS__))
  PUT("{\"checks\": [");
  for (int i = 0, first = 1; i < ESB_PROVE__COUNT; i++) {
    if (out[i].verdict == ESB_PROVE_NOT_RUN)
      continue;
    failed += out[i].verdict == ESB_PROVE_FAILED || out[i].verdict == ESB_PROVE_UNPROVEN;
    PUT("%s{\"name\": \"%s\", \"backend\": \"%s\", \"verdict\": \"%s\", \"detail\": ", first ? "" : ", ",
        esb_prove_checks[i].name, esb_prove_checks[i].k8s ? "k8s" : "local", esb_prove_verdict_name(out[i].verdict));
    char clean[3 * ESB_PROVE_DETAIL_MAX + 1]; /* the probe's bytes, which a program could make any */
    clean[esb_utf8_scrub(out[i].detail, strlen(out[i].detail), clean)] = '\0';
    json_string(buf, n, &at, clean);
    PUT(", \"attack\": ");
    json_string(buf, n, &at, esb_prove_checks[i].attack);
    PUT(", \"held_when\": ");
    json_string(buf, n, &at, esb_prove_checks[i].held);
    PUT(", \"duration_ms\": %.1f}", out[i].duration_ms);
    first = 0;
  }
  PUT("], \"failed\": %d}", failed);
#undef PUT
  if (n)
    buf[at < n ? at : n - 1] = '\0';
  return at;
}
