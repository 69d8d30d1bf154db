#include "engine/runtime/spawner.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_THREADS 64

static struct {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  struct esb_spawner_job *head, **tail;
  pthread_t threads[MAX_THREADS];
  int n_threads, n_idle;
  bool stopping;
} pool = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, &pool.head, {0}, 0, 0, false };

static _Thread_local bool on_pool;

bool esb_spawner_on_pool(void) {
  return on_pool;
}

static void *worker(void *arg) {
  (void)arg;
  on_pool = true;
  pthread_mutex_lock(&pool.lock);
  for (;;) {
    while (!pool.head && !pool.stopping) {
      pool.n_idle++;
      pthread_cond_wait(&pool.wake, &pool.lock);
      pool.n_idle--;
    }
    if (!pool.head)
      break; /* stopping, and nothing left to run */
    struct esb_spawner_job *job = pool.head;
    pool.head = job->next;
    if (!pool.head)
      pool.tail = &pool.head;
    pthread_mutex_unlock(&pool.lock);
    job->run(job);
    pthread_mutex_lock(&pool.lock);
  }
  pthread_mutex_unlock(&pool.lock);
  return NULL;
}

/* Read once: glibc reads /sys for it each time. */
static int max_threads(void) {
  static int max;
  if (!max) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    max = cpus < 1 ? 1 : cpus > MAX_THREADS ? MAX_THREADS : (int)cpus;
  }
  return max;
}

/* Called with the lock held. The thread starts with every signal blocked
 * (it inherits our mask for the call). */
static int add_thread(void) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&pool.threads[pool.n_threads], NULL, worker, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0)
    return -rc;
  pool.n_threads++;
  return 0;
}

int esb_spawner_post(struct esb_spawner_job *job) {
  assert(job && job->run);
  pthread_mutex_lock(&pool.lock);
  assert(!pool.stopping);
  /* Each job waiting beyond the idle threads gets a thread, up to the CPUs. */
  int waiting = 1;
  for (struct esb_spawner_job *j = pool.head; j; j = j->next)
    waiting++;
  if (waiting > pool.n_idle && pool.n_threads < max_threads()) {
    int rc = add_thread();
    if (rc < 0 && pool.n_threads == 0) {
      pthread_mutex_unlock(&pool.lock);
      return rc;
    }
  }
  job->next = NULL;
  *pool.tail = job;
  pool.tail = &job->next;
  pthread_cond_signal(&pool.wake);
  pthread_mutex_unlock(&pool.lock);
  return 0;
}

/* When the Lua module is unloaded, the threads' code must not go away
 * under them: they are stopped and joined. That is only done when all are
 * idle (no loop of the module's has work in flight by then); at the exit
 * of a program with work still in flight (a job blocked on a child), the
 * kernel ends the threads instead of a join that could wait forever. */
__attribute__((destructor)) static void pool_stop(void) {
  pthread_mutex_lock(&pool.lock);
  if (pool.head || pool.n_idle < pool.n_threads) {
    pthread_mutex_unlock(&pool.lock);
    return;
  }
  pool.stopping = true;
  pthread_cond_broadcast(&pool.wake);
  int n = pool.n_threads;
  pthread_mutex_unlock(&pool.lock);
  for (int i = 0; i < n; i++)
    pthread_join(pool.threads[i], NULL);
  pthread_mutex_lock(&pool.lock);
  pool.n_threads = 0;
  pool.stopping = false;
  pthread_mutex_unlock(&pool.lock);
}
