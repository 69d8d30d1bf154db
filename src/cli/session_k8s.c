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

#include "backend/k8s_session.h"
#include "codec/json.h"
#include "dispatch/session_k8s.h"

/* One session: a line, or with L its JSON object. */
static void say_session(const struct esb_k8s_session_view *s, void *arg) {
  lua_State *L = arg;
  if (L) {
    esb_k8s_session_push(L, s);
    esb_json_print(L);
    return;
  }
  time_t expires = (time_t)s->expires_s;
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&expires));
  printf("%s  %s%s  expires %s\n", s->id, strcmp(s->state, "alive") == 0 ? "alive" : "ended: ",
         strcmp(s->state, "alive") == 0 ? "" : s->state, when);
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
    rc = esb_k8s_session_remove_one(&k, a.id, &err) < 0 ? esb_cli_session_fail(&err) : 0;
  else
    rc = esb_k8s_session_each(&k, a.id, say_session, L, &err) < 0 ? esb_cli_session_fail(&err) : 0;
  if (L)
    lua_close(L);
  esb_k8s_settings_release(&k);
  esb_policy_close(policy);
  return rc;
}
