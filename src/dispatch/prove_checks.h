/* The vocabulary of `doctor --prove` (dispatch/prove.h): its checks, from
 * the one table dispatch/prove_checks.def, and its verdicts. Data only, so
 * that the daemon's metrics print from it too. */
#ifndef ESB_DISPATCH_PROVE_CHECKS_H
#define ESB_DISPATCH_PROVE_CHECKS_H

#include <stdbool.h>

enum esb_prove_id {
#define ESB_PROVE_CHECK(id, ...) ESB_PROVE_##id,
#include "dispatch/prove_checks.def"
#undef ESB_PROVE_CHECK
  ESB_PROVE__COUNT
};

struct esb_prove_check {
  const char *name;    /* "host_files" */
  bool k8s;            /* a probe pod's (else this host's local sandbox) */
  bool quick;          /* in the quick subset (GET /readyz?prove=1) */
  const char *attack;  /* what the probe does */
  const char *held;    /* what decides that the defence held */
};

extern const struct esb_prove_check esb_prove_checks[ESB_PROVE__COUNT];

enum esb_prove_verdict {
  ESB_PROVE_NOT_RUN,        /* not asked for (the quick subset leaves it out) */
  ESB_PROVE_HELD,
  ESB_PROVE_FAILED,
  ESB_PROVE_NOT_APPLICABLE,
  ESB_PROVE_UNPROVEN,
  ESB_PROVE_VERDICT__COUNT
};

/* "not_run", "held", "failed", "not_applicable", "unproven". */
const char *esb_prove_verdict_name(enum esb_prove_verdict v);

#endif
