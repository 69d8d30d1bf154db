#include "backend/k8s_session.h"

#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/k8s.h"
#include "backend/k8s_command.h"
#include "backend/kube_api.h"
#include "backend/kubectl_words.h"
#include "engine/install_paths.h"
#include "engine/strv.h"

/* The session pod's first process: $1 ticks of $2 seconds without a run
 * end it (exit 0: the pod Succeeded, which `session show` reads as idle).
 * A run marks itself .echo-sandbox-run.PID in the working dir
 * (esb_k8s_session_run_script): a mark starts the count again for as long
 * as its process lives, and once more when it is found gone and removed,
 * so that a run shorter than a tick counts too. As the pod's pid 1 it gets
 * no default action for SIGTERM (a delete's): the trap ends it. */
const char esb_k8s_session_wait_script[] =
  "n=$1 t=$2 c=0; trap 'exit 143' TERM; "
  "while [ \"$c\" -lt \"$n\" ]; do sleep \"$t\" & wait $!; c=$((c + 1)); "
  "for f in " ESB_K8S_SESSION_RUN_MARK "*; do [ -e \"$f\" ] || continue; c=0; "
  "kill -0 \"${f##*.}\" 2>/dev/null || rm -f -- \"$f\"; done; done; exit 0";

/* The exec'd command of a run in a session: $1 the run's deadline in
 * seconds, then the run's env (NAME=VALUE, exported: kubectl exec has no
 * env of its own) up to "--", then the pod command of a run's pod, which it
 * runs as its child with its stdin. The container runtime starts an exec'd
 * process as a session leader (runc: setsid), and every process of the run
 * is in that session: at the deadline (a timer of ours: the engine's
 * kubectl ending closes the run's stdin, nothing more) and once the run has
 * ended, every process of our session but us is killed (one that made a
 * session of its own escapes this; where we lead no session nothing is
 * killed). The processes are found in one read of every /proc/PID/stat
 * (a shell's read takes a byte a syscall: a few hundred processes would
 * take 100 ms), and each one found is read again on its own before the
 * kill, so that a name (comm) with a newline in it cannot make a line that
 * names another process. The marks tell the pod's wait script that a run
 * goes on. */
const char esb_k8s_session_run_script[] =
  "t=$1; shift; while [ \"$1\" != -- ]; do export \"$1\" || exit 125; shift; done; shift; "
  "m=" ESB_K8S_SESSION_RUN_MARK "$$; : > \"$m\" || exit 125; "
  "reap() { read -r l < /proc/$$/stat || return 0; IFS=' '; set -- ${l##*) }; [ \"$4\" = $$ ] || return 0; "
  "k=1; while [ -n \"$k\" ]; do k=; a=$(cat /proc/[0-9]*/stat 2>/dev/null); IFS='\n'; set -f; for l in $a; do "
  "case $l in *\" $$ \"*) ;; *) continue ;; esac; IFS=' '; set -- ${l##*) }; p=${l%% *}; "
  "[ \"$4\" = $$ ] && [ \"$p\" != $$ ] && [ \"$1\" != Z ] || continue; "
  "read -r l 2>/dev/null < \"/proc/$p/stat\" || continue; set -- ${l##*) }; "
  "[ \"$4\" = $$ ] && kill -9 \"$p\" 2>/dev/null && k=1; done; set +f; done; }; "
  "trap 'reap; exit 137' TERM; "
  "( sleep \"$t\"; kill -TERM $$ ) </dev/null >/dev/null 2>&1 & "
  "exec 3<&0; \"$@\" <&3 3<&- & c=$!; exec 3<&- </dev/null; "
  "wait \"$c\"; s=$?; reap; exit \"$s\"";

/* A cell's command in the pod (a run's program: the run script around it
 * ends what it leaves in its session). $1 the language, $2 the cell's
 * deadline and $3 the grace of its interrupt, in seconds, then the
 * kernel's program and its flag for code; stdin: the request line, then
 * the kernel's source. The kernel's files are .echo-sandbox-kernel-LANG/
 * in the working dir (the pod's own: /tmp may be shared where pods are
 * not containers): pid (the kernel's), req and rep (fifos: its fd 3 and
 * 4, which it holds open read-write, so that it never reads an end; the
 * relay opens req before it starts the kernel, so that a request written
 * before the kernel's own open is not lost), out and err (its output), lock (a
 * directory: one cell at a time, holding the relay's pid; a dead relay's
 * lock is taken over, and one without a pid yet is busy).
 * The kernel is started at the first cell, and again once it has died
 * (the cell then says its state was lost), by setsid: a session of its
 * own, so that the end of the run it started in does not end it, and a
 * process group of its own for the interrupt. A timer of ours interrupts
 * the cell at its deadline (SIGINT to the kernel's group), and kills the
 * kernel where it did not reply within the grace; the reply, or the end
 * of the kernel ends the wait: the relay opens rep before it writes the
 * request, so that a kernel that ends at once still ends a reader (and
 * the timer makes a writer come and go for an open that waits on a kernel
 * gone before it opened rep). What it prints: a header line "esb-cell
 * STATUS LOST" (replied, timed_out, died or busy; LOST 1 where the
 * kernel's earlier state is gone), the kernel's reply line, then the
 * cell's stdout; its stderr is the cell's. The kernel's reply and output
 * are the program's word; the header is ours, written before any of it
 * (the cell's code runs in the same pod as this relay, as a run's does
 * with the run script: the pod is the sandbox). */
const char esb_k8s_session_cell_script[] =
  "l=$1 t=$2 g=$3; shift 3; d=.echo-sandbox-kernel-$l; mkdir -p \"$d\" || exit 125; "
  "alive() { kill -0 \"$1\" 2>/dev/null || return 1; s=; read -r s 2>/dev/null < /proc/$1/stat; "
  "case ${s##*) } in Z*) return 1 ;; esac; }; "
  "if ! mkdir \"$d/lock\" 2>/dev/null; then o=; read -r o 2>/dev/null < \"$d/lock/pid\"; "
  "if [ -z \"$o\" ] || alive \"$o\"; then echo 'esb-cell busy 0'; exit 0; fi; "
  "rm -rf \"$d/lock\"; mkdir \"$d/lock\" 2>/dev/null || { echo 'esb-cell busy 0'; exit 0; }; fi; "
  "echo $$ > \"$d/lock/pid\"; trap 'rm -rf \"$d/lock\"' EXIT; "
  "IFS= read -r q || exit 125; k=; read -r k 2>/dev/null < \"$d/pid\"; lost=0; "
  "if [ -z \"$k\" ] || ! alive \"$k\"; then [ -z \"$k\" ] || lost=1; cat > \"$d/src\" || exit 125; "
  "rm -f \"$d/req\" \"$d/rep\"; mkfifo \"$d/req\" \"$d/rep\" && exec 5<> \"$d/req\" || exit 125; "
  "setsid \"$@\" \"$(cat \"$d/src\")\" 3<&5 5<&- 4<>\"$d/rep\" > \"$d/out\" 2> \"$d/err\" < /dev/null & "
  "k=$!; echo \"$k\" > \"$d/pid\"; else cat > /dev/null; exec 5<> \"$d/req\" || exit 125; fi; "
  "rm -f \"$d/late\" \"$d/killed\"; : > \"$d/out\"; : > \"$d/err\"; "
  "( sleep \"$t\"; : > \"$d/late\"; kill -INT -\"$k\"; sleep \"$g\"; : > \"$d/killed\"; kill -KILL -\"$k\"; "
  ": 1<> \"$d/rep\" ) < /dev/null > /dev/null 2>&1 & w=$!; "
  "exec 6< \"$d/rep\" && printf '%s\\n' \"$q\" >&5 || exit 125; "
  "r=; IFS= read -r r <&6; s=$?; kill \"$w\" 2>/dev/null; st=replied; "
  "[ \"$s\" = 0 ] || { st=died; lost=1; }; [ -e \"$d/late\" ] && st=timed_out; [ -e \"$d/killed\" ] && lost=1; "
  "printf 'esb-cell %s %s\\n%s\\n' \"$st\" \"$lost\" \"$r\"; cat \"$d/out\"; cat \"$d/err\" >&2; exit 0";

bool esb_k8s_session_id(const char *s) {
  size_t n = sizeof ESB_K8S_SESSION_PREFIX - 1;
  if (!s || strncmp(s, ESB_K8S_SESSION_PREFIX, n) != 0 || strlen(s) != ESB_K8S_SESSION_ID_LEN)
    return false;
  return strspn(s + n, "0123456789abcdef") == ESB_K8S_SESSION_HEX;
}

/* The exec'd command: the run script, the run's deadline and env, then the
 * pod command of a run's pod. */
static int push_exec_command(struct esb_strv *tail, const struct esb_plan *plan) {
  int rc = esb_strv_push(tail, "/bin/sh");
  rc |= esb_strv_push(tail, "-c");
  rc |= esb_strv_push(tail, esb_k8s_session_run_script);
  rc |= esb_strv_push(tail, "echo-sandbox");
  rc |= esb_strv_pushf(tail, "%" PRIu64 ".%03" PRIu64, plan->timeout_ms / 1000, plan->timeout_ms % 1000);
  for (char **e = plan->env; e && *e; e++)
    rc |= esb_strv_push(tail, *e);
  rc |= esb_strv_push(tail, "--");
  rc |= esb_k8s_push_pod_command(tail, plan);
  return rc;
}

char **esb_k8s_session_exec_argv(const struct esb_plan *plan) {
  const struct esb_k8s_settings *k = &plan->k8s;
  struct esb_strv tail = ESB_STRV_INIT;
  int rc = esb_strv_push(&tail, "exec");
  rc |= esb_strv_push(&tail, "-i");
  rc |= esb_strv_push(&tail, "-q");
  rc |= esb_strv_push(&tail, k->pod_name);
  rc |= esb_strv_pushf(&tail, "--container=%s", k->pod_name);
  rc |= esb_strv_push(&tail, "--");
  rc |= push_exec_command(&tail, plan);
  char **argv = rc ? NULL : esb_k8s_kubectl_argv(k, (const char *const *)tail.v);
  esb_strv_clear(&tail);
  return argv;
}

char **esb_k8s_session_exec_command(const struct esb_plan *plan) {
  struct esb_strv command = ESB_STRV_INIT;
  if (push_exec_command(&command, plan)) {
    esb_strv_clear(&command);
    return NULL;
  }
  return esb_strv_detach(&command);
}

char **esb_k8s_session_api_exec_argv(const struct esb_plan *plan, const struct esb_kube_api *api, const char *in,
                                     size_t in_len, uint64_t timeout_ms, const char *secret, char **request,
                                     size_t *request_len) {
  const char *program = esb_install_program(ESB_PROGRAM_KUBE);
  char **command = esb_k8s_session_exec_command(plan), **argv = NULL;
  char *path = command ? esb_kube_api_exec_path(api, plan->k8s.namespace_, plan->k8s.pod_name,
                                                (const char *const *)command) : NULL;
  struct esb_strv v = ESB_STRV_INIT;
  *request = path && program && esb_strv_push(&v, program) == 0
               ? esb_kube_api_exec_request(api, path, timeout_ms, secret, in, in_len, request_len) : NULL;
  if (*request)
    argv = esb_strv_detach(&v);
  esb_strv_clear(&v);
  esb_strv_free(command);
  free(path);
  return argv;
}

/* s with every "from" (in quotes: a whole JSON string) made "to". */
static char *renamed(const char *s, const char *from, const char *to) {
  char qf[128], qt[128];
  snprintf(qf, sizeof qf, "\"%s\"", from);
  snprintf(qt, sizeof qt, "\"%s\"", to);
  size_t nf = strlen(qf), nt = strlen(qt), count = 0;
  for (const char *p = s; (p = strstr(p, qf)); p += nf)
    count++;
  char *out = malloc(strlen(s) + count * (nt > nf ? nt - nf : 0) + 1), *o = out;
  if (!out)
    return NULL;
  for (const char *p = s, *q; ; p = q + nf) {
    q = strstr(p, qf);
    size_t n = q ? (size_t)(q - p) : strlen(p);
    memcpy(o, p, n);
    o += n;
    if (!q)
      break;
    memcpy(o, qt, nt);
    o += nt;
  }
  *o = '\0';
  return out;
}

/* json with the value of its one key that ends in key (the quote after
 * the name included: cjson writes '/' in a name as "\/") made value: the
 * override the policy's plan made, whose deadline and expiry were the
 * create request's, gets the session's. NULL when out of memory. */
static char *with_value(const char *json, const char *key, const char *value) {
  const char *at = json ? strstr(json, key) : NULL;
  if (!json)
    return NULL;
  if (!at || at[strlen(key)] != ':')
    return strdup(json);
  const char *from = at + strlen(key) + 1, *to = from + strcspn(from, ",}");
  char *out;
  return asprintf(&out, "%.*s%s%s", (int)(from - json), json, value, to) < 0 ? NULL : out;
}

/* The plan's override for the session's pod: its container named as the
 * pod, its activeDeadlineSeconds the session's TTL, its expiry after it
 * (as the engine sets a run's: the grace and a minute later). */
static char *session_overrides(const struct esb_plan *plan, const char *id, uint64_t ttl_s) {
  char deadline[32], expires[48];
  snprintf(deadline, sizeof deadline, "%" PRIu64, ttl_s);
  time_t at = time(NULL) + (time_t)ttl_s + (time_t)esb_k8s_grace_seconds(plan->kill_grace_ms) + 60;
  struct tm tm;
  gmtime_r(&at, &tm);
  strftime(expires, sizeof expires, "\"%Y-%m-%dT%H:%M:%SZ\"", &tm);
  char *a = renamed(plan->k8s.overrides_json, plan->k8s.pod_name, id);
  char *b = with_value(a, "activeDeadlineSeconds\"", deadline);
  char *c = with_value(b, "expires-at\"", expires);
  free(a);
  free(b);
  return c;
}

/* The idle timeout as the wait script's ticks: a tenth of it, between
 * 0.1 s and 1 s, so that the session ends within a tick of its idle
 * timeout. */
static void idle_ticks(uint64_t idle_ms, uint64_t *ticks, uint64_t *tick_ms) {
  uint64_t t = idle_ms / 10;
  *tick_ms = t < 100 ? 100 : t > 1000 ? 1000 : t;
  *ticks = (idle_ms + *tick_ms - 1) / *tick_ms;
}

int esb_k8s_session_push_wait(struct esb_strv *tail, uint64_t ticks, uint64_t tick_ms) {
  int rc = esb_strv_push(tail, "--command");
  rc |= esb_strv_push(tail, "--");
  rc |= esb_strv_push(tail, "/bin/sh");
  rc |= esb_strv_push(tail, "-c");
  rc |= esb_strv_push(tail, esb_k8s_session_wait_script);
  rc |= esb_strv_push(tail, "echo-sandbox");
  rc |= esb_strv_pushf(tail, "%" PRIu64, ticks);
  rc |= esb_strv_pushf(tail, "%" PRIu64 ".%03" PRIu64, tick_ms / 1000, tick_ms % 1000);
  return rc;
}

/* The words after kubectl of the run of the session's pod (no attach: its command waits). The
 * plan's override names its container as the plan's pod; the session's
 * pod has its own name, and the strategic merge joins containers by name. */
static char **create_argv(const struct esb_plan *plan, const char *id, uint64_t ttl_ms, uint64_t idle_ms) {
  const struct esb_k8s_settings *k = &plan->k8s;
  uint64_t ttl_s = (ttl_ms + 999) / 1000;
  char *overrides = session_overrides(plan, id, ttl_s);
  uint64_t ticks, tick_ms;
  idle_ticks(idle_ms, &ticks, &tick_ms);
  struct esb_strv tail = ESB_STRV_INIT;
  int rc = overrides ? 0 : -1;
  rc |= esb_strv_push(&tail, "run");
  rc |= esb_strv_push(&tail, id);
  rc |= esb_strv_pushf(&tail, "--image=%s", k->image);
  rc |= esb_strv_push(&tail, "--restart=Never");
  rc |= esb_strv_pushf(&tail, "--labels=%s=true,%s-expires=%lld", ESB_K8S_SESSION_LABEL, ESB_K8S_SESSION_LABEL,
                    (long long)time(NULL) + (long long)ttl_s);
  rc |= esb_strv_pushf(&tail, "--annotations=echo-sandbox.io/idle-timeout-ms=%" PRIu64, idle_ms);
  rc |= esb_strv_push(&tail, "--override-type=strategic");
  rc |= esb_strv_pushf(&tail, "--overrides=%s", overrides ? overrides : "");
  for (char **e = plan->env; e && *e; e++)
    rc |= esb_strv_pushf(&tail, "--env=%s", *e);
  rc |= esb_k8s_session_push_wait(&tail, ticks, tick_ms);
  free(overrides);
  if (rc) {
    esb_strv_clear(&tail);
    return NULL;
  }
  return esb_strv_detach(&tail);
}

const char *esb_k8s_kubectl_said(struct esb_result *r) {
  if (!r->err.data)
    return r->error_message ? r->error_message : "kubectl failed";
  r->err.len = esb_kubectl_strip_own_lines(r->err.data, r->err.len);
  r->err.data[r->err.len] = '\0';
  r->err.data[strcspn(r->err.data, "\n")] = '\0';
  return r->err.data[0] ? r->err.data : "kubectl failed";
}

static bool kubectl_ok(const struct esb_result *r) {
  return r->status == ESB_STATUS_EXITED && r->exit_code == 0;
}

/* Runs tail (NULL-terminated words) through kubectl with k's flags. */
static void kubectl(const struct esb_k8s_settings *k, uint64_t timeout_ms, struct esb_result *r, const char *first,
                    ...) {
  const char *tail[16];
  size_t n = 0;
  va_list ap;
  va_start(ap, first);
  for (const char *w = first; w && n < 15; w = va_arg(ap, const char *))
    tail[n++] = w;
  va_end(ap);
  tail[n] = NULL;
  esb_k8s_kubectl_run(k, tail, timeout_ms, r);
}

/* A pod that was not seen Ready: why, from its status, for the error; or
 * true where it did run, and ended by itself (Succeeded: its wait script's
 * idle end) before the wait saw it Ready, as a session whose idle timeout
 * is shorter than the create's own round trips does. */
static bool ran_and_ended(const struct esb_k8s_settings *k, const char *id, esb_pod_status_parser parse, char *why,
                          size_t size) {
  struct esb_pod_status p;
  bool found = false;
  struct esb_error err = ESB_ERROR_INIT;
  if (esb_k8s_session_read(k, id, parse, &p, &found, &err) < 0)
    snprintf(why, size, "%s", err.message);
  else if (!found)
    snprintf(why, size, "the pod is gone");
  else if (strcmp(p.phase, "Succeeded") == 0 && !p.deleting)
    return true;
  else
    snprintf(why, size, "phase %s%s%s%s%.*s", p.phase, p.waiting_reason[0] ? ", " : "", p.waiting_reason,
             p.message[0] ? ": " : "", (int)(size / 2), p.message);
  return false;
}

int esb_k8s_session_create(const struct esb_plan *plan, uint64_t ttl_ms, uint64_t idle_timeout_ms,
                           esb_pod_status_parser parse, char id[ESB_K8S_SESSION_ID_LEN + 1], struct esb_error *err) {
  const struct esb_k8s_settings *k = &plan->k8s;
  /* the plan's pod name is "echo-sandbox-" and 32 random hex digits */
  snprintf(id, ESB_K8S_SESSION_ID_LEN + 1, "%s%.*s", ESB_K8S_SESSION_PREFIX, ESB_K8S_SESSION_HEX,
           k->pod_name + strlen(k->pod_name) - 32);
  char **tail = create_argv(plan, id, ttl_ms, idle_timeout_ms);
  if (!tail)
    return esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  struct esb_result r = ESB_RESULT_INIT;
  esb_k8s_kubectl_run(k, (const char *const *)tail, 60000, &r);
  esb_strv_free(tail);
  if (!kubectl_ok(&r)) {
    esb_error_set(err, ESB_E_BACKEND, "creating the session's pod %s failed: %s", id, esb_k8s_kubectl_said(&r));
    esb_result_release(&r);
    return -1;
  }
  esb_result_release(&r);
  char pod[128], timeout[64];
  snprintf(pod, sizeof pod, "pod/%s", id);
  snprintf(timeout, sizeof timeout, "--timeout=%s", k->pod_running_timeout ? k->pod_running_timeout : "2m");
  kubectl(k, 10 * 60 * 1000, &r, "wait", pod, "--for=condition=Ready", timeout, NULL);
  if (kubectl_ok(&r)) {
    esb_result_release(&r);
    return 0;
  }
  char why[ESB_MESSAGE_MAX / 2];
  if (ran_and_ended(k, id, parse, why, sizeof why)) { /* made: `show` says how it ended */
    esb_result_release(&r);
    return 0;
  }
  esb_error_set(err, ESB_E_BACKEND, "the session's pod %s did not come to run within %s (%s); it was deleted", id,
                k->pod_running_timeout ? k->pod_running_timeout : "2m", why);
  esb_result_release(&r);
  bool found;
  struct esb_error ignored = ESB_ERROR_INIT;
  esb_k8s_session_remove(k, id, plan->kill_grace_ms, k->delete_timeout_ms, &found, &ignored);
  return -1;
}

const char *esb_k8s_session_state(const struct esb_pod_status *p) {
  if (p->deleting)
    return "deleted";
  if (strcmp(p->pod_reason, "DeadlineExceeded") == 0)
    return "ttl";
  if (strcmp(p->pod_reason, "Evicted") == 0)
    return "evicted";
  if (p->terminated && strcmp(p->reason, "OOMKilled") == 0)
    return "memory";
  if (strcmp(p->phase, "Succeeded") == 0)
    return "idle"; /* the wait script's own end, exit 0 */
  if (strcmp(p->phase, "Failed") == 0 || strcmp(p->phase, "Unknown") == 0 || p->terminated)
    return "died";
  return "alive";
}

int esb_k8s_session_read(const struct esb_k8s_settings *k, const char *id, esb_pod_status_parser parse,
                         struct esb_pod_status *p, bool *found, struct esb_error *err) {
  struct esb_result r = ESB_RESULT_INIT;
  kubectl(k, 30000, &r, "get", "pod", id, "-o", "json", "--request-timeout=20s", NULL);
  *found = kubectl_ok(&r) && parse(r.out.data ? r.out.data : "", r.out.len, p) == 0;
  int rc = 0;
  if (!*found && !(r.err.data && strstr(r.err.data, "(NotFound)")))
    rc = esb_error_set(err, ESB_E_BACKEND, "reading session %s failed: %s", id, esb_k8s_kubectl_said(&r));
  esb_result_release(&r);
  return rc;
}

int esb_k8s_session_remove(const struct esb_k8s_settings *k, const char *id, uint64_t grace_ms,
                           uint64_t timeout_ms, bool *found, struct esb_error *err) {
  char grace[64], timeout[64];
  snprintf(grace, sizeof grace, "--grace-period=%" PRIu64, esb_k8s_grace_seconds(grace_ms));
  snprintf(timeout, sizeof timeout, "--timeout=%" PRIu64 "ms", timeout_ms);
  struct esb_result r = ESB_RESULT_INIT;
  kubectl(k, timeout_ms + 5000, &r, "delete", "pod", id, "--ignore-not-found", "--wait=true", grace, timeout, NULL);
  int rc = 0;
  *found = r.out.len > 0; /* kubectl says what it deleted; nothing where there was none */
  if (!kubectl_ok(&r))
    rc = esb_error_set(err, ESB_E_BACKEND, "deleting session %s failed: %s", id, esb_k8s_kubectl_said(&r));
  esb_result_release(&r);
  return rc;
}
