/* echo-sandbox cleanup: removes the idle cgroups of the engines' shared
 * pool, and deletes the pods a crashed executor left behind. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "backend/k8s.h"
#include "backend/kubectl_words.h"
#include "cli/cli.h"
#include "policy/policy.h"
#include "luaglue/call.h"
#include "luaglue/embedded.h"
#include "codec/json.h"
#include "engine/cgroup.h"
#include "engine/strv.h"

static const char cleanup_usage[] =
  "usage: echo-sandbox cleanup [--policy FILE] [--namespace NS] [--all] [--dry-run] [--local-only]\n"
  "\n"
  "Removes the idle cgroups of the pool that local runs share\n"
  "(echo-sandbox-pool-N, next to the runs' own cgroups; a cgroup in use is\n"
  "kept), and the local sessions that ended or whose pid 1 is gone (their\n"
  "directories and cgroups). Then deletes the pods echo-sandbox manages (label\n"
  "app.kubernetes.io/managed-by=echo-sandbox) in the policy's namespace whose\n"
  "echo-sandbox.io/expires-at has passed: an executor that crashed left them;\n"
  "and the pods of k8s sessions that ended (their TTL or idle timeout), and\n"
  "the ready warm pods of pools the policy no longer has.\n"
  "A pod in flight expires only a minute after its run's deadline, so it is\n"
  "never touched.\n"
  "\n"
  "options:\n"
  "  --all            delete every managed pod, expired or not\n"
  "  --dry-run        only list what would be deleted and what is kept\n"
  "  --local-only     only the local part: the cgroups and sessions, no cluster\n"
  "  --namespace NS   look in NS instead of the policy's namespace\n"
  "  --policy FILE    load this policy instead of the default search\n"
  "  -h, --help       show this help\n";

struct slots_said {
  bool dry_run, failed;
};

static void say_slot(const char *path, int err, void *arg) {
  struct slots_said *said = arg;
  if (!err) {
    printf("%s %s\n", said->dry_run ? "would remove" : "removed", path);
  } else if (err == EBUSY) {
    printf("keeping %s (in use)\n", path);
  } else {
    fprintf(stderr, "echo-sandbox cleanup: cannot remove %s: %s\n", path, strerror(err));
    said->failed = true;
  }
}

/* Runs protected: decodes the PodList (1) and pushes kube.pods of it, an
 * array of {name, expires-at or ""}. */
static int pods_of_list(lua_State *L) {
  esb_lua_embedded_require(L, "echo_sandbox.engine.kube");
  lua_getfield(L, -1, "pods");                 /* text, kube, pods */
  esb_json_field(L, "decode");
  lua_pushvalue(L, 1);                         /* text, kube, pods, decode, text */
  lua_call(L, 1, 1);                           /* text, kube, pods, list */
  lua_call(L, 1, 1);                           /* text, kube, pods of list */
  return 1;
}

/* What a kubectl that failed said, for the operator: its error text, without
 * its klog lines (client-go's internal retries and discovery notes, which
 * repeat the error in a form meant for kubectl's developers). */
static const char *kubectl_said(struct esb_result *r) {
  if (!r->err.data)
    return "";
  r->err.len = esb_kubectl_strip_own_lines(r->err.data, r->err.len);
  while (r->err.len && r->err.data[r->err.len - 1] == '\n')
    r->err.len--; /* the caller ends the line */
  r->err.data[r->err.len] = '\0';
  return r->err.data;
}

struct cleanup_options {
  const char *policy_path, *namespace_;
  bool all, dry_run, local_only;
};

/* Reads the options into o: -1 to go on, or the exit status. */
static int read_cleanup_options(int argc, char **argv, struct cleanup_options *o) {
  static const struct option longopts[] = {
    {"policy", required_argument, 0, 'p'}, {"namespace", required_argument, 0, 'n'},
    {"all", no_argument, 0, 'a'}, {"dry-run", no_argument, 0, 'd'}, {"local-only", no_argument, 0, 'l'},
    {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  optind = 1;
  opterr = 0;
  for (int c; (c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1;) {
    switch (c) {
    case 'p': o->policy_path = optarg; break;
    case 'n': o->namespace_ = optarg; break;
    case 'a': o->all = true; break;
    case 'd': o->dry_run = true; break;
    case 'l': o->local_only = true; break;
    case 'h': fputs(cleanup_usage, stdout); return 0;
    default:
      fprintf(stderr, "echo-sandbox cleanup: unknown or incomplete option '%s'\n%s", argv[optind - 1],
              cleanup_usage);
      return 125;
    }
  }
  return -1;
}

/* Whether pool is none of the policy's: its ready pods can serve no run. */
static bool pool_gone(struct esb_policy *policy, const char *pool) {
  const struct esb_warm_pool *pools;
  size_t n = esb_policy_warm_pools(policy, &pools);
  for (size_t i = 0; i < n; i++)
    if (strcmp(pools[i].name, pool) == 0)
      return false;
  return true;
}

/* Prints what becomes of each pod of the list on top of L ({name, expires,
 * ended, warm_pool} each) and pushes the names of those to delete onto
 * tail: every one with --all, else the expired ones, the sessions' that
 * ended and the ready warm pods of pools the policy no longer has.
 * Returns how many. */
static int pick_pods(lua_State *L, struct esb_policy *policy, const struct cleanup_options *o,
                     struct esb_strv *tail) {
  char now[32];
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
  int doomed = 0;
  for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, -1); i++) {
    lua_rawgeti(L, -1, i);
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    lua_rawgeti(L, -3, 3);
    lua_rawgeti(L, -4, 4);
    const char *name = lua_tostring(L, -4), *expires = lua_tostring(L, -3), *pool = lua_tostring(L, -1);
    bool ended = lua_toboolean(L, -2); /* a session that ended (its TTL, its idle timeout) */
    /* RFC 3339 times in UTC compare as strings. */
    bool expired = *expires && strcmp(expires, now) < 0;
    bool orphan = pool && *pool && pool_gone(policy, pool);
    if (name && (o->all || expired || ended || orphan)) {
      printf("%s %s (%s %s)\n", o->dry_run ? "would delete" : "deleting", name,
             orphan && !expired ? "a warm pod of a pool the policy no longer has; expires at" :
             ended && !expired ? "a session that ended; expires at" :
             *expires ? (expired ? "expired at" : "expires at") : "no expiry", expires);
      esb_strv_push(tail, name);
      doomed++;
    } else if (name) {
      printf("keeping %s (%s %s)\n", name, *expires ? "expires at" : "no expiry", expires);
    }
    lua_pop(L, 5);
  }
  return doomed;
}

int esb_cli_cleanup(int argc, char **argv) {
  struct cleanup_options o = { 0 };
  int done = read_cleanup_options(argc, argv, &o);
  if (done >= 0)
    return done;
  struct slots_said said = { .dry_run = o.dry_run };
  esb_cgroup_slots_remove(o.dry_run, say_slot, &said);
  said.failed |= esb_cli_session_sweep(o.dry_run);
  if (o.local_only)
    return said.failed;
  struct esb_error err = ESB_ERROR_INIT;
  int rc = 125;
  struct esb_k8s_settings cluster = { 0 };
  struct esb_result got = ESB_RESULT_INIT, deleted = ESB_RESULT_INIT;
  struct esb_strv tail = ESB_STRV_INIT;
  lua_State *L = NULL;
  struct esb_policy *policy = esb_policy_open(o.policy_path, &err);
  if (!policy || esb_policy_cluster(policy, &cluster, &err) < 0) {
    fprintf(stderr, "echo-sandbox cleanup: %s\n", err.message);
    goto out;
  }
  if (o.namespace_) {
    free(cluster.namespace_);
    cluster.namespace_ = strdup(o.namespace_);
  }
  const char *list[] = {"get", "pods", "-l", "app.kubernetes.io/managed-by=echo-sandbox", "-o", "json",
                        "--request-timeout=20s", NULL};
  esb_k8s_kubectl_run(&cluster, list, 30000, &got);
  if (got.status != ESB_STATUS_EXITED || got.exit_code != 0) {
    fprintf(stderr, "echo-sandbox cleanup: listing pods failed: %s%s\n",
            got.error_message ? got.error_message : "", kubectl_said(&got));
    goto out;
  }
  if (!(L = esb_json_state()))
    goto out;
  lua_pushcfunction(L, pods_of_list);
  lua_pushlstring(L, got.out.data ? got.out.data : "", got.out.len);
  if (esb_lua_pcall(L, 1, 1, ESB_LUA_MESSAGE, ESB_E_BACKEND, "kubectl's pod list", &err) < 0) {
    fprintf(stderr, "echo-sandbox cleanup: %s\n", err.message);
    goto out;
  }
  esb_strv_push(&tail, "delete");
  esb_strv_push(&tail, "pod");
  int doomed = pick_pods(L, policy, &o, &tail);
  rc = said.failed;
  if (doomed && !o.dry_run) {
    esb_strv_push(&tail, "--ignore-not-found");
    esb_strv_push(&tail, "--wait=false");
    esb_k8s_kubectl_run(&cluster, (const char *const *)tail.v, 60000, &deleted);
    if (deleted.status != ESB_STATUS_EXITED || deleted.exit_code != 0) {
      fprintf(stderr, "echo-sandbox cleanup: deleting failed: %s%s\n",
              deleted.error_message ? deleted.error_message : "", kubectl_said(&deleted));
      rc = 1;
    }
  }
out:
  esb_strv_clear(&tail);
  if (L)
    lua_close(L);
  esb_result_release(&got);
  esb_result_release(&deleted);
  esb_k8s_settings_release(&cluster);
  esb_policy_close(policy);
  return rc;
}
