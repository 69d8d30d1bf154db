/* Work off the loop's thread: a process-wide pool of threads that run jobs
 * (the loop's sandbox starts: the kernel's namespace work, id maps, the
 * network attach), so one loop starts sandboxes on every core and its own
 * thread only moves bytes.
 *
 * The pool grows to one thread per online CPU as jobs wait, and its threads
 * live until the process exits (or the module holding them is unloaded):
 * children a thread cloned with a parent-death signal must not see it die.
 * Its threads run with every signal blocked.
 *
 * A job's run is called once on a pool thread; the job must stay alive until
 * then and is not touched by the pool afterwards. Posting never blocks on the
 * work itself. */
#ifndef ESB_ENGINE_SPAWNER_H
#define ESB_ENGINE_SPAWNER_H

#include <stdbool.h>

struct esb_spawner_job {
  void (*run)(struct esb_spawner_job *job);
  struct esb_spawner_job *next; /* private to the pool */
};

/* Queues the job. Returns 0, or a negative errno when no pool thread could
 * be made (then the job was not queued and the caller runs it itself). */
int esb_spawner_post(struct esb_spawner_job *job);

/* Whether the calling thread is one of the pool's, which live as long as
 * the process: a child whose parent-death signal follows the thread that
 * started it (the init fork server's children, engine/runtime/init_program.c) is
 * safe with one of these as its parent. */
bool esb_spawner_on_pool(void);

#endif
