/* echo-sandbox-init: the sandbox's first process, a program of its own.
 *
 * The engine starts it with a vfork-like clone3 (CLONE_VM | CLONE_VFORK, a
 * stack of its own) whose child only places the fds (engine/sandbox/child_wire.h)
 * and execs this program: the engine's memory, however large, is neither
 * copied nor left shared with a child that outlives the clone, so the
 * engine's own threads take no copy-on-write fault for a run. Here, in a
 * fresh program, the plan is read back and the sandbox built as the
 * engine's in-process child builds it (engine/sandbox/sandbox_child.c), but for
 * the namespaces, which this program makes itself: a program exec'd inside
 * a new user namespace whose id maps are not yet written would lose its
 * capabilities there. Linked statically: it runs before any root of the
 * sandbox exists and needs no loader.
 *
 * With the argument --fork-server it is started once and forks the init
 * process of each run instead (engine/sandbox/fork_server.h), into the run's user
 * and pid namespaces; each such child goes on below as the exec'd program
 * would, but for those namespaces. */
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "engine/sandbox/child_wire.h"
#include "engine/sandbox/fork_server.h"
#include "engine/sandbox/sandbox_child.h"

_Noreturn static void run_from_wire(const char *rootfs_template, uint64_t namespaces_made) {
  static struct esb_child_wire wire;
  /* The fds were placed without close-on-exec, to cross our own exec; the
   * report pipe must not cross the program's (nor stay open in it). */
  fcntl(ESB_WIRE_FD_REPORT, F_SETFD, FD_CLOEXEC);
  if (esb_child_wire_read(ESB_WIRE_FD_PLAN, &wire) < 0 || !wire.plan.sandbox ||
      !wire.plan.sandbox->namespaces)
    esb_child_plan_unreadable(ESB_WIRE_FD_REPORT);
  close(ESB_WIRE_FD_PLAN);
  if (wire.plan.rootfs)
    wire.plan.rootfs_template = rootfs_template;
  esb_child_main_exec(&wire.plan, namespaces_made);
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], ESB_FORK_SERVER_ARG) == 0)
    esb_fork_server_main(run_from_wire);
  run_from_wire(NULL, 0);
}
