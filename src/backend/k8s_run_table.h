/* The life of a k8s run as data: its states, the events that move it, and
 * one row per (state, event) saying what is done and where it goes. k8s.c
 * holds one small function per action and a dispatcher that looks the
 * pair up; a pair without a row is a bug (the dispatcher aborts). The
 * table is read alone by tests/k8s_run_table_test.c, which holds it to
 * the properties below.
 *
 * States (what is in flight):
 *
 *   CLAIM_LIST   the list of the ready warm pods of the plan's pool
 *                (k8s_warm.h): the plan's pod shape is one of the policy's
 *                warm pools' (kubectl get, or the API client's own request
 *                on the loop's pool, kube_api.h)
 *   CLAIM        the patch of one of them to claimed, under the
 *                resourceVersion listed (the same two ways): the pod is the run's (RUN is then
 *                an exec into it, and DELETE deletes it), or another
 *                engine's (409) or gone, and the next is tried; none
 *                within the pool's claim grace: RUN makes a pod (cold)
 *   RUN          kubectl run --attach (or kubectl attach, to a pod adopted)
 *                streams the program; the pod watch beside it. Inside RUN
 *                the watch and the streams may reach a verdict (the pod
 *                cannot start, is evicted or deleted, the attach broke):
 *                it stops kubectl, whose end is then RUN's event.
 *   CREATE_WAIT  the API server refused the create for now: a pause
 *                (0.2 s doubling to 2 s) before the next try
 *   PROBE_WAIT   the same, but the create's answer was lost (the pod may
 *                exist): the next try reads the pod first
 *   PROBE        kubectl get of that pod: the run's own (adopted: attached
 *                to), none (created again), or another instance's (left)
 *   GET          kubectl get pod -o json after kubectl failed: why
 *   DELETE       kubectl delete pod --ignore-not-found --wait=false (a warm
 *                pod's: the API client's DELETE, where it has one)
 *   DELETE_WAIT  a pause (0.1 s doubling to 2 s) before the next delete
 *   DONE         the result is decided and on_done has run (final)
 *
 * esb_k8s_start enters CLAIM_LIST where the plan names a warm pool, else
 * RUN (a kubectl that does not start there is the caller's: -1, no
 * on_done). Then, with "x" where DONE comes with no
 * delete (create attaches to a pod adopted; the test holds the rows below
 * to the table in k8s_run_table.c, line by line):
 *
 *   state        event              action               next
 *   -----------  -----------------  -------------------  -----------
 *   CLAIM_LIST   candidate          claim                CLAIM
 *   CLAIM_LIST   cold               create               RUN
 *   CLAIM_LIST   interrupted        finish               DONE  x
 *   CLAIM_LIST   claim_not_started  no_kubectl           DONE  x
 *   CLAIM_LIST   run_not_started    no_kubectl           DONE  x
 *   CLAIM        claimed            create               RUN
 *   CLAIM        candidate          claim                CLAIM
 *   CLAIM        cold               create               RUN
 *   CLAIM        interrupted        finish               DONE  x
 *   CLAIM        claim_not_started  no_kubectl           DONE  x
 *   CLAIM        run_not_started    no_kubectl_delete    DELETE
 *   CLAIM        delete_not_started delete_not_started   DONE
 *   RUN          known              delete               DELETE
 *   RUN          failed             get                  GET
 *   RUN          retry              wait_create          CREATE_WAIT
 *   RUN          retry_unsure       wait_create          PROBE_WAIT
 *   RUN          unreachable        finish               DONE  x
 *   RUN          no_kubectl         no_kubectl           DONE  x
 *   RUN          get_not_started    delete               DELETE
 *   RUN          delete_not_started delete_not_started   DONE
 *   RUN          in_session         finish               DONE  x
 *   CREATE_WAIT  timer              create               RUN
 *   CREATE_WAIT  run_not_started    no_kubectl           DONE  x
 *   PROBE_WAIT   timer              probe                PROBE
 *   PROBE_WAIT   probe_not_started  no_kubectl           DONE  x
 *   PROBE        ours               create               RUN
 *   PROBE        missing            create               RUN
 *   PROBE        not_ours           finish               DONE  x
 *   PROBE        unread             delete               DELETE
 *   PROBE        run_not_started    no_kubectl_delete    DELETE
 *   PROBE        delete_not_started delete_not_started   DONE
 *   GET          read               delete               DELETE
 *   GET          delete_not_started delete_not_started   DONE
 *   DELETE       retry              wait_delete          DELETE_WAIT
 *   DELETE       deleted            finish               DONE
 *   DELETE_WAIT  timer              delete               DELETE
 *   DELETE_WAIT  delete_not_started delete_not_started   DONE
 *
 * Events: a state's kubectl ended (CLAIM_LIST: candidate, a ready pod to
 * claim; cold, none (or the list failed, or the grace is over);
 * interrupted; CLAIM: claimed, the label went through; candidate, it did
 * not and another is left; cold, none is; interrupted; RUN: known, failed, retry, retry_unsure,
 * unreachable, no_kubectl, in_session: the run was an exec into a
 * session's pod, which outlives it; PROBE: ours, missing, not_ours, unread; GET:
 * read; DELETE: retry, deleted), a wait's timer fired (timer), or an
 * action's kubectl did not start (X_not_started, X the state it was to
 * enter: the run stays where it was and takes that event there).
 *
 * Properties (the test checks them): every state is reachable from RUN or
 * CLAIM_LIST;
 * DONE has no row and every other state a way to DELETE and to DONE;
 * every event a state's kubectl or timer may bring has a row there, as
 * does the failed start of every action that starts a kubectl; a row into
 * DONE comes from DELETE's end or a delete that did not start, or says why
 * no pod can be left (the "x" rows: no try connected, kubectl never ran,
 * the pod is another instance's or a session's, a claim was cut short, or kubectl no longer starts, so that no
 * delete could either: the pod's activeDeadlineSeconds and `cleanup` are
 * the backstops then). */
#ifndef ESB_BACKEND_K8S_RUN_TABLE_H
#define ESB_BACKEND_K8S_RUN_TABLE_H

#include <stdbool.h>
#include <stddef.h>

enum esb_k8s_state {
  ESB_K8S_CLAIM_LIST,
  ESB_K8S_CLAIM,
  ESB_K8S_RUN,
  ESB_K8S_CREATE_WAIT,
  ESB_K8S_PROBE_WAIT,
  ESB_K8S_PROBE,
  ESB_K8S_GET,
  ESB_K8S_DELETE,
  ESB_K8S_DELETE_WAIT,
  ESB_K8S_DONE,
  ESB_K8S__STATES
};

enum esb_k8s_event {
  ESB_K8S_EV_KNOWN,          /* RUN: the result needs no pod status (exit 0, a verdict, an interrupt) */
  ESB_K8S_EV_FAILED,         /* RUN: kubectl failed or timed out: the pod's status says why */
  ESB_K8S_EV_RETRY,          /* RUN: the create refused for now; DELETE: the delete failed for now */
  ESB_K8S_EV_RETRY_UNSURE,   /* RUN: as retry, and the create's answer was lost */
  ESB_K8S_EV_UNREACHABLE,    /* RUN: no try connected and no time is left: no pod exists */
  ESB_K8S_EV_NO_KUBECTL,     /* RUN: kubectl did not run at all */
  ESB_K8S_EV_OURS,           /* PROBE: the pod is the run's own */
  ESB_K8S_EV_MISSING,        /* PROBE: there is no such pod */
  ESB_K8S_EV_NOT_OURS,       /* PROBE: the pod of that name is another instance's */
  ESB_K8S_EV_UNREAD,         /* PROBE: the pod could not be read */
  ESB_K8S_EV_READ,           /* GET: done, whether or not the pod could be read */
  ESB_K8S_EV_DELETED,        /* DELETE: it went through, or failed for good (cleanup_error) */
  ESB_K8S_EV_TIMER,          /* a wait is over */
  ESB_K8S_EV_IN_SESSION,     /* RUN: kubectl exec into a session's pod ended: its pod is the session's */
  ESB_K8S_EV_CANDIDATE,      /* CLAIM_LIST, CLAIM: a ready warm pod is left to claim */
  ESB_K8S_EV_COLD,           /* CLAIM_LIST, CLAIM: none is (or the grace is over): a pod is made */
  ESB_K8S_EV_CLAIMED,        /* CLAIM: the label went through: the warm pod is the run's */
  ESB_K8S_EV_INTERRUPTED,    /* CLAIM_LIST, CLAIM: the executor was interrupted */
  ESB_K8S_EV_CLAIM_NOT_STARTED,  /* an action's kubectl did not start, */
  ESB_K8S_EV_RUN_NOT_STARTED,    /* by the state it was to enter */
  ESB_K8S_EV_PROBE_NOT_STARTED,
  ESB_K8S_EV_GET_NOT_STARTED,
  ESB_K8S_EV_DELETE_NOT_STARTED,
  ESB_K8S__EVENTS,
  ESB_K8S_EV_NONE = ESB_K8S__EVENTS
};

enum esb_k8s_action {
  ESB_K8S_DO_CLAIM,              /* start the claim of the next warm pod listed */
  ESB_K8S_DO_CREATE,             /* start kubectl run (attach, to a pod adopted; exec, into
                                    the warm pod claimed) */
  ESB_K8S_DO_PROBE,              /* start kubectl get of a pod whose create lost its answer */
  ESB_K8S_DO_GET,                /* start kubectl get pod -o json */
  ESB_K8S_DO_DELETE,             /* start kubectl delete pod */
  ESB_K8S_DO_WAIT_CREATE,        /* drop the failed try's result, arm the create's timer */
  ESB_K8S_DO_WAIT_DELETE,        /* arm the delete's timer */
  ESB_K8S_DO_FINISH,             /* decide the result, call on_done */
  ESB_K8S_DO_NO_KUBECTL,         /* the result says kubectl cannot run; finish */
  ESB_K8S_DO_NO_KUBECTL_DELETE,  /* the same, then start the delete */
  ESB_K8S_DO_DELETE_NOT_STARTED, /* the delete's failure in cleanup_error; finish */
  ESB_K8S__ACTIONS
};

struct esb_k8s_row {
  enum esb_k8s_state state;
  enum esb_k8s_event event;
  enum esb_k8s_action action;
  enum esb_k8s_state next;
  const char *no_pod; /* a row into DONE past no delete: why no pod can be left; else NULL */
};

/* The rows, and how many. */
extern const struct esb_k8s_row esb_k8s_rows[];
extern const size_t esb_k8s_n_rows;

/* The row for (state, event), or NULL: a pair the run must never meet. */
const struct esb_k8s_row *esb_k8s_transition(enum esb_k8s_state state, enum esb_k8s_event event);

/* The event of an action whose kubectl did not start, by the state it was
 * to enter; ESB_K8S_EV_NONE for a state that starts no kubectl. */
enum esb_k8s_event esb_k8s_not_started(enum esb_k8s_state next);

/* Whether the run may begin in state (RUN, or CLAIM_LIST for a warm pool). */
bool esb_k8s_start_state(enum esb_k8s_state state);

/* The events the end of a state's kubectl, or its timer, may bring, as a
 * mask of (1u << event): each must have a row in that state. */
unsigned esb_k8s_state_events(enum esb_k8s_state state);

/* The names, as in the table above (messages and the test). */
const char *esb_k8s_state_name(enum esb_k8s_state state);
const char *esb_k8s_event_name(enum esb_k8s_event event);
const char *esb_k8s_action_name(enum esb_k8s_action action);

#endif
