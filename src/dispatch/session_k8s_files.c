/* The files of a k8s session: put, get and list as runs in its pod
 * (dispatch/session_k8s_files.h says how each goes). */
#include "dispatch/session_k8s_files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/k8s_session.h"
#include "backend/plan.h"
#include "dispatch/session_k8s.h"

/* A directory's entries, from its working dir, for esb_k8s_files_done:
 * "MODE SIZE\0NAME\0" each (`ls -ldn`'s first and fifth fields: a device's
 * fifth is "MAJOR,", read as size 0), but the runs' marks (the listing's
 * own among them). Exit 3: no such directory. Globbing
 * is off once the list is made: a name's characters are no pattern in
 * `set -- $l`. Only what a POSIX shell and ls have (BusyBox's alike). */
static const char list_script[] =
  "cd -- '%s' 2>/dev/null || exit 3\n"
  "for f in .* *; do\n"
  "  case $f in . | .. | " ESB_K8S_SESSION_RUN_MARK "*) continue ;; esac\n"
  "  [ -e \"$f\" ] || [ -L \"$f\" ] || continue\n"
  "  set -f\n"
  "  l=$(ls -ldn -- \"$f\" 2>/dev/null) || continue\n"
  "  set -- $l\n"
  "  printf '%%s %%s\\000%%s\\000' \"$1\" \"$5\" \"$f\"\n"
  "done\n";

/* dir in single quotes: each ' as '\'' (the path has no NUL, and
 * esb_file_path_ok bounds its length). */
static char *list_shell(const char *dir) {
  size_t quotes = 0;
  for (const char *p = dir; *p; p++)
    quotes += *p == '\'';
  char *quoted = malloc(strlen(dir) + 3 * quotes + 1), *q = quoted;
  if (!quoted)
    return NULL;
  for (const char *p = dir; *p; p++) {
    if (*p == '\'') {
      memcpy(q, "'\\''", 4);
      q += 4;
    } else {
      *q++ = *p;
    }
  }
  *q = '\0';
  char *script = NULL;
  if (asprintf(&script, list_script, quoted) < 0)
    script = NULL;
  free(quoted);
  return script;
}

static int bad_path(const char *what, const char *path, struct esb_error *err) {
  return esb_error_set(err, ESB_E_INVALID_REQUEST, "%s %.200s: a path relative to the session's working dir, "
                       "without empty, '.' or '..' parts, at most %d bytes", what, path, ESB_FILE_PATH_MAX);
}

static int out_of_memory(struct esb_error *err) { return esb_error_set(err, ESB_E_SYSTEM, "out of memory"); }

/* PUT: the file, copied, as the request's one file. */
static int put_request(const struct esb_file *f, struct esb_request *req, struct esb_error *err) {
  if (!esb_file_path_ok(f->path))
    return bad_path("file", f->path, err);
  if (!(req->files = calloc(1, sizeof *req->files)))
    return out_of_memory(err);
  req->nfiles = 1;
  struct esb_file *c = &req->files[0];
  c->mode = f->mode;
  c->len = f->len;
  if (!(c->path = strdup(f->path)) || !(c->data = malloc(f->len ? f->len : 1)))
    return out_of_memory(err);
  memcpy(c->data, f->data, f->len);
  return 0;
}

/* GET: the path as the one collect pattern; it must match the file alone. */
static int get_request(const char *path, struct esb_request *req, struct esb_error *err) {
  if (!path || !esb_file_path_ok(path))
    return bad_path("file", path ? path : "", err);
  if (strpbrk(path, "*?[\\"))
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "file %.200s: a k8s session's file is fetched by a pattern "
                         "that must match it alone: a path with *, ?, [ or \\ cannot be", path);
  if (!(req->collect = calloc(2, sizeof *req->collect)) || !(req->collect[0] = strdup(path)))
    return out_of_memory(err);
  req->ncollect = 1;
  return 0;
}

int esb_k8s_files_request(enum esb_k8s_files_op op, const char *path, const struct esb_file *f,
                          struct esb_request *req, struct esb_error *err) {
  req->kind = ESB_REQUEST_SHELL;
  if (op == ESB_K8S_FILES_PUT || op == ESB_K8S_FILES_GET) {
    if (!(req->shell = strdup(":")))
      return out_of_memory(err);
    return op == ESB_K8S_FILES_PUT ? put_request(f, req, err) : get_request(path, req, err);
  }
  if (path && !esb_file_path_ok(path))
    return bad_path("directory", path, err);
  if (!(req->shell = list_shell(path ? path : ".")))
    return out_of_memory(err);
  /* SHOW: and where the path is no directory, the file. */
  return op == ESB_K8S_FILES_SHOW && path ? get_request(path, req, err) : 0;
}

/* A mode's permission bits from `ls -l`'s ten characters ("drwxr-sr-t"). */
static unsigned mode_bits(const char *s) {
  static const unsigned special[3] = { 04000, 02000, 01000 };
  unsigned mode = 0;
  for (int who = 0; who < 3; who++) {
    const char *rwx = s + 1 + 3 * who;
    unsigned shift = 3u * (2u - (unsigned)who);
    mode |= (rwx[0] == 'r' ? 4u : 0u) << shift;
    mode |= (rwx[1] == 'w' ? 2u : 0u) << shift;
    if (rwx[2] == 'x' || rwx[2] == 's' || rwx[2] == 't')
      mode |= 1u << shift;
    if (rwx[2] == 's' || rwx[2] == 'S' || rwx[2] == 't' || rwx[2] == 'T')
      mode |= special[who];
  }
  return mode;
}

static char entry_type(char c) { return c == '-' ? 'f' : c == 'd' ? 'd' : c == 'l' ? 'l' : 'o'; }

/* The listing's records, each to fn; a record not of the script's shape is
 * the listing's failure (the shell or ls is not what it should be). */
static int read_listing(const struct esb_capture *out, const char *id,
                        void (*fn)(const struct esb_session_entry *e, void *arg), void *arg,
                        struct esb_error *err) {
  const char *p = out->data, *end = out->data + out->len;
  while (p < end) {
    const char *head_end = memchr(p, '\0', (size_t)(end - p));
    const char *name = head_end ? head_end + 1 : end;
    const char *name_end = name < end ? memchr(name, '\0', (size_t)(end - name)) : NULL;
    const char *space = head_end ? memchr(p, ' ', (size_t)(head_end - p)) : NULL;
    if (!name_end || !space || space - p < 10)
      return esb_error_set(err, ESB_E_BACKEND, "the listing in the pod of session %s is not one of ours: "
                           "its shell or ls wrote what the engine cannot read", id);
    char size[32] = "";
    size_t n = (size_t)(head_end - space - 1);
    memcpy(size, space + 1, n < sizeof size - 1 ? n : sizeof size - 1);
    char *size_end;
    unsigned long long bytes = strtoull(size, &size_end, 10);
    struct esb_session_entry e = { .name = name, .type = entry_type(p[0]), .mode = mode_bits(p),
                                   .size = *size && !*size_end ? bytes : 0 };
    fn(&e, arg);
    p = name_end + 1;
  }
  return 0;
}

/* GET: the one file collected, its bytes taken from the result. */
static int take_file(struct esb_result *r, const char *id, const char *path, char **data, size_t *len,
                     struct esb_error *err) {
  for (size_t i = 0; i < r->files.count; i++) {
    struct esb_collected_file *f = &r->files.files[i];
    if (strcmp(f->path, path) != 0)
      continue;
    if (f->truncated)
      return esb_error_set(err, ESB_E_INVALID_REQUEST, "file %.200s of session %s is %llu bytes, more than the "
                           "%zu the policy collects of one file", path, id, (unsigned long long)f->size, f->len);
    *data = f->data ? f->data : malloc(1);
    *len = f->len;
    f->data = NULL;
    return *data ? 0 : out_of_memory(err);
  }
  return esb_error_set(err, ESB_E_INVALID_REQUEST, "file %.200s: no such regular file in session %s's working dir "
                       "(a directory, a link, or a file with more than one link is not fetched)", path, id);
}

int esb_k8s_files_done(enum esb_k8s_files_op op, const char *id, const char *path, struct esb_result *r,
                       char **data, size_t *len, void (*fn)(const struct esb_session_entry *e, void *arg),
                       void *arg, struct esb_error *err) {
  if (r->status == ESB_STATUS_ERROR)
    return esb_error_set(err, r->error, "%s", r->error_message ? r->error_message : esb_strerror(r->error));
  bool no_dir = r->status == ESB_STATUS_EXITED && r->exit_code == 3;
  if (op == ESB_K8S_FILES_SHOW && no_dir && path)
    return take_file(r, id, path, data, len, err);
  if (op == ESB_K8S_FILES_LIST && no_dir)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "directory %.200s: no such directory in session %s's "
                         "working dir", path ? path : ".", id);
  if (r->status != ESB_STATUS_EXITED || r->exit_code != 0)
    return esb_error_set(err, ESB_E_BACKEND, "the %s in the pod of session %s did not end well (%s %d): %.200s",
                         op == ESB_K8S_FILES_PUT ? "put" : op == ESB_K8S_FILES_GET ? "get" : "listing", id,
                         esb_status_name(r->status), r->exit_code, r->err.data ? r->err.data : "");
  if (op == ESB_K8S_FILES_PUT)
    return 0;
  if (op == ESB_K8S_FILES_GET)
    return take_file(r, id, path, data, len, err);
  if (r->out.total > r->out.len)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "directory %.200s of session %s has more entries than a "
                         "listing holds (%zu bytes, the policy's output cap)", path ? path : ".", id, r->out.cap);
  return read_listing(&r->out, id, fn, arg, err);
}

/* Plans op's request by policy, runs it in session id and reads it. */
static int run_op(struct esb_policy *policy, const char *id, enum esb_k8s_files_op op, const char *path,
                  const struct esb_file *f, char **data, size_t *len,
                  void (*fn)(const struct esb_session_entry *e, void *arg), void *arg, struct esb_error *err) {
  struct esb_request req = ESB_REQUEST_INIT;
  struct esb_plan plan = ESB_PLAN_INIT;
  int rc = -1;
  if (esb_k8s_files_request(op, path, f, &req, err) == 0 && esb_k8s_session_plan_run(policy, &req, &plan, err) == 0) {
    struct esb_result r = ESB_RESULT_INIT;
    esb_k8s_session_run(id, &plan, &r, -1, NULL);
    rc = esb_k8s_files_done(op, id, path, &r, data, len, fn, arg, err);
    esb_result_release(&r);
  }
  esb_plan_release(&plan);
  esb_request_release(&req);
  return rc;
}

int esb_k8s_session_put(struct esb_policy *policy, const char *id, const struct esb_file *f, struct esb_error *err) {
  return run_op(policy, id, ESB_K8S_FILES_PUT, f->path, f, NULL, NULL, NULL, NULL, err);
}

int esb_k8s_session_get(struct esb_policy *policy, const char *id, const char *path, char **data, size_t *len,
                        struct esb_error *err) {
  return run_op(policy, id, ESB_K8S_FILES_GET, path, NULL, data, len, NULL, NULL, err);
}

int esb_k8s_session_files(struct esb_policy *policy, const char *id, const char *path,
                          void (*fn)(const struct esb_session_entry *e, void *arg), void *arg,
                          struct esb_error *err) {
  return run_op(policy, id, ESB_K8S_FILES_LIST, path, NULL, NULL, NULL, fn, arg, err);
}
