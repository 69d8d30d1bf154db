/* What the k8s backend needs to know of a pod: read from `kubectl get pod -o
 * json` after kubectl failed, or from each event of `kubectl get -w -o json
 * --output-watch-events` while the program runs, by a parser the caller
 * provides (the engine itself has no JSON: src/codec/pod_status.c parses
 * with cjson). */
#ifndef ESB_BACKEND_POD_STATUS_H
#define ESB_BACKEND_POD_STATUS_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/error.h"

struct esb_pod_status {
  char phase[32];          /* status.phase */
  bool terminated;         /* containerStatuses[0].state.terminated exists */
  int exit_code;           /* its exitCode */
  char reason[64];         /* its reason: Completed, Error, OOMKilled, ... */
  char pod_reason[64];     /* status.reason: DeadlineExceeded, Evicted, ... */
  char message[ESB_MESSAGE_MAX]; /* status.message, a waiting reason's message, or an unmet condition's */
  char event[16];          /* a watch event's type (ADDED, MODIFIED, DELETED); "" for a pod */
  char waiting_reason[64]; /* containerStatuses[0].state.waiting.reason: ErrImagePull, ... */
  bool unschedulable;      /* the PodScheduled condition is False, reason Unschedulable */
  char image[256];         /* spec.containers[0].image */
  char name[64];           /* metadata.name */
  char instance[64];       /* its echo-sandbox.io/instance label */
  bool deleting;           /* metadata.deletionTimestamp is set: a delete (ours, or from outside) */
  int restart_count;       /* containerStatuses[0].restartCount */
  bool not_ready;          /* the Ready condition is False */
  char not_ready_reason[64]; /* its reason: NodeNotReady, ContainersNotReady, ... */
};

/* Returns 0, or -1 when the text is not a pod. */
typedef int (*esb_pod_status_parser)(const char *json, size_t len, struct esb_pod_status *out);

#endif
