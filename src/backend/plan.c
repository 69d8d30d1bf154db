#include "backend/plan.h"

#include <stdlib.h>
#include <string.h>

#include "engine/strv.h"

static const char *const isolation_names[] = {
  [ESB_ISOLATION_NAMESPACES] = "namespaces", [ESB_ISOLATION_BEST_EFFORT] = "best_effort",
  [ESB_ISOLATION_RLIMITS] = "rlimits",
};

const char *esb_isolation_name(enum esb_isolation isolation) {
  return (unsigned)isolation < sizeof isolation_names / sizeof isolation_names[0] ? isolation_names[isolation]
                                                                                   : "namespaces";
}

int esb_isolation_parse(const char *name, enum esb_isolation *isolation) {
  for (size_t i = 0; i < sizeof isolation_names / sizeof isolation_names[0]; i++) {
    if (strcmp(name, isolation_names[i]) == 0) {
      *isolation = (enum esb_isolation)i;
      return 0;
    }
  }
  return -1;
}

void esb_plan_release(struct esb_plan *plan) {
  esb_strv_free(plan->argv);
  esb_strv_free(plan->env);
  esb_strv_free(plan->clamped);
  free(plan->working_dir);
  free(plan->code_file);
  free(plan->owned_files); /* its entries' bytes are the request's */
  free(plan->local.working_dir);
  for (size_t i = 0; i < plan->local.n_mounts; i++) {
    free((char *)plan->local.mounts[i].host);
    free((char *)plan->local.mounts[i].path);
  }
  free(plan->local.mounts);
  free(plan->local.network_allow);
  esb_plan_release_egress(plan);
  esb_k8s_settings_release(&plan->k8s);
  *plan = (struct esb_plan)ESB_PLAN_INIT;
}

void esb_k8s_settings_release(struct esb_k8s_settings *k) {
  free(k->image);
  free(k->namespace_);
  free(k->pod_name);
  free(k->overrides_json);
  free(k->pod_running_timeout);
  free(k->context);
  free(k->kubeconfig);
  free(k->warm_pool);
  *k = (struct esb_k8s_settings){ 0 };
}
