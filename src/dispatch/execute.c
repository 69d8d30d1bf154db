#include "dispatch/execute.h"

#include "dispatch/job.h"

void esb_execute(struct esb_policy *policy, const struct esb_request *req,
                 struct esb_result *result, int interrupt_fd, FILE *notes) {
  struct esb_loop loop = ESB_LOOP_INIT;
  loop.interrupt_fd = interrupt_fd;
  struct esb_job job = ESB_JOB_INIT;
  if (esb_job_start(&job, &loop, policy, req, notes) == 0)
    esb_loop_run(&loop);
  esb_result_move(result, &job.result);
  esb_job_release(&job);
}
