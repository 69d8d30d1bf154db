#include "dispatch/job.h"

#include <stdbool.h>

#include "luaglue/pod_status.h"

/* backend "auto" and a policy that picks k8s: k8s only when the cluster answers. */
static void choose_auto(struct esb_plan *plan, FILE *notes) {
  const char *tail[] = {"version", "--request-timeout=3s", NULL};
  struct esb_result probe = ESB_RESULT_INIT;
  esb_k8s_kubectl_run(&plan->k8s, tail, 5000, &probe);
  bool answers = probe.status == ESB_STATUS_EXITED && probe.exit_code == 0;
  if (!answers)
    plan->backend = ESB_BACKEND_LOCAL;
  if (notes)
    fprintf(notes, "echo-sandbox: backend auto: %s\n",
            answers ? "using k8s" : "the cluster does not answer; using local");
  esb_result_release(&probe);
}

static void local_done(struct esb_local_run *run, void *userdata) {
  struct esb_job *job = userdata;
  job->result = run->exec.result;
  run->exec.result = (struct esb_result)ESB_RESULT_INIT;
  if (job->on_done)
    job->on_done(job, job->userdata);
}

static void k8s_done(struct esb_k8s_run *run, void *userdata) {
  struct esb_job *job = userdata;
  job->result = run->result;
  run->result = (struct esb_result)ESB_RESULT_INIT;
  if (job->on_done)
    job->on_done(job, job->userdata);
}

int esb_job_start(struct esb_job *job, struct esb_loop *loop, struct esb_policy *policy,
                  const struct esb_request *req, FILE *notes) {
  char err[2048];
  enum esb_error code = esb_policy_plan(policy, req, &job->plan, false, err, sizeof err);
  if (code != ESB_OK) {
    esb_result_fail(&job->result, code, "%s", err);
    return -1;
  }
  if (job->plan.backend == ESB_BACKEND_K8S && req->backend == ESB_BACKEND_AUTO)
    choose_auto(&job->plan, notes);
  struct esb_result *failed;
  if (job->plan.backend == ESB_BACKEND_K8S) {
    job->k8s.parse_pod = esb_lua_parse_pod_status;
    job->k8s.on_done = k8s_done;
    job->k8s.userdata = job;
    if (esb_k8s_start(&job->k8s, loop, &job->plan) == 0)
      return 0;
    failed = &job->k8s.result;
  } else {
    job->local.on_done = local_done;
    job->local.userdata = job;
    if (esb_local_start(&job->local, loop, &job->plan) == 0)
      return 0;
    failed = &job->local.exec.result;
  }
  job->result = *failed;
  *failed = (struct esb_result)ESB_RESULT_INIT;
  return -1;
}

void esb_job_release(struct esb_job *job) {
  esb_local_release(&job->local);
  esb_k8s_release(&job->k8s);
  esb_result_release(&job->local.exec.result);
  esb_plan_release(&job->plan);
}
