#include "cli/plan_queue.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

int esb_plan_queue_init(struct esb_plan_queue *q, size_t max) {
  assert(max >= 1);
  *q = (struct esb_plan_queue){ .wake_fd = -1, .max = max };
  q->tail = &q->head;
  if ((q->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
    return -errno;
  int rc;
  if ((rc = pthread_mutex_init(&q->lock, NULL)) != 0) {
    close(q->wake_fd);
    return -rc;
  }
  if ((rc = pthread_cond_init(&q->room, NULL)) != 0) {
    pthread_mutex_destroy(&q->lock);
    close(q->wake_fd);
    return -rc;
  }
  return 0;
}

void esb_plan_queue_destroy(struct esb_plan_queue *q) {
  assert(!q->head);
  pthread_cond_destroy(&q->room);
  pthread_mutex_destroy(&q->lock);
  close(q->wake_fd);
  q->wake_fd = -1;
}

/* Called with the lock held. */
static void wake_consumer(struct esb_plan_queue *q) {
  if (!q->consumer_waits)
    return;
  q->consumer_waits = false;
  uint64_t one = 1;
  if (write(q->wake_fd, &one, sizeof one) < 0) {
    /* an eventfd does not fail a write of 1 short of 2^64 - 2 */
  }
}

bool esb_plan_queue_put(struct esb_plan_queue *q, struct esb_plan_queue_item *item) {
  pthread_mutex_lock(&q->lock);
  assert(!q->closed);
  while (q->count >= q->max && !q->stopped) {
    q->producer_waits = true;
    pthread_cond_wait(&q->room, &q->lock);
  }
  q->producer_waits = false;
  bool taken = !q->stopped;
  if (taken) {
    item->next = NULL;
    *q->tail = item;
    q->tail = &item->next;
    q->count++;
    wake_consumer(q);
  }
  pthread_mutex_unlock(&q->lock);
  return taken;
}

void esb_plan_queue_close(struct esb_plan_queue *q) {
  pthread_mutex_lock(&q->lock);
  q->closed = true;
  wake_consumer(q);
  pthread_mutex_unlock(&q->lock);
}

struct esb_plan_queue_item *esb_plan_queue_take(struct esb_plan_queue *q, bool *finished) {
  pthread_mutex_lock(&q->lock);
  struct esb_plan_queue_item *item = q->head;
  if (item) {
    q->head = item->next;
    if (!q->head)
      q->tail = &q->head;
    q->count--;
    /* Half empty: the producer refills it in one go. */
    if (q->producer_waits && q->count <= q->max / 2)
      pthread_cond_signal(&q->room);
  } else if (!q->closed) {
    q->consumer_waits = true;
  }
  *finished = !item && q->closed;
  pthread_mutex_unlock(&q->lock);
  return item;
}

void esb_plan_queue_stop(struct esb_plan_queue *q) {
  pthread_mutex_lock(&q->lock);
  q->stopped = true;
  pthread_cond_signal(&q->room);
  pthread_mutex_unlock(&q->lock);
}

void esb_plan_queue_clear_wake(struct esb_plan_queue *q) {
  uint64_t count;
  if (read(q->wake_fd, &count, sizeof count) < 0) {
    /* EAGAIN: nothing was said */
  }
}
