/* One request, start to finish, on a loop of its own (dispatch/job.h). */
#ifndef ESB_DISPATCH_EXECUTE_H
#define ESB_DISPATCH_EXECUTE_H

#include <stdio.h>

#include "engine/runtime/loop.h"
#include "engine/contract/request.h"
#include "engine/contract/result.h"
#include "policy/policy.h"

/* Fills result (ESB_RESULT_INIT on entry); the caller releases it.
 * interrupt_fd: see struct esb_loop (-1: none); notes: as for esb_job_start;
 * output (NULL: none): where the program's output goes as it comes, as for
 * struct esb_job. */
void esb_execute(struct esb_policy *policy, const struct esb_request *req,
                 struct esb_result *result, int interrupt_fd, FILE *notes,
                 const struct esb_output_sink *output);

#endif
