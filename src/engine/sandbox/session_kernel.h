/* A session's kernels, on the holder's side (engine/sandbox/session_holder.h):
 * long-lived interpreters (kernels/python.py, kernels/node.js) whose state outlives a cell.
 *
 * A kernel is started by the holder at the first cell of its slot as a
 * run is (a pid namespace of its own below the session's, the session's
 * sandbox, the plan's uid, seccomp and limits), from the kernel's plan the
 * CELL brings; its requests are on its fd 3, its replies on fd 4, its
 * output on 1 and 2, every one a pipe whose other end the holder keeps.
 * For a cell the holder hands those ends to the cell's client (the engine)
 * in its answer, which then speaks the kernel's protocol itself: no byte
 * of a cell goes through the holder. One cell at a time a kernel: a CELL
 * while another of the same kernel goes on is answered BUSY.
 *
 * On the cell's connection the client says INTERRUPT (the holder sends
 * SIGINT to the kernel's process group) and DONE (the reply came: the
 * kernel is free). A connection that ends without DONE (the client gave up
 * at its grace, or died) ends the kernel: its state is then unknown, a
 * reply may still come; the holder SIGKILLs its pid 1 (with it the
 * kernel's pid namespace) and closes the connection once it reaped it. A
 * kernel that ended (killed, exited, the memory limit) is started anew at
 * the next cell, whose answer says state_lost. Internal to the holder. */
#ifndef ESB_ENGINE_SESSION_KERNEL_H
#define ESB_ENGINE_SESSION_KERNEL_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/sandbox/session_holder.h"

struct esb_kernel {
  pid_t pid;    /* the kernel's pid 1 (its run's), in the holder's namespace; 0: none */
  int fds[ESB_SESSION_CELL_FD__MAX]; /* the holder's ends; -1 without a kernel */
  int conn;     /* the going cell's connection; -1: none */
  bool killing; /* SIGKILLed: the connection is closed once the pid 1 is reaped */
  bool lost;    /* a kernel of the slot ended: the next one's first cell says so */
  int ended;    /* that one's pid 1's wait status */
  uint64_t cells;
};

struct esb_kernels {
  struct esb_kernel k[ESB_SESSION_KERNELS];
};

void esb_kernels_init(struct esb_kernels *ks);

/* A CELL on conn, with its fds (the kernel's plan first): answered and
 * conn kept while the cell goes on, or closed. */
void esb_kernels_cell(struct esb_kernels *ks, int conn, const struct esb_session_msg *m, const int *fds, int n);

/* Fills ESB_SESSION_KERNELS entries of p (-1 where nothing is polled). */
void esb_kernels_poll(const struct esb_kernels *ks, struct pollfd *p);
/* Handles p's events; true where a cell ended (the session was busy). */
bool esb_kernels_events(struct esb_kernels *ks, const struct pollfd *p);

/* A pid the holder reaped: true where it was a kernel's pid 1. */
bool esb_kernels_reaped(struct esb_kernels *ks, pid_t pid, int status);

/* A cell is going on: the session is not idle. */
bool esb_kernels_busy(const struct esb_kernels *ks);

#endif
