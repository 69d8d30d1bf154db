#include "backend/k8s_command.h"
#include "backend/k8s_payload.h"
#include "engine/strv.h"

#include <stdio.h>
#include <stdlib.h>

#include "tap.h"

/* The index of s in v, or -1. */
static int find(char **v, const char *s) {
  for (int i = 0; v && v[i]; i++)
    if (strcmp(v[i], s) == 0)
      return i;
  return -1;
}

int main(void) {
  unsetenv("ECHO_SANDBOX_KUBECTL");
  is_str(esb_k8s_kubectl(), "kubectl", "kubectl from PATH by default");
  setenv("ECHO_SANDBOX_KUBECTL", "/opt/kubectl", 1);
  is_str(esb_k8s_kubectl(), "/opt/kubectl", "$ECHO_SANDBOX_KUBECTL when set");

  const char *tail[] = {"get", "pods", NULL};
  char **v = esb_k8s_kubectl_argv(NULL, tail);
  is_int(esb_strv_length(v), 3, "no settings: no connection flags");
  is_str(v[0], "/opt/kubectl", "the kubectl first");
  esb_strv_free(v);

  struct esb_k8s_settings k = { .kubeconfig = "/k/config", .context = "ctx", .namespace_ = "jobs" };
  v = esb_k8s_kubectl_argv(&k, tail);
  is_int(esb_strv_length(v), 6, "three connection flags");
  is_str(v[1], "--kubeconfig=/k/config", "kubeconfig");
  is_str(v[2], "--context=ctx", "context");
  is_str(v[3], "--namespace=jobs", "namespace");
  is_str(v[4], "get", "then the tail");
  esb_strv_free(v);

  char *argv[] = {"python3", "-c", "print(1)", NULL};
  char *env[] = {"A=1", NULL};
  struct esb_plan plan = ESB_PLAN_INIT;
  plan.backend = ESB_BACKEND_K8S;
  plan.argv = argv;
  plan.env = env;
  plan.max_open_files = 20;
  plan.k8s = (struct esb_k8s_settings){ .image = "python:3.12-slim", .namespace_ = "jobs",
                                        .pod_name = "echo-sandbox-0123", .overrides_json = "{\"spec\":{}}",
                                        .pod_running_timeout = "30s", .handshake = true };
  v = esb_k8s_run_argv(&plan);
  ok(v != NULL, "a run's argv");
  is_str(v[1], "--namespace=jobs", "with the namespace");
  is_str(v[2], "run", "kubectl run");
  is_str(v[3], "echo-sandbox-0123", "the pod's name");
  ok(find(v, "--image=python:3.12-slim") > 0, "the image");
  ok(find(v, "--restart=Never") > 0 && find(v, "--attach") > 0 && find(v, "-i") > 0 && find(v, "-q") > 0,
     "never restarted, attached, stdin open, quiet");
  ok(find(v, "-t") < 0 && find(v, "--rm") < 0, "no tty, and no --rm: the pod is deleted by us");
  ok(find(v, "--override-type=strategic") > 0 && find(v, "--overrides={\"spec\":{}}") > 0, "the override");
  ok(find(v, "--pod-running-timeout=30s") > 0, "the pod-running timeout");
  ok(find(v, "--env=A=1") > 0, "the environment");
  int dashes = find(v, "--");
  ok(dashes > 0 && find(v, "--command") == dashes - 1, "--command -- before the program");
  is_str(v[dashes + 1], "/bin/sh", "the handshake's shell first");
  is_str(v[dashes + 3], esb_k8s_handshake_script, "with its script");
  char dd[64];
  snprintf(dd, sizeof dd, "dd bs=1 count=%d ", ESB_K8S_START_MARK_LEN);
  ok(strstr(esb_k8s_handshake_script, dd) && strstr(esb_k8s_payload_script, dd),
     "the plain script and the wrapper copy the whole start mark, no more");
  char dd_out[96];
  snprintf(dd_out, sizeof dd_out, "dd bs=1 count=%d >&2 2>/dev/null || exit 125; dd bs=1 count=%d 2>/dev/null",
           ESB_K8S_START_MARK_LEN, ESB_K8S_START_MARK_LEN);
  ok(strstr(esb_k8s_handshake_script, dd_out) != NULL, "then the stdout mark, as long, to stdout");
  is_str(v[dashes + 4], "echo-sandbox", "the script's $0");
  is_str(v[dashes + 5], "20", "its $1: the run's max_open_files, before the program's argv");
  is_str(v[dashes + 6], "python3", "then the program");
  is_str(v[dashes + 8], "print(1)", "and its arguments, as they are");
  ok(v[dashes + 9] == NULL, "and nothing after");
  esb_strv_free(v);

  plan.max_open_files = UINT64_MAX;
  v = esb_k8s_run_argv(&plan);
  is_str(v[find(v, "--") + 5], "2147483647", "a limit past any kernel's, as the most a shell's test compares");
  esb_strv_free(v);

  plan.k8s.handshake = false;
  v = esb_k8s_run_argv(&plan);
  dashes = find(v, "--");
  is_str(v[dashes + 1], "python3", "without the handshake the program comes right after --");
  esb_strv_free(v);
  return tap_done();
}
