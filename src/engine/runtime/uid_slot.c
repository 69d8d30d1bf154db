#include "engine/runtime/uid_slot.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/sandbox/clone.h"

/* The lock file, opened anew for this slot: made (with its directory) by
 * the first engine that needs it. Only a regular file of root's that no one
 * else may write is used: /run is root's, but a stale or planted file
 * elsewhere on the path is refused, not trusted. */
static int open_lock_file(struct esb_error *err) {
  int fd = open(ESB_UID_SLOT_FILE, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    if (mkdir(ESB_UID_SLOT_DIR, 0700) < 0 && errno != EEXIST) {
      esb_error_errno(err, ESB_E_SYSTEM, "making %s", ESB_UID_SLOT_DIR);
      return -1;
    }
    fd = open(ESB_UID_SLOT_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  }
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    esb_error_errno(err, ESB_E_SYSTEM, "opening %s", ESB_UID_SLOT_FILE);
    if (fd >= 0)
      close(fd);
    return -1;
  }
  if (!S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022)) {
    esb_error_set(err, ESB_E_SYSTEM, "%s is not a regular file of root's that only root may write", ESB_UID_SLOT_FILE);
    close(fd);
    errno = EPERM;
    return -1;
  }
  return fd;
}

/* The extents of our uid_map and gid_map ("inner outer count" lines),
 * read once: a process does not change its user namespace. */
enum { MAX_EXTENTS = 16 };
static struct { uint64_t inner, count; } extents[2][MAX_EXTENTS];
static size_t n_extents[2];
static pthread_once_t maps_once = PTHREAD_ONCE_INIT;

static void read_maps(void) {
  const char *paths[2] = { "/proc/self/uid_map", "/proc/self/gid_map" };
  for (int m = 0; m < 2; m++) {
    FILE *f = fopen(paths[m], "re");
    unsigned long long inner, outer, count;
    while (f && n_extents[m] < MAX_EXTENTS && fscanf(f, "%llu %llu %llu", &inner, &outer, &count) == 3) {
      extents[m][n_extents[m]].inner = inner;
      extents[m][n_extents[m]++].count = count;
    }
    if (f)
      fclose(f);
  }
}

bool esb_uid_slot_usable(uint64_t first, uint64_t count) {
  pthread_once(&maps_once, read_maps);
  for (int m = 0; m < 2; m++) {
    bool covered = false;
    for (size_t i = 0; i < n_extents[m] && !covered; i++)
      covered = first >= extents[m][i].inner && first + count <= extents[m][i].inner + extents[m][i].count;
    if (!covered)
      return false;
  }
  return true;
}

/* Where this process's next search starts: after the uid it took last. */
static _Atomic uint64_t cursor;

int esb_uid_slot_take(uint64_t first, uint64_t count, struct esb_uid_slot *slot, struct esb_error *err) {
  if (count == 0 || first == 0 || first + count - 1 >= (uint64_t)(uid_t)-1) {
    esb_error_set(err, ESB_E_POLICY, "the uid range %llu+%llu is not one of host uids above 0",
                  (unsigned long long)first, (unsigned long long)count);
    errno = EINVAL;
    return -1;
  }
  int fd = open_lock_file(err);
  if (fd < 0)
    return -1;
  uint64_t start = atomic_load(&cursor);
  if (start == 0) /* processes that start together start apart */
    start = (uint64_t)getpid() * 2654435761u;
  for (uint64_t i = 0; i < count; i++) {
    uint64_t uid = first + (start + i) % count;
    struct flock lock = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = (off_t)uid, .l_len = 1 };
    if (fcntl(fd, F_OFD_SETLK, &lock) == 0) {
      atomic_store(&cursor, start + i + 1);
      slot->fd = fd;
      slot->uid = (uid_t)uid;
      return 0;
    }
    if (errno != EAGAIN && errno != EACCES) {
      esb_error_errno(err, ESB_E_SYSTEM, "locking uid %llu in %s", (unsigned long long)uid, ESB_UID_SLOT_FILE);
      close(fd);
      return -1;
    }
  }
  close(fd);
  esb_error_set(err, ESB_E_BACKEND_UNAVAILABLE, "every uid of the policy's uid_range (%llu from %llu) is held "
                "by a live run: wait for one to end, or give local_sandbox.uid_range more",
                (unsigned long long)count, (unsigned long long)first);
  errno = ENOSPC;
  return -1;
}

int esb_uid_slot_end_processes(const struct esb_uid_slot *slot) {
  if (slot->fd < 0)
    return 0;
  int pidfd = -1;
  /* No exit signal: a host that reaps what it did not start (nginx with
   * the Lua module) never sees this child. */
  pid_t pid = esb_clone(CLONE_PIDFD, &pidfd, 0, -1, NULL);
  if (pid < 0)
    return -1;
  if (pid == 0) { /* the system calls alone: we may be one thread of many */
    if (syscall(SYS_setresuid, slot->uid, slot->uid, slot->uid) == 0)
      kill(-1, SIGKILL);
    _exit(0);
  }
  siginfo_t info;
  long rc;
  do rc = syscall(SYS_waitid, P_PIDFD, pidfd, &info, WEXITED | __WALL, NULL);
  while (rc < 0 && errno == EINTR);
  close(pidfd);
  return rc < 0 ? -1 : 0;
}

void esb_uid_slot_release(struct esb_uid_slot *slot) {
  if (slot->fd >= 0)
    close(slot->fd);
  slot->fd = -1;
  slot->uid = (uid_t)-1;
}
