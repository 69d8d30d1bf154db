/* The sandbox root's pure parts (src/engine/sandbox/rootfs.c, src/engine/contract/request.c):
 * the path checks a policy's mounts, a working dir and a request's files go
 * through, with hostile names, and the plan of steps the child applies.
 *
 * Checked: without the ".." test in esb_rootfs_path_ok (and in
 * esb_file_path_ok), the ".." cases fail; without the trailing '/' test of
 * esb_file_path_ok, "a/" passes and fails here; with check_workdir's
 * generated list emptied, the /proc, /dev and /etc cases fail; without the
 * /proc and /sys refusal in add_mount, the plan builds a bind of the
 * host's /proc and the refusal cases fail; with add_mount not refusing a
 * path that is not one place, "//proc" is bound from the host's /proc. */
#include "engine/sandbox/rootfs.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/contract/request.h"
#include "engine/sandbox/spawn.h"
#include "tap.h"

/* A path of n bytes: "/" then n - 1 'a's split into components of 100. */
static char *long_path(size_t n, char first) {
  char *p = malloc(n + 1);
  for (size_t i = 0; i < n; i++)
    p[i] = i % 101 == 0 ? '/' : 'a';
  p[0] = first;
  p[n] = '\0';
  return p;
}

/* check(path) is want for each of paths. */
static void each(bool (*check)(const char *), const char *const *paths, bool want, const char *what) {
  for (size_t i = 0; paths[i]; i++) {
    char line[160];
    snprintf(line, sizeof line, "%s: \"%s\"", what, paths[i]);
    ok(check(paths[i]) == want, line);
  }
}

static void rootfs_path_ok(void) {
  static const char *const good[] = {"/a", "/usr/lib", "/a/...", "/a/..b", "/..a", "/a/.b", "/proc", "/etc/passwd",
                                     "/\xff\xfe", "/a b/c\td", "/a\\..", NULL};
  static const char *const bad[] = {"", "/", "a", "./a", "../a", "a/b", "/a/", "/a//b", "//a", "/.", "/..",
                                    "/a/.", "/a/..", "/a/../b", "/a/./b", "/../etc", "/a/b/", "//", NULL};
  each(esb_rootfs_path_ok, good, true, "an absolute path that names one place");
  each(esb_rootfs_path_ok, bad, false, "refused");
  char *p = long_path(1023, '/');
  ok(esb_rootfs_path_ok(p), "1023 bytes is a path");
  free(p);
  p = long_path(1024, '/');
  ok(!esb_rootfs_path_ok(p), "1024 bytes is too long");
  free(p);
  /* A NUL ends the C string: "/a\0/.." is "/a" (the readers refuse a
   * string with a NUL before it gets here, luaglue/tables.h). */
  ok(esb_rootfs_path_ok("/a\0/.."), "what follows a NUL is not looked at");
}

static void file_path_ok(void) {
  static const char *const good[] = {"a", "a/b", "a/b/c.txt", "...", "..a", "a..", ".hidden", "a/.b",
                                     "\xff\xfe", "sp ace/\ttab", "a\\..\\b", "proc", "dev/null", NULL};
  static const char *const bad[] = {"", "/", "/a", "/etc/passwd", ".", "..", "./a", "../a", "a/..", "a/.",
                                    "a/../b", "a/./b", "a//b", "a/", "a/b/", "//", "../../../../etc/shadow",
                                    NULL};
  each(esb_file_path_ok, good, true, "a relative path that stays below");
  each(esb_file_path_ok, bad, false, "refused");
  char *p = long_path(ESB_FILE_PATH_MAX, 'a');
  ok(esb_file_path_ok(p), "ESB_FILE_PATH_MAX bytes is a path");
  free(p);
  p = long_path(ESB_FILE_PATH_MAX + 1, 'a');
  ok(!esb_file_path_ok(p), "one more byte is too long");
  free(p);
  char name[300];
  memset(name, 'n', sizeof name);
  name[255] = '\0';
  ok(esb_file_path_ok(name), "a component of 255 bytes");
  name[255] = 'n';
  name[256] = '\0';
  ok(!esb_file_path_ok(name), "a component of 256 bytes is too long");
}

/* The reason check_workdir gives for workdir with mounts at /usr and
 * /opt/tools; "" when it takes it. */
static const char *workdir_why(const char *workdir) {
  static const struct esb_mount mounts[] = {{"/usr", "/usr", false}, {"/srv/tools", "/opt/tools", true}};
  static struct esb_error err;
  err = (struct esb_error)ESB_ERROR_INIT;
  int rc = esb_rootfs_check_workdir(mounts, 2, workdir, &err);
  if ((rc == 0) != (err.code == ESB_OK) || (rc < 0 && err.code != ESB_E_INVALID_REQUEST))
    return "(a return that does not match its reason)";
  return err.message;
}

static void check_workdir(void) {
  is_str(workdir_why("/work"), "", "/work is a working dir");
  is_str(workdir_why("/home/sandbox/w"), "", "a deep path is one");
  is_str(workdir_why("/procfs"), "", "a name that only starts like /proc is one");
  is_str(workdir_why("/usrlocal"), "", "a name that only starts like a mount is one");
  is_str(workdir_why("/opt"), "", "above a mount is one (its tmpfs comes after the bind)");
  is_str(workdir_why("/proc"), "working_dir /proc: /proc belongs to the sandbox", "/proc is refused, and named");
  is_str(workdir_why("/proc/self/cwd"), "working_dir /proc/self/cwd: /proc belongs to the sandbox",
         "below /proc too");
  is_str(workdir_why("/dev/shm"), "working_dir /dev/shm: /dev belongs to the sandbox", "below /dev");
  is_str(workdir_why("/etc"), "working_dir /etc: /etc belongs to the sandbox", "/etc");
  is_str(workdir_why("/usr"), "working_dir /usr: /usr is a mount of the policy", "a mount of the policy");
  is_str(workdir_why("/usr/local/src"), "working_dir /usr/local/src: /usr is a mount of the policy",
         "below a mount of the policy");
  is_str(workdir_why("/opt/tools/x"), "working_dir /opt/tools/x: /opt/tools is a mount of the policy",
         "below a mount's sandbox path, not its host path");
  is_str(workdir_why("/srv/tools"), "", "a mount's host path is no concern inside");
  static const char *const bad[] = {"work", "/", "/work/", "/work/../proc", "/./proc", "//proc", "/work//x", "",
                                    NULL};
  for (size_t i = 0; bad[i]; i++) {
    char want[256], what[128];
    snprintf(want, sizeof want, "working_dir %s: expected an absolute path inside the sandbox, without '.' or '..'",
             bad[i]);
    snprintf(what, sizeof what, "\"%s\" is refused as no path", bad[i]);
    is_str(workdir_why(bad[i]), want, what);
  }
}

/* ---- the plan ---- */

static const struct esb_rootfs_step *find(const struct esb_rootfs *fs, const char *dest, int kind) {
  for (size_t i = 0; i < fs->count; i++)
    if (!strcmp(fs->steps[i].dest, dest) && (kind < 0 || (int)fs->steps[i].kind == kind))
      return &fs->steps[i];
  return NULL;
}

static size_t index_of(const struct esb_rootfs *fs, const struct esb_rootfs_step *s) {
  return s ? (size_t)(s - fs->steps) : (size_t)-1;
}

static struct esb_sandbox sandbox(const struct esb_mount *mounts, size_t n, const char *workdir) {
  return (struct esb_sandbox){ .namespaces = ESB_NS_USER | ESB_NS_MOUNT | ESB_NS_PID, .inner_uid = 1000,
                               .inner_gid = 1001, .mounts = mounts, .n_mounts = n, .workdir = workdir,
                               .workdir_size_bytes = 1 << 20, .tmp_size_bytes = 2 << 20 };
}

/* The reason esb_rootfs_plan gives for sb ("" when it plans), checking that
 * a failed plan holds nothing. */
static const char *plan_why(const struct esb_sandbox *sb) {
  static struct esb_error err;
  struct esb_rootfs fs;
  err = (struct esb_error)ESB_ERROR_INIT;
  if (esb_rootfs_plan(sb, &fs, &err) == 0) {
    esb_rootfs_release(&fs);
    return err.code != ESB_OK ? "(a plan made, with a reason)" : "";
  }
  return fs.steps == NULL && fs.count == 0 ? err.message : "(a failed plan that holds steps)";
}

static void plan(const char *dir) {
  char host_dir[256], host_file[256], host_link[256], host_none[256];
  snprintf(host_dir, sizeof host_dir, "%s/tools", dir);
  snprintf(host_file, sizeof host_file, "%s/tools/conf", dir);
  snprintf(host_link, sizeof host_link, "%s/link", dir);
  snprintf(host_none, sizeof host_none, "%s/none", dir);
  if (mkdir(host_dir, 0755) < 0 || close(creat(host_file, 0644)) < 0 || symlink("tools/../../etc", host_link) < 0)
    abort();
  const struct esb_mount mounts[] = {{host_dir, "/opt/tools", false}, {host_file, "/etc/tool.conf", true},
                                     {host_link, "/lnk", false}, {host_none, "/none", false}};
  struct esb_file files[] = {{"a/b/c.txt", "hello", 5, 0755}, {"top", "", 0, 01777}};
  struct esb_sandbox sb = sandbox(mounts, 4, "/home/w");
  sb.files = files;
  sb.n_files = 2;
  struct esb_rootfs fs;
  struct esb_error err = ESB_ERROR_INIT;
  ok(esb_rootfs_plan(&sb, &fs, &err) == 0 && err.code == ESB_OK, "a plan is made");
  ok(fs.count > 0 && fs.steps[0].kind == ESB_ROOTFS_DIR && !strcmp(fs.steps[0].dest, "/proc"),
     "the first step makes /proc, the overlays' empty layer");

  char source[512];
  snprintf(source, sizeof source, "%s%s", ESB_ROOTFS_OLDROOT, host_dir);
  const struct esb_rootfs_step *bind = find(&fs, "/opt/tools", ESB_ROOTFS_BIND);
  ok(bind && !strcmp(bind->source, source) && !bind->writable && bind->per_run,
     "a read-only directory is bound from under the old root, each run's own");
  ok(find(&fs, "/opt", ESB_ROOTFS_DIR) && index_of(&fs, find(&fs, "/opt", ESB_ROOTFS_DIR)) < index_of(&fs, bind),
     "the directories above a mount are made before it");
  const struct esb_rootfs_step *overlay = NULL;
  for (size_t i = 0; i < fs.count; i++)
    if (fs.steps[i].kind == ESB_ROOTFS_OVERLAY)
      overlay = &fs.steps[i];
  snprintf(source, sizeof source, "%s%s", ESB_ROOTFS_OLDROOT, dir);
  ok(overlay && !strcmp(overlay->source, source) && !strcmp(overlay->data, "/proc") && overlay->per_run,
     "the read-only bind goes through an overlay of its host directory");
  bind = find(&fs, "/etc/tool.conf", ESB_ROOTFS_BIND);
  ok(bind && bind->writable && find(&fs, "/etc/tool.conf", ESB_ROOTFS_FILE), "a writable file: its mount point, bound");
  const struct esb_rootfs_step *link = find(&fs, "/lnk", -1);
  ok(link && link->kind == ESB_ROOTFS_SYMLINK && !strcmp(link->data, "tools/../../etc"),
     "a host symlink becomes the same symlink, never followed on the host");
  ok(!find(&fs, "/none", -1), "a host path that is not there is left out");
  const struct esb_rootfs_step *passwd = find(&fs, "/etc/passwd", ESB_ROOTFS_FILE);
  ok(passwd && strstr(passwd->data, "sandbox:x:1000:1001:sandbox:/home/w:/bin/sh\n"),
     "/etc/passwd names the program's ids and working dir");
  ok(find(&fs, "/dev", ESB_ROOTFS_TMPFS) && find(&fs, "/dev/null", ESB_ROOTFS_BIND) &&
     find(&fs, "/dev/pts", ESB_ROOTFS_DEVPTS) && find(&fs, "/dev/ptmx", ESB_ROOTFS_SYMLINK),
     "a fresh /dev with the host's null, a devpts and ptmx");
  ok(find(&fs, "/proc", ESB_ROOTFS_PROC) && find(&fs, "/proc", ESB_ROOTFS_PROC)->per_run, "the sandbox's own /proc");
  ok(!find(&fs, "/sys", -1), "no /sys");
  const struct esb_rootfs_step *tmp = find(&fs, "/tmp", ESB_ROOTFS_TMPFS);
  ok(tmp && !strcmp(tmp->data, "mode=1777,size=2097152,nr_inodes=1024") && tmp->per_run,
     "/tmp, a tmpfs of its size, with the least inode bound");
  const struct esb_rootfs_step *work = find(&fs, "/home/w", ESB_ROOTFS_TMPFS);
  ok(work && !strcmp(work->data, "mode=0755,uid=1000,gid=1001,size=1048576,nr_inodes=1024") && work->per_run,
     "the working dir, a tmpfs the program owns");
  is_int(esb_rootfs_tmpfs_inodes(64u << 20), 16384, "a tmpfs's inodes: one per 4 KiB of its size");
  is_int(esb_rootfs_tmpfs_inodes(0), 1024, "and 1024 at least");
  const struct esb_rootfs_step *a = find(&fs, "/home/w/a", ESB_ROOTFS_OWN_DIR);
  const struct esb_rootfs_step *c = find(&fs, "/home/w/a/b/c.txt", ESB_ROOTFS_DATA);
  ok(a && a->uid == 1000 && a->gid == 1001 && a->per_run && index_of(&fs, a) > index_of(&fs, work),
     "a request file's directories: the program's, made in its working dir");
  ok(c && c->len == 5 && !memcmp(c->data, "hello", 5) && c->mode == 0755 && c->uid == 1000 && c->per_run,
     "a request file: its bytes, mode and owner");
  const struct esb_rootfs_step *top = find(&fs, "/home/w/top", ESB_ROOTFS_DATA);
  ok(top && top->len == 0 && top->mode == 0777, "an empty file; the mode is permission bits only");
  bool template_ok = true;
  for (size_t i = 0; i < fs.count; i++)
    if (!strncmp(fs.steps[i].dest, "/home/w/", 8) && !fs.steps[i].per_run)
      template_ok = false;
  ok(template_ok, "nothing below the working dir goes into a template");
  esb_rootfs_release(&fs);
  ok(fs.steps == NULL && fs.count == 0, "released");

  /* The refusals, each naming what is wrong, with nothing held. */
  sb = sandbox(NULL, 0, NULL);
  is_str(plan_why(&sb), "the working dir (none) is not an absolute path", "no working dir");
  sb.workdir = "work";
  is_str(plan_why(&sb), "the working dir work is not an absolute path", "a relative working dir");
  sb.workdir = "/work/../proc";
  is_str(plan_why(&sb), "the working dir /work/../proc has an empty, '.' or '..' component, or is too long",
         "a working dir through '..'");
  static const char *const hostile[] = {"/proc", "/proc/1/root", "/sys", "/sys/fs/cgroup", NULL};
  for (size_t i = 0; hostile[i]; i++) {
    struct esb_mount m = {hostile[i], "/x", false};
    sb = sandbox(&m, 1, "/work");
    char want[256], what[128];
    snprintf(want, sizeof want, "mount %s: the host's /proc and /sys are no part of a sandbox", hostile[i]);
    snprintf(what, sizeof what, "the host's %s is refused", hostile[i]);
    is_str(plan_why(&sb), want, what);
  }
  static const char *const sneaky[] = {"//proc", "/./proc", "/tmp/../proc", "/sys/", "proc", "", NULL};
  for (size_t i = 0; sneaky[i]; i++) {
    struct esb_mount m = {sneaky[i], "/x", false};
    sb = sandbox(&m, 1, "/work");
    char want[256], what[128];
    snprintf(want, sizeof want, "mount %s: the host path is not absolute, or has an empty, '.' or '..' component",
             sneaky[i]);
    snprintf(what, sizeof what, "a host path that is not one place is refused: \"%s\"", sneaky[i]);
    is_str(plan_why(&sb), want, what);
  }
  struct esb_mount inside = {"/usr", "/usr/../proc", false};
  sb = sandbox(&inside, 1, "/work");
  is_str(plan_why(&sb), "mount /usr: its path inside, /usr/../proc, is not absolute, or has an empty, '.' or '..' "
         "component", "a sandbox path that is not one place is refused");
  /* (In path order, "a" then "a/b", the request reader refuses it first:
   * codec/convert.c.) */
  struct esb_file clash[] = {{"a/b", "y", 1, 0644}, {"a", "x", 1, 0644}};
  sb = sandbox(NULL, 0, "/work");
  sb.files = clash;
  sb.n_files = 2;
  is_str(plan_why(&sb), "planning the request's files: File exists", "a file that is another's directory");
  char *deep = long_path(4100, '/');
  sb = sandbox(NULL, 0, deep);
  const char *why_long = plan_why(&sb);
  ok(!strncmp(why_long, "the working dir /aaaa", 21) && strlen(why_long) < 300, "an overlong working dir, cut short");
  free(deep);
}

int main(void) {
  rootfs_path_ok();
  file_path_ok();
  check_workdir();
  char dir[] = "/tmp/esb-rootfs-test-XXXXXX";
  if (!mkdtemp(dir))
    abort();
  plan(dir);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    printf("# could not remove %s\n", dir);
  return tap_done();
}
