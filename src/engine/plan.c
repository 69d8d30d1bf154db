#include "engine/plan.h"

#include <stdlib.h>

#include "engine/strv.h"

void esb_plan_release(struct esb_plan *plan) {
  esb_strv_free(plan->argv);
  esb_strv_free(plan->env);
  free(plan->working_dir);
  *plan = (struct esb_plan)ESB_PLAN_INIT;
}
