/* The daemon's counters and their Prometheus text (src/daemon/metrics.c):
 * runs by backend and status, the duration histogram at its bounds, the
 * gauges, and a buffer too small for the text.
 *
 * Checked: with record's "<=" made "<", the bucket-bound cases fail; with
 * the backend taken as local whatever sandbox_type says, the k8s counts
 * fail; with every defence's state set written (never proved ones too),
 * the defence cases fail; with render returning what it wrote instead of what it needs, the
 * small-buffer cases fail. */
#include "daemon/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"

static struct esb_result run(const char *backend, enum esb_status status, double ms) {
  struct esb_result r = ESB_RESULT_INIT;
  r.sandbox_type = backend;
  r.status = status;
  r.duration_ms = ms;
  return r;
}

static void record(struct esb_metrics *m, const char *backend, enum esb_status status, double ms) {
  struct esb_result r = run(backend, status, ms);
  esb_metrics_record(m, &r);
}

/* Whether text has line as one of its lines. */
static bool has_line(const char *text, const char *line) {
  size_t n = strlen(line);
  for (const char *p = text; (p = strstr(p, line)); p++)
    if ((p == text || p[-1] == '\n') && p[n] == '\n')
      return true;
  return false;
}

#define has(text, line) do { \
    if (!ok(has_line(text, line), line)) printf("# not among the lines\n"); \
  } while (0)

int main(void) {
  struct esb_metrics m = { 0 };
  record(&m, "local", ESB_STATUS_EXITED, 3);
  record(&m, NULL, ESB_STATUS_EXITED, 5);          /* exactly 0.005 s: in le="0.005" */
  record(&m, "k8s", ESB_STATUS_TIMED_OUT, 60000);  /* exactly 60 s: in le="60" */
  record(&m, "k8s", ESB_STATUS_ERROR, 61000);      /* past the last bound: +Inf only */
  record(&m, "local", ESB_STATUS_OOM_KILLED, 5.001);
  is_int(m.runs[0][ESB_STATUS_EXITED], 2, "local runs that exited, a missing sandbox_type among them");
  is_int(m.runs[1][ESB_STATUS_TIMED_OUT], 1, "a k8s run counts under k8s");
  is_int(m.runs[0][ESB_STATUS_OOM_KILLED], 1, "one local OOM");
  is_int(m.duration_buckets[0], 2, "le=0.005 holds 3 ms and exactly 5 ms");
  is_int(m.duration_buckets[1], 3, "le=0.01 adds 5.001 ms");
  is_int(m.duration_buckets[9], 4, "le=60 holds exactly 60 s, not 61 s");
  is_int(m.duration_count, 5, "every run is counted");
  ok(m.duration_sum_s > 121.013 && m.duration_sum_s < 121.014, "the sum is in seconds");

  m.rejected_busy = 7;
  m.rejected_bad = 1;
  m.rejected_too_large = 2;
  m.rejected_unauthorized = 3;
  m.policy_reloads = 4;
  m.policy_reload_failures = 1;
  m.sessions_created = 5;
  m.sessions_ended[ESB_SESSION_END_IDLE] = 2;
  m.sessions_ended[ESB_SESSION_END_DELETED] = 1;
  m.session_runs = 11;
  struct esb_result egress = run("local", ESB_STATUS_EXITED, 1);
  for (int i = 0; i < 3; i++)
    esb_egress_ledger_add(&egress.egress, "pypi.org", 443);
  egress.egress.v[0].reason = egress.egress.v[1].reason = ESB_EGRESS_ALLOWED;
  egress.egress.v[2].reason = ESB_EGRESS_SNI_MISMATCH;
  egress.egress.left_off = 4;
  struct esb_metrics e = { 0 }; /* apart: m's run counts stay as checked above */
  esb_metrics_record(&e, &egress);
  esb_result_release(&egress);
  is_int(e.egress[ESB_EGRESS_ALLOWED], 2, "a run's allowed attempts are counted");
  is_int(e.egress[ESB_EGRESS_SNI_MISMATCH], 1, "and its refused ones by why");
  is_int(e.egress_left_off, 4, "and those its ledger left off");
  memcpy(m.egress, e.egress, sizeof m.egress);
  m.egress_left_off = e.egress_left_off;
  m.defences[ESB_PROVE_MOUNT] = ESB_PROVE_FAILED;
  m.defences[ESB_PROVE_HOST_FILES] = ESB_PROVE_HELD;
  char buf[16384];
  size_t len = esb_metrics_render(&m, 3, 9, 2, NULL, buf, sizeof buf);
  is_int(len, strlen(buf), "the length is the text's");
  has(buf, "# TYPE echo_sandbox_runs_total counter");
  has(buf, "echo_sandbox_runs_total{backend=\"local\",status=\"exited\"} 2");
  has(buf, "echo_sandbox_runs_total{backend=\"local\",status=\"oom_killed\"} 1");
  has(buf, "echo_sandbox_runs_total{backend=\"k8s\",status=\"timed_out\"} 1");
  has(buf, "echo_sandbox_runs_total{backend=\"k8s\",status=\"error\"} 1");
  has(buf, "echo_sandbox_runs_total{backend=\"k8s\",status=\"signaled\"} 0");
  has(buf, "# TYPE echo_sandbox_run_duration_seconds histogram");
  has(buf, "echo_sandbox_run_duration_seconds_bucket{le=\"0.005\"} 2");
  has(buf, "echo_sandbox_run_duration_seconds_bucket{le=\"60\"} 4");
  has(buf, "echo_sandbox_run_duration_seconds_bucket{le=\"+Inf\"} 5");
  has(buf, "echo_sandbox_run_duration_seconds_count 5");
  has(buf, "echo_sandbox_run_duration_seconds_sum 121.013001");
  has(buf, "echo_sandbox_in_flight 3");
  has(buf, "echo_sandbox_queued 9");
  has(buf, "echo_sandbox_rejected_total{reason=\"busy\"} 7");
  has(buf, "echo_sandbox_rejected_total{reason=\"bad_request\"} 1");
  has(buf, "echo_sandbox_rejected_total{reason=\"too_large\"} 2");
  has(buf, "echo_sandbox_rejected_total{reason=\"unauthorized\"} 3");
  has(buf, "echo_sandbox_policy_reloads_total 4");
  has(buf, "echo_sandbox_policy_reload_failures_total 1");
  has(buf, "echo_sandbox_sessions_alive 2");
  has(buf, "echo_sandbox_sessions_created_total 5");
  has(buf, "echo_sandbox_sessions_ended_total{reason=\"idle\"} 2");
  has(buf, "echo_sandbox_sessions_ended_total{reason=\"deleted\"} 1");
  has(buf, "echo_sandbox_sessions_ended_total{reason=\"memory\"} 0");
  has(buf, "echo_sandbox_session_runs_total 11");
  has(buf, "echo_sandbox_egress_total{reason=\"allowed\"} 2");
  has(buf, "echo_sandbox_egress_total{reason=\"sni_mismatch\"} 1");
  has(buf, "echo_sandbox_egress_total{reason=\"not_listed\"} 0");
  has(buf, "echo_sandbox_egress_total{reason=\"left_off\"} 4");
  ok(!strstr(buf, "reason=\"alive\""), "alive is no reason a session ended");
  has(buf, "echo_sandbox_defence{defence=\"mount\",verdict=\"failed\"} 1");
  has(buf, "echo_sandbox_defence{defence=\"mount\",verdict=\"held\"} 0");
  has(buf, "echo_sandbox_defence{defence=\"mount\",verdict=\"unproven\"} 0");
  has(buf, "echo_sandbox_defence{defence=\"host_files\",verdict=\"held\"} 1");
  ok(!strstr(buf, "defence=\"deadline\""), "a defence never proved has no series");
  ok(!strstr(buf, "verdict=\"not_run\""), "not_run is no verdict a defence had");
  has(buf, "echo_sandbox_build_info{version=\"" ESB_VERSION "\"} 1");
  ok(len > 0 && buf[len - 1] == '\n', "the text ends with a line's end");

  /* Every sample's name has its HELP and TYPE lines. */
  bool described = true;
  for (const char *line = buf; *line; line = strchr(line, '\n') + 1) {
    if (*line == '#')
      continue;
    char name[128], want[160];
    size_t n = strcspn(line, "{ ");
    snprintf(name, sizeof name, "%.*s", (int)n, line);
    char *suffix = strstr(name, "_seconds_");
    if (suffix)
      suffix[strlen("_seconds")] = '\0'; /* a histogram's series: its family's lines */
    snprintf(want, sizeof want, "# HELP %s ", name);
    described = described && strstr(buf, want);
    snprintf(want, sizeof want, "# TYPE %s ", name);
    described = described && strstr(buf, want);
  }
  ok(described, "each family has its HELP and TYPE");

  /* Too small a buffer: the length it needs, the text cut and ended. */
  char small[64];
  memset(small, 'x', sizeof small);
  is_int(esb_metrics_render(&m, 3, 9, 2, NULL, small, sizeof small), len, "too small: the length it needs");
  ok(memchr(small, '\0', sizeof small) && !strncmp(small, buf, sizeof small - 1), "what fits, NUL-ended");
  is_int(esb_metrics_render(&m, 3, 9, 2, NULL, NULL, 0), len, "no buffer: the length it needs");
  char *exact = malloc(len + 1);
  is_int(esb_metrics_render(&m, 3, 9, 2, NULL, exact, len + 1), len, "length + 1 bytes hold it");
  is_str(exact, buf, "the same text");
  free(exact);

  struct esb_metrics zero = { 0 };
  len = esb_metrics_render(&zero, 0, 0, 0, NULL, buf, sizeof buf);
  has(buf, "echo_sandbox_run_duration_seconds_sum 0.000000");
  has(buf, "echo_sandbox_runs_total{backend=\"local\",status=\"exited\"} 0");

  /* the keeper's status file: a pool's pods by state, what it made; a line
     that does not read is left out */
  char path[] = "/tmp/esb-metrics-test.XXXXXX";
  int fd = mkstemp(path);
  FILE *f = fdopen(fd, "w");
  fputs("shell ready 2 pending 1 claimed 3 stale 0 ended 4 created 5 failed 6\nBad\"} 1\n", f);
  fclose(f);
  len = esb_metrics_render(&zero, 0, 0, 0, path, buf, sizeof buf);
  unlink(path);
  has(buf, "echo_sandbox_warm_pool_pods{pool=\"shell\",state=\"ready\"} 2");
  has(buf, "echo_sandbox_warm_pool_pods{pool=\"shell\",state=\"claimed\"} 3");
  has(buf, "echo_sandbox_warm_pool_made_last_minute{pool=\"shell\",result=\"failed\"} 6");
  ok(!strstr(buf, "Bad"), "a line that does not read is left out");
  return tap_done();
}
