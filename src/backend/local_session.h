/* Local sessions: a sandbox with an id and a lifetime into which runs go,
 * one after another or side by side. What persists between runs is the
 * working dir (its files); processes a run starts end with that run.
 *
 * The session's sandbox is held by its own pid 1 (engine/sandbox/session_holder.h),
 * which the engine starts as it starts a run's sandbox and leaves behind:
 * the session does not depend on the process that made it. On the host a
 * session is a directory of its own, STATE_DIR/ID (esb_session_dir), which
 * only the engine's uid may enter:
 *   control  the holder's listening socket, bound by the engine before the clone
 *   state    "<alive|ttl|idle|deleted> <runs>": the holder's word, written
 *            through an fd the engine opened
 *   info     the engine's: the holder's pid and start time, the lifetime, the
 *            cgroups' paths (for `rm` and `cleanup` once the holder is gone)
 * The session's cgroups are its own (not a pool's slots), locked by the
 * holder for as long as it lives (engine/cgroup.h), so no other engine's
 * sweep removes them; once it is gone, `session rm` or `cleanup` does,
 * with what is below them: the runs' own cgroups (on cgroup v1 slots,
 * run-K, that the session's runs take one after another and that stay
 * while it lives, esb_cgroup_claim_below; on v2 made and removed by the
 * engine that runs it: backend/local_session_run.c), and on cgroup v2 the
 * leaf the holder lives in (a cgroup with children has no process).
 *
 * Functions follow engine/error.h: 0, or -1 with err filled. */
#ifndef ESB_BACKEND_LOCAL_SESSION_H
#define ESB_BACKEND_LOCAL_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend/plan.h"
#include "engine/error.h"
#include "engine/contract/result.h"
#include "engine/runtime/loop.h"
#include "engine/sandbox/session_holder.h"

#define ESB_SESSION_ID_LEN 32 /* hex digits */
#define ESB_SESSION_TTL_MS_DEFAULT (10 * 60 * 1000)
#define ESB_SESSION_IDLE_MS_DEFAULT (2 * 60 * 1000)
/* The longest TTL a session gets (the policy's hook `session` decides it,
 * within this: policy/session.h). */
#define ESB_SESSION_TTL_MS_MAX (24 * 60 * 60 * 1000ull)

struct esb_session_options {
  uint64_t ttl_ms;          /* 0: the default */
  uint64_t idle_timeout_ms; /* 0: the default */
  char *const *labels;      /* "KEY=VALUE" (policy/session.h checked them), kept in its
                               record; NULL: none */
  const char *tenant_label; /* with max_per_tenant: the label whose value (or its
                               absence) names the session's tenant */
  uint64_t max_per_tenant;  /* 0: no limit */
  char *const *kernels;     /* the languages whose cells the session takes (the policy's
                               decision), kept in its record; NULL: none */
};

/* What `session show` and `ls` say of one. */
struct esb_session_info {
  char id[ESB_SESSION_ID_LEN + 1];
  enum esb_session_end end; /* ESB_SESSION_ALIVE while the holder serves */
  pid_t pid;                /* the holder's, on the host */
  uint64_t runs;            /* started so far */
  uint64_t created_ms, ttl_ms, idle_timeout_ms; /* created_ms: since the epoch */
  bool cgroups;             /* the session's limits are a cgroup's */
};

/* Where sessions live: $ECHO_SANDBOX_SESSION_DIR, else as root
 * /run/echo-sandbox/sessions, else $XDG_RUNTIME_DIR/echo-sandbox/sessions,
 * else /tmp/echo-sandbox.sessions.UID. */
const char *esb_session_dir(void);

/* Makes a session for the plan's sandbox and limits (its program is not
 * run); id gets its id. The session goes on after the caller exits.
 * Counting the tenant's live sessions and recording the new one are one
 * step under a lock on the sessions' directory, for every engine on the
 * host: one more than max_per_tenant is ESB_E_TOO_MANY_SESSIONS. */
int esb_session_create(const struct esb_plan *plan, const struct esb_session_options *o,
                       char id[ESB_SESSION_ID_LEN + 1], struct esb_error *err);

/* Runs the plan in session id, to completion; the result as a run's. A
 * session that is unknown or ended is ESB_E_INVALID_REQUEST naming it and
 * why it ended. output: as for esb_execute (NULL: the capture only). */
void esb_session_run(const char *id, const struct esb_plan *plan, struct esb_result *result,
                     int interrupt_fd, const struct esb_output_sink *output);

/* The live sessions, for the policy's hook `session`: *live all of them,
 * and by_label[i] those that carry labels[i] ("KEY=VALUE"). */
int esb_session_census(char *const *labels, uint64_t *live, uint64_t *by_label, struct esb_error *err);

/* The files of a live session's working dir, as runs in it see them.
 * Paths are relative to the working dir (esb_file_path_ok); a path that
 * leads outside (a link a run planted, "..") is refused, never followed.
 * put: f's bytes and mode at f->path, its directories made where missing;
 *   a file or a link there is replaced, a directory is not.
 * get: a regular file's bytes (malloc'd into *data), at most the working
 *   dir's size limit.
 * files: fn for each entry of the directory path (NULL: the working dir).
 * Each 0, or -1 with err: ESB_E_INVALID_REQUEST naming the path and why. */
struct esb_session_entry {
  const char *name;
  char type;     /* 'f' file, 'd' directory, 'l' symlink, 'o' other */
  uint64_t size;
  unsigned mode; /* permission bits */
};
struct esb_file;
int esb_session_put(const char *id, const struct esb_file *f, struct esb_error *err);
int esb_session_get(const char *id, const char *path, char **data, size_t *len, struct esb_error *err);
int esb_session_files(const char *id, const char *path, void (*fn)(const struct esb_session_entry *e, void *arg),
                      void *arg, struct esb_error *err);
/* The most a session's working dir holds (its size limit), in bytes. */
int esb_session_workdir_size(const char *id, uint64_t *bytes, struct esb_error *err);

/* Reads what a session's directory says; an unknown id is
 * ESB_E_INVALID_REQUEST. */
int esb_session_info(const char *id, struct esb_session_info *info, struct esb_error *err);

/* The same, with the session's record (its `info` file, read once) in
 * *rec, for the caller to release (esb_session_record_release); *rec is
 * empty where it fails. */
struct esb_session_record;
int esb_session_read(const char *id, struct esb_session_record *rec, struct esb_session_info *info,
                     struct esb_error *err);
/* Calls fn for each session there is (alive or ended, not yet removed). */
int esb_session_list(void (*fn)(const struct esb_session_info *info, void *arg), void *arg,
                     struct esb_error *err);

/* Ends a live session (DELETE to its holder, then waits for its end) and
 * removes what it left: its cgroups, its directory. An ended session's
 * remains are removed the same way; *was says how it had ended. */
int esb_session_remove(const char *id, enum esb_session_end *was, struct esb_error *err);

/* What a crash left: every session whose holder is gone (removed as
 * esb_session_remove does; dry_run: only said). say(id, why, arg) for each.
 * Returns how many were found, or -1 with err. */
int esb_session_sweep(bool dry_run, void (*say)(const char *id, const char *why, void *arg), void *arg,
                      struct esb_error *err);

/* Cells: code into the session's kernel of a language (kernels/python.py
 * says the protocol), whose interpreter state (variables, imports,
 * definitions) persists from cell to cell, as the working dir's files do.
 * The kernel is started at the first cell of its language, inside the
 * session's sandbox as a run is (engine/sandbox/session_kernel.h), and
 * ends with the session. One cell at a time a kernel: another while one
 * goes on is refused (busy).
 *
 * A cell's status, the one vocabulary (esb_cell_status_name):
 *   ok             it ran; value: the last expression's, as text
 *   error          it raised: error_* say what, with the cell's traceback
 *   timed_out      past its deadline: interrupted (SIGINT; state_lost
 *                  false), or killed where the kernel did not answer
 *                  within the grace (state_lost true)
 *   interrupted    the same, at the caller's signal
 *   died           the kernel ended during the cell (exit, signal, the
 *                  session's memory limit): state_lost
 *   busy           another cell of the kernel is going on: nothing ran
 *   session_ended  the session has ended: nothing ran
 *   failed         the engine could not run it: failure, message say why
 * Every status but ok and error is the engine's word, from what it saw
 * (its deadline, the kernel's end), never the kernel's. */
enum esb_cell_status {
  ESB_CELL_OK, ESB_CELL_ERROR, ESB_CELL_TIMED_OUT, ESB_CELL_INTERRUPTED, ESB_CELL_DIED,
  ESB_CELL_BUSY, ESB_CELL_SESSION_ENDED, ESB_CELL_FAILED, ESB_CELL__COUNT
};
const char *esb_cell_status_name(enum esb_cell_status status);

/* How long a kernel has to answer an interrupt before it is killed. */
#define ESB_CELL_GRACE_MS 1000

struct esb_cell_result {
  enum esb_cell_status status;
  struct esb_capture out, err;    /* the cell's output (the plan's cap) */
  char *value;                    /* owned; NULL: none */
  char *error_name, *error_message, *error_traceback; /* owned: what it raised (error) */
  bool state_lost;                /* the kernel's earlier state is gone: it ran in a new
                                     kernel, or the kernel ended during it */
  double duration_ms;
  char session[40];               /* a local session's id, or a k8s session's (the longer) */
  enum esb_error_code failure;    /* failed: the engine's code */
  char *message;                  /* owned: the engine's word, where it has one */
};

#define ESB_CELL_RESULT_INIT { .status = ESB_CELL_FAILED }

void esb_cell_result_release(struct esb_cell_result *r);
/* The CLI's exit code of a cell: 0 ok, 1 error, 124 timed_out, 130
 * interrupted, 125 otherwise. */
int esb_cell_exit_code(const struct esb_cell_result *r);

/* The languages with a kernel, ", "-separated (their one list is
 * local_session_cell.c's). */
const char *esb_session_kernel_languages(void);

/* The kernel's program for language: argv[0..2] (program, its flag for
 * code, the kernel's source), to plan as a run's program. 0, or -1 with
 * ESB_E_INVALID_REQUEST naming the languages that have one. */
int esb_session_kernel_argv(const char *language, const char *argv[3], struct esb_error *err);

/* Runs code (len bytes) as a cell of language's kernel in session id.
 * plan: the kernel's (esb_session_kernel_argv's argv, planned by the
 * policy): its timeout_ms is the cell's deadline, its max_output_bytes
 * the cap of its output. interrupt_fd: readable when the caller is
 * interrupted (-1: none). */
void esb_session_cell(const char *id, const char *language, const char *code, size_t len,
                      const struct esb_plan *plan, struct esb_cell_result *r, int interrupt_fd);

#endif
