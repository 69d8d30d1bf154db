/* Files out: the pattern grammar, and a walk of a real directory read back
 * as the engine reads it. */
#include "engine/contract/collect.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"

static void matches(const char *pattern, const char *path, bool want) {
  char what[256];
  snprintf(what, sizeof what, "'%s' %s '%s'", pattern, want ? "matches" : "does not match", path);
  ok(esb_glob_match(pattern, path) == want, what);
}

static void below(const char *pattern, const char *dir, bool want) {
  char what[256];
  snprintf(what, sizeof what, "below '%s', '%s' %s", dir, pattern, want ? "may match" : "cannot match");
  ok(esb_glob_may_match_below(pattern, dir) == want, what);
}

static void put(int dir, const char *path, const char *data, size_t len) {
  int fd = openat(dir, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, data, len) != (ssize_t)len)
    printf("# cannot write %s\n", path);
  close(fd);
}

static const struct esb_collected_file *find(const struct esb_collected *c, const char *path) {
  for (size_t i = 0; i < c->count; i++)
    if (strcmp(c->files[i].path, path) == 0)
      return &c->files[i];
  return NULL;
}

/* Walks dir with the patterns and ceilings into c. */
static int walk(int dir, const char *const *patterns, size_t n, uint64_t max_count, uint64_t max_file,
                uint64_t max_total, struct esb_collected *c) {
  struct esb_collect_spec spec = { .patterns = patterns, .n_patterns = n, .max_count = max_count,
                                   .max_file_bytes = max_file, .max_bytes = max_total };
  int out = memfd_create("collect", MFD_CLOEXEC);
  int rc = esb_collect_walk(dir, &spec, out) == 0 && esb_collect_read(out, &spec, c) == 0 ? 0 : -1;
  close(out);
  return rc;
}

int main(void) {
  matches("out.png", "out.png", true);
  matches("*.png", "out.png", true);
  matches("*.png", "sub/out.png", false);
  matches("*/*.png", "sub/out.png", true);
  matches("**/*.png", "out.png", true);
  matches("**/*.png", "a/b/c/out.png", true);
  matches("a/**", "a/b/c", true);
  matches("a/**", "a", false);
  matches("a/**/c", "a/c", true);
  matches("a/**/c", "a/x/y/c", true);
  matches("*", ".hidden", false);
  matches(".*", ".hidden", true);
  matches("**/*.txt", ".git/x.txt", false);
  matches("?.csv", "a.csv", true);
  matches("?.csv", "ab.csv", false);
  matches("[ab].csv", "b.csv", true);
  matches("[!ab].csv", "b.csv", false);
  matches("[a-c]*", "cat", true);
  matches("[a-c]*", "dog", false);
  matches("\\*", "*", true);
  matches("\\*", "x", false);
  matches("[", "[", true);
  matches("a*b*c", "aXbYbZc", true);
  matches("a*b*c", "aXbYbZ", false);
  below("out/*.csv", "", true);
  below("out/*.csv", "out", true);
  below("out/*.csv", "other", false);
  below("out/*.csv", "out/deeper", false);
  below("**/*.png", "a/b", true);
  below("**/*.png", ".cache", false);
  below("*.png", "sub", false);
  ok(esb_collect_pattern_ok("out/**/*.png"), "a relative pattern is one a request may give");
  ok(!esb_collect_pattern_ok("/etc/passwd"), "an absolute pattern is refused");
  ok(!esb_collect_pattern_ok("../x"), "a '..' segment is refused");
  ok(!esb_collect_pattern_ok("a//b"), "an empty segment is refused");
  ok(!esb_collect_pattern_ok(""), "the empty pattern is refused");

  char root[] = "/tmp/esb-collect-test.XXXXXX";
  if (!ok(mkdtemp(root) != NULL, "a directory to walk"))
    return tap_done();
  int dir = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  mkdirat(dir, "sub", 0755);
  mkdirat(dir, "sub/deep", 0755);
  static const char png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\xff\xfe";
  put(dir, "plot.png", png, sizeof png - 1);
  put(dir, "notes.txt", "not wanted", 10);
  put(dir, "sub/deep/table.png", "deep", 4);
  put(dir, "big.png", "0123456789", 10);
  put(dir, ".hidden.png", "hidden", 6);
  put(dir, "linked.png", "two links", 9);
  linkat(dir, "linked.png", dir, "sub/hardlink.png", 0);
  symlinkat("/etc/passwd", dir, "passwd.png");
  mkfifoat(dir, "fifo.png", 0644);

  const char *patterns[] = { "*.png", "**/*.png" };
  struct esb_collected c = { .wanted = true };
  ok(walk(dir, patterns, 2, 10, 1 << 20, 1 << 20, &c) == 0, "the walk and its frames read back");
  const struct esb_collected_file *f = find(&c, "plot.png");
  ok(f && f->len == sizeof png - 1 && memcmp(f->data, png, f->len) == 0 && !f->truncated,
     "a binary file comes back byte for byte");
  ok(find(&c, "sub/deep/table.png") != NULL, "a file two directories down comes back");
  ok(!find(&c, "notes.txt"), "a file no pattern matches does not");
  ok(!find(&c, ".hidden.png"), "a hidden file '*' does not name does not");
  ok(!find(&c, "passwd.png"), "a symlink is not followed");
  ok(!find(&c, "fifo.png"), "a fifo is not read");
  ok(!find(&c, "linked.png") && !find(&c, "sub/hardlink.png"), "a file with two links is not collected");
  is_int(c.count, 3, "three files in all");
  ok(c.count == 3 && strcmp(c.files[0].path, "big.png") == 0 && strcmp(c.files[2].path, "sub/deep/table.png") == 0,
     "sorted by path");
  ok(!c.incomplete, "nothing left out");

  ok(walk(dir, patterns, 2, 10, 4, 1 << 20, &c) == 0, "a walk under a small per-file ceiling");
  f = find(&c, "big.png");
  ok(f && f->len == 4 && f->size == 10 && f->truncated && memcmp(f->data, "0123", 4) == 0,
     "a file over the per-file ceiling is cut to it, its size told");
  ok(walk(dir, patterns, 2, 10, 1 << 20, 6, &c) == 0, "a walk under a small total ceiling");
  size_t total = 0;
  bool cut = false;
  for (size_t i = 0; i < c.count; i++) {
    total += c.files[i].len;
    cut |= c.files[i].truncated;
  }
  ok(total <= 6 && cut && c.count == 3, "the files together stay within the total ceiling, each listed");

  ok(walk(dir, patterns, 2, 1, 1 << 20, 1 << 20, &c) == 0, "a walk that may take one file");
  ok(c.count == 1 && c.incomplete, "one file, and the result says others were left out");

  /* Frames the walker never writes are refused. */
  int bogus = memfd_create("bogus", MFD_CLOEXEC);
  uint32_t junk[6] = { 0x454c4946, 4, 0, 0, 0xffffffffu, 0 };
  ssize_t w = write(bogus, junk, sizeof junk);
  (void)w;
  struct esb_collect_spec spec = { .patterns = patterns, .n_patterns = 2, .max_count = 10, .max_file_bytes = 100,
                                   .max_bytes = 100 };
  ok(esb_collect_read(bogus, &spec, &c) < 0 && errno == EPROTO && c.count == 0,
     "a frame longer than the ceilings is refused");
  close(bogus);
  esb_collected_release(&c);

  const char *rm[] = { "sub/deep/table.png", "sub/hardlink.png", "plot.png", "notes.txt", "big.png", ".hidden.png",
                       "linked.png", "passwd.png", "fifo.png" };
  for (size_t i = 0; i < sizeof rm / sizeof rm[0]; i++)
    unlinkat(dir, rm[i], 0);
  unlinkat(dir, "sub/deep", AT_REMOVEDIR);
  unlinkat(dir, "sub", AT_REMOVEDIR);
  close(dir);
  ok(rmdir(root) == 0, "nothing is left of the directory");
  return tap_done();
}
