/* A session's pid 1, the "holder": instead of running one program it keeps
 * the sandbox (its namespaces, root, working dir and cgroups) and starts
 * runs in it, one per connection to its control socket, until the session
 * ends.
 *
 * The engine makes the sandbox as it makes a run's (engine/sandbox/spawn.h,
 * in process: the holder is a clone of the engine that made it), with
 * esb_sandbox.session set; once the sandbox is built, pid 1 calls
 * esb_session_hold instead of starting the program. The control socket is
 * a listening AF_UNIX SOCK_SEQPACKET socket the engine bound on the host
 * (in a directory only its uid may enter) before the clone: nothing of it
 * is visible inside, its fd is close-on-exec and no run's process holds it.
 *
 * The protocol, one message per connection (esb_fd_send):
 *   RUN with the fds of enum esb_session_fd: a plan written by
 *     esb_child_wire_write (its stdio and report fds are the ones sent) is
 *     started in a new pid namespace below the session's, so everything the
 *     run starts ends with it. The run's pid 1 reports on the report fd as
 *     a one-shot run's does. The connection stays open while the run goes
 *     on: a TERM message on it (the engine's deadline) makes the holder
 *     SIGTERM the run's process group (the program's grace); the engine
 *     closing it (the grace's end, its own end) makes the holder SIGKILL
 *     the run's pid 1, and the kernel the rest of the run. The run's own
 *     cgroups (the engine made or took them below the session's) come as
 *     the message's last fds, one for each the plan says it has (their
 *     `tasks` or cgroup.procs files): the run's pid 1 joins them before
 *     anything of the run starts; the holder keeps them open until it
 *     reaped the run's pid 1 (their lock holds a slot: engine/cgroup.h).
 *     A session's run's pid 1 says its status once every other process of
 *     the run is gone (ESB_REPORT_ALONE: engine/sandbox/spawn.h), before
 *     its own end, and stays out of the run's cgroups (the program joins
 *     them): the engine, having read that status and the output's end,
 *     sends DONE, and the holder closes the cgroups' files and the
 *     connection at once, the run's pid 1 reaped as any when it ends.
 *     The run's pid 1 is made ahead where the holder has one waiting
 *     (its pid and mount namespaces, its /proc: nothing the plan decides,
 *     and its seccomp filter: the session's, or the last run's that had
 *     another), and handed the message as it came where the message says
 *     (esb_session_filter_print) the plan has that filter; one made with
 *     another is let go.
 *   WORKDIR: the holder answers with an O_PATH fd of the session's working
 *     dir (the root of its tmpfs), and closes the connection: the engine
 *     puts and gets files beneath it (openat2 RESOLVE_BENEATH), never by a
 *     path a run could change.
 *   DELETE: the session ends ("deleted").
 *   CELL with the fd of a kernel's plan: a cell for the session's kernel of
 *     that slot (engine/sandbox/session_kernel.h says how it goes).
 *
 * The holder ends the session by itself at its TTL or after idle_timeout_ms
 * with no run (a timerfd in its poll loop: nobody needs to watch it), and
 * says why in its state file (an fd the engine opened on the host: no path
 * the program could change is ever followed). Its end, as pid 1 of the
 * session's pid namespace, ends every process of the session. It does not
 * depend on the process that made it: no parent-death signal. */
#ifndef ESB_ENGINE_SESSION_HOLDER_H
#define ESB_ENGINE_SESSION_HOLDER_H

#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/cgroup.h"

struct esb_child_plan;

/* What the holder is given (esb_sandbox.session), besides the sandbox. */
struct esb_session_hold {
  int control_fd;       /* the listening socket */
  int state_fd;         /* the session's state file (esb_session_state_format) */
  int keep_fds[ESB_CGROUP__COUNT + 1]; /* held open while the session lives: the
                           cgroups' locks, the host uid's slot; -1: none */
  uint64_t ttl_ms, idle_timeout_ms;
};

#define ESB_SESSION_MAGIC 0x45535334u /* "ESS4": bump with any change below */

enum esb_session_kind {
  ESB_SESSION_RUN = 1, ESB_SESSION_DELETE,
  ESB_SESSION_CELL,           /* a cell: the kernel's fds come back (struct esb_session_cell_answer) */
  ESB_SESSION_CELL_INTERRUPT, /* on a cell's connection: SIGINT to the kernel */
  ESB_SESSION_CELL_DONE,      /* on a cell's connection: its reply came, the kernel is free */
  ESB_SESSION_TERM,           /* on a run's connection: SIGTERM to its process group */
  ESB_SESSION_WORKDIR,        /* an O_PATH fd of the working dir comes back */
  ESB_SESSION_DONE,           /* on a run's connection: its pid 1 said it ended alone */
};

struct esb_session_msg {
  uint32_t magic;
  uint32_t kind;   /* enum esb_session_kind */
  uint32_t kernel; /* CELL: the kernel's slot, below ESB_SESSION_KERNELS; else 0 */
  uint32_t seccomp; /* RUN: esb_session_filter_print of the plan's seccomp filter */
};

/* A print of a seccomp filter (FNV-1a of its program; 0 for none): a RUN
 * message says by it which filter its plan has, so that a run's pid 1
 * made ahead with another is not handed the run (which it would refuse:
 * it compares the programs). */
static inline uint32_t esb_session_filter_print(const struct sock_fprog *filter) {
  if (!filter || !filter->len)
    return 0;
  uint32_t h = 2166136261u;
  const unsigned char *b = (const unsigned char *)filter->filter;
  for (size_t i = 0; i < filter->len * sizeof *filter->filter; i++)
    h = (h ^ b[i]) * 16777619u;
  return h ? h : 1;
}

/* A session's kernels: one slot a language that has one. */
#define ESB_SESSION_KERNELS 4

/* The holder's answer to a CELL: GO with the kernel's fds (enum
 * esb_session_cell_fd), BUSY (a cell of that kernel is going on), or
 * FAILED (error: an errno; the kernel could not be started). */
enum esb_session_cell_word { ESB_SESSION_CELL_GO = 1, ESB_SESSION_CELL_BUSY, ESB_SESSION_CELL_FAILED };

struct esb_session_cell_answer {
  uint32_t magic;
  uint32_t word;       /* enum esb_session_cell_word */
  int32_t error;
  uint32_t state_lost; /* the kernel is a new one and an earlier one had ended */
  int32_t ended;       /* then: that one's pid 1's wait status; else -1 */
  uint32_t spare;
  uint64_t cell;       /* the kernel's count of cells, this one's included: the request's id */
};

/* The fds of a GO, in this order: the holder's ends of the kernel's pipes. */
enum esb_session_cell_fd {
  ESB_SESSION_CELL_FD_REQUESTS, ESB_SESSION_CELL_FD_REPLIES, ESB_SESSION_CELL_FD_STDOUT,
  ESB_SESSION_CELL_FD_STDERR, ESB_SESSION_CELL_FD_REPORT, ESB_SESSION_CELL_FD__MAX
};

/* The fds of a RUN message, in this order; then the run's cgroups' (as
 * many as the plan says it has, ESB_CGROUP__COUNT at most). */
enum esb_session_fd {
  ESB_SESSION_FD_PLAN, ESB_SESSION_FD_STDIN, ESB_SESSION_FD_STDOUT, ESB_SESSION_FD_STDERR,
  ESB_SESSION_FD_REPORT, ESB_SESSION_FD_COLLECT, /* where collected files go; any fd where the
                                                    plan collects none */
  ESB_SESSION_FD_CGROUP,
  ESB_SESSION_FD__MAX = ESB_SESSION_FD_CGROUP + ESB_CGROUP__COUNT
};

/* Why a session ended: the words its state file and `session show` use. */
enum esb_session_end {
  ESB_SESSION_ALIVE, ESB_SESSION_END_TTL, ESB_SESSION_END_IDLE, ESB_SESSION_END_DELETED,
  ESB_SESSION_END_DIED, /* the holder is gone without a word (killed) */
  ESB_SESSION_END_MEMORY, /* the same, and the session's memory cgroup OOM-killed a process */
  ESB_SESSION_END__COUNT
};
const char *esb_session_end_name(enum esb_session_end end);
/* 0, or -1 for a word that is none of them. */
int esb_session_end_parse(const char *word, enum esb_session_end *end);

/* The state file's one line: "<end word> <runs so far>\n". */
#define ESB_SESSION_STATE_MAX 64

/* pid 1 of the session: serves p's session until it ends; never returns. */
_Noreturn void esb_session_hold(const struct esb_child_plan *p);

#endif
