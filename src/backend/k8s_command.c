#include "backend/k8s_command.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend/k8s_payload.h"
#include "engine/strv.h"

/* $1, the engine's: the run's max_open_files (0: none), taken off before
 * the program's argv. Line 1 (the end mark's secret, which the shell keeps)
 * only once kubectl is attached. The open-file limit, never raised (a hard
 * limit below it already holds), tried in a subshell before the start mark:
 * one that cannot be set ends the pod with 125 before the program began, as
 * the pod's failure (k8s.c), never the program's exit. The start mark copied
 * byte by byte by dd to stderr, then its twin to stdout, so that no process
 * the program can read holds them; the program in a child of the shell, so
 * that the shell outlives it to write the end mark with its status; its
 * limit set in that child before exec, not in the shell, which needs
 * descriptors after it (its end mark's redirection), as the trial showed it
 * can be (that exit 125 cannot come). The
 * kubelet's SIGTERM (a delete's) goes to the container's first process, the
 * shell: it is passed on to the program, which runs in the background for
 * that (its stdin given back through fd 3; the shell waits again until it
 * ended). */
const char esb_k8s_handshake_script[] =
  "n=$1; shift; IFS= read -r e || exit 125; h=$(ulimit -Hn) || exit 125; "
  "[ \"$h\" = unlimited ] || [ \"$n\" -le \"$h\" ] || n=$h; "
  "[ \"$n\" = 0 ] || (ulimit -n \"$n\") || { echo \"echo-sandbox: lowering the open-file limit to $n failed\" >&2; "
  "exit 125; }; "
  "dd bs=1 count=" ESB_K8S_START_MARK_LEN_S " >&2 2>/dev/null || exit 125; "
  "dd bs=1 count=" ESB_K8S_START_MARK_LEN_S " 2>/dev/null || exit 125; "
  "exec 3<&0; ( [ \"$n\" = 0 ] || ulimit -n \"$n\" || exit 125; exec \"$@\" ) <&3 3<&- & p=$!; exec 3<&-; "
  "trap 'kill -TERM \"$p\" 2>/dev/null' TERM; "
  "while wait \"$p\"; s=$?; [ \"$s\" -gt 128 ] && kill -0 \"$p\" 2>/dev/null; do :; done; "
  "printf '\\036%s %s\\n' \"$e\" \"$s\" >&2; exit \"$s\"";

const char *esb_k8s_kubectl(void) {
  const char *k = getenv("ECHO_SANDBOX_KUBECTL");
  return k && *k ? k : "kubectl";
}

static int push_flag(struct esb_strv *sv, const char *name, const char *value) {
  char *s;
  if (asprintf(&s, "--%s=%s", name, value) < 0)
    return -1;
  return esb_strv_take(sv, s);
}

int esb_k8s_push_pod_command(struct esb_strv *tail, const struct esb_plan *plan) {
  int rc = 0;
  if (plan->k8s.handshake) {
    rc |= esb_strv_push(tail, "/bin/sh");
    rc |= esb_strv_push(tail, "-c");
    rc |= esb_strv_push(tail, esb_k8s_payload_wanted(plan) ? esb_k8s_payload_script : esb_k8s_handshake_script);
    rc |= esb_strv_push(tail, "echo-sandbox");
    /* the scripts' $1: a number of the engine's, before the program's
     * argv; no more than INT32_MAX, which no kernel's RLIMIT_NOFILE exceeds
     * (fs.nr_open), so that the shell's test can compare it */
    char nofile[24];
    snprintf(nofile, sizeof nofile, "%" PRIu64, plan->max_open_files < INT32_MAX ? plan->max_open_files : INT32_MAX);
    rc |= esb_strv_push(tail, nofile);
  }
  for (char **a = plan->argv; a && *a; a++)
    rc |= esb_strv_push(tail, *a);
  return rc;
}

char **esb_k8s_run_argv(const struct esb_plan *plan) {
  const struct esb_k8s_settings *k = &plan->k8s;
  struct esb_strv tail = ESB_STRV_INIT;
  int rc = esb_strv_push(&tail, "run");
  rc |= esb_strv_push(&tail, k->pod_name);
  rc |= push_flag(&tail, "image", k->image);
  rc |= esb_strv_push(&tail, "--restart=Never");
  rc |= esb_strv_push(&tail, "--attach");
  rc |= esb_strv_push(&tail, "-i");
  rc |= esb_strv_push(&tail, "-q");
  rc |= push_flag(&tail, "pod-running-timeout", k->pod_running_timeout);
  rc |= esb_strv_push(&tail, "--override-type=strategic");
  rc |= push_flag(&tail, "overrides", k->overrides_json);
  for (char **e = plan->env; e && *e; e++)
    rc |= push_flag(&tail, "env", *e);
  rc |= esb_strv_push(&tail, "--command");
  rc |= esb_strv_push(&tail, "--");
  rc |= esb_k8s_push_pod_command(&tail, plan);
  char **argv = rc ? NULL : esb_k8s_kubectl_argv(k, (const char *const *)tail.v);
  esb_strv_clear(&tail);
  return argv;
}

char **esb_k8s_kubectl_argv(const struct esb_k8s_settings *k, const char *const *tail) {
  struct esb_strv sv = ESB_STRV_INIT;
  int rc = esb_strv_push(&sv, esb_k8s_kubectl());
  if (k && k->kubeconfig) rc |= push_flag(&sv, "kubeconfig", k->kubeconfig);
  if (k && k->context) rc |= push_flag(&sv, "context", k->context);
  if (k && k->namespace_) rc |= push_flag(&sv, "namespace", k->namespace_);
  for (; *tail; tail++)
    rc |= esb_strv_push(&sv, *tail);
  if (rc) {
    esb_strv_clear(&sv);
    return NULL;
  }
  return esb_strv_detach(&sv);
}
