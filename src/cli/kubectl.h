/* For the operator commands (cleanup, doctor): the policy's Kubernetes
 * connection settings. */
#ifndef ESB_CLI_KUBECTL_H
#define ESB_CLI_KUBECTL_H

#include <stdint.h>

#include "engine/plan.h"
#include "engine/result.h"
#include "policy/policy.h"

/* The k8s settings the policy gives a plain request (namespace, kubeconfig,
 * context). Returns 0, or -1 with a message; plan is released by the caller. */
int esb_cli_k8s_settings(struct esb_policy *policy, struct esb_plan *plan, char *err, size_t errlen);


#endif
