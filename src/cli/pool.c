/* echo-sandbox pool: the policy's warm pools (backend/k8s_warm.h) on the
 * cluster. `pool run` keeps each full: it makes pods up to the pool's size,
 * deletes those that can no longer serve a run (ended, evicted, too old to
 * take a run, or of a shape the policy no longer has) and those past the
 * size, and waits longer after an API error. `pool status` says what each
 * pool holds. Nothing is kept between passes: each starts from the list,
 * so that any number of maintainers may run (each makes one pod a list:
 * M maintainers overshoot the size by M pods at most, which the next pass
 * deletes). The daemon runs `pool run` as a helper of its own
 * (daemon/pool_keeper.h), and sends it SIGHUP when it reloads its policy. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>
#include <uuid.h>

#include <lua.h>

#include "backend/k8s.h"
#include "backend/k8s_session.h"
#include "backend/k8s_warm.h"
#include "cli/cli.h"
#include "codec/json.h"
#include "engine/runtime/signals.h"
#include "engine/strv.h"
#include "policy/policy.h"

static const char pool_usage[] =
  "usage: echo-sandbox pool run [--policy FILE] [--once] [--interval-ms N] [--status-file FILE]\n"
  "       echo-sandbox pool status [--policy FILE] [--json] [--status-file FILE]\n"
  "\n"
  "The policy's warm pools (its k8s.warm_pools): pods made ahead of demand,\n"
  "each taken by one run of its shape and deleted after it (doc/warm-pods.md).\n"
  "\n"
  "  run      keep each pool at its size: make the pods it lacks, delete those\n"
  "           that ended, were evicted, are too old to take a run or have a\n"
  "           shape the policy no longer has, and those past the size; one\n"
  "           pass every --interval-ms (default 1000; longer after an API\n"
  "           error, up to 30 s) until SIGINT or SIGTERM, or one with --once;\n"
  "           SIGHUP reloads the policy (a broken one is said, the old one stays)\n"
  "  status   each pool's pods: ready, pending, claimed (by a run), stale\n"
  "           (to be replaced), ended\n"
  "\n"
  "options:\n"
  "  --policy FILE       load this policy instead of the default search\n"
  "  --once              run: one pass, then exit\n"
  "  --interval-ms N     run: the pause between passes (default 1000)\n"
  "  --json              status: an array of JSON objects, one a pool\n"
  "  --status-file FILE  run: after each pass, write there what it saw of each\n"
  "                      pool and the pods it made and failed to make in the\n"
  "                      last minute; status: add those (created, failed) from\n"
  "                      such a file (a daemon's keeper's: its /metrics has them)\n"
  "  -h, --help          show this help\n"
  "\n"
  "Exit status: 0; 1 a pass met an API error (with --once), or status could\n"
  "not list a pool; 125 bad usage or policy.\n";

/* What a pool holds, from one list. */
struct tally {
  unsigned ready, pending, claimed, stale, ended;
};

/* A pod of the list: where it stands, and whether the maintainer deletes
 * it (stale or ended; a claimed pod is its run's to delete). */
static const char *classify(const struct esb_warm_pool *pool, const struct esb_warm_pod *p, int64_t now,
                            bool *doomed) {
  bool ended = strcmp(p->phase, "Failed") == 0 || strcmp(p->phase, "Succeeded") == 0 || p->reason[0];
  *doomed = false;
  if (p->deleting)
    return "ended";
  if (strcmp(p->state, "ready") != 0)
    return "claimed";
  /* a pod that could no longer take a run of a minute */
  bool old = p->expires && p->expires <= now + 60 + ESB_WARM_MARGIN_S;
  if (ended || old) {
    *doomed = true;
    return "ended";
  }
  if (strcmp(p->hash, pool->hash) != 0) {
    *doomed = true;
    return "stale";
  }
  return p->ready && strcmp(p->phase, "Running") == 0 ? "ready" : "pending";
}

static void count(struct tally *t, const char *what) {
  if (!strcmp(what, "ready"))
    t->ready++;
  else if (!strcmp(what, "pending"))
    t->pending++;
  else if (!strcmp(what, "claimed"))
    t->claimed++;
  else if (!strcmp(what, "stale"))
    t->stale++;
  else
    t->ended++;
}

static bool kubectl_ok(const struct esb_result *r) {
  return r->status == ESB_STATUS_EXITED && r->exit_code == 0;
}

/* The pool's pods, all states and shapes: 0, or -1 said on stderr. */
static int list_pool(const struct esb_k8s_settings *k, const struct esb_warm_pool *pool, struct esb_warm_pod **pods,
                     size_t *n) {
  char selector[ESB_WARM_SELECTOR_MAX];
  const char *tail[8];
  struct esb_result r = ESB_RESULT_INIT;
  *pods = NULL;
  *n = 0;
  if (esb_warm_list_tail(pool->name, NULL, NULL, selector, tail) < 0)
    return -1;
  esb_k8s_kubectl_run(k, tail, 30000, &r);
  int rc = 0;
  if (!kubectl_ok(&r)) {
    fprintf(stderr, "echo-sandbox pool: listing pool %s failed: %s\n", pool->name, esb_k8s_kubectl_said(&r));
    rc = -1;
  } else if (esb_warm_parse(r.out.data ? r.out.data : "", r.out.len, pods, n) < 0) {
    fprintf(stderr, "echo-sandbox pool: out of memory\n");
    rc = -1;
  }
  esb_result_release(&r);
  return rc;
}

/* The cluster of the pool: the policy's connection flags, the pool's namespace. */
static void pool_cluster(const struct esb_k8s_settings *cluster, const struct esb_warm_pool *pool,
                         struct esb_k8s_settings *k) {
  *k = *cluster;
  k->namespace_ = pool->namespace_;
}

/* The pods this maintainer made or failed to make lately, by pool: what
 * its status file says of the last minute. A ring: older ones are
 * written over (a minute holds fewer than MADE_MAX creates). */
#define MADE_MAX 1024
static struct made {
  int64_t at;
  char pool[48];
  bool failed;
} made[MADE_MAX];
static size_t made_next;

static void note_made(const char *pool, bool failed) {
  struct made *m = &made[made_next++ % MADE_MAX];
  m->at = (int64_t)time(NULL);
  m->failed = failed;
  snprintf(m->pool, sizeof m->pool, "%s", pool);
}

/* Those of pool in the last minute, failed or not. */
static unsigned made_lately(const char *pool, bool failed) {
  int64_t since = (int64_t)time(NULL) - 60;
  unsigned n = 0;
  for (size_t i = 0; i < MADE_MAX; i++)
    n += made[i].at > since && made[i].failed == failed && !strcmp(made[i].pool, pool);
  return n;
}

/* Makes pool i's pod: 0, or -1 said on stderr. */
static int make_pod(struct esb_policy *policy, size_t i, const struct esb_k8s_settings *cluster) {
  const struct esb_warm_pool *pools;
  esb_policy_warm_pools(policy, &pools);
  char name[64];
  uuid_t u;
  uuid_generate_random(u);
  int at = snprintf(name, sizeof name, ESB_WARM_PREFIX);
  for (int b = 0; b < 12; b++)
    at += snprintf(name + at, sizeof name - (size_t)at, "%02x", u[b]);
  struct esb_error err = ESB_ERROR_INIT;
  struct esb_k8s_settings k;
  if (esb_policy_warm_pod(policy, i, name, &k, &err) < 0) {
    fprintf(stderr, "echo-sandbox pool: %s\n", err.message);
    return -1;
  }
  char **tail = esb_warm_create_tail(&k, &pools[i], name, (int64_t)time(NULL) + (int64_t)pools[i].max_age_s);
  struct esb_k8s_settings conn;
  pool_cluster(cluster, &pools[i], &conn);
  struct esb_result r = ESB_RESULT_INIT;
  if (tail)
    esb_k8s_kubectl_run(&conn, (const char *const *)tail, 30000, &r);
  else
    esb_result_fail(&r, ESB_E_SYSTEM, "out of memory");
  int rc = kubectl_ok(&r) ? 0 : -1;
  note_made(pools[i].name, rc < 0);
  if (rc == 0)
    printf("pool %s: made %s\n", pools[i].name, name);
  else
    fprintf(stderr, "echo-sandbox pool: making a pod of pool %s failed: %s\n", pools[i].name, esb_k8s_kubectl_said(&r));
  esb_result_release(&r);
  esb_strv_free(tail);
  esb_k8s_settings_release(&k);
  return rc;
}

/* Deletes the pods named in doomed (kubectl's words after the names). */
static int delete_pods(const struct esb_k8s_settings *k, struct esb_strv *doomed) {
  if (doomed->n <= 2)
    return 0;
  int rc = esb_strv_push(doomed, "--ignore-not-found");
  rc |= esb_strv_push(doomed, "--wait=false");
  struct esb_result r = ESB_RESULT_INIT;
  if (rc == 0)
    esb_k8s_kubectl_run(k, (const char *const *)doomed->v, 60000, &r);
  else
    esb_result_fail(&r, ESB_E_SYSTEM, "out of memory");
  rc = kubectl_ok(&r) ? 0 : -1;
  if (rc < 0)
    fprintf(stderr, "echo-sandbox pool: deleting pods failed: %s\n", esb_k8s_kubectl_said(&r));
  esb_result_release(&r);
  return rc;
}

/* The pool's pods to delete (stale, ended; then the surplus, the pending
 * first, which serve no run yet) onto doomed; the tally of the rest. */
static void pick(const struct esb_warm_pool *pool, const struct esb_warm_pod *pods, size_t n, struct tally *t,
                 struct esb_strv *doomed) {
  int64_t now = (int64_t)time(NULL);
  const char *what[n ? n : 1];
  for (size_t i = 0; i < n; i++) {
    bool doom;
    what[i] = classify(pool, &pods[i], now, &doom);
    if (doom) {
      esb_strv_push(doomed, pods[i].name);
      printf("pool %s: deleting %s (%s)\n", pool->name, pods[i].name, what[i]);
    } else {
      count(t, what[i]);
    }
  }
  for (const char *const *kind = (const char *const[]){"pending", "ready", NULL}; *kind; kind++)
    for (size_t i = 0; i < n && t->ready + t->pending > pool->size; i++)
      if (!strcmp(what[i], *kind)) {
        esb_strv_push(doomed, pods[i].name);
        printf("pool %s: deleting %s (past the size %" PRIu64 ")\n", pool->name, pods[i].name, pool->size);
        if (!strcmp(*kind, "pending"))
          t->pending--;
        else
          t->ready--;
        what[i] = "surplus";
      }
}

/* Whether a signal waits on sigfd (-1: none can): a pass stops between
 * steps, so that SIGTERM ends it soon and SIGHUP's policy takes over. */
static bool signalled(int sigfd) {
  struct pollfd pfd = { .fd = sigfd, .events = POLLIN };
  return sigfd >= 0 && poll(&pfd, 1, 0) > 0;
}

/* One pass over pool i: 0, or -1 where the API failed. Each step lists the
 * pool afresh and makes at most one pod: a maintainer's pod made from a
 * list that another maintainer's pods have since outdated is one at most,
 * so that M maintainers overshoot the size by M pods at most (a pass that
 * made every missing pod at once overshot by the size, each). A pass makes
 * size pods at most, whatever the lists say. */
static int keep_pool(struct esb_policy *policy, size_t i, const struct esb_k8s_settings *cluster, int sigfd,
                     struct tally *last) {
  const struct esb_warm_pool *pools;
  esb_policy_warm_pools(policy, &pools);
  const struct esb_warm_pool *pool = &pools[i];
  struct esb_k8s_settings k;
  pool_cluster(cluster, pool, &k);
  int rc = 0;
  for (uint64_t step = 0; step <= pool->size && rc == 0 && !signalled(sigfd); step++) {
    struct esb_warm_pod *pods;
    size_t n;
    if (list_pool(&k, pool, &pods, &n) < 0)
      return -1;
    struct tally t = { 0 };
    struct esb_strv doomed = ESB_STRV_INIT;
    esb_strv_push(&doomed, "delete");
    esb_strv_push(&doomed, "pod");
    pick(pool, pods, n, &t, &doomed);
    free(pods);
    *last = t;
    rc = delete_pods(&k, &doomed);
    esb_strv_clear(&doomed);
    if (rc < 0 || t.ready + t.pending >= pool->size || step == pool->size)
      break;
    rc = make_pod(policy, i, cluster);
  }
  fflush(stdout);
  return rc;
}

struct pool_options {
  const char *policy_path;
  bool once, json;
  const char *status_file;
  uint64_t interval_ms;
};

static int read_options(int argc, char **argv, struct pool_options *o) {
  static const struct option longopts[] = {
    {"policy", required_argument, 0, 'p'}, {"once", no_argument, 0, 'o'}, {"json", no_argument, 0, 'j'},
    {"interval-ms", required_argument, 0, 'i'}, {"status-file", required_argument, 0, 's'},
    {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  optind = 1;
  opterr = 0;
  o->interval_ms = 1000;
  for (int c; (c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1;) {
    char *end;
    switch (c) {
    case 'p': o->policy_path = optarg; break;
    case 'o': o->once = true; break;
    case 's': o->status_file = optarg; break;
    case 'j': o->json = true; break;
    case 'i':
      errno = 0;
      o->interval_ms = strtoull(optarg, &end, 10);
      if (errno || *end || !*optarg || o->interval_ms == 0 || o->interval_ms > 3600000) {
        fprintf(stderr, "echo-sandbox pool: --interval-ms %s: expected 1 to 3600000\n", optarg);
        return 125;
      }
      break;
    case 'h': fputs(pool_usage, stdout); return 0;
    default:
      fprintf(stderr, "echo-sandbox pool: unknown or incomplete option '%s'\n%s", argv[optind - 1], pool_usage);
      return 125;
    }
  }
  return -1;
}

/* The maintainer's last look at each pool and what it made lately, into
 * path (written whole, then renamed: a reader never sees half a pass): a
 * line a pool, "NAME ready R pending P claimed C stale S ended E created
 * N failed F" (the last two: the last minute's). The daemon's /metrics
 * reads its keeper's; `pool status --status-file` reads any. */
static void write_status(const char *path, const struct esb_warm_pool *pools, const struct tally *t, size_t n) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    fprintf(stderr, "echo-sandbox pool: %s: %s\n", tmp, strerror(errno));
    return;
  }
  for (size_t i = 0; i < n; i++)
    fprintf(f, "%s ready %u pending %u claimed %u stale %u ended %u created %u failed %u\n", pools[i].name,
            t[i].ready, t[i].pending, t[i].claimed, t[i].stale, t[i].ended, made_lately(pools[i].name, false),
            made_lately(pools[i].name, true));
  if (fclose(f) != 0 || rename(tmp, path) != 0)
    fprintf(stderr, "echo-sandbox pool: %s: %s\n", path, strerror(errno));
}

/* SIGHUP: the policy again from its file, as the daemon reloads its own;
 * one that does not load is said, and the old one stays. */
static void reload(struct esb_policy **policy, struct esb_k8s_settings *cluster, const char *path) {
  struct esb_error err = ESB_ERROR_INIT;
  struct esb_k8s_settings fresh_cluster = { 0 };
  struct esb_policy *fresh = esb_policy_open(path, &err);
  if (!fresh || esb_policy_cluster(fresh, &fresh_cluster, &err) < 0) {
    fprintf(stderr, "echo-sandbox pool: policy reload failed, keeping the old one: %s\n", err.message);
    esb_policy_close(fresh);
    return;
  }
  esb_k8s_settings_release(cluster);
  esb_policy_close(*policy);
  *policy = fresh;
  *cluster = fresh_cluster;
  printf("pool: policy reloaded from %s\n", esb_policy_path(fresh));
}

/* The signal that ended the pause: SIGHUP reloads; true where it stops. */
static bool stop_or_reload(int sigfd, struct esb_policy **policy, struct esb_k8s_settings *cluster,
                           const char *path) {
  struct signalfd_siginfo si;
  bool stop = false;
  while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si)
    if (si.ssi_signo == SIGHUP)
      reload(policy, cluster, path);
    else
      stop = true;
  return stop;
}

/* pool run: passes until SIGINT or SIGTERM (or one, --once). */
static int maintain(struct esb_policy **policy, struct esb_k8s_settings *cluster, const struct pool_options *o) {
  static const int signals[] = { SIGINT, SIGTERM, SIGHUP };
  int sigfd = o->once ? -1 : esb_signal_fd(signals, 3);
  if (!o->once && sigfd < 0) {
    fprintf(stderr, "echo-sandbox pool: signalfd: %s\n", strerror(errno));
    return 125;
  }
  uint64_t pause = o->interval_ms;
  int failed = 0;
  for (;;) {
    const struct esb_warm_pool *pools;
    size_t n = esb_policy_warm_pools(*policy, &pools);
    failed = 0;
    struct tally t[n ? n : 1];
    memset(t, 0, sizeof t);
    for (size_t i = 0; i < n; i++)
      failed |= keep_pool(*policy, i, cluster, sigfd, &t[i]) < 0;
    if (o->status_file)
      write_status(o->status_file, pools, t, n);
    if (o->once)
      break;
    /* an API error: wait longer each time (the cluster is overloaded, or
     * the quota is spent), back to the interval once a pass went through */
    pause = failed ? (pause * 2 > 30000 ? 30000 : pause * 2) : o->interval_ms;
    struct pollfd pfd = { .fd = sigfd, .events = POLLIN };
    if (poll(&pfd, 1, (int)pause) > 0 && stop_or_reload(sigfd, policy, cluster, o->policy_path))
      break;
  }
  if (sigfd >= 0)
    close(sigfd);
  return o->once && failed ? 1 : 0;
}

/* What a maintainer's status file (write_status) says pool made lately:
 * true with *created and *failed where it has the pool. */
static bool made_of(const char *status_file, const char *pool, unsigned *created, unsigned *failed) {
  FILE *f = status_file ? fopen(status_file, "r") : NULL;
  char line[256], name[64];
  bool found = false;
  while (f && !found && fgets(line, sizeof line, f))
    found = sscanf(line, "%63s ready %*u pending %*u claimed %*u stale %*u ended %*u created %u failed %u", name,
                   created, failed) == 3 && !strcmp(name, pool);
  if (f)
    fclose(f);
  return found;
}

/* One pool's status as a JSON object on L's stack. */
static void push_status(lua_State *L, const struct esb_warm_pool *pool, const struct tally *t, bool made,
                        unsigned created, unsigned failed) {
  lua_createtable(L, 0, 12);
  const struct { const char *key, *v; } words[] = {
    {"name", pool->name}, {"namespace", pool->namespace_}, {"hash", pool->hash}};
  for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
    lua_pushstring(L, words[w].v);
    lua_setfield(L, -2, words[w].key);
  }
  const struct { const char *key; uint64_t v; } counts[] = {
    {"size", pool->size}, {"max_age_s", pool->max_age_s}, {"ready", t->ready}, {"pending", t->pending},
    {"claimed", t->claimed}, {"stale", t->stale}, {"ended", t->ended}, {"created_last_minute", created},
    {"failed_last_minute", failed}};
  size_t shown = sizeof counts / sizeof counts[0] - (made ? 0 : 2);
  for (size_t c = 0; c < shown; c++) {
    lua_pushinteger(L, (lua_Integer)counts[c].v);
    lua_setfield(L, -2, counts[c].key);
  }
}

/* pool status: each pool's tally, as text or JSON; with a maintainer's
 * status file, what it made and failed to make in the last minute. */
static int status(struct esb_policy *policy, const struct esb_k8s_settings *cluster, const struct pool_options *o) {
  const struct esb_warm_pool *pools;
  size_t n = esb_policy_warm_pools(policy, &pools);
  lua_State *L = o->json ? esb_json_state() : NULL;
  int rc = 0;
  if (L)
    lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    struct esb_k8s_settings k;
    pool_cluster(cluster, &pools[i], &k);
    struct esb_warm_pod *pods;
    size_t np;
    if (list_pool(&k, &pools[i], &pods, &np) < 0) {
      rc = 1;
      continue;
    }
    struct tally t = { 0 };
    int64_t now = (int64_t)time(NULL);
    for (size_t j = 0; j < np; j++) {
      bool doom;
      count(&t, classify(&pools[i], &pods[j], now, &doom));
    }
    free(pods);
    unsigned created = 0, failed = 0;
    bool made = made_of(o->status_file, pools[i].name, &created, &failed);
    if (L) {
      push_status(L, &pools[i], &t, made, created, failed);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
      continue;
    }
    printf("%-20s size %-4" PRIu64 " ready %-4u pending %-4u claimed %-4u stale %-4u ended %-4u namespace %s "
           "hash %s", pools[i].name, pools[i].size, t.ready, t.pending, t.claimed, t.stale, t.ended,
           pools[i].namespace_, pools[i].hash);
    printf(made ? " created %u failed %u (last minute)\n" : "\n", created, failed);
  }
  struct esb_error err = ESB_ERROR_INIT;
  if (L && n == 0)
    puts("[]"); /* an empty table encodes as an object */
  else if (L && esb_json_encode(L, &err) == 0)
    printf("%s\n", lua_tostring(L, -1));
  else if (L)
    fprintf(stderr, "echo-sandbox pool: %s\n", err.message), rc = 1;
  if (L)
    lua_close(L);
  return rc;
}

int esb_cli_pool(int argc, char **argv) {
  if (argc < 2 || (strcmp(argv[1], "run") != 0 && strcmp(argv[1], "status") != 0)) {
    bool help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    fputs(pool_usage, help ? stdout : stderr);
    return help ? 0 : 125;
  }
  struct pool_options o = { 0 };
  int done = read_options(argc - 1, argv + 1, &o);
  if (done >= 0)
    return done;
  struct esb_error err = ESB_ERROR_INIT;
  struct esb_k8s_settings cluster = { 0 };
  struct esb_policy *policy = esb_policy_open(o.policy_path, &err);
  int rc = 125;
  if (!policy || esb_policy_cluster(policy, &cluster, &err) < 0)
    fprintf(stderr, "echo-sandbox pool: %s\n", err.message);
  else if (!strcmp(argv[1], "run"))
    rc = maintain(&policy, &cluster, &o);
  else
    rc = status(policy, &cluster, &o);
  esb_k8s_settings_release(&cluster);
  esb_policy_close(policy);
  return rc;
}
