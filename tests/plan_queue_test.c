#include "cli/plan_queue.h"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "tap.h"

struct item {
  struct esb_plan_queue_item link; /* first: an item is its link */
  int n;
};

static bool readable(int fd) {
  struct pollfd p = { .fd = fd, .events = POLLIN };
  return poll(&p, 1, 0) == 1;
}

#define N_ITEMS 1000
static struct item items[N_ITEMS];

static void *produce(void *arg) {
  struct esb_plan_queue *q = arg;
  for (int i = 0; i < N_ITEMS; i++) {
    items[i].n = i;
    if (!esb_plan_queue_put(q, &items[i].link))
      return NULL;
  }
  esb_plan_queue_close(q);
  return NULL;
}

struct blocked_put {
  struct esb_plan_queue *q;
  struct item *item;
  bool taken;
};

static void *put_one(void *arg) {
  struct blocked_put *bp = arg;
  bp->taken = esb_plan_queue_put(bp->q, &bp->item->link);
  return NULL;
}

static bool producer_waits(struct esb_plan_queue *q) {
  pthread_mutex_lock(&q->lock);
  bool waits = q->producer_waits;
  pthread_mutex_unlock(&q->lock);
  return waits;
}

int main(void) {
  struct esb_plan_queue q;
  bool finished = true;
  struct item a = { .n = 1 }, b = { .n = 2 };

  ok(esb_plan_queue_init(&q, 4) == 0, "a queue is made");
  ok(esb_plan_queue_put(&q, &a.link), "a put below the bound returns at once");
  ok(esb_plan_queue_take(&q, &finished) == &a.link && !finished, "take gives the item back");
  ok(!readable(q.wake_fd), "a take that found an item armed nothing");
  ok(esb_plan_queue_take(&q, &finished) == NULL && !finished, "an empty queue not closed: none now, more may come");
  ok(!readable(q.wake_fd), "the wake fd is quiet until a put");
  esb_plan_queue_put(&q, &b.link);
  ok(readable(q.wake_fd), "the put after an empty take makes the wake fd readable");
  esb_plan_queue_clear_wake(&q);
  ok(!readable(q.wake_fd), "clear_wake reads it");
  esb_plan_queue_put(&q, &a.link);
  ok(!readable(q.wake_fd), "a put to a consumer that did not wait says nothing");
  ok(esb_plan_queue_take(&q, &finished) == &b.link, "items come out first in, first out");
  ok(esb_plan_queue_take(&q, &finished) == &a.link, "and the second after");
  esb_plan_queue_take(&q, &finished);
  esb_plan_queue_close(&q);
  ok(readable(q.wake_fd), "close wakes a consumer that waits");
  esb_plan_queue_clear_wake(&q);
  ok(esb_plan_queue_take(&q, &finished) == NULL && finished, "a closed, empty queue is finished");
  esb_plan_queue_destroy(&q);

  /* A producer thread ahead of the consumer, the consumer waiting on the fd. */
  esb_plan_queue_init(&q, 8);
  pthread_t t;
  pthread_create(&t, NULL, produce, &q);
  int next = 0, out_of_order = 0;
  size_t most = 0;
  for (;;) {
    struct esb_plan_queue_item *it = esb_plan_queue_take(&q, &finished);
    if (!it && finished)
      break;
    if (!it) {
      struct pollfd p = { .fd = q.wake_fd, .events = POLLIN };
      poll(&p, 1, -1);
      esb_plan_queue_clear_wake(&q);
      continue;
    }
    out_of_order += ((struct item *)it)->n != next++;
    pthread_mutex_lock(&q.lock);
    most = q.count > most ? q.count : most;
    pthread_mutex_unlock(&q.lock);
  }
  pthread_join(t, NULL);
  is_int(next, N_ITEMS, "every item the producer put came out");
  is_int(out_of_order, 0, "in the order it was put");
  ok(most <= 8, "the producer was never more than the bound ahead");
  esb_plan_queue_destroy(&q);

  /* A producer blocked on a full queue returns when the consumer stops. */
  esb_plan_queue_init(&q, 1);
  esb_plan_queue_put(&q, &a.link);
  struct blocked_put bp = { &q, &b, true };
  pthread_create(&t, NULL, put_one, &bp);
  while (!producer_waits(&q))
    sched_yield();
  pthread_mutex_lock(&q.lock);
  is_int(q.count, 1, "a put to a full queue waits, the item not in it");
  pthread_mutex_unlock(&q.lock);
  esb_plan_queue_stop(&q);
  pthread_join(t, NULL);
  ok(!bp.taken, "a put blocked on a full queue is refused once the consumer stops");
  ok(!esb_plan_queue_put(&q, &b.link), "and every put after");
  ok(esb_plan_queue_take(&q, &finished) == &a.link, "what was in the queue is still there to take");
  esb_plan_queue_destroy(&q);
  return tap_done();
}
