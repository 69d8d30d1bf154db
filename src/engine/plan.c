#include "engine/plan.h"

#include <stdlib.h>

#include "engine/strv.h"

void esb_plan_release(struct esb_plan *plan) {
  esb_strv_free(plan->argv);
  esb_strv_free(plan->env);
  esb_strv_free(plan->clamped);
  free(plan->working_dir);
  struct esb_k8s_settings *k = &plan->k8s;
  free(k->image);
  free(k->namespace_);
  free(k->pod_name);
  free(k->overrides_json);
  free(k->pod_running_timeout);
  free(k->context);
  free(k->kubeconfig);
  *plan = (struct esb_plan)ESB_PLAN_INIT;
}
