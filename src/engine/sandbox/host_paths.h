/* What the host's paths of a policy's mount list are, as lstat and
 * readlink tell (engine/sandbox/rootfs.h plans a run's root from them),
 * kept from one run to the next: a batch or a daemon plans the same two
 * dozen paths for every run, some 25 system calls and 40 µs of a run's
 * CPU.
 *
 * A kept answer is given only while it is what lstat would say now: the
 * root would otherwise bind what the host has there now, following a
 * symlink that the kept answer calls a file or directory (a host path
 * turned into a link to a secret), or leave out a path the host made since.
 * So an answer is kept only where every change that could alter it is
 * told, and each plan asks first whether any was:
 *   - a path's entry, or one of its ancestors', is made, removed or
 *     renamed (a replacement is a rename over it): inotify watches on "/"
 *     and every directory down to the path's own, added before the lstat,
 *     so that no change between the two goes untold;
 *   - a mount or unmount anywhere in the engine's mount namespace (one on
 *     a path or an ancestor changes what lstat sees): /proc/self/mountinfo
 *     polls for POLLPRI;
 *   - the kernel lost events (IN_Q_OVERFLOW), or a watch was removed
 *     (IN_IGNORED: its file system unmounted, its directory gone).
 * Any of them drops every kept answer (and the watches); the next plan
 * looks the paths up again. A path is never kept where inotify would not
 * tell: an ancestor that is a symlink (its target's directory changes
 * unwatched), a directory on a file system other than the local ones named
 * in host_paths.c (a network file system's other clients change it
 * untold), or no inotify or mountinfo here. An answer is the same as a
 * fresh lstat's at the time of the plan's check: a change after it lands
 * in the next plan, as one between a fresh lstat and the run's bind did.
 *
 * The answers are the process's, for every policy: a path is its own key,
 * so a policy loaded anew asks for its paths as any plan does. Kept only
 * once a long-lived caller (batch, serve) asks for it: the two fds it holds
 * are no business of a process that embeds the engine for a run or two.
 * Thread-safe (the pool's threads plan runs at once). */
#ifndef ESB_ENGINE_HOST_PATHS_H
#define ESB_ENGINE_HOST_PATHS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

/* Whether answers are kept from now on (off: every lookup is the host's,
 * and what was kept is dropped, its fds closed). Off at the start. */
void esb_host_paths_keep(bool on);

/* Begins a plan's lookups: drops the kept answers if the host told of a
 * change since the last plan, and holds the lock until
 * esb_host_paths_end. */
void esb_host_paths_begin(void);
void esb_host_paths_end(void);

/* lstat(path), and where it is a symlink its target (NUL-terminated, in
 * target[n]; a target that does not fit fails with ENAMETOOLONG): 0, or
 * -1 with errno. Between begin and end. st holds st_mode, st_dev and
 * st_ino alone when kept. */
int esb_host_paths_lstat(const char *path, struct stat *st, char *target, size_t n);

#endif
