/* Admission: how many runs may be in flight and how many requests may wait
 * for a slot, first come first served. Bookkeeping only (no HTTP, no
 * engine), so the rules are the same for every caller and have unit tests.
 *
 * A waiter is embedded in the caller's own struct (an intrusive list, as
 * the kernel's): the admission never allocates and never owns one. */
#ifndef ESB_DAEMON_ADMISSION_H
#define ESB_DAEMON_ADMISSION_H

#include <stddef.h>

struct esb_waiter {
  struct esb_waiter *next;
};

struct esb_admission {
  size_t max_running;   /* runs in flight at most (>= 1) */
  size_t max_queue;     /* requests waiting at most (0: none wait) */
  size_t in_flight;
  size_t queued;
  struct esb_waiter *head, *tail;
};

#define ESB_ADMISSION_INIT(running, queue) { .max_running = (running), .max_queue = (queue) }

enum esb_admit {
  ESB_ADMIT_RUN,     /* start it now: it is counted in flight */
  ESB_ADMIT_WAIT,    /* it waits: esb_admission_next hands it out later */
  ESB_ADMIT_REFUSE,  /* no slot and the queue is full */
};

enum esb_admit esb_admission_offer(struct esb_admission *a, struct esb_waiter *w);

/* A run counted in flight ended (or did not start after all). */
void esb_admission_done(struct esb_admission *a);

/* The first waiter, if a slot is free: removed and counted in flight; else
 * NULL. Call it until NULL after each esb_admission_done. */
struct esb_waiter *esb_admission_next(struct esb_admission *a);

/* The first waiter, removed without a slot (the daemon is stopping); NULL
 * when none waits. */
struct esb_waiter *esb_admission_drop(struct esb_admission *a);

#endif
