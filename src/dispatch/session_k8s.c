/* Sessions on the k8s backend for every face: a session is a pod
 * (backend/k8s_session.h), so everything here asks the cluster; nothing
 * is kept on this machine. */
#include "dispatch/session_k8s.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "backend/k8s.h"
#include "backend/k8s_session.h"
#include "codec/json.h"
#include "codec/pod_status.h"
#include "dispatch/session.h"
#include "engine/runtime/loop.h"
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
