#include "backend/k8s.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/k8s_command.h"
#include "engine/strv.h"

extern char **environ;

enum { STEP_RUN, STEP_GET, STEP_DELETE, STEP_DONE };

static void step_done(struct esb_exec *exec, void *userdata);

/* Starts one kubectl child on the loop; -1 with run->exec.result saying why. */
static int start_kubectl(struct esb_k8s_run *run, char **argv, const char *in, size_t in_len,
                         uint64_t timeout_ms, size_t max_output) {
  esb_strv_free(run->argv);
  run->argv = argv;
  run->exec = (struct esb_exec)ESB_EXEC_INIT;
  struct esb_exec *e = &run->exec;
  if (!argv) {
    esb_result_fail(&e->result, ESB_E_SYSTEM, "out of memory");
    return -1;
  }
  e->child.argv = (const char *const *)argv;
  e->child.env = (const char *const *)environ;
  e->stdin_data = in;
  e->stdin_len = in_len;
  e->timeout_ms = timeout_ms;
  e->kill_grace_ms = 1000;
  e->max_output_bytes = max_output;
  e->on_done = step_done;
  e->userdata = run;
  return esb_exec_start(run->loop, e);
}

static int start_get(struct esb_k8s_run *run) {
  const char *tail[] = {"get", "pod", run->plan->k8s.pod_name, "-o", "json", "--request-timeout=10s", NULL};
  run->step = STEP_GET;
  return start_kubectl(run, esb_k8s_kubectl_argv(&run->plan->k8s, tail), NULL, 0, ESB_K8S_GET_TIMEOUT_MS, 4u << 20);
}

static int start_delete(struct esb_k8s_run *run) {
  const struct esb_k8s_settings *k = &run->plan->k8s;
  char request_timeout[64];
  snprintf(request_timeout, sizeof request_timeout, "--request-timeout=%llums",
           (unsigned long long)k->delete_timeout_ms);
  const char *tail[] = {"delete", "pod", k->pod_name, "--ignore-not-found", "--wait=false", request_timeout, NULL};
  run->step = STEP_DELETE;
  return start_kubectl(run, esb_k8s_kubectl_argv(k, tail), NULL, 0, k->delete_timeout_ms, 65536);
}

/* kubectl appends "pod NS/NAME terminated (REASON)\n<message>" to the
 * program's stderr after a non-zero exit, even with -q: drop it. */
static void drop_kubectl_trailer(struct esb_k8s_run *run, struct esb_capture *err) {
  if (!err->data)
    return;
  char needle[256];
  snprintf(needle, sizeof needle, "pod %s/%s terminated (", run->plan->k8s.namespace_, run->plan->k8s.pod_name);
  char *last = NULL;
  for (char *p = err->data; (p = memmem(p, err->len - (size_t)(p - err->data), needle, strlen(needle))); p++)
    last = p;
  if (!last || (last != err->data && last[-1] != '\n'))
    return;
  size_t cut = err->len - (size_t)(last - err->data);
  err->len -= cut;
  err->total -= cut;
  err->data[err->len] = '\0';
}

static char *capture_text(const struct esb_capture *c) {
  return strndup(c->data ? c->data : "", c->len);
}

/* The result of the program, from the run step and, when kubectl failed,
 * the pod's status. */
static void decide(struct esb_k8s_run *run) {
  struct esb_result *r = &run->result;
  const struct esb_pod_status *pod = &run->pod;
  if (run->interrupted) {
    esb_result_fail(r, ESB_E_INTERRUPTED, "the executor was interrupted by a signal; the pod was deleted");
    return;
  }
  if (r->status == ESB_STATUS_ERROR)
    return; /* decided already */
  bool never_ran = run->have_pod && !pod->terminated && strcmp(pod->phase, "Pending") == 0;
  if (r->status == ESB_STATUS_TIMED_OUT && !never_ran)
    return; /* our deadline: kubectl was killed */
  if (r->status == ESB_STATUS_EXITED && r->exit_code == 0)
    return; /* kubectl exit 0: the program's result */
  if (run->have_pod && pod->terminated) {
    if (strcmp(pod->reason, "OOMKilled") == 0) {
      r->status = ESB_STATUS_OOM_KILLED;
      r->signal = 9;
      r->reason = "OOMKilled";
    } else if (strcmp(pod->pod_reason, "DeadlineExceeded") == 0) {
      r->status = ESB_STATUS_TIMED_OUT;
      r->reason = "DeadlineExceeded";
    } else {
      r->status = ESB_STATUS_EXITED;
      r->exit_code = pod->exit_code;
      r->reason = pod->exit_code == 0 ? "Completed" : "Error";
    }
    r->exit_code = esb_result_exit_code(r);
    return;
  }
  if (run->have_pod && strcmp(run->pod.pod_reason, "DeadlineExceeded") == 0) {
    r->status = ESB_STATUS_TIMED_OUT;
    r->reason = "DeadlineExceeded";
    r->exit_code = esb_result_exit_code(r);
    return;
  }
  /* The pod never ran: everything on stderr was kubectl's. */
  const char *said = run->kubectl_stderr && *run->kubectl_stderr ? run->kubectl_stderr
                     : r->status == ESB_STATUS_TIMED_OUT ? "the request's deadline passed while it was pending"
                     : "kubectl failed";
  if (run->have_pod)
    esb_result_fail(r, ESB_E_BACKEND, "pod %s never ran (phase %s%s%s): %s", run->plan->k8s.pod_name,
                    pod->phase, pod->message[0] ? ", " : "", pod->message, said);
  else
    esb_result_fail(r, ESB_E_BACKEND, "%s", said);
  esb_capture_release(&r->err);
}

static void finish(struct esb_k8s_run *run) {
  run->step = STEP_DONE;
  decide(run);
  if (run->on_done)
    run->on_done(run, run->userdata);
}

static void step_done(struct esb_exec *exec, void *userdata) {
  struct esb_k8s_run *run = userdata;
  struct esb_result *er = &exec->result;
  switch (run->step) {
  case STEP_RUN: {
    run->interrupted = er->status == ESB_STATUS_ERROR && er->error == ESB_E_INTERRUPTED;
    /* The run's result is the program's, with kubectl's words taken out. */
    const char *pod = run->result.pod;
    char pod_name[64];
    snprintf(pod_name, sizeof pod_name, "%s", pod);
    run->result = *er;
    *er = (struct esb_result)ESB_RESULT_INIT;
    snprintf(run->result.pod, sizeof run->result.pod, "%s", pod_name);
    run->result.sandbox_type = "k8s";
    run->result.isolation = NULL;
    bool failed = run->result.status != ESB_STATUS_EXITED || run->result.exit_code != 0;
    if (failed)
      run->kubectl_stderr = capture_text(&run->result.err);
    drop_kubectl_trailer(run, &run->result.err);
    if (run->result.status == ESB_STATUS_ERROR && !run->interrupted) {
      /* kubectl did not start: no pod to look at or delete */
      esb_result_fail(&run->result, ESB_E_BACKEND_UNAVAILABLE, "cannot run %s: %s", esb_k8s_kubectl(),
                      run->result.error_message ? run->result.error_message : "unknown error");
      finish(run);
      return;
    }
    /* A timeout too: a pod still Pending at the deadline never ran. */
    if (failed && !run->interrupted && start_get(run) == 0)
      return;
    break;
  }
  case STEP_GET:
    if (er->status == ESB_STATUS_EXITED && er->exit_code == 0 && run->parse_pod)
      run->have_pod = run->parse_pod(er->out.data ? er->out.data : "", er->out.len, &run->pod) == 0;
    esb_result_release(er);
    break;
  case STEP_DELETE:
    if (er->status != ESB_STATUS_EXITED || er->exit_code != 0) {
      const char *what = er->status == ESB_STATUS_TIMED_OUT ? "timed out" : "failed";
      char *said = capture_text(&er->err);
      if (asprintf(&run->result.cleanup_error, "kubectl delete pod %s %s%s%s", run->plan->k8s.pod_name, what,
                   said && *said ? ": " : "", said ? said : "") < 0)
        run->result.cleanup_error = NULL;
      free(said);
    }
    esb_result_release(er);
    finish(run);
    return;
  }
  /* After run or get: always delete. */
  if (start_delete(run) < 0) {
    run->result.cleanup_error = run->exec.result.error_message;
    run->exec.result.error_message = NULL;
    esb_result_release(&run->exec.result);
    finish(run);
  }
}

int esb_k8s_start(struct esb_k8s_run *run, struct esb_loop *loop, const struct esb_plan *plan) {
  run->loop = loop;
  run->plan = plan;
  run->step = STEP_RUN;
  run->result.sandbox_type = "k8s";
  snprintf(run->result.pod, sizeof run->result.pod, "%s", plan->k8s.pod_name);
  const struct esb_k8s_settings *k = &plan->k8s;
  if (k->handshake) {
    run->stdin_len = 1 + plan->stdin_len;
    if (!(run->stdin_buf = malloc(run->stdin_len))) {
      esb_result_fail(&run->result, ESB_E_SYSTEM, "out of memory");
      return -1;
    }
    run->stdin_buf[0] = '\n';
    if (plan->stdin_len)
      memcpy(run->stdin_buf + 1, plan->stdin_data, plan->stdin_len);
  }
  const char *in = k->handshake ? run->stdin_buf : plan->stdin_data;
  size_t in_len = k->handshake ? run->stdin_len : plan->stdin_len;
  if (start_kubectl(run, esb_k8s_run_argv(plan), in, in_len, plan->timeout_ms, plan->max_output_bytes) < 0) {
    const char *msg = run->exec.result.error_message;
    esb_result_fail(&run->result, ESB_E_BACKEND_UNAVAILABLE, "cannot run %s: %s", esb_k8s_kubectl(),
                    msg ? msg : "unknown error");
    esb_result_release(&run->exec.result);
    return -1;
  }
  return 0;
}

void esb_k8s_release(struct esb_k8s_run *run) {
  esb_strv_free(run->argv);
  run->argv = NULL;
  free(run->stdin_buf);
  run->stdin_buf = NULL;
  free(run->kubectl_stderr);
  run->kubectl_stderr = NULL;
  esb_result_release(&run->exec.result);
}

void esb_k8s_kubectl_run(const struct esb_k8s_settings *k, const char *const *tail, uint64_t timeout_ms,
                         struct esb_result *result) {
  char **argv = esb_k8s_kubectl_argv(k, tail);
  if (!argv) {
    esb_result_fail(result, ESB_E_SYSTEM, "out of memory");
    return;
  }
  struct esb_loop loop = ESB_LOOP_INIT;
  struct esb_exec exec = ESB_EXEC_INIT;
  exec.child.argv = (const char *const *)argv;
  exec.child.env = (const char *const *)environ;
  exec.timeout_ms = timeout_ms;
  exec.max_output_bytes = 64u << 20;
  if (esb_exec_start(&loop, &exec) == 0)
    esb_loop_run(&loop);
  *result = exec.result;
  esb_strv_free(argv);
}
