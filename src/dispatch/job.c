#include "dispatch/job.h"

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "backend/egress_helper.h"
#include "backend/k8s_payload.h"
#include "codec/pod_status.h"

/* How long what a cluster answered stands. The probe is a kubectl process
 * that blocks the caller's loop for as long as it takes: batch and serve
 * must not run one per request. */
#define PROBE_TTL_NS (30ull * 1000000000ull)

/* The last answers, by cluster (context, kubeconfig, $KUBECONFIG). */
static struct probe_answer {
  char *cluster;
  bool answers;
  uint64_t at_ns;
} probe_cache[8];
static size_t probe_next;
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;

/* Returns 1 or 0 when the cache knows the cluster, -1 when not. */
static int cached_answer(const char *cluster, uint64_t now) {
  int found = -1;
  pthread_mutex_lock(&probe_lock);
  for (size_t i = 0; i < sizeof probe_cache / sizeof probe_cache[0]; i++) {
    struct probe_answer *a = &probe_cache[i];
    if (a->cluster && strcmp(a->cluster, cluster) == 0 && now - a->at_ns < PROBE_TTL_NS)
      found = a->answers;
  }
  pthread_mutex_unlock(&probe_lock);
  return found;
}

static void remember_answer(const char *cluster, bool answers, uint64_t now) {
  char *copy = strdup(cluster);
  if (!copy)
    return;
  pthread_mutex_lock(&probe_lock);
  size_t n = sizeof probe_cache / sizeof probe_cache[0], slot = probe_next;
  for (size_t i = 0; i < n; i++)
    if (probe_cache[i].cluster && strcmp(probe_cache[i].cluster, cluster) == 0)
      slot = i;
  if (slot == probe_next)
    probe_next = (probe_next + 1) % n;
  free(probe_cache[slot].cluster);
  probe_cache[slot] = (struct probe_answer){ copy, answers, now };
  pthread_mutex_unlock(&probe_lock);
}

/* A plan for k8s that allows the local backend: k8s only when the cluster
 * answers (asked at most every PROBE_TTL_NS per cluster); else local, and
 * job->fallback says why. */
static void choose_fallback(struct esb_job *job, FILE *notes) {
  struct esb_plan *plan = &job->plan;
  const struct esb_k8s_settings *k = &plan->k8s;
  const char *env_config = getenv("KUBECONFIG");
  char *cluster = NULL;
  if (asprintf(&cluster, "%s\n%s\n%s", k->context ? k->context : "", k->kubeconfig ? k->kubeconfig : "",
               env_config ? env_config : "") < 0)
    cluster = NULL;
  uint64_t now = esb_now_ns();
  int answers = cluster ? cached_answer(cluster, now) : -1;
  if (answers < 0) {
    const char *tail[] = {"version", "--request-timeout=3s", NULL};
    struct esb_result probe = ESB_RESULT_INIT;
    esb_k8s_kubectl_run(k, tail, 5000, &probe);
    answers = probe.status == ESB_STATUS_EXITED && probe.exit_code == 0;
    esb_result_release(&probe);
    if (cluster)
      remember_answer(cluster, answers, now);
  }
  free(cluster);
  if (!answers) {
    plan->backend = ESB_BACKEND_LOCAL;
    job->fallback = strdup("the cluster did not answer `kubectl version` (the policy allows local for this "
                           "request)");
  }
  if (notes)
    fprintf(notes, "echo-sandbox: backend k8s: %s\n",
            answers ? "using k8s" : "the cluster does not answer; the policy allows local: using local");
}

/* The request's code and files against the policy's ceilings, naming the
 * file that goes over one; and what the k8s backend cannot pass on. 0, or
 * -1 with *err (invalid_request). */
static int check_size(const struct esb_plan *plan, const struct esb_request *req, struct esb_error *err) {
  size_t code = req->code ? strlen(req->code) : 0;
  if (code > plan->max_code_bytes)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "invalid request: 'code' is %zu bytes, more than the "
                         "policy's %llu", code, (unsigned long long)plan->max_code_bytes);
  if (plan->backend == ESB_BACKEND_K8S && esb_k8s_payload_wanted(plan) && esb_k8s_payload_check(plan, err) < 0)
    return -1;
  if (!req->nfiles)
    return 0;
  if (req->nfiles > plan->max_files)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "invalid request: 'files' has %zu files, more than the "
                         "policy's %llu (at '%s')", req->nfiles, (unsigned long long)plan->max_files,
                         req->files[plan->max_files].path);
  uint64_t total = 0;
  for (size_t i = 0; i < req->nfiles; i++) {
    total += req->files[i].len;
    if (total > plan->max_files_bytes)
      return esb_error_set(err, ESB_E_INVALID_REQUEST, "invalid request: 'files' holds more than the policy's "
                           "%llu bytes together (at '%s', %zu bytes)", (unsigned long long)plan->max_files_bytes,
                           req->files[i].path, req->files[i].len);
  }
  return 0;
}

/* The result of a local run says why it is not the k8s run the policy
 * planned, when it is not. */
static void take_local_result(struct esb_job *job, struct esb_result *r) {
  esb_result_move(&job->result, r);
  job->result.fallback = job->fallback;
  job->fallback = NULL;
}

static void local_done(struct esb_local_run *run, void *userdata) {
  struct esb_job *job = userdata;
  take_local_result(job, &run->exec.result);
  if (job->on_done)
    job->on_done(job, job->userdata);
}

static void k8s_done(struct esb_k8s_run *run, void *userdata) {
  struct esb_job *job = userdata;
  esb_result_move(&job->result, &run->result);
  if (job->on_done)
    job->on_done(job, job->userdata);
}

int esb_job_plan(struct esb_job *job, struct esb_policy *policy, const struct esb_request *req, FILE *notes) {
  assert(job->running == ESB_BACKEND_AUTO && !job->planned); /* ESB_JOB_INIT, or released */
  struct esb_error err = ESB_ERROR_INIT;
  if (esb_policy_plan(policy, req, &job->plan, false, &err) < 0) {
    esb_result_fail_error(&job->result, &err);
    return -1;
  }
  if (job->plan.backend == ESB_BACKEND_K8S && job->plan.fallback_local)
    choose_fallback(job, notes);
  if (check_size(&job->plan, req, &err) < 0) {
    esb_result_fail_error(&job->result, &err);
    esb_plan_release(&job->plan);
    free(job->fallback);
    job->fallback = NULL;
    return -1;
  }
  job->planned = true;
  return 0;
}

int esb_job_run(struct esb_job *job, struct esb_loop *loop) {
  assert(job->planned && job->running == ESB_BACKEND_AUTO);
  struct esb_result *failed;
  job->running = job->plan.backend == ESB_BACKEND_K8S ? ESB_BACKEND_K8S : ESB_BACKEND_LOCAL;
  if (job->running == ESB_BACKEND_K8S) {
    struct esb_k8s_run *k8s = &job->run.k8s;
    *k8s = (struct esb_k8s_run)ESB_K8S_RUN_INIT;
    k8s->parse_pod = esb_lua_parse_pod_status;
    k8s->parse_warm_list = esb_lua_warm_pod_lines;
    k8s->on_done = k8s_done;
    k8s->userdata = job;
    k8s->output = job->output;
    struct esb_error err = ESB_ERROR_INIT;
    /* the network by name: the run's token for the shared proxy, in its env */
    if (job->plan.egress_allow && esb_egress_k8s_prepare(&job->plan, &err) < 0)
      esb_result_fail_error(&k8s->result, &err);
    else if (esb_k8s_start(k8s, loop, &job->plan) == 0)
      return 0;
    failed = &k8s->result;
  } else {
    struct esb_local_run *local = &job->run.local;
    *local = (struct esb_local_run)ESB_LOCAL_RUN_INIT;
    local->on_done = local_done;
    local->userdata = job;
    local->output = job->output;
    if (esb_local_start(local, loop, &job->plan) == 0)
      return 0;
    take_local_result(job, &local->exec.result);
    return -1;
  }
  esb_result_move(&job->result, failed);
  return -1;
}

int esb_job_start(struct esb_job *job, struct esb_loop *loop, struct esb_policy *policy,
                  const struct esb_request *req, FILE *notes) {
  return esb_job_plan(job, policy, req, notes) < 0 ? -1 : esb_job_run(job, loop);
}

void esb_job_release(struct esb_job *job) {
  if (job->running == ESB_BACKEND_K8S) {
    esb_k8s_release(&job->run.k8s);
    esb_result_release(&job->run.k8s.result);
  } else if (job->running == ESB_BACKEND_LOCAL) {
    esb_local_release(&job->run.local);
    esb_result_release(&job->run.local.exec.result);
  }
  job->running = ESB_BACKEND_AUTO;
  job->planned = false;
  free(job->fallback);
  job->fallback = NULL;
  esb_plan_release(&job->plan);
}
