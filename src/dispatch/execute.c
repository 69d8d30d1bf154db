#include "dispatch/execute.h"

#include <stdbool.h>

#include "backend/k8s.h"
#include "backend/local.h"
#include "luaglue/pod_status.h"
#include "engine/plan.h"

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

void esb_execute(struct esb_policy *policy, const struct esb_request *req,
                 struct esb_result *result, int interrupt_fd, FILE *notes) {
  struct esb_plan plan = ESB_PLAN_INIT;
  char err[2048];
  enum esb_error code = esb_policy_plan(policy, req, &plan, false, err, sizeof err);
  if (code != ESB_OK) {
    esb_result_fail(result, code, "%s", err);
    return;
  }
  if (plan.backend == ESB_BACKEND_K8S && req->backend == ESB_BACKEND_AUTO)
    choose_auto(&plan, notes);
  if (plan.backend == ESB_BACKEND_K8S)
    esb_k8s_run_plan(&plan, esb_lua_parse_pod_status, result, interrupt_fd);
  else
    esb_local_run_plan(&plan, result, interrupt_fd);
  esb_plan_release(&plan);
}
