/* echo-sandbox-init as a fork server: started once (exec'd) by an engine
 * that uses the init program, it forks the init process of each run, so a
 * run pays a fork of a small static program instead of an exec and a C
 * library's start-up (the CPU-feature probing of a static glibc is some
 * 200 µs where CPUID traps to a hypervisor). Internal to the engine; both
 * sides are built from the same source, and the server's greeting names
 * this protocol's version.
 *
 * The server's socket (SOCK_SEQPACKET) is its fd ESB_FORK_SERVER_FD; it
 * holds nothing else. For each request it receives the run's fds
 * (SCM_RIGHTS: the init program's fds, engine/sandbox/child_wire.h, and a cgroup v2
 * directory to start in), clones with CLONE_PARENT | CLONE_PIDFD and the
 * run's user and pid namespaces (ESB_FORK_NAMESPACES), and answers with
 * the pid and the pidfd. The child is pid 1 of the run's pid namespace
 * from the start: no process forks it and waits for it, as the exec'd
 * program does (engine/sandbox/sandbox_child.h). CLONE_PARENT makes the child the
 * engine's own, as an exec'd init was: the engine reaps it through the
 * pidfd, and the child's parent-death signal follows the engine's thread
 * that started the server (a thread that lives as long as the process:
 * engine/runtime/init_program.c). The child places its fds, closes every other (the
 * server's socket too) and goes on as the exec'd program would
 * (engine/sandbox/init_main.c): nothing of one run is ever open in the server
 * while another forks.
 *
 * Every signal stays blocked in the server, as the engine blocked them
 * around its clone: the children rely on it. The server ends when the
 * engine's end of the socket closes (the engine's exit) or with the
 * engine (parent-death signal). */
#ifndef ESB_ENGINE_FORK_SERVER_H
#define ESB_ENGINE_FORK_SERVER_H

#include <sched.h>
#include <stdint.h>

#include "engine/sandbox/child_wire.h"

enum { ESB_FORK_SERVER_FD = 3 };

#define ESB_FORK_SERVER_MAGIC 0x45534633u /* "ESF3": bump with any change below */
#define ESB_FORK_SERVER_ARG "--fork-server"
#define ESB_FORK_SERVER_HUB "/sys"

/* The engine's request; the fds follow as SCM_RIGHTS. slot[i]: the index
 * of init fd i among them, -1 for none; cgroup likewise. key_len bytes
 * follow the struct: the run's root template (esb_child_wire_template_write),
 * none when 0. namespaces: the CLONE_NEW* flags the child is cloned with,
 * of ESB_FORK_NAMESPACES; a clone the kernel refuses is answered with its
 * errno, as any. owner_uid: the uid the clone is made as, so that it
 * owns the run's user namespace (engine/sandbox/clone.h), or ESB_FORK_NO_OWNER:
 * the server's own. reserved: 0. */
struct esb_fork_request {
  uint32_t magic;
  int32_t slot[ESB_WIRE_FD__END];
  int32_t cgroup;
  uint32_t key_len;
  uint64_t namespaces;
  uint32_t owner_uid, reserved;
};

#define ESB_FORK_NO_OWNER UINT32_MAX

/* The namespaces the server clones a run into, of those the run has: its
 * user namespace and its pid namespace, so the child is pid 1 already,
 * with no process between it and the engine. The run makes the others
 * itself (unshare): they cost the kernel far more (a network namespace
 * above all), and the server, one process, would make every run wait for
 * the one before. */
#define ESB_FORK_NAMESPACES ((uint64_t)(CLONE_NEWUSER | CLONE_NEWPID))

enum { ESB_FORK_KEY_MAX = 64 * 1024 };

/* The server's greeting (pid 0, error 0) and its answers: the child's pid
 * with its pidfd as SCM_RIGHTS, or pid -1 and the clone's errno. */
struct esb_fork_reply {
  uint32_t magic;
  int32_t pid;
  int32_t error;
};

/* The server's loop, in echo-sandbox-init; each child calls run_init once
 * its fds are in place (run_init does not return), with the template of
 * its root that the server holds for the run's key (a directory below the
 * child's working directory), or NULL, and the namespaces it was cloned
 * into (CLONE_NEW* flags).
 *
 * Templates (engine/sandbox/rootfs.h): the server makes a mount namespace of its
 * own (a slave of the host's: host mounts made later reach it), and in it
 * a tmpfs that holds the templates, the hub, mounted on /sys: a sandbox
 * has no part of the host's /sys (a mount of the policy may not name it),
 * and the runs' child processes need none. The hub is the server's
 * working directory and so its children's, where they find their
 * template (the kernel lets a run make a user namespace only while its
 * root is its mount namespace's, so the hub cannot be mounted over the
 * root itself). A template is built by a
 * child of the server (which shares its mount namespace) for the first run
 * of each key, at most eight kept, the least recently used detached first.
 * Where the namespace, the tmpfs or a build fails, runs build their root
 * step by step, as without a server. */
_Noreturn void esb_fork_server_main(void (*run_init)(const char *rootfs_template, uint64_t namespaces_made));

#endif
