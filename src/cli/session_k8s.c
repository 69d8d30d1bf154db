/* echo-sandbox session on the k8s backend: a session is a pod
 * (backend/k8s_session.h), so every command here asks the cluster; none
 * keeps anything on this machine. */
#include "cli/session_k8s.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "backend/k8s.h"
#include "backend/k8s_session.h"
#include "codec/json.h"
#include "codec/pod_status.h"
#include "engine/strv.h"
#include "luaglue/call.h"
#include "luaglue/embedded.h"

/* What `show`, `ls` and `create --json` say of one session. */
struct k8s_session {
  const char *id, *state; /* state: alive, or why it ended (esb_k8s_session_state) */
  const char *namespace_;
  const char *phase;      /* its pod's */
  int64_t expires_s;      /* its TTL's end, seconds since the epoch (0: unknown) */
  int64_t idle_timeout_ms;
};

static void push_session(lua_State *L, const struct k8s_session *s) {
  lua_createtable(L, 0, 8);
  lua_pushstring(L, s->id);
  lua_setfield(L, -2, "id");
  lua_pushliteral(L, "k8s");
  lua_setfield(L, -2, "backend");
  lua_pushstring(L, strcmp(s->state, "alive") == 0 ? "alive" : "ended");
  lua_setfield(L, -2, "state");
  if (strcmp(s->state, "alive") != 0) {
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

/* One session: a line, or with L its JSON object. */
static void say_session(lua_State *L, const struct k8s_session *s) {
  if (L) {
    push_session(L, s);
    esb_json_print(L);
    return;
  }
  time_t expires = (time_t)s->expires_s;
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&expires));
  printf("%s  %s%s  expires %s\n", s->id, strcmp(s->state, "alive") == 0 ? "alive" : "ended: ",
         strcmp(s->state, "alive") == 0 ? "" : s->state, when);
}

void esb_cli_k8s_push_made(lua_State *L, const struct esb_session_made *made) {
  struct k8s_session s = { .id = made->id, .state = "alive", .namespace_ = made->plan.k8s.namespace_,
                           .phase = "Running",
                           .expires_s = (int64_t)time(NULL) + (int64_t)(made->decision.ttl_ms / 1000),
                           .idle_timeout_ms = (int64_t)made->decision.idle_timeout_ms };
  push_session(L, &s);
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

void esb_cli_k8s_session_run(const char *id, struct esb_plan *plan, struct esb_result *result, int interrupt_fd,
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

bool esb_cli_k8s_session_command(int argc, char **argv) {
  if (argc >= 3 && (strcmp(argv[1], "show") == 0 || strcmp(argv[1], "rm") == 0))
    return esb_k8s_session_id(argv[2]);
  for (int i = 2; argc >= 2 && strcmp(argv[1], "ls") == 0 && i < argc; i++)
    if (strcmp(argv[i], "--backend=k8s") == 0 || (strcmp(argv[i], "--backend") == 0 && i + 1 < argc &&
                                                 strcmp(argv[i + 1], "k8s") == 0))
      return true;
  return false;
}

/* The flags of show, rm and ls: --json, --policy FILE, --backend k8s. */
struct k8s_args {
  const char *id, *policy;
  bool json;
};

static int read_args(int argc, char **argv, bool want_id, struct k8s_args *a) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0) {
      a->json = true;
    } else if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc) {
      a->policy = argv[++i];
    } else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc && strcmp(argv[i + 1], "k8s") == 0) {
      i++;
    } else if (strcmp(argv[i], "--backend=k8s") != 0 && !(want_id && !a->id && argv[i][0] != '-')) {
      fprintf(stderr, "echo-sandbox session %s: unexpected %s\n", argv[0], argv[i]);
      return 125;
    } else if (argv[i][0] != '-') {
      a->id = argv[i];
    }
  }
  return -1;
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

/* Says each session of kubectl's answer (a list, or one pod); 0, or -1. */
static int say_pods(const char *text, size_t len, const char *namespace_, lua_State *out, struct esb_error *err) {
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
      struct k8s_session s = { .id = lua_tostring(L, -4), .state = esb_k8s_session_state(&p),
                               .namespace_ = namespace_, .phase = p.phase, .expires_s = lua_tointeger(L, -3),
                               .idle_timeout_ms = lua_tointeger(L, -2) };
      say_session(out, &s);
    }
    lua_pop(L, 5);
  }
  lua_close(L);
  return rc;
}

/* show ID, ls: kubectl get, then each session said. */
static int show(const struct esb_k8s_settings *k, const struct k8s_args *a, lua_State *L, struct esb_error *err) {
  const char *one[] = {"get", "pod", a->id, "-o", "json", "--request-timeout=20s", NULL};
  const char *all[] = {"get", "pods", "-l", ESB_K8S_SESSION_LABEL "=true", "-o", "json", "--request-timeout=20s",
                       NULL};
  struct esb_result r = ESB_RESULT_INIT;
  esb_k8s_kubectl_run(k, a->id ? one : all, 30000, &r);
  int rc = 0;
  if (a->id && r.err.data && strstr(r.err.data, "(NotFound)"))
    rc = esb_error_set(err, ESB_E_INVALID_REQUEST, "session %s does not exist in namespace %s (it was deleted, or "
                       "`cleanup` removed it after it ended)", a->id, k->namespace_);
  else if (r.status != ESB_STATUS_EXITED || r.exit_code != 0)
    rc = esb_error_set(err, ESB_E_BACKEND, "kubectl get failed: %.*s", (int)r.err.len,
                       r.err.data ? r.err.data : "");
  else
    rc = say_pods(r.out.data ? r.out.data : "", r.out.len, k->namespace_, L, err);
  esb_result_release(&r);
  return rc;
}

static int remove_one(const struct esb_k8s_settings *k, const char *id, struct esb_error *err) {
  bool found;
  if (esb_k8s_session_remove(k, id, 1000, k->delete_timeout_ms ? k->delete_timeout_ms : 30000, &found, err) < 0)
    return -1;
  if (!found)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "session %s does not exist in namespace %s", id,
                         k->namespace_);
  return 0;
}

int esb_cli_k8s_session(int argc, char **argv) {
  struct k8s_args a = { 0 };
  bool ls = strcmp(argv[0], "ls") == 0;
  int rc = read_args(argc, argv, !ls, &a);
  if (rc >= 0)
    return rc;
  struct esb_error err = ESB_ERROR_INIT;
  struct esb_k8s_settings k = { 0 };
  struct esb_policy *policy = esb_policy_open(a.policy, &err);
  lua_State *L = a.json ? esb_json_state() : NULL;
  if (!policy || esb_policy_cluster(policy, &k, &err) < 0)
    rc = esb_cli_session_fail(&err);
  else if (strcmp(argv[0], "rm") == 0)
    rc = remove_one(&k, a.id, &err) < 0 ? esb_cli_session_fail(&err) : 0;
  else
    rc = show(&k, &a, L, &err) < 0 ? esb_cli_session_fail(&err) : 0;
  if (L)
    lua_close(L);
  esb_k8s_settings_release(&k);
  esb_policy_close(policy);
  return rc;
}
