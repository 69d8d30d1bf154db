/* echo-sandbox cleanup: deletes the pods a crashed executor left behind. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "backend/k8s.h"
#include "cli/cli.h"
#include "policy/policy.h"
#include "luaglue/call.h"
#include "luaglue/embedded.h"
#include "codec/json.h"
#include "engine/strv.h"

static const char cleanup_usage[] =
  "usage: echo-sandbox cleanup [--policy FILE] [--namespace NS] [--all] [--dry-run]\n"
  "\n"
  "Deletes the pods echo-sandbox manages (label app.kubernetes.io/managed-by=\n"
  "echo-sandbox) in the policy's namespace whose echo-sandbox.io/expires-at has\n"
  "passed: an executor that crashed left them. A pod in flight expires only a\n"
  "minute after its run's deadline, so it is never touched.\n"
  "\n"
  "options:\n"
  "  --all            delete every managed pod, expired or not\n"
  "  --dry-run        only list what would be deleted and what is kept\n"
  "  --namespace NS   look in NS instead of the policy's namespace\n"
  "  --policy FILE    load this policy instead of the default search\n"
  "  -h, --help       show this help\n";

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

int esb_cli_cleanup(int argc, char **argv) {
  static const struct option longopts[] = {
    {"policy", required_argument, 0, 'p'}, {"namespace", required_argument, 0, 'n'},
    {"all", no_argument, 0, 'a'}, {"dry-run", no_argument, 0, 'd'}, {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0}};
  const char *policy_path = NULL, *namespace_ = NULL;
  bool all = false, dry_run = false;
  optind = 1;
  opterr = 0;
  for (int c; (c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1;) {
    switch (c) {
    case 'p': policy_path = optarg; break;
    case 'n': namespace_ = optarg; break;
    case 'a': all = true; break;
    case 'd': dry_run = true; break;
    case 'h': fputs(cleanup_usage, stdout); return 0;
    default:
      fprintf(stderr, "echo-sandbox cleanup: unknown or incomplete option '%s'\n%s", argv[optind - 1],
              cleanup_usage);
      return 125;
    }
  }
  char err[ESB_MESSAGE_MAX];
  int rc = 125;
  struct esb_k8s_settings cluster = { 0 };
  struct esb_result got = ESB_RESULT_INIT, deleted = ESB_RESULT_INIT;
  struct esb_strv tail = ESB_STRV_INIT;
  lua_State *L = NULL;
  struct esb_policy *policy = esb_policy_open(policy_path, err, sizeof err);
  if (!policy || esb_policy_cluster(policy, &cluster, err, sizeof err) != ESB_OK) {
    fprintf(stderr, "echo-sandbox cleanup: %s\n", err);
    goto out;
  }
  if (namespace_) {
    free(cluster.namespace_);
    cluster.namespace_ = strdup(namespace_);
  }
  const char *list[] = {"get", "pods", "-l", "app.kubernetes.io/managed-by=echo-sandbox", "-o", "json",
                        "--request-timeout=20s", NULL};
  esb_k8s_kubectl_run(&cluster, list, 30000, &got);
  if (got.status != ESB_STATUS_EXITED || got.exit_code != 0) {
    fprintf(stderr, "echo-sandbox cleanup: listing pods failed: %s%s\n",
            got.error_message ? got.error_message : "", got.err.data ? got.err.data : "");
    goto out;
  }
  if (!(L = esb_json_state()))
    goto out;
  lua_pushcfunction(L, pods_of_list);
  lua_pushlstring(L, got.out.data ? got.out.data : "", got.out.len);
  if (esb_lua_pcall(L, 1, 1, ESB_LUA_MESSAGE, "kubectl's pod list", err, sizeof err) < 0) {
    fprintf(stderr, "echo-sandbox cleanup: %s\n", err);
    goto out;
  }
  char now[32];
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
  int doomed = 0;
  esb_strv_push(&tail, "delete");
  esb_strv_push(&tail, "pod");
  for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, -1); i++) {
    lua_rawgeti(L, -1, i);
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    const char *name = lua_tostring(L, -2), *expires = lua_tostring(L, -1);
    /* RFC 3339 times in UTC compare as strings. */
    bool expired = *expires && strcmp(expires, now) < 0;
    if (name && (all || expired)) {
      printf("%s %s (%s %s)\n", dry_run ? "would delete" : "deleting", name,
             *expires ? (expired ? "expired at" : "expires at") : "no expiry", expires);
      esb_strv_push(&tail, name);
      doomed++;
    } else if (name) {
      printf("keeping %s (%s %s)\n", name, *expires ? "expires at" : "no expiry", expires);
    }
    lua_pop(L, 3);
  }
  rc = 0;
  if (doomed && !dry_run) {
    esb_strv_push(&tail, "--ignore-not-found");
    esb_strv_push(&tail, "--wait=false");
    esb_k8s_kubectl_run(&cluster, (const char *const *)tail.v, 60000, &deleted);
    if (deleted.status != ESB_STATUS_EXITED || deleted.exit_code != 0) {
      fprintf(stderr, "echo-sandbox cleanup: deleting failed: %s%s\n",
              deleted.error_message ? deleted.error_message : "", deleted.err.data ? deleted.err.data : "");
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
