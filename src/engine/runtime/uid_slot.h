/* A host uid of its own for each live run, from a range the policy gives
 * (an /etc/subuid-style first + count): what a run charges to a per-user
 * kernel counter (inotify instances and watches, POSIX message queue
 * bytes, processes, locked memory) is then charged to its own uid, never
 * to root's or to another run's, and no run can signal or trace another.
 *
 * Uniqueness holds among every process on the host that takes slots (the
 * CLI, batch, daemons at once): a slot is a one-byte open-file-description
 * lock (F_OFD_SETLK) at the uid's own offset in one root-only lock file,
 * ESB_UID_SLOT_FILE. The kernel releases it when the last fd of that open
 * file is closed, so a crashed engine holds nothing; offsets are the uids
 * themselves, so policies whose ranges overlap never share a uid either.
 * One file, not one per uid: no directory of 65,536 files to create or
 * clean. Each slot has its own open of the file (locks of one open file
 * description never conflict with each other, so two runs of one process
 * need two). The search starts where this process's last one ended (the
 * first from the pid), so a uid just given back is the last one taken
 * again. When every uid of the range is held, esb_uid_slot_take fails at
 * once (ENOSPC): it does not wait. */
#ifndef ESB_ENGINE_UID_SLOT_H
#define ESB_ENGINE_UID_SLOT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/error.h"

#define ESB_UID_SLOT_DIR "/run/echo-sandbox"
#define ESB_UID_SLOT_FILE ESB_UID_SLOT_DIR "/uid-slots"

struct esb_uid_slot {
  int fd;    /* the lock's open file; -1: no slot held */
  uid_t uid; /* the run's host uid; its host gid is the same number */
};

#define ESB_UID_SLOT_INIT { .fd = -1, .uid = (uid_t)-1 }

/* Whether this process's user namespace maps every uid and gid of
 * [first, first + count), as the host's own does: an engine that is root
 * only in a namespace of its own (a container's) cannot give those ids to
 * a run, and runs as before, with the policy's one uid. */
bool esb_uid_slot_usable(uint64_t first, uint64_t count);

/* Takes a free uid of [first, first + count) into *slot (which holds
 * none). Root only (the lock file is root's). Returns 0, or -1 with *err
 * (backend_unavailable: every uid of the range is held, and errno ENOSPC). */
int esb_uid_slot_take(uint64_t first, uint64_t count, struct esb_uid_slot *slot, struct esb_error *err);

/* Ends every process that runs as the slot's uid (SIGKILL from a child of
 * that uid: kill(-1) reaches exactly the processes it may signal, those
 * whose real or saved uid is the slot's), and waits for that child. For a
 * run without a pid namespace, whose leftovers nothing else ends: a
 * process left behind would otherwise meet the next run given the uid,
 * and could signal or trace it. Root only; 0, or -1 with errno. */
int esb_uid_slot_end_processes(const struct esb_uid_slot *slot);

/* Gives the uid back (nothing when none is held). Only once nothing of
 * the run is left that runs as it. */
void esb_uid_slot_release(struct esb_uid_slot *slot);

#endif
