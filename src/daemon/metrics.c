#include "daemon/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Upper bounds of the duration histogram, in seconds. */
static const double bucket_le[ESB_METRICS_BUCKETS] = {0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60};
/* Those of the claim's histogram: a claim is a list and a label, its grace
 * 200 ms unless the pool says otherwise. */
static const double claim_le[ESB_METRICS_CLAIM_BUCKETS] = {0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 5};

/* The pool's counters: its own, a new one's, or those of "other". */
static struct esb_metrics_pool *pool_of(struct esb_metrics *m, const char *name) {
  for (size_t i = 0; i < m->n_pools; i++)
    if (!strcmp(m->pools[i].name, name))
      return &m->pools[i];
  struct esb_metrics_pool *p = &m->pools[m->n_pools < ESB_METRICS_POOLS ? m->n_pools++ : ESB_METRICS_POOLS];
  snprintf(p->name, sizeof p->name, "%s", p == &m->pools[ESB_METRICS_POOLS] ? "other" : name);
  return p;
}

/* One observation of s seconds into a histogram of n buckets. */
static void observe(double s, const double *le, uint64_t *buckets, int n, uint64_t *count, double *sum) {
  for (int i = 0; i < n; i++)
    if (s <= le[i])
      buckets[i]++;
  (*count)++;
  *sum += s;
}

static void record_claim(struct esb_metrics *m, const struct esb_result *r) {
  pool_of(m, r->warm_pool)->claims[r->warm > 0]++;
  if (r->claim_ms >= 0)
    observe(r->claim_ms / 1000.0, claim_le, m->claim_buckets, ESB_METRICS_CLAIM_BUCKETS, &m->claim_count,
            &m->claim_sum_s);
}

void esb_metrics_record(struct esb_metrics *m, const struct esb_result *r) {
  int backend = r->sandbox_type && !strcmp(r->sandbox_type, "k8s");
  m->runs[backend][r->status]++;
  if (r->warm >= 0)
    m->k8s_warm[r->warm > 0]++;
  if (r->warm_pool[0])
    record_claim(m, r);
  observe(r->duration_ms / 1000.0, bucket_le, m->duration_buckets, ESB_METRICS_BUCKETS, &m->duration_count,
          &m->duration_sum_s);
  for (size_t i = 0; i < r->egress.n; i++)
    m->egress[r->egress.v[i].reason]++;
  m->egress_left_off += r->egress.left_off;
}

struct out {
  char *buf;
  size_t n, len;
};

__attribute__((format(printf, 2, 3)))
static void put(struct out *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(o->len < o->n ? o->buf + o->len : NULL, o->len < o->n ? o->n - o->len : 0, fmt, ap);
  va_end(ap);
  if (w > 0)
    o->len += (size_t)w;
}

static void put_sessions(struct out *o, const struct esb_metrics *m, size_t alive) {
  put(o, "# HELP echo_sandbox_sessions_alive Sessions alive in the daemon's directory of sessions.\n"
         "# TYPE echo_sandbox_sessions_alive gauge\n"
         "echo_sandbox_sessions_alive %zu\n"
         "# HELP echo_sandbox_sessions_created_total Sessions created through the daemon.\n"
         "# TYPE echo_sandbox_sessions_created_total counter\n"
         "echo_sandbox_sessions_created_total %llu\n"
         "# HELP echo_sandbox_sessions_ended_total Sessions the daemon saw ended, by why.\n"
         "# TYPE echo_sandbox_sessions_ended_total counter\n",
      alive, (unsigned long long)m->sessions_created);
  for (int e = ESB_SESSION_ALIVE + 1; e < ESB_SESSION_END__COUNT; e++)
    put(o, "echo_sandbox_sessions_ended_total{reason=\"%s\"} %llu\n", esb_session_end_name((enum esb_session_end)e),
        (unsigned long long)m->sessions_ended[e]);
  put(o, "# HELP echo_sandbox_session_runs_total Runs that went into a session.\n"
         "# TYPE echo_sandbox_session_runs_total counter\n"
         "echo_sandbox_session_runs_total %llu\n", (unsigned long long)m->session_runs);
  put(o, "# HELP echo_sandbox_session_cells_total Cells that went into a session's kernel.\n"
         "# TYPE echo_sandbox_session_cells_total counter\n"
         "echo_sandbox_session_cells_total %llu\n", (unsigned long long)m->session_cells);
}

/* The network by name's attempts, by verdict. */
static void put_egress(struct out *o, const struct esb_metrics *m) {
  put(o, "# HELP echo_sandbox_egress_total Connections the runs' programs tried through the egress proxy, by "
         "verdict (allowed, or why not; left_off: past a ledger's bound).\n"
         "# TYPE echo_sandbox_egress_total counter\n");
  for (int r = 0; r < ESB_EGRESS_REASON__COUNT; r++)
    put(o, "echo_sandbox_egress_total{reason=\"%s\"} %llu\n", esb_egress_reason_name((enum esb_egress_reason)r),
        (unsigned long long)m->egress[r]);
  put(o, "echo_sandbox_egress_total{reason=\"left_off\"} %llu\n", (unsigned long long)m->egress_left_off);
}

/* The warm pools' claims: hits and misses by pool, and their time. */
static void put_warm(struct out *o, const struct esb_metrics *m) {
  put(o, "# HELP echo_sandbox_warm_claims_total k8s runs whose pod has a warm pool's shape, by pool and whether "
         "they took a warm pod (hit) or made their own (miss).\n"
         "# TYPE echo_sandbox_warm_claims_total counter\n");
  size_t n = m->n_pools + (m->pools[ESB_METRICS_POOLS].name[0] != '\0');
  for (size_t i = 0; i < n; i++) {
    const struct esb_metrics_pool *p = &m->pools[i < m->n_pools ? i : ESB_METRICS_POOLS];
    put(o, "echo_sandbox_warm_claims_total{pool=\"%s\",result=\"hit\"} %llu\n"
           "echo_sandbox_warm_claims_total{pool=\"%s\",result=\"miss\"} %llu\n",
        p->name, (unsigned long long)p->claims[1], p->name, (unsigned long long)p->claims[0]);
  }
  put(o, "# HELP echo_sandbox_warm_claim_seconds How long the claims of warm pods took, from the run's start to "
         "the pod claimed or the run gone cold.\n"
         "# TYPE echo_sandbox_warm_claim_seconds histogram\n");
  for (int i = 0; i < ESB_METRICS_CLAIM_BUCKETS; i++)
    put(o, "echo_sandbox_warm_claim_seconds_bucket{le=\"%g\"} %llu\n", claim_le[i],
        (unsigned long long)m->claim_buckets[i]);
  put(o, "echo_sandbox_warm_claim_seconds_bucket{le=\"+Inf\"} %llu\n"
         "echo_sandbox_warm_claim_seconds_sum %.6f\n"
         "echo_sandbox_warm_claim_seconds_count %llu\n",
      (unsigned long long)m->claim_count, m->claim_sum_s, (unsigned long long)m->claim_count);
}

/* The status file's (`pool run --status-file`) numbers from..to of each
 * pool, as samples of family with label key: a line a pool, "NAME ready
 * R pending P claimed C stale S ended E created N failed F". */
static void put_pool_lines(struct out *o, FILE *f, int from, int to, const char *family, const char *key) {
  static const char *const names[] = {"ready", "pending", "claimed", "stale", "ended", "created", "failed"};
  unsigned v[7];
  char name[48], line[256];
  rewind(f);
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "%47[a-z0-9-] ready %u pending %u claimed %u stale %u ended %u created %u failed %u", name,
               &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]) == 8)
      for (int i = from; i <= to; i++)
        put(o, "%s{pool=\"%s\",%s=\"%s\"} %u\n", family, name, key, names[i], v[i]);
}

/* The warm pools' pods by state and what the keeper made lately, as its
 * status file has them from its last pass (none where there is none). */
static void put_pools(struct out *o, const char *path) {
  FILE *f = path ? fopen(path, "r") : NULL;
  put(o, "# HELP echo_sandbox_warm_pool_pods The warm pools' pods by state, as the daemon's keeper last saw "
         "them.\n# TYPE echo_sandbox_warm_pool_pods gauge\n");
  if (f)
    put_pool_lines(o, f, 0, 4, "echo_sandbox_warm_pool_pods", "state");
  put(o, "# HELP echo_sandbox_warm_pool_made_last_minute Warm pods the daemon's keeper made (created) or failed "
         "to make (failed) in the last minute, by pool.\n# TYPE echo_sandbox_warm_pool_made_last_minute gauge\n");
  if (f) {
    put_pool_lines(o, f, 5, 6, "echo_sandbox_warm_pool_made_last_minute", "result");
    fclose(f);
  }
}

/* A state set per defence proved (GET /readyz?prove=1): 1 for its last
 * verdict, 0 for the others; none for a defence never proved. */
static void put_defences(struct out *o, const struct esb_metrics *m) {
  put(o, "# HELP echo_sandbox_defence The last verdict of each defence that GET /readyz?prove=1 proved "
         "(doctor --prove's checks): 1 for the verdict it had.\n"
         "# TYPE echo_sandbox_defence gauge\n");
  for (int i = 0; i < ESB_PROVE__COUNT; i++)
    for (int v = ESB_PROVE_HELD; m->defences[i] != ESB_PROVE_NOT_RUN && v < ESB_PROVE_VERDICT__COUNT; v++)
      put(o, "echo_sandbox_defence{defence=\"%s\",verdict=\"%s\"} %d\n", esb_prove_checks[i].name,
          esb_prove_verdict_name((enum esb_prove_verdict)v), m->defences[i] == v);
}

size_t esb_metrics_render(const struct esb_metrics *m, size_t in_flight, size_t queued, size_t sessions_alive,
                          const char *pools_status, char *buf, size_t n) {
  static const char *const backends[] = {"local", "k8s"};
  struct out o = { buf, n, 0 };
  put(&o, "# HELP echo_sandbox_runs_total Runs finished, by backend and status.\n"
          "# TYPE echo_sandbox_runs_total counter\n");
  for (int b = 0; b < 2; b++)
    for (int st = 0; st <= ESB_STATUS_ERROR; st++)
      put(&o, "echo_sandbox_runs_total{backend=\"%s\",status=\"%s\"} %llu\n", backends[b],
          esb_status_name((enum esb_status)st), (unsigned long long)m->runs[b][st]);
  put(&o, "# HELP echo_sandbox_k8s_runs_warm_total k8s runs outside a session, by whether a warm pod ran them.\n"
          "# TYPE echo_sandbox_k8s_runs_warm_total counter\n"
          "echo_sandbox_k8s_runs_warm_total{warm=\"true\"} %llu\n"
          "echo_sandbox_k8s_runs_warm_total{warm=\"false\"} %llu\n",
      (unsigned long long)m->k8s_warm[1], (unsigned long long)m->k8s_warm[0]);
  put(&o, "# HELP echo_sandbox_run_duration_seconds Wall time of finished runs.\n"
          "# TYPE echo_sandbox_run_duration_seconds histogram\n");
  for (int i = 0; i < ESB_METRICS_BUCKETS; i++)
    put(&o, "echo_sandbox_run_duration_seconds_bucket{le=\"%g\"} %llu\n", bucket_le[i],
        (unsigned long long)m->duration_buckets[i]);
  put(&o, "echo_sandbox_run_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
          "echo_sandbox_run_duration_seconds_sum %.6f\n"
          "echo_sandbox_run_duration_seconds_count %llu\n",
      (unsigned long long)m->duration_count, m->duration_sum_s, (unsigned long long)m->duration_count);
  put(&o, "# HELP echo_sandbox_in_flight Runs in flight.\n# TYPE echo_sandbox_in_flight gauge\n"
          "echo_sandbox_in_flight %zu\n"
          "# HELP echo_sandbox_queued Requests waiting for a free slot.\n# TYPE echo_sandbox_queued gauge\n"
          "echo_sandbox_queued %zu\n", in_flight, queued);
  put(&o, "# HELP echo_sandbox_rejected_total Requests refused before running, by reason.\n"
          "# TYPE echo_sandbox_rejected_total counter\n"
          "echo_sandbox_rejected_total{reason=\"busy\"} %llu\n"
          "echo_sandbox_rejected_total{reason=\"bad_request\"} %llu\n"
          "echo_sandbox_rejected_total{reason=\"too_large\"} %llu\n"
          "echo_sandbox_rejected_total{reason=\"unauthorized\"} %llu\n",
      (unsigned long long)m->rejected_busy, (unsigned long long)m->rejected_bad,
      (unsigned long long)m->rejected_too_large, (unsigned long long)m->rejected_unauthorized);
  put(&o, "# HELP echo_sandbox_policy_reloads_total Policy reloads (SIGHUP).\n"
          "# TYPE echo_sandbox_policy_reloads_total counter\n"
          "echo_sandbox_policy_reloads_total %llu\n"
          "# HELP echo_sandbox_policy_reload_failures_total Policy reloads that failed (the old policy stayed).\n"
          "# TYPE echo_sandbox_policy_reload_failures_total counter\n"
          "echo_sandbox_policy_reload_failures_total %llu\n",
      (unsigned long long)m->policy_reloads, (unsigned long long)m->policy_reload_failures);
  put_warm(&o, m);
  put_pools(&o, pools_status);
  put_sessions(&o, m, sessions_alive);
  put_egress(&o, m);
  put_defences(&o, m);
  put(&o, "# HELP echo_sandbox_build_info The running build: its version, always 1.\n"
          "# TYPE echo_sandbox_build_info gauge\n"
          "echo_sandbox_build_info{version=\"%s\"} 1\n", ESB_VERSION);
  return o.len;
}
