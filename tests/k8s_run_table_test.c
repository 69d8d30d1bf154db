/* The k8s run's table (backend/k8s_run_table.h) held to its properties:
 * every state reachable, every way to DONE past a delete unless the row
 * says why no pod can be left, every event a state may meet handled. Each
 * row is needed: the properties fail on the table without it (checked for
 * every row below). And the table in the header's comment, which a reader
 * takes for the run's life, is the table.
 * Checked: with (RUN, known) sent to DONE by finish, the first check fails
 * ("ends the run with no delete") and so does the drawing's first line;
 * without (GET, read), GET has no way to DELETE and meets an event without
 * a row; with (RUN, unreachable)'s reason dropped, it ends the run with no
 * delete and says not why. */
#include "backend/k8s_run_table.h"

#include <stdlib.h>

#include "tap.h"

struct table {
  const struct esb_k8s_row *rows;
  size_t n;
  size_t skip; /* a row left out (n: none) */
};

static const struct esb_k8s_row *find(const struct table *t, enum esb_k8s_state s, enum esb_k8s_event e) {
  for (size_t i = 0; i < t->n; i++)
    if (i != t->skip && t->rows[i].state == s && t->rows[i].event == e)
      return &t->rows[i];
  return NULL;
}

/* Which states `from` leads to, by any number of rows. */
static unsigned reach(const struct table *t, enum esb_k8s_state from) {
  unsigned seen = 1u << from, before;
  do {
    before = seen;
    for (size_t i = 0; i < t->n; i++)
      if (i != t->skip && (seen & (1u << t->rows[i].state)))
        seen |= 1u << t->rows[i].next;
  } while (seen != before);
  return seen;
}

static int broken(bool quiet, const char *fmt, const char *a, const char *b) {
  if (!quiet) {
    printf("#   ");
    printf(fmt, a, b);
    printf("\n");
  }
  return 1;
}

/* Each row: its pair once, a state that has rows and a next state, an
 * event its state may meet, and a row into DONE past a delete, or saying
 * why no pod can be left (and only such a row saying so). */
static int row_faults(const struct table *t, bool quiet) {
  int faults = 0;
  for (size_t i = 0; i < t->n; i++) {
    if (i == t->skip)
      continue;
    const struct esb_k8s_row *r = &t->rows[i];
    const char *s = esb_k8s_state_name(r->state), *e = esb_k8s_event_name(r->event);
    if (find(t, r->state, r->event) != r)
      faults += broken(quiet, "(%s, %s) has two rows", s, e);
    if (r->state == ESB_K8S_DONE || r->next >= ESB_K8S__STATES || r->action >= ESB_K8S__ACTIONS)
      faults += broken(quiet, "(%s, %s): DONE is final, the next state and the action are known", s, e);
    bool met = esb_k8s_state_events(r->state) & (1u << r->event);
    for (size_t j = 0; j < t->n && !met; j++)
      met = j != t->skip && t->rows[j].state == r->state && esb_k8s_not_started(t->rows[j].next) == r->event;
    if (!met)
      faults += broken(quiet, "(%s, %s): an event the state never meets", s, e);
    bool deleted = r->state == ESB_K8S_DELETE || r->event == ESB_K8S_EV_DELETE_NOT_STARTED;
    if (r->next == ESB_K8S_DONE && !deleted && !r->no_pod)
      faults += broken(quiet, "(%s, %s) ends the run with no delete and says not why no pod is left", s, e);
    if (r->no_pod && (r->next != ESB_K8S_DONE || deleted))
      faults += broken(quiet, "(%s, %s) says no pod is left, but deletes or goes on", s, e);
  }
  return faults;
}

/* Each state: reachable from a state a run begins in, with a way to the delete and to DONE,
 * and a row for each event its kubectl or timer may bring and for each
 * failed start of an action it takes. */
static int state_faults(const struct table *t, bool quiet) {
  int faults = 0;
  unsigned from_run = 0;
  for (int s = 0; s < ESB_K8S__STATES; s++)
    if (esb_k8s_start_state(s))
      from_run |= reach(t, s);
  for (int s = 0; s < ESB_K8S__STATES; s++) {
    const char *name = esb_k8s_state_name(s);
    if (!(from_run & (1u << s)))
      faults += broken(quiet, "%s%s cannot be reached from RUN or CLAIM_LIST", name, "");
    if (s != ESB_K8S_DONE && !(reach(t, s) & (1u << ESB_K8S_DELETE)))
      faults += broken(quiet, "%s%s has no way to DELETE", name, "");
    if (s != ESB_K8S_DONE && !(reach(t, s) & (1u << ESB_K8S_DONE)))
      faults += broken(quiet, "%s%s has no way to DONE", name, "");
    for (int e = 0; e < ESB_K8S__EVENTS; e++)
      if ((esb_k8s_state_events(s) & (1u << e)) && !find(t, s, e))
        faults += broken(quiet, "%s meets %s, which has no row", name, esb_k8s_event_name(e));
    for (size_t i = 0; i < t->n; i++) {
      enum esb_k8s_event failed = esb_k8s_not_started(t->rows[i].next);
      if (i != t->skip && (int)t->rows[i].state == s && failed != ESB_K8S_EV_NONE && !find(t, s, failed))
        faults += broken(quiet, "%s: no row for %s", name, esb_k8s_event_name(failed));
    }
  }
  return faults;
}

static int faults(const struct table *t, bool quiet) {
  return row_faults(t, quiet) + state_faults(t, quiet);
}

/* The table in k8s_run_table.h's comment: its lines after the dashes, up
 * to the first line that is no row, as "STATE event action NEXT[ x]". */
static void doc_rows(char rows[][280], size_t max, size_t *n) {
  FILE *f = fopen(ESB_SOURCE_DIR "/src/backend/k8s_run_table.h", "re");
  char line[256];
  bool in = false;
  *n = 0;
  while (f && fgets(line, sizeof line, f)) {
    char a[64], b[64], c[64], d[64], x[8];
    int got = sscanf(line, " * %63s %63s %63s %63s %7s", a, b, c, d, x);
    if (!in) {
      in = strncmp(a, "----", 4) == 0 && got >= 4;
      continue;
    }
    if (got < 4 || *n == max)
      break;
    snprintf(rows[(*n)++], 280, "%s %s %s %s%s", a, b, c, d, got == 5 && strcmp(x, "x") == 0 ? " x" : "");
  }
  if (f)
    fclose(f);
}

int main(void) {
  struct table t = { esb_k8s_rows, esb_k8s_n_rows, esb_k8s_n_rows };
  ok(faults(&t, false) == 0, "the table has every property");

  /* Each row is needed: without it, a property fails. */
  int needed = 0;
  for (size_t i = 0; i < esb_k8s_n_rows; i++) {
    struct table less = { esb_k8s_rows, esb_k8s_n_rows, i };
    if (faults(&less, true) > 0)
      needed++;
    else
      printf("#   without (%s, %s) every property still holds\n", esb_k8s_state_name(esb_k8s_rows[i].state),
             esb_k8s_event_name(esb_k8s_rows[i].event));
  }
  is_int(needed, esb_k8s_n_rows, "every row is needed by a property");

  bool found = true;
  for (size_t i = 0; i < esb_k8s_n_rows; i++)
    found &= esb_k8s_transition(esb_k8s_rows[i].state, esb_k8s_rows[i].event) == &esb_k8s_rows[i];
  ok(found, "esb_k8s_transition finds each row");
  ok(!esb_k8s_transition(ESB_K8S_DONE, ESB_K8S_EV_TIMER) && !esb_k8s_transition(ESB_K8S_GET, ESB_K8S_EV_RETRY),
     "a pair without a row has none");
  is_int(esb_k8s_not_started(ESB_K8S_DELETE_WAIT), ESB_K8S_EV_NONE, "a wait starts no kubectl");

  bool named = true;
  for (int s = 0; s < ESB_K8S__STATES; s++)
    named &= strcmp(esb_k8s_state_name(s), "?") != 0;
  for (int e = 0; e < ESB_K8S__EVENTS; e++)
    named &= strcmp(esb_k8s_event_name(e), "?") != 0;
  for (int a = 0; a < ESB_K8S__ACTIONS; a++)
    named &= strcmp(esb_k8s_action_name(a), "?") != 0;
  ok(named, "every state, event and action has a name");

  char doc[64][280];
  size_t n_doc;
  doc_rows(doc, 64, &n_doc);
  is_int(n_doc, esb_k8s_n_rows, "the header's table has a line for each row");
  for (size_t i = 0; i < esb_k8s_n_rows && i < n_doc; i++) {
    const struct esb_k8s_row *r = &esb_k8s_rows[i];
    char want[128], what[160];
    snprintf(want, sizeof want, "%s %s %s %s%s", esb_k8s_state_name(r->state), esb_k8s_event_name(r->event),
             esb_k8s_action_name(r->action), esb_k8s_state_name(r->next), r->no_pod ? " x" : "");
    snprintf(what, sizeof what, "the header's table, line %zu, is row %zu", i + 1, i + 1);
    is_str(doc[i], want, what);
  }
  return tap_done();
}
