/* The daemon's counters, rendered in the Prometheus text format. */
#ifndef ESB_DAEMON_METRICS_H
#define ESB_DAEMON_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "dispatch/prove_checks.h"
#include "engine/contract/result.h"
#include "engine/sandbox/session_holder.h"

#define ESB_METRICS_BUCKETS 10
#define ESB_METRICS_CLAIM_BUCKETS 8
/* Pools counted by name; the runs of pools past them are counted as
 * pool="other" (a policy has a few pools, reloads may rename them). */
#define ESB_METRICS_POOLS 32

struct esb_metrics_pool {
  char name[48];
  uint64_t claims[2];        /* [miss: made its own pod, hit: took a warm pod] */
};

struct esb_metrics {
  uint64_t runs[2][ESB_STATUS_ERROR + 1];      /* [local, k8s][status] */
  uint64_t k8s_warm[2];      /* k8s runs outside a session: [made a pod, took a warm pod] */
  /* runs whose pod has a pool's shape, by pool (result warm_pool), and
     how long their claims took (result claim_ms) */
  struct esb_metrics_pool pools[ESB_METRICS_POOLS + 1]; /* the last: "other" */
  size_t n_pools;
  uint64_t claim_buckets[ESB_METRICS_CLAIM_BUCKETS], claim_count;
  double claim_sum_s;
  uint64_t duration_buckets[ESB_METRICS_BUCKETS]; /* cumulative at render time */
  uint64_t duration_count;
  double duration_sum_s;
  uint64_t rejected_busy, rejected_bad, rejected_too_large, rejected_unauthorized;
  uint64_t policy_reloads, policy_reload_failures;
  /* sessions: made through the daemon; seen ended, by why (each once: the
     daemon removes what an ended one left); runs that went into one */
  uint64_t sessions_created, sessions_ended[ESB_SESSION_END__COUNT], session_runs, session_cells;
  /* the network by name: the attempts of finished runs, by their verdict
     (engine/contract/egress.h), and those their ledgers left off */
  uint64_t egress[ESB_EGRESS_REASON__COUNT], egress_left_off;
  /* the verdict of each defence at the last GET /readyz?prove=1 that ran
     its check (enum esb_prove_verdict; ESB_PROVE_NOT_RUN: never yet) */
  unsigned char defences[ESB_PROVE__COUNT];
};

void esb_metrics_record(struct esb_metrics *m, const struct esb_result *r);

/* Writes the text, with the gauges of runs in flight, requests waiting,
 * sessions alive (in the daemon's directory of sessions, whoever made
 * them) and the warm pools' pods (pools_status: the keeper's status file,
 * NULL where none), into buf (NUL-terminated); returns its length, or the
 * length it needs when that is n or more. */
size_t esb_metrics_render(const struct esb_metrics *m, size_t in_flight, size_t queued, size_t sessions_alive,
                          const char *pools_status, char *buf, size_t n);

#endif
