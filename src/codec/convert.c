#include "codec/convert.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "engine/contract/collect.h"
#include "engine/contract/limits.h"
#include "engine/runtime/cpu.h"
#include "engine/strv.h"
#include "engine/text.h"
#include "luaglue/fields.h"
#include "luaglue/tables.h"

/* limits.cpu: cores as a number (0.5) or a Kubernetes quantity ("500m",
 * "2"), as millicores. */
static void read_cpu(struct esb_fields *f, int t, const char *key, uint64_t *millicores) {
  if (!esb_fields_push(f, t, key))
    return;                                    /* limits.cpu */
  int rc = -1;
  if (lua_type(f->L, -1) == LUA_TNUMBER)
    rc = esb_cpu_from_cores((double)lua_tonumber(f->L, -1), millicores);
  else if (lua_type(f->L, -1) == LUA_TSTRING)
    rc = esb_cpu_parse(lua_tostring(f->L, -1), millicores);
  if (rc < 0)
    esb_fields_bad_value(f, -1, key, "a positive number of cores (0.5) or a quantity like \"500m\" or \"2\"");
  lua_pop(f->L, 1);                            /* -- */
}

/* limits.network as an object: {"allow": [entries]}, the hosts the
 * program may reach through the egress proxy (engine/contract/egress.h).
 * Whether it was one (then read, or failed). */
static bool read_network_allow(struct esb_fields *f, int t, struct esb_request *req) {
  static const char *const known[] = {"allow", NULL};
  if (!esb_fields_push(f, t, "network"))
    return false;
  int type = lua_type(f->L, -1);
  lua_pop(f->L, 1);
  if (type == LUA_TBOOLEAN)
    return false;
  if (type != LUA_TTABLE) {
    esb_fields_bad(f, t, "network", "true, false or {\"allow\": [host names]}");
    return true;
  }
  if (!esb_fields_enter(f, t, "network"))
    return true;                               /* limits.network */
  esb_fields_only(f, -1, known);
  req->egress_allow = esb_fields_egress_list(f, -1, "allow", &req->negress_allow);
  if (!req->egress_allow && !f->failed)
    esb_fields_bad(f, -1, "allow", "an array of host names");
  esb_fields_leave(f);                         /* -- */
  return true;
}

/* limits: each as its row of engine/contract/limits.def says; network may
 * also be an allow list. */
static void read_limits(struct esb_fields *f, int t, struct esb_request *req) {
  struct esb_limits *l = &req->limits;
  static const char *const known[] = {
#define ESB_LIMIT(id, kind, key, ...) key,
#include "engine/contract/limits.def"
#undef ESB_LIMIT
    NULL};
  if (!esb_fields_enter(f, t, "limits"))
    return;                                    /* limits */
  esb_fields_only(f, -1, known);
  for (size_t i = 0; i < ESB_LIMIT__COUNT; i++) {
    const struct esb_limit_field *d = &esb_limit_fields[i];
    void *member = (char *)l + d->request_offset;
    bool on;
    switch (d->kind) {
    case ESB_LIMIT_IS_UINT: esb_fields_uint(f, -1, d->key, d->minimum, member); break;
    case ESB_LIMIT_IS_CPU: read_cpu(f, -1, d->key, member); break;
    case ESB_LIMIT_IS_BOOL:
      if (i == ESB_LIMIT_NETWORK && read_network_allow(f, -1, req))
        break;
      if (esb_fields_bool(f, -1, d->key, &on))
        *(int *)member = on;
      break;
    }
  }
  esb_fields_leave(f);                         /* -- */
}

/* stdin: any bytes, NUL included. */
static void read_stdin(struct esb_fields *f, int t, struct esb_request *req) {
  if (!esb_fields_push(f, t, "stdin"))
    return;                                    /* stdin */
  size_t len;
  if (lua_type(f->L, -1) != LUA_TSTRING) {
    esb_fields_bad_value(f, -1, "stdin", "a string");
  } else {
    const char *s = lua_tolstring(f->L, -1, &len);
    if ((req->stdin_data = malloc(len + 1))) {
      memcpy(req->stdin_data, s, len + 1);
      req->stdin_len = len;
    } else {
      esb_fields_nomem(f, "stdin");
    }
  }
  lua_pop(f->L, 1);                            /* -- */
}

/* One value of `files`: a string, or { text = ... | base64 = ..., mode = ... }
 * (mode: an integer, or a string of octal digits). The file's path is the
 * field's name in errors. */
static void read_file_value(struct esb_fields *f, const char *name, struct esb_file *file) {
  static const char *const known[] = {"text", "base64", "mode", NULL};
  lua_State *L = f->L;
  file->mode = 0644;
  if (lua_type(L, -1) == LUA_TSTRING) {          /* files, path, content */
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (!(file->data = malloc(len ? len : 1))) {
      esb_fields_nomem(f, name);
      return;
    }
    memcpy(file->data, s, len);
    file->len = len;
    return;
  }
  lua_pushvalue(L, -1);
  if (!esb_fields_enter_value(f, name))           /* files, path, value, value */
    return;
  esb_fields_only(f, -1, known);
  bool has_text = esb_fields_push(f, -1, "text");
  if (has_text)
    lua_pop(L, 1);
  bool has_base64 = esb_fields_push(f, -1, "base64");
  if (has_base64) {                               /* ..., value, base64 */
    size_t len;
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (!s)
      esb_fields_bad_value(f, -1, "base64", "a string");
    else if (!(file->data = malloc(len / 4 * 3 + 1)))
      esb_fields_nomem(f, "base64");
    else if (esb_base64_decode(s, len, file->data, &file->len) < 0)
      esb_fields_bad_value(f, -1, "base64", "standard base64 with padding");
    lua_pop(L, 1);
  }
  if (has_text == has_base64)
    esb_fields_fail(f, "invalid request: '%.*s' must have one of 'text' and 'base64' (got %s)",
                    (int)strlen(f->path) - 1, f->path, has_text ? "both" : "neither");
  char *text = has_text ? esb_fields_string(f, -1, "text") : NULL;
  if (text) {
    file->len = strlen(text);
    file->data = text;
  }
  if (esb_fields_push(f, -1, "mode")) {           /* ..., value, mode */
    int isint = 0;
    lua_Integer m = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : -1;
    if (lua_type(L, -1) == LUA_TSTRING) {
      const char *s = lua_tostring(L, -1);
      char *end;
      m = *s && strspn(s, "01234567") == strlen(s) ? (lua_Integer)strtol(s, &end, 8) : -1;
      isint = 1;
    }
    if (!isint || m < 0 || m > 0777)
      esb_fields_bad_value(f, -1, "mode", "permission bits: an integer up to 511, or octal digits like \"755\"");
    else
      file->mode = (unsigned)m;
    lua_pop(L, 1);
  }
  esb_fields_leave(f);                            /* files, path, value */
}

static int compare_files(const void *a, const void *b) {
  return strcmp(((const struct esb_file *)a)->path, ((const struct esb_file *)b)->path);
}

/* files: relative path -> content, sorted by path. */
static void read_files(struct esb_fields *f, int t, struct esb_request *req) {
  lua_State *L = f->L;
  if (!esb_fields_enter(f, t, "files"))
    return;                                       /* files */
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_pop(L, 1);
    n++;
  }
  if (n && !(req->files = calloc(n, sizeof *req->files)))
    esb_fields_nomem(f, "");
  lua_pushnil(L);                                 /* files, nil */
  while (!f->failed && lua_next(L, -2)) {         /* files, path, value */
    const char *path = lua_type(L, -2) == LUA_TSTRING ? esb_lua_plain_string(L, -2) : NULL;
    char name[ESB_FILE_PATH_MAX + 8];
    snprintf(name, sizeof name, "%s", path ? path : "?");
    struct esb_file *file = &req->files[req->nfiles++];
    if (lua_type(L, -2) != LUA_TSTRING) {
      esb_fields_fail(f, "invalid request: 'files' must be an object of paths to contents, not an array");
    } else if (!path || !esb_file_path_ok(path)) {
      char quoted[ESB_FIELDS_DESCRIBE_SIZE];
      esb_fields_fail(f, "invalid request: 'files' has the path %s: a path must be relative to the "
                      "working dir, without empty, '.' or '..' components, at most %d bytes and 255 a component",
                      esb_fields_describe(L, -2, quoted, sizeof quoted), ESB_FILE_PATH_MAX);
    } else if (!(file->path = strdup(path))) {
      esb_fields_nomem(f, name);
    } else {
      read_file_value(f, name, file);
    }
    lua_pop(L, 1);                                /* files, path */
  }
  if (f->failed)
    lua_pop(L, 1);                                /* files (the traversal stopped early) */
  else if (req->nfiles)
    qsort(req->files, req->nfiles, sizeof *req->files, compare_files);
  /* Sorted, a file that is another's directory comes right before it. */
  for (size_t i = 1; i < req->nfiles && !f->failed; i++) {
    const char *a = req->files[i - 1].path;
    size_t n = strlen(a);
    for (size_t j = i; j < req->nfiles && !strncmp(req->files[j].path, a, n); j++) {
      if (req->files[j].path[n] == '/') {
        esb_fields_fail(f, "invalid request: 'files.%s' is a file, and the directory of '%s'", a,
                        req->files[j].path);
        break;
      }
    }
  }
  esb_fields_leave(f);                            /* -- */
}

/* What a request must be beyond its fields' types: one kind, and the fields
 * that go with it. NULL when it is one. */
/* collect: glob patterns relative to the working dir. */
static void read_collect(struct esb_fields *f, int t, struct esb_request *req) {
  if (f->failed)
    return;
  req->collect = esb_fields_strv(f, t, "collect", ESB_FIELDS_ARRAY, &req->ncollect);
  if (req->ncollect > ESB_COLLECT_MAX_PATTERNS) {
    esb_fields_fail(f, "invalid request: 'collect' has %zu patterns, more than %d", req->ncollect,
                    ESB_COLLECT_MAX_PATTERNS);
    return;
  }
  for (size_t i = 0; i < req->ncollect; i++) {
    if (!esb_collect_pattern_ok(req->collect[i])) {
      esb_fields_fail(f, "invalid request: 'collect[%zu]' (\"%.200s\") is no pattern relative to the "
                      "working dir: not empty, not absolute, no empty, '.' or '..' segment, at most %d bytes", i + 1,
                      req->collect[i], ESB_COLLECT_PATTERN_MAX);
      return;
    }
  }
}

static const char *shape_problem(const struct esb_request *req) {
  int kinds = !!req->shell + !!req->program + !!req->code;
  if (kinds > 1)
    return "give exactly one of 'shell', 'program' or 'code' (got more than one)";
  if (kinds == 0)
    return "give exactly one of 'shell', 'program' or 'code' (got none)";
  if (req->code && !req->language)
    return "'code' needs a 'language'";
  if (req->language && !req->code)
    return "'language' goes with 'code'";
  if (req->args && req->shell)
    return "'args' goes with 'program' or 'code', not 'shell'";
  if (req->program && !*req->program)
    return "'program' is empty";
  return NULL;
}

int esb_lua_to_request(lua_State *L, int idx, struct esb_request *req, struct esb_error *err) {
  static const char *const known[] = {
#define ESB_REQUEST_FIELD(name, policy_name, doc) name,
#include "engine/contract/request_fields.def"
#undef ESB_REQUEST_FIELD
    NULL};
  struct esb_fields f = ESB_FIELDS_INIT(L, NULL, err);
  int t = lua_absindex(L, idx);
  if (lua_type(L, t) != LUA_TTABLE)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "invalid request: expected an object, got %s",
                         luaL_typename(L, t));
  esb_fields_only(&f, t, known);
  req->shell = esb_fields_string(&f, t, "shell");
  req->program = esb_fields_string(&f, t, "program");
  req->language = esb_fields_string(&f, t, "language");
  req->code = esb_fields_string(&f, t, "code");
  req->args = esb_fields_strv(&f, t, "args", ESB_FIELDS_ARRAY, &req->nargs);
  req->env = esb_fields_strv(&f, t, "env", ESB_FIELDS_MAP, &req->nenv);
  req->labels = esb_fields_strv(&f, t, "labels", ESB_FIELDS_MAP, &req->nlabels);
  req->working_dir = esb_fields_string(&f, t, "working_dir");
  esb_fields_uint(&f, t, "timeout_ms", 1, &req->timeout_ms);
  char *backend = esb_fields_string(&f, t, "backend");
  if (backend && esb_backend_parse(backend, &req->backend) < 0)
    esb_fields_bad(&f, t, "backend", "\"auto\", \"local\" or \"k8s\"");
  free(backend);
  read_limits(&f, t, req);
  read_stdin(&f, t, req);
  read_files(&f, t, req);
  read_collect(&f, t, req);
  const char *problem = f.failed ? NULL : shape_problem(req);
  if (problem)
    esb_fields_fail(&f, "invalid request: %s", problem);
  if (f.failed) {
    esb_request_release(req);
    return -1;
  }
  req->kind = req->shell ? ESB_REQUEST_SHELL : req->program ? ESB_REQUEST_PROGRAM : ESB_REQUEST_CODE;
  return 0;
}

/* ---- results ---- */

void esb_lua_push_base64(lua_State *L, const char *data, size_t len) {
  /* Encoded into GC-owned memory: nothing leaks if a push raises. */
  size_t n = esb_base64_length(len);
  char *buf = lua_newuserdatauv(L, n ? n : 1, 0);
  esb_base64_encode(data, len, buf);
  lua_pushlstring(L, buf, n);
  lua_remove(L, -2);
}

void esb_lua_set_bytes(lua_State *L, const char *name, const char *data, size_t len) {
  if (esb_utf8_valid(data, len)) {
    lua_pushlstring(L, data, len);
    lua_setfield(L, -2, name);
    return;
  }
  char key[64];
  snprintf(key, sizeof key, "%s_base64", name);
  esb_lua_push_base64(L, data, len);
  lua_setfield(L, -2, key);
}

/* Words for people (a message, a reason) that may quote bytes the engine
 * did not choose: a request's names, kubectl's stderr (the program's with
 * it), a cluster's messages. Bytes that are not UTF-8 become U+FFFD there,
 * so the result stays JSON; data (streams, paths) goes whole to base64. */
static void push_words(lua_State *L, const char *s) {
  size_t n = strlen(s);
  if (esb_utf8_valid(s, n)) {
    lua_pushlstring(L, s, n);
    return;
  }
  char *buf = lua_newuserdatauv(L, 3 * n, 0);
  lua_pushlstring(L, buf, esb_utf8_scrub(s, n, buf));
  lua_remove(L, -2);
}

static void push_stream(lua_State *L, const char *name, const struct esb_capture *cap) {
  char key[32];
  esb_lua_set_bytes(L, name, cap->data ? cap->data : "", cap->len);
  snprintf(key, sizeof key, "%s_truncated", name);
  lua_pushboolean(L, esb_capture_truncated(cap));
  lua_setfield(L, -2, key);
  snprintf(key, sizeof key, "%s_bytes", name);
  lua_pushinteger(L, (lua_Integer)cap->total);
  lua_setfield(L, -2, key);
}

/* A usage figure, or null (nil without a null value) where unknown. */
static void push_usage(lua_State *L, const char *key, int64_t value, int null_idx) {
  if (value >= 0)
    lua_pushinteger(L, (lua_Integer)value);
  else if (null_idx)
    lua_pushvalue(L, null_idx);
  else
    lua_pushnil(L);
  lua_setfield(L, -2, key);
}

/* The collected files: files = [{path (or path_base64), size, base64,
 * truncated}] (left out when there are none: cjson 2.1.0 writes an empty
 * table as {}), and files_truncated, whether more matched than the
 * ceilings let through. */
static void push_files(lua_State *L, const struct esb_collected *c) {
  if (c->count) {
    lua_createtable(L, (int)c->count, 0);                /* result, files */
    for (size_t i = 0; i < c->count; i++) {
      const struct esb_collected_file *file = &c->files[i];
      lua_createtable(L, 0, 4);                          /* result, files, file */
      /* The program named the file: bytes that are not UTF-8 come back as
       * path_base64, or the result would not be JSON. */
      esb_lua_set_bytes(L, "path", file->path, strlen(file->path));
      lua_pushinteger(L, (lua_Integer)file->size);
      lua_setfield(L, -2, "size");
      esb_lua_push_base64(L, file->data, file->len);
      lua_setfield(L, -2, "base64");
      lua_pushboolean(L, file->truncated);
      lua_setfield(L, -2, "truncated");
      lua_rawseti(L, -2, (lua_Integer)i + 1);            /* result, files */
    }
    lua_setfield(L, -2, "files");                        /* result */
  }
  lua_pushboolean(L, c->incomplete);
  lua_setfield(L, -2, "files_truncated");
}

/* The network by name's ledger: egress = [{host, port, allowed, reason,
 * bytes_out, bytes_in}] in the order tried (left out when empty, as
 * files), and egress_left_off, how many more there were. */
void esb_lua_push_egress_attempt(lua_State *L, const struct esb_egress_attempt *a, bool bytes) {
  lua_createtable(L, 0, 6);                             /* attempt */
  push_words(L, a->host); /* the program's words: scrubbed to UTF-8 */
  lua_setfield(L, -2, "host");
  lua_pushinteger(L, (lua_Integer)a->port);
  lua_setfield(L, -2, "port");
  lua_pushboolean(L, a->allowed);
  lua_setfield(L, -2, "allowed");
  lua_pushstring(L, esb_egress_reason_name(a->reason));
  lua_setfield(L, -2, "reason");
  if (!bytes)
    return;
  lua_pushinteger(L, (lua_Integer)a->bytes_out);
  lua_setfield(L, -2, "bytes_out");
  lua_pushinteger(L, (lua_Integer)a->bytes_in);
  lua_setfield(L, -2, "bytes_in");
}

static void push_egress(lua_State *L, const struct esb_egress_ledger *l) {
  if (l->n) {
    lua_createtable(L, (int)l->n, 0);                   /* result, egress */
    for (size_t i = 0; i < l->n; i++) {
      esb_lua_push_egress_attempt(L, &l->v[i], true);   /* result, egress, attempt */
      lua_rawseti(L, -2, (lua_Integer)i + 1);           /* result, egress */
    }
    lua_setfield(L, -2, "egress");                      /* result */
  }
  lua_pushinteger(L, (lua_Integer)l->left_off);
  lua_setfield(L, -2, "egress_left_off");
}

/* What a k8s run says of its pod, into the result on top: whether it was
 * warm (and its pool, the claim's time), the pod, a delete that failed. */
static void push_k8s_notes(lua_State *L, const struct esb_result *r) {
  if (r->warm >= 0) {
    lua_pushboolean(L, r->warm);
    lua_setfield(L, -2, "warm");
  }
  if (r->warm_pool[0]) {
    lua_pushstring(L, r->warm_pool);
    lua_setfield(L, -2, "warm_pool");
  }
  if (r->claim_ms >= 0) {
    lua_pushnumber(L, r->claim_ms);
    lua_setfield(L, -2, "claim_ms");
  }
  if (r->sandbox_name[0]) {
    lua_pushstring(L, r->sandbox_name);
    lua_setfield(L, -2, "pod"); /* k8s is the one backend that names it */
  }
  if (r->cleanup_error) {
    push_words(L, r->cleanup_error);
    lua_setfield(L, -2, "cleanup_error");
  }
}

void esb_lua_push_result(lua_State *L, const struct esb_result *r, int null_idx) {
  if (null_idx)
    null_idx = lua_absindex(L, null_idx);
  lua_createtable(L, 0, 20);
  lua_pushinteger(L, esb_result_exit_code(r));
  lua_setfield(L, -2, "exit_code");
  push_stream(L, "stdout", &r->out);
  push_stream(L, "stderr", &r->err);
  lua_pushnumber(L, (lua_Number)((long long)(r->duration_ms * 1000.0 + 0.5)) / 1000.0);
  lua_setfield(L, -2, "duration_ms");
  lua_pushstring(L, r->sandbox_type ? r->sandbox_type : "local");
  lua_setfield(L, -2, "sandbox_type");
  lua_pushboolean(L, r->status == ESB_STATUS_TIMED_OUT);
  lua_setfield(L, -2, "timed_out");
  lua_pushstring(L, esb_status_name(r->status));
  lua_setfield(L, -2, "status");
  if (r->signal)
    lua_pushinteger(L, r->signal);
  else if (null_idx)
    lua_pushvalue(L, null_idx);
  else
    lua_pushnil(L);
  lua_setfield(L, -2, "signal");
  lua_pushboolean(L, r->killed_by_us);
  lua_setfield(L, -2, "killed_by_us");
  if (r->reason) {
    push_words(L, r->reason);
    lua_setfield(L, -2, "reason");
  }
  if (r->isolation) {
    lua_pushstring(L, r->isolation);
    lua_setfield(L, -2, "isolation");
  }
  if (r->session[0]) {
    lua_pushstring(L, r->session);
    lua_setfield(L, -2, "session");
  }
  push_k8s_notes(L, r);
  if (r->warnings.n) { /* present where the run was degraded, as cleanup_error */
    lua_createtable(L, (int)r->warnings.n, 0);
    for (size_t i = 0; i < r->warnings.n; i++) {
      push_words(L, r->warnings.v[i]);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "warnings");
  }
  if (r->fallback) {
    push_words(L, r->fallback);
    lua_setfield(L, -2, "fallback");
  }
  push_usage(L, "cpu_time_ms", r->cpu_time_ms, null_idx);
  push_usage(L, "memory_peak_bytes", r->memory_peak_bytes, null_idx);
  if (r->files.wanted)
    push_files(L, &r->files);
  if (r->egress.wanted)
    push_egress(L, &r->egress);
  if (r->status == ESB_STATUS_ERROR) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, esb_error_name(r->error));
    lua_setfield(L, -2, "code");
    push_words(L, r->error_message ? r->error_message : esb_strerror(r->error));
    lua_setfield(L, -2, "message");
    lua_pushboolean(L, r->retryable);
    lua_setfield(L, -2, "retryable");
    lua_setfield(L, -2, "error");
  }
}
