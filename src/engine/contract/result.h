/* The outcome of one execution: what happened, the program's output, and, when
 * the engine itself failed, an error code from our own small vocabulary.
 * Failures follow the one convention of engine/error.h. */
#ifndef ESB_ENGINE_RESULT_H
#define ESB_ENGINE_RESULT_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "engine/contract/capture.h"
#include "engine/contract/collect.h"
#include "engine/contract/egress.h"
#include "engine/error.h"
#include "engine/strv.h"

enum esb_status {
  ESB_STATUS_EXITED,     /* the program exited by itself: exit_code is its code */
  ESB_STATUS_SIGNALED,   /* a signal not sent by us ended it: signal is set */
  ESB_STATUS_TIMED_OUT,  /* we killed it at its deadline */
  ESB_STATUS_OOM_KILLED, /* the memory limit killed it */
  ESB_STATUS_ERROR,      /* the engine could not run it: error is set */
};

struct esb_result {
  enum esb_status status;
  int exit_code;          /* the program's code; 128+n when signaled; 124 when timed out;
                             125/126/127 for errors (75: too_many_sessions), as the
                             CLI exits */
  int signal;             /* signal that ended it, 0 if none */
  bool killed_by_us;      /* we sent the signal (deadline) */
  double duration_ms;
  const char *sandbox_type; /* static string: "local" or "k8s" */
  const char *isolation;    /* static string: what the local sandbox achieved */
  const char *reason;       /* static string: "Completed", "Error", ... */
  struct esb_capture out, err;
  enum esb_error_code error;
  char *error_message;    /* owned, NULL unless status is ERROR */
  char session[40];       /* the session the run went into (the result's "session"), "" where none */
  char sandbox_name[64];  /* the backend's name for where it ran (k8s: the pod; the
                             result's "pod"), "" where it has none (local) */
  char *cleanup_error;    /* owned: k8s: why the pod may not have been deleted */
  struct esb_strv warnings; /* owned: one entry per degradation (a limit that fell back, a
                             status that could not be read); empty on a clean run */
  char *fallback;         /* owned: why a run the policy sent to k8s ran on the local
                             backend instead (the policy allowed it), or NULL */
  signed char warm;       /* a k8s run outside a session: 1 a warm pod ran it, 0 a pod made
                             for it; -1 where neither applies (the result has no "warm") */
  char warm_pool[48];     /* a k8s run outside a session whose pod has a pool's shape: the
                             pool (the result's "warm_pool"), hit or miss; "" where none */
  double claim_ms;        /* with warm_pool: how long the claim took, from the run's start to
                             the pod claimed or the run gone cold; -1 where none */
  bool retryable;         /* with status ERROR: whether the same request may succeed later */
  int64_t cpu_time_ms;    /* the run's CPU time, user + system; -1: unknown */
  int64_t memory_peak_bytes; /* its memory high-water mark; -1: unknown */
  struct esb_collected files; /* what the request's collect patterns brought back */
  struct esb_egress_ledger egress; /* with a network allow list: the connections tried */
};

#define ESB_RESULT_INIT { .status = ESB_STATUS_ERROR, .sandbox_type = "local", \
                          .out = ESB_CAPTURE_INIT, .err = ESB_CAPTURE_INIT, \
                          .cpu_time_ms = -1, .memory_peak_bytes = -1, .warm = -1, \
                          .claim_ms = -1 }

/* Frees what the result owns and leaves it as ESB_RESULT_INIT. */
void esb_result_release(struct esb_result *r);

/* Moves a result (bubblewrap's steal_pointer for a struct): dst releases
 * what it held and takes everything of src, which is left as
 * ESB_RESULT_INIT. The one way results change hands. */
void esb_result_move(struct esb_result *dst, struct esb_result *src);

/* Marks the result as an engine error; message is printf-style and copied. */
void esb_result_fail(struct esb_result *r, enum esb_error_code code, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

/* The same, with err's code and message. */
void esb_result_fail_error(struct esb_result *r, const struct esb_error *err);

/* Adds a warning (printf-style, copied): the run went on, degraded. Out of
 * memory, the one entry is lost and the run's outcome stands. */
void esb_result_warn(struct esb_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Never NULL, for any value. */
const char *esb_status_name(enum esb_status status);

/* What was observed, as a result: the one place that spells the reasons of
 * a program's end ("Completed", "Error", "Signaled", "DeadlineExceeded",
 * "OOMKilled", Kubernetes' words, and "CpuTimeExceeded": the run's CPU
 * time, all its processes together, reached cpu_time_secs). Each sets
 * status, exit_code, signal and reason, and leaves the rest of the result
 * as it is. */
void esb_result_exited(struct esb_result *r, int code);
void esb_result_signaled(struct esb_result *r, int sig);
void esb_result_wait_status(struct esb_result *r, int wstatus); /* exited or signaled */
void esb_result_timed_out(struct esb_result *r);
void esb_result_cpu_time_exceeded(struct esb_result *r); /* timed_out, too */
void esb_result_oom_killed(struct esb_result *r);

/* Kubernetes' reason for a container the kernel killed for memory: the
 * word esb_result_oom_killed gives a result, and the one the k8s backend
 * reads in a pod's status as that end. */
#define ESB_REASON_OOM_KILLED "OOMKilled"

/* The exit code a shell would report for this result (see exit_code above). */
int esb_result_exit_code(const struct esb_result *r);

#endif
