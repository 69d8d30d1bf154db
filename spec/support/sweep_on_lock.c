/* Preloaded into an engine by spec/cgroup_spec.lua: the first time the
 * engine takes the lock of a run cgroup it made (echo-sandbox-PID-N's tasks
 * or cgroup.procs, engine/cgroup.c), the cgroup is removed just before, as
 * a sweep by an engine in another pid namespace may do between the mkdir
 * and the lock. Nothing else is changed. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static int swept;

/* Whether path is a run cgroup's join file: .../echo-sandbox-PID-N/FILE. */
static int run_join_file(char *path, char **slash) {
  *slash = strrchr(path, '/');
  if (!*slash || (strcmp(*slash, "/tasks") && strcmp(*slash, "/cgroup.procs")))
    return 0;
  **slash = 0;
  const char *base = strrchr(path, '/');
  long pid;
  unsigned long n;
  char tail;
  int is = base && sscanf(base + 1, "echo-sandbox-%ld-%lu%c", &pid, &n, &tail) == 2;
  **slash = '/';
  return is;
}

int flock(int fd, int operation) {
  static int (*real)(int, int);
  if (!real)
    real = (int (*)(int, int))dlsym(RTLD_NEXT, "flock");
  char link[64], path[PATH_MAX], *slash;
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (!swept && operation == LOCK_EX && n > 0) {
    path[n] = 0;
    if (run_join_file(path, &slash)) {
      *slash = 0;
      swept = rmdir(path) == 0;
      if (swept)
        fprintf(stderr, "sweep_on_lock: removed %s\n", path);
    }
  }
  return real(fd, operation);
}
