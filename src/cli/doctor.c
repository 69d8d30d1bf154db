/* echo-sandbox doctor: is this machine ready to run sandboxes? */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "backend/k8s_command.h"
#include "backend/local.h"
#include "backend/netstack.h"
#include "backend/kubectl_words.h"
#include "engine/cgroup.h"
#include "engine/fileio.h"
#include "engine/contract/result.h"
#include "engine/sandbox/rootfs.h"
#include "engine/runtime/uid_slot.h"
#include "policy/policy.h"
#include "backend/k8s.h"
#include "cli/cli.h"
#include "cli/warm_check.h"
#include "dispatch/prove.h"
#include "luaglue/call.h"
#include "luaglue/embedded.h"
#include "codec/json.h"

static const char doctor_usage[] =
  "usage: echo-sandbox doctor [--policy FILE] [--local-only]\n"
  "                           [--prove [--quick] [--json] [--k8s] [--prove-target HOST:PORT]]\n"
  "\n"
  "Checks, and prints each check: the policy file, kubectl and its version, that\n"
  "the cluster answers, the current context and the policy's namespace, that\n"
  "RBAC lets us create pods and pods/attach, get and delete pods, that a\n"
  "NetworkPolicy selects echo-sandbox.io/network=none (a warning when none\n"
  "does), and which isolation the local sandbox achieves. Exits 1 when a check\n"
  "fails. A Kubernetes check that does not pass fails only when the policy\n"
  "sends requests that name no backend to k8s; else it is a warning (only\n"
  "requests that ask for k8s need the cluster). --local-only skips them.\n"
  "\n"
  "--prove runs the attacks of the security model instead, each a request the\n"
  "policy plans and the local sandbox runs, and prints for each defence: held,\n"
  "failed (what got through), not_applicable (why) or unproven (the attack\n"
  "could not be made). Exits 1 when one failed or is unproven. The Kubernetes\n"
  "checks (a probe pod each) run where the policy sends requests that name no\n"
  "backend to k8s, or with --k8s, unless --local-only.\n"
  "\n"
  "options:\n"
  "  --local-only     only the local checks: no kubectl, no cluster\n"
  "  --policy FILE    load this policy instead of the default search\n"
  "  --prove          run the attacks against the policy and the local sandbox\n"
  "  --quick          with --prove: only the checks that take milliseconds\n"
  "  --json           with --prove: one JSON object instead of lines\n"
  "  --k8s            with --prove: the probe pods too, whatever the policy's backend\n"
  "  --prove-target HOST:PORT  with --prove: an address (a public one) that a pod\n"
  "                   without the network must not reach either\n"
  "  -h, --help       show this help\n";

struct tally {
  int failed, warned;
};

static void report(struct tally *t, const char *level, const char *what, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));
static void report(struct tally *t, const char *level, const char *what, const char *fmt, ...) {
  if (!strcmp(level, "FAIL")) t->failed++;
  if (!strcmp(level, "warn")) t->warned++;
  printf("%-5s %-14s ", level, what);
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
}

/* The first line of a capture, for messages. */
static const char *first_line(const struct esb_capture *c, char *buf, size_t n) {
  snprintf(buf, n, "%.*s", (int)c->len, c->data ? c->data : "");
  buf[strcspn(buf, "\n")] = '\0';
  return buf;
}

#define KUBECTL_CHECK_MS 15000

static bool kubectl_ok(const struct esb_k8s_settings *k, const char *const *tail, struct esb_result *r) {
  esb_result_release(r);
  esb_k8s_kubectl_run(k, tail, KUBECTL_CHECK_MS, r);
  return r->status == ESB_STATUS_EXITED && r->exit_code == 0;
}

/* Why a kubectl check failed: kubectl's first line of its own words (klog
 * lines left out), or that it did not answer at all. */
static const char *why_failed(struct esb_result *r, char *buf, size_t n) {
  if (r->status == ESB_STATUS_TIMED_OUT) {
    snprintf(buf, n, "kubectl did not answer within %d s (a hung kubectl, or an API server that takes "
             "connections and never answers)", KUBECTL_CHECK_MS / 1000);
    return buf;
  }
  if (r->status == ESB_STATUS_ERROR)
    return r->error_message ? r->error_message : "kubectl could not be run";
  if (r->err.data)
    r->err.len = esb_kubectl_strip_own_lines(r->err.data, r->err.len);
  first_line(&r->err, buf, n);
  if (!buf[0])
    snprintf(buf, n, "kubectl exited with %d and said nothing", r->exit_code);
  return buf;
}

/* Runs protected: decodes the NetworkPolicyList (1) and pushes
 * kube.has_network_policy of it. */
static int network_policy_in(lua_State *L) {
  esb_lua_embedded_require(L, "echo_sandbox.engine.kube");
  lua_getfield(L, -1, "has_network_policy");   /* text, kube, has_network_policy */
  esb_json_field(L, "decode");
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);                           /* text, kube, has_network_policy, list */
  lua_call(L, 1, 1);                           /* text, kube, found */
  return 1;
}

/* Does some NetworkPolicy's podSelector pick echo-sandbox.io/network=none? */
static bool has_network_policy(const char *json, size_t len) {
  lua_State *L = esb_json_state();
  if (!L)
    return false;
  struct esb_error err;
  lua_pushcfunction(L, network_policy_in);
  lua_pushlstring(L, json, len);
  bool found = esb_lua_pcall(L, 1, 1, ESB_LUA_MESSAGE, ESB_E_BACKEND, NULL, &err) == 0 && lua_toboolean(L, -1);
  lua_close(L);
  return found;
}

/* The smallest ResourceQuota on pods of the namespace, or -1 where none
 * says one (or the quotas cannot be read: nothing to tell). */
static long pods_quota(const struct esb_k8s_settings *cluster, char *ns, struct esb_result *r) {
  struct esb_k8s_settings k = *cluster;
  k.namespace_ = ns;
  const char *get[] = {"get", "resourcequotas", "-o", "jsonpath={range .items[*]}{.spec.hard.pods}{\"\\n\"}{end}",
                       "--request-timeout=10s", NULL};
  long least = -1;
  if (!kubectl_ok(&k, get, r) || !r->out.data)
    return -1;
  for (const char *at = r->out.data; at < r->out.data + r->out.len; at += strcspn(at, "\n") + 1) {
    char *end;
    long pods = strtol(at, &end, 10);
    if (end != at && (*end == '\n' || !*end) && pods >= 0 && (least < 0 || pods < least))
      least = pods;
  }
  return least;
}

/* Pools larger, together, than their namespace's quota on pods: the
 * maintainer's creates past it fail, and so do the cold runs' own pods. */
static void check_pool_quotas(const struct esb_warm_pool *pools, size_t n, const struct esb_k8s_settings *k,
                              struct tally *t, struct esb_result *r) {
  for (size_t i = 0; i < n; i++) {
    bool first = true;
    uint64_t sum = 0;
    for (size_t j = 0; j < n; j++) {
      first &= j >= i || strcmp(pools[j].namespace_, pools[i].namespace_) != 0;
      if (!strcmp(pools[j].namespace_, pools[i].namespace_))
        sum += pools[j].size;
    }
    long quota = first ? pods_quota(k, pools[i].namespace_, r) : -1;
    if (quota >= 0 && sum > (uint64_t)quota)
      report(t, "warn", "warm pools", "their sizes in namespace %s come to %" PRIu64 " pods, past its "
             "ResourceQuota of %ld pods: the pools never fill, and runs' own pods are refused", pools[i].namespace_,
             sum, quota);
  }
}

static void warn_unreached(const char *pool, size_t tried, void *userdata) {
  char words[512];
  esb_cli_unreached_words(pool, tried, words, sizeof words);
  report(userdata, "warn", "warm pools", "%s", words);
}

/* With warm pools, the claim of a pod is a patch of it (doc/warm-pods.md):
 * an account without it makes every run's pod, and says so in a warning. */
static void check_warm_pools(struct esb_policy *policy, const struct esb_k8s_settings *k, struct tally *t,
                             struct esb_result *r) {
  const struct esb_warm_pool *pools;
  size_t n = esb_policy_warm_pools(policy, &pools);
  if (n == 0)
    return;
  const char *can[] = {"auth", "can-i", "patch", "pods", NULL};
  bool yes = kubectl_ok(k, can, r);
  report(t, yes ? "ok" : "warn", "rbac", "%s patch pods (the claims of the policy's %zu warm pool%s%s)",
         yes ? "may" : "may not", n, n == 1 ? "" : "s", yes ? "" : ": every run makes its own pod");
  check_pool_quotas(pools, n, k, t, r);
  struct esb_error err;
  if (esb_cli_unreached_pools(policy, warn_unreached, t, &err) < 0)
    report(t, "warn", "warm pools", "%s", err.message);
}

/* fail: the level of a check that does not pass ("FAIL", or "warn" when the
 * policy does not send requests to k8s by itself). */
static void check_kubernetes(struct esb_policy *policy, struct tally *t, const char *fail) {
  struct esb_error err;
  char line[ESB_MESSAGE_MAX];
  struct esb_k8s_settings cluster = { 0 };
  struct esb_result r = ESB_RESULT_INIT;
  if (esb_policy_cluster(policy, &cluster, &err) < 0) {
    report(t, fail, "policy (k8s)", "%s", err.message);
    return;
  }
  const struct esb_k8s_settings *k = &cluster;
  const char *client[] = {"version", "--client", NULL};
  if (!kubectl_ok(NULL, client, &r)) {
    report(t, fail, "kubectl", "%s", why_failed(&r, line, sizeof line));
    goto out;
  }
  report(t, "ok", "kubectl", "%s: %s", esb_k8s_kubectl(), first_line(&r.out, line, sizeof line));
  const char *context[] = {"config", "current-context", NULL};
  if (k->context)
    report(t, "ok", "context", "%s (from the policy)", k->context);
  else if (kubectl_ok(k, context, &r))
    report(t, "ok", "context", "%s", first_line(&r.out, line, sizeof line));
  else
    report(t, fail, "context", "%s", why_failed(&r, line, sizeof line));
  const char *server[] = {"version", "--request-timeout=5s", NULL};
  if (!kubectl_ok(k, server, &r)) {
    report(t, fail, "cluster", "does not answer: %s", why_failed(&r, line, sizeof line));
    goto out;
  }
  const char *sv = r.out.data ? strstr(r.out.data, "Server Version") : NULL;
  snprintf(line, sizeof line, "%.*s", sv ? (int)strcspn(sv, "\n") : 8, sv ? sv : "answers");
  report(t, "ok", "cluster", "%s", line);
  report(t, "ok", "namespace", "%s", k->namespace_);
  static const char *const rights[][2] = {
    {"create", "pods"}, {"create", "pods/attach"}, {"get", "pods"}, {"delete", "pods"}};
  for (size_t i = 0; i < sizeof rights / sizeof rights[0]; i++) {
    const char *can[] = {"auth", "can-i", rights[i][0], rights[i][1], NULL};
    bool yes = kubectl_ok(k, can, &r);
    report(t, yes ? "ok" : fail, "rbac", "%s %s %s", yes ? "may" : "may not", rights[i][0], rights[i][1]);
  }
  check_warm_pools(policy, k, t, &r);
  const char *netpol[] = {"get", "networkpolicies", "-o", "json", "--request-timeout=10s", NULL};
  if (!kubectl_ok(k, netpol, &r))
    report(t, "warn", "networkpolicy", "cannot list NetworkPolicies: %s", why_failed(&r, line, sizeof line));
  else if (has_network_policy(r.out.data ? r.out.data : "", r.out.len))
    report(t, "ok", "networkpolicy", "%s", "one selects echo-sandbox.io/network=none");
  else
    report(t, "warn", "networkpolicy", "%s",
           "none selects echo-sandbox.io/network=none: pods without network are not isolated "
           "(apply deploy/networkpolicy.yaml)");
out:
  esb_result_release(&r);
  esb_k8s_settings_release(&cluster);
}

/* How the local backend will enforce the memory, process and CPU limits:
 * by making a cgroup as a run would. */
static void check_limits(const struct esb_plan *plan, struct tally *t) {
  char detail[ESB_MESSAGE_MAX];
  struct esb_error err = ESB_ERROR_INIT;
  struct esb_cgroup cg = ESB_CGROUP_INIT;
  struct esb_cgroup_limits limits = { .memory_bytes = plan->local.memory_bytes,
                                      .max_pids = plan->local.limits.processes,
                                      .cpu_millicores = plan->local.cpu_millicores,
                                      .count_cpu = plan->local.limits.cpu_secs != 0 };
  if (!plan->local.cgroups) {
    report(t, "ok", "limits", "%s", "memory by RLIMIT_AS, processes by RLIMIT_NPROC, no CPU rate limit, CPU "
           "time per process by RLIMIT_CPU (the policy turned cgroups off)");
  } else if (esb_cgroup_create(&cg, &limits, &err) == 0) {
    struct esb_cgroup_host host;
    esb_cgroup_setup(&host);
    esb_cgroup_describe(&host, detail, sizeof detail);
    if (limits.count_cpu && !esb_cgroup_counts_cpu(&cg))
      snprintf(detail + strlen(detail), sizeof detail - strlen(detail), "; CPU time per process by RLIMIT_CPU "
               "(no cpuacct counts the run's)");
    report(t, "ok", "limits", "%s", detail);
  } else {
    report(t, "warn", "limits", "memory by RLIMIT_AS (address space), processes by RLIMIT_NPROC, no CPU rate "
           "limit, CPU time per process by RLIMIT_CPU, as no cgroup can be made: %s; runtimes that reserve much "
           "(node, java) need a larger memory limit", err.message);
  }
  esb_cgroup_destroy(&cg);
}

/* Whether CAP_SYS_ADMIN is in our effective set (CapEff of our status). */
static bool has_cap_sys_admin(void) {
  size_t len;
  char *status = esb_read_file("/proc/self/status", &len);
  const char *line = status ? strstr(status, "\nCapEff:") : NULL;
  bool has = line && (strtoull(line + 8, NULL, 16) >> 21 & 1); /* CAP_SYS_ADMIN is 21 */
  free(status);
  return has;
}

/* Whether this kernel takes a run's packet filter (engine/sandbox/netrules.h: an
 * nf_tables chain with its fib expression), tried in a network namespace
 * of a child's own. 0, or the errno the kernel answered. */
static int filter_refused(void) {
  int fds[2], err = 0;
  if (pipe(fds) < 0)
    return errno;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    if (unshare(CLONE_NEWNET) < 0 && unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0)
      err = 0; /* no namespace here to try: the runs say why they fail */
    else if (esb_netrules_apply(NULL, 0) < 0)
      err = errno;
    _exit(write(fds[1], &err, sizeof err) == sizeof err ? 0 : 1);
  }
  close(fds[1]);
  if (pid < 0 || read(fds[0], &err, sizeof err) != sizeof err)
    err = pid < 0 ? errno : 0;
  close(fds[0]);
  if (pid > 0)
    waitpid(pid, NULL, 0);
  return err;
}

/* network: true: what pasta runs as (backend/netstack.h), and whether the
 * kernel takes the run's packet filter. */
static void check_network(const struct esb_plan *plan, struct tally *t) {
  char detail[ESB_MESSAGE_MAX];
  int refused = filter_refused();
  if (refused) {
    report(t, "warn", "network", "network: true runs fail: the kernel refuses the packet filter (nf_tables with "
           "its fib expression, CONFIG_NF_TABLES_INET and CONFIG_NFT_FIB_INET): %s", strerror(refused));
    return;
  }
  const struct esb_local_settings *ls = &plan->local;
  /* A run's host ids: the first of the policy's range stands for them all. */
  bool own = geteuid() == 0 && ls->uid_count && esb_uid_slot_usable(ls->uid_first, ls->uid_count);
  uid_t uid = own ? (uid_t)ls->uid_first : ls->uid;
  gid_t gid = own ? (gid_t)ls->uid_first : ls->gid;
  if (geteuid() != 0)
    snprintf(detail, sizeof detail, "pasta runs as uid %u (ours)", (unsigned)geteuid());
  else if (esb_netstack_unprivileged(uid, gid))
    snprintf(detail, sizeof detail, "pasta runs as the run's own uid (%u for the first), not root", (unsigned)uid);
  else if (own && !has_cap_sys_admin()) {
    /* Root without CAP_SYS_ADMIN (a unit's bounding set) cannot enter the
     * namespaces the run's uid owns: every network: true run would fail. */
    report(t, "warn", "network", "network: true runs fail: /dev/net/tun is not open to the run's uid %u (udev "
           "makes it 0666), and pasta as root needs CAP_SYS_ADMIN, which this engine lacks", (unsigned)uid);
    return;
  } else
    snprintf(detail, sizeof detail, "pasta runs as root: /dev/net/tun is not open to the run's uid %u (udev "
             "makes it 0666)", (unsigned)uid);
  /* Said, not warned: the program is kept out of the host's addresses
   * either way, and this is how a container's /dev often is. */
  report(t, "ok", "network", "%s", detail);
}

/* Whose per-user kernel counters a run charges, and whom it could signal:
 * a host uid of its own per run (engine/runtime/uid_slot.h), or one shared. */
static void check_host_uids(const struct esb_plan *plan, struct tally *t) {
  const struct esb_local_settings *ls = &plan->local;
  uid_t me = geteuid();
  if (me != 0) {
    report(t, "warn", "host uids", "every run is this user's (uid %u) on the host: the runs share its per-user "
           "kernel counters (inotify instances, message queues, processes) with each other and with its own "
           "processes, and can signal each other; a host uid per run needs the engine to run as root "
           "(echo-sandbox does not use newuidmap and an /etc/subuid range)", (unsigned)me);
  } else if (!ls->uid_count) {
    report(t, "warn", "host uids", "every run is uid %u on the host (the policy's local.uid_range is false): "
           "the runs share its per-user kernel counters and can signal each other", (unsigned)ls->uid);
  } else if (!esb_uid_slot_usable(ls->uid_first, ls->uid_count)) {
    report(t, "warn", "host uids", "this engine's user namespace does not map the policy's uid_range "
           "(%llu from %llu): every run is uid %u on the host, sharing its per-user kernel counters",
           (unsigned long long)ls->uid_count, (unsigned long long)ls->uid_first, (unsigned)ls->uid);
  } else {
    report(t, "ok", "host uids", "each live run has a host uid of its own, %llu..%llu (%llu at once), which "
           "owns its user namespace: per-user kernel counters are the run's own, and runs cannot signal "
           "each other", (unsigned long long)ls->uid_first,
           (unsigned long long)(ls->uid_first + ls->uid_count - 1), (unsigned long long)ls->uid_count);
  }
}

/* Whether each run reads the policy's read-only mounts through overlays of
 * its own (engine/sandbox/rootfs.h): where the kernel refuses one, runs bind the
 * host's directory and share its inodes, and nothing else would say so. */
static void check_overlays(const struct esb_plan *plan, struct tally *t) {
  struct esb_sandbox sb;
  esb_local_sandbox_for(plan, false, &sb);
  if (!(sb.namespaces & ESB_NS_MOUNT) || geteuid() != 0)
    return; /* no root of its own; or not ours to probe (it needs CAP_SYS_ADMIN) */
  struct esb_rootfs fs = { 0 };
  struct esb_error err = ESB_ERROR_INIT;
  char refused[4096];
  if (esb_rootfs_plan(&sb, &fs, &err) < 0) {
    report(t, "warn", "overlays", "%s", err.message);
    return;
  }
  int made = esb_rootfs_probe_overlays(&fs, refused, sizeof refused);
  if (made < 0)
    report(t, "warn", "overlays", "the kernel refuses a read-only overlay of %s (%s): runs bind the host's "
           "directory instead, and see each other's and the host's file activity there (inotify events, "
           "locks)", refused, strerror(errno));
  else
    report(t, "ok", "overlays", "each run reads the policy's read-only mounts through %d overlays of its "
           "own: its inotify watches and locks there meet no other run's nor the host's", made);
  esb_rootfs_release(&fs);
}

/* The policy's plan for /bin/true on backend (AUTO: the one the policy picks). */
/* 0, or -1 with *err. */
static int plan_true(struct esb_policy *policy, enum esb_backend backend, struct esb_plan *plan,
                     struct esb_error *err) {
  char program[] = "/bin/true"; /* borrowed: req is not released */
  struct esb_request req = ESB_REQUEST_INIT;
  req.kind = ESB_REQUEST_PROGRAM;
  req.program = program;
  req.backend = backend;
  return esb_policy_plan(policy, &req, plan, false, err);
}

static void check_local(struct esb_policy *policy, struct tally *t) {
  struct esb_error err = ESB_ERROR_INIT;
  struct esb_plan plan = ESB_PLAN_INIT;
  if (plan_true(policy, ESB_BACKEND_LOCAL, &plan, &err) < 0) {
    report(t, "FAIL", "local", "%s", err.message);
    esb_plan_release(&plan);
    return;
  }
  plan.backend = ESB_BACKEND_LOCAL;
  struct esb_result r = ESB_RESULT_INIT;
  check_limits(&plan, t);
  check_network(&plan, t);
  check_host_uids(&plan, t);
  check_overlays(&plan, t);
  esb_local_run_plan(&plan, &r, -1);
  if (r.status == ESB_STATUS_EXITED && r.exit_code == 0) {
    report(t, strcmp(r.isolation, "namespaces") ? "warn" : "ok", "local",
           "/bin/true ran with isolation \"%s\" and seccomp profile \"%s\" in %.1f ms", r.isolation,
           esb_seccomp_profile_name(plan.local.seccomp), r.duration_ms);
    const char *init = esb_init_program();
    if (init)
      report(t, "ok", "sandbox init", "%s starts each sandbox of batch and serve", init);
    else
      report(t, "warn", "sandbox init", "%s", "echo-sandbox-init is not installed (or ECHO_SANDBOX_INIT=none): "
             "each sandbox is cloned from the engine itself, which costs a busy batch or daemon more");
  } else {
    report(t, "FAIL", "local", "%s", r.error_message ? r.error_message : "/bin/true failed");
  }
  esb_result_release(&r);
  esb_plan_release(&plan);
}

struct doctor_args {
  const char *policy_path, *target;
  bool local_only, proving, quick, json, k8s;
};

/* Fills a: 0; 1 after --help; 125 after a message on stderr. */
static int parse_args(int argc, char **argv, struct doctor_args *a) {
  static const struct option longopts[] = {
    {"policy", required_argument, 0, 'p'}, {"local-only", no_argument, 0, 'l'},
    {"prove", no_argument, 0, 'P'}, {"quick", no_argument, 0, 'q'}, {"json", no_argument, 0, 'j'},
    {"k8s", no_argument, 0, 'k'}, {"prove-target", required_argument, 0, 't'},
    {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  optind = 1;
  opterr = 0;
  for (int c; (c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1;) {
    switch (c) {
    case 'p': a->policy_path = optarg; break;
    case 'l': a->local_only = true; break;
    case 'P': a->proving = true; break;
    case 'q': a->quick = true; break;
    case 'j': a->json = true; break;
    case 'k': a->k8s = true; break;
    case 't': a->target = optarg; break;
    case 'h': fputs(doctor_usage, stdout); return 1;
    default:
      fprintf(stderr, "echo-sandbox doctor: unknown or incomplete option '%s'\n%s", argv[optind - 1], doctor_usage);
      return 125;
    }
  }
  if ((a->quick || a->json || a->k8s || a->target) && !a->proving) {
    fprintf(stderr, "echo-sandbox doctor: --quick, --json, --k8s and --prove-target go with --prove\n%s",
            doctor_usage);
    return 125;
  }
  return 0;
}

/* Why the Kubernetes checks do not run, or NULL when they do. */
static const char *k8s_skipped(struct esb_policy *policy, const struct doctor_args *a) {
  struct esb_error err = ESB_ERROR_INIT;
  struct esb_plan plan = ESB_PLAN_INIT;
  bool k8s = a->k8s || (plan_true(policy, ESB_BACKEND_AUTO, &plan, &err) == 0 && plan.backend == ESB_BACKEND_K8S);
  esb_plan_release(&plan);
  if (a->local_only)
    return "--local-only";
  return k8s ? NULL : "the policy runs requests that name no backend locally (--k8s proves the cluster too)";
}

/* doctor --prove: the checks' lines (or JSON); 1 when one failed. */
static int prove(struct esb_policy *policy, const struct doctor_args *a) {
  struct esb_prove_outcome out[ESB_PROVE__COUNT];
  struct esb_prove_options opts = { .quick = a->quick, .k8s_skipped = k8s_skipped(policy, a), .target = a->target };
  esb_prove(policy, &opts, out);
  bool failed = esb_prove_any_failed(out);
  if (a->json) {
    size_t n = esb_prove_json(out, NULL, 0) + 1;
    char *buf = malloc(n);
    if (!buf)
      return 1;
    esb_prove_json(out, buf, n);
    puts(buf);
    free(buf);
    return failed;
  }
  for (int i = 0; i < ESB_PROVE__COUNT; i++)
    if (out[i].verdict != ESB_PROVE_NOT_RUN)
      printf("%-14s %-18s %s\n", esb_prove_verdict_name(out[i].verdict), esb_prove_checks[i].name, out[i].detail);
  return failed;
}

int esb_cli_doctor(int argc, char **argv) {
  struct doctor_args a = { 0 };
  int parsed = parse_args(argc, argv, &a);
  if (parsed)
    return parsed == 1 ? 0 : parsed;
  struct tally t = { 0, 0 };
  struct esb_error err = ESB_ERROR_INIT;
  struct esb_policy *policy = esb_policy_open(a.policy_path, &err);
  if (policy && a.proving) {
    int failed = prove(policy, &a);
    esb_policy_close(policy);
    return failed;
  }
  if (!policy) {
    report(&t, "FAIL", "policy", "%s", err.message);
    return 1;
  }
  report(&t, "ok", "policy", "%s", esb_policy_path(policy));
  struct esb_plan plan = ESB_PLAN_INIT;
  enum esb_backend backend = ESB_BACKEND_LOCAL;
  if (plan_true(policy, ESB_BACKEND_AUTO, &plan, &err) == 0)
    backend = plan.backend;
  esb_plan_release(&plan);
  bool k8s = backend == ESB_BACKEND_K8S;
  report(&t, "ok", "backend", "%s", k8s ? "k8s for requests that name no backend (the cluster is needed)"
         : "local for requests that name no backend (Kubernetes checks that do not pass are warnings)");
  if (!a.local_only)
    check_kubernetes(policy, &t, k8s ? "FAIL" : "warn");
  check_local(policy, &t);
  esb_policy_close(policy);
  printf("%d failed, %d warning%s\n", t.failed, t.warned, t.warned == 1 ? "" : "s");
  return t.failed ? 1 : 0;
}
