/* echo-sandbox run: one request from flags or JSON, one result. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <lua.h>

#include "cli/cli.h"
#include "cli/request.h"
#include "dispatch/execute.h"
#include "engine/runtime/loop.h"
#include "engine/runtime/signals.h"
#include "engine/sandbox/spawn.h"
#include "engine/fileio.h"
#include "codec/json.h"

static const char run_usage[] =
  "usage: echo-sandbox run [OPTIONS] --shell CMD\n"
  "       echo-sandbox run [OPTIONS] --lang LANGUAGE (--code CODE | --code-file FILE)\n"
  "       echo-sandbox run [OPTIONS] -- PROGRAM [ARGS...]\n"
  "       echo-sandbox run --json [--policy FILE] < request.json\n"
  "\n"
  "Runs one request in the sandbox. The flag forms copy the program's stdout\n"
  "and stderr to ours and exit with its code: 124 timed out, 125 executor\n"
  "error, 126 cannot execute, 127 not found, 128+N killed by signal N.\n"
  "--json prints the result object instead; with no request flags it reads\n"
  "the request object on stdin.\n"
  "\n"
  "options:\n"
  "  --json               result JSON on stdout; the request JSON on stdin unless\n"
  "                       request flags are given\n";

static void print_result_json(lua_State *L, const struct esb_result *r) {
  if (esb_json_push_result(L, r) < 0) {
    fprintf(stderr, "echo-sandbox: cannot encode the result: out of memory\n");
    return;
  }
  esb_json_print(L);
}

/* What the flag form says after the program's own output. */
static void print_plain(const struct esb_result *r) {
  if (r->status == ESB_STATUS_TIMED_OUT)
    fprintf(stderr, "echo-sandbox: timed out after %.0f ms%s\n", r->duration_ms,
            r->reason && strcmp(r->reason, "CpuTimeExceeded") == 0 ? ": out of CPU time (the run's cpu_time_secs)" : "");
  if (r->status == ESB_STATUS_OOM_KILLED)
    fprintf(stderr, "echo-sandbox: killed after %.0f ms: out of memory (the run's memory limit)\n",
            r->duration_ms);
  for (size_t i = 0; i < r->warnings.n; i++)
    fprintf(stderr, "echo-sandbox: warning: %s\n", r->warnings.v[i]);
  /* The exit code stays the program's; a pod left behind is still said. */
  if (r->cleanup_error)
    fprintf(stderr, "echo-sandbox: %s; the pod may be left: `echo-sandbox cleanup` deletes it once its "
            "deadline has passed\n", r->cleanup_error);
}

/* --max-output in the flag forms: what passes through to our stdout and
 * stderr, each stream cut at `max` bytes and said once on stderr; the
 * program runs on, its result and exit code unchanged. Through a callback,
 * so the bytes pass through us (neither handed over nor spliced). */
struct capped_output {
  uint64_t max;
  uint64_t passed[2];
  bool cut[2];
  bool err_mid_line;  /* the stderr passed ends inside a line */
};

static void pass_capped(int stream, const char *data, size_t len, void *userdata) {
  struct capped_output *c = userdata;
  int i = stream - 1;
  uint64_t room = c->max - c->passed[i];
  size_t n = len < room ? len : (size_t)room;
  if (n) {
    esb_write_all(stream, data, n); /* a reader gone: the rest is lost anyway */
    c->passed[i] += n;
    if (i == 1)
      c->err_mid_line = data[n - 1] != '\n';
  }
  if (n < len && !c->cut[i]) {
    c->cut[i] = true;
    fprintf(stderr, "%secho-sandbox: %s cut at %llu bytes (--max-output)\n", c->err_mid_line ? "\n" : "",
            i == 0 ? "stdout" : "stderr", (unsigned long long)c->max);
  }
}

/* Prints an engine error before a request could run, as the output mode wants. */
static int early_error(lua_State *L, bool json, enum esb_error_code code, const char *msg) {
  struct esb_result r = ESB_RESULT_INIT;
  esb_result_fail(&r, code, "%s", msg);
  fprintf(stderr, "echo-sandbox: %s\n", msg);
  if (json && L)
    print_result_json(L, &r);
  int rc = esb_result_exit_code(&r);
  esb_result_release(&r);
  return rc;
}

/* One run: its sandbox is cloned from this process (engine/sandbox/spawn.h). The
 * fork server of echo-sandbox-init pays for itself over many runs (batch,
 * serve), where the engine is a large, busy process; for a single one, its
 * exec and the root's template cost more than a copy of this small
 * process's page tables (bench/local_true.sh: about 1 ms a run). Naming the
 * program in $ECHO_SANDBOX_INIT keeps it, for one run too. */
static void one_sandbox_in_process(void) {
  const char *named = getenv("ECHO_SANDBOX_INIT");
  if (!named || !*named)
    esb_spawn_use_init(false);
}

/* What a command holds when it has printed its result: its process ends
 * right after, and the exit frees all of it at once, where closing the
 * policy's Lua state piece by piece is 0.1 ms of a 5 ms run of /bin/true.
 * Kept reachable here, so that a leak checker does not count it (git's
 * UNLEAK; volatile, or the compiler drops stores that nothing reads). */
static struct { struct esb_policy *volatile policy; lua_State *volatile L; } left_to_the_exit;

void esb_cli_leave_to_the_exit(struct esb_policy *policy, lua_State *L) {
  left_to_the_exit.policy = policy;
  left_to_the_exit.L = L;
}

int esb_cli_run(int argc, char **argv) {
  char usage[4096];
  snprintf(usage, sizeof usage, "%s%s", run_usage, esb_cli_request_flags_help);
  struct esb_cli_options o = { 0 };
  struct esb_request req = ESB_REQUEST_INIT;
  struct esb_policy *policy = NULL;
  struct esb_error err;
  int rc = esb_cli_parse(argc, argv, &o, usage), sigfd = -1;
  lua_State *L = NULL;
  if (rc >= 0)
    goto out;
  if (!(L = esb_json_state())) {
    rc = early_error(NULL, false, ESB_E_SYSTEM, "out of memory");
    goto out;
  }
  if (!o.json && !esb_cli_has_request_flags(&o)) {
    rc = early_error(L, false, ESB_E_INVALID_REQUEST,
                     "nothing to run: give --shell, --lang with --code, -- PROGRAM, or --json with a request on stdin");
    goto out;
  }
  if (esb_cli_read_request(L, &o, &req, &err) < 0) {
    rc = early_error(L, o.json, err.code, err.message);
    goto out;
  }
  if (!(policy = esb_policy_open(o.policy, &err))) {
    rc = early_error(L, o.json, err.code, err.message);
    goto out;
  }
  /* SIGINT, SIGTERM and SIGHUP arrive on an fd the loop watches, so the
   * sandbox is torn down before we exit. */
  static const int exit_signals[] = { SIGINT, SIGTERM, SIGHUP };
  sigfd = esb_signal_fd(exit_signals, 3);
  one_sandbox_in_process();
  struct esb_result result = ESB_RESULT_INIT;
  /* The flag form streams the program's output to ours; --json keeps the
   * capped capture for the result. */
  struct esb_output_sink ours = { .fds = { 1, 2 } };
  struct capped_output capped = { .max = req.limits.max_output_bytes };
  if (o.limits[ESB_LIMIT_MAX_OUTPUT_BYTES])
    ours = (struct esb_output_sink){ .fn = pass_capped, .userdata = &capped, .fds = { -1, -1 } };
  esb_execute(policy, &req, &result, sigfd, stderr, o.json ? NULL : &ours);
  if (result.status == ESB_STATUS_ERROR)
    fprintf(stderr, "echo-sandbox: %s\n", result.error_message ? result.error_message : esb_strerror(result.error));
  if (o.json)
    print_result_json(L, &result);
  else
    print_plain(&result);
  rc = esb_result_exit_code(&result);
  if (result.status == ESB_STATUS_ERROR && result.error == ESB_E_INTERRUPTED) {
    struct signalfd_siginfo si;
    rc = read(sigfd, &si, sizeof si) == sizeof si ? 128 + (int)si.ssi_signo : 130;
  }
  esb_result_release(&result);
  esb_cli_leave_to_the_exit(policy, L);
  policy = NULL;
  L = NULL;
out:
  if (sigfd >= 0)
    close(sigfd);
  esb_policy_close(policy);
  esb_request_release(&req);
  if (L)
    lua_close(L);
  esb_cli_options_release(&o);
  return rc;
}
