#include "cli/warm_check.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/plan.h"
#include "engine/contract/language.h"
#include "engine/contract/request.h"

/* Marks the pool whose pods req's plan on k8s takes. A request the policy
 * rejects takes none. */
static void mark_pool(struct esb_policy *policy, struct esb_request *req, const struct esb_warm_pool *pools, size_t n,
                      bool *taken) {
  struct esb_plan plan = ESB_PLAN_INIT;
  struct esb_error err = ESB_ERROR_INIT;
  req->backend = ESB_BACKEND_K8S;
  if (esb_policy_plan(policy, req, &plan, true, &err) == 0 && plan.k8s.warm_pool)
    for (size_t i = 0; i < n; i++)
      taken[i] |= strcmp(pools[i].name, plan.k8s.warm_pool) == 0;
  esb_plan_release(&plan);
}

int esb_cli_unreached_pools(struct esb_policy *policy, void (*say)(const char *pool, size_t tried, void *userdata),
                            void *userdata, struct esb_error *err) {
  const struct esb_warm_pool *pools;
  size_t n = esb_policy_warm_pools(policy, &pools), n_languages = 0, said = 0;
  struct esb_language *languages = NULL;
  if (n == 0)
    return 0;
  bool *taken = calloc(n, sizeof *taken);
  if (!taken || esb_policy_languages(policy, &languages, &n_languages, err) < 0) {
    if (!taken)
      esb_error_set(err, ESB_E_SYSTEM, "out of memory");
    free(taken);
    return -1;
  }
  char shell[] = ":", empty[] = ""; /* borrowed: the requests are not released */
  struct esb_request req = ESB_REQUEST_INIT;
  req.kind = ESB_REQUEST_SHELL;
  req.shell = shell;
  mark_pool(policy, &req, pools, n, taken);
  for (size_t l = 0; l < n_languages; l++) {
    req = (struct esb_request)ESB_REQUEST_INIT;
    req.kind = ESB_REQUEST_CODE;
    req.language = languages[l].name;
    req.code = empty;
    mark_pool(policy, &req, pools, n, taken);
  }
  for (size_t i = 0; i < n; i++)
    if (!taken[i]) {
      say(pools[i].name, 1 + n_languages, userdata);
      said++;
    }
  esb_languages_free(languages, n_languages);
  free(taken);
  return (int)said;
}

void esb_cli_unreached_words(const char *pool, size_t tried, char *out, size_t n) {
  snprintf(out, n, "warm pool %s: none of %zu requests of the default shapes (a shell line, code of each of the "
           "policy's languages, no limits of their own) gets its pod, so runs may never claim its pods; the pool's "
           "entry differs from the policy's plans (policy:warm_pool { like = ... } makes the pod of a request)",
           pool, tried);
}
