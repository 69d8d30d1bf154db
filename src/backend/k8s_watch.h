/* One pod watch for many runs: `kubectl get pods -l
 * app.kubernetes.io/managed-by=echo-sandbox --watch --output-watch-events
 * -o json`, shared by the k8s runs of one loop that talk to the same
 * cluster and namespace (batch and serve run many at once; a kubectl per
 * run cost more than the runs on a small machine). Each event goes to the
 * run whose pod it is; a run that subscribes late is first told the latest
 * state of its pod. The watch ends when its last run leaves, and is started
 * again (a second later) if it ends while runs are still there.
 *
 * Callbacks run on the loop; the registry of watches is guarded for loops
 * in several threads. */
#ifndef ESB_BACKEND_K8S_WATCH_H
#define ESB_BACKEND_K8S_WATCH_H

#include "backend/pod_status.h"

/* When the list beside a watch (see k8s_watch.c) begins, after the watch. */
#define ESB_K8S_LIST_AFTER_MS 500

struct esb_k8s_run;
typedef void (*esb_k8s_event_fn)(struct esb_k8s_run *run, const struct esb_pod_status *pod);

/* Adds the run (its loop, plan and parser) to the watch of its cluster;
 * on_event gets its pod's events until esb_k8s_watch_leave. Returns 0, or -1
 * (out of memory, kubectl cannot start): the run goes on without a watch. */
int esb_k8s_watch_join(struct esb_k8s_run *run, esb_k8s_event_fn on_event);

/* Takes the run out; no event reaches it afterwards. Safe when not joined. */
void esb_k8s_watch_leave(struct esb_k8s_run *run);

#endif
