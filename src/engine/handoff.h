/* The hand-off from the pool's threads to the loop's thread: a finished
 * piece of work (a node) is pushed by whichever thread finished it and
 * taken by the one thread that consumes them, in the order they were
 * pushed. A push may wake the consumer (a word on an eventfd of the
 * consumer's), or go quietly, for the consumer to find at its next look.
 *
 * A quiet push the consumer comes to wait on (engine/loop.c: a start
 * whose fds already spoke) is "awaited": esb_handoff_await marks it, and
 * its push then wakes the consumer after all. Whether a node is pushed,
 * whether it is awaited and whether it is on the list change together,
 * under one lock: once esb_handoff_await says a node is pushed, the next
 * esb_handoff_take finds it (or a take before did); once it says the node
 * is awaited, its push wakes the consumer. A look that fell between two
 * critical sections would see a node pushed and not find it, and wait for
 * it forever.
 *
 * Producers: any threads, each pushing nodes it was handed. Consumer: one
 * thread, which owns a node again once esb_handoff_take gave it back. */
#ifndef ESB_ENGINE_HANDOFF_H
#define ESB_ENGINE_HANDOFF_H

#include <pthread.h>
#include <stdbool.h>

/* Embedded in what is handed off; the consumer resets it
 * (ESB_HANDOFF_NODE_INIT) before each trip. */
struct esb_handoff_node {
  struct esb_handoff_node *next; /* on the list: the one pushed before; from
                                    esb_handoff_take: the one pushed after */
  bool pushed;                   /* under the lock: pushed (and on the list
                                    until taken) */
  bool awaited;                  /* under the lock: its push wakes the consumer */
};

#define ESB_HANDOFF_NODE_INIT { .next = NULL }

struct esb_handoff {
  pthread_mutex_t lock;
  struct esb_handoff_node *list; /* pushed, not yet taken: newest first */
  int fd;   /* -1, or the consumer's eventfd, which a push that wakes writes 1
               to (under the lock: the consumer may close it once it has taken
               every node it handed out). Set by the consumer while no node is
               out. */
};

#define ESB_HANDOFF_INIT { .lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1 }

/* Producer: puts node on the list, marked pushed; writes to fd where wake
 * is true or the node is awaited. node is the consumer's from then on. */
void esb_handoff_push(struct esb_handoff *h, struct esb_handoff_node *node, bool wake);

/* Consumer: marks node awaited unless it is pushed already. Returns true
 * when it is not pushed yet (its push will wake), false when it is (a
 * take finds it, if none has). */
bool esb_handoff_await(struct esb_handoff *h, struct esb_handoff_node *node);

/* Consumer: takes every node pushed so far, oldest first (linked by next);
 * NULL when there is none. It does not read fd. */
struct esb_handoff_node *esb_handoff_take(struct esb_handoff *h);

#endif
