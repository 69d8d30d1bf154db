/* A policy: one policy file, loaded once at start-up into its own VM
 * (policy/vm.h), that turns each request into a plan (engine/plan.h) through
 * the policy's `plan` hook; the engine's own k8s invariants are laid over the
 * result (lua/echo_sandbox/engine/k8s_pod.lua).
 *
 * Which file: the explicit path, else $ECHO_SANDBOX_POLICY, else
 * /etc/echo-sandbox/policy.lua, else the installation's policies/default.lua
 * (engine/install_paths.h: the source tree's for a binary in its build tree). */
#ifndef ESB_POLICY_POLICY_H
#define ESB_POLICY_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "backend/k8s_warm.h"
#include "backend/plan.h"
#include "engine/contract/language.h"
#include "engine/contract/request.h"
#include "engine/contract/result.h"
#include "engine/error.h"
#include "policy/session.h"

struct esb_policy;

/* NULL on failure, with err filled (ESB_E_POLICY: file:line and traceback
 * for Lua errors). */
struct esb_policy *esb_policy_open(const char *explicit_path, struct esb_error *err);
void esb_policy_close(struct esb_policy *policy);

/* The file that was loaded. */
const char *esb_policy_path(const struct esb_policy *policy);

/* Fills plan (ESB_PLAN_INIT on entry) from the request; plan->k8s too when
 * the plan's backend is k8s, or when want_k8s is set (explain, check) and
 * the plan has a k8s part (the policy gives a local plan one only for a
 * request that asked for k8s). Returns 0,
 * or -1 with err: ESB_E_INVALID_REQUEST (the hook refused the request: nil,
 * message) or ESB_E_POLICY (a hook failed, hit a limit, or returned something
 * malformed); the plan is then left empty. */
int esb_policy_plan(struct esb_policy *policy, const struct esb_request *req, struct esb_plan *plan, bool want_k8s,
                    struct esb_error *err);

/* Decides a session to be made (policy/session.h) through the policy's hook
 * `session` (req, known), or the engine's defaults where the policy has no
 * such hook. The request's labels are checked first
 * (esb_session_labels_check). d is filled whole (no need to zero it). Returns 0, or -1 with
 * err: ESB_E_INVALID_REQUEST (a bad label, or the hook refused: nil,
 * message) or ESB_E_POLICY (the hook failed, hit a limit, or returned
 * something malformed, named); d is then left empty. */
int esb_policy_session(struct esb_policy *policy, const struct esb_session_ask *ask,
                       const struct esb_session_known *known, struct esb_session_decision *d,
                       struct esb_error *err);

/* The cluster the operator commands (doctor, cleanup) use, from the
 * policy's hook `cluster`: k's namespace_, context and kubeconfig (k zeroed
 * on entry; esb_k8s_settings_release frees them). Returns 0, or -1 with err
 * (ESB_E_POLICY) and k left empty. */
int esb_policy_cluster(struct esb_policy *policy, struct esb_k8s_settings *k, struct esb_error *err);

/* The policy's warm pools (k8s.warm_pools, backend/k8s_warm.h), as read
 * and checked at load: *pools (the policy's, for its life) and how many. */
size_t esb_policy_warm_pools(const struct esb_policy *policy, const struct esb_warm_pool **pools);

/* The settings of a new pod of pool i named pod_name (an
 * ESB_WARM_PREFIX name): image, namespace and overrides_json, the pool's
 * shape rendered for it (k zeroed on entry; esb_k8s_settings_release
 * frees it; the connection flags are the caller's to add). Returns 0, or
 * -1 with err (ESB_E_POLICY). */
int esb_policy_warm_pod(struct esb_policy *policy, size_t i, const char *pod_name, struct esb_k8s_settings *k,
                        struct esb_error *err);

/* The policy's languages (engine/contract/language.h), as its hook
 * `known_languages` lists them, in its order: *out (esb_languages_free) and *n.
 * Returns 0, or -1 with err (ESB_E_POLICY). */
int esb_policy_languages(struct esb_policy *policy, struct esb_language **out, size_t *n, struct esb_error *err);
void esb_languages_free(struct esb_language *languages, size_t n);

#endif
