/* Starting echo-sandbox-init (engine/sandbox/init_main.c) for a run: forked by
 * its fork server (engine/sandbox/fork_server.h) where one runs, else exec'd
 * through a vfork-like clone. Internal to the engine (engine/runtime/spawn.c).
 *
 * The server is started at the first run that can use it: one started on
 * a thread that lives as long as the process (a pool thread, or the main
 * thread), since its children's parent-death signal follows that thread.
 * Started elsewhere, a run execs the program itself. A server that is gone
 * (killed, or it failed) is reaped and replaced by the run that finds it
 * gone. A server that cannot be started is not tried again: runs exec the
 * program. The engine holds the server's
 * socket and pidfd for its life; the server ends when the process does.
 * $ECHO_SANDBOX_FORK_SERVER=0 turns the server off (every run execs the
 * program: the benchmarks' baseline). */
#ifndef ESB_ENGINE_INIT_PROGRAM_H
#define ESB_ENGINE_INIT_PROGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/sandbox/child_wire.h"
#include "engine/sandbox/clone.h"

/* Starts the program (esb_init_program: one must exist) with from[i] as
 * its fd i (-1: none; the fds stay ours), in the cgroup v2 directory
 * cgroup_fd (-1: ours). key (key_len bytes, none when 0) names the
 * template of the run's root (esb_child_wire_template_write) the fork
 * server may give it. clone_flags: the run's CLONE_NEW* flags; the fork
 * server clones the program into those of ESB_FORK_NAMESPACES, and the
 * program makes the rest (engine/sandbox/fork_server.h). owner ((uid_t)-1: ours): the
 * uid the run's user namespace is made as (engine/sandbox/clone.h). The caller blocks every signal around the call: the
 * program starts with that mask. Returns its pid with *pidfd set; or -1
 * with errno (ENOSYS: no vfork-like clone here, so the caller clones in
 * process). */
pid_t esb_init_start(const int from[ESB_WIRE_FD__END], int cgroup_fd, const char *key, size_t key_len,
                     uint64_t clone_flags,
                     uid_t owner, int *pidfd);

#endif
