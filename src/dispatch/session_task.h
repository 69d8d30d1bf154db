/* A session's blocking operations (backend/local_session.h: create, a run,
 * remove), off the caller's loop: a local session's run or cell on a thread,
 * the rest each in a helper process forked for it; their word comes
 * back over a pipe. A run in a session may go on for minutes; a daemon's
 * loop must go on moving every other run's bytes.
 *
 * Why a process, not a thread, for the rest: a session's holder is a
 * clone of the process that creates it and allocates once cloned, which
 * is safe only from a process whose other threads hold no lock (the
 * loop's pool threads may); a forked helper has one thread. It keeps of
 * its parent's fds only its pipes, so it holds no connection or listening
 * socket of a daemon open. A local session's run or cell clones nothing
 * (the holder starts the run, or the kernel; a put of the request's files
 * is a clone made for a threaded process, local_session_files.c), and a
 * fork of a daemon costs more than the run: it runs on a thread, its fds
 * close-on-exec, every signal blocked.
 *
 * The run's end of its interrupt pipe makes the helper, or the thread,
 * end the run (as a signal ends the CLI's): the parent interrupting it
 * ends the run too, and the session lives on. The parent dying ends it
 * too: a helper sees its pipe end; a thread dies with the process, whose
 * connection to the holder then closes, and the holder kills the run.
 *
 * The tasks of a set share one epoll fd, which the caller's loop watches
 * (esb_loop_watch), calling esb_session_tasks_step when it is ready. A
 * task's on_done runs from there, once, with its outcome complete; the
 * helper is reaped, or the thread joined, by then. */
#ifndef ESB_DISPATCH_SESSION_TASK_H
#define ESB_DISPATCH_SESSION_TASK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "backend/k8s_session.h"
#include "backend/local_session.h"
#include "backend/plan.h"
#include "dispatch/session_k8s.h"
#include "engine/contract/result.h"
#include "engine/error.h"
#include "engine/strv.h"
#include "policy/policy.h"

struct esb_session_task;

struct esb_session_tasks {
  int epfd;
  size_t in_flight;
  struct esb_session_task *head; /* those in flight */
};

#define ESB_SESSION_TASKS_INIT { .epfd = -1 }

int esb_session_tasks_init(struct esb_session_tasks *set, struct esb_error *err);
/* Reads what is ready of every task; runs on_done of those that ended. */
void esb_session_tasks_step(struct esb_session_tasks *set);
void esb_session_tasks_close(struct esb_session_tasks *set);
/* esb_session_task_interrupt for every run in flight. */
void esb_session_tasks_interrupt(struct esb_session_tasks *set);

/* A k8s session's (its id of esb_k8s_session_id's form) create, run and
 * remove are these ops too, done on the cluster (dispatch/session_k8s.h);
 * K8S_SHOW and K8S_LIST ask the cluster for one or for the live ones. CELL:
 * a cell of a local session's kernel. */
enum esb_session_op { ESB_SESSION_OP_CREATE, ESB_SESSION_OP_RUN, ESB_SESSION_OP_REMOVE, ESB_SESSION_OP_K8S_SHOW,
                      ESB_SESSION_OP_K8S_LIST, ESB_SESSION_OP_CELL };
typedef void (*esb_session_task_done_fn)(struct esb_session_task *t, void *userdata);

struct esb_session_task {
  /* inputs */
  enum esb_session_op op;
  char id[ESB_K8S_SESSION_ID_LEN + 1]; /* run, remove: the session; create: its id, once made
                                          (a local session's or a k8s session's, the longer) */
  struct esb_plan *plan;           /* run, cell (the kernel's): read by the helper only (not
                                      kept); a local session's run or cell takes it (moved:
                                      the caller's is left empty, its release a no-op), and
                                      what it borrows of the request must outlive the task */
  const char *language, *code;     /* cell: read by the helper, or the thread, only */
  size_t code_len;
  struct esb_policy *policy;       /* create: the session as the policy decides it
                                      (esb_session_make), in the helper; a k8s
                                      session's remove, show, list: its cluster */
  struct esb_request *req;         /* create: its request (the helper's copy is changed) */
  struct esb_session_options options; /* create: ttl_ms and idle_timeout_ms as asked */
  struct esb_output_sink output;   /* run: the callback gets the output as it comes, on the
                                      caller's loop; none: the result's capture only */
  esb_session_task_done_fn on_done;
  void *userdata;
  /* outputs */
  struct esb_result result;        /* run: the run's; the caller releases it */
  struct esb_error error;          /* create, remove: ESB_OK, or why it failed */
  enum esb_session_end was;        /* remove: how the session had ended (ALIVE: it was alive) */
  char *cell_json;                 /* cell: its result as JSON (dispatch/session.h's
                                      esb_session_push_cell), NUL-terminated, owned:
                                      the caller frees it; NULL where the helper gave none */
  enum esb_cell_status cell_status; /* cell: its status (FAILED where no result came) */
  enum esb_error_code cell_failure; /* cell: the engine's code, where FAILED */
  struct esb_strv clamped;         /* create: the notes of what the policy lowered; the
                                      caller clears it (esb_strv_clear) */
  char *k8s_json;                  /* a k8s session's create, remove, show: its object;
                                      list: an array of the live ones (JSON text; the
                                      caller frees it) */
  char k8s_ended[ESB_K8S_ENDED_MAX]; /* a k8s session's remove, show: why it ended ("" alive) */
  /* private */
  struct esb_session_tasks *set;
  struct esb_session_task *next, *prev;
  pid_t pid;
  int fd, interrupt;
  bool threaded;                   /* a local run or cell, on a thread (session_task.c) */
  atomic_bool ran;                 /* its thread is done with the task but the pipe's end */
  struct esb_session_task *queued_next;
  struct esb_plan held;            /* the thread's plan */
  int thread_frames, thread_interrupt; /* the thread's ends of the pipes */
  char *buf;
  size_t len, cap;
  bool got_outcome;
};

#define ESB_SESSION_TASK_INIT { .result = ESB_RESULT_INIT, .error = ESB_ERROR_INIT, .cell_status = ESB_CELL_FAILED, .output = ESB_OUTPUT_SINK_NONE, \
                                .pid = -1, .fd = -1, .interrupt = -1, .held = ESB_PLAN_INIT, \
                                .thread_frames = -1, .thread_interrupt = -1 }

/* Forks the task's helper, or gives a local run or cell to a thread. 0,
 * after which on_done runs once; or -1 with err (nothing started, on_done
 * does not run). The task stays put until on_done. */
int esb_session_task_start(struct esb_session_tasks *set, struct esb_session_task *t, struct esb_error *err);

/* A run or a cell: ends it now (its result says it was interrupted); on_done follows. */
void esb_session_task_interrupt(struct esb_session_task *t);

#endif
