/* The hand-off between batch's planner thread and its loop's thread: a
 * bounded FIFO of planned jobs, one producer, one consumer.
 *
 * The producer blocks while the queue holds `max` items and is woken once
 * it is down to half, so a planner that keeps ahead wakes once per max/2
 * jobs, not once per job. The consumer never blocks: a take that finds the
 * queue empty arms wake_fd (an eventfd the consumer's loop watches), which
 * becomes readable at the next put or at close; the consumer reads it
 * (esb_plan_queue_clear_wake) before it takes again.
 *
 * Items are the caller's, linked through their esb_plan_queue_item; the
 * queue owns an item from its put until its take. Errors: init returns a
 * negative errno. Misuse (a put after close, a destroy of a queue that
 * still holds items) is an assert. */
#ifndef ESB_CLI_PLAN_QUEUE_H
#define ESB_CLI_PLAN_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct esb_plan_queue_item {
  struct esb_plan_queue_item *next; /* private to the queue */
};

struct esb_plan_queue {
  int wake_fd;            /* read-only to the caller: watch it for reading */
  /* private */
  pthread_mutex_t lock;
  pthread_cond_t room;
  struct esb_plan_queue_item *head, **tail;
  size_t count, max;
  bool closed;            /* the producer put its last item */
  bool stopped;           /* the consumer takes no more: puts are refused */
  bool consumer_waits;    /* wake_fd is armed */
  bool producer_waits;    /* the producer sleeps on room */
};

/* max: the items the producer may be ahead (at least 1). */
int esb_plan_queue_init(struct esb_plan_queue *q, size_t max);
void esb_plan_queue_destroy(struct esb_plan_queue *q);

/* Producer. put: blocks while the queue is full; true once the item is in
 * the queue, false when the consumer stopped it (the item stays the
 * caller's). close: no more items will come. */
bool esb_plan_queue_put(struct esb_plan_queue *q, struct esb_plan_queue_item *item);
void esb_plan_queue_close(struct esb_plan_queue *q);

/* Consumer. take: the oldest item, or NULL when there is none now; then
 * *finished says whether one may still come (false: wake_fd will say so).
 * stop: every later put is refused and a producer waiting for room returns;
 * items already in the queue are still there to take. */
struct esb_plan_queue_item *esb_plan_queue_take(struct esb_plan_queue *q, bool *finished);
void esb_plan_queue_stop(struct esb_plan_queue *q);
void esb_plan_queue_clear_wake(struct esb_plan_queue *q);

#endif
