/* Sessions on the k8s backend for every face: a session is a pod
 * (backend/k8s_session.h), so everything here asks the cluster; nothing
 * is kept on this machine. */
#include "dispatch/session_k8s.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "backend/k8s.h"
#include "backend/k8s_session.h"
#include "backend/kernel_reply.h"
#include "codec/json.h"
#include "codec/pod_status.h"
#include "dispatch/session.h"
#include "engine/runtime/loop.h"
#include "engine/strv.h"
#include "luaglue/call.h"
#include "luaglue/embedded.h"

void esb_k8s_session_push(lua_State *L, const struct esb_k8s_session_view *s) {
  bool alive = strcmp(s->state, "alive") == 0;
  lua_createtable(L, 0, 8);
  lua_pushstring(L, s->id);
  lua_setfield(L, -2, "id");
  lua_pushliteral(L, "k8s");
  lua_setfield(L, -2, "backend");
  lua_pushstring(L, alive ? "alive" : "ended");
  lua_setfield(L, -2, "state");
  if (!alive) {
    lua_pushstring(L, s->state);
    lua_setfield(L, -2, "ended");
  }
  lua_pushstring(L, s->namespace_);
  lua_setfield(L, -2, "namespace");
  lua_pushstring(L, s->phase);
  lua_setfield(L, -2, "phase");
  lua_pushinteger(L, (lua_Integer)s->expires_s * 1000);
  lua_setfield(L, -2, "expires_ms");
  lua_pushinteger(L, (lua_Integer)s->idle_timeout_ms);
  lua_setfield(L, -2, "idle_timeout_ms");
}

void esb_k8s_session_push_made(lua_State *L, const struct esb_session_made *made) {
  struct esb_k8s_session_view s = { .id = made->id, .state = "alive", .namespace_ = made->plan.k8s.namespace_,
                                    .phase = "Running",
                                    .expires_s = (int64_t)time(NULL) + (int64_t)(made->decision.ttl_ms / 1000),
                                    .idle_timeout_ms = (int64_t)made->decision.idle_timeout_ms };
  esb_k8s_session_push(L, &s);
}

/* Runs protected: decodes a PodList or a Pod (1) and pushes
 * kube.session_pods of it, each entry's pod as JSON. */
static int session_pods(lua_State *L) {
  esb_lua_embedded_require(L, "echo_sandbox.engine.kube");
  lua_getfield(L, -1, "session_pods");          /* text, kube, session_pods */
  esb_json_field(L, "decode");
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);                            /* text, kube, session_pods, doc */
  esb_json_field(L, "encode");                  /* ..., doc, encode */
  lua_call(L, 2, 1);                            /* text, kube, entries */
  return 1;
}

/* Each session of kubectl's answer (a list, or one pod) to fn. */
static int each_pod(const char *text, size_t len, const char *namespace_, esb_k8s_session_fn fn, void *arg,
                    struct esb_error *err) {
  lua_State *L = esb_json_state();
  if (!L)
    return esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  lua_pushcfunction(L, session_pods);
  lua_pushlstring(L, text, len);
  int rc = esb_lua_pcall(L, 1, 1, ESB_LUA_MESSAGE, ESB_E_BACKEND, "kubectl's pods", err);
  for (lua_Integer i = 1; rc == 0 && i <= (lua_Integer)lua_rawlen(L, -1); i++) {
    lua_rawgeti(L, -1, i);
    lua_getfield(L, -1, "name");
    lua_getfield(L, -2, "expires");
    lua_getfield(L, -3, "idle_timeout_ms");
    lua_getfield(L, -4, "pod");
    size_t n;
    const char *json = lua_tolstring(L, -1, &n);
    struct esb_pod_status p;
    if (json && esb_lua_parse_pod_status(json, n, &p) == 0) {
      struct esb_k8s_session_view s = { .id = lua_tostring(L, -4), .state = esb_k8s_session_state(&p),
                                        .namespace_ = namespace_, .phase = p.phase,
                                        .expires_s = lua_tointeger(L, -3), .idle_timeout_ms = lua_tointeger(L, -2) };
      fn(&s, arg);
    }
    lua_pop(L, 5);
  }
  lua_close(L);
  return rc;
}

int esb_k8s_session_each(const struct esb_k8s_settings *k, const char *id, esb_k8s_session_fn fn, void *arg,
                         struct esb_error *err) {
  const char *one[] = {"get", "pod", id, "-o", "json", "--request-timeout=20s", NULL};
  const char *all[] = {"get", "pods", "-l", ESB_K8S_SESSION_LABEL "=true", "-o", "json", "--request-timeout=20s",
                       NULL};
  struct esb_result r = ESB_RESULT_INIT;
  esb_k8s_kubectl_run(k, id ? one : all, 30000, &r);
  int rc = 0;
  if (id && r.err.data && strstr(r.err.data, "(NotFound)"))
    rc = esb_error_set(err, ESB_E_INVALID_REQUEST, "session %s does not exist in namespace %s (it was deleted, or "
                       "`cleanup` removed it after it ended)", id, k->namespace_);
  else if (r.status != ESB_STATUS_EXITED || r.exit_code != 0)
    rc = esb_error_set(err, ESB_E_BACKEND, "kubectl get failed: %.*s", (int)r.err.len,
                       r.err.data ? r.err.data : "");
  else
    rc = each_pod(r.out.data ? r.out.data : "", r.out.len, k->namespace_, fn, arg, err);
  esb_result_release(&r);
  return rc;
}

int esb_k8s_session_plan_run(struct esb_policy *policy, struct esb_request *req, struct esb_plan *plan,
                             struct esb_error *err) {
  *plan = (struct esb_plan)ESB_PLAN_INIT;
  if (esb_session_check_run(req, err) < 0)
    return -1;
  req->backend = ESB_BACKEND_K8S;
  return esb_policy_plan(policy, req, plan, true, err);
}

/* The run on a loop of its own (esb_loop_run_job). */
static int start_run(struct esb_loop *loop, void *arg) {
  struct esb_k8s_run *run = arg;
  return esb_k8s_start(run, loop, run->userdata);
}

/* A session that kubectl found ended or gone: why, from its pod. */
static void say_why_ended(const char *id, const struct esb_plan *plan, struct esb_result *r) {
  struct esb_pod_status p;
  bool found;
  struct esb_error err = ESB_ERROR_INIT;
  if (esb_k8s_session_read(&plan->k8s, id, esb_lua_parse_pod_status, &p, &found, &err) < 0)
    return;
  if (!found)
    esb_result_fail(r, ESB_E_INVALID_REQUEST, "session %s does not exist in namespace %s (it was deleted, or "
                    "`cleanup` removed it after it ended)", id, plan->k8s.namespace_);
  else if (strcmp(esb_k8s_session_state(&p), "alive") != 0)
    esb_result_fail(r, ESB_E_INVALID_REQUEST, "session %s has ended (%s)", id, esb_k8s_session_state(&p));
  else
    return;
  r->reason = "SessionEnded";
}

void esb_k8s_session_run(const char *id, struct esb_plan *plan, struct esb_result *result, int interrupt_fd,
                         const struct esb_output_sink *output) {
  struct esb_error err = ESB_ERROR_INIT;
  char *name = strdup(id);
  if (!name) {
    esb_result_fail(result, ESB_E_SYSTEM, "out of memory");
    return;
  }
  free(plan->k8s.pod_name);
  plan->k8s.pod_name = name;
  if (esb_k8s_payload_wanted(plan) && esb_k8s_payload_check(plan, &err) < 0) {
    esb_result_fail_error(result, &err);
    return;
  }
  struct esb_k8s_run run = ESB_K8S_RUN_INIT;
  run.parse_pod = esb_lua_parse_pod_status;
  run.in_session = true;
  run.userdata = plan;
  if (output)
    run.output = *output;
  esb_loop_run_job(interrupt_fd, start_run, &run);
  esb_k8s_release(&run);
  esb_result_move(result, &run.result);
  if (result->reason && strcmp(result->reason, "SessionEnded") == 0)
    say_why_ended(id, plan, result);
}

/* The relay's stdin: the request line, then the kernel's source. */
static char *cell_input(const char *code, size_t len, const char *source, size_t *n) {
  size_t cap = len + strlen(source) + 64;
  char *buf = malloc(cap);
  if (!buf)
    return NULL;
  *n = (size_t)snprintf(buf, cap, "{\"id\": 1, \"code\": \"");
  if (esb_json_escape_append(&buf, n, &cap, code, len) < 0) {
    free(buf);
    return NULL;
  }
  size_t more = strlen(source) + 4;
  char *grown = cap - *n < more ? realloc(buf, *n + more) : buf;
  if (!grown) {
    free(buf);
    return NULL;
  }
  memcpy(grown + *n, "\"}\n", 3);
  memcpy(grown + *n + 3, source, more - 3);
  *n += more - 1;
  return grown;
}

/* The relay's command: the cell script, the language, the deadline and
 * the grace in seconds, the kernel's program and flag. */
static int relay_argv(struct esb_plan *plan, const char *language, const char *const kernel[3]) {
  char t[32], g[32];
  snprintf(t, sizeof t, "%" PRIu64 ".%03" PRIu64, plan->timeout_ms / 1000, plan->timeout_ms % 1000);
  snprintf(g, sizeof g, "%d.%03d", ESB_CELL_GRACE_MS / 1000, ESB_CELL_GRACE_MS % 1000);
  const char *words[] = { "/bin/sh", "-c", esb_k8s_session_cell_script, "echo-sandbox", language, t, g,
                          kernel[0], kernel[1] };
  struct esb_strv sv = ESB_STRV_INIT;
  int rc = 0;
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
    rc |= esb_strv_push(&sv, words[i]);
  if (rc) {
    esb_strv_clear(&sv);
    return -1;
  }
  esb_strv_free(plan->argv);
  plan->argv = esb_strv_detach(&sv);
  return 0;
}

static void cell_say(struct esb_cell_result *r, enum esb_cell_status status, enum esb_error_code code,
                     const char *message) {
  r->status = status;
  r->failure = code;
  free(r->message);
  r->message = message ? strdup(message) : NULL;
}

static char *take(char **s) {
  char *v = *s;
  *s = NULL;
  return v;
}

/* The kernel's reply line: its word on the cell (kernels/python.py). */
static void replied(struct esb_cell_result *r, const char *line, size_t n) {
  struct esb_kernel_reply k = ESB_KERNEL_REPLY_INIT;
  if (esb_kernel_reply_parse(line, n, &k) < 0) {
    cell_say(r, ESB_CELL_FAILED, ESB_E_BACKEND, "the kernel's reply could not be read");
    return;
  }
  r->status = strcmp(k.status, "ok") == 0 ? ESB_CELL_OK : ESB_CELL_ERROR;
  r->value = take(&k.value);
  r->error_name = take(&k.name);
  r->error_message = take(&k.message);
  r->error_traceback = take(&k.traceback);
  if (r->status == ESB_CELL_ERROR && !r->error_name) /* "interrupted" by the cell's own raise */
    r->error_name = strdup(strcmp(k.status, "interrupted") == 0 ? "KeyboardInterrupt" : "KernelError");
  esb_kernel_reply_release(&k);
}

static void set_capture(struct esb_capture *c, const char *p, size_t n, uint64_t total) {
  c->data = malloc(n + 1);
  c->len = c->data ? n : 0;
  c->alloc = c->data ? n + 1 : 0;
  c->total = total;
  if (c->data) {
    memcpy(c->data, p, n);
    c->data[n] = '\0';
  }
}

/* What the relay printed: its header (ours), the reply line, the output. */
static void from_relay(struct esb_cell_result *r, struct esb_result *run, const char *language) {
  const char *out = run->out.data ? run->out.data : "";
  const char *nl = memchr(out, '\n', run->out.len);
  const char *reply = nl ? nl + 1 : NULL;
  const char *end = reply ? memchr(reply, '\n', run->out.len - (size_t)(reply - out)) : NULL;
  char status[16] = "";
  int lost = 0;
  char message[160];
  bool said = nl && sscanf(out, "esb-cell %15s %d", status, &lost) == 2;
  if (said && strcmp(status, "busy") == 0) { /* nothing ran: no reply, no output */
    snprintf(message, sizeof message, "another cell of the %s kernel is going on: nothing ran", language);
    cell_say(r, ESB_CELL_BUSY, ESB_OK, message);
    return;
  }
  if (!said || !end) {
    cell_say(r, ESB_CELL_FAILED, ESB_E_BACKEND, "the cell's relay in the pod said nothing of the cell");
    return;
  }
  size_t used = (size_t)(end + 1 - out);
  set_capture(&r->out, end + 1, run->out.len - used, run->out.total - used);
  esb_capture_release(&r->err);
  r->err = run->err;
  run->err = (struct esb_capture)ESB_CAPTURE_INIT;
  r->state_lost = lost == 1;
  if (strcmp(status, "died") == 0) {
    snprintf(message, sizeof message, "the %s kernel ended during the cell: its state is lost", language);
    cell_say(r, ESB_CELL_DIED, ESB_OK, message);
  } else if (strcmp(status, "timed_out") == 0) {
    snprintf(message, sizeof message, "the cell was interrupted at its deadline: the %s kernel %s", language,
             r->state_lost ? "did not answer within the grace and was killed: its state is lost"
                           : "keeps its state");
    cell_say(r, ESB_CELL_TIMED_OUT, ESB_OK, message);
  } else {
    replied(r, reply, (size_t)(end - reply));
    if (r->state_lost && r->status != ESB_CELL_FAILED) {
      snprintf(message, sizeof message, "the %s kernel was started anew: its earlier state is lost", language);
      cell_say(r, r->status, ESB_OK, message);
    }
  }
}

/* The run of the relay, as a cell's result. */
static void from_run(struct esb_cell_result *r, struct esb_result *run, const char *language) {
  r->duration_ms = run->duration_ms;
  if (run->reason && strcmp(run->reason, "SessionEnded") == 0)
    cell_say(r, ESB_CELL_SESSION_ENDED, ESB_E_INVALID_REQUEST, run->error_message);
  else if (run->status == ESB_STATUS_ERROR && run->error == ESB_E_INTERRUPTED)
    cell_say(r, ESB_CELL_INTERRUPTED, ESB_OK, run->error_message);
  else if (run->status != ESB_STATUS_EXITED || run->exit_code != 0)
    cell_say(r, ESB_CELL_FAILED, run->error != ESB_OK ? run->error : ESB_E_BACKEND,
             run->error_message ? run->error_message : "the cell's relay in the pod failed");
  else
    from_relay(r, run, language);
}

void esb_k8s_session_cell(const char *id, const char *language, const char *code, size_t len,
                          struct esb_plan *plan, struct esb_cell_result *r, int interrupt_fd) {
  const char *kernel[3];
  struct esb_error err = ESB_ERROR_INIT;
  size_t n = 0;
  char *input = NULL;
  snprintf(r->session, sizeof r->session, "%s", id);
  if (esb_session_kernel_argv(language, kernel, &err) < 0) {
    cell_say(r, ESB_CELL_FAILED, err.code, err.message);
    return;
  }
  if (!(input = cell_input(code, len, kernel[2], &n)) || relay_argv(plan, language, kernel) < 0) {
    free(input);
    cell_say(r, ESB_CELL_FAILED, ESB_E_SYSTEM, "out of memory");
    return;
  }
  plan->stdin_data = input;
  plan->stdin_len = n;
  plan->stdin_fd = -1;
  plan->timeout_ms += ESB_CELL_GRACE_MS + 10000; /* the relay's own deadline comes first */
  struct esb_result run = ESB_RESULT_INIT;
  esb_k8s_session_run(id, plan, &run, interrupt_fd, NULL);
  from_run(r, &run, language);
  esb_result_release(&run);
  plan->stdin_data = NULL;
  free(input);
}

int esb_k8s_session_remove_one(const struct esb_k8s_settings *k, const char *id, struct esb_error *err) {
  bool found;
  if (esb_k8s_session_remove(k, id, 1000, k->delete_timeout_ms ? k->delete_timeout_ms : 30000, &found, err) < 0)
    return -1;
  if (!found)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "session %s does not exist in namespace %s", id,
                         k->namespace_);
  return 0;
}

/* The objects said, into the array on top of the stack of L; ended gets
 * the last one's why ("" where alive). */
struct gather {
  lua_State *L;
  bool alive_only;
  char *ended;
};

static void gather_one(const struct esb_k8s_session_view *s, void *arg) {
  struct gather *g = arg;
  bool alive = strcmp(s->state, "alive") == 0;
  if (g->alive_only && !alive)
    return;
  esb_k8s_session_push(g->L, s);
  lua_rawseti(g->L, -2, (lua_Integer)lua_rawlen(g->L, -2) + 1);
  snprintf(g->ended, ESB_K8S_ENDED_MAX, "%s", alive ? "" : s->state);
}

/* The session's object as it was, marked ended: deleted where it was alive. */
static void mark_deleted(lua_State *L, char ended[ESB_K8S_ENDED_MAX]) {
  if (!ended[0])
    snprintf(ended, ESB_K8S_ENDED_MAX, "deleted");
  lua_pushliteral(L, "ended");
  lua_setfield(L, -2, "state");
  lua_pushstring(L, ended);
  lua_setfield(L, -2, "ended");
}

static int answer_in(lua_State *L, const struct esb_k8s_settings *k, enum esb_k8s_answer what, const char *id,
                     char ended[ESB_K8S_ENDED_MAX], struct esb_error *err) {
  struct gather g = { .L = L, .alive_only = what == ESB_K8S_ANSWER_LIST, .ended = ended };
  lua_newtable(L);
  if (esb_k8s_session_each(k, what == ESB_K8S_ANSWER_LIST ? NULL : id, gather_one, &g, err) < 0)
    return -1;
  if (what == ESB_K8S_ANSWER_LIST)
    return 0;
  if (lua_rawgeti(L, -1, 1) != LUA_TTABLE) /* a pod kubectl gave but could not be read */
    return esb_error_set(err, ESB_E_BACKEND, "kubectl's pod %s could not be read", id);
  if (what == ESB_K8S_ANSWER_REMOVE) {
    if (esb_k8s_session_remove_one(k, id, err) < 0)
      return -1;
    mark_deleted(L, ended);
  }
  return 0;
}

int esb_k8s_session_answer(struct esb_policy *policy, enum esb_k8s_answer what, const char *id, char **json,
                           char ended[ESB_K8S_ENDED_MAX], struct esb_error *err) {
  struct esb_k8s_settings k = { 0 };
  lua_State *L = esb_json_state();
  *json = NULL;
  ended[0] = '\0';
  int rc = !L ? esb_error_set(err, ESB_E_SYSTEM, "out of memory") : esb_policy_cluster(policy, &k, err);
  if (rc == 0)
    rc = answer_in(L, &k, what, id, ended, err);
  if (rc == 0)
    rc = esb_json_encode(L, err);
  if (rc == 0 && !(*json = strdup(lua_tostring(L, -1))))
    rc = esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  if (L)
    lua_close(L);
  esb_k8s_settings_release(&k);
  return rc;
}
