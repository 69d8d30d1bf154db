/* The kubectl command lines of the k8s backend, built from a plan. Pure
 * functions: `policy explain` prints them, the backend runs them.
 *
 * Rules: resources, service account, node
 * selector, tolerations, labels and annotations travel in --overrides,
 * applied as a strategic merge patch so the generated container keeps its
 * image and command; always -i (stdin carries the handshake and the
 * program's input) and -q (kubectl's chatter stays out of the program's
 * stderr); never -t, never --rm (pods are deleted explicitly). */
#ifndef ESB_BACKEND_K8S_COMMAND_H
#define ESB_BACKEND_K8S_COMMAND_H

#include "backend/plan.h"

/* The kubectl to run: $ECHO_SANDBOX_KUBECTL, else "kubectl" from PATH. */
const char *esb_k8s_kubectl(void);

/* The shell line a container runs first when the plan wants the handshake:
 * it waits for the handshake on stdin, then runs the program between the
 * two marks on stderr (backend/k8s.c says why). A plan with files or
 * collect patterns gets the wrapper of backend/k8s_payload.h instead, which
 * reads the handshake and writes the marks alike.
 *
 * Both run as `/bin/sh -c SCRIPT echo-sandbox NOFILE ARGV...`: NOFILE, the
 * plan's max_open_files (0: none), becomes the program's RLIMIT_NOFILE,
 * soft and hard, in its own process before exec (never raised: a lower
 * hard limit stays); where it cannot be set, the pod ends before the
 * program began (exit 125), the wrapper's failure and never the program's
 * exit. Without the handshake no shell runs first, and nothing sets it.
 *
 * The handshake: a line with the end mark's secret (ESB_K8S_MARK_HEX hex
 * digits), then the start mark itself, "\036", ESB_K8S_MARK_HEX hex digits
 * and a newline, which the pod's command copies to its stderr unread, then
 * the stdout mark, the same with "\037" first, which it copies to its
 * stdout. The end mark, after the program: "\036", the secret, a space,
 * the program's exit status and a newline. */
#define ESB_K8S_MARK_HEX 32
#define ESB_K8S_START_MARK_LEN 34 /* "\036" + ESB_K8S_MARK_HEX + "\n" */
#define ESB_K8S_START_MARK_LEN_S "34"
extern const char esb_k8s_handshake_script[];

/* kubectl [--kubeconfig] [--context] [--namespace] TAIL...: the connection
 * flags of k (all left out when k is NULL), then tail (NULL-terminated).
 * Freed with esb_strv_free; NULL when out of memory. */
char **esb_k8s_kubectl_argv(const struct esb_k8s_settings *k, const char *const *tail);

/* The pod's command onto tail: the wrapper shell, its script and $1 (with
 * the handshake), then the program's argv. 0, or -1 when out of memory. */
struct esb_strv;
int esb_k8s_push_pod_command(struct esb_strv *tail, const struct esb_plan *plan);

/* argv of `kubectl run` for the plan (plan->k8s filled). NULL-terminated,
 * freed with esb_strv_free; NULL when out of memory. */
char **esb_k8s_run_argv(const struct esb_plan *plan);

#endif
