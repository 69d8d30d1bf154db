#include "dispatch/execute.h"

#include "dispatch/job.h"

struct execution {
  struct esb_job job;
  struct esb_policy *policy;
  const struct esb_request *req;
  FILE *notes;
};

static int start(struct esb_loop *loop, void *arg) {
  struct execution *x = arg;
  return esb_job_start(&x->job, loop, x->policy, x->req, x->notes);
}

void esb_execute(struct esb_policy *policy, const struct esb_request *req,
                 struct esb_result *result, int interrupt_fd, FILE *notes,
                 const struct esb_output_sink *output) {
  struct execution x = { .job = ESB_JOB_INIT, .policy = policy, .req = req, .notes = notes };
  if (output)
    x.job.output = *output;
  esb_loop_run_job(interrupt_fd, start, &x);
  esb_result_move(result, &x.job.result);
  esb_job_release(&x.job);
}
