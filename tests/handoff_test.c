/* The hand-off from the pool's threads to the loop's thread
 * (src/engine/handoff.c): nodes come back in the order they were pushed,
 * a push wakes only when asked or awaited, and, from several threads at
 * once, nothing is lost, duplicated or reordered per producer; a node the
 * consumer saw pushed is on the list. CI also runs it under
 * ThreadSanitizer (.ci/run).
 *
 * Checked: with the push marking the node pushed and linking it in two
 * critical sections (as the loop once did; a sched_yield between them to
 * widen the window), "a node seen pushed is found by the next take" fails
 * in about 8,000 of the 50,000 rounds (without the yield the window is too
 * narrow to be met reliably); with take not reversing the list, the order
 * checks fail; with a push that ignores awaited, "an awaited quiet push
 * wakes" fails; with take reading the list without the lock,
 * ThreadSanitizer reports the race. */
#include "engine/handoff.h"

#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "tap.h"

struct item {
  struct esb_handoff_node node; /* first: an item is its node */
  int producer, seq;
};

static bool readable(int fd) {
  struct pollfd p = { .fd = fd, .events = POLLIN };
  return poll(&p, 1, 0) == 1;
}

/* Reads the eventfd's count (0 when nothing was said). */
static uint64_t drain(int fd) {
  uint64_t n = 0;
  return read(fd, &n, sizeof n) == sizeof n ? n : 0;
}

static void one_thread(int fd) {
  struct esb_handoff h = ESB_HANDOFF_INIT;
  h.fd = fd;
  struct item a = { .seq = 1 }, b = { .seq = 2 }, c = { .seq = 3 };
  ok(esb_handoff_take(&h) == NULL, "nothing to take from an empty hand-off");
  esb_handoff_push(&h, &a.node, false);
  esb_handoff_push(&h, &b.node, false);
  ok(!readable(fd), "quiet pushes say nothing");
  esb_handoff_push(&h, &c.node, true);
  is_int(drain(fd), 1, "a push that wakes says so once");
  struct esb_handoff_node *n = esb_handoff_take(&h);
  ok(n == &a.node && n->next == &b.node && n->next->next == &c.node && !c.node.next,
     "take gives them back oldest first");
  ok(esb_handoff_take(&h) == NULL, "and leaves none behind");

  struct item d = { .node = ESB_HANDOFF_NODE_INIT };
  ok(esb_handoff_await(&h, &d.node), "a node not yet pushed is awaited");
  esb_handoff_push(&h, &d.node, false);
  is_int(drain(fd), 1, "an awaited quiet push wakes");
  ok(!esb_handoff_await(&h, &d.node), "a pushed node is not awaited again");
  ok(esb_handoff_take(&h) == &d.node, "the awaited node is taken");

  struct item e = { .node = ESB_HANDOFF_NODE_INIT };
  h.fd = -1;
  esb_handoff_push(&h, &e.node, true);
  ok(esb_handoff_take(&h) == &e.node && !readable(fd), "without an fd a push only links");
}

/* ---- many producers, one consumer ---- */

#define PRODUCERS 8
#define PER_PRODUCER 20000

struct producer {
  struct esb_handoff *h;
  struct item *items;
  int id;
};

static void *produce(void *arg) {
  struct producer *p = arg;
  for (int i = 0; i < PER_PRODUCER; i++) {
    struct item *it = &p->items[i];
    it->producer = p->id;
    it->seq = i;
    /* Every third push quietly, the last one never: the consumer blocks
     * only on a word some producer still owes it. */
    esb_handoff_push(p->h, &it->node, i % 3 == 0 || i == PER_PRODUCER - 1);
  }
  return NULL;
}

static void many_producers(int fd) {
  struct esb_handoff h = ESB_HANDOFF_INIT;
  h.fd = fd;
  struct item *items = calloc((size_t)PRODUCERS * PER_PRODUCER, sizeof *items);
  struct producer producers[PRODUCERS];
  pthread_t threads[PRODUCERS];
  int next[PRODUCERS] = { 0 };
  if (!items)
    abort();
  for (int p = 0; p < PRODUCERS; p++) {
    producers[p] = (struct producer){ &h, items + (size_t)p * PER_PRODUCER, p };
    if (pthread_create(&threads[p], NULL, produce, &producers[p]) != 0)
      abort();
  }
  /* A node not yet taken has a wake after it from its producer (its last
   * push) that was not read yet: the link precedes the word, and the word
   * is read before the take. So blocking on fd never waits forever. */
  long taken = 0, out_of_order = 0, foreign = 0;
  while (taken < (long)PRODUCERS * PER_PRODUCER) {
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    if (poll(&pfd, 1, -1) < 0)
      abort();
    drain(fd);
    for (struct esb_handoff_node *n = esb_handoff_take(&h); n; n = n->next) {
      struct item *it = (struct item *)n;
      if (it->producer < 0 || it->producer >= PRODUCERS) {
        foreign++;
        continue;
      }
      if (it->seq != next[it->producer])
        out_of_order++;
      next[it->producer] = it->seq + 1;
      taken++;
    }
  }
  for (int p = 0; p < PRODUCERS; p++)
    pthread_join(threads[p], NULL);
  is_int(taken, (long)PRODUCERS * PER_PRODUCER, "every node pushed is taken once");
  is_int(out_of_order, 0, "each producer's nodes come in its order (none lost or twice)");
  is_int(foreign, 0, "no node comes back that was not pushed");
  bool all = true;
  for (int p = 0; p < PRODUCERS; p++)
    all = all && next[p] == PER_PRODUCER;
  ok(all, "each producer's last node is the last taken of it");
  ok(esb_handoff_take(&h) == NULL, "nothing left once all are taken");
  free(items);
}

/* ---- a quiet push against the consumer's look (the loop's quiet starts) ---- */

#define ROUNDS 50000

struct race {
  struct esb_handoff h;
  pthread_barrier_t start, end;
  struct item node;
};

static void *quiet_pusher(void *arg) {
  struct race *r = arg;
  for (int i = 0; i < ROUNDS; i++) {
    pthread_barrier_wait(&r->start);
    esb_handoff_push(&r->h, &r->node.node, false);
    pthread_barrier_wait(&r->end);
  }
  return NULL;
}

static void await_races_push(int fd) {
  struct race r = { .h = ESB_HANDOFF_INIT };
  r.h.fd = fd;
  drain(fd); /* a word the last producers said after the last take */
  pthread_barrier_init(&r.start, NULL, 2);
  pthread_barrier_init(&r.end, NULL, 2);
  pthread_t t;
  if (pthread_create(&t, NULL, quiet_pusher, &r) != 0)
    abort();
  int seen_missing = 0, awaited_unwoken = 0, quiet_woke = 0, lost = 0, awaited = 0;
  for (int i = 0; i < ROUNDS; i++) {
    r.node.node = (struct esb_handoff_node)ESB_HANDOFF_NODE_INIT;
    pthread_barrier_wait(&r.start);
    bool waits = esb_handoff_await(&r.h, &r.node.node);
    struct esb_handoff_node *got = NULL;
    if (!waits && !(got = esb_handoff_take(&r.h)))
      seen_missing++;
    pthread_barrier_wait(&r.end); /* the push is done */
    bool woken = drain(fd) > 0;
    if (waits) {
      awaited++;
      awaited_unwoken += !woken;
      got = esb_handoff_take(&r.h);
    } else {
      quiet_woke += woken;
    }
    lost += got != &r.node.node || got->next != NULL;
  }
  pthread_join(t, NULL);
  is_int(seen_missing, 0, "a node seen pushed is found by the next take");
  is_int(awaited_unwoken, 0, "an awaited quiet push wakes the consumer");
  is_int(quiet_woke, 0, "a quiet push nobody awaited says nothing");
  is_int(lost, 0, "the node comes back once each round");
  printf("# %d of %d rounds awaited before the push\n", awaited, ROUNDS);
  pthread_barrier_destroy(&r.start);
  pthread_barrier_destroy(&r.end);
}

int main(void) {
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0)
    abort();
  one_thread(fd);
  many_producers(fd);
  await_races_push(fd);
  close(fd);
  return tap_done();
}
