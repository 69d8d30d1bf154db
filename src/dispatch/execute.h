/* One request, start to finish: the policy makes the plan, a backend runs it.
 * Shared by every face so that they cannot drift apart. */
#ifndef ESB_DISPATCH_EXECUTE_H
#define ESB_DISPATCH_EXECUTE_H

#include <stdio.h>

#include "engine/request.h"
#include "engine/result.h"
#include "policy/policy.h"

/* Fills result (ESB_RESULT_INIT on entry); the caller releases it.
 * interrupt_fd: see struct esb_loop (-1: none). notes: where to say which
 * backend "auto" chose (NULL: nowhere). "auto" goes to the policy's backend;
 * when that is k8s, only if the cluster answers `kubectl version` within a
 * few seconds, else local. */
void esb_execute(struct esb_policy *policy, const struct esb_request *req,
                 struct esb_result *result, int interrupt_fd, FILE *notes);

#endif
