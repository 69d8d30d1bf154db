#include "engine/contract/result.h"

#include <assert.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

const char *esb_status_name(enum esb_status status) {
  switch (status) {
  case ESB_STATUS_EXITED: return "exited";
  case ESB_STATUS_SIGNALED: return "signaled";
  case ESB_STATUS_TIMED_OUT: return "timed_out";
  case ESB_STATUS_OOM_KILLED: return "oom_killed";
  case ESB_STATUS_ERROR: return "error";
  }
  return "error";
}

void esb_result_release(struct esb_result *r) {
  esb_capture_release(&r->out);
  esb_capture_release(&r->err);
  free(r->error_message);
  free(r->cleanup_error);
  esb_strv_clear(&r->warnings);
  free(r->fallback);
  esb_collected_release(&r->files);
  esb_egress_ledger_release(&r->egress);
  *r = (struct esb_result)ESB_RESULT_INIT;
}

void esb_result_move(struct esb_result *dst, struct esb_result *src) {
  assert(dst != src);
  esb_result_release(dst);
  *dst = *src;
  *src = (struct esb_result)ESB_RESULT_INIT;
}

void esb_result_fail(struct esb_result *r, enum esb_error_code code, const char *fmt, ...) {
  char buf[ESB_MESSAGE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  free(r->error_message);
  r->error_message = strdup(buf); /* NULL on OOM: readers fall back to esb_strerror */
  r->status = ESB_STATUS_ERROR;
  r->error = code;
  r->reason = esb_error_name(code);
  r->exit_code = esb_result_exit_code(r);
}

void esb_result_fail_error(struct esb_result *r, const struct esb_error *err) {
  esb_result_fail(r, err->code, "%s", err->message);
}

void esb_result_warn(struct esb_result *r, const char *fmt, ...) {
  char buf[ESB_MESSAGE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  (void)esb_strv_push(&r->warnings, buf);
}

static void ended(struct esb_result *r, enum esb_status status, int code, int sig, const char *reason) {
  r->status = status;
  r->exit_code = code;
  r->signal = sig;
  r->reason = reason;
  r->exit_code = esb_result_exit_code(r);
}

void esb_result_exited(struct esb_result *r, int code) {
  ended(r, ESB_STATUS_EXITED, code, 0, code == 0 ? "Completed" : "Error");
}

void esb_result_signaled(struct esb_result *r, int sig) {
  ended(r, ESB_STATUS_SIGNALED, 0, sig, "Signaled");
}

void esb_result_wait_status(struct esb_result *r, int wstatus) {
  if (WIFSIGNALED(wstatus))
    esb_result_signaled(r, WTERMSIG(wstatus));
  else
    esb_result_exited(r, WEXITSTATUS(wstatus));
}

/* The signal that ended it, if one did, stays: SIGTERM or SIGKILL, ours. */
void esb_result_timed_out(struct esb_result *r) {
  ended(r, ESB_STATUS_TIMED_OUT, 0, r->signal, "DeadlineExceeded");
}

void esb_result_cpu_time_exceeded(struct esb_result *r) {
  ended(r, ESB_STATUS_TIMED_OUT, 0, r->signal, "CpuTimeExceeded");
}

void esb_result_oom_killed(struct esb_result *r) {
  ended(r, ESB_STATUS_OOM_KILLED, 0, SIGKILL, ESB_REASON_OOM_KILLED);
}

int esb_result_exit_code(const struct esb_result *r) {
  switch (r->status) {
  case ESB_STATUS_EXITED: return r->exit_code;
  case ESB_STATUS_SIGNALED:
  case ESB_STATUS_OOM_KILLED: return 128 + r->signal;
  case ESB_STATUS_TIMED_OUT: return 124;
  case ESB_STATUS_ERROR:
    if (r->error == ESB_E_EXEC_NOT_FOUND) return 127;
    if (r->error == ESB_E_EXEC_DENIED) return 126;
    if (r->error == ESB_E_TOO_MANY_SESSIONS) return 75; /* EX_TEMPFAIL: try again later */
    return 125;
  }
  return 125;
}
