/* One request on a loop, whatever the backend: the policy plans it, then a
 * local or k8s run carries it out. Every face (run, batch, the module) goes
 * through here, so they cannot drift apart.
 *
 * The caller owns the struct esb_job, which must stay put until on_done. */
#ifndef ESB_DISPATCH_JOB_H
#define ESB_DISPATCH_JOB_H

#include <stdbool.h>
#include <stdio.h>

#include "backend/k8s.h"
#include "backend/local.h"
#include "engine/runtime/loop.h"
#include "backend/plan.h"
#include "engine/contract/request.h"
#include "engine/contract/result.h"
#include "policy/policy.h"

struct esb_job;
typedef void (*esb_job_done_fn)(struct esb_job *job, void *userdata);

struct esb_job {
  /* inputs */
  esb_job_done_fn on_done;
  void *userdata;
  struct esb_output_sink output; /* optional: the program's output as it
                                    comes (engine/runtime/loop.h), whatever the
                                    backend; a callback leaves the result its
                                    capture, fds leave it the byte counts */
  /* output: the caller releases it (esb_result_release) */
  struct esb_result result;
  /* private */
  struct esb_plan plan;
  bool planned;             /* plan is the request's (esb_job_plan) */
  char *fallback;           /* why it runs locally though planned for k8s, or NULL */
  enum esb_backend running; /* which run is in use: LOCAL or K8S; AUTO: none yet */
  union {
    struct esb_local_run local;
    struct esb_k8s_run k8s;
  } run;
};

#define ESB_JOB_INIT { .result = ESB_RESULT_INIT, .plan = ESB_PLAN_INIT, .running = ESB_BACKEND_AUTO, \
                       .output = ESB_OUTPUT_SINK_NONE }

/* Plans the request and starts it on the loop. Returns 0, after which
 * on_done runs once with job->result complete; or -1 with job->result saying
 * why (on_done does not run). notes: where to say which backend was chosen
 * (NULL: nowhere). A plan for k8s runs on k8s, whether the cluster answers
 * or not, unless the plan allows the local backend (fallback = "local"):
 * then it runs locally when the cluster does not answer `kubectl version`
 * within a few seconds (the answer stands for 30 s per cluster: context,
 * kubeconfig, $KUBECONFIG), and the result's fallback says why. */
int esb_job_start(struct esb_job *job, struct esb_loop *loop, struct esb_policy *policy,
                  const struct esb_request *req, FILE *notes);

/* esb_job_start in two steps, for a caller that plans on one thread and
 * runs on the loop's (batch): esb_job_plan returns 0, or -1 with
 * job->result saying why; it touches no loop and may run on any thread
 * that owns the policy. esb_job_run then starts the planned job on the loop,
 * as esb_job_start does. */
int esb_job_plan(struct esb_job *job, struct esb_policy *policy, const struct esb_request *req, FILE *notes);
int esb_job_run(struct esb_job *job, struct esb_loop *loop);

/* Frees what the job holds but its result. */
void esb_job_release(struct esb_job *job);

#endif
