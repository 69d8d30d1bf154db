/* The k8s backend: one pod per run, driven by kubectl, as a state machine of
 * kubectl children on the engine's loop, whose transitions are one table
 * (k8s_run_table.h: state x event -> action, next state). Its steps:
 *
 *   claim    only where the plan's pod has the shape of a warm pool
 *            (k8s_warm.h): the list of the pool's ready pods, then the
 *            patch of one to claimed under its resourceVersion (requests
 *            of the API client, kube_api.h, else kubectl's); the
 *            pod claimed is the run's, and run is an exec into it (as
 *            into a session's pod, k8s_session.h: echo-sandbox-kube's
 *            over WebSocket where the API client is in use, kube_exec.h,
 *            else kubectl exec -i); none within the
 *            pool's claim grace: run makes a pod, as without a pool
 *   run      kubectl run --attach -i -q ... (k8s_command.h); stdin carries
 *            the handshake, then the request's stdin; the pod's marks around
 *            the program tell its stderr from kubectl's (k8s.c); a create the
 *            API server refused for now (5xx, 429, unreachable) is tried
 *            again with backoff within the request's deadline
 *   watch    beside run, from ESB_K8S_WATCH_AFTER_MS on: the pod's events
 *            from a watch of every managed pod that the runs of the loop
 *            share (k8s_watch.h), which end the run at once when the
 *            pod cannot start (ErrImagePull, ImagePullBackOff,
 *            InvalidImageName, CreateContainerConfigError,
 *            CreateContainerError), is evicted or is deleted from outside,
 *            and when it stays unschedulable for the policy's grace; the
 *            result is then backend_error with that reason and message
 *   get      only when kubectl failed: kubectl get pod -o json, to tell the
 *            program's own failure (exit code, OOMKilled, DeadlineExceeded)
 *            from a pod that never ran (image pull, unschedulable, forbidden)
 *   delete   always, also after a timeout or an interrupt: kubectl delete pod
 *            --ignore-not-found --wait=false, tried again with backoff
 *            while the budget lasts; a delete that still failed is reported
 *            in result.cleanup_error and left to the pod's
 *            activeDeadlineSeconds and `cleanup`
 *
 * get and delete share one budget, the plan's delete_timeout_ms from the
 * end of the run step: the get takes at most half of what is left.
 *
 * The caller owns the struct esb_k8s_run and the plan (which must outlive
 * the run). */
#ifndef ESB_BACKEND_K8S_H
#define ESB_BACKEND_K8S_H

#include "engine/runtime/loop.h"
#include "backend/egress_helper.h"
#include "backend/k8s_command.h"
#include "backend/k8s_warm.h"
#include "backend/kube_api.h"
#include "backend/kube_exec.h"
#include "backend/k8s_payload.h"
#include "backend/k8s_run_table.h"
#include "backend/kubectl_words.h"
#include "backend/plan.h"
#include "backend/pod_status.h"

/* The most the get step takes (it and the delete share the plan's
 * delete_timeout_ms after the run; the get takes at most half of it). */
#define ESB_K8S_GET_TIMEOUT_MS 15000
/* When the watch starts: a run that is over by then (most, on a warm
 * cluster) costs no second kubectl. */
#define ESB_K8S_WATCH_AFTER_MS 1000
/* After an interrupt before the pod was seen: how long deletes that find
 * nothing go on, for a create still on its way (within the delete budget). */
#define ESB_K8S_LATE_CREATE_MS 3000
/* The most stdin from a stream that is no regular file (a pipe, a fifo, a
 * socket, a terminal) may bring: it is read to its end before the first
 * create, so that a create that is tried again sends it whole (the stream
 * cannot be read again); more is refused before anything is created,
 * never cut. A regular file is streamed on every try, whatever its size. */
#define ESB_K8S_PIPED_STDIN_MAX (64u << 20)
/* The kernel's MAX_ARG_STRLEN: the most one argument of a command line has. */
#define ESB_K8S_MAX_ARG_BYTES (32 * 4096)

struct esb_k8s_run;
struct esb_k8s_watcher;
typedef void (*esb_k8s_done_fn)(struct esb_k8s_run *run, void *userdata);

struct esb_k8s_run {
  /* inputs */
  esb_pod_status_parser parse_pod;
  esb_warm_list_parser parse_warm_list; /* optional: with it, a warm pod's list, claim and
                                           delete go to the API server directly (kube_api.h) */
  bool in_session;           /* the plan's pod is a session's (k8s_session.h): the run is
                                kubectl exec into it, which it neither creates nor deletes */
  esb_k8s_done_fn on_done;
  void *userdata;
  struct esb_output_sink output; /* optional: the program's output as it
                                    comes, stderr without kubectl's own lines
                                    (written to fds: kubectl's output is text
                                    we read anyway) */
  /* output */
  struct esb_result result;
  /* private */
  struct esb_exec exec;      /* the step in progress */
  struct esb_loop *loop;
  const struct esb_plan *plan;
  char **argv;               /* of the step in progress */
  char *stdin_buf;           /* what kubectl's stdin starts with */
  size_t stdin_len;
  int stdin_fd;              /* then this regular file, streamed (-1: none) */
  char marker[ESB_K8S_MARKER_SIZE]; /* where the wrapper's frames start (collect) */
  struct esb_k8s_frames frames; /* kubectl's stdout split, with collect */
  /* kubectl's streams split by the marks (k8s.c): with the handshake only */
  char start_mark[ESB_K8S_START_MARK_LEN + 1]; /* as sent, and as the pod writes it */
  char stdout_mark[ESB_K8S_START_MARK_LEN + 1]; /* its twin, on the pod's stdout */
  char end_secret[ESB_K8S_MARK_HEX + 1];
  struct esb_kubectl_mark start_err; /* the start mark in kubectl's stderr */
  struct esb_kubectl_mark end_err;   /* the end mark after it */
  struct esb_kubectl_mark replay;    /* the start mark in kubectl's stdout: the pod's log replayed */
  struct esb_kubectl_mark live_out;  /* the stdout mark, live, in kubectl's stdout */
  struct esb_kubectl_mark replay_out; /* the stdout mark again: the pod's log replayed */
  char start_piece[ESB_K8S_START_MARK_LEN]; /* a piece of the start mark before it: the replay's, or the program's */
  size_t start_piece_len;
  struct esb_capture program_err;    /* the program's stderr: between the marks */
  struct esb_capture kubectl_err;    /* kubectl's own: before the start mark, then after the end mark */
  size_t start_at;                   /* kubectl_err's length at the start mark */
  size_t err_passed;                 /* program_err passed on live; the rest is held
                                        until the program began */
  bool end_by_watch;                 /* the watch saw the container terminated before the deadline */
  bool no_retry;                     /* what ended the run rests on the program's word: not retryable */
  enum esb_k8s_state state;  /* k8s_run_table.h */
  bool interrupted;
  struct esb_pod_status pod;
  bool have_pod;
  char *kubectl_stderr;      /* what kubectl said when it failed */
  /* the watch (k8s_watch.h) */
  struct esb_k8s_watcher *watcher;      /* joined, or NULL */
  struct esb_timer watch_timer;         /* joins it */
  struct esb_timer unschedulable_timer; /* ends a run whose pod stays unschedulable */
  struct esb_timer not_ready_timer;     /* ends a run whose pod is not ready and silent */
  bool pod_seen;             /* the pod was there: the watch saw it, or the program wrote */
  uint64_t confirmed_ns;     /* when pod_seen was first set: a list begun after it that lacks
                                the pod shows it deleted */
  bool pod_ran;              /* it ran: the watch saw it Running (or after), or the program wrote */
  bool pod_gone;             /* the get after a failed run found no pod */
  char get_error[ESB_MESSAGE_MAX]; /* the first line of what a failed get said */
  bool throttled;            /* the get met 429s (so, likely, did the run) */
  char trailer_reason[64];   /* kubectl's "pod NS/NAME terminated (REASON)", or "" */
  bool started;              /* the program began: the start mark came (the plain command),
                                or the wrapper's start line (k8s_payload.h) */
  bool ended;                /* the end mark came, or the watch saw the container end */
  const char *verdict;       /* static: why the watch ended the run (a reason), or NULL */
  struct esb_timer delete_timer; /* the next delete try */
  struct esb_timer retry_timer;  /* the next create try */
  uint64_t next_try_ns;          /* when the next create or delete try is due */
  uint64_t run_deadline_ns;      /* the request's deadline, over every try */
  uint64_t first_try_ns;         /* when the first try began */
  unsigned create_attempts;
  uint64_t try_began_ns;         /* when the last create try began */
  char refused[ESB_MESSAGE_MAX]; /* what the last create refused for now said, kept over its
                                    pause: the run's failure if the deadline cuts the next */
  bool refused_unreached;        /* and no try had connected by then */
  bool retryable;                /* the create kept failing in a way that may pass */
  bool create_unsure;            /* the last create's answer was lost: the pod may exist */
  bool adopted;                  /* it did, and is this run's: attached to, not created */
  bool reached;                  /* a try may have reached the API server (kubectl's words
                                    said no connection was made on none: the pod may exist) */
  bool unreachable;              /* no try connected: there is no pod to read or delete */
  uint64_t delete_deadline_ns;   /* when the delete budget ends */
  unsigned delete_attempts;
  uint64_t late_create_until_ns;
  char verdict_message[768];
  /* the claim of a warm pod (k8s_warm.h) */
  bool warm;                 /* a warm pod was claimed: run is kubectl exec into it, delete deletes it */
  struct esb_plan warm_plan; /* the plan, but for the pod's name, the warm pod's (run->plan
                                once claimed; its pointers are the caller's plan's) */
  char warm_name[64];
  struct esb_warm_pod *candidates; /* the pool's pods listed, to be claimed in turn */
  size_t n_candidates, next_candidate;
  uint64_t claim_until_ns;   /* the pool's claim grace ends: no claim begins after it */
  bool claim_cut;            /* interrupted while it listed or claimed: no pod was made */
  const char *taking;        /* the pod of candidates it claims or holds, taken for the
                                process (esb_warm_take); NULL: none */
  char claim_failed[256];    /* why a claim failed other than by losing: the result's warning */
  uint64_t claim_ns;         /* how long the claim took, once it is over (the result's claim_ms) */
  /* a step of the claim or a warm pod's delete made by the API client
   * (kube_api.h) on the loop's pool, in place of its kubectl */
  struct esb_loop_work api_work;
  const struct esb_kube_api *api;
  const char *api_method, *api_type;
  char api_path[1024];
  char api_body[256];
  uint64_t api_timeout_ms;
  struct esb_kube_reply api_reply;
  int api_rc;
  /* the exec into a warm pod or a session's by echo-sandbox-kube
   * (kube_exec.h), in place of kubectl exec -i, where the API client is in
   * use */
  const struct esb_kube_api *exec_api; /* this try's client; NULL: kubectl exec */
  bool exec_by_kubectl;      /* the client's exec was refused (401, no v5): kubectl's */
  char *exec_in;             /* the helper's stdin: its request, then the run's */
  size_t exec_in_len;
  struct esb_kubectl_mark exec_mark; /* ESB_KUBE_EXEC_MARK and the secret, on its stderr */
  char exec_said[640];       /* what followed the mark: its word */
  size_t exec_said_len;
  struct esb_kube_exec_word exec_word; /* how the exec ended, once it has */
  /* the network by name: the shared proxy's verdicts while the run goes
   * on, for output.on_egress (egress_helper.h's follow) */
  struct esb_egress_helper follow;
};

#define ESB_K8S_RUN_INIT { .result = ESB_RESULT_INIT, .exec = ESB_EXEC_INIT, .stdin_fd = -1, \
                           .output = ESB_OUTPUT_SINK_NONE, .follow = ESB_EGRESS_HELPER_INIT }

/* Starts the run on the loop. Returns 0, after which on_done runs once with
 * the result complete and the pod deleted (or the failure to delete it in
 * result.cleanup_error); or -1 with the result saying why (on_done does not
 * run; no pod was created). */
int esb_k8s_start(struct esb_k8s_run *run, struct esb_loop *loop, const struct esb_plan *plan);

/* Frees what the run holds except its result. */
void esb_k8s_release(struct esb_k8s_run *run);

/* Runs one kubectl command to completion, with k's connection flags (k may
 * be NULL) and tail, for at most timeout_ms; the result holds its exit code
 * and output (the caller releases it). */
void esb_k8s_kubectl_run(const struct esb_k8s_settings *k, const char *const *tail, uint64_t timeout_ms,
                         struct esb_result *result);

#endif
