/* The event loop: one epoll set drives every execution in flight — the stdin
 * writers, the stdout/stderr readers, the report pipes, the pidfds — and the
 * deadlines (CLOCK_MONOTONIC). An fd is added once, when its execution
 * starts, and taken out before it is closed, so a step costs what is ready,
 * not what is in flight. It installs no signal handler and never waits
 * for a child it did not start.
 *
 * Its thread only moves bytes: while it has other work in flight, the slow
 * kernel work of an execution (a sandbox's start, its reap, the exec's
 * before_start and after_exit hooks) goes to the process's pool of threads
 * (engine/runtime/spawner.h, esb_loop_offload), and comes back through an eventfd.
 *
 * Use: esb_loop_init; fill an esb_exec_options (ESB_EXEC_OPTIONS_INIT) and
 * esb_exec_start it with an esb_exec (ESB_EXEC_INIT) as its handle;
 * esb_loop_run until idle (or esb_loop_step from a host loop). When an exec is
 * done its on_done callback runs once, with exec->result complete; the exec's
 * fds are closed and its child reaped by then, and the loop no longer refers
 * to it, so the callback may free it or start new execs. */
#ifndef ESB_ENGINE_LOOP_H
#define ESB_ENGINE_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/runtime/clock.h"
#include "engine/runtime/handoff.h"
#include "engine/contract/result.h"
#include "engine/contract/egress.h"
#include "engine/sandbox/spawn.h"
#include "engine/runtime/spawner.h"

/* Work for a pool thread (engine/runtime/spawner.h) whose end the loop sees: `work`
 * runs on a pool thread, then `done` on the loop's thread, from
 * esb_loop_step. The struct is the caller's and must stay alive until done
 * runs; until then the loop counts it as in flight. */
struct esb_loop_work {
  void (*work)(struct esb_loop_work *w);
  void (*done)(struct esb_loop_work *w);
  /* private to the loop */
  struct esb_spawner_job job;
  struct esb_loop *loop;
  struct esb_handoff_node node; /* back to the loop (engine/runtime/handoff.h) */
};

struct esb_exec;
struct esb_loop;

/* What an fd in the loop's epoll set is (private to the loop). */
struct esb_loop_slot {
  struct esb_exec *exec;  /* NULL: one of the loop's own */
  int kind;
};
enum { ESB_SLOT_IN, ESB_SLOT_OUT, ESB_SLOT_ERR, ESB_SLOT_AUX, ESB_SLOT_REPORT, ESB_SLOT_PIDFD, ESB_SLOT_SOURCE,
       ESB_SLOT__EXEC };

typedef void (*esb_exec_done_fn)(struct esb_exec *exec, void *userdata);
/* The program's output as it comes, for the layers above the loop (a run,
 * a job): stream 1 stdout, 2 stderr. */
typedef void (*esb_output_fn)(int stream, const char *data, size_t len, void *userdata);

/* Where a program's output goes as it comes, for the layers above the loop:
 * a callback, or the caller's own fds (fds[0] stdout, fds[1] stderr; not
 * owned), which get the bytes without their passing through ours where the
 * kernel can (splice). */
struct esb_output_sink {
  esb_output_fn fn;
  void *userdata;
  int fds[2];
  /* optional: each attempt of the network by name as the egress proxy
   * decides it (its bytes not counted yet; the host borrowed for the
   * call), with the same userdata; the result's egress has them all */
  void (*on_egress)(const struct esb_egress_attempt *attempt, void *userdata);
};

#define ESB_OUTPUT_SINK_NONE { .fds = { -1, -1 } }

static inline bool esb_output_sink_set(const struct esb_output_sink *s) {
  return s->fn || s->fds[0] >= 0 || s->fds[1] >= 0;
}
/* Each chunk the child writes, as it comes: stream 1 stdout, 2 stderr. The
 * chunk also goes into the result's capture, within its cap. */
typedef void (*esb_exec_output_fn)(struct esb_exec *exec, int stream, const char *data, size_t len,
                                   void *userdata);

/* stdin_fd's bytes on their way to the child (private to the loop). */
struct esb_exec_source {
  char *buf;                /* ESB_EXEC_SOURCE_CHUNK bytes, once needed */
  size_t len, off;
  off_t pos;                /* a regular file's next offset */
  bool regular, readable, waiting;
  bool no_splice;           /* the kernel refused to splice from it: copy */
};

/* What an exec runs, and how: the caller's inputs to esb_exec_start, which
 * copies the struct (it may be a temporary, and later changes to it reach no
 * exec in flight). What it points to is not copied: argv, env, dir, sandbox
 * and stdin_data must outlive the exec; its fds are not owned. */
struct esb_exec_options {
  const char *const *argv;  /* argv[0] without '/' is looked up in env's PATH */
  const char *const *env;   /* the whole environment, NULL-terminated */
  const char *dir;          /* working directory; NULL to keep ours */
  const struct esb_sandbox *sandbox; /* NULL: a plain child */
  const char *stdin_data;   /* written first */
  size_t stdin_len;
  int stdin_fd;             /* -1, or an fd whose bytes follow stdin_data, moved
                               as the child takes them (constant memory). An
                               anonymous pipe (without stdin_data) is the child's
                               stdin itself; a regular file is spliced from its
                               current offset, which is left alone (another exec
                               may read it again), never handed over (the child
                               could reopen it for writing through /proc); a
                               named fifo, a socket or a terminal is read as it
                               becomes readable, never handed over either.
                               Without stdin_data and stdin_fd the child
                               reads EOF at once. */
  uint64_t timeout_ms;      /* 0: none */
  uint64_t kill_grace_ms;   /* between SIGTERM and SIGKILL at the deadline */
  size_t max_output_bytes;  /* per stream */
  esb_exec_done_fn on_done;
  esb_exec_output_fn on_output; /* optional */
  bool stdout_by_caller;    /* stdout goes to on_output only, and the caller puts
                               into result.out what of it is the program's (a
                               child that frames its own data after the
                               program's output: k8s) */
  int sink_fds[2];          /* -1, or where stdout ([0]) and stderr ([1]) go
                               instead of on_output and the capture: an
                               anonymous pipe or /dev/null is the child's own
                               stdout/stderr (as bubblewrap passes them; the
                               capture then knows nothing of it); anything else
                               gets the bytes spliced (a regular file) or
                               copied, and the capture counts them; a reader
                               that stalls past the deadline closes the child's
                               pipe. A file, a
                               named fifo or a terminal is never handed over. */
  /* optional: an fd of the caller's (not owned; -1: none), polled with the
   * child's from its start: on_aux runs on the loop's thread whenever it is
   * readable, until on_aux returns false or the exec completes. For what a
   * helper of the run says while it runs (the egress proxy's verdicts). */
  int aux_fd;
  bool (*on_aux)(struct esb_exec *exec, void *userdata);
  /* optional: runs just before the child is started, on whichever thread
   * starts it (a pool thread: see esb_exec_start), to ready what the
   * child's sandbox needs; it may change the sandbox */
  void (*before_start)(struct esb_exec *exec, void *userdata);
  /* optional: runs once the child is reaped, on whichever thread reaps it (a
   * pool thread while the loop is busy), before the exec completes: for the
   * file work of reading what the run used. It may not touch the loop, the
   * child or the result. */
  void (*after_exit)(struct esb_exec *exec, void *userdata);
  void *userdata;           /* passed to the callbacks */
};

#define ESB_EXEC_OPTIONS_INIT { .kill_grace_ms = 200, .stdin_fd = -1, .sink_fds = { -1, -1 }, \
                                .max_output_bytes = 1 << 20, .aux_fd = -1 }

/* An execution: the caller's struct, which stays alive (and unmoved) from
 * esb_exec_start until on_done has run, or until a start that returned -1.
 * Its result is the caller's to fill in before the start (sandbox_type,
 * isolation) and to read and release (esb_result_release) after; the rest
 * is the loop's. */
struct esb_exec {
  struct esb_result result;
  int start_error;          /* the errno when its child could not be started
                               (the result says why), else 0 */

  /* private to the loop */
  struct esb_exec_options opts; /* esb_exec_start's copy */
  struct esb_child child;   /* from opts; the loop sets in/out/err */
  struct esb_exec *next;
  uint64_t started_ns, deadline_ns, kill_at_ns, drain_until_ns;
  size_t stdin_off;
  struct esb_exec_source source;
  int wait_status;
  struct esb_report report;
  size_t report_got;
  bool report_status, term_sent, kill_sent, interrupted;
  bool aux_ended;           /* on_aux said false: its fd is no longer watched */
  struct esb_loop *loop;
  struct esb_loop_slot slots[ESB_SLOT__EXEC];
  unsigned handed_over;     /* bit i: the child's stdio fd i is the caller's own */
  unsigned sink_files;      /* bit i: sink_fds[i] is a regular file (spliced to) */
  bool starting;            /* its child is being started on a pool thread,
                               which owns `child` until it hands it back */
  bool spoke_starting;      /* its fds had events before its start came back */
  bool start_awaited;       /* the loop waits on its start's push (engine/runtime/handoff.h) */
  bool reaping;             /* its child is being reaped on a pool thread */
  struct esb_loop_work start_work, reap_work;
  struct esb_child_exit exit;
  uint64_t exited_ns;
  struct esb_error start_err; /* why its start failed, for the result */
};

#define ESB_EXEC_SOURCE_CHUNK 65536

#define ESB_EXEC_INIT { .result = ESB_RESULT_INIT, .child = ESB_CHILD_INIT }

#define ESB_LOOP_WATCHES 4

/* A callback at a time (CLOCK_MONOTONIC, esb_now_ns), once. The owner keeps
 * the struct alive while it is started. */
struct esb_timer {
  uint64_t at_ns;
  void (*fire)(void *userdata);
  void *userdata;
  struct esb_timer *next; /* private to the loop */
  bool started;           /* private to the loop */
};

/* An fd of the loop's host (a server socket, a signalfd), polled with the
 * executions: on_ready runs when it is readable. */
struct esb_loop_watch {
  int fd;
  void (*on_ready)(void *userdata);
  void *userdata;
};

struct esb_cgroup_pool;

struct esb_loop {
  struct esb_exec *active;
  size_t count;
  struct esb_loop_watch watches[ESB_LOOP_WATCHES];
  size_t nwatches;
  void (*after_poll)(void *userdata); /* optional: runs after every poll round */
  void *after_poll_userdata;
  int interrupt_fd;   /* optional (-1: none), e.g. a signalfd: once readable,
                         every exec is killed as at its deadline and ends with
                         error "interrupted"; the fd is not read */
  bool interrupted;
  struct esb_cgroup_pool *cgroup_pool; /* optional: idle cgroups local runs reuse
                                          (engine/cgroup.h); the owner clears it */
  struct esb_timer *timers; /* private: started timers, soonest first */
  /* private: work done on the pool's threads comes back through `done`
   * (engine/runtime/handoff.h), with a word on its fd (an eventfd, open while works
   * are in flight) */
  struct esb_handoff done;
  size_t works;
  size_t quiet_starts;       /* private: starts on the pool not yet taken back,
                                whose end may come without a word on done.fd */
  int epfd;                  /* private: the epoll set, -1 while the loop is idle */
  bool interrupt_watched;
  struct esb_loop_slot own_slots[2 + ESB_LOOP_WATCHES]; /* done_fd, interrupt_fd, watches */
};

#define ESB_LOOP_INIT { .interrupt_fd = -1, .done = ESB_HANDOFF_INIT, .epfd = -1 }

/* Spawns the child opts describes and adds it to the loop, with exec as its
 * handle: one from ESB_EXEC_INIT, or one that is done (on_done ran, or its
 * start returned -1), which starts afresh but for its result (the caller's).
 * opts is copied (struct esb_exec_options says what must outlive the exec).
 * Returns 0: on_done runs once, when the exec is done. A child in
 * namespaces is started on a pool thread (engine/runtime/spawner.h) while the
 * loop has other work, so their cost never holds up the loop's thread; if
 * that start fails, the exec completes (on_done runs) with start_error set
 * and the result saying why. Returns -1 with errno set and the result saying
 * why when a start on the loop's thread fails; on_done does not run and
 * nothing is left in the loop. The exec's deadline counts from this call. */
int esb_exec_start(struct esb_loop *loop, struct esb_exec *exec, const struct esb_exec_options *opts);

/* Runs w->work on a pool thread, then w->done on the loop's (see struct
 * esb_loop_work). Never fails: without a pool thread the work runs here,
 * and done still comes from a later step. */
void esb_loop_offload(struct esb_loop *loop, struct esb_loop_work *w);

/* True while the loop has other work in flight (execs, works, watches): work
 * of its own then better goes to the pool than holds them up. */
bool esb_loop_busy(const struct esb_loop *loop);

/* Adds a watch; -1 when all ESB_LOOP_WATCHES are taken. With watches the loop
 * wakes at least once a second (for the host's own timers). */
int esb_loop_watch(struct esb_loop *loop, int fd, void (*on_ready)(void *), void *userdata);

/* Takes the watch of fd out (nothing without one). A loop left idle by it
 * closes its epoll set, as a step does. */
void esb_loop_unwatch(struct esb_loop *loop, int fd);

/* One poll round, waiting at most timeout_ms (-1: until something happens).
 * Returns the number of execs and works still in flight, plus one while a
 * timer is started. Without execs, timers or watches it returns at once. */
size_t esb_loop_step(struct esb_loop *loop, int timeout_ms);

/* Ends an exec in flight now, as its deadline would (TERM, then KILL after
 * its grace), whatever its deadline; its result says timed_out. Nothing once
 * it was told to stop or its child is gone. */
void esb_exec_stop(struct esb_exec *exec);

/* As esb_exec_stop, with no grace between TERM and KILL: for an exec that
 * has no time left to spend in one (its CPU budget spent). */
void esb_exec_kill(struct esb_exec *exec);

/* Where an exec in flight is: its child still being started, running,
 * or ending (told to stop, exited, or done). A caller's watch of the run
 * reads what the child uses only while it runs. */
enum esb_exec_phase { ESB_EXEC_STARTING, ESB_EXEC_RUNNING, ESB_EXEC_ENDING };
enum esb_exec_phase esb_exec_phase(const struct esb_exec *exec);

/* Starts a timer (again: it moves); a started timer keeps the loop running
 * as an exec does. esb_timer_stop takes it back if it has not fired; both
 * may be called from callbacks, and fire runs with the timer stopped. */
void esb_timer_start(struct esb_loop *loop, struct esb_timer *timer);
void esb_timer_stop(struct esb_loop *loop, struct esb_timer *timer);

/* Steps until no exec is in flight. */
void esb_loop_run(struct esb_loop *loop);

/* The one way a caller that waits runs a job to completion: a private loop
 * (interrupt_fd as in struct esb_loop; -1: none), start(loop, arg) to put
 * the job in flight (it returns -1 when it put nothing there), then the
 * loop until nothing is in flight. The job's result is start's business. */
void esb_loop_run_job(int interrupt_fd, int (*start)(struct esb_loop *loop, void *arg), void *arg);

/* Kills every exec in flight (as at a deadline, but now) and runs the loop
 * until they are done: for shutdown on a signal. */
void esb_loop_abort(struct esb_loop *loop);

#endif
