#include "dispatch/session.h"

#include <stdlib.h>
#include <string.h>

#include "codec/convert.h"
#include "backend/k8s_session.h"
#include "codec/json.h"
#include "dispatch/session_k8s.h"
#include "luaglue/fields.h"

/* What a create's body may carry besides ttl_ms and idle_timeout_ms: what
 * the policy plans the session's sandbox and limits from. */
static const char *const create_fields[] = { "ttl_ms", "idle_timeout_ms", "limits", "labels", "backend", NULL };

/* A request's fields a create does not take, and why. */
static const struct {
  const char *name, *why;
} not_at_create[] = {
  { "env", "is not taken at create yet: give it to each run" },
  { "files", "are not taken at create yet: a run's files go into the session's working dir" },
  { "shell", "belongs to a run in the session, not to its create" },
  { "program", "belongs to a run in the session, not to its create" },
  { "args", "belongs to a run in the session, not to its create" },
  { "language", "belongs to a run in the session, not to its create" },
  { "code", "belongs to a run in the session, not to its create" },
  { "stdin", "belongs to a run in the session, not to its create" },
  { "timeout_ms", "belongs to a run in the session (its lifetime is ttl_ms)" },
  { "collect", "belongs to a run in the session, not to its create" },
  { "working_dir", "belongs to a run in the session, not to its create" },
};

/* t[name] into the table on top of the stack, raw (nothing raises but
 * memory). */
static void copy_field(lua_State *L, int t, const char *name) {
  lua_pushstring(L, name);
  lua_rawget(L, t);
  lua_setfield(L, -2, name);
}

static int read_lifetime(lua_State *L, int t, struct esb_session_options *o, struct esb_error *err) {
  struct esb_fields f = ESB_FIELDS_INIT(L, NULL, err);
  esb_fields_only(&f, t, create_fields);
  esb_fields_uint(&f, t, "ttl_ms", 1, &o->ttl_ms);
  esb_fields_uint(&f, t, "idle_timeout_ms", 1, &o->idle_timeout_ms);
  if (f.failed)
    return -1;
  if (o->ttl_ms > ESB_SESSION_TTL_MS_MAX || o->idle_timeout_ms > ESB_SESSION_TTL_MS_MAX)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "invalid request: '%s' is above the ceiling of %llu ms",
                         o->ttl_ms > ESB_SESSION_TTL_MS_MAX ? "ttl_ms" : "idle_timeout_ms",
                         (unsigned long long)ESB_SESSION_TTL_MS_MAX);
  return 0;
}

int esb_session_create_request(lua_State *L, int idx, struct esb_request *req, struct esb_session_options *o,
                               struct esb_error *err) {
  int t = lua_absindex(L, idx);
  if (lua_type(L, t) != LUA_TTABLE)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "invalid request: expected an object, got %s",
                         lua_typename(L, lua_type(L, t)));
  for (size_t i = 0; i < sizeof not_at_create / sizeof not_at_create[0]; i++) {
    lua_pushstring(L, not_at_create[i].name);
    bool there = lua_rawget(L, t) != LUA_TNIL;
    lua_pop(L, 1);
    if (there)
      return esb_error_set(err, ESB_E_INVALID_REQUEST, "invalid request: '%s' %s", not_at_create[i].name,
                           not_at_create[i].why);
  }
  if (read_lifetime(L, t, o, err) < 0)
    return -1;
  lua_createtable(L, 0, 4);                         /* the request of the session's plan */
  lua_pushliteral(L, ESB_SESSION_PROGRAM);
  lua_setfield(L, -2, "program");
  copy_field(L, t, "limits");
  copy_field(L, t, "labels");
  copy_field(L, t, "backend");
  int rc = esb_lua_to_request(L, -1, req, err);
  lua_pop(L, 1);
  return rc;
}

int esb_session_check_run(const struct esb_request *req, struct esb_error *err) {
  /* A session's memory and CPU rate are the whole session's, its cgroups',
   * set at create: a run in it has none of its own that could hold it. */
  if (req->limits.memory_bytes || req->limits.cpu_millicores)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "a run in a session takes no %s of its own: the "
                         "session's, given at its create, hold all its runs",
                         req->limits.memory_bytes ? "memory limit" : "CPU rate");
  return 0;
}

int esb_session_plan_run(struct esb_policy *policy, const struct esb_request *req, struct esb_plan *plan,
                         struct esb_error *err) {
  *plan = (struct esb_plan)ESB_PLAN_INIT;
  if (esb_session_check_run(req, err) < 0)
    return -1;
  return esb_policy_plan(policy, req, plan, false, err);
}

static void set_integer(lua_State *L, const char *name, uint64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, name);
}

void esb_session_push_info(lua_State *L, const struct esb_session_info *info) {
  lua_createtable(L, 0, 10);
  lua_pushstring(L, info->id);
  lua_setfield(L, -2, "id");
  lua_pushstring(L, info->end == ESB_SESSION_ALIVE ? "alive" : "ended");
  lua_setfield(L, -2, "state");
  if (info->end != ESB_SESSION_ALIVE) {
    lua_pushstring(L, esb_session_end_name(info->end));
    lua_setfield(L, -2, "ended");
  }
  set_integer(L, "pid", (uint64_t)info->pid);
  set_integer(L, "runs", info->runs);
  set_integer(L, "created_ms", info->created_ms);
  set_integer(L, "expires_ms", info->created_ms + info->ttl_ms);
  set_integer(L, "ttl_ms", info->ttl_ms);
  set_integer(L, "idle_timeout_ms", info->idle_timeout_ms);
  lua_pushboolean(L, info->cgroups);
  lua_setfield(L, -2, "cgroups");
}

static const char *const cell_fields[] = { "language", "code", "timeout_ms", NULL };

int esb_session_cell_read(lua_State *L, int idx, struct esb_session_cell_body *c, struct esb_error *err) {
  int t = lua_absindex(L, idx);
  *c = (struct esb_session_cell_body){ .language = NULL };
  if (lua_type(L, t) != LUA_TTABLE)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "invalid request: expected an object, got %s",
                         lua_typename(L, lua_type(L, t)));
  struct esb_fields f = ESB_FIELDS_INIT(L, NULL, err);
  esb_fields_only(&f, t, cell_fields);
  esb_fields_uint(&f, t, "timeout_ms", 1, &c->timeout_ms);
  if (f.failed)
    return -1;
  static const char *const strings[] = { "language", "code" };
  for (size_t i = 0; i < 2; i++) {
    lua_getfield(L, t, strings[i]);
    size_t len;
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    char *copy = s ? malloc(len + 1) : NULL;
    if (copy) {
      memcpy(copy, s, len + 1);
      *(i ? &c->code : &c->language) = copy;
      c->len = len;
    }
    lua_pop(L, 1);
    if (!copy) {
      esb_session_cell_body_release(c);
      return esb_error_set(err, s ? ESB_E_SYSTEM : ESB_E_INVALID_REQUEST,
                           s ? "out of memory" : "invalid request: '%s' must be a string", strings[i]);
    }
  }
  return 0;
}

void esb_session_cell_body_release(struct esb_session_cell_body *c) {
  free(c->language);
  free(c->code);
  *c = (struct esb_session_cell_body){ .language = NULL };
}

int esb_session_plan_cell(struct esb_policy *policy, const char *id, const char *language, uint64_t timeout_ms,
                          struct esb_plan *plan, struct esb_error *err) {
  const char *argv[3];
  *plan = (struct esb_plan)ESB_PLAN_INIT;
  if (esb_session_kernel_argv(language, argv, err) < 0)
    return -1;
  struct esb_request req = ESB_REQUEST_INIT;
  req.kind = ESB_REQUEST_PROGRAM;
  req.timeout_ms = timeout_ms;
  req.program = strdup(argv[0]);
  req.args = calloc(3, sizeof *req.args);
  if (req.args) {
    req.args[0] = strdup(argv[1]);
    req.args[1] = strdup(argv[2]);
    req.nargs = 2;
  }
  int rc = !req.program || !req.args || !req.args[0] || !req.args[1]
             ? esb_error_set(err, ESB_E_SYSTEM, "out of memory")
           : esb_k8s_session_id(id) ? esb_k8s_session_plan_run(policy, &req, plan, err)
                                    : esb_session_plan_run(policy, &req, plan, err);
  esb_request_release(&req);
  return rc;
}

/* Sets field name of the table on top to text; where NULL, to JSON null
 * (cjson's, with json) or nothing (a field of Lua's is nil). */
static void set_text(lua_State *L, const char *name, const char *text, bool json) {
  if (text) {
    esb_lua_set_bytes(L, name, text, strlen(text));
    return;
  }
  if (!json)
    return;
  esb_json_field(L, "null");
  lua_setfield(L, -2, name);
}

void esb_session_push_cell(lua_State *L, const struct esb_cell_result *r, const char *language, bool json) {
  lua_createtable(L, 0, 14);
  set_text(L, "status", esb_cell_status_name(r->status), json);
  esb_lua_set_bytes(L, "stdout", r->out.data ? r->out.data : "", r->out.len);
  esb_lua_set_bytes(L, "stderr", r->err.data ? r->err.data : "", r->err.len);
  lua_pushboolean(L, esb_capture_truncated(&r->out));
  lua_setfield(L, -2, "stdout_truncated");
  lua_pushboolean(L, esb_capture_truncated(&r->err));
  lua_setfield(L, -2, "stderr_truncated");
  set_text(L, "value", r->value, json);
  if (r->status == ESB_CELL_ERROR) {
    lua_createtable(L, 0, 3);
    set_text(L, "name", r->error_name ? r->error_name : "", json);
    set_text(L, "message", r->error_message ? r->error_message : "", json);
    set_text(L, "traceback", r->error_traceback ? r->error_traceback : "", json);
    lua_setfield(L, -2, "error");
  } else if (json) {
    esb_json_field(L, "null");
    lua_setfield(L, -2, "error");
  }
  lua_pushboolean(L, r->state_lost);
  lua_setfield(L, -2, "state_lost");
  set_text(L, "message", r->message, json);
  set_text(L, "code", r->failure != ESB_OK ? esb_error_name(r->failure) : NULL, json);
  lua_pushnumber(L, r->duration_ms);
  lua_setfield(L, -2, "duration_ms");
  set_text(L, "session", r->session[0] ? r->session : NULL, json);
  set_text(L, "language", language, json);
}
