#include "engine/handoff.h"

#include <stdint.h>
#include <unistd.h>

void esb_handoff_push(struct esb_handoff *h, struct esb_handoff_node *node, bool wake) {
  uint64_t one = 1;
  /* Marked, linked and said in one critical section (engine/handoff.h). */
  pthread_mutex_lock(&h->lock);
  node->pushed = true;
  node->next = h->list;
  h->list = node;
  if ((wake || node->awaited) && h->fd >= 0 && write(h->fd, &one, sizeof one) < 0) {
    /* an eventfd does not fail a write of 1 short of 2^64 - 2 */
  }
  pthread_mutex_unlock(&h->lock);
}

bool esb_handoff_await(struct esb_handoff *h, struct esb_handoff_node *node) {
  pthread_mutex_lock(&h->lock);
  bool awaited = !node->pushed;
  if (awaited)
    node->awaited = true;
  pthread_mutex_unlock(&h->lock);
  return awaited;
}

struct esb_handoff_node *esb_handoff_take(struct esb_handoff *h) {
  pthread_mutex_lock(&h->lock);
  struct esb_handoff_node *newest = h->list;
  h->list = NULL;
  pthread_mutex_unlock(&h->lock);
  /* Reversed outside the lock: the nodes are the consumer's now. */
  struct esb_handoff_node *oldest = NULL;
  while (newest) {
    struct esb_handoff_node *n = newest;
    newest = n->next;
    n->next = oldest;
    oldest = n;
  }
  return oldest;
}
