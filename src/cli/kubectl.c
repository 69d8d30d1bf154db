#include "cli/kubectl.h"


int esb_cli_k8s_settings(struct esb_policy *policy, struct esb_plan *plan, char *err, size_t errlen) {
  char *argv[] = {"true", NULL};
  struct esb_request req = ESB_REQUEST_INIT;
  req.kind = ESB_REQUEST_SHELL;
  req.shell = argv[0];
  req.backend = ESB_BACKEND_K8S;
  return esb_policy_plan(policy, &req, plan, true, err, errlen) == ESB_OK ? 0 : -1;
}

