/* The sandbox's root filesystem, built as data: the parent turns a
 * struct esb_sandbox into a list of setup steps (esb_rootfs_plan), and the
 * child, in its new mount namespace, applies them in one loop
 * (esb_rootfs_apply), as bubblewrap does with its SetupOp list.
 *
 * The root is a fresh tmpfs, made read-only once built, holding only:
 *   - the host paths of the policy's mount list (runtimes: /usr, /bin, /lib*,
 *     the /etc files they need), read-only unless the list says writable; a
 *     host path that is a symlink (/bin -> usr/bin) becomes the same symlink,
 *     one that does not exist is left out;
 *   - a generated /etc/passwd, /etc/group and /etc/hosts;
 *   - a fresh /dev: null, zero, full, random, urandom, a private devpts
 *     (ptmx), a tmpfs /dev/shm, and the fd/stdin/stdout/stderr links;
 *   - its own /proc; no /sys;
 *   - a private tmpfs /tmp, and the working dir: a tmpfs of its own, of a
 *     bounded size, owned by the program's uid.
 * Nothing else of the host is there.
 *
 * Each tmpfs a run writes to (/tmp, /dev/shm, the working dir) has as many
 * inodes as pages of its size (one per 4 KiB, the kernel's own ratio for a
 * tmpfs of its default size; at least 1024): a file with any byte in it
 * takes a page at least, so only empty files, directories, links and
 * names of hard links run out of inodes before the space is used up. An
 * inode and its name cost the kernel 1 to 1.5 KiB (measured: 970 bytes
 * with a 26-byte name, 1480 with a 246-byte one), which the cgroup's
 * memory limit counts and no reclaim frees: without the bound, a program
 * making empty files filled the limit with them (216650 files in 256 MiB),
 * and every later process of a session was killed at its start; with it,
 * the program gets ENOSPC once its inodes hold at most about 40% of the
 * tmpfs's size in kernel memory.
 *
 * A read-only host path is seen through an overlay of the run's own: an
 * overlay (two lower layers, no upper one, so read-only) of the host
 * directory above it (of the path itself, for one right below "/"),
 * mounted on the host's root while the steps run, and the path bound from
 * there. Every file the program can open through the mount list is then an
 * inode of its own run's overlays: an inotify or fanotify watch sees the
 * run's own accesses only, never the host's or another run's, and a flock
 * or POSIX lock meets only the run's own (a lock on a host file is no
 * channel between runs, and cannot block the host's tools). Where the
 * kernel refuses the overlay (no "lowerdir+" before 6.7, a host directory
 * with mounts below it), the path is bound from the host's directory, as a
 * writable one always is.
 *
 * Every tmpfs lives in the sandbox's mount
 * namespace only and vanishes with it, so a run leaves nothing on the host to
 * remove, and no removal can be led astray by a symlink the program planted.
 *
 * The child pivots into the new root first; the host's root stays reachable
 * at OLDROOT (the steps' sources name it) until the steps are done, then is
 * detached.
 *
 * The steps that are the same for every run of a policy (all but the
 * tmpfs of /tmp, /dev/shm and the working dir, /proc, /dev/pts, the
 * overlays, the binds of the mount list, the request's files, and whatever
 * lies below one of those) can be built once as a template:
 * echo-sandbox-init's fork server (engine/sandbox/fork_server.h) keeps templates,
 * read-only, in a mount namespace of its own, and each run forked from it
 * takes a copy of one (locked read-only in the run's user namespace) and
 * adds only its own steps: the directories, files and /dev are copied
 * instead of made each time. A template's inodes would be every run's, so
 * a run's root is a read-only overlay of the template's (the template
 * keeps its /dev beside its root, not in it: a layer of an overlay has no
 * mount below it), and the run binds the template's /dev and the host's
 * paths into it. A root built so and one built step by step are the
 * same: read-only, /dev too (but for its devices, /dev/pts and /dev/shm).
 *
 * Still shared: the devices of /dev (null, zero, full, random, urandom)
 * are the host's, bound: an overlay in a user namespace opens no device. */
#ifndef ESB_ENGINE_ROOTFS_H
#define ESB_ENGINE_ROOTFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/error.h"

#define ESB_ROOTFS_OLDROOT "/.oldroot"

/* A host path in the sandbox (the policy's mount list). */
struct esb_mount {
  const char *host;   /* absolute */
  const char *path;   /* absolute, inside the sandbox */
  bool writable;
};

enum esb_rootfs_step_kind {
  ESB_ROOTFS_DIR,      /* mkdir dest */
  ESB_ROOTFS_FILE,     /* create dest with data (may be empty: a mount point) */
  ESB_ROOTFS_SYMLINK,  /* dest -> data */
  ESB_ROOTFS_BIND,     /* bind source (recursively) on dest; read-only unless writable */
  ESB_ROOTFS_TMPFS,    /* a tmpfs on dest with the options in data */
  ESB_ROOTFS_DEVPTS,   /* a private devpts on dest */
  ESB_ROOTFS_PROC,     /* a proc on dest (of the sandbox's pid namespace) */
  ESB_ROOTFS_DATA,     /* a request's file: dest made (never followed) with the len
                          bytes of data and mode, owned by uid/gid */
  ESB_ROOTFS_OWN_DIR,  /* mkdir dest (0755), owned by uid/gid: above a request's file */
  ESB_ROOTFS_OVERLAY,  /* a read-only overlay of the host dir source, mounted on source
                          itself (under OLDROOT: it goes with the host's root), with the
                          empty directory data of the new root as its second layer */
};

struct esb_rootfs_step {
  enum esb_rootfs_step_kind kind;
  char *source;        /* BIND, OVERLAY: the host path under OLDROOT */
  char *dest;          /* inside the new root */
  char *data;          /* FILE: contents; SYMLINK: target; TMPFS: options; DATA: bytes */
  bool writable;
  size_t len;          /* DATA: the bytes of data */
  unsigned mode;       /* DATA */
  unsigned uid, gid;   /* DATA, OWN_DIR: the owner, as seen inside */
  uint64_t source_dev, source_ino; /* BIND: the host path's file when planned (a key of
                          a template that held it; the mount list's are each run's) */
  bool per_run;        /* not part of a template: see above */
  bool copy;           /* BIND, read-only: a template may hold a copy of source instead,
                          which its runs do not bind (engine/sandbox/rootfs_copy.h) */
};

struct esb_rootfs {
  struct esb_rootfs_step *steps;
  size_t count, cap;
};

#define ESB_ROOTFS_INIT { .steps = NULL }

struct esb_sandbox;

/* A request's file, made under dirfd (never through a link: O_EXCL and
 * O_NOFOLLOW), with len bytes of data, then owned by uid/gid and given mode
 * (after the write: the umask is not ours to know). For a directory that
 * only we have written to so far: the sandbox's working dir before the
 * program starts. 0, or -1 with errno. Async-signal-safe. */
int esb_rootfs_write_file_at(int dirfd, const char *path, const char *data, size_t len, unsigned mode,
                             uid_t uid, gid_t gid);

/* A directory above such a file (mode 0755; one that is there already is
 * kept), owned by uid/gid. 0, or -1 with errno. Async-signal-safe. */
int esb_rootfs_make_dir_at(int dirfd, const char *path, uid_t uid, gid_t gid);

/* Whether path is absolute, not "/" itself, and has no empty, "." or ".."
 * component (and no trailing "/"): a path that names one place, whatever
 * the tree. */
bool esb_rootfs_path_ok(const char *path);

/* Whether workdir can be a run's working dir in a root with these mounts: a
 * path as above, not /proc, /dev or /etc (or below them), not a mount of the
 * list nor below one. Returns 0, or -1 with *err (invalid_request). */
int esb_rootfs_check_workdir(const struct esb_mount *mounts, size_t n, const char *workdir,
                             struct esb_error *err);

/* The inode bound (nr_inodes) of a tmpfs of this size that a run writes
 * to (above): one per ESB_ROOTFS_BYTES_PER_INODE, at least
 * ESB_ROOTFS_MIN_INODES. */
#define ESB_ROOTFS_BYTES_PER_INODE 4096
#define ESB_ROOTFS_MIN_INODES 1024
unsigned long long esb_rootfs_tmpfs_inodes(uint64_t size_bytes);

/* Builds the steps for sb (which must have ESB_NS_MOUNT, mounts and
 * workdir). Reads the host's mount sources with lstat (the policy's paths,
 * never the program's). Returns 0, or -1 with *err (a mount the policy may not
 * make: policy_error) and errno, nothing held. */
int esb_rootfs_plan(const struct esb_sandbox *sb, struct esb_rootfs *fs, struct esb_error *err);

void esb_rootfs_release(struct esb_rootfs *fs);

/* Whether the kernel makes each read-only overlay of fs's steps as a run
 * makes it (a kernel before 6.7 refuses their "lowerdir+", and overlays
 * stack two deep at most): where it refuses one, the run binds the host's
 * directory instead, whose inodes every run and the host share (inotify
 * events, locks). Made and dropped, never mounted; needs CAP_SYS_ADMIN.
 * Returns the number of overlays made, or -1 with errno and the refused
 * host directory in refused. */
int esb_rootfs_probe_overlays(const struct esb_rootfs *fs, char *refused, size_t n);

/* The child's side: pivots into a new tmpfs root, applies the steps, detaches
 * the host's root and makes the new root read-only. Async-signal-safe.
 * Returns 0, or -1 with errno set and *failed the index of the step that
 * failed (-1: the pivot or the final remount). */
int esb_rootfs_apply(const struct esb_rootfs *fs, long *failed);

/* The template of fs's steps that are not per run, built by a privileged
 * process (the fork server's builder, in the server's mount namespace) at
 * dir, a new directory below the working directory: a tmpfs of its own
 * holding root (a tmpfs: all but /dev), dev (the /dev tmpfs) and empty (a
 * directory), with the steps' files owned by uid/gid (the host ids the
 * program runs as, as a run makes them), read-only once built. Host paths are the
 * sources' without OLDROOT. A step whose dest goes through a symlink is
 * refused (ELOOP): here it would lead to the host's paths. fs's copy steps
 * (BIND with copy) are copied in where copy says so (copy[k] for the k-th
 * of them; NULL: none), and the template's COPIED file says which were
 * (esb_rootfs_apply_template binds the others). 0, or -1 with errno and
 * *failed as above. */
int esb_rootfs_build_template(const struct esb_rootfs *fs, const char *dir, uid_t uid, gid_t gid,
                              const bool *copy, long *failed);

/* The child's side with a template (the one built for these same steps,
 * at dir below the working directory, which the child's mount namespace
 * copied): an overlay of its root becomes the root (a bind of it where the
 * kernel refuses the overlay), with its /dev bound in, then the per-run
 * steps are applied and the host's root is detached. A template that is not there
 * (the server dropped it before the child's namespace copied it) is done
 * without: esb_rootfs_apply. Async-signal-safe. 0, or -1 with errno and
 * *failed as above. */
int esb_rootfs_apply_template(const struct esb_rootfs *fs, const char *dir, long *failed);

#endif
