#include "backend/k8s_run_table.h"

#define S(x) ESB_K8S_##x
#define E(x) ESB_K8S_EV_##x
#define DO(x) ESB_K8S_DO_##x

/* Why a row ends the run with no delete: no pod can be left behind. */
#define WHY_UNREACHABLE "no try of the create connected: the cluster never saw the run"
#define WHY_NO_KUBECTL "kubectl did not run: no create was sent"
#define WHY_NOT_OURS "the pod of that name is another instance's: it is left alone"
#define WHY_SESSION "the pod is a session's, which outlives its runs (its TTL, idle timeout and `cleanup` end it)"
#define WHY_NOTHING_CLAIMED "kubectl no longer starts: no pod was made, and no claim went out"
#define WHY_LIST_CUT "interrupted while listing the pool: no pod was made or claimed"
#define WHY_CLAIM_CUT "interrupted during a claim: a pod it may have claimed is labelled claimed, ended by its " \
                      "activeDeadlineSeconds (the pool's max age); deleting it could end another engine's run"
#define WHY_NO_MORE_KUBECTL "kubectl no longer starts, so no delete could: the pod's activeDeadlineSeconds and " \
                        "`cleanup` remove a pod the last try may have made"

/* The rows in the order of the table in k8s_run_table.h. */
const struct esb_k8s_row esb_k8s_rows[] = {
  { S(CLAIM_LIST),  E(CANDIDATE),          DO(CLAIM),              S(CLAIM),       NULL },
  { S(CLAIM_LIST),  E(COLD),               DO(CREATE),             S(RUN),         NULL },
  { S(CLAIM_LIST),  E(INTERRUPTED),        DO(FINISH),             S(DONE),        WHY_LIST_CUT },
  { S(CLAIM_LIST),  E(CLAIM_NOT_STARTED),  DO(NO_KUBECTL),         S(DONE),        WHY_NOTHING_CLAIMED },
  { S(CLAIM_LIST),  E(RUN_NOT_STARTED),    DO(NO_KUBECTL),         S(DONE),        WHY_NOTHING_CLAIMED },
  { S(CLAIM),       E(CLAIMED),            DO(CREATE),             S(RUN),         NULL },
  { S(CLAIM),       E(CANDIDATE),          DO(CLAIM),              S(CLAIM),       NULL },
  { S(CLAIM),       E(COLD),               DO(CREATE),             S(RUN),         NULL },
  { S(CLAIM),       E(INTERRUPTED),        DO(FINISH),             S(DONE),        WHY_CLAIM_CUT },
  { S(CLAIM),       E(CLAIM_NOT_STARTED),  DO(NO_KUBECTL),         S(DONE),        WHY_NOTHING_CLAIMED },
  { S(CLAIM),       E(RUN_NOT_STARTED),    DO(NO_KUBECTL_DELETE),  S(DELETE),      NULL },
  { S(CLAIM),       E(DELETE_NOT_STARTED), DO(DELETE_NOT_STARTED), S(DONE),        NULL },
  { S(RUN),         E(KNOWN),              DO(DELETE),             S(DELETE),      NULL },
  { S(RUN),         E(FAILED),             DO(GET),                S(GET),         NULL },
  { S(RUN),         E(RETRY),              DO(WAIT_CREATE),        S(CREATE_WAIT), NULL },
  { S(RUN),         E(RETRY_UNSURE),       DO(WAIT_CREATE),        S(PROBE_WAIT),  NULL },
  { S(RUN),         E(UNREACHABLE),        DO(FINISH),             S(DONE),        WHY_UNREACHABLE },
  { S(RUN),         E(NO_KUBECTL),         DO(NO_KUBECTL),         S(DONE),        WHY_NO_KUBECTL },
  { S(RUN),         E(GET_NOT_STARTED),    DO(DELETE),             S(DELETE),      NULL },
  { S(RUN),         E(DELETE_NOT_STARTED), DO(DELETE_NOT_STARTED), S(DONE),        NULL },
  { S(RUN),         E(IN_SESSION),         DO(FINISH),             S(DONE),        WHY_SESSION },
  { S(CREATE_WAIT), E(TIMER),              DO(CREATE),             S(RUN),         NULL },
  { S(CREATE_WAIT), E(RUN_NOT_STARTED),    DO(NO_KUBECTL),         S(DONE),        WHY_NO_MORE_KUBECTL },
  { S(PROBE_WAIT),  E(TIMER),              DO(PROBE),              S(PROBE),       NULL },
  { S(PROBE_WAIT),  E(PROBE_NOT_STARTED),  DO(NO_KUBECTL),         S(DONE),        WHY_NO_MORE_KUBECTL },
  { S(PROBE),       E(OURS),               DO(CREATE),             S(RUN),         NULL },
  { S(PROBE),       E(MISSING),            DO(CREATE),             S(RUN),         NULL },
  { S(PROBE),       E(NOT_OURS),           DO(FINISH),             S(DONE),        WHY_NOT_OURS },
  { S(PROBE),       E(UNREAD),             DO(DELETE),             S(DELETE),      NULL },
  { S(PROBE),       E(RUN_NOT_STARTED),    DO(NO_KUBECTL_DELETE),  S(DELETE),      NULL },
  { S(PROBE),       E(DELETE_NOT_STARTED), DO(DELETE_NOT_STARTED), S(DONE),        NULL },
  { S(GET),         E(READ),               DO(DELETE),             S(DELETE),      NULL },
  { S(GET),         E(DELETE_NOT_STARTED), DO(DELETE_NOT_STARTED), S(DONE),        NULL },
  { S(DELETE),      E(RETRY),              DO(WAIT_DELETE),        S(DELETE_WAIT), NULL },
  { S(DELETE),      E(DELETED),            DO(FINISH),             S(DONE),        NULL },
  { S(DELETE_WAIT), E(TIMER),              DO(DELETE),             S(DELETE),      NULL },
  { S(DELETE_WAIT), E(DELETE_NOT_STARTED), DO(DELETE_NOT_STARTED), S(DONE),        NULL },
};

const size_t esb_k8s_n_rows = sizeof esb_k8s_rows / sizeof esb_k8s_rows[0];

const struct esb_k8s_row *esb_k8s_transition(enum esb_k8s_state state, enum esb_k8s_event event) {
  for (size_t i = 0; i < esb_k8s_n_rows; i++)
    if (esb_k8s_rows[i].state == state && esb_k8s_rows[i].event == event)
      return &esb_k8s_rows[i];
  return NULL;
}

/* The one table of the states: each one's name, what its kubectl's end or
 * its timer may bring, and the event of an action whose kubectl, starting
 * it, did not start. */
static const struct {
  const char *name;
  unsigned events;
  enum esb_k8s_event not_started;
} states[ESB_K8S__STATES] = {
#define M(x) (1u << E(x))
  [S(CLAIM_LIST)] = { "CLAIM_LIST", M(CANDIDATE) | M(COLD) | M(INTERRUPTED), E(NONE) },
  [S(CLAIM)] = { "CLAIM", M(CLAIMED) | M(CANDIDATE) | M(COLD) | M(INTERRUPTED), E(CLAIM_NOT_STARTED) },
  [S(RUN)] = { "RUN", M(KNOWN) | M(FAILED) | M(RETRY) | M(RETRY_UNSURE) | M(UNREACHABLE) | M(NO_KUBECTL) |
               M(IN_SESSION),
               E(RUN_NOT_STARTED) },
  [S(CREATE_WAIT)] = { "CREATE_WAIT", M(TIMER), E(NONE) },
  [S(PROBE_WAIT)] = { "PROBE_WAIT", M(TIMER), E(NONE) },
  [S(PROBE)] = { "PROBE", M(OURS) | M(MISSING) | M(NOT_OURS) | M(UNREAD), E(PROBE_NOT_STARTED) },
  [S(GET)] = { "GET", M(READ), E(GET_NOT_STARTED) },
  [S(DELETE)] = { "DELETE", M(RETRY) | M(DELETED), E(DELETE_NOT_STARTED) },
  [S(DELETE_WAIT)] = { "DELETE_WAIT", M(TIMER), E(NONE) },
  [S(DONE)] = { "DONE", 0, E(NONE) },
#undef M
};

enum esb_k8s_event esb_k8s_not_started(enum esb_k8s_state next) {
  return next < ESB_K8S__STATES ? states[next].not_started : E(NONE);
}

bool esb_k8s_start_state(enum esb_k8s_state state) {
  return state == S(RUN) || state == S(CLAIM_LIST);
}

unsigned esb_k8s_state_events(enum esb_k8s_state state) {
  return state < ESB_K8S__STATES ? states[state].events : 0;
}

const char *esb_k8s_state_name(enum esb_k8s_state state) {
  return state < ESB_K8S__STATES && states[state].name ? states[state].name : "?";
}

const char *esb_k8s_event_name(enum esb_k8s_event event) {
  static const char *const names[ESB_K8S__EVENTS] = {
    [E(KNOWN)] = "known", [E(FAILED)] = "failed", [E(RETRY)] = "retry", [E(RETRY_UNSURE)] = "retry_unsure",
    [E(UNREACHABLE)] = "unreachable", [E(NO_KUBECTL)] = "no_kubectl", [E(OURS)] = "ours",
    [E(MISSING)] = "missing", [E(NOT_OURS)] = "not_ours", [E(UNREAD)] = "unread", [E(READ)] = "read",
    [E(DELETED)] = "deleted", [E(TIMER)] = "timer", [E(IN_SESSION)] = "in_session", [E(RUN_NOT_STARTED)] = "run_not_started",
    [E(PROBE_NOT_STARTED)] = "probe_not_started", [E(GET_NOT_STARTED)] = "get_not_started",
    [E(DELETE_NOT_STARTED)] = "delete_not_started", [E(CANDIDATE)] = "candidate", [E(COLD)] = "cold",
    [E(CLAIMED)] = "claimed", [E(INTERRUPTED)] = "interrupted", [E(CLAIM_NOT_STARTED)] = "claim_not_started",
  };
  return event < ESB_K8S__EVENTS && names[event] ? names[event] : "?";
}

const char *esb_k8s_action_name(enum esb_k8s_action action) {
  static const char *const names[ESB_K8S__ACTIONS] = {
    [DO(CREATE)] = "create", [DO(PROBE)] = "probe", [DO(GET)] = "get", [DO(DELETE)] = "delete",
    [DO(WAIT_CREATE)] = "wait_create", [DO(WAIT_DELETE)] = "wait_delete", [DO(FINISH)] = "finish",
    [DO(NO_KUBECTL)] = "no_kubectl", [DO(NO_KUBECTL_DELETE)] = "no_kubectl_delete",
    [DO(DELETE_NOT_STARTED)] = "delete_not_started", [DO(CLAIM)] = "claim",
  };
  return action < ESB_K8S__ACTIONS && names[action] ? names[action] : "?";
}
