#include "dispatch/execute.h"

#include "backend/k8s.h"
#include "backend/local.h"
#include "luaglue/pod_status.h"
#include "engine/plan.h"

void esb_execute(struct esb_policy *policy, const struct esb_request *req,
                 struct esb_result *result, int interrupt_fd) {
  struct esb_plan plan = ESB_PLAN_INIT;
  char err[2048];
  enum esb_error code = esb_policy_plan(policy, req, &plan, false, err, sizeof err);
  if (code != ESB_OK) {
    esb_result_fail(result, code, "%s", err);
    return;
  }
  if (plan.backend == ESB_BACKEND_K8S)
    esb_k8s_run_plan(&plan, esb_lua_parse_pod_status, result, interrupt_fd);
  else
    esb_local_run_plan(&plan, result, interrupt_fd);
  esb_plan_release(&plan);
}
