/* Sessions on the k8s backend: a session is a pod whose first process
 * waits instead of running a program, and a run in it is an exec into
 * that pod (`kubectl exec -i`, or echo-sandbox-kube's where the engine's
 * API client is in use: kube_exec.h) with the handshake, files, collect
 * and stdin of a run's pod (backend/k8s.h runs it, its run->in_session
 * set). The session's id is the
 * pod's name, so nothing of a session lives in the engine: any CLI process
 * or daemon replica that reaches the cluster serves any session.
 *
 * The session's pod is a run's pod of the policy (its image, namespace, pod
 * override, env and resources) with:
 *   - its name ESB_K8S_SESSION_PREFIX and 24 hex digits (the session's id);
 *   - activeDeadlineSeconds: the session's TTL (the policy's session hook
 *     decides it), and the echo-sandbox.io/expires-at annotation after
 *     it, so `cleanup` deletes it once the TTL has passed as it deletes a
 *     crashed run's pod;
 *   - the labels echo-sandbox.io/session=true and
 *     echo-sandbox.io/session-expires=SECONDS (since the epoch), and the
 *     annotation echo-sandbox.io/idle-timeout-ms;
 *   - as its command esb_k8s_session_wait_script, which ends the pod by
 *     itself (exit 0) once no run went on for the idle timeout.
 * A run in it goes through esb_k8s_session_run_script first (the exec'd
 * command), which marks the run for the idle clock, kills every process of
 * the run at its deadline (the engine's kubectl ending does not end what it
 * exec'd: a node only closes its stdin), and kills what the run left once
 * it has ended.
 *
 * The blocking functions run kubectl to completion (esb_k8s_kubectl_run):
 * for the CLI, not for a loop that serves others meanwhile. */
#ifndef ESB_BACKEND_K8S_SESSION_H
#define ESB_BACKEND_K8S_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/plan.h"
#include "backend/pod_status.h"
#include "engine/error.h"

#define ESB_K8S_SESSION_PREFIX "echo-sandbox-s-"
/* A run in a session marks itself NAME.PID in the working dir while it
 * goes on (esb_k8s_session_run_script): the engine's, never a listing's. */
#define ESB_K8S_SESSION_RUN_MARK ".echo-sandbox-run."
#define ESB_K8S_SESSION_HEX 24
#define ESB_K8S_SESSION_ID_LEN (sizeof ESB_K8S_SESSION_PREFIX - 1 + ESB_K8S_SESSION_HEX)
#define ESB_K8S_SESSION_LABEL "echo-sandbox.io/session"

extern const char esb_k8s_session_wait_script[];
extern const char esb_k8s_session_run_script[];
/* A cell's relay to the kernel kept in the pod (k8s_session.c says how). */
extern const char esb_k8s_session_cell_script[];

/* What a kubectl that failed said, for a message: its first line without
 * its klog lines (r's stderr is cut to it). */
struct esb_result;
const char *esb_k8s_kubectl_said(struct esb_result *r);

/* The command of a pod whose first process waits (esb_k8s_session_wait_script
 * for ticks of tick_ms) onto tail, from kubectl run's "--command" on: 0, or
 * -1 out of memory. */
struct esb_strv;
int esb_k8s_session_push_wait(struct esb_strv *tail, uint64_t ticks, uint64_t tick_ms);

/* Whether s has the form of a k8s session's id. */
bool esb_k8s_session_id(const char *s);

/* Makes the session's pod for plan (a plan of the k8s backend) that lives
 * ttl_ms at most and ends idle_timeout_ms after its last run, and waits
 * until it runs, within the policy's pod_running_timeout; a pod that does not run is deleted, and the
 * error says why (parse reads its status). id gets the session's id. */
int esb_k8s_session_create(const struct esb_plan *plan, uint64_t ttl_ms, uint64_t idle_timeout_ms,
                           esb_pod_status_parser parse, char id[ESB_K8S_SESSION_ID_LEN + 1], struct esb_error *err);

/* The kubectl line of a run in session plan->k8s.pod_name: exec -i into
 * it, esb_k8s_session_run_script, the plan's env, then the pod command of
 * a run's pod (k8s_command.h). Freed with esb_strv_free; NULL when out of
 * memory. */
char **esb_k8s_session_exec_argv(const struct esb_plan *plan);

/* The same run's exec'd command alone (what follows kubectl exec's "--"),
 * for the API client's exec (kube_exec.h). Freed with esb_strv_free; NULL
 * when out of memory. */
char **esb_k8s_session_exec_command(const struct esb_plan *plan);

/* The exec of the same command by echo-sandbox-kube with api's cluster and
 * credentials (kube_exec.h): its argv (freed with esb_strv_free), and in
 * *request (*request_len bytes) its stdin: the request, secret the word's,
 * then in (the run's stdin, in_len bytes). NULL (and no request) when out
 * of memory or the helper is not installed. */
struct esb_kube_api;
char **esb_k8s_session_api_exec_argv(const struct esb_plan *plan, const struct esb_kube_api *api, const char *in,
                                     size_t in_len, uint64_t timeout_ms, const char *secret, char **request,
                                     size_t *request_len);

/* How a session whose pod is p stands: "alive", or why it ended: "ttl"
 * (its activeDeadlineSeconds), "idle" (its wait script ended it),
 * "deleted" (being deleted), "memory" (OOMKilled), "evicted", "died"
 * (any other end). A pod that is gone reads "deleted" (the caller's). */
const char *esb_k8s_session_state(const struct esb_pod_status *p);

/* Reads the session's pod (k's cluster, namespace): 0 with *p and *found
 * (false: no such pod), or -1 with err (kubectl failed). */
int esb_k8s_session_read(const struct esb_k8s_settings *k, const char *id, esb_pod_status_parser parse,
                         struct esb_pod_status *p, bool *found, struct esb_error *err);

/* Deletes the session's pod and waits until it is gone (its processes with
 * it), within timeout_ms. *found: whether there was one. */
int esb_k8s_session_remove(const struct esb_k8s_settings *k, const char *id, uint64_t grace_ms,
                           uint64_t timeout_ms, bool *found, struct esb_error *err);

#endif
