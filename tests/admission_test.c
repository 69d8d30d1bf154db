/* The daemon's admission (src/daemon/admission.c): slots, a bounded FIFO
 * queue, nobody overtaking a waiter, and draining at shutdown. */
#include "daemon/admission.h"

#include "tap.h"

int main(void) {
  struct esb_admission a = ESB_ADMISSION_INIT(2, 2);
  struct esb_waiter w[6] = { { 0 } };
  is_int(esb_admission_offer(&a, &w[0]), ESB_ADMIT_RUN, "a free slot: run");
  is_int(esb_admission_offer(&a, &w[1]), ESB_ADMIT_RUN, "the second slot: run");
  is_int(a.in_flight, 2, "two in flight");
  is_int(esb_admission_offer(&a, &w[2]), ESB_ADMIT_WAIT, "no slot: wait");
  is_int(esb_admission_offer(&a, &w[3]), ESB_ADMIT_WAIT, "the queue's second place");
  is_int(esb_admission_offer(&a, &w[4]), ESB_ADMIT_REFUSE, "the queue is full: refused");
  is_int(a.queued, 2, "two waiting");
  ok(esb_admission_next(&a) == NULL, "no slot, no next");

  esb_admission_done(&a);
  is_int(esb_admission_offer(&a, &w[4]), ESB_ADMIT_REFUSE, "a freed slot goes to the waiters, not a newcomer");
  ok(esb_admission_next(&a) == &w[2], "the first waiter gets it");
  ok(esb_admission_next(&a) == NULL, "one slot, one waiter");
  is_int(a.in_flight, 2, "in flight again");
  is_int(a.queued, 1, "one waits");
  ok(w[2].next == NULL, "a waiter handed out is unlinked");

  esb_admission_done(&a);
  esb_admission_done(&a);
  ok(esb_admission_next(&a) == &w[3], "two slots: the last waiter");
  ok(esb_admission_next(&a) == NULL, "and nobody else");
  is_int(a.queued, 0, "the queue is empty");
  is_int(esb_admission_offer(&a, &w[4]), ESB_ADMIT_RUN, "a newcomer runs when nobody waits");

  struct esb_admission b = ESB_ADMISSION_INIT(1, 3);
  struct esb_waiter x[4] = { { 0 } };
  esb_admission_offer(&b, &x[0]);
  esb_admission_offer(&b, &x[1]);
  esb_admission_offer(&b, &x[2]);
  ok(esb_admission_drop(&b) == &x[1], "drop hands out waiters in order");
  ok(esb_admission_drop(&b) == &x[2], "all of them");
  ok(esb_admission_drop(&b) == NULL, "then none");
  is_int(b.in_flight, 1, "dropping takes no slot");

  struct esb_admission c = ESB_ADMISSION_INIT(1, 0);
  esb_admission_offer(&c, &x[3]);
  struct esb_waiter y = { 0 };
  is_int(esb_admission_offer(&c, &y), ESB_ADMIT_REFUSE, "no queue: refused at once");
  return tap_done();
}
