/* Warm pods: pods made ahead of demand, one pool of them for each pod
 * shape the policy names (its k8s.warm_pools), each used by one run and
 * deleted after it (doc/warm-pods.md).
 *
 * A warm pod is a session's pod in all but its labels (k8s_session.h): its
 * first process waits (esb_k8s_session_wait_script), and a run is kubectl
 * exec -i into it with the handshake, the env, files, code and stdin of the
 * request, exactly as a run in a session goes. Nothing of a request is in
 * the pod before its run: the pod is made from the pool's shape alone.
 *
 * Its labels say what it is and who may take it:
 *   echo-sandbox.io/warm-pool     the pool's name
 *   echo-sandbox.io/warm-hash     ESB_WARM_HASH_HEX hex digits of the pool's
 *                                 shape (the rendered pod, image and
 *                                 namespace): a pod whose hash the policy no
 *                                 longer has is never claimed, and replaced
 *   echo-sandbox.io/warm-state    ready, then claimed by the one run it serves
 *   echo-sandbox.io/warm-expires  when its activeDeadlineSeconds (the pool's
 *                                 max age) ends it, seconds since the epoch
 *
 * The claim: list the pool's pods of the hash in state ready, then patch
 * one's state label to claimed with the resourceVersion the list gave in
 * the patch's metadata (a precondition): the API server takes the change only where the pod
 * is still as listed, so two engines never take the same pod (the loser
 * gets 409 Conflict and tries the next), and a pod that was evicted,
 * deleted or changed after the list is never taken. Nothing of a claim is
 * kept in a process. */
#ifndef ESB_BACKEND_K8S_WARM_H
#define ESB_BACKEND_K8S_WARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/plan.h"
#include "engine/error.h"

#define ESB_WARM_PREFIX "echo-sandbox-w-"
#define ESB_WARM_POOL_LABEL "echo-sandbox.io/warm-pool"
#define ESB_WARM_HASH_LABEL "echo-sandbox.io/warm-hash"
#define ESB_WARM_STATE_LABEL "echo-sandbox.io/warm-state"
#define ESB_WARM_EXPIRES_LABEL "echo-sandbox.io/warm-expires"
#define ESB_WARM_HASH_HEX 16
/* How long a run looks for a warm pod before it makes its own, where the
 * pool says nothing. */
#define ESB_WARM_CLAIM_GRACE_MS 200
/* A pod is claimed only where its max age leaves the run's deadline and
 * this much more: the pool's activeDeadlineSeconds must not end a run. */
#define ESB_WARM_MARGIN_S 10

/* A pool of the policy, as read at load (policy/warm_pool_fields.def). */
struct esb_warm_pool {
  char *name;
  char *namespace_;
  char *image;
  char *shape;              /* the rendered shape that requests are matched against */
  char hash[ESB_WARM_HASH_HEX + 1]; /* of shape: the pods' warm-hash label */
  uint64_t size;            /* the ready pods the maintainer keeps */
  uint64_t max_age_s;       /* the pods' activeDeadlineSeconds */
  uint64_t claim_grace_ms;
  bool network;
};

void esb_warm_pool_release(struct esb_warm_pool *pool);

/* The hash of a shape: FNV-1a 64, in hex. */
void esb_warm_hash(const char *shape, char out[ESB_WARM_HASH_HEX + 1]);

/* A warm pod as a list shows it. */
struct esb_warm_pod {
  char name[64];
  char resource_version[32];
  char phase[24];
  char reason[32];          /* status.reason: Evicted, DeadlineExceeded, ... */
  char state[16];           /* its warm-state label */
  char pool[64];
  char hash[ESB_WARM_HASH_HEX + 1];
  bool ready;               /* the Ready condition is True */
  bool deleting;            /* a deletionTimestamp is set */
  int64_t expires;          /* its warm-expires label (0: none) */
  int64_t created;          /* creationTimestamp, seconds since the epoch (0: unknown) */
};

/* The lines of esb_warm_parse from a PodList's JSON (the API's answer to
 * a list); malloc'd, NULL where it is not one. Made outside the backend
 * (codec/pod_status.h), as the pod status parser is. */
typedef char *(*esb_warm_list_parser)(const char *json, size_t len, size_t *out_len);

/* The kubectl words after kubectl (NULL-terminated, static but for the
 * selector, which the caller's buffer holds) of a list of the warm pods:
 * of pool (NULL: of every pool), of hash and state where given. */
#define ESB_WARM_SELECTOR_MAX 256
int esb_warm_list_tail(const char *pool, const char *hash, const char *state, char selector[ESB_WARM_SELECTOR_MAX],
                       const char *tail[8]);

/* Reads the list's output (text, len) into *pods (malloc'd, the caller's)
 * and *n. Returns 0, or -1 out of memory. Lines that do not read are
 * skipped: a pod the engine cannot read is never claimed. */
int esb_warm_parse(const char *text, size_t len, struct esb_warm_pod **pods, size_t *n);

/* Whether p may be claimed by a run that must end before not_after
 * (seconds since the epoch): ready, running, not being deleted, and its
 * max age ending after not_after. */
bool esb_warm_claimable(const struct esb_warm_pod *p, int64_t not_after);

/* The claim of p: a merge patch of its state label to claimed that carries
 * the resourceVersion listed, which the API server takes as a precondition
 * (409 Conflict where the pod changed since). Into out (n bytes): 0, or -1
 * where it does not fit or the resourceVersion is not a plain token. */
int esb_warm_claim_patch(const struct esb_warm_pod *p, char *out, size_t n);

/* argv of the claim of p by kubectl patch (with k's connection flags): one
 * request, where kubectl label would GET the pod first. NULL when out of
 * memory or the patch cannot be made. */
char **esb_warm_claim_argv(const struct esb_k8s_settings *k, const struct esb_warm_pod *p);

/* The pods that runs of this process are claiming or hold, so that its
 * other runs pass them by: a claim of one would lose (409) and cost a
 * kubectl. Only tries are saved here: which run gets a pod is the
 * resourceVersion's to decide, between processes as within one. Safe from
 * any thread. esb_warm_take returns false where name is taken already (or
 * the set is full: the claim then goes ahead, and may lose). */
bool esb_warm_taken(const char *name);
bool esb_warm_take(const char *name);
void esb_warm_let_go(const char *name);

/* Whether kubectl's words say that the claim lost: the pod changed or is
 * gone since the list (409 Conflict, NotFound). */
bool esb_warm_claim_lost(const char *said);

/* The words after kubectl of the create of warm pod `name` of pool: k's
 * image and overrides_json (rendered for this pod: its container is named
 * as the pod), the warm labels (state ready, expires at expires), the wait
 * script for the pool's max age. NULL when out of memory. */
char **esb_warm_create_tail(const struct esb_k8s_settings *k, const struct esb_warm_pool *pool, const char *name,
                            int64_t expires);

#endif
