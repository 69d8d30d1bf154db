/* Preloaded into an engine by spec/hostile_spec.lua: makes the race a
 * program would run against the removal of its host working dir certain.
 * The first time the engine removes, by path, a file under a directory
 * `real` whose neighbour `link` is a symlink, `real` is swapped for that
 * symlink just before: the removal then goes through the symlink, as it
 * would if the program's own process had swapped the two at that moment.
 * The engine's own removal goes by path only where it runs as the program's
 * uid, in a child without this library; then nothing here is called. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int swapped;

/* Said once, so that the spec knows the library is in the engine (a static
 * program takes none). */
__attribute__((constructor)) static void loaded(void) {
  fprintf(stderr, "swap_on_remove: loaded\n");
}

/* dir/real/NAME -> swaps dir/real for dir/link; 1 when it did. */
static int swap(const char *path) {
  const char *at = strstr(path, "/real/");
  if (!at || at - path > PATH_MAX - 16)
    return 0;
  char real[PATH_MAX], link[PATH_MAX], aside[PATH_MAX];
  int dir = (int)(at - path);
  snprintf(real, sizeof real, "%.*s/real", dir, path);
  snprintf(link, sizeof link, "%.*s/link", dir, path);
  snprintf(aside, sizeof aside, "%.*s/aside", dir, path);
  struct stat st;
  if (lstat(link, &st) < 0 || !S_ISLNK(st.st_mode))
    return 0;
  return rename(real, aside) == 0 && rename(link, real) == 0;
}

int remove(const char *path) {
  static int (*real_remove)(const char *);
  if (!real_remove)
    real_remove = (int (*)(const char *))dlsym(RTLD_NEXT, "remove");
  if (!swapped && swap(path)) {
    swapped = 1;
    fprintf(stderr, "swap_on_remove: swapped before removing %s\n", path);
  }
  return real_remove(path);
}
