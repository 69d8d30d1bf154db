#include "policy/policy.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <uuid.h>

#include "backend/egress_helper.h"
#include "engine/contract/limits.h"
#include "engine/install_paths.h"
#include "luaglue/fields.h"
#include "policy/plan_reader.h"
#include "policy/vm.h"
#include "policy/warm_pools.h"

/* After the deadline, how long the expiry annotation gives an orphaned pod
 * before `cleanup` may remove it. */
#define EXPIRY_MARGIN_SECS 60

struct esb_policy {
  struct esb_vm *vm;
  char *path;
  int policy_ref;   /* the table the policy file returned */
  int k8s_pod_ref;  /* the engine's k8s finisher, loaded before the policy */
  int warm_pool_ref; /* the engine's pool renderer (lua/echo_sandbox/engine/warm_pool.lua) */
  char instance[33];
  struct esb_warm_pool *pools; /* k8s.warm_pools, read and rendered once at load */
  int *pool_refs;   /* each pool's entry, for its pods' renders */
  size_t n_pools;
  char *cluster_namespace; /* the policy's cluster's: a pool's that names none */
};

static int load_warm_pools(struct esb_policy *p, struct esb_error *err);

static bool readable(const char *path) {
  return access(path, R_OK) == 0;
}

static const char *find_policy(const char *explicit_path) {
  if (explicit_path)
    return explicit_path;
  const char *env = getenv("ECHO_SANDBOX_POLICY");
  if (env && *env)
    return env;
  if (readable("/etc/echo-sandbox/policy.lua"))
    return "/etc/echo-sandbox/policy.lua";
  static char shipped[4096];
  const char *dir = esb_install_dir(ESB_DIR_POLICIES);
  snprintf(shipped, sizeof shipped, "%s/default.lua", dir ? dir : "(the installation's policies)");
  return shipped;
}

/* Our lua/ modules: the installation's (the source tree's in a build tree). */
static const char *find_lua_dir(void) {
  const char *dir = esb_install_dir(ESB_DIR_LUA);
  return dir ? dir : "";
}

static void hex_uuid(char out[33]) {
  uuid_t u;
  uuid_generate_random(u);
  for (int i = 0; i < 16; i++)
    snprintf(out + 2 * i, 3, "%02x", u[i]);
}

/* local_sandbox.network_allow, checked once at load: a bad range is the
 * operator's to fix now, not a surprise at the first request with network.
 * The policy table is on top of the stack; raw access, nothing raises. */
static int check_network_allow(lua_State *L, const char *path, struct esb_error *err) {
  int rc = 0;
  if (lua_getfield(L, -1, "local_sandbox") == LUA_TTABLE) {  /* policy, local_sandbox */
    lua_pushliteral(L, "network_allow");
    if (lua_rawget(L, -2) != LUA_TNIL) {                     /* policy, local_sandbox, allow */
      struct esb_net_range *ranges;
      size_t n;
      struct esb_error why;
      if ((rc = esb_read_net_ranges(L, -1, &ranges, &n, &why)) < 0)
        esb_error_set(err, why.code, "policy %s: local_sandbox.network_allow: %s (expected address ranges such "
                      "as \"10.1.0.0/16\" or \"fd12:3456::/32\")", path, why.message);
      free(ranges);
    }
    lua_pop(L, 1);                                           /* policy, local_sandbox */
  }
  lua_pop(L, 1);                                             /* policy */
  return rc;
}

/* $ECHO_SANDBOX_POLICY_WALL_MS, where set, for the wall-clock limit of a
 * policy call: a host many times slower than the policy's author's (a
 * valgrind run, a loaded machine) may need more than the default second.
 * The instruction budget stays what stops a policy that loops. */
static int wall_limit(struct esb_vm_limits *limits, struct esb_error *err) {
  const char *text = getenv("ECHO_SANDBOX_POLICY_WALL_MS");
  if (!text || !*text)
    return 0;
  char *end;
  errno = 0;
  unsigned long long ms = strtoull(text, &end, 10);
  if (errno || *end || text[0] == '-' || ms < 1 || ms > 600000)
    return esb_error_set(err, ESB_E_POLICY, "ECHO_SANDBOX_POLICY_WALL_MS=%.32s: not a whole number of "
                         "milliseconds from 1 to 600000", text);
  limits->wall_ms = ms;
  return 0;
}

/* The string at key of the table on top, or NULL (raw: nothing raises). */
static const char *raw_string(lua_State *L, const char *key) {
  lua_pushstring(L, key);
  lua_rawget(L, -2);
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  lua_pop(L, 1); /* the table holds it */
  return s;
}

/* egress.k8s (the shared egress proxy: its URL, the key and CA files the
 * engine reads), checked once at load: a missing key file is the
 * operator's to fix now. The policy table is on top of the stack. */
static int check_egress_k8s(lua_State *L, const char *path, struct esb_error *err) {
  int rc = 0;
  if (lua_getfield(L, -1, "egress") == LUA_TTABLE) {        /* policy, egress */
    lua_pushliteral(L, "k8s");
    if (lua_rawget(L, -2) == LUA_TTABLE) {                   /* policy, egress, k8s */
      struct esb_error why = ESB_ERROR_INIT;
      if ((rc = esb_egress_k8s_check(raw_string(L, "proxy"), raw_string(L, "key_file"), raw_string(L, "ca_file"),
                                     &why)) < 0)
        esb_error_set(err, ESB_E_POLICY, "policy %s: %s", path, why.message);
    }
    lua_pop(L, 1);                                           /* policy, egress */
  }
  lua_pop(L, 1);                                             /* policy */
  return rc;
}

struct esb_policy *esb_policy_open(const char *explicit_path, struct esb_error *err) {
  const char *path = find_policy(explicit_path);
  struct esb_policy *p = calloc(1, sizeof *p);
  if (!p || !(p->path = strdup(path))) {
    esb_error_set(err, ESB_E_SYSTEM, "policy %s: out of memory", path);
    goto fail;
  }
  hex_uuid(p->instance);
  struct esb_vm_limits limits = ESB_VM_LIMITS_DEFAULT;
  if (wall_limit(&limits, err) < 0 || !(p->vm = esb_vm_open(find_lua_dir(), limits, err)))
    goto fail;
  lua_State *L = esb_vm_state(p->vm);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "echo_sandbox.engine.k8s_pod");   /* require, name */
  if (esb_vm_call(p->vm, 1, 1, "policy VM", err) < 0)
    goto fail;                                         /* k8s_pod */
  p->k8s_pod_ref = luaL_ref(L, LUA_REGISTRYINDEX);     /* -- */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "echo_sandbox.engine.warm_pool");
  if (esb_vm_call(p->vm, 1, 1, "policy VM", err) < 0)
    goto fail;                                         /* warm_pool */
  p->warm_pool_ref = luaL_ref(L, LUA_REGISTRYINDEX);   /* -- */
  /* Text only: a policy is source, never bytecode. */
  if (luaL_loadfilex(L, path, "t") != LUA_OK) {
    esb_error_set(err, ESB_E_POLICY, "policy: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    goto fail;
  }
  if (esb_vm_call(p->vm, 0, 1, "policy", err) < 0)
    goto fail;                                         /* policy */
  if (!lua_istable(L, -1)) {
    esb_error_set(err, ESB_E_POLICY, "policy %s: must return a table, returned %s", path, luaL_typename(L, -1));
    goto fail;
  }
  lua_pushliteral(L, "plan");
  lua_gettable(L, -2); /* policy, policy.plan: may run an __index of the policy's, so it is called protected */
  bool has_plan = lua_isfunction(L, -1);
  lua_pop(L, 1);                                       /* policy */
  if (!has_plan) {
    esb_error_set(err, ESB_E_POLICY, "policy %s: the returned table has no function 'plan'", path);
    goto fail;
  }
  if (check_network_allow(L, path, err) < 0 || check_egress_k8s(L, path, err) < 0)
    goto fail;
  p->policy_ref = luaL_ref(L, LUA_REGISTRYINDEX);      /* -- */
  if (load_warm_pools(p, err) < 0)
    goto fail;
  return p;
fail:
  esb_policy_close(p);
  return NULL;
}

void esb_policy_close(struct esb_policy *p) {
  if (!p)
    return;
  esb_vm_close(p->vm);
  for (size_t i = 0; i < p->n_pools; i++)
    esb_warm_pool_release(&p->pools[i]);
  free(p->pools);
  free(p->pool_refs);
  free(p->cluster_namespace);
  free(p->path);
  free(p);
}

const char *esb_policy_path(const struct esb_policy *p) {
  return p->path;
}

/* ---- the request, as the hooks see it ---- */

static void set_string(lua_State *L, const char *key, const char *value) {
  if (!value)
    return;
  lua_pushstring(L, value);
  lua_setfield(L, -2, key);
}

static void set_integer(lua_State *L, const char *key, uint64_t value) {
  if (!value)
    return;
  lua_pushinteger(L, (lua_Integer)value);
  lua_setfield(L, -2, key);
}

static void set_array(lua_State *L, const char *key, char **v) {
  if (!v)
    return;
  lua_newtable(L);
  for (lua_Integer i = 0; v[i]; i++) {
    lua_pushstring(L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, key);
}

static void set_map(lua_State *L, const char *key, char **kv) {
  if (!kv)
    return;
  lua_newtable(L);
  for (char **p = kv; *p; p++) {
    const char *eq = strchr(*p, '=');
    lua_pushlstring(L, *p, (size_t)(eq - *p));
    lua_pushstring(L, eq + 1);
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, key);
}

/* The request's limits under their policy names (engine/contract/limits.def),
 * each only when the request gave it. */
static void push_limits(lua_State *L, const struct esb_limits *l) {
  lua_createtable(L, 0, ESB_LIMIT__COUNT);
  for (size_t i = 0; i < ESB_LIMIT__COUNT; i++) {
    const struct esb_limit_field *d = &esb_limit_fields[i];
    const void *member = (const char *)l + d->request_offset;
    if (d->kind != ESB_LIMIT_IS_BOOL) {
      set_integer(L, d->plan_key, *(const uint64_t *)member);
    } else if (*(const int *)member >= 0) {
      lua_pushboolean(L, *(const int *)member);
      lua_setfield(L, -2, d->plan_key);
    }
  }
}

/* Runs protected: pushing may raise memory errors. */
static int push_request(lua_State *L) {
  const struct esb_request *r = lua_touserdata(L, 1);
  lua_createtable(L, 0, 16);
  set_string(L, "shell", r->shell);
  set_string(L, "program", r->program);
  set_string(L, "language", r->language);
  set_string(L, "code", r->code);
  set_array(L, "args", r->args);
  set_map(L, "env", r->env);
  set_string(L, "working_dir", r->working_dir);
  set_integer(L, "timeout_ms", r->timeout_ms);
  set_string(L, "backend", esb_backend_name(r->backend));
  set_map(L, "labels", r->labels);
  set_array(L, "collect", r->collect);
  struct stat st;
  if (r->stdin_data || r->stdin_fd >= 0) { /* a streamed file's size; a pipe's is unknown */
    uint64_t n = r->stdin_len;
    if (r->stdin_fd >= 0 && fstat(r->stdin_fd, &st) == 0 && S_ISREG(st.st_mode))
      n += (uint64_t)st.st_size;
    lua_pushinteger(L, (lua_Integer)n);
    lua_setfield(L, -2, "stdin_bytes");
  }
  push_limits(L, &r->limits);
  if (r->egress_allow) { /* limits.network = { allow = {...} }, as the request has it */
    lua_createtable(L, 0, 1);
    set_array(L, "allow", r->egress_allow);
    lua_setfield(L, -2, "network");
  }
  lua_setfield(L, -2, "limits");
  return 1;
}

/* The create request and what the engine knows, as the session hook sees
 * them; runs protected. */
static int push_session_args(lua_State *L) {
  const struct esb_session_ask *ask = lua_touserdata(L, 1);
  const struct esb_session_known *known = lua_touserdata(L, 2);
  const struct esb_request *r = ask->req;
  lua_createtable(L, 0, 8);
  set_integer(L, "ttl_ms", ask->ttl_ms);
  set_integer(L, "idle_timeout_ms", ask->idle_timeout_ms);
  set_map(L, "env", r->env);
  set_map(L, "labels", r->labels);
  set_string(L, "backend", esb_backend_name(r->backend));
  set_string(L, "working_dir", r->working_dir);
  push_limits(L, &r->limits);
  lua_setfield(L, -2, "limits");
  lua_createtable(L, 0, 2);
  set_integer(L, "live", known->live);
  lua_createtable(L, 0, (int)r->nlabels);
  for (size_t i = 0; known->by_label && r->labels && r->labels[i]; i++) {
    const char *eq = strchr(r->labels[i], '=');
    lua_pushlstring(L, r->labels[i], (size_t)(eq - r->labels[i]));
    lua_pushinteger(L, (lua_Integer)known->by_label[i]);
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, "live_by_label");
  return 2;
}

int esb_policy_session(struct esb_policy *p, const struct esb_session_ask *ask,
                       const struct esb_session_known *known, struct esb_session_decision *d,
                       struct esb_error *err) {
  lua_State *L = esb_vm_state(p->vm);
  int top = lua_gettop(L);
  int rc = -1;
  *d = (struct esb_session_decision){ .limits = { .network = -1 } };
  if (esb_session_labels_check(ask->req->labels, err) < 0)
    return -1;
  if (ask->req->egress_allow) /* refused, not dropped: the session would have no network at all */
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "limits.network: a session has no network by name yet "
                         "({\"allow\": [...]} runs outside sessions)");
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->policy_ref);  /* policy */
  lua_getfield(L, -1, "session");                    /* policy, hook */
  if (!lua_isfunction(L, -1)) {
    lua_settop(L, top);
    return esb_session_decision_default(ask, d, err);
  }
  lua_pushvalue(L, -2);                              /* policy, hook, policy */
  lua_pushcfunction(L, push_session_args);
  lua_pushlightuserdata(L, (void *)ask);
  lua_pushlightuserdata(L, (void *)known);
  if (esb_vm_call(p->vm, 2, 2, "policy", err) < 0)
    goto out;                                        /* policy, hook, policy, req, known */
  if (esb_vm_call(p->vm, 3, 2, "policy hook 'session'", err) < 0)
    goto out;                                        /* policy, decision, message */
  if (lua_isnil(L, -2)) {
    const char *msg = lua_tostring(L, -1);
    esb_error_set(err, ESB_E_INVALID_REQUEST, "%s", msg ? msg : "the policy refused the session");
    goto out;
  }
  lua_pop(L, 1);                                     /* policy, decision */
  if (!lua_istable(L, -1)) {
    esb_error_set(err, ESB_E_POLICY, "policy hook 'session' returned %s, expected a table", luaL_typename(L, -1));
    goto out;
  }
  rc = esb_read_session_decision(L, d, err);
out:
  if (rc < 0)
    esb_session_decision_release(d);
  lua_settop(L, top);
  return rc;
}

/* ---- the k8s part ---- */

/* $ECHO_SANDBOX_K8S_NAMESPACE: the namespace of every kubectl call the
 * engine makes, in place of whatever the policy names (a run's, the
 * cluster's, a warm pool's): one namespace of a shared cluster given to an
 * engine (spec/run --kubeconfig's, made for its run), which a policy could
 * not be told, its VM reading no environment. Into *ns (owned) where set:
 * 0, or -1 with err where it is no DNS-1123 label (or out of memory). */
static int pin_namespace(char **ns, struct esb_error *err) {
  const char *pinned = getenv("ECHO_SANDBOX_K8S_NAMESPACE");
  if (!pinned || !*pinned)
    return 0;
  size_t len = strlen(pinned);
  bool label = len <= 63 && strspn(pinned, "abcdefghijklmnopqrstuvwxyz0123456789-") == len && pinned[0] != '-' &&
               pinned[len - 1] != '-';
  if (!label)
    return esb_error_set(err, ESB_E_POLICY, "ECHO_SANDBOX_K8S_NAMESPACE: '%s' is not a DNS-1123 label (lower-case "
                         "letters, digits and '-', at most 63)", pinned);
  char *copy = strdup(pinned);
  if (!copy)
    return esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  free(*ns);
  *ns = copy;
  return 0;
}

/* The settings table k8s_pod.lua returned is on top of the stack. */
static void read_k8s(struct esb_fields *f, struct esb_k8s_settings *k) {
  int t = lua_gettop(f->L);
  k->image = esb_fields_string(f, t, "image");
  k->namespace_ = esb_fields_string(f, t, "namespace");
  if (!f->failed && k->namespace_ && pin_namespace(&k->namespace_, f->err) < 0)
    f->failed = true;
  esb_fields_bool(f, t, "handshake", &k->handshake);
  k->pod_running_timeout = esb_fields_string(f, t, "pod_running_timeout");
  k->context = esb_fields_string(f, t, "context");
  k->kubeconfig = esb_fields_string(f, t, "kubeconfig");
  esb_fields_uint(f, t, "delete_timeout_ms", 1, &k->delete_timeout_ms);
  esb_fields_uint(f, t, "unschedulable_grace_ms", 1, &k->unschedulable_grace_ms);
  esb_fields_uint(f, t, "not_ready_grace_ms", 1, &k->not_ready_grace_ms);
  k->overrides_json = esb_fields_string(f, t, "overrides_json");
  static const char *const required[] = {"image", "namespace", "pod_running_timeout", "overrides_json"};
  for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
    if (!f->failed && !esb_fields_push(f, t, required[i]))
      esb_fields_bad(f, t, required[i], "a string");
    else if (!f->failed)
      lua_pop(f->L, 1);
}

/* What k8s_pod.lua is told of the pod besides the plan's k8s table. */
struct pod_ctx {
  const char *pod_name, *instance;
  time_t expires;           /* when `cleanup` may remove the pod */
  uint64_t deadline_s, grace_s, max_open_files;
  bool network;
  bool egress;              /* the network by name: the shared egress proxy only */
};

static void push_pod_ctx(lua_State *L, const struct pod_ctx *c) {
  char expires[32];
  struct tm tm;
  gmtime_r(&c->expires, &tm);
  strftime(expires, sizeof expires, "%Y-%m-%dT%H:%M:%SZ", &tm);
  lua_createtable(L, 0, 7);
  lua_pushstring(L, c->pod_name);
  lua_setfield(L, -2, "pod_name");
  lua_pushstring(L, c->instance);
  lua_setfield(L, -2, "instance");
  lua_pushstring(L, expires);
  lua_setfield(L, -2, "expires_at");
  lua_pushinteger(L, (lua_Integer)c->deadline_s);
  lua_setfield(L, -2, "deadline_seconds");
  lua_pushinteger(L, (lua_Integer)c->grace_s);
  lua_setfield(L, -2, "grace_seconds");
  lua_pushboolean(L, c->network);
  lua_setfield(L, -2, "network");
  lua_pushboolean(L, c->egress);
  lua_setfield(L, -2, "egress");
  lua_pushinteger(L, (lua_Integer)c->max_open_files); /* the pod's annotation of it */
  lua_setfield(L, -2, "max_open_files");
}

/* k8s_pod.lua's settings (the function and the k8s table are on top of
 * the stack, which they leave) into k, and the pod's shape into *shape
 * (malloc'd). Returns 0, or -1 with err. */
static int finish_pod(struct esb_policy *p, const struct pod_ctx *c, struct esb_k8s_settings *k, char **shape,
                      struct esb_error *err) {
  lua_State *L = esb_vm_state(p->vm);
  push_pod_ctx(L, c);                                /* k8s_pod, k8s, ctx */
  if (esb_vm_call(p->vm, 2, 2, "policy", err) < 0)
    return -1;                                       /* -- */
  if (lua_isnil(L, -2)) {                            /* nil, why: a label the API server would refuse */
    esb_error_set(err, ESB_E_INVALID_REQUEST, "%s", lua_tostring(L, -1));
    lua_pop(L, 2);
    return -1;
  }
  lua_pop(L, 1);                                     /* settings */
  struct esb_fields f = ESB_FIELDS_INIT(L, "plan", err);
  snprintf(f.path, sizeof f.path, "k8s.");
  read_k8s(&f, k);
  *shape = esb_fields_string(&f, -1, "shape");
  lua_pop(L, 1);                                     /* -- */
  if (!f.failed && !*shape)
    esb_error_set(err, ESB_E_SYSTEM, "policy: out of memory");
  if (f.failed || !*shape)
    return -1;
  snprintf(k->instance, sizeof k->instance, "%s", p->instance);
  if (!(k->pod_name = strdup(c->pod_name)))
    return esb_error_set(err, ESB_E_SYSTEM, "policy: out of memory");
  return 0;
}

/* The pool whose shape the plan's pod has: the plan may take a pod of it
 * (k->warm_pool). A plan without the handshake never does: the run in a
 * warm pod is the handshake's exec. */
static int match_pool(const struct esb_policy *p, const char *shape, struct esb_k8s_settings *k,
                      struct esb_error *err) {
  for (size_t i = 0; i < p->n_pools && k->handshake; i++) {
    const struct esb_warm_pool *pool = &p->pools[i];
    if (strcmp(pool->shape, shape) != 0)
      continue;
    if (!(k->warm_pool = strdup(pool->name)))
      return esb_error_set(err, ESB_E_SYSTEM, "policy: out of memory");
    memcpy(k->warm_hash, pool->hash, sizeof k->warm_hash);
    k->warm_claim_grace_ms = pool->claim_grace_ms;
    return 0;
  }
  return 0;
}

/* The plan table is on top of the stack. */
static int finish_k8s(struct esb_policy *p, struct esb_plan *plan, struct esb_error *err) {
  lua_State *L = esb_vm_state(p->vm);
  char name[64];
  hex_uuid(name + snprintf(name, sizeof name, "echo-sandbox-"));
  uint64_t deadline_s = (plan->timeout_ms + 999) / 1000;
  struct pod_ctx c = {
    .pod_name = name, .instance = p->instance,
    .expires = time(NULL) + (time_t)deadline_s + (time_t)((plan->kill_grace_ms + 999) / 1000) + EXPIRY_MARGIN_SECS,
    .deadline_s = deadline_s, .grace_s = esb_k8s_grace_seconds(plan->kill_grace_ms),
    .max_open_files = plan->max_open_files, .network = plan->local.network,
    .egress = plan->egress_allow != NULL,
  };
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->k8s_pod_ref); /* plan, k8s_pod */
  lua_pushliteral(L, "k8s");
  lua_rawget(L, -3);                                 /* plan, k8s_pod, plan.k8s */
  char *shape = NULL;
  int rc = finish_pod(p, &c, &plan->k8s, &shape, err); /* plan */
  if (rc == 0)
    rc = match_pool(p, shape, &plan->k8s, err);
  free(shape);
  return rc;
}

/* ---- warm pools ---- */

/* err's message after what: the failure said where it happened. */
static int say_where(struct esb_error *err, const char *what) {
  char why[ESB_MESSAGE_MAX];
  snprintf(why, sizeof why, "%s", err->message);
  return esb_error_set(err, err->code, "%s: %.3900s", what, why);
}

/* Renders pool i's pod named pod_name into k (zeroed on entry; the
 * caller's to release) and its shape into *shape. */
static int render_pool(struct esb_policy *p, size_t i, const char *pod_name, time_t now, struct esb_k8s_settings *k,
                       char **shape, struct esb_error *err) {
  lua_State *L = esb_vm_state(p->vm);
  const struct esb_warm_pool *pool = &p->pools[i];
  int top = lua_gettop(L);
  struct pod_ctx c = { .pod_name = pod_name, .instance = p->instance,
                       .expires = now + (time_t)pool->max_age_s + EXPIRY_MARGIN_SECS,
                       .deadline_s = pool->max_age_s, .grace_s = 1, .network = pool->network };
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->k8s_pod_ref);   /* k8s_pod */
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->warm_pool_ref); /* k8s_pod, warm_pool */
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->pool_refs[i]);
  lua_pushstring(L, p->cluster_namespace);             /* k8s_pod, warm_pool, entry, namespace */
  int rc = esb_vm_call(p->vm, 2, 1, "policy", err);    /* k8s_pod, k8s */
  if (rc == 0)
    rc = finish_pod(p, &c, k, shape, err);             /* -- */
  lua_settop(L, top);
  if (rc < 0) {
    char what[128];
    snprintf(what, sizeof what, "k8s.warm_pools: pool '%s' cannot be made a pod", pool->name);
    say_where(err, what);
  }
  return rc;
}

/* The pool at the top of the stack, the idx'th: read, then rendered once
 * for its shape, which every request's pod is matched against. */
static int load_pool(struct esb_policy *p, size_t idx, struct esb_error *err) {
  lua_State *L = esb_vm_state(p->vm);
  struct esb_warm_pool *pool = &p->pools[p->n_pools];
  *pool = (struct esb_warm_pool){ 0 };
  int rc = esb_read_warm_pool(L, idx, pool, err);
  for (size_t i = 0; rc == 0 && i < p->n_pools; i++)
    if (strcmp(p->pools[i].name, pool->name) == 0)
      rc = esb_error_set(err, ESB_E_POLICY, "k8s.warm_pools: two pools are named '%s'", pool->name);
  if (rc == 0 && !pool->namespace_ && !(pool->namespace_ = strdup(p->cluster_namespace)))
    rc = esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  if (rc == 0)
    rc = pin_namespace(&pool->namespace_, err);
  if (rc < 0) {
    esb_warm_pool_release(pool);
    lua_pop(L, 1);
    return -1;
  }
  p->pool_refs[p->n_pools++] = luaL_ref(L, LUA_REGISTRYINDEX); /* -- */
  struct esb_k8s_settings k = { 0 };
  rc = render_pool(p, p->n_pools - 1, ESB_WARM_PREFIX "shape", time(NULL), &k, &pool->shape, err);
  esb_k8s_settings_release(&k);
  if (rc == 0)
    esb_warm_hash(pool->shape, pool->hash);
  return rc;
}

/* policy.k8s.warm_pools, each entry read and made a pod once: a pool the
 * engine cannot turn into a pod fails the load (and a reload keeps the
 * policy it had). */
static int load_warm_pools(struct esb_policy *p, struct esb_error *err) {
  lua_State *L = esb_vm_state(p->vm);
  int top = lua_gettop(L), rc = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->policy_ref);            /* policy */
  if (lua_getfield(L, -1, "k8s") != LUA_TTABLE || lua_getfield(L, -1, "warm_pools") == LUA_TNIL) {
    lua_settop(L, top);
    return 0;
  }                                                            /* policy, k8s, pools */
  lua_Unsigned n = lua_istable(L, -1) ? lua_rawlen(L, -1) : 0;
  struct esb_k8s_settings cluster = { 0 };
  if (!lua_istable(L, -1))
    rc = esb_error_set(err, ESB_E_POLICY, "k8s.warm_pools: expected an array of pools, got %s", luaL_typename(L, -1));
  else if (n > 64)
    rc = esb_error_set(err, ESB_E_POLICY, "k8s.warm_pools: at most 64 pools");
  else if (!(p->pools = calloc(n + 1, sizeof *p->pools)) || !(p->pool_refs = calloc(n + 1, sizeof *p->pool_refs)))
    rc = esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  else if ((rc = esb_policy_cluster(p, &cluster, err)) == 0)
    p->cluster_namespace = cluster.namespace_, cluster.namespace_ = NULL;
  esb_k8s_settings_release(&cluster);
  for (lua_Unsigned i = 1; rc == 0 && i <= n; i++) {
    if (lua_rawgeti(L, -1, (lua_Integer)i) != LUA_TTABLE) {    /* policy, k8s, pools, entry */
      rc = esb_error_set(err, ESB_E_POLICY, "k8s.warm_pools[%llu]: expected a table, got %s",
                         (unsigned long long)i, luaL_typename(L, -1));
      break;
    }
    rc = load_pool(p, (size_t)i, err);                         /* policy, k8s, pools */
  }
  lua_settop(L, top);
  if (rc < 0) {
    char what[ESB_MESSAGE_MAX / 2];
    snprintf(what, sizeof what, "policy %s", p->path);
    say_where(err, what);
  }
  return rc;
}

size_t esb_policy_warm_pools(const struct esb_policy *p, const struct esb_warm_pool **pools) {
  *pools = p->pools;
  return p->n_pools;
}

int esb_policy_warm_pod(struct esb_policy *p, size_t i, const char *pod_name, struct esb_k8s_settings *k,
                        struct esb_error *err) {
  char *shape = NULL;
  *k = (struct esb_k8s_settings){ 0 };
  int rc = render_pool(p, i, pod_name, time(NULL), k, &shape, err);
  /* The policy VM renders as it did at load: a pool whose pods would now
   * differ from its shape (a policy with state of its own) is refused. */
  if (rc == 0 && strcmp(shape, p->pools[i].shape) != 0)
    rc = esb_error_set(err, ESB_E_POLICY, "k8s.warm_pools: pool '%s' renders another pod than at load",
                       p->pools[i].name);
  free(shape);
  if (rc < 0)
    esb_k8s_settings_release(k);
  return rc;
}

/* The request's code as one more file, where the plan says. */
static int add_code_file(struct esb_plan *plan, const struct esb_request *req, struct esb_error *err) {
  if (!req->code)
    return esb_error_set(err, ESB_E_POLICY, "policy hook 'plan' returned a code_file for a request without code");
  size_t n = strlen(plan->code_file);
  for (size_t i = 0; i < req->nfiles; i++) {
    const char *p = req->files[i].path;
    size_t m = strlen(p);
    bool clash = !strcmp(p, plan->code_file) || (m > n && !strncmp(p, plan->code_file, n) && p[n] == '/') ||
                 (n > m && !strncmp(plan->code_file, p, m) && plan->code_file[m] == '/');
    if (clash)
      return esb_error_set(err, ESB_E_INVALID_REQUEST, "invalid request: 'files.%s': the policy writes the code "
                           "to '%s' in the working dir", p, plan->code_file);
  }
  if (!(plan->owned_files = calloc(req->nfiles + 1, sizeof *plan->owned_files)))
    return esb_error_set(err, ESB_E_SYSTEM, "policy: out of memory");
  if (req->nfiles)
    memcpy(plan->owned_files, req->files, req->nfiles * sizeof *req->files);
  plan->owned_files[req->nfiles] = (struct esb_file){ .path = plan->code_file, .data = req->code,
                                                      .len = strlen(req->code), .mode = 0644 };
  plan->files = plan->owned_files;
  plan->n_files = req->nfiles + 1;
  return 0;
}

int esb_policy_plan(struct esb_policy *p, const struct esb_request *req, struct esb_plan *plan, bool want_k8s,
                    struct esb_error *err) {
  lua_State *L = esb_vm_state(p->vm);
  int top = lua_gettop(L);
  int rc = -1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->policy_ref);  /* policy */
  lua_pushcfunction(L, push_request);
  lua_pushlightuserdata(L, (void *)req);
  if (esb_vm_call(p->vm, 1, 1, "policy", err) < 0)
    goto out;                                        /* policy, request */
  lua_pushliteral(L, "plan");
  lua_rawget(L, -3);                                 /* policy, request, plan hook */
  lua_pushvalue(L, -3);                              /* policy, request, hook, policy */
  lua_rotate(L, -3, 2);                              /* policy, hook, policy, request */
  if (esb_vm_call(p->vm, 2, 2, "policy hook 'plan'", err) < 0)
    goto out;                                        /* policy, plan, message */
  if (lua_isnil(L, -2)) {
    const char *msg = lua_tostring(L, -1);
    esb_error_set(err, ESB_E_INVALID_REQUEST, "%s", msg ? msg : "the policy refused the request");
    goto out;
  }
  lua_pop(L, 1);                                     /* policy, plan */
  if (!lua_istable(L, -1)) {
    esb_error_set(err, ESB_E_POLICY, "policy hook 'plan' returned %s, expected a table", luaL_typename(L, -1));
    goto out;
  }
  if (esb_read_plan(L, plan, err) < 0)
    goto out;
  /* A local plan has a k8s part only where the request asked for k8s (the
   * policy contract); want_k8s finishes it where there is one. */
  lua_pushliteral(L, "k8s");
  bool has_k8s = lua_rawget(L, -2) != LUA_TNIL; /* plan, plan.k8s */
  lua_pop(L, 1);                                 /* plan */
  rc = 0;
  if (plan->backend == ESB_BACKEND_K8S || (want_k8s && has_k8s))
    rc = finish_k8s(p, plan, err);
  plan->stdin_data = req->stdin_data;
  plan->stdin_len = req->stdin_len;
  plan->stdin_fd = req->stdin_fd;
  plan->files = req->files;
  plan->n_files = req->nfiles;
  plan->collect.patterns = (const char *const *)req->collect;
  plan->collect.n_patterns = req->ncollect;
  if (rc == 0 && plan->code_file)
    rc = add_code_file(plan, req, err);
out:
  if (rc < 0)
    esb_plan_release(plan);
  lua_settop(L, top);
  return rc;
}

void esb_languages_free(struct esb_language *languages, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(languages[i].name);
    free(languages[i].image);
    free(languages[i].file);
  }
  free(languages);
}

int esb_policy_languages(struct esb_policy *p, struct esb_language **out, size_t *n, struct esb_error *err) {
  lua_State *L = esb_vm_state(p->vm);
  int top = lua_gettop(L);
  int rc = -1;
  *out = NULL;
  *n = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->policy_ref); /* policy */
  lua_getfield(L, -1, "known_languages");            /* policy, hook */
  if (!lua_isfunction(L, -1)) {
    esb_error_set(err, ESB_E_POLICY,
                  "the policy has no hook 'known_languages' (the default policy's lists its languages)");
    goto out;
  }
  lua_insert(L, -2);                                 /* hook, policy */
  if (esb_vm_call(p->vm, 1, 1, "policy hook 'known_languages'", err) < 0)
    goto out;                                        /* list */
  if (!lua_istable(L, -1)) {
    esb_error_set(err, ESB_E_POLICY, "policy hook 'known_languages' returned %s, expected an array",
                  luaL_typename(L, -1));
    goto out;
  }
  size_t count = (size_t)lua_rawlen(L, -1);
  struct esb_language *list = calloc(count ? count : 1, sizeof *list);
  if (!list) {
    esb_error_set(err, ESB_E_SYSTEM, "out of memory");
    goto out;
  }
  struct esb_fields f = ESB_FIELDS_INIT(L, "known_languages", err);
  for (size_t i = 0; i < count && !f.failed; i++) {
    lua_rawgeti(L, -1, (lua_Integer)i + 1);          /* list, entry */
    if (!lua_istable(L, -1)) {
      esb_fields_bad_value(&f, -1, "an entry", "a table { name, image, file }");
    } else {
      list[i].name = esb_fields_string(&f, -1, "name");
      list[i].image = esb_fields_string(&f, -1, "image");
      list[i].file = esb_fields_string(&f, -1, "file");
      if (!f.failed && !list[i].name)
        esb_fields_bad(&f, -1, "name", "a string");
    }
    lua_pop(L, 1);                                   /* list */
  }
  if (f.failed) {
    esb_languages_free(list, count);
    goto out;
  }
  *out = list;
  *n = count;
  rc = 0;
out:
  lua_settop(L, top);
  return rc;
}

int esb_policy_cluster(struct esb_policy *p, struct esb_k8s_settings *k, struct esb_error *err) {
  lua_State *L = esb_vm_state(p->vm);
  int top = lua_gettop(L);
  int rc = -1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->policy_ref); /* policy */
  lua_getfield(L, -1, "cluster");                    /* policy, policy.cluster */
  if (!lua_isfunction(L, -1)) {
    esb_error_set(err, ESB_E_POLICY, "the policy has no hook 'cluster' (the default policy's tells the operator "
                  "commands which cluster to use)");
    goto out;
  }
  lua_insert(L, -2);                                 /* cluster hook, policy */
  if (esb_vm_call(p->vm, 1, 1, "policy hook 'cluster'", err) < 0)
    goto out;
  if (!lua_istable(L, -1)) {
    esb_error_set(err, ESB_E_POLICY, "policy hook 'cluster' returned %s, expected a table", luaL_typename(L, -1));
    goto out;
  }
  struct esb_fields f = ESB_FIELDS_INIT(L, "cluster", err);
  k->namespace_ = esb_fields_string(&f, -1, "namespace");
  k->context = esb_fields_string(&f, -1, "context");
  k->kubeconfig = esb_fields_string(&f, -1, "kubeconfig");
  if (!k->namespace_ || !*k->namespace_)
    esb_fields_bad(&f, -1, "namespace", "a non-empty string");
  else if (!f.failed && pin_namespace(&k->namespace_, err) < 0)
    f.failed = true;
  if (k->context && !*k->context)
    esb_fields_bad(&f, -1, "context", "a non-empty string");
  if (k->kubeconfig && !*k->kubeconfig)
    esb_fields_bad(&f, -1, "kubeconfig", "a non-empty string");
  if (f.failed) {
    esb_k8s_settings_release(k);
    goto out;
  }
  rc = 0;
out:
  lua_settop(L, top);
  return rc;
}
