/* Whether any request can take a warm pool's pods (doc/warm-pods.md): a
 * request takes a pod of a pool only where its own pod, rendered, is the
 * pool's, so a pool whose entry differs from every plan the policy makes
 * (a resources override no request is given, an image of no language)
 * keeps pods that no run ever claims. That cannot be known of every
 * request; what is checked is the requests of the default shapes, with no
 * limits, labels, env or working dir of their own: a shell line, and code
 * of each language the policy has, on k8s (policy:warm_pool without
 * `like`, and with `like` a plain request of a language, makes one of
 * these). `policy check` and `doctor` warn of a pool none of them takes. */
#ifndef ESB_CLI_WARM_CHECK_H
#define ESB_CLI_WARM_CHECK_H

#include <stddef.h>

#include "engine/error.h"
#include "policy/policy.h"

/* Calls say(pool, tried, userdata) for each pool of the policy that none
 * of the requests tried (their number) takes. Returns how many pools it
 * said, or -1 with err where the policy's languages could not be read. */
int esb_cli_unreached_pools(struct esb_policy *policy, void (*say)(const char *pool, size_t tried, void *userdata),
                            void *userdata, struct esb_error *err);

/* The words of a warning for one such pool, into out (n bytes). */
void esb_cli_unreached_words(const char *pool, size_t tried, char *out, size_t n);

#endif
