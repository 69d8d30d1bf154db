#include "dispatch/prove_checks.h"

#include <stdbool.h>

const struct esb_prove_check esb_prove_checks[ESB_PROVE__COUNT] = {
#define ON_K8S_local false
#define ON_K8S_k8s true
#define ESB_PROVE_CHECK(id, name, backend, quick, attack, held) \
  [ESB_PROVE_##id] = { name, ON_K8S_##backend, quick, attack, held },
#include "dispatch/prove_checks.def"
#undef ESB_PROVE_CHECK
};

static const char *const verdict_names[ESB_PROVE_VERDICT__COUNT] = {
  [ESB_PROVE_NOT_RUN] = "not_run", [ESB_PROVE_HELD] = "held", [ESB_PROVE_FAILED] = "failed",
  [ESB_PROVE_NOT_APPLICABLE] = "not_applicable", [ESB_PROVE_UNPROVEN] = "unproven",
};

const char *esb_prove_verdict_name(enum esb_prove_verdict v) {
  return (unsigned)v < ESB_PROVE_VERDICT__COUNT ? verdict_names[v] : "unknown";
}
