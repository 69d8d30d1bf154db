#include "backend/local_session_files.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/fileio.h"

int esb_session_files_base(const char *base, struct esb_error *err) {
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s", base) >= sizeof path)
    return esb_error_set(err, ESB_E_SYSTEM, "the session directory's path is too long: %s", base);
  for (char *slash = strchr(path + 1, '/');; slash = strchr(slash + 1, '/')) {
    if (slash)
      *slash = '\0';
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
      return esb_error_errno(err, ESB_E_SYSTEM, "making %s", path);
    if (!slash)
      break;
    *slash = '/';
  }
  struct stat st;
  if (lstat(base, &st) < 0)
    return esb_error_errno(err, ESB_E_SYSTEM, "%s", base);
  /* Only our uid may reach the sockets below: the socket's permission is
   * the directory's. */
  if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
    return esb_error_set(err, ESB_E_SYSTEM, "%s must be a directory of uid %u that no one else may enter",
                         base, (unsigned)geteuid());
  return 0;
}

bool esb_session_id_valid(const char *id) {
  size_t n = 0;
  for (; id[n]; n++)
    if (!isxdigit((unsigned char)id[n]) || isupper((unsigned char)id[n]))
      return false;
  return n == 32;
}

int esb_session_record_write(const char *dir, const struct esb_session_record *rec, struct esb_error *err) {
  char path[4200];
  snprintf(path, sizeof path, "%s/info", dir);
  FILE *f = fopen(path, "wx");
  if (!f)
    return esb_error_errno(err, ESB_E_SYSTEM, "writing %s", path);
  fprintf(f, "pid %d\nstart %llu\ncreated_ms %llu\nttl_ms %llu\nidle_timeout_ms %llu\ninner_ids %u %u\n"
          "address_space %llu\n", (int)rec->pid, (unsigned long long)rec->start,
          (unsigned long long)rec->created_ms, (unsigned long long)rec->ttl_ms,
          (unsigned long long)rec->idle_timeout_ms, (unsigned)rec->inner_uid, (unsigned)rec->inner_gid,
          (unsigned long long)rec->address_space);
  fprintf(f, "cgroup_version %d\n", (int)rec->cgroup_version);
  for (int i = 0; i < ESB_CGROUP__COUNT; i++)
    if (rec->cgroups[i])
      fprintf(f, "cgroup %d %s\n", i, rec->cgroups[i]);
  for (size_t i = 0; i < rec->n_labels; i++)
    fprintf(f, "label %s\n", rec->labels[i]);
  if (fclose(f) != 0)
    return esb_error_errno(err, ESB_E_SYSTEM, "writing %s", path);
  return 0;
}

static void read_line(struct esb_session_record *rec, char *line) {
  char *value = strchr(line, ' ');
  if (!value)
    return;
  *value++ = '\0';
  unsigned long long v = strtoull(value, NULL, 10);
  if (strcmp(line, "pid") == 0) rec->pid = (pid_t)v;
  else if (strcmp(line, "start") == 0) rec->start = v;
  else if (strcmp(line, "created_ms") == 0) rec->created_ms = v;
  else if (strcmp(line, "ttl_ms") == 0) rec->ttl_ms = v;
  else if (strcmp(line, "idle_timeout_ms") == 0) rec->idle_timeout_ms = v;
  else if (strcmp(line, "address_space") == 0) rec->address_space = v;
  else if (strcmp(line, "cgroup_version") == 0) rec->cgroup_version = (enum esb_cgroup_version)v;
  else if (strcmp(line, "inner_ids") == 0) {
    unsigned u, g;
    if (sscanf(value, "%u %u", &u, &g) == 2) {
      rec->inner_uid = u;
      rec->inner_gid = g;
    }
  } else if (strcmp(line, "cgroup") == 0 && v < ESB_CGROUP__COUNT && strchr(value, ' ')) {
    rec->cgroups[v] = strchr(value, ' ') + 1;
  } else if (strcmp(line, "label") == 0 && rec->n_labels < ESB_SESSION_RECORD_LABELS) {
    rec->labels[rec->n_labels++] = value;
  }
}

int esb_session_record_read(const char *dir, struct esb_session_record *rec) {
  char path[4200];
  size_t len;
  snprintf(path, sizeof path, "%s/info", dir);
  *rec = (struct esb_session_record){ 0 };
  if (!(rec->owned = esb_read_file(path, &len)))
    return -1;
  for (char *line = rec->owned, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next)
      *next++ = '\0';
    read_line(rec, line);
  }
  return rec->pid > 0 ? 0 : (errno = EPROTO, -1);
}

void esb_session_record_release(struct esb_session_record *rec) {
  free(rec->owned);
  *rec = (struct esb_session_record){ 0 };
}

void esb_session_state_read(const char *dir, enum esb_session_end *end, uint64_t *runs) {
  char path[4200], word[32];
  size_t len;
  snprintf(path, sizeof path, "%s/state", dir);
  char *text = esb_read_file(path, &len);
  unsigned long long n = 0;
  /* No word (yet): alive for as long as the holder is (the caller asks). */
  *end = ESB_SESSION_ALIVE;
  if (text && sscanf(text, "%31s %llu", word, &n) == 2 && esb_session_end_parse(word, end) < 0)
    *end = ESB_SESSION_ALIVE;
  *runs = n;
  free(text);
}

/* Field 3 (the state) and field 22 (the start time) of /proc/PID/stat,
 * read after the command's closing parenthesis (a command may hold any). */
static uint64_t proc_stat(pid_t pid, char *state) {
  char path[64];
  size_t len;
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  char *text = esb_read_file(path, &len);
  char *p = text ? strrchr(text, ')') : NULL;
  unsigned long long start = 0;
  if (p && sscanf(p + 2, "%c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu",
                  state, &start) != 2)
    start = 0;
  free(text);
  return start;
}

uint64_t esb_session_proc_start(pid_t pid) {
  char state;
  return proc_stat(pid, &state);
}

bool esb_session_holder_alive(pid_t pid, uint64_t start) {
  char state = 0;
  return pid > 0 && start && proc_stat(pid, &state) == start && state != 'Z' && state != 'X';
}

void esb_session_files_remove(const char *dir) {
  static const char *const names[] = { "control", "state", "info" };
  char path[4200];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    unlink(path);
  }
  rmdir(dir);
}

bool esb_session_cgroup_view(const struct esb_session_record *rec, struct esb_cgroup *cg) {
  *cg = (struct esb_cgroup)ESB_CGROUP_INIT;
  if (!rec->cgroups[ESB_CGROUP_MEMORY] || rec->cgroup_version == ESB_CGROUP_NONE)
    return false;
  cg->version = rec->cgroup_version;
  cg->dirs[ESB_CGROUP_MEMORY] = (char *)rec->cgroups[ESB_CGROUP_MEMORY];
  return true;
}

void esb_session_cgroup_forget(struct esb_cgroup *cg) {
  for (int i = 0; i < ESB_CGROUP__COUNT; i++) {
    free(cg->dirs[i]);
    if (cg->procs[i] >= 0)
      close(cg->procs[i]);
    if (cg->slot_fds[i] >= 0)
      close(cg->slot_fds[i]);
  }
  if (cg->dir_fd >= 0)
    close(cg->dir_fd);
  if (cg->peak_fd >= 0)
    close(cg->peak_fd);
  *cg = (struct esb_cgroup)ESB_CGROUP_INIT;
}
