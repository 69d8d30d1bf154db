/* A session's holder as the engine tells it alive (backend/local_session_files.h):
 * one that has begun to exit is not, though it is no zombie yet. A run
 * learns of the holder's end when its connection closes, which the kernel
 * does early in the holder's exit; a holder killed by the OOM killer is
 * pid 1 of the session's pid namespace, and waits there, before it is a
 * zombie, for every process of the namespace to be reaped. Checked:
 * without the PF_EXITING test, the exiting holder was said alive. */
#include "backend/local_session_files.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"

/* Field 3 of /proc/PID/stat (the state), or 0. */
static char state_of(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f)
    fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  return p && p[1] == ' ' ? p[2] : 0;
}

/* The first child of pid (/proc/PID/task/PID/children), or -1. */
static pid_t child_of(pid_t pid) {
  char path[96];
  snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
  FILE *f = fopen(path, "r");
  int child = -1;
  if (f && fscanf(f, "%d", &child) != 1)
    child = -1;
  if (f)
    fclose(f);
  return child;
}

/* A stand-in holder: pid 1 of a new pid namespace, with one child that
 * pauses; its parent, *parent, a child of ours, waits for it. The
 * holder's pid on the host, or -1. */
static pid_t start_holder(pid_t *parent) {
  int said[2];
  if (pipe(said) < 0)
    return -1;
  *parent = fork();
  if (*parent == 0) {
    close(said[0]);
    pid_t holder = unshare(CLONE_NEWPID) == 0 ? fork() : -1;
    if (holder == 0) {
      if (fork() == 0)
        for (;;)
          pause();
      for (;;)
        pause();
    }
    (void)!write(said[1], &holder, sizeof holder);
    if (holder > 0)
      waitpid(holder, NULL, 0);
    _exit(0);
  }
  close(said[1]);
  pid_t holder = -1;
  if (*parent < 0 || read(said[0], &holder, sizeof holder) != (ssize_t)sizeof holder)
    holder = -1;
  close(said[0]);
  return holder;
}

/* Polls until pid's state is want (an interlock, 30 s at most). */
static bool await_state(pid_t pid, char want) {
  for (int i = 0; i < 3000; i++) {
    if (state_of(pid) == want)
      return true;
    usleep(10000);
  }
  return false;
}

int main(void) {
  if (geteuid() != 0) {
    printf("1..0 # SKIP a pid namespace of its own needs root\n");
    return 0;
  }
  pid_t parent = -1, holder = start_holder(&parent);
  ok(holder > 0, "the stand-in holder started");
  pid_t paused = -1;
  for (int i = 0; holder > 0 && paused < 0 && i < 3000; i++) /* its child forked: an interlock, 30 s at most */
    if ((paused = child_of(holder)) < 0)
      usleep(10000);
  ok(paused > 0, "its child started");
  uint64_t start = esb_session_proc_start(holder);
  ok(esb_session_holder_alive(holder, start), "a holder at work is alive");
  /* Traced by us, its child, once killed, is a zombie only we may reap: the
   * holder's exit waits there for it to be reaped. */
  ok(ptrace(PTRACE_SEIZE, paused, NULL, NULL) == 0, "its child is traced");
  kill(holder, SIGKILL);
  ok(await_state(paused, 'Z'), "its child was killed with it");
  char state = state_of(holder);
  ok(state != 0 && state != 'Z' && state != 'X', "the holder is still exiting, not a zombie");
  ok(!esb_session_holder_alive(holder, start), "an exiting holder is not alive");
  int status = 0;
  ok(waitpid(paused, &status, __WALL) == paused && WIFSIGNALED(status), "its child is reaped");
  ok(waitpid(parent, &status, 0) == parent, "the holder ended, and its parent");
  return tap_done();
}
