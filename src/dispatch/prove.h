/* `doctor --prove`: the attacks of the security model, run against the live
 * configuration through the path a request takes: each check is a request
 * (a program, echo-sandbox-probe, carried in its files) that the loaded
 * policy plans and the local backend runs, as it would any other. The
 * checks and what decides each are one table (dispatch/prove_checks.def),
 * which every face prints from: the CLI's lines and JSON, the daemon's
 * GET /readyz?prove=1 and /metrics.
 *
 * A check says held, failed (with what got through), not applicable (why),
 * or unproven: the attack could not be made (no probe, a run the engine
 * could not start), which proves nothing either way. Nothing of the host is
 * harmed when a defence fails: every bomb is bounded, the file check uses a
 * marker of its own, and a process left behind is killed. */
#ifndef ESB_DISPATCH_PROVE_H
#define ESB_DISPATCH_PROVE_H

#include <stdbool.h>
#include <stddef.h>

#include "dispatch/prove_checks.h"
#include "policy/policy.h"

#define ESB_PROVE_DETAIL_MAX 1024

struct esb_prove_outcome {
  enum esb_prove_verdict verdict;
  char detail[ESB_PROVE_DETAIL_MAX]; /* what the attack saw, or why not applicable */
  double duration_ms;
};

struct esb_prove_options {
  bool quick;              /* only the quick checks (the others NOT_RUN) */
  const char *k8s_skipped; /* NULL: the probe pods run too; else why not: the
                              k8s checks are NOT_APPLICABLE with this detail */
  const char *target;      /* "HOST:PORT" (or "[V6]:PORT") that a pod without the
                              network tries as well (a public address shows a CNI
                              that ignores NetworkPolicy); NULL: none */
};

/* Runs the checks one after another and fills out[ESB_PROVE__COUNT]. The
 * local ones go to the local backend whatever the policy's backend, the
 * k8s ones to the policy's cluster. Blocks; not thread-safe with other
 * users of the policy. */
void esb_prove(struct esb_policy *policy, const struct esb_prove_options *opts, struct esb_prove_outcome *out);

/* Whether a check failed or could not be proven: the doctor then exits 1,
 * and GET /readyz?prove=1 answers 503. */
bool esb_prove_any_failed(const struct esb_prove_outcome *out);

/* {"checks": [{"name", "verdict", "detail", "attack", "held_when",
 * "duration_ms"}, ...], "failed": N} into buf, NUL-terminated; the checks
 * not run are left out. Returns the length, or the length it needs when
 * that is n or more. */
size_t esb_prove_json(const struct esb_prove_outcome *out, char *buf, size_t n);

#endif
