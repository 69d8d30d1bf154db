#include "daemon/admission.h"

#include <assert.h>

static struct esb_waiter *pop(struct esb_admission *a) {
  struct esb_waiter *w = a->head;
  if (!w)
    return NULL;
  a->head = w->next;
  if (!a->head)
    a->tail = NULL;
  w->next = NULL;
  a->queued--;
  return w;
}

enum esb_admit esb_admission_offer(struct esb_admission *a, struct esb_waiter *w) {
  assert(a->max_running > 0 && w && !w->next);
  /* Nobody overtakes a waiter: a free slot with waiters goes to them. */
  if (a->in_flight < a->max_running && !a->head) {
    a->in_flight++;
    return ESB_ADMIT_RUN;
  }
  if (a->queued >= a->max_queue)
    return ESB_ADMIT_REFUSE;
  if (a->tail)
    a->tail->next = w;
  else
    a->head = w;
  a->tail = w;
  a->queued++;
  return ESB_ADMIT_WAIT;
}

void esb_admission_done(struct esb_admission *a) {
  assert(a->in_flight > 0);
  a->in_flight--;
}

struct esb_waiter *esb_admission_next(struct esb_admission *a) {
  if (a->in_flight >= a->max_running)
    return NULL;
  struct esb_waiter *w = pop(a);
  if (w)
    a->in_flight++;
  return w;
}

struct esb_waiter *esb_admission_drop(struct esb_admission *a) {
  return pop(a);
}
