#include "dispatch/session_create.h"

#include <stdbool.h>
#include <stdlib.h>

#include "codec/pod_status.h"

/* The policy's decision, given what the engine knows of the live sessions. */
static int decide(struct esb_policy *policy, const struct esb_request *req, uint64_t ttl_ms,
                  uint64_t idle_timeout_ms, struct esb_session_decision *d, struct esb_error *err) {
  uint64_t *by_label = calloc(req->nlabels + 1, sizeof *by_label);
  struct esb_session_known known = { .by_label = by_label };
  struct esb_session_ask ask = { .req = req, .ttl_ms = ttl_ms, .idle_timeout_ms = idle_timeout_ms };
  int rc = by_label ? esb_session_census(req->labels, &known.live, by_label, err)
                    : esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  if (rc == 0)
    rc = esb_policy_session(policy, &ask, &known, d, err);
  free(by_label);
  return rc;
}

int esb_session_make(struct esb_policy *policy, struct esb_request *req, uint64_t ttl_ms, uint64_t idle_timeout_ms,
                     struct esb_session_made *made, struct esb_error *err) {
  if (decide(policy, req, ttl_ms, idle_timeout_ms, &made->decision, err) < 0)
    return -1;
  const struct esb_session_decision *d = &made->decision;
  req->limits = d->limits;
  static char nothing[] = "/bin/true";
  char *program = req->program;
  bool runs_nothing = !req->shell && !req->program && !req->language && !req->code;
  if (runs_nothing)
    req->program = nothing;
  made->plan = (struct esb_plan)ESB_PLAN_INIT;
  int rc = esb_policy_plan(policy, req, &made->plan, false, err);
  req->program = program;
  if (rc < 0)
    return -1;
  if (made->plan.backend == ESB_BACKEND_K8S)
    return esb_k8s_session_create(&made->plan, d->ttl_ms, d->idle_timeout_ms, esb_lua_parse_pod_status, made->id,
                                  err);
  struct esb_session_options so = { .ttl_ms = d->ttl_ms, .idle_timeout_ms = d->idle_timeout_ms, .labels = req->labels,
                                    .tenant_label = d->tenant_label, .max_per_tenant = d->max_per_tenant,
                                    .kernels = d->kernels };
  return esb_session_create(&made->plan, &so, made->id, err);
}

void esb_session_made_release(struct esb_session_made *made) {
  esb_session_decision_release(&made->decision);
  esb_plan_release(&made->plan);
  made->plan = (struct esb_plan)ESB_PLAN_INIT;
}
