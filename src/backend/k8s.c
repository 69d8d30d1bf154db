#include "backend/k8s.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/egress_helper.h"
#include "backend/k8s_command.h"
#include "backend/k8s_run_table.h"
#include "backend/k8s_session.h"
#include "backend/k8s_watch.h"
#include "backend/kubectl_words.h"
#include "engine/fileio.h"
#include "engine/strv.h"

extern char **environ;

static void step_done(struct esb_exec *exec, void *userdata);

static void dispatch(struct esb_k8s_run *run, enum esb_k8s_event event);

static void finish(struct esb_k8s_run *run);

static void verdict(struct esb_k8s_run *run, const char *reason, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

static void attach_heard(struct esb_k8s_run *run);

/* The program's output to the run's sink. */
static void pass_on(struct esb_k8s_run *run, int stream, const char *data, size_t len) {
  if (run->output.fn)
    run->output.fn(stream, data, len, run->output.userdata);
  else if (run->output.fds[stream - 1] >= 0)
    esb_write_all(run->output.fds[stream - 1], data, len);
}

/* ---- kubectl's streams ---------------------------------------------------
 *
 * kubectl run --attach writes the program's stdout on its stdout and the
 * program's stderr on its stderr, where its own words go too: klog lines,
 * the notice that the attach broke, the "pod NS/NAME terminated (REASON)"
 * trailer, its errors. Nothing in the bytes tells the two apart, and the
 * program may print any of kubectl's words. What the program cannot forge
 * is the order of the pod's stderr and a secret it never sees:
 *
 * - The start mark. The pod's command waits for the handshake (kubectl is
 *   attached), then copies the start mark from it to its stderr with dd:
 *   the shell never reads it, and no process of the pod holds it once dd
 *   is done, before the program exists. Every byte of the program's stderr
 *   comes after it on the pod's stderr, which kubectl relays in order.
 *   Before it, kubectl's stderr is kubectl's alone: what a create or an
 *   attach that failed said. So the notice that the attach broke (or was
 *   refused) is read there, and only there.
 * - The end mark. The shell runs the program as a child and writes the end
 *   mark, with the program's exit status, once it has ended; after it,
 *   kubectl's stderr is kubectl's again (the trailer). Its secret stays in
 *   the shell's memory while the program runs, where a program of the same
 *   uid may read it (/proc/PPID/mem): the end mark only ever makes the
 *   engine say less of the program, never a retryable error by itself
 *   (decide_deadline).
 * - The stdout mark: the start mark's twin ("\037" first), copied by dd
 *   to the pod's stdout after it, so it precedes every byte of the
 *   program's stdout as the start mark precedes its stderr. kubectl relays
 *   it first on its stdout, where it is taken out.
 * - The replay. When the attach breaks, kubectl prints its notice and
 *   copies the pod's log to its stdout from its first byte. The log holds
 *   both streams, each in its own order but interleaved as the container
 *   runtime read them (one reader per stream: a program's first stdout
 *   line may come before the start mark), so the replay begins with one
 *   of the two marks, before any byte of the program. Either mark on
 *   kubectl's stdout after the live stdout mark is that replay and nothing
 *   else: the attach broke (AttachLost), and what follows repeats. kubectl
 *   ending while the program has not says the same (decide()).
 * - The wrapper's first line. The files wrapper (k8s_payload.sh) sets up
 *   between the start mark and the program, and says on its first stdout
 *   line, before the program exists, that the program runs now or which of
 *   its steps failed (judge_wrapper: WrapperFailed, never the program's
 *   exit). So with the wrapper the program began at that line, not at the
 *   start mark: what came between the two (its tools' words) is held until
 *   it, and dropped on a failure. The replay cannot confuse it: the start
 *   mark precedes the line in the pod's log, so a replayed line never
 *   reaches the frames. Its frames come after the end mark, once every
 *   process the program left is killed.
 *
 * Between the marks every byte is the program's: kept, counted and passed
 * on live as it comes. kubectl's own lines in there (the klog lines of an
 * attach that broke, just before its notice) are taken out only from a run
 * that the broken attach ended (cut_attach_notice). Without the handshake
 * (k8s.handshake = false) there are no marks: the engine cannot tell
 * kubectl's words from the program's, and reads none of them. */

/* Whether the program has begun: the plain command runs it right after the
 * start mark on stderr and its twin on stdout, whichever stream brings its
 * mark first (the two are not ordered: a connection cut after the program's
 * first stdout may lose the stderr one); the files wrapper sets up first
 * and says on its first stdout line that it runs it now (k8s_payload.h).
 * Without the handshake nothing tells: what comes is taken as the
 * program's. */
static bool program_began(const struct esb_k8s_run *run) {
  if (!run->plan->k8s.handshake)
    return true;
  if (esb_k8s_payload_wanted(run->plan))
    return run->frames.start == ESB_K8S_START_STARTED;
  return run->start_err.seen || run->live_out.seen;
}

/* The stderr held while the wrapper set up, passed on once the program has
 * begun (what its tools said, should the start line come first on the
 * other stream; a wrapper that failed drops it: judge_wrapper). */
static void pass_held_stderr(struct esb_k8s_run *run) {
  const struct esb_capture *c = &run->program_err;
  if (esb_output_sink_set(&run->output) && c->len > run->err_passed)
    pass_on(run, 2, c->data + run->err_passed, c->len - run->err_passed);
  run->err_passed = c->len;
}

/* The program's stderr: into the result, and on once the program began. */
static void program_stderr(const char *data, size_t len, void *userdata) {
  struct esb_k8s_run *run = userdata;
  bool live = program_began(run);
  if (live) {
    pass_held_stderr(run);
    if (esb_output_sink_set(&run->output))
      pass_on(run, 2, data, len);
  }
  esb_capture_append(&run->program_err, data, len);
  if (live)
    run->err_passed = run->program_err.len;
}

/* kubectl's stderr before the start mark. */
static void kubectl_before(const char *data, size_t len, void *userdata) {
  struct esb_k8s_run *run = userdata;
  esb_capture_append(&run->kubectl_err, data, len);
  run->start_at = run->kubectl_err.len;
}

/* kubectl's stderr after the end mark (its first line: the exit status). */
static void kubectl_after(const char *data, size_t len, void *userdata) {
  struct esb_k8s_run *run = userdata;
  esb_capture_append(&run->kubectl_err, data, len);
}

static void between_marks(const char *data, size_t len, void *userdata) {
  struct esb_k8s_run *run = userdata;
  esb_kubectl_mark_feed(&run->end_err, data, len, program_stderr, kubectl_after, run);
}

/* The program's part of kubectl's stdout (the frames split off, with
 * collect): into the result, and on. */
static void program_stdout(const char *data, size_t len, void *userdata) {
  struct esb_k8s_run *run = userdata;
  esb_capture_append(&run->exec.result.out, data, len);
  if (esb_output_sink_set(&run->output))
    pass_on(run, 1, data, len);
}

static void stdout_before_replay(const char *data, size_t len, void *userdata) {
  struct esb_k8s_run *run = userdata;
  if (esb_k8s_payload_wanted(run->plan)) /* the wrapper's first line, and its frames */
    esb_k8s_frames_feed(&run->frames, data, len, program_stdout, run);
  else
    program_stdout(data, len, run);
}

static void dropped(const char *data, size_t len, void *userdata) {
  (void)data, (void)len, (void)userdata;
}

/* The held piece of the start mark was the program's after all: what
 * followed it was no replay. */
static void release_start_piece(struct esb_k8s_run *run) {
  size_t n = run->start_piece_len;
  run->start_piece_len = 0;
  if (n)
    stdout_before_replay(run->start_piece, n, run);
}

/* kubectl's stdout after the live stdout mark and before a replayed one.
 * The runtime's stderr reader may have read only a piece of the start mark
 * (dd writes it a byte at a time) when its stdout reader ran ahead with the
 * stdout mark: the pod's log then holds that piece right before the stdout
 * mark. So a piece of the start mark at the end of what came is held until
 * what follows shows whose it is: dropped where the replayed stdout mark
 * follows, the program's otherwise. */
static void stdout_before_replayed_mark(const char *data, size_t len, void *userdata) {
  struct esb_k8s_run *run = userdata;
  release_start_piece(run);
  size_t keep = esb_kubectl_mark_piece(&run->replay, data, len); /* replay's mark: the start mark */
  if (len > keep)
    stdout_before_replay(data, len - keep, run);
  memcpy(run->start_piece, data + len - keep, keep);
  run->start_piece_len = keep;
}

/* kubectl's stdout after the live stdout mark: a second one is the replay. */
static void stdout_after_live_mark(const char *data, size_t len, void *userdata) {
  struct esb_k8s_run *run = userdata;
  esb_kubectl_mark_feed(&run->replay_out, data, len, stdout_before_replayed_mark, dropped, run);
  if (run->replay_out.seen)
    run->start_piece_len = 0; /* the replay's */
}

/* kubectl's stdout before the live stdout mark: nothing of the program
 * (it starts after the whole mark), but the wrapper's failure line, or a
 * piece of the mark itself where the attach broke while dd wrote it byte by
 * byte, which the replay's whole mark then follows: that piece is dropped,
 * not taken as the program's. */
static void stdout_before_live_mark(const char *data, size_t len, void *userdata) {
  struct esb_k8s_run *run = userdata;
  if (len < ESB_K8S_START_MARK_LEN && memcmp(data, run->stdout_mark, len) == 0)
    return;
  stdout_before_replay(data, len, run);
}

/* kubectl's stdout before any start mark (which only a replay puts there):
 * the live stdout mark is taken out, once. */
static void stdout_before_start_mark(const char *data, size_t len, void *userdata) {
  struct esb_k8s_run *run = userdata;
  esb_kubectl_mark_feed(&run->live_out, data, len, stdout_before_live_mark, stdout_after_live_mark, run);
}

static bool replayed(const struct esb_k8s_run *run) {
  return run->replay.seen || run->replay_out.seen;
}

static void attach_lost(struct esb_k8s_run *run) {
  verdict(run, "AttachLost", "the attach to pod %s broke and kubectl fell back to the pod's logs: the output "
          "is incomplete (lines may repeat, the rest may be missing)", run->plan->k8s.pod_name);
}

/* kubectl's notice, before the start mark: the attach broke or was refused
 * before the program began. */
static void judge_attach(struct esb_k8s_run *run) {
  const char *text = run->kubectl_err.data;
  size_t n = run->kubectl_err.len;
  if (!text || !memmem(text, n, ESB_KUBECTL_FELL_BACK, sizeof ESB_KUBECTL_FELL_BACK - 1))
    return;
  if (memmem(text, n, "forbidden", 9) || memmem(text, n, "Forbidden", 9))
    verdict(run, "AttachForbidden", "kubectl may not attach to pod %s: its account needs \"create\" on "
            "\"pods/attach\" in namespace %s (deploy/rbac.yaml)", run->plan->k8s.pod_name, run->plan->k8s.namespace_);
  else
    attach_lost(run);
}

/* The program has begun, as one stream or the other shows it first. */
static void note_start(struct esb_k8s_run *run) {
  if (run->started || !program_began(run))
    return;
  run->started = true;
  pass_held_stderr(run);
}

/* The pod ran: its program's bytes came (a list begun after this that lacks
 * the pod says it was deleted). */
static void pod_confirmed(struct esb_k8s_run *run) {
  if (!run->pod_seen)
    run->confirmed_ns = esb_now_ns();
  run->pod_seen = run->pod_ran = true;
}

static void run_stderr(const char *data, size_t len, void *userdata);
static void run_stdout(const char *data, size_t len, void *userdata);

/* echo-sandbox-kube's word after its mark (kube_exec.h): the last of its
 * stderr, none of the program's. */
static void exec_word_bytes(const char *data, size_t len, void *userdata) {
  struct esb_k8s_run *run = userdata;
  size_t room = sizeof run->exec_said - run->exec_said_len;
  if (len > room)
    len = room; /* longer than any word: it will not read */
  memcpy(run->exec_said + run->exec_said_len, data, len);
  run->exec_said_len += len;
}

static void on_run_output(struct esb_exec *exec, int stream, const char *data, size_t len, void *userdata) {
  (void)exec;
  struct esb_k8s_run *run = userdata;
  attach_heard(run);
  if (stream == 2 && run->exec_api)
    esb_kubectl_mark_feed(&run->exec_mark, data, len, run_stderr, exec_word_bytes, run);
  else if (stream == 2)
    run_stderr(data, len, run);
  else
    run_stdout(data, len, run);
}

/* kubectl's stdout (or the helper's). */
static void run_stdout(const char *data, size_t len, void *userdata) {
  struct esb_k8s_run *run = userdata;
  pod_confirmed(run);
  if (!run->plan->k8s.handshake) {
    stdout_before_replay(data, len, run);
    return;
  }
  esb_kubectl_mark_feed(&run->replay, data, len, stdout_before_start_mark, dropped, run);
  if (replayed(run))
    attach_lost(run);
  note_start(run);
}

/* kubectl's stderr (or the helper's, but its word). */
static void run_stderr(const char *data, size_t len, void *userdata) {
  struct esb_k8s_run *run = userdata;
  bool marks = run->plan->k8s.handshake;
  if (!marks) {
    program_stderr(data, len, run);
    return;
  }
  esb_kubectl_mark_feed(&run->start_err, data, len, kubectl_before, between_marks, run);
  if (run->start_err.seen)
    pod_confirmed(run);
  else
    judge_attach(run);
  note_start(run);
  if (run->end_err.seen)
    run->ended = true;
}

/* kubectl's stdout and stderr ended: what the scanners held is placed. */
static void streams_end(struct esb_k8s_run *run) {
  if (run->exec_api)
    esb_kubectl_mark_end(&run->exec_mark, run_stderr, run);
  if (run->plan->k8s.handshake) {
    esb_kubectl_mark_end(&run->replay, stdout_before_start_mark, run);
    if (!run->replay.seen) {
      if (!run->live_out.seen)
        esb_kubectl_mark_end(&run->live_out, stdout_before_live_mark, run);
      else
        esb_kubectl_mark_end(&run->replay_out, stdout_before_replayed_mark, run);
    }
    if (replayed(run))
      run->start_piece_len = 0;
    else
      release_start_piece(run); /* the program's last bytes */
    if (!run->start_err.seen)
      esb_kubectl_mark_end(&run->start_err, kubectl_before, run);
    else
      esb_kubectl_mark_end(&run->end_err, program_stderr, run);
  }
  if (esb_k8s_payload_wanted(run->plan))
    esb_k8s_frames_end(&run->frames, program_stdout, run);
}

/* The program's exit status as its end mark gave it; -1 if none came. */
static int end_mark_status(const struct esb_k8s_run *run) {
  const struct esb_capture *c = &run->kubectl_err;
  if (!run->end_err.seen || !c->data || c->len <= run->start_at)
    return -1;
  char *end;
  long v = strtol(c->data + run->start_at, &end, 10);
  return end > c->data + run->start_at && v >= 0 && v <= 255 ? (int)v : -1;
}

/* kubectl's own words as text, for messages: before the start mark and
 * after the end mark's status line, without klog lines. */
static char *kubectl_words(const struct esb_k8s_run *run) {
  const struct esb_capture *c = &run->kubectl_err;
  const char *d = c->data ? c->data : "";
  size_t pre = run->start_at < c->len ? run->start_at : c->len;
  const char *post = d + pre, *nl = run->end_err.seen ? memchr(post, '\n', c->len - pre) : NULL;
  size_t post_len = nl ? c->len - (size_t)(nl + 1 - d) : 0;
  char *text = malloc(pre + post_len + 1);
  if (!text)
    return NULL;
  memcpy(text, d, pre);
  if (post_len)
    memcpy(text + pre, nl + 1, post_len);
  text[esb_kubectl_strip_own_lines(text, pre + post_len)] = '\0';
  return text;
}

/* A run the broken attach ended: kubectl's notice and what followed it
 * (its last occurrence: the attach was gone after it, so nothing of the
 * program's follows), and the klog lines just before it (kubectl's report
 * of the break), are no output of the program's. */
static void cut_attach_notice(struct esb_k8s_run *run, struct esb_capture *err) {
  static const char notice[] = "warning: couldn't attach to pod/";
  if (!run->plan->k8s.handshake || !err->data)
    return;
  char *last = NULL;
  for (char *p = err->data; (p = memmem(p, err->len - (size_t)(p - err->data), notice, sizeof notice - 1)); p++)
    last = p;
  if (!last)
    return;
  size_t cut = (size_t)(last - err->data);
  while (cut && err->data[cut - 1] == '\n') {
    size_t line = cut - 1;
    while (line && err->data[line - 1] != '\n')
      line--;
    if (!esb_kubectl_own_line(err->data + line, cut - 1 - line))
      break;
    cut = line;
  }
  err->total -= err->len - cut;
  err->len = cut;
  err->data[cut] = '\0';
}

/* ---- the watch ---------------------------------------------------------- */

/* Waiting reasons of a container that will not start by itself: the
 * kubelet keeps retrying them, the run's deadline would pass. Spelled as
 * the kubelet does; the result's reason points here. */
static const char *const cannot_start[] = {
  "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
  "CreateContainerError", NULL,
};

/* Ends the run for what the watch saw: the program's kubectl is stopped, and
 * decide() reports reason and message. */
static void verdict(struct esb_k8s_run *run, const char *reason, const char *fmt, ...) {
  if (run->verdict || run->state != ESB_K8S_RUN)
    return;
  run->verdict = reason;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(run->verdict_message, sizeof run->verdict_message, fmt, ap);
  va_end(ap);
  esb_exec_stop(&run->exec);
}

/* A pod deleted by someone else (its deletionTimestamp set, or gone): the
 * result is the delete's, whatever the container's exit, which the delete's
 * SIGTERM may have caused. */
#define DELETED_MESSAGE "pod %s was deleted while the program ran (a node drain, or a delete from outside): how " \
                        "the program would have ended is unknown"

/* The kubelet's and the node controller's words for a pod that cannot go on,
 * as the result's reason: the one table of them (a word not here reads as
 * the fallback the caller gives). */
static const char *const lost_reasons[] = {
  "NodeLost", "NodeNotReady", "CrashLoopBackOff", "Restarted", "PodUnknown", "NotReady", NULL,
};

static const char *lost_reason(const char *word, const char *fallback) {
  for (const char *const *r = lost_reasons; *r; r++)
    if (strcmp(word, *r) == 0)
      return *r;
  return fallback;
}

/* The pod is Running, its Ready condition False and the attach silent for
 * the policy's grace: the node is gone or cut off, its kubelet cannot tell
 * how the program ends. */
static void not_ready_for_too_long(void *userdata) {
  struct esb_k8s_run *run = userdata;
  verdict(run, lost_reason(run->pod.not_ready_reason, "NotReady"), "pod %s is not ready (%s) and its program "
          "was silent for %llu ms: its node may be lost, the program's end cannot be known%s%s",
          run->plan->k8s.pod_name, run->pod.not_ready_reason[0] ? run->pod.not_ready_reason : "Ready=False",
          (unsigned long long)run->plan->k8s.not_ready_grace_ms, run->pod.message[0] ? ": " : "",
          run->pod.message);
}

/* Any output of the attach: not silent. */
static void attach_heard(struct esb_k8s_run *run) {
  if (!run->not_ready_timer.started)
    return;
  esb_timer_stop(run->loop, &run->not_ready_timer);
  run->not_ready_timer.at_ns = esb_now_ns() + run->plan->k8s.not_ready_grace_ms * 1000000ull;
  esb_timer_start(run->loop, &run->not_ready_timer);
}

/* A pod that will not lead to the program's end: being deleted, on a lost
 * node, or whose container the kubelet restarted (the program ran twice, its
 * stdin spent; or it crash-loops under a restartPolicy the engine did not
 * set). Returns whether it ended the run. */
static bool pod_cannot_finish(struct esb_k8s_run *run, const struct esb_pod_status *p) {
  const char *name = run->plan->k8s.pod_name;
  if (p->deleting || strcmp(p->event, "DELETED") == 0) {
    verdict(run, "Deleted", DELETED_MESSAGE, name);
  } else if (strcmp(p->phase, "Unknown") == 0) {
    verdict(run, lost_reason(p->pod_reason, "PodUnknown"), "pod %s is in phase Unknown (%s): its node is lost, "
            "the program's end cannot be known", name, p->message[0] ? p->message : "no message");
  } else if (strcmp(p->waiting_reason, "CrashLoopBackOff") == 0 || p->restart_count > 0) {
    verdict(run, lost_reason(p->waiting_reason, "Restarted"), "the kubelet restarted the program's container in "
            "pod %s (restartCount %d%s%s): the program's run was cut", name, p->restart_count,
            p->message[0] ? ", " : "", p->message);
  } else {
    return false;
  }
  return true;
}

static void unschedulable_for_too_long(void *userdata) {
  struct esb_k8s_run *run = userdata;
  verdict(run, "Unschedulable", "pod %s could not be scheduled for %llu ms: %s", run->plan->k8s.pod_name,
          (unsigned long long)run->plan->k8s.unschedulable_grace_ms,
          run->pod.message[0] ? run->pod.message : "no node fits it");
}

/* An event of the run's pod, from the shared watch (k8s_watch.h). */
static void on_pod_event(struct esb_k8s_run *run, const struct esb_pod_status *ev) {
  if (run->verdict || run->state != ESB_K8S_RUN)
    return;
  struct esb_pod_status p = *ev;
  if (!run->pod_seen && strcmp(p.event, "DELETED") != 0)
    run->confirmed_ns = esb_now_ns();
  run->pod_seen = true;
  run->pod_ran |= strcmp(p.phase, "Running") == 0 || strcmp(p.phase, "Succeeded") == 0 ||
                  strcmp(p.phase, "Failed") == 0;
  if (p.terminated && esb_now_ns() < run->run_deadline_ns) {
    run->end_by_watch = run->ended = true;
    run->pod = p; /* its exit code, should the deadline pass before kubectl reports it */
  }
  const char *name = run->plan->k8s.pod_name;
  if (strcmp(p.pod_reason, "Evicted") == 0) {
    verdict(run, "Evicted", "pod %s was evicted: %s", name, p.message[0] ? p.message : "no message");
    return;
  }
  for (const char *const *r = cannot_start; *r; r++) {
    if (strcmp(p.waiting_reason, *r) == 0) {
      verdict(run, *r, "pod %s cannot start (image %s): %s", name, p.image, p.message);
      return;
    }
  }
  if (pod_cannot_finish(run, &p))
    return;
  run->pod = p; /* the latest, for its message */
  if (p.not_ready && strcmp(p.phase, "Running") == 0) {
    if (!run->not_ready_timer.started) {
      run->not_ready_timer.at_ns = esb_now_ns() + run->plan->k8s.not_ready_grace_ms * 1000000ull;
      esb_timer_start(run->loop, &run->not_ready_timer);
    }
  } else {
    esb_timer_stop(run->loop, &run->not_ready_timer);
  }
  if (p.unschedulable && !run->unschedulable_timer.started) {
    run->unschedulable_timer.at_ns = esb_now_ns() + run->plan->k8s.unschedulable_grace_ms * 1000000ull;
    esb_timer_start(run->loop, &run->unschedulable_timer);
  } else if (!p.unschedulable) {
    esb_timer_stop(run->loop, &run->unschedulable_timer);
  }
}

static void start_watch(void *userdata) {
  struct esb_k8s_run *run = userdata;
  if (run->state == ESB_K8S_RUN)
    esb_k8s_watch_join(run, on_pod_event); /* on failure: on without a watch */
}

/* The program's kubectl is done: the watch has nothing more to say. */
static void stop_watch(struct esb_k8s_run *run) {
  esb_timer_stop(run->loop, &run->watch_timer);
  esb_timer_stop(run->loop, &run->unschedulable_timer);
  esb_timer_stop(run->loop, &run->not_ready_timer);
  esb_k8s_watch_leave(run);
}

static bool poll_follow(struct esb_exec *exec, void *userdata) {
  (void)exec;
  struct esb_k8s_run *run = userdata;
  return esb_egress_helper_poll(&run->follow);
}

/* Starts one kubectl child on the loop, its stdin in then in_fd's bytes
 * (-1: none); -1 with run->exec.result saying why. in_fd is set before the
 * start, which is where the loop tells a regular file (read at a fixed
 * offset, by pread or splice: every try sends it whole, and the caller's
 * offset stays) from a stream (read, and gone). */
static int start_kubectl(struct esb_k8s_run *run, char **argv, const char *in, size_t in_len, int in_fd,
                         uint64_t timeout_ms, size_t max_output) {
  esb_strv_free(run->argv);
  run->argv = argv;
  run->exec = (struct esb_exec)ESB_EXEC_INIT;
  struct esb_exec *e = &run->exec;
  if (!argv) {
    esb_result_fail(&e->result, ESB_E_SYSTEM, "out of memory");
    return -1;
  }
  struct esb_exec_options o = ESB_EXEC_OPTIONS_INIT;
  o.argv = (const char *const *)argv;
  o.env = (const char *const *)environ;
  o.stdin_data = in;
  o.stdin_len = in_len;
  o.stdin_fd = in_fd;
  o.timeout_ms = timeout_ms;
  o.kill_grace_ms = 1000;
  o.max_output_bytes = max_output;
  o.on_done = step_done;
  o.on_output = run->state == ESB_K8S_RUN ? on_run_output : NULL;
  o.stdout_by_caller = run->state == ESB_K8S_RUN; /* the frames after the program's output are ours */
  if (run->state == ESB_K8S_RUN && run->follow.listening) { /* the proxy's verdicts, as they are given */
    o.aux_fd = run->follow.child.out;
    o.on_aux = poll_follow;
  }
  o.userdata = run;
  return esb_exec_start(run->loop, e, &o);
}

/* The handshake (k8s_command.h): the end mark's secret, the start mark and
 * its stdout twin, random per run, into buf (ESB_K8S_HANDSHAKE_LEN bytes). */
#define ESB_K8S_HANDSHAKE_LEN (ESB_K8S_MARK_HEX + 1 + 2 * ESB_K8S_START_MARK_LEN)
static int handshake(struct esb_k8s_run *run, char *buf) {
  char a[ESB_K8S_MARKER_SIZE], b[ESB_K8S_MARKER_SIZE];
  if (esb_k8s_payload_marker(a) < 0 || esb_k8s_payload_marker(b) < 0)
    return -1;
  const char *hex_a = a + ESB_K8S_MARKER_SIZE - 1 - ESB_K8S_MARK_HEX, *hex_b = b + ESB_K8S_MARKER_SIZE - 1 - ESB_K8S_MARK_HEX;
  snprintf(run->end_secret, sizeof run->end_secret, "%s", hex_a);
  snprintf(run->start_mark, sizeof run->start_mark, "\036%s\n", hex_b);
  memcpy(buf, run->end_secret, ESB_K8S_MARK_HEX);
  buf[ESB_K8S_MARK_HEX] = '\n';
  memcpy(buf + ESB_K8S_MARK_HEX + 1, run->start_mark, ESB_K8S_START_MARK_LEN);
  snprintf(run->stdout_mark, sizeof run->stdout_mark, "\037%s\n", hex_b);
  memcpy(buf + ESB_K8S_MARK_HEX + 1 + ESB_K8S_START_MARK_LEN, run->stdout_mark, ESB_K8S_START_MARK_LEN);
  return 0;
}

/* A stream's bytes to its end, at most max of them: NULL with errno
 * EFBIG where it brings more (what was read of it is gone). */
static char *read_stream(int fd, size_t max, size_t *lenp) {
  size_t len = 0, cap = 65536;
  char *buf = malloc(cap);
  while (buf) {
    if (len == cap) {
      char *p = realloc(buf, cap *= 2);
      if (!p)
        break;
      buf = p;
    }
    ssize_t n = read(fd, buf + len, cap - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n == 0) {
      *lenp = len;
      return buf;
    }
    if (n < 0 || (len += (size_t)n) > max) {
      int e = n < 0 ? errno : EFBIG;
      free(buf);
      errno = e;
      return NULL;
    }
  }
  free(buf);
  errno = ENOMEM;
  return NULL;
}

/* What kubectl's stdin starts with: the handshake, the request's stdin,
 * and a streamed stdin that is no regular file (a pipe cannot be read
 * again for a second try of the create), read to its end here (at most
 * ESB_K8S_PIPED_STDIN_MAX). A regular file stays a stream (run->stdin_fd):
 * each try reads it from its offset. */
static int stdin_prefix(struct esb_k8s_run *run) {
  const struct esb_plan *plan = run->plan;
  struct stat st;
  char *piped = NULL;
  size_t piped_len = 0;
  run->stdin_fd = -1;
  if (plan->stdin_fd >= 0) {
    if (fstat(plan->stdin_fd, &st) == 0 && S_ISREG(st.st_mode)) {
      run->stdin_fd = plan->stdin_fd;
    } else if (!(piped = read_stream(plan->stdin_fd, ESB_K8S_PIPED_STDIN_MAX, &piped_len))) {
      if (errno == EFBIG)
        esb_result_fail(&run->result, ESB_E_INVALID_REQUEST, "stdin is a pipe (or another stream that is no "
                        "regular file) of more than %u MiB: on Kubernetes such a stdin is read whole before the pod "
                        "is created, so that a create that is tried again sends it whole; give a regular file "
                        "(--stdin-file FILE, or < FILE), which is streamed, for more", ESB_K8S_PIPED_STDIN_MAX >> 20);
      else
        esb_result_fail(&run->result, ESB_E_SYSTEM, "reading stdin: %s", strerror(errno));
      return -1;
    }
  }
  /* With the wrapper, after the handshake: its header and block, which hold
   * the program's stdin too, so its length is told first. */
  char *head = NULL;
  size_t head_len = 0;
  if (esb_k8s_payload_wanted(plan)) {
    uint64_t streamed = 0;
    off_t at;
    if (run->stdin_fd >= 0 && (at = lseek(run->stdin_fd, 0, SEEK_CUR)) >= 0 && st.st_size > at)
      streamed = (uint64_t)(st.st_size - at);
    if (esb_k8s_payload_marker(run->marker) < 0 ||
        !(head = esb_k8s_payload_head(plan, plan->stdin_len + piped_len + streamed, run->marker, &head_len))) {
      free(piped);
      esb_result_fail(&run->result, ESB_E_SYSTEM, "preparing the files for the pod: %s", strerror(errno));
      return -1;
    }
  }
  size_t lead = plan->k8s.handshake ? ESB_K8S_HANDSHAKE_LEN : 0;
  run->stdin_len = lead + head_len + plan->stdin_len + piped_len;
  if (!(run->stdin_buf = malloc(run->stdin_len ? run->stdin_len : 1))) {
    free(piped);
    free(head);
    esb_result_fail(&run->result, ESB_E_SYSTEM, "out of memory");
    return -1;
  }
  if (lead && handshake(run, run->stdin_buf) < 0) {
    free(piped);
    free(head);
    esb_result_fail(&run->result, ESB_E_SYSTEM, "making the run's marks: %s", strerror(errno));
    return -1;
  }
  if (head_len)
    memcpy(run->stdin_buf + lead, head, head_len);
  free(head);
  lead += head_len;
  if (plan->stdin_len)
    memcpy(run->stdin_buf + lead, plan->stdin_data, plan->stdin_len);
  if (piped_len)
    memcpy(run->stdin_buf + lead + plan->stdin_len, piped, piped_len);
  free(piped);
  return 0;
}

/* kubectl attach to the run's own pod, for a create whose answer was lost:
 * the pod waits for the handshake, so nothing of the program is missed. */
static char **attach_argv(const struct esb_plan *plan) {
  char container[128], timeout[128];
  snprintf(container, sizeof container, "--container=%s", plan->k8s.pod_name);
  snprintf(timeout, sizeof timeout, "--pod-running-timeout=%s", plan->k8s.pod_running_timeout);
  const char *tail[] = {"attach", plan->k8s.pod_name, container, "-i", "-q", timeout, NULL};
  return esb_k8s_kubectl_argv(&plan->k8s, tail);
}

/* ---- the exec by echo-sandbox-kube (kube_exec.h) ----------------------- */

static void wipe_exec_in(struct esb_k8s_run *run) {
  if (run->exec_in)
    explicit_bzero(run->exec_in, run->exec_in_len); /* the credentials */
  free(run->exec_in);
  run->exec_in = NULL;
  run->exec_in_len = 0;
}

/* The exec into a warm pod or a session's: echo-sandbox-kube's where the
 * API client is in use and was not refused it in this run (its stdin
 * run->exec_in: the request, then the run's), else kubectl exec -i. */
static char **exec_argv(struct esb_k8s_run *run, uint64_t timeout_ms) {
  const struct esb_plan *plan = run->plan;
  char marker[ESB_K8S_MARKER_SIZE], **argv = NULL;
  wipe_exec_in(run);
  run->exec_api = run->exec_by_kubectl ? NULL : esb_kube_api_get(&plan->k8s, NULL);
  if (run->exec_api && esb_k8s_payload_marker(marker) == 0) {
    const char *secret = marker + ESB_K8S_MARKER_SIZE - 1 - ESB_K8S_MARK_HEX;
    argv = esb_k8s_session_api_exec_argv(plan, run->exec_api, run->stdin_buf, run->stdin_len, timeout_ms, secret,
                                         &run->exec_in, &run->exec_in_len);
    char mark[ESB_KUBECTL_MARK_MAX];
    snprintf(mark, sizeof mark, ESB_KUBE_EXEC_MARK "%s", secret);
    esb_kubectl_mark_init(&run->exec_mark, mark);
    run->exec_said_len = 0;
  }
  if (argv)
    return argv;
  run->exec_api = NULL;
  return esb_k8s_session_exec_argv(plan);
}

/* How the helper's exec ended: its word (kube_exec.h), never what the
 * program wrote. One that ended without its word (killed, crashed) failed;
 * our deadline and an interrupt are said as kubectl's are. A failure is
 * made kubectl's exit 1, its words in run->exec_word. */
static void read_exec_word(struct esb_k8s_run *run, struct esb_result *er) {
  struct esb_kube_exec_word *w = &run->exec_word;
  bool said = run->exec_mark.seen && esb_kube_exec_word_parse(run->exec_said, run->exec_said_len, w) == 0;
  if (er->status == ESB_STATUS_TIMED_OUT || er->status == ESB_STATUS_ERROR)
    return;
  bool exited = er->status == ESB_STATUS_EXITED;
  if (!said) {
    *w = (struct esb_kube_exec_word){ .end = ESB_KUBE_EXEC_ERROR };
    snprintf(w->said, sizeof w->said, "echo-sandbox-kube ended without its word on the exec (%s %d)",
             exited ? "exit status" : "signal", exited ? er->exit_code : er->signal);
  } else if (w->end == ESB_KUBE_EXEC_EXIT && !(exited && er->exit_code == w->exit_code)) {
    w->end = ESB_KUBE_EXEC_ERROR;
    snprintf(w->said, sizeof w->said, "echo-sandbox-kube's exit is not its word's (exit %d)", w->exit_code);
  }
  if (w->end != ESB_KUBE_EXEC_EXIT)
    esb_result_exited(er, 1);
}

static bool exec_word_failed(const struct esb_k8s_run *run) {
  return run->exec_api && run->exec_word.end != ESB_KUBE_EXEC_EXIT;
}

/* The helper's exec was refused before anything ran (a 401, a server
 * without v5): the run step again, by kubectl exec (after a 401, for the
 * process: esb_kube_api_drop). Returns whether it was started again. */
static int start_run_step(struct esb_k8s_run *run);
static bool exec_again_by_kubectl(struct esb_k8s_run *run, struct esb_result *er) {
  struct esb_kube_exec_word w;
  if (run->state != ESB_K8S_RUN || !run->exec_api || er->status != ESB_STATUS_EXITED || !run->exec_mark.seen ||
      run->pod_seen || run->kubectl_err.len || run->program_err.len ||
      esb_kube_exec_word_parse(run->exec_said, run->exec_said_len, &w) < 0 ||
      (w.end != ESB_KUBE_EXEC_KUBECTL && w.end != ESB_KUBE_EXEC_UNAUTHORIZED))
    return false;
  if (w.end == ESB_KUBE_EXEC_UNAUTHORIZED)
    esb_kube_api_drop(run->exec_api);
  run->exec_by_kubectl = true;
  stop_watch(run);
  esb_result_release(er);
  return start_run_step(run) == 0;
}

/* kubectl run (or attach, to a pod adopted; or the exec into a warm or a
 * session's pod), with what is left of the request's deadline, and its
 * watch a moment later. */
static int start_run_step(struct esb_k8s_run *run) {
  const struct esb_plan *plan = run->plan;
  uint64_t now = esb_now_ns();
  uint64_t left_ms = run->run_deadline_ns > now ? (run->run_deadline_ns - now) / 1000000ull : 1;
  if (!run->adopted) {
    run->create_attempts++;
    run->try_began_ns = now;
  }
  if (plan->egress_k8s.token && !run->in_session && run->output.on_egress && !run->follow.started) {
    struct esb_error err = ESB_ERROR_INIT; /* without it, the verdicts are told at the run's end */
    run->follow.on_seen = run->output.on_egress;
    run->follow.seen_userdata = run->output.userdata;
    esb_egress_k8s_follow(&run->follow, plan, &err);
  }
  char **argv = run->in_session || run->warm ? exec_argv(run, left_ms ? left_ms : 1)
                 : run->adopted                ? attach_argv(plan)
                                               : esb_k8s_run_argv(plan);
  bool helper = (run->in_session || run->warm) && run->exec_api;
  if (start_kubectl(run, argv, helper ? run->exec_in : run->stdin_buf, helper ? run->exec_in_len : run->stdin_len,
                    run->stdin_fd, left_ms ? left_ms : 1, plan->max_output_bytes) < 0)
    return -1;
  if (esb_k8s_payload_wanted(plan))
    esb_k8s_frames_init(&run->frames, run->marker, &plan->collect);
  esb_kubectl_mark_init(&run->start_err, run->start_mark);
  char end_mark[ESB_K8S_MARK_HEX + 3];
  snprintf(end_mark, sizeof end_mark, "\036%s ", run->end_secret);
  esb_kubectl_mark_init(&run->end_err, end_mark);
  esb_kubectl_mark_init(&run->replay, run->start_mark);
  esb_kubectl_mark_init(&run->live_out, run->stdout_mark);
  esb_kubectl_mark_init(&run->replay_out, run->stdout_mark);
  esb_capture_release(&run->program_err);
  esb_capture_release(&run->kubectl_err);
  run->program_err = (struct esb_capture){ .cap = plan->max_output_bytes };
  run->kubectl_err = (struct esb_capture){ .cap = 64u << 10 };
  run->start_at = run->err_passed = 0;
  run->watch_timer = (struct esb_timer){ .at_ns = now + ESB_K8S_WATCH_AFTER_MS * 1000000ull,
                                         .fire = start_watch, .userdata = run };
  esb_timer_start(run->loop, &run->watch_timer);
  return 0;
}

/* ---- the API client's steps (kube_api.h) -------------------------------
 *
 * A warm pod's list, claim and delete go to the API server directly, on the
 * loop's pool, where the run can read the list's answer (parse_warm_list)
 * and the client takes kubectl's kubeconfig; else, and after a 401, they
 * are kubectl's, as every other step. The answer is made the result kubectl
 * would have given (exit 0, or 1 and its words), and the state's reader
 * reads it as it reads kubectl's. */

static const struct esb_kube_api *api_for(const struct esb_k8s_run *run) {
  return run->parse_warm_list ? esb_kube_api_get(&run->plan->k8s, NULL) : NULL;
}

static const char *api_namespace(const struct esb_k8s_run *run) {
  return run->plan->k8s.namespace_ ? run->plan->k8s.namespace_ : run->api->namespace_;
}

static struct esb_k8s_run *run_of_work(struct esb_loop_work *w) {
  return (struct esb_k8s_run *)((char *)w - offsetof(struct esb_k8s_run, api_work));
}

static void api_work(struct esb_loop_work *w) {
  struct esb_k8s_run *run = run_of_work(w);
  run->api_rc = esb_kube_api_request(run->api, run->api_method, run->api_path, run->api_type,
                                     run->api_body[0] ? run->api_body : NULL, run->api_timeout_ms, &run->api_reply);
}

/* The answer as kubectl's result: the list's lines on stdout, a failure's
 * words on stderr. */
static void api_result(struct esb_k8s_run *run, struct esb_result *er) {
  struct esb_kube_reply *r = &run->api_reply;
  char said[640];
  bool ok = run->api_rc == 0 && ((r->code >= 200 && r->code < 300) ||
                                 (run->state == ESB_K8S_DELETE && r->code == 404)); /* --ignore-not-found */
  size_t n = 0;
  char *lines = ok && run->state == ESB_K8S_CLAIM_LIST ? run->parse_warm_list(r->body ? r->body : "", r->len, &n)
                                                        : NULL;
  /* Interrupted: as a kubectl cut short (a claim that went through leaves
   * its pod claimed, which its activeDeadlineSeconds ends: no program runs
   * after the interrupt). */
  if (run->state != ESB_K8S_DELETE && run->loop->interrupted) {
    esb_result_fail(er, ESB_E_INTERRUPTED, "interrupted");
  } else if (ok && (lines || run->state != ESB_K8S_CLAIM_LIST)) {
    esb_result_exited(er, 0);
    esb_capture_append(&er->out, lines ? lines : "", n);
  } else {
    if (run->api_rc < 0)
      snprintf(said, sizeof said, "Unable to connect to the server: %s", r->err);
    else if (ok)
      snprintf(said, sizeof said, "error: the API server's list of pods did not read");
    else
      esb_kube_api_said(r, said, sizeof said);
    esb_result_exited(er, 1);
    esb_capture_append(&er->err, said, strlen(said));
  }
  free(lines);
  esb_kube_reply_release(r);
}

static int restart_with_kubectl(struct esb_k8s_run *run);

static void api_done(struct esb_loop_work *w) {
  struct esb_k8s_run *run = run_of_work(w);
  run->exec = (struct esb_exec)ESB_EXEC_INIT;
  if (run->api_rc == 0 && run->api_reply.code == 401) {
    esb_kube_api_drop(run->api); /* refused: kubectl, which may renew them, from now on */
    esb_kube_reply_release(&run->api_reply);
    if (restart_with_kubectl(run) == 0)
      return;
  } else {
    run->exec.result.out.cap = run->exec.result.err.cap = 1u << 20;
    api_result(run, &run->exec.result);
  }
  step_done(&run->exec, run);
}

/* The request of the state's step, on the pool. */
static int api_start(struct esb_k8s_run *run, const char *method, const char *type, uint64_t timeout_ms) {
  run->api_method = method;
  run->api_type = type;
  run->api_timeout_ms = timeout_ms;
  run->api_rc = -1;
  run->api_work = (struct esb_loop_work){ .work = api_work, .done = api_done };
  esb_loop_offload(run->loop, &run->api_work);
  return 0;
}

/* ---- the claim of a warm pod (k8s_warm.h) ------------------------------ */

/* kubectl get of the pool's ready pods of the plan's shape, within the
 * pool's claim grace (a list that takes longer: the run goes cold). */
static int start_claim_list(struct esb_k8s_run *run) {
  const struct esb_k8s_settings *k = &run->plan->k8s;
  char selector[ESB_WARM_SELECTOR_MAX];
  const char *tail[8];
  char **argv = NULL, query[3 * ESB_WARM_SELECTOR_MAX];
  uint64_t grace = k->warm_claim_grace_ms;
  bool listed = esb_warm_list_tail(k->warm_pool, k->warm_hash, "ready", selector, tail) == 0;
  run->api_body[0] = '\0';
  if (listed && (run->api = api_for(run)) && esb_kube_api_escape(selector, query, sizeof query) == 0) {
    snprintf(run->api_path, sizeof run->api_path, "/api/v1/namespaces/%s/pods?labelSelector=%s",
             api_namespace(run), query);
    return api_start(run, "GET", NULL, grace ? grace : 1);
  }
  if (listed)
    argv = esb_k8s_kubectl_argv(k, tail);
  return start_kubectl(run, argv, NULL, 0, -1, grace ? grace : 1, 1u << 20);
}

/* The claim of the next pod listed (its patch, by the API client or
 * kubectl). It is given the time to answer
 * past the grace: a claim cut short might have gone through, and the pod
 * be claimed by no run. */
static int start_claim_of(struct esb_k8s_run *run, const struct esb_warm_pod *p) {
  if ((run->api = api_for(run)) && esb_warm_claim_patch(p, run->api_body, sizeof run->api_body) == 0) {
    snprintf(run->api_path, sizeof run->api_path, "/api/v1/namespaces/%s/pods/%s?fieldManager=echo-sandbox",
             api_namespace(run), p->name);
    return api_start(run, "PATCH", "application/merge-patch+json", 15000);
  }
  return start_kubectl(run, esb_warm_claim_argv(&run->plan->k8s, p), NULL, 0, -1, 15000, 64u << 10);
}

static int start_claim(struct esb_k8s_run *run) {
  const struct esb_warm_pod *p = &run->candidates[run->next_candidate++];
  run->taking = esb_warm_take(p->name) ? p->name : NULL;
  return start_claim_of(run, p);
}

/* The pod the run was taking goes back to the process's other runs. */
static void let_go(struct esb_k8s_run *run) {
  if (run->taking)
    esb_warm_let_go(run->taking);
  run->taking = NULL;
}

static bool exec_interrupted(const struct esb_result *er) {
  return er->status == ESB_STATUS_ERROR && er->error == ESB_E_INTERRUPTED;
}

/* The next pod to claim, or none (the grace is over, or none is left);
 * those another run of this process is taking are passed by. */
static enum esb_k8s_event next_candidate(struct esb_k8s_run *run) {
  while (run->next_candidate < run->n_candidates && esb_warm_taken(run->candidates[run->next_candidate].name))
    run->next_candidate++;
  bool in_grace = esb_now_ns() < run->claim_until_ns;
  return in_grace && run->next_candidate < run->n_candidates ? ESB_K8S_EV_CANDIDATE : ESB_K8S_EV_COLD;
}

/* The claim is over where ev says so: its time, for the result. */
static enum esb_k8s_event claim_over(struct esb_k8s_run *run, enum esb_k8s_event ev) {
  if (ev == ESB_K8S_EV_CLAIMED || ev == ESB_K8S_EV_COLD)
    run->claim_ns = esb_now_ns() - run->first_try_ns;
  return ev;
}

/* The pods the list gave that the run may claim, begun at a random one: two
 * engines that list at once seldom try the same pod first. */
static enum esb_k8s_event claim_list_read(struct esb_k8s_run *run, struct esb_result *er) {
  if ((run->interrupted = run->claim_cut = exec_interrupted(er))) {
    esb_result_release(er);
    return ESB_K8S_EV_INTERRUPTED;
  }
  struct esb_warm_pod *pods = NULL;
  size_t n = 0, kept = 0;
  bool listed = er->status == ESB_STATUS_EXITED && er->exit_code == 0 &&
                esb_warm_parse(er->out.data ? er->out.data : "", er->out.len, &pods, &n) == 0;
  if (!listed && er->status == ESB_STATUS_EXITED && er->err.data) { /* the result's warning says why */
    er->err.len = esb_kubectl_strip_own_lines(er->err.data, er->err.len);
    snprintf(run->claim_failed, sizeof run->claim_failed, "the list failed: %.*s",
             (int)strcspn(er->err.data, "\n"), er->err.data);
  }
  int64_t not_after = (int64_t)time(NULL) + (int64_t)(run->plan->timeout_ms / 1000) + ESB_WARM_MARGIN_S;
  for (size_t i = 0; listed && i < n; i++)
    if (esb_warm_claimable(&pods[i], not_after))
      pods[kept++] = pods[i];
  size_t start = kept ? (size_t)(esb_now_ns() / 1000) % kept : 0;
  for (size_t i = 0; i < start; i++) { /* rotate left by start */
    struct esb_warm_pod first = pods[0];
    memmove(pods, pods + 1, (kept - 1) * sizeof *pods);
    pods[kept - 1] = first;
  }
  esb_result_release(er);
  run->candidates = pods;
  run->n_candidates = kept;
  run->next_candidate = 0;
  return claim_over(run, next_candidate(run));
}

/* The claim went through: the pod is the run's, and the run's plan names it. */
static void claimed(struct esb_k8s_run *run) {
  const struct esb_warm_pod *p = &run->candidates[run->next_candidate - 1];
  snprintf(run->warm_name, sizeof run->warm_name, "%s", p->name);
  run->warm_plan = *run->plan;
  run->warm_plan.k8s.pod_name = run->warm_name;
  run->plan = &run->warm_plan;
  run->warm = true;
  snprintf(run->result.sandbox_name, sizeof run->result.sandbox_name, "%s", run->warm_name);
}

/* What the claim's label said: the pod is the run's, or it changed or went
 * since the list (another engine's claim, an eviction, a delete: the next
 * is tried), or the label failed otherwise (the run goes cold and says
 * why: a cluster that refuses every claim costs each run its grace). */
static enum esb_k8s_event claim_read(struct esb_k8s_run *run, struct esb_result *er) {
  if ((run->interrupted = run->claim_cut = exec_interrupted(er))) {
    esb_result_release(er);
    return ESB_K8S_EV_INTERRUPTED;
  }
  bool ok = er->status == ESB_STATUS_EXITED && er->exit_code == 0;
  char said[256] = "";
  if (!ok && er->err.data) {
    er->err.len = esb_kubectl_strip_own_lines(er->err.data, er->err.len);
    snprintf(said, sizeof said, "%.*s", (int)strcspn(er->err.data, "\n"), er->err.data);
  }
  esb_result_release(er);
  if (ok) {
    claimed(run);
    return claim_over(run, ESB_K8S_EV_CLAIMED);
  }
  let_go(run);
  if (esb_warm_claim_lost(said))
    return claim_over(run, next_candidate(run));
  snprintf(run->claim_failed, sizeof run->claim_failed, "%s", said[0] ? said : "the claim failed");
  return claim_over(run, ESB_K8S_EV_COLD);
}

/* What kubectl says when the API server did not take the create but may
 * take it again: overloaded, failing, unreachable. 403, 422 and 409 are
 * not among them. */
static bool create_may_succeed_later(const char *said) {
  static const char *const transient[] = {
    "(InternalError)", "(ServiceUnavailable)", "(TooManyRequests)", "(Timeout)", "(ServerTimeout)",
    "connection refused", "Unable to connect to the server", "i/o timeout", "connection reset", "unexpected EOF",
    NULL,
  };
  for (const char *const *t = transient; said && *t; t++)
    if (strstr(said, *t))
      return true;
  return esb_kubectl_unreachable(said);
}

/* When the next create may be tried (0.2 s, doubling, at most 2 s after
 * the last), or 0 where the request's deadline leaves no time worth a try:
 * less than 0.5 s, or than twice what the last try took. A try the
 * deadline cuts leaves a pod that may exist, to be looked for and deleted,
 * and a loaded machine (or API server) makes every try slower. */
static uint64_t create_retry_at(const struct esb_k8s_run *run) {
  uint64_t now = esb_now_ns(), took_ns = now - run->try_began_ns;
  uint64_t pause_ms = 200ull << (run->create_attempts > 4 ? 4 : run->create_attempts - 1);
  if (pause_ms > 2000)
    pause_ms = 2000;
  uint64_t at = now + pause_ms * 1000000ull;
  uint64_t room = 2 * took_ns > 500 * 1000000ull ? 2 * took_ns : 500 * 1000000ull;
  return at + room >= run->run_deadline_ns ? 0 : at;
}

/* What kubectl says when the create's request went out and its answer did
 * not come back whole: the pod may exist. */
static bool answer_lost(const char *said) {
  return said && (strstr(said, "unexpected EOF") || strstr(said, "connection reset") ||
                  strstr(said, "i/o timeout"));
}

/* The pod of a create whose answer was lost, read by name before the create
 * is tried again (which would meet the run's own pod, 409). */
static int start_probe(struct esb_k8s_run *run) {
  uint64_t now = esb_now_ns();
  uint64_t ms = run->run_deadline_ns > now ? (run->run_deadline_ns - now) / 1000000ull : 100;
  if (ms > ESB_K8S_GET_TIMEOUT_MS)
    ms = ESB_K8S_GET_TIMEOUT_MS;
  if (ms < 100)
    ms = 100;
  char request_timeout[64];
  snprintf(request_timeout, sizeof request_timeout, "--request-timeout=%llums", (unsigned long long)ms);
  const char *tail[] = {"get", "pod", run->plan->k8s.pod_name, "-o", "json", request_timeout, NULL};
  return start_kubectl(run, esb_k8s_kubectl_argv(&run->plan->k8s, tail), NULL, 0, -1, ms + 1000, 4u << 20);
}

/* Milliseconds left of the budget that the steps after the run share. */
static uint64_t budget_left_ms(const struct esb_k8s_run *run) {
  uint64_t now = esb_now_ns();
  return run->delete_deadline_ns > now ? (run->delete_deadline_ns - now) / 1000000ull : 0;
}

/* The get takes at most half of what is left, so the delete has its turn. */
static int start_get(struct esb_k8s_run *run) {
  uint64_t ms = budget_left_ms(run) / 2;
  if (ms > ESB_K8S_GET_TIMEOUT_MS)
    ms = ESB_K8S_GET_TIMEOUT_MS;
  if (ms < 100)
    ms = 100;
  /* kubectl's own limit before ours, so that what it says of a request it
   * gave up on is heard: a throttled one ends a Retry-After (1 s, commonly)
   * past it. */
  char request_timeout[64];
  snprintf(request_timeout, sizeof request_timeout, "--request-timeout=%llums",
           (unsigned long long)(ms > 2500 ? ms - 1500 : ms / 2));
  const char *tail[] = {"get", "pod", run->plan->k8s.pod_name, "-o", "json", request_timeout, NULL};
  return start_kubectl(run, esb_k8s_kubectl_argv(&run->plan->k8s, tail), NULL, 0, -1, ms, 4u << 20);
}

/* One delete attempt, within what is left of the budget. */
static int start_delete(struct esb_k8s_run *run) {
  const struct esb_k8s_settings *k = &run->plan->k8s;
  uint64_t left_ms = budget_left_ms(run);
  if (left_ms < 100)
    left_ms = 100; /* one try, however late */
  char request_timeout[64];
  snprintf(request_timeout, sizeof request_timeout, "--request-timeout=%llums", (unsigned long long)left_ms);
  /* The policy's grace, not the pod's: a pod whose override the API server
   * took differently still gets no more than that. */
  char grace[64];
  snprintf(grace, sizeof grace, "--grace-period=%llu",
           (unsigned long long)esb_k8s_grace_seconds(run->plan->kill_grace_ms));
  const char *tail[] = {"delete", "pod", k->pod_name, "--ignore-not-found", "--wait=false", grace, request_timeout,
                        NULL};
  run->delete_attempts++;
  run->api_body[0] = '\0';
  if (run->warm && (run->api = api_for(run))) {
    snprintf(run->api_path, sizeof run->api_path, "/api/v1/namespaces/%s/pods/%s?gracePeriodSeconds=%llu",
             api_namespace(run), k->pod_name, (unsigned long long)esb_k8s_grace_seconds(run->plan->kill_grace_ms));
    return api_start(run, "DELETE", NULL, left_ms);
  }
  return start_kubectl(run, esb_k8s_kubectl_argv(k, tail), NULL, 0, -1, left_ms, 65536);
}

/* The step again by kubectl, the API client's credentials refused. */
static int restart_with_kubectl(struct esb_k8s_run *run) {
  if (run->state == ESB_K8S_CLAIM_LIST)
    return start_claim_list(run);
  if (run->state == ESB_K8S_CLAIM)
    return start_claim_of(run, &run->candidates[run->next_candidate - 1]);
  run->delete_attempts--; /* the same try */
  return start_delete(run);
}

static char *capture_text(const struct esb_capture *c) {
  return strndup(c->data ? c->data : "", c->len);
}

/* When a failed delete may be tried again (0.1 s, doubling, at most 2 s
 * between tries) while the budget lasts, or 0: an API server that answers
 * 500 or 429, or is unreachable for a moment, must not leave the pod. What
 * no retry can mend (403, 401) ends the tries. */
static uint64_t delete_retry_at(const struct esb_k8s_run *run, const struct esb_result *er) {
  const char *err = er->err.data ? er->err.data : "";
  if (er->status == ESB_STATUS_TIMED_OUT || strstr(err, "(Forbidden)") || strstr(err, "(Unauthorized)"))
    return 0;
  uint64_t pause_ms = 100ull << (run->delete_attempts > 5 ? 5 : run->delete_attempts - 1);
  if (pause_ms > 2000)
    pause_ms = 2000;
  uint64_t at = esb_now_ns() + pause_ms * 1000000ull;
  return at >= run->delete_deadline_ns ? 0 : at;
}

/* A delete that failed for good, said in the result's cleanup_error. */
static void note_delete_failed(struct esb_k8s_run *run, const struct esb_result *er) {
  const char *what = er->status == ESB_STATUS_TIMED_OUT ? "timed out" : "failed";
  char *said = capture_text(&er->err);
  if (said)
    said[esb_kubectl_strip_own_lines(said, strlen(said))] = '\0';
  if (asprintf(&run->result.cleanup_error, "kubectl delete pod %s %s (%u tries)%s%s", run->plan->k8s.pod_name,
               what, run->delete_attempts, said && *said ? ": " : "", said ? said : "") < 0)
    run->result.cleanup_error = NULL;
  free(said);
}

/* kubectl appends "pod NS/NAME terminated (REASON)\n<message>" to its
 * stderr after a non-zero exit, even with -q: after the end mark, where
 * only kubectl writes. Keeps REASON (kubectl's own report of how the
 * container ended). */
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
  const char *reason = last + strlen(needle);
  size_t n = strcspn(reason, ")\n");
  snprintf(run->trailer_reason, sizeof run->trailer_reason, "%.*s", (int)n, reason);
  size_t cut = err->len - (size_t)(last - err->data);
  err->len -= cut;
  err->total -= cut;
  err->data[err->len] = '\0';
}

/* Who made the exec: kubectl, or the API client's helper (kube_exec.h). */
static const char *exec_tool(const struct esb_k8s_run *run) {
  return run->exec_api ? "the exec (echo-sandbox-kube)" : "kubectl exec";
}

/* Our deadline stopped kubectl. It is the program's timeout only where the
 * program ran then: it had started (the start mark) and not ended (the end
 * mark, or the watch saw the container end). Otherwise it is the cluster's
 * (kubectl waited on a slow API server), said as what the engine saw.
 * Returns whether that decided the result; false leaves it to decide(). */
static bool decide_deadline(struct esb_k8s_run *run, bool never_ran) {
  struct esb_result *r = &run->result;
  const char *name = run->plan->k8s.pod_name;
  unsigned long long ms = (unsigned long long)run->plan->timeout_ms;
  if (run->started && !run->ended)
    return true; /* it ran at the deadline: its timeout */
  if (run->ended) {
    int status = run->end_err.seen ? end_mark_status(run) : run->pod.exit_code;
    esb_result_fail(r, ESB_E_BACKEND, "the program in pod %s had ended (exit status %d, as %s) when the run's "
                    "deadline (%llu ms) passed, but kubectl had not reported it yet: the API server answers too "
                    "slowly", name, status, run->end_by_watch ? "the pod's status says" : "the pod's end mark says",
                    ms);
    r->reason = "KubectlTimeout";
    /* The end mark alone is the program's word (k8s.c's streams): another
     * try is not offered on it. */
    run->no_retry = !run->end_by_watch;
    return true;
  }
  bool exec_into = run->in_session || run->warm; /* into a pod that was up: no watch need have seen it */
  if ((!exec_into && !run->have_pod && !run->pod_seen) || never_ran)
    return false; /* said below: no answer at all, or a pod that stayed Pending */
  if (run->start_err.seen) /* the wrapper had the handshake, not yet its start line */
    esb_result_fail(r, ESB_E_BACKEND, "the run's deadline (%llu ms) passed before the program started: the "
                    "wrapper in pod %s was still receiving or writing the request's files and stdin", ms, name);
  else if (exec_into)
    esb_result_fail(r, ESB_E_BACKEND, "the run's deadline (%llu ms) passed before the program started: %s into pod "
                    "%s had not started it (the API server or its kubelet answers too slowly)", ms, exec_tool(run),
                    name);
  else
    esb_result_fail(r, ESB_E_BACKEND, "the run's deadline (%llu ms) passed before the program started: kubectl had "
                    "not attached to pod %s%s%s (the API server answers too slowly)", ms, name,
                    run->have_pod ? ", phase " : "", run->have_pod ? run->pod.phase : "");
  r->reason = "KubectlTimeout";
  r->signal = 0; /* ours went to kubectl or the exec, never to the program */
  esb_capture_release(&r->err);
  return true;
}

/* What kubectl says when the API server answered 429: at once (no
 * Retry-After), or after its own waits outran its deadline. */
static bool throttled(const char *said) {
  return strstr(said, "(TooManyRequests)") || strstr(said, "has received too many requests") ||
         (strstr(said, "rate limiter Wait returned an error") && !esb_kubectl_unreachable(said));
}

/* A create the API server refused for now, as the run's failure: what
 * kubectl said, the reason of its kind (a quota used up, throttling, or
 * none: a 5xx), and after it what more there is to say. */
static void say_refused(struct esb_result *r, const char *said, const char *after) {
  if (strstr(said, "exceeded quota")) {
    esb_result_fail(r, ESB_E_BACKEND, "the namespace's resource quota is used up (runs that end free it): %s%s",
                    said, after);
    r->reason = "ExceededQuota";
  } else if (throttled(said)) {
    esb_result_fail(r, ESB_E_BACKEND, "the API server throttled the create (429 Too Many Requests) until the run's "
                    "deadline: %s%s", said, after);
    r->reason = "Throttled";
  } else {
    esb_result_fail(r, ESB_E_BACKEND, "%s%s", said, after);
  }
}

/* The deadline cut a create tried again after the API server had refused
 * it for now (or no try had connected): the refusals are the run's
 * failure, not "kubectl did not answer" (the API server answered each
 * try; it is the cut try's answer that never came). That try may have
 * made the pod, so it was looked for and deleted (cleanup_error says
 * where that failed). */
static bool decide_refused_then_cut(struct esb_k8s_run *run) {
  struct esb_result *r = &run->result;
  unsigned refused = run->create_attempts - 1;
  char cut[256];
  snprintf(cut, sizeof cut, "; the run's deadline (%llu ms) cut try %u short before its answer came, so the "
           "pod it may have made was looked for and its delete tried", (unsigned long long)run->plan->timeout_ms,
           run->create_attempts);
  if (run->refused_unreached) {
    esb_result_fail(r, ESB_E_BACKEND, "the Kubernetes API server is unreachable: kubectl made no connection to it "
                    "in %u %s: %.*s%s", refused, refused == 1 ? "try" : "tries",
                    (int)strcspn(run->refused, "\n"), run->refused, cut);
    r->reason = "Unreachable";
  } else {
    say_refused(r, run->refused, cut);
  }
  r->duration_ms = (double)(esb_now_ns() - run->first_try_ns) / 1e6; /* every try's */
  run->retryable = true;
  esb_capture_release(&r->err);
  return true;
}

/* The rules that decide the result of the program, from the run step and,
 * when kubectl failed, the pod's status: each returns whether it decided,
 * and the first that does wins (decide()). */

/* An interrupt: only a delete that went through is claimed. */
static bool decide_interrupted(struct esb_k8s_run *run) {
  struct esb_result *r = &run->result;
  if (!run->interrupted)
    return false;
  if (run->in_session)
    esb_result_fail(r, ESB_E_INTERRUPTED, "the executor was interrupted by a signal; the run's processes in session "
                    "%s end at the run's deadline", run->plan->k8s.pod_name);
  else if (run->claim_cut)
    esb_result_fail(r, ESB_E_INTERRUPTED, "the executor was interrupted by a signal while it claimed a warm pod: "
                    "no pod was made");
  else if (r->cleanup_error)
    esb_result_fail(r, ESB_E_INTERRUPTED, "the executor was interrupted by a signal; deleting the pod failed "
                    "(cleanup_error)");
  else
    esb_result_fail(r, ESB_E_INTERRUPTED, "the executor was interrupted by a signal; the pod was deleted");
  return true;
}

static bool decided_already(struct esb_k8s_run *run) {
  return run->result.status == ESB_STATUS_ERROR;
}

/* What the watch or the streams saw ended the run; the output so far stays
 * in the result. */
static bool decide_verdict(struct esb_k8s_run *run) {
  struct esb_result *r = &run->result;
  if (!run->verdict)
    return false;
  esb_result_fail(r, ESB_E_BACKEND, "%s", run->verdict_message);
  r->reason = run->verdict;
  if (strcmp(run->verdict, "AttachLost") == 0)
    cut_attach_notice(run, &r->err);
  return true;
}

/* Our deadline: kubectl was killed. */
static bool decide_timed_out(struct esb_k8s_run *run) {
  struct esb_result *r = &run->result;
  const struct esb_pod_status *pod = &run->pod;
  if (r->status != ESB_STATUS_TIMED_OUT)
    return false;
  bool never_ran = run->have_pod && !pod->terminated && strcmp(pod->phase, "Pending") == 0;
  if (run->plan->k8s.handshake && decide_deadline(run, never_ran))
    return true;
  /* The program's timeout only where it is known to have run; where
   * nothing was heard of the pod at all, it is kubectl (or the API server
   * behind it) that did not answer. */
  if (!run->plan->k8s.handshake && (run->pod_ran || (run->have_pod && !never_ran)))
    return true;
  if (run->have_pod || run->pod_seen)
    return false;
  if (run->refused[0])
    return decide_refused_then_cut(run);
  if (run->throttled) {
    esb_result_fail(r, ESB_E_BACKEND, "the API server throttled kubectl's requests (429 Too Many Requests) until the "
                    "run's deadline (%llu ms): it is overloaded, or this client's share of it is used up; kubectl "
                    "get: %s", (unsigned long long)run->plan->timeout_ms, run->get_error);
    r->reason = "Throttled";
  } else {
    esb_result_fail(r, ESB_E_BACKEND, "kubectl did not answer within the run's deadline (%llu ms): the API server "
                    "is unreachable or does not answer%s%s", (unsigned long long)run->plan->timeout_ms,
                    run->get_error[0] ? "; kubectl get: " : "", run->get_error);
    r->reason = "KubectlTimeout";
  }
  esb_capture_release(&r->err);
  return true;
}

/* kubectl exit 0: the program's result (kubectl attach, to a pod adopted,
 * does not tell the program's exit: the pod's status does). */
static bool decide_kubectl_exit_0(struct esb_k8s_run *run) {
  return run->result.status == ESB_STATUS_EXITED && run->result.exit_code == 0 && !run->adopted;
}

/* The exec into a session's pod or a warm pod failed before the program
 * began: kubectl's words (or the helper's word) say why (the caller reads
 * the pod for why a session ended: k8s_session.h). */
static void session_exec_failed(struct esb_k8s_run *run) {
  struct esb_result *r = &run->result;
  const char *name = run->plan->k8s.pod_name;
  const char *said = run->kubectl_stderr && *run->kubectl_stderr ? run->kubectl_stderr : "kubectl exec failed";
  if (run->warm) { /* a pod of the pool, not the request's: the same request may take another */
    esb_result_fail(r, ESB_E_BACKEND, "%s into warm pod %s failed before the program began: %.*s", exec_tool(run),
                    name, (int)strcspn(said, "\n"), said);
    r->reason = "WarmPodLost";
  } else if (strstr(said, "forbidden") || strstr(said, "Forbidden")) {
    esb_result_fail(r, ESB_E_BACKEND, "kubectl may not exec into session %s: its account needs \"create\" on "
                    "\"pods/exec\" in namespace %s (deploy/rbac.yaml): %.*s", name, run->plan->k8s.namespace_,
                    (int)strcspn(said, "\n"), said);
    r->reason = "ExecForbidden";
  } else if (strstr(said, "(NotFound)") || strstr(said, "completed pod") || strstr(said, "container not found")) {
    esb_result_fail(r, ESB_E_INVALID_REQUEST, "session %s has ended: %.*s", name, (int)strcspn(said, "\n"), said);
    r->reason = "SessionEnded";
  } else {
    esb_result_fail(r, ESB_E_BACKEND, "%s into session %s failed: %.*s", exec_tool(run), name,
                    (int)strcspn(said, "\n"), said);
  }
  esb_capture_release(&r->err);
}

/* kubectl exec whose connection broke while the program ran: its report
 * (klog lines, then its "error: ..." line) ends the stderr it passed on,
 * where no end mark came to tell it from the program's. It goes, and its
 * last line (kept in said, size n) says what broke. */
static void cut_exec_report(struct esb_capture *err, char *said, size_t n) {
  said[0] = '\0';
  size_t cut = err->len;
  while (err->data && cut && err->data[cut - 1] == '\n') {
    size_t line = cut - 1;
    while (line && err->data[line - 1] != '\n')
      line--;
    bool last = cut == err->len, error_line = last && strncmp(err->data + line, "error: ", 7) == 0;
    if (!error_line && !esb_kubectl_own_line(err->data + line, cut - 1 - line))
      break;
    if (error_line)
      snprintf(said, n, "%.*s", (int)(cut - 1 - line), err->data + line);
    cut = line;
  }
  if (!err->data || cut == err->len)
    return;
  err->total -= err->len - cut;
  err->len = cut;
  err->data[cut] = '\0';
}

/* kubectl's last "error: ..." line among its own words, into said (size
 * n; "" when it has none). */
static void last_error_line(const struct esb_k8s_run *run, char *said, size_t n) {
  said[0] = '\0';
  char *words = kubectl_words(run);
  for (char *line = words; line && *line;) {
    size_t len = strcspn(line, "\n");
    if (strncmp(line, "error: ", 7) == 0)
      snprintf(said, n, "%.*s", (int)len, line);
    line += len + (line[len] == '\n');
  }
  free(words);
}

/* The exec ended, and not as the program did: its connection broke (or
 * the pod's command was killed) while the program ran on, or, with the
 * helper, after the program's end mark but before the API server's status
 * came, whose exit the end mark alone then says (the program's word, not
 * the engine's: no retry is offered on it). */
static void exec_lost(struct esb_k8s_run *run) {
  struct esb_result *r = &run->result;
  const char *what = run->warm ? "warm pod" : "session", *name = run->plan->k8s.pod_name;
  char said[600];
  if (exec_word_failed(run)) {
    snprintf(said, sizeof said, "%s", run->exec_word.said);
  } else if (run->exec_api) { /* the status came: the pod's command ended (killed) without the end mark */
    snprintf(said, sizeof said, "the API server's status: the exec'd command ended with exit code %d",
             run->exec_word.exit_code);
  } else {
    cut_exec_report(&r->err, said, sizeof said);
    if (!said[0]) /* the stderr mark was lost with the connection: all of it was kubectl's */
      last_error_line(run, said, sizeof said);
  }
  if (run->end_err.seen) {
    esb_result_fail(r, ESB_E_BACKEND, "%s into %s %s ended after the program did (exit status %d, as its end mark "
                    "says) but before the API server's status came (%s)", exec_tool(run), what, name,
                    end_mark_status(run), said);
    run->no_retry = true;
  } else {
    esb_result_fail(r, ESB_E_BACKEND, "%s into %s %s ended while the program ran on (%s): the output is incomplete",
                    exec_tool(run), what, name, said[0] ? said : "kubectl said nothing");
  }
  r->reason = "AttachLost";
}

/* A run in a session or a warm pod: the exec's exit code (kubectl's, or
 * the status's as the helper's word gives it) is the exec'd command's, the
 * wrapper's, which exits with the program's status once the program has
 * ended (the end mark); 128+N is signal N, as a shell says it. */
static bool decide_in_session(struct esb_k8s_run *run) {
  struct esb_result *r = &run->result;
  if (!run->in_session && !run->warm)
    return false;
  if (run->plan->k8s.handshake && !run->started) {
    session_exec_failed(run);
  } else if (exec_word_failed(run) || (run->plan->k8s.handshake && !run->end_err.seen)) {
    exec_lost(run);
  } else if (r->exit_code > 128 && r->exit_code < 128 + 32) {
    esb_result_signaled(r, r->exit_code - 128);
  } else {
    esb_result_exited(r, r->exit_code);
  }
  return true;
}

/* What the watch would have said, had kubectl not ended first. */
static bool decide_pod_lost(struct esb_k8s_run *run) {
  struct esb_result *r = &run->result;
  const struct esb_pod_status *pod = &run->pod;
  if (run->have_pod && strcmp(pod->pod_reason, "Evicted") == 0) {
    esb_result_fail(r, ESB_E_BACKEND, "pod %s was evicted: %s", run->plan->k8s.pod_name,
                    pod->message[0] ? pod->message : "no message");
    r->reason = "Evicted";
    return true;
  }
  if (run->pod_gone || (run->have_pod && pod->deleting)) {
    esb_result_fail(r, ESB_E_BACKEND, DELETED_MESSAGE, run->plan->k8s.pod_name);
    r->reason = "Deleted";
    return true;
  }
  return false;
}

/* The status could not be read, but kubectl saw the container end and
 * exits with its code: that is the program's result. */
static bool decide_by_trailer(struct esb_k8s_run *run) {
  struct esb_result *r = &run->result;
  if (run->have_pod || !run->trailer_reason[0] || r->status != ESB_STATUS_EXITED)
    return false;
  if (strcmp(run->trailer_reason, ESB_REASON_OOM_KILLED) == 0)
    esb_result_oom_killed(r);
  else
    esb_result_exited(r, r->exit_code);
  esb_result_warn(r, "the status of pod %s could not be read (%s); the exit code is kubectl's report "
                  "of it", run->plan->k8s.pod_name, run->get_error[0] ? run->get_error : "kubectl get failed");
  return true;
}

/* The pod's container ended: its status tells how. */
static bool decide_terminated(struct esb_k8s_run *run) {
  struct esb_result *r = &run->result;
  const struct esb_pod_status *pod = &run->pod;
  if (!run->have_pod || !pod->terminated)
    return false;
  if (run->plan->k8s.handshake && !run->started) {
    /* The container ended before the program began: the pod's command
     * failed, or the handshake never came. */
    esb_result_fail(r, ESB_E_BACKEND, "pod %s ended (exit code %d, %s) before the program started: %s",
                    run->plan->k8s.pod_name, pod->exit_code, pod->reason[0] ? pod->reason : "no reason",
                    run->kubectl_stderr && *run->kubectl_stderr ? run->kubectl_stderr : "kubectl said nothing");
    esb_capture_release(&r->err);
    return true;
  }
  /* The pod's shell ended with the program (killed: no end mark), and
   * kubectl reported the container's own exit code: its trailer is the
   * last thing on its stderr, after the attach ended. */
  if (run->plan->k8s.handshake && !run->end_err.seen && r->status == ESB_STATUS_EXITED && r->exit_code != 0 &&
      r->exit_code == pod->exit_code)
    drop_kubectl_trailer(run, &r->err);
  if (strcmp(pod->reason, ESB_REASON_OOM_KILLED) == 0)
    esb_result_oom_killed(r);
  else if (strcmp(pod->pod_reason, "DeadlineExceeded") == 0)
    esb_result_timed_out(r);
  else if (pod->exit_code > 128 && pod->exit_code < 128 + 32)
    /* The runtime reports a container killed by signal N as 128+N, as a
     * shell does (a program that exits with such a code itself reads the
     * same: the pod does not tell them apart). */
    esb_result_signaled(r, pod->exit_code - 128);
  else
    esb_result_exited(r, pod->exit_code);
  return true;
}

static bool decide_deadline_exceeded(struct esb_k8s_run *run) {
  if (!run->have_pod || strcmp(run->pod.pod_reason, "DeadlineExceeded") != 0)
    return false;
  esb_result_timed_out(&run->result);
  return true;
}

/* kubectl ended while the program ran on: its attach is gone, and what
 * the program wrote after that is not here. */
static bool decide_attach_ended(struct esb_k8s_run *run) {
  struct esb_result *r = &run->result;
  if (!run->plan->k8s.handshake || !run->start_err.seen || run->ended)
    return false;
  cut_attach_notice(run, &r->err);
  esb_result_fail(r, ESB_E_BACKEND, "the attach to pod %s ended while the program ran on (kubectl %s): the "
                  "output is incomplete", run->plan->k8s.pod_name,
                  run->kubectl_stderr && *run->kubectl_stderr ? run->kubectl_stderr : "ended");
  r->reason = "AttachLost";
  return true;
}

/* The pod never ran: everything on stderr was kubectl's. */
static bool decide_never_ran(struct esb_k8s_run *run) {
  struct esb_result *r = &run->result;
  const struct esb_pod_status *pod = &run->pod;
  const char *said = run->kubectl_stderr && *run->kubectl_stderr ? run->kubectl_stderr
                     : r->status == ESB_STATUS_TIMED_OUT ? "the request's deadline passed while it was pending"
                     : "kubectl failed";
  if (run->have_pod) {
    esb_result_fail(r, ESB_E_BACKEND, "pod %s never ran (phase %s%s%s): %s", run->plan->k8s.pod_name,
                    pod->phase, pod->message[0] ? ", " : "", pod->message, said);
    if (pod->unschedulable)
      r->reason = "Unschedulable"; /* as after the policy's grace: no node fits it, for now */
  } else if (run->unreachable) {
    esb_result_fail(r, ESB_E_BACKEND, "the Kubernetes API server is unreachable: kubectl made no connection to it "
                    "in %u tries within the run's deadline (%llu ms), so no pod was created: %.*s",
                    run->create_attempts, (unsigned long long)run->plan->timeout_ms, (int)strcspn(said, "\n"), said);
    /* every try, not the last one's kubectl alone */
    r->duration_ms = (double)(esb_now_ns() - run->first_try_ns) / 1e6;
    r->reason = "Unreachable";
  } else {
    say_refused(r, said, "");
  }
  esb_capture_release(&r->err);
  return true;
}

static void decide(struct esb_k8s_run *run) {
  static bool (*const rules[])(struct esb_k8s_run *) = {
    decide_interrupted, decided_already, decide_verdict, decide_timed_out, decide_kubectl_exit_0,
    decide_in_session, decide_pod_lost, decide_by_trailer, decide_terminated, decide_deadline_exceeded,
    decide_attach_ended, decide_never_ran,
  };
  for (size_t i = 0; i < sizeof rules / sizeof rules[0] && !rules[i](run); i++)
    ;
}

/* Failures that another try may not meet: the cluster's passing states. */
static bool reason_is_transient(const char *reason) {
  static const char *const transient[] = { "KubectlTimeout", "AttachLost", "Evicted", "Deleted", "Unschedulable",
                                           "NodeLost", "NodeNotReady", "NotReady", "PodUnknown", "Restarted", "WarmPodLost",
                                           "Throttled", "ExceededQuota", "Unreachable", NULL };
  for (const char *const *t = transient; reason && *t; t++)
    if (strcmp(reason, *t) == 0)
      return true;
  return false;
}

/* The network by name: the run's ledger, from the shared proxy, which saw
 * its connections (the engine saw none of them). */
static void take_ledger(struct esb_k8s_run *run) {
  struct esb_error err = ESB_ERROR_INIT;
  /* the verdicts as output events: the follow's while the run went on,
   * then the ledger's that it did not tell */
  esb_egress_k8s_follow_stop(&run->follow);
  run->follow.on_seen = run->output.on_egress;
  run->follow.seen_userdata = run->output.userdata;
  run->result.egress.wanted = true;
  if (esb_egress_k8s_ledger(run->plan, &run->follow, &run->result.egress, &err) < 0)
    esb_result_warn(&run->result, "the egress proxy's ledger could not be read whole (left_off counts what it could "
                    "not say): %s", err.message);
}

static void finish(struct esb_k8s_run *run) {
  decide(run);
  if (run->plan->egress_k8s.token && !run->in_session)
    take_ledger(run);
  if (run->in_session)
    snprintf(run->result.session, sizeof run->result.session, "%s", run->plan->k8s.pod_name);
  else
    run->result.warm = run->warm;
  if (run->plan->k8s.warm_pool && !run->in_session) {
    snprintf(run->result.warm_pool, sizeof run->result.warm_pool, "%s", run->plan->k8s.warm_pool);
    run->result.claim_ms = run->claim_ns ? (double)run->claim_ns / 1e6 : -1;
  }
  if (run->claim_failed[0])
    esb_result_warn(&run->result, "claiming a warm pod of pool %s failed (%s): a pod was made for the run",
                    run->plan->k8s.warm_pool, run->claim_failed);
  if (run->result.status == ESB_STATUS_ERROR) {
    run->result.retryable = !run->no_retry && (run->retryable || reason_is_transient(run->result.reason));
    run->result.killed_by_us = false; /* kubectl was, at the deadline: no word of the program's end */
  }
  if (run->on_done)
    run->on_done(run, run->userdata);
}

/* The files the wrapper sent back. None where the run ended before it
 * could send them (killed at its deadline); frames that do not read are
 * said in a warning. */
static void read_frames(struct esb_k8s_run *run) {
  struct esb_collected *files = &run->result.files;
  files->wanted = true;
  if (esb_k8s_frames_read(&run->frames, &run->plan->collect, files) < 0 && errno != ENOENT)
    esb_result_warn(&run->result, "the pod's files (collect) came back malformed or cut short: none are listed");
  esb_k8s_frames_release(&run->frames);
}

/* The wrapper said on its first line that it failed (or wrote something
 * else there): the program never ran, whatever kubectl's exit. The run ends
 * as the backend's failure, naming the step and what its tool said on
 * stderr (after the start mark: the pod's, no word of kubectl's), which is
 * no output of the program's. */
static void judge_wrapper(struct esb_k8s_run *run, struct esb_capture *err) {
  const struct esb_k8s_frames *f = &run->frames;
  if (f->start != ESB_K8S_START_FAILED && f->start != ESB_K8S_START_GARBLED)
    return;
  char *said = capture_text(err);
  const char *line = said ? said : "";
  int n = (int)strcspn(line, "\n");
  if (f->start == ESB_K8S_START_FAILED)
    verdict(run, "WrapperFailed", "the pod's wrapper failed before the program started, %s%s%.*s", f->step,
            n ? ": " : "", n, line);
  else
    verdict(run, "WrapperFailed", "the pod's wrapper wrote something other than its start line: the program "
            "never ran%s%.*s", n ? "; stderr: " : "", n, line);
  free(said);
  esb_capture_release(err);
  esb_capture_release(&run->result.out);
}

/* kubectl run failed: whether it is a create the API server refused for
 * now, to be tried again (retry, retry_unsure), or refused so that no try
 * ever connected (unreachable). ESB_K8S_EV_NONE where neither: the run
 * failed as any other. */
static enum esb_k8s_event create_refused_for_now(struct esb_k8s_run *run) {
  run->reached |= run->verdict || run->pod_seen || run->result.status != ESB_STATUS_EXITED ||
                  !esb_kubectl_unreachable(run->kubectl_stderr);
  if (run->interrupted || run->verdict || run->pod_seen || run->result.status != ESB_STATUS_EXITED ||
      !create_may_succeed_later(run->kubectl_stderr))
    return ESB_K8S_EV_NONE;
  run->create_unsure = answer_lost(run->kubectl_stderr);
  if ((run->next_try_ns = create_retry_at(run)))
    return run->create_unsure ? ESB_K8S_EV_RETRY_UNSURE : ESB_K8S_EV_RETRY;
  run->retryable = true; /* out of time, not out of hope */
  /* No try connected: the cluster never saw this run, there is no pod to
   * read or delete (each would meet the same closed door, for the whole
   * delete budget after the result was known). */
  run->unreachable = !run->reached;
  return run->unreachable ? ESB_K8S_EV_UNREACHABLE : ESB_K8S_EV_NONE;
}

/* The run step's kubectl ended: its result becomes the run's, the
 * program's output taken from kubectl's streams. Returns whether kubectl
 * failed (or cannot tell the program's exit). */
static bool take_run_result(struct esb_k8s_run *run, struct esb_result *er) {
  stop_watch(run);
  streams_end(run);
  wipe_exec_in(run);
  if (run->exec_api)
    read_exec_word(run, er);
  /* What comes after the run (get, delete and its tries) shares one budget. */
  run->delete_deadline_ns = esb_now_ns() + run->plan->k8s.delete_timeout_ms * 1000000ull;
  run->interrupted = er->status == ESB_STATUS_ERROR && er->error == ESB_E_INTERRUPTED;
  run->late_create_until_ns = esb_now_ns() + ESB_K8S_LATE_CREATE_MS * 1000000ull;
  /* The run's result is the program's: its stderr is what came between
   * the marks (kubectl's own words are in kubectl_err). */
  char pod_name[sizeof run->result.sandbox_name];
  memcpy(pod_name, run->result.sandbox_name, sizeof pod_name); /* the run's own, not kubectl's exec's */
  esb_result_move(&run->result, er);
  memcpy(run->result.sandbox_name, pod_name, sizeof pod_name);
  run->result.sandbox_type = "k8s";
  run->result.isolation = NULL;
  /* kubectl's own usage, not the program's: unknown here */
  run->result.cpu_time_ms = run->result.memory_peak_bytes = -1;
  esb_capture_release(&run->result.err);
  run->result.err = run->program_err;
  run->program_err = (struct esb_capture){ .cap = run->plan->max_output_bytes };
  if (run->plan->collect.n_patterns && run->result.status != ESB_STATUS_ERROR)
    read_frames(run);
  if (esb_k8s_payload_wanted(run->plan))
    judge_wrapper(run, &run->result.err);
  /* kubectl attach (a pod adopted) does not tell the program's exit: the
   * pod's status does. */
  bool failed = run->result.status != ESB_STATUS_EXITED || run->result.exit_code != 0 || run->verdict ||
                run->adopted;
  if (failed && run->plan->k8s.handshake) {
    run->kubectl_stderr = kubectl_words(run);
  } else if (failed) { /* no marks: all of it, for the message of a pod that never ran */
    run->kubectl_stderr = capture_text(&run->result.err);
    if (run->kubectl_stderr)
      run->kubectl_stderr[esb_kubectl_strip_own_lines(run->kubectl_stderr, strlen(run->kubectl_stderr))] = '\0';
  }
  if (run->end_err.seen)
    drop_kubectl_trailer(run, &run->kubectl_err); /* its reason, from kubectl's words after the end */
  if (exec_word_failed(run)) { /* the helper's words are its word's, none on its stderr */
    free(run->kubectl_stderr);
    run->kubectl_stderr = strdup(run->exec_word.said);
  }
  return failed;
}

/* ---- the events: what the end of each state's kubectl says ------------- */

static enum esb_k8s_event run_read(struct esb_k8s_run *run, struct esb_result *er) {
  bool failed = take_run_result(run, er);
  if (run->warm)
    return ESB_K8S_EV_KNOWN; /* the exec tells the program's end; the pod is deleted whatever it said */
  if (run->result.status == ESB_STATUS_ERROR && !run->interrupted)
    return ESB_K8S_EV_NO_KUBECTL; /* kubectl did not start: no pod to look at or delete */
  if (run->in_session)
    return ESB_K8S_EV_IN_SESSION; /* no create to try again, and the pod outlives the run */
  enum esb_k8s_event refused = failed ? create_refused_for_now(run) : ESB_K8S_EV_NONE;
  if (refused != ESB_K8S_EV_NONE)
    return refused;
  /* A timeout too: a pod still Pending at the deadline never ran. What
   * the watch saw needs no get. */
  return failed && !run->interrupted && !run->verdict ? ESB_K8S_EV_FAILED : ESB_K8S_EV_KNOWN;
}

/* What the probe found: the run's own pod (adopted: attached to), none (the
 * create is tried again), or a pod of that name that another engine made,
 * which is neither used nor deleted. */
static enum esb_k8s_event probe_read(struct esb_k8s_run *run, struct esb_result *er) {
  struct esb_pod_status pod;
  bool found = er->status == ESB_STATUS_EXITED && er->exit_code == 0 && run->parse_pod &&
               run->parse_pod(er->out.data ? er->out.data : "", er->out.len, &pod) == 0;
  bool missing = !found && er->err.data && memmem(er->err.data, er->err.len, "(NotFound)", 10);
  char said[ESB_MESSAGE_MAX]; /* the first line of what the get said, quoted in the message */
  if (er->err.data)
    er->err.len = esb_kubectl_strip_own_lines(er->err.data, er->err.len);
  snprintf(said, sizeof said, "%.*s", (int)strcspn(er->err.data ? er->err.data : "", "\n"),
           er->err.data ? er->err.data : "");
  esb_result_release(er);
  run->create_unsure = false;
  /* The budget of the delete, should one come now, as after a run. */
  run->delete_deadline_ns = esb_now_ns() + run->plan->k8s.delete_timeout_ms * 1000000ull;
  if (found && strcmp(pod.instance, run->plan->k8s.instance) == 0) {
    run->adopted = true;
    return ESB_K8S_EV_OURS;
  }
  if (missing)
    return ESB_K8S_EV_MISSING;
  if (found) {
    esb_result_fail(&run->result, ESB_E_BACKEND, "the create of pod %s lost its answer, and the pod of that name is "
                    "not this run's (its echo-sandbox.io/instance label is \"%s\", not \"%s\"): it was left alone",
                    run->plan->k8s.pod_name, pod.instance, run->plan->k8s.instance);
    run->result.reason = "PodNotOurs";
    return ESB_K8S_EV_NOT_OURS; /* and no delete: it is not ours */
  }
  esb_result_fail(&run->result, ESB_E_BACKEND, "the create of pod %s lost its answer, and reading the pod "
                  "failed: %s", run->plan->k8s.pod_name, said[0] ? said : "kubectl get failed");
  run->result.reason = "CreateUnsure";
  run->retryable = true;
  return ESB_K8S_EV_UNREAD;
}

static enum esb_k8s_event get_read(struct esb_k8s_run *run, struct esb_result *er) {
  if (er->status == ESB_STATUS_EXITED && er->exit_code == 0 && run->parse_pod)
    run->have_pod = run->parse_pod(er->out.data ? er->out.data : "", er->out.len, &run->pod) == 0;
  /* The pod was created (kubectl got as far as running the program) and
   * is gone now: deleted by someone else. */
  run->pod_gone = !run->have_pod && run->pod_seen && er->err.data &&
                  memmem(er->err.data, er->err.len, "(NotFound)", 10);
  if (!run->have_pod && er->err.data) {
    /* all of it kubectl's: the throttling it met, in its klog lines too;
     * then its klog lines go, whole */
    run->throttled = throttled(er->err.data);
    er->err.len = esb_kubectl_strip_own_lines(er->err.data, er->err.len);
    er->err.data[er->err.len] = '\0';
    snprintf(run->get_error, sizeof run->get_error, "%.*s", (int)strcspn(er->err.data, "\n"), er->err.data);
  }
  esb_result_release(er);
  return ESB_K8S_EV_READ;
}

static enum esb_k8s_event delete_read(struct esb_k8s_run *run, struct esb_result *er) {
  bool ok = er->status == ESB_STATUS_EXITED && er->exit_code == 0;
  enum esb_k8s_event ev = ESB_K8S_EV_DELETED;
  if (!ok && (run->next_try_ns = delete_retry_at(run, er)))
    ev = ESB_K8S_EV_RETRY;
  /* Interrupted before the pod was seen, the create may still be on its
   * way through the API server: a delete that found nothing is tried
   * again for a while (ESB_K8S_LATE_CREATE_MS), so that a pod created
   * after it is not left behind. */
  else if (run->interrupted && !run->pod_seen && ok && er->out.len == 0 && esb_now_ns() < run->late_create_until_ns &&
           (run->next_try_ns = delete_retry_at(run, er)))
    ev = ESB_K8S_EV_RETRY;
  else if (!ok)
    note_delete_failed(run, er);
  esb_result_release(er);
  return ev;
}

/* ---- the actions: one for each in k8s_run_table.h -----------------------
 *
 * Each returns 0, or -1 where the kubectl it starts did not start (the
 * dispatcher then gives the run that event, where it was). One that ends
 * the run calls finish(), after which the run may be gone. */

static int act_claim(struct esb_k8s_run *run) {
  return start_claim(run);
}

static int act_create(struct esb_k8s_run *run) {
  return start_run_step(run);
}

static int act_probe(struct esb_k8s_run *run) {
  return start_probe(run);
}

static int act_get(struct esb_k8s_run *run) {
  return start_get(run);
}

static int act_delete(struct esb_k8s_run *run) {
  return start_delete(run);
}

/* A wait's timer: the wait is over. */
static void wait_over(void *userdata) {
  dispatch(userdata, ESB_K8S_EV_TIMER);
}

/* The try that failed is dropped; the next comes at run->next_try_ns. */
static int act_wait_create(struct esb_k8s_run *run) {
  char pod[sizeof run->result.sandbox_name];
  memcpy(pod, run->result.sandbox_name, sizeof pod);
  esb_result_release(&run->result);
  run->result.sandbox_type = "k8s";
  memcpy(run->result.sandbox_name, pod, sizeof pod);
  const char *said = run->kubectl_stderr ? run->kubectl_stderr : "";
  size_t n = strlen(said);
  while (n && isspace((unsigned char)said[n - 1]))
    n--;
  snprintf(run->refused, sizeof run->refused, "%.*s", (int)n, said);
  run->refused_unreached = !run->reached;
  free(run->kubectl_stderr);
  run->kubectl_stderr = NULL;
  run->retry_timer = (struct esb_timer){ .at_ns = run->next_try_ns, .fire = wait_over, .userdata = run };
  esb_timer_start(run->loop, &run->retry_timer);
  return 0;
}

static int act_wait_delete(struct esb_k8s_run *run) {
  run->delete_timer = (struct esb_timer){ .at_ns = run->next_try_ns, .fire = wait_over, .userdata = run };
  esb_timer_start(run->loop, &run->delete_timer);
  return 0;
}

static int act_finish(struct esb_k8s_run *run) {
  finish(run);
  return 0;
}

/* kubectl did not start (its exec's words; the run step's are the
 * result's already). */
static void say_no_kubectl(struct esb_k8s_run *run) {
  const char *said = run->exec.result.error_message ? run->exec.result.error_message : run->result.error_message;
  esb_result_fail(&run->result, ESB_E_BACKEND_UNAVAILABLE, "cannot run %s: %s", esb_k8s_kubectl(),
                  said ? said : "unknown error");
  esb_result_release(&run->exec.result);
}

static int act_no_kubectl(struct esb_k8s_run *run) {
  say_no_kubectl(run);
  finish(run);
  return 0;
}

/* After the probe: the pod may be there, the delete is tried. */
static int act_no_kubectl_delete(struct esb_k8s_run *run) {
  say_no_kubectl(run);
  return start_delete(run);
}

static int act_delete_not_started(struct esb_k8s_run *run) {
  run->result.cleanup_error = run->exec.result.error_message;
  run->exec.result.error_message = NULL;
  esb_result_release(&run->exec.result);
  finish(run);
  return 0;
}

/* ---- the dispatcher ----------------------------------------------------- */

static int (*const actions[ESB_K8S__ACTIONS])(struct esb_k8s_run *) = {
  [ESB_K8S_DO_CLAIM] = act_claim,
  [ESB_K8S_DO_CREATE] = act_create,
  [ESB_K8S_DO_PROBE] = act_probe,
  [ESB_K8S_DO_GET] = act_get,
  [ESB_K8S_DO_DELETE] = act_delete,
  [ESB_K8S_DO_WAIT_CREATE] = act_wait_create,
  [ESB_K8S_DO_WAIT_DELETE] = act_wait_delete,
  [ESB_K8S_DO_FINISH] = act_finish,
  [ESB_K8S_DO_NO_KUBECTL] = act_no_kubectl,
  [ESB_K8S_DO_NO_KUBECTL_DELETE] = act_no_kubectl_delete,
  [ESB_K8S_DO_DELETE_NOT_STARTED] = act_delete_not_started,
};

/* Moves the run by its table: the row of (state, event) names the action
 * and the state after it, which the run is in while the action runs (so
 * that the kubectl it starts is that state's). An action whose kubectl did
 * not start puts the run back where it was, to take that event there. A
 * pair without a row is a bug in the table or in a reader, and the run
 * would have no next step: abort, whatever the build (checked: without
 * the row (GET, read), spec/k8s_spec.lua's runs that read the pod end with
 * "bug: ... no transition for event read in state GET"). */
static void dispatch(struct esb_k8s_run *run, enum esb_k8s_event event) {
  for (;;) {
    enum esb_k8s_state from = run->state;
    const struct esb_k8s_row *row = esb_k8s_transition(from, event);
    if (!row) {
      fprintf(stderr, "echo-sandbox: bug: the k8s run of pod %s has no transition for event %s in state %s\n",
              run->plan->k8s.pod_name, esb_k8s_event_name(event), esb_k8s_state_name(from));
      abort();
    }
    run->state = row->next;
    if (actions[row->action](run) == 0)
      return; /* in DONE, on_done has run: the run may be gone */
    run->state = from;
    event = esb_k8s_not_started(row->next);
  }
}

/* The kubectl of the state in flight ended: what it says is its event. */
static void step_done(struct esb_exec *exec, void *userdata) {
  static enum esb_k8s_event (*const readers[ESB_K8S__STATES])(struct esb_k8s_run *, struct esb_result *) = {
    [ESB_K8S_CLAIM_LIST] = claim_list_read,
    [ESB_K8S_CLAIM] = claim_read,
    [ESB_K8S_RUN] = run_read,
    [ESB_K8S_PROBE] = probe_read,
    [ESB_K8S_GET] = get_read,
    [ESB_K8S_DELETE] = delete_read,
  };
  struct esb_k8s_run *run = userdata;
  if (exec_again_by_kubectl(run, &exec->result))
    return;
  assert(readers[run->state]);
  enum esb_k8s_event event = readers[run->state](run, &exec->result);
  assert(esb_k8s_state_events(run->state) & (1u << event));
  dispatch(run, event);
}

/* An environment variable name the API server accepts (a C identifier,
 * plus '-' and '.'); the local backend takes any. */
static bool valid_env_name(const char *s, size_t n) {
  static const char first[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-.";
  if (n == 0 || !strchr(first, s[0]))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!strchr(first, s[i]) && !(s[i] >= '0' && s[i] <= '9'))
      return false;
  return true;
}

int esb_k8s_start(struct esb_k8s_run *run, struct esb_loop *loop, const struct esb_plan *plan) {
  run->loop = loop;
  run->plan = plan;
  run->state = ESB_K8S_RUN;
  run->result.sandbox_type = "k8s";
  snprintf(run->result.sandbox_name, sizeof run->result.sandbox_name, "%s", plan->k8s.pod_name);
  /* Checked before anything is created: the create would fail on it. */
  for (char **a = plan->argv; a && *a; a++) {
    /* Linux takes at most 128 KiB in one argument (MAX_ARG_STRLEN): kubectl
     * could not even start. */
    size_t n = strlen(*a);
    if (n >= ESB_K8S_MAX_ARG_BYTES) {
      esb_result_fail(&run->result, ESB_E_INVALID_REQUEST, "argv[%td] (the request's code, shell line or an "
                      "argument) is %zu bytes: on Kubernetes it goes on kubectl's command line, where one "
                      "argument may have at most %d bytes; pass large data as stdin", a - plan->argv, n,
                      ESB_K8S_MAX_ARG_BYTES - 1);
      return -1;
    }
  }
  for (char **e = plan->env; e && *e; e++) {
    size_t n = strcspn(*e, "=");
    if (!valid_env_name(*e, n)) {
      esb_result_fail(&run->result, ESB_E_INVALID_REQUEST, "env name '%.*s': on Kubernetes a name is letters, "
                      "digits, '_', '-' and '.', and does not start with a digit", (int)(n > 100 ? 100 : n), *e);
      return -1;
    }
  }
  if (stdin_prefix(run) < 0)
    return -1;
  run->first_try_ns = esb_now_ns();
  run->run_deadline_ns = run->first_try_ns + plan->timeout_ms * 1000000ull;
  run->unschedulable_timer = (struct esb_timer){ .fire = unschedulable_for_too_long, .userdata = run };
  run->not_ready_timer = (struct esb_timer){ .fire = not_ready_for_too_long, .userdata = run };
  if (plan->k8s.warm_pool && !run->in_session) {
    run->state = ESB_K8S_CLAIM_LIST;
    /* the API client resolved first (a kubectl, once a process): its time
     * is not the claim's grace, which would leave a first run none */
    api_for(run);
    run->claim_until_ns = esb_now_ns() + plan->k8s.warm_claim_grace_ms * 1000000ull;
  }
  if ((run->state == ESB_K8S_RUN ? start_run_step(run) : start_claim_list(run)) < 0) {
    const char *msg = run->exec.result.error_message;
    esb_result_fail(&run->result, ESB_E_BACKEND_UNAVAILABLE, "cannot run %s: %s", esb_k8s_kubectl(),
                    msg ? msg : "unknown error");
    esb_result_release(&run->exec.result);
    return -1;
  }
  return 0;
}

void esb_k8s_release(struct esb_k8s_run *run) {
  if (run->loop) {
    esb_timer_stop(run->loop, &run->watch_timer);
    esb_timer_stop(run->loop, &run->unschedulable_timer);
    esb_timer_stop(run->loop, &run->not_ready_timer);
    esb_timer_stop(run->loop, &run->delete_timer);
    esb_timer_stop(run->loop, &run->retry_timer);
  }
  esb_strv_free(run->argv);
  run->argv = NULL;
  esb_egress_k8s_follow_stop(&run->follow);
  esb_k8s_watch_leave(run);
  free(run->stdin_buf);
  run->stdin_buf = NULL;
  wipe_exec_in(run);
  esb_k8s_frames_release(&run->frames);
  esb_capture_release(&run->program_err);
  esb_capture_release(&run->kubectl_err);
  free(run->kubectl_stderr);
  run->kubectl_stderr = NULL;
  let_go(run);
  free(run->candidates);
  run->candidates = NULL;
  esb_result_release(&run->exec.result);
}

/* One kubectl command and its options, for esb_loop_run_job. */
struct kubectl_job {
  struct esb_exec exec;
  struct esb_exec_options opts;
};

static int start_exec(struct esb_loop *loop, void *arg) {
  struct kubectl_job *job = arg;
  return esb_exec_start(loop, &job->exec, &job->opts);
}

void esb_k8s_kubectl_run(const struct esb_k8s_settings *k, const char *const *tail, uint64_t timeout_ms,
                         struct esb_result *result) {
  char **argv = esb_k8s_kubectl_argv(k, tail);
  if (!argv) {
    esb_result_fail(result, ESB_E_SYSTEM, "out of memory");
    return;
  }
  struct kubectl_job job = { .exec = ESB_EXEC_INIT, .opts = ESB_EXEC_OPTIONS_INIT };
  job.opts.argv = (const char *const *)argv;
  job.opts.env = (const char *const *)environ;
  job.opts.timeout_ms = timeout_ms;
  job.opts.max_output_bytes = 64u << 20;
  esb_loop_run_job(-1, start_exec, &job);
  esb_result_move(result, &job.exec.result);
  esb_strv_free(argv);
}
