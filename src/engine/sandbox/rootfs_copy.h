/* Copies of small read-only host trees in a root's template
 * (engine/sandbox/rootfs.h): what the policy mounts read-only from /etc
 * (ld.so.cache, ssl, alternatives, ...) is a dozen binds, each from an
 * overlay of the host's directory made for the run: a third of what a run
 * from a template costs in the kernel. A tree small enough is copied into
 * the template once instead, and each run's overlay of the template's root
 * gives it the copy's inodes as its own, as it does the generated
 * /etc/passwd.
 *
 * A copy is what the program would read through the bind:
 *  - the same names, contents, symlinks and modification times;
 *  - the same access: the copy is owned by the run's ids, so a mode is kept
 *    only where its owner's and group's read and execute bits are those of
 *    others (which are what the program gets on the host's files: its uid
 *    is no owner there, and it has no supplementary group); otherwise the
 *    mode shown is others' bits for all three, and a file or directory
 *    others cannot read is there but empty. set-id bits are dropped (the
 *    root is nosuid either way);
 *  - anything else (a device, a fifo, a socket, a directory others may
 *    search but not list, a tree over the bounds below) is not copied:
 *    that mount is bound by each run, as without a template.
 * A copy stays current: the fork server watches every directory of it
 * with inotify from before the copy is made, and drops the template at the
 * first change (engine/sandbox/fork_server.c); the next run builds it anew.
 * A change lands in the runs forked after the server read its event, as a
 * bind's would in the runs that start after it. */
#ifndef ESB_ENGINE_ROOTFS_COPY_H
#define ESB_ENGINE_ROOTFS_COPY_H

#include <stdbool.h>
#include <stddef.h>

/* The most one template copies, over all its trees. */
#define ESB_ROOTFS_COPY_MAX_ENTRIES 2048
#define ESB_ROOTFS_COPY_MAX_BYTES (4u << 20)
/* The most directories one template watches. */
#define ESB_ROOTFS_COPY_MAX_WATCHES 256

/* What is left of a template's bounds. */
struct esb_rootfs_copy_budget {
  size_t entries, bytes, watches;
};

#define ESB_ROOTFS_COPY_BUDGET_INIT \
  { ESB_ROOTFS_COPY_MAX_ENTRIES, ESB_ROOTFS_COPY_MAX_BYTES, ESB_ROOTFS_COPY_MAX_WATCHES }

/* The inotify events that end a copy's template. */
#define ESB_ROOTFS_COPY_EVENTS                                                                          \
  (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE |      \
   IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

/* The fork server's side, before the copy: whether host (a file or a
 * directory tree, not followed where it is a symlink) may be copied
 * within what is left of *budget, which it then takes; each directory of
 * it (a file's: the one it is in) is watched on inotify_fd, the watch
 * descriptors added to wds[*n] (the caller's array, of budget->watches
 * more at least). Where it may not, nothing is taken, and the watches
 * already added stay in wds. */
bool esb_rootfs_copy_watch(const char *host, struct esb_rootfs_copy_budget *budget, int inotify_fd, int *wds,
                           size_t *n);

/* The builder's side: copies host onto dest, the empty file or directory
 * a template step made for it, by way of a copy at stage (a new name in
 * dest's directory) renamed over it. Runs with the run's fs ids, so it
 * reads what they may read. Within *budget, taken from it. 0, or -1 with
 * errno, dest as it was and stage gone. */
int esb_rootfs_copy(const char *host, const char *dest, const char *stage, struct esb_rootfs_copy_budget *budget);

#endif
