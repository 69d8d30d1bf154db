#include "engine/contract/result.h"

#include <stdlib.h>

#include "tap.h"

int main(void) {
  struct esb_result r = ESB_RESULT_INIT;
  is_str(esb_status_name(ESB_STATUS_EXITED), "exited", "status word: exited");
  is_str(esb_status_name(ESB_STATUS_OOM_KILLED), "oom_killed", "status word: oom_killed");
  is_str(esb_status_name(ESB_STATUS_TIMED_OUT), "timed_out", "status word: timed_out");
  is_str(esb_error_name(ESB_E_INVALID_REQUEST), "invalid_request", "error word: invalid_request");
  is_str(esb_error_name(ESB_E_BACKEND_UNAVAILABLE), "backend_unavailable", "error word: backend_unavailable");
  is_str(esb_error_name(ESB_E__COUNT), "unknown_error", "a code out of range has a word too");
  for (int e = 0; e < ESB_E__COUNT; e++)
    if (!ok(esb_error_name(e) && strcmp(esb_error_name(e), "unknown_error") != 0 &&
            strcmp(esb_strerror(e), "unknown error") != 0, "every code has a name and a message"))
      printf("#   code %d\n", e);

  r.status = ESB_STATUS_EXITED;
  r.exit_code = 3;
  is_int(esb_result_exit_code(&r), 3, "exited: the program's code");
  r.status = ESB_STATUS_SIGNALED;
  r.signal = 9;
  is_int(esb_result_exit_code(&r), 137, "signaled: 128 + the signal");
  r.status = ESB_STATUS_OOM_KILLED;
  is_int(esb_result_exit_code(&r), 137, "OOM-killed: 128 + SIGKILL");
  r.status = ESB_STATUS_TIMED_OUT;
  is_int(esb_result_exit_code(&r), 124, "timed out: 124, as timeout(1)");

  esb_result_fail(&r, ESB_E_EXEC_NOT_FOUND, "program not found: %s", "nope");
  is_int(r.status, ESB_STATUS_ERROR, "fail makes it an error");
  is_int(r.exit_code, 127, "not found: 127, as a shell");
  is_str(r.error_message, "program not found: nope", "with the message formatted");
  is_str(r.reason, "exec_not_found", "and the error word as reason");
  esb_result_fail(&r, ESB_E_EXEC_DENIED, "again: %s", r.error_message);
  is_str(r.error_message, "again: program not found: nope", "fail may quote the message it replaces");
  is_int(r.exit_code, 126, "denied: 126");
  esb_result_fail(&r, ESB_E_SYSTEM, "x");
  is_int(r.exit_code, 125, "the engine's own errors: 125");

  struct esb_result seen = ESB_RESULT_INIT;
  esb_result_wait_status(&seen, 3 << 8);
  ok(seen.status == ESB_STATUS_EXITED && seen.exit_code == 3 && seen.signal == 0, "a wait status of exit 3");
  is_str(seen.reason, "Error", "reads Error");
  esb_result_wait_status(&seen, 0);
  is_str(seen.reason, "Completed", "exit 0 reads Completed");
  esb_result_wait_status(&seen, 15);
  ok(seen.status == ESB_STATUS_SIGNALED && seen.signal == 15 && seen.exit_code == 143, "a wait status of SIGTERM");
  is_str(seen.reason, "Signaled", "reads Signaled");
  esb_result_timed_out(&seen);
  ok(seen.status == ESB_STATUS_TIMED_OUT && seen.exit_code == 124 && seen.signal == 15,
     "timed out keeps the signal that ended it, exit code 124");
  is_str(seen.reason, "DeadlineExceeded", "reads DeadlineExceeded");
  esb_result_cpu_time_exceeded(&seen);
  ok(seen.status == ESB_STATUS_TIMED_OUT && seen.exit_code == 124 && seen.signal == 15,
     "out of CPU time is a timeout, with the signal that ended it");
  is_str(seen.reason, "CpuTimeExceeded", "reads CpuTimeExceeded");
  esb_result_oom_killed(&seen);
  ok(seen.status == ESB_STATUS_OOM_KILLED && seen.signal == 9 && seen.exit_code == 137, "OOM-killed: SIGKILL, 137");
  is_str(seen.reason, "OOMKilled", "reads OOMKilled, as Kubernetes says it");

  struct esb_result moved = ESB_RESULT_INIT;
  r.out.cap = 16;
  esb_capture_append(&r.out, "data", 4);
  esb_result_warn(&r, "careful %d", 1);
  esb_result_warn(&r, "and %s", "again");
  esb_result_move(&moved, &r);
  is_str(moved.out.data, "data", "move hands the output over");
  is_str(moved.warnings.v[0], "careful 1", "and the owned strings");
  is_str(moved.warnings.v[1], "and again", "each warning its own entry, in order");
  ok(r.out.data == NULL && r.warnings.n == 0 && r.error_message == NULL, "leaving the source empty");
  is_int(r.cpu_time_ms, -1, "as ESB_RESULT_INIT");
  struct esb_result other = ESB_RESULT_INIT;
  other.error_message = strdup("held");
  esb_result_move(&other, &moved); /* what other held is released: valgrind/ASan see no leak */
  is_str(other.warnings.v[0], "careful 1", "move into a result that held something");
  esb_result_release(&other);
  ok(other.warnings.v == NULL && other.status == ESB_STATUS_ERROR, "release leaves ESB_RESULT_INIT");
  esb_result_release(&r);
  return tap_done();
}
