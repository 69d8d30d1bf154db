#include "engine/runtime/loop.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <limits.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MS 1000000ull
/* After the program is gone, how long pipes still held by escaped processes
 * (outside a pid namespace) may keep the result waiting. */
#define DRAIN_AFTER_EXIT_NS (500 * MS)
#define READ_CHUNK 65536
/* The pipes of a stream (a file to the child's stdin, its output to a sink
 * we splice to): larger than the 64 KiB default, so a stream takes fewer
 * wake-ups of the child and of us (within fs.pipe-max-size's default). */
#define STREAM_PIPE_BYTES (1 << 20)

static void close_fd(int *fd) {
  if (*fd >= 0) {
    close(*fd);
    *fd = -1;
  }
}

/* Waits until a sink (an fd of the caller's, which we may not make
 * non-blocking) takes bytes again, but not past the exec's deadline: a
 * reader that stalls must not keep the program alive beyond it. False when
 * the deadline came first. */
static bool sink_writable(const struct esb_exec *e, int sink) {
  struct pollfd p = { .fd = sink, .events = POLLOUT };
  for (;;) {
    int wait_ms = -1;
    if (e->deadline_ns) {
      uint64_t now = esb_now_ns();
      if (now >= e->deadline_ns)
        return poll(&p, 1, 0) > 0;
      wait_ms = (int)((e->deadline_ns - now + MS - 1) / MS);
    }
    int rc = poll(&p, 1, wait_ms);
    if (rc > 0)
      return true;
    if (rc == 0)
      return false;
    if (errno != EINTR)
      return true; /* let the write say what is wrong */
  }
}

/* Writes all of buf to a sink that is no regular file: 0, or -1 (the
 * reader is gone, or stalled past the deadline). The fd is the caller's, so
 * it stays blocking: a socket is sent to with MSG_DONTWAIT, anything else
 * gets at most PIPE_BUF bytes a write once poll says it takes some, which a
 * pipe takes without blocking. */
static int write_fully(const struct esb_exec *e, int fd, const char *buf, size_t n) {
  while (n) {
    if (!sink_writable(e, fd))
      return -1;
    size_t chunk = n < PIPE_BUF ? n : PIPE_BUF;
    ssize_t w = send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0 && errno == ENOTSOCK)
      w = write(fd, buf, chunk);
    if (w < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
      continue;
    if (w <= 0)
      return -1;
    buf += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The loop's own slots in own_slots. */
enum { OWN_DONE, OWN_INTERRUPT, OWN_WATCHES };

/* The epoll set, made when first needed; -1 when the kernel gives none. */
static int loop_epoll(struct esb_loop *loop) {
  if (loop->epfd < 0)
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
  return loop->epfd;
}

static int watch_fd(struct esb_loop *loop, int fd, uint32_t events, struct esb_loop_slot *slot) {
  struct epoll_event ev = { .events = events, .data.ptr = slot };
  return loop_epoll(loop) < 0 ? -1 : epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Before an fd is closed: a copy a child still held for a moment would
 * keep a closed fd's registration alive. */
static void unwatch_fd(struct esb_loop *loop, int fd) {
  if (loop->epfd >= 0 && fd >= 0)
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
}

static void exec_close(struct esb_exec *e, int *fd) {
  if (*fd >= 0) {
    unwatch_fd(e->loop, *fd);
    close_fd(fd);
  }
}

static bool in_pid_namespace(const struct esb_exec *e) {
  return e->child.sandbox && (e->child.sandbox->namespaces & ESB_NS_PID);
}

/* The pidfd is watched only outside a pid namespace (start_done): a
 * removal of what was never added would be a system call for nothing. */
/* The caller's aux fd, while the loop watches it (start_prepare). */
static bool aux_watched(const struct esb_exec *e) {
  return e->opts.on_aux && e->opts.aux_fd >= 0 && !e->aux_ended;
}

static void unwatch_aux(struct esb_loop *loop, struct esb_exec *e) {
  if (aux_watched(e))
    unwatch_fd(loop, e->opts.aux_fd);
  e->aux_ended = true;
}

static void unwatch_pidfd(struct esb_loop *loop, struct esb_exec *e) {
  if (!in_pid_namespace(e))
    unwatch_fd(loop, e->child.pidfd);
}

static bool exec_done(const struct esb_exec *e) {
  return !e->starting && !e->reaping && e->child.reaped && e->child.out < 0 && e->child.err < 0 && e->child.report < 0;
}

/* Moves what the program wrote to a sink that is a regular file: spliced
 * (the bytes never pass through us); the capture only counts them. Only a
 * file: splice to a socket blocks whatever its flags say. A sink that
 * fails closes the program's pipe, so the program meets a broken pipe as
 * it would in a shell's pipeline. Returns false when the kernel cannot
 * splice to the file (read_stream copies). */
static bool to_sink(struct esb_exec *e, int *fd, int sink, struct esb_capture *cap) {
  for (int round = 0; round < 64; round++) {
    ssize_t n = splice(*fd, NULL, sink, NULL, 1 << 20, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      cap->total += (uint64_t)n;
      continue;
    }
    if (n == 0) {
      exec_close(e, fd);
      return true;
    }
    if (errno == EINTR)
      continue;
    if (errno == EINVAL)
      return false;
    if (errno != EAGAIN)
      exec_close(e, fd); /* the file cannot be written */
    return true;         /* EAGAIN: nothing more to read now */
  }
  return true;
}

static void deadline_reached(struct esb_exec *e, uint64_t now);

/* Reads what is there; closes the fd at EOF or error. Bounded per round so
 * that one flooding program cannot starve the others. */
static void read_stream(struct esb_exec *e, int stream, int *fd, struct esb_capture *cap) {
  int sink = e->opts.sink_fds[stream - 1];
  if (sink >= 0 && (e->sink_files & (1u << (stream - 1))) && to_sink(e, fd, sink, cap))
    return;
  char buf[READ_CHUNK];
  for (int round = 0; round < 16; round++) {
    ssize_t n = read(*fd, buf, sizeof buf);
    if (n > 0 && sink >= 0) { /* a sink the kernel cannot splice to */
      cap->total += (uint64_t)n;
      if (write_fully(e, sink, buf, (size_t)n) < 0) {
        /* A reader stalled until the deadline: the deadline ends the run,
         * its TERM first. Closing the pipe first would let the program die
         * of the broken pipe before it, and the result blame SIGPIPE. */
        uint64_t now = esb_now_ns();
        if (e->deadline_ns && now >= e->deadline_ns)
          deadline_reached(e, now);
        exec_close(e, fd); /* the reader is gone or stalled, as above */
        return;
      }
      continue;
    }
    if (n > 0) {
      if (!(stream == 1 && e->opts.stdout_by_caller))
        esb_capture_append(cap, buf, (size_t)n);
      if (e->opts.on_output)
        e->opts.on_output(e, stream, buf, (size_t)n, e->opts.userdata);
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    exec_close(e, fd);
    return;
  }
}

static void read_report(struct esb_exec *e) {
  for (;;) {
    char *dst = (char *)&e->report + e->report_got;
    ssize_t n = read(e->child.report, dst, sizeof e->report - e->report_got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    if (n <= 0) {
      exec_close(e, &e->child.report);
      return;
    }
    e->report_got += (size_t)n;
    if (e->report_got < sizeof e->report)
      continue;
    if (e->report.kind == ESB_REPORT_STATUS) {
      e->report_status = true;
      e->wait_status = e->report.status;
      e->report_got = 0; /* nothing follows a status; keep reading to EOF */
    } else {
      /* A failure: keep it in e->report and stop reading. */
      exec_close(e, &e->child.report);
      return;
    }
  }
}

/* The next bytes for the child's stdin: stdin_data, then stdin_fd's (read
 * here, a chunk at a time). Sets *p and returns how many; 0 at the end of
 * both; -1 when the source is a pipe or the like with nothing to read yet. */
static ssize_t next_stdin(struct esb_exec *e, const char **p) {
  if (e->stdin_off < e->opts.stdin_len) {
    *p = e->opts.stdin_data + e->stdin_off;
    return (ssize_t)(e->opts.stdin_len - e->stdin_off);
  }
  if (e->opts.stdin_fd < 0)
    return 0;
  if (e->source.off == e->source.len) {
    if (!e->source.regular && !e->source.readable)
      return -1;
    if (!e->source.buf && !(e->source.buf = malloc(ESB_EXEC_SOURCE_CHUNK)))
      return 0; /* no memory: the program sees the end of its input */
    ssize_t n;
    do
      n = e->source.regular ? pread(e->opts.stdin_fd, e->source.buf, ESB_EXEC_SOURCE_CHUNK, e->source.pos)
                            : read(e->opts.stdin_fd, e->source.buf, ESB_EXEC_SOURCE_CHUNK);
    while (n < 0 && errno == EINTR);
    e->source.readable = false; /* one read per wake-up: the next could block */
    if (n <= 0)
      return 0;
    e->source.pos += n;
    e->source.len = (size_t)n;
    e->source.off = 0;
  }
  *p = e->source.buf + e->source.off;
  return (ssize_t)(e->source.len - e->source.off);
}

/* A regular file as stdin: spliced into the pipe to the child, page cache
 * to pipe, without passing through us. Returns what splice returned (-1
 * with errno EINVAL: the kernel cannot, copy instead). */
static ssize_t splice_stdin(struct esb_exec *e) {
  loff_t pos = e->source.pos;
  ssize_t n;
  do
    n = splice(e->opts.stdin_fd, &pos, e->child.in, NULL, 1 << 20, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  while (n < 0 && errno == EINTR);
  if (n > 0)
    e->source.pos = pos;
  return n;
}

static void consumed_stdin(struct esb_exec *e, size_t n) {
  if (e->stdin_off < e->opts.stdin_len)
    e->stdin_off += n;
  else
    e->source.off += n;
}

/* Nothing to write until the source is readable: the pipe to the child
 * leaves the epoll set (a writable pipe would wake us for nothing) and the
 * source joins it; source_ready turns that round. */
static void wait_for_source(struct esb_exec *e) {
  if (e->source.waiting)
    return;
  unwatch_fd(e->loop, e->child.in);
  if (watch_fd(e->loop, e->opts.stdin_fd, EPOLLIN, &e->slots[ESB_SLOT_SOURCE]) < 0) {
    /* not pollable after all (a regular file would not come here): read it
     * as one that never blocks */
    e->source.regular = false;
    e->source.readable = true;
    watch_fd(e->loop, e->child.in, EPOLLOUT, &e->slots[ESB_SLOT_IN]);
    return;
  }
  e->source.waiting = true;
}

static void write_stdin(struct esb_exec *e);

static void source_ready(struct esb_exec *e) {
  unwatch_fd(e->loop, e->opts.stdin_fd);
  e->source.waiting = false;
  e->source.readable = true;
  if (e->child.in < 0)
    return;
  watch_fd(e->loop, e->child.in, EPOLLOUT, &e->slots[ESB_SLOT_IN]);
  write_stdin(e);
}

/* SIGPIPE is blocked around the writes, so a reader that went away gives
 * EPIPE here; the signal that was raised is consumed, not left pending. */
static void consume_sigpipe(void) {
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  struct timespec zero = { 0, 0 };
  sigtimedwait(&pipe_set, NULL, &zero);
}

static void write_some_stdin(struct esb_exec *e) {
  for (;;) {
    if (e->stdin_off == e->opts.stdin_len && e->opts.stdin_fd >= 0 && e->source.regular && !e->source.no_splice &&
        e->source.off == e->source.len) {
      ssize_t n = splice_stdin(e);
      if (n > 0)
        continue;
      if (n == 0)
        break;
      if (errno == EAGAIN)
        return;
      if (errno == EINVAL) {
        e->source.no_splice = true;
        continue;
      }
      if (errno == EPIPE)
        consume_sigpipe();
      break; /* the child is gone, or the file cannot be read: the end of its input */
    }
    const char *p;
    ssize_t left = next_stdin(e, &p);
    if (left < 0) {
      wait_for_source(e);
      return;
    }
    if (left == 0)
      break;
    ssize_t n = write(e->child.in, p, (size_t)left < READ_CHUNK ? (size_t)left : READ_CHUNK);
    if (n > 0) {
      consumed_stdin(e, (size_t)n);
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    if (n < 0 && errno == EPIPE)
      consume_sigpipe();
    break;
  }
  exec_close(e, &e->child.in);
  if (e->source.waiting)
    source_ready(e); /* takes the source out of the set */
}

static void write_stdin(struct esb_exec *e) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  write_some_stdin(e);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* The child was reaped: what the loop does with it. */
static void exited(struct esb_exec *e) {
  esb_child_reaped(&e->child, &e->exit);
  if (!e->report_status)
    e->wait_status = e->exit.wstatus;
  e->result.duration_ms = (double)(e->exited_ns - e->started_ns) / 1e6;
  exec_close(e, &e->child.in);
  e->drain_until_ns = esb_now_ns() + DRAIN_AFTER_EXIT_NS;
}

#define EXEC_OF_REAP(w) ((struct esb_exec *)((char *)(w) - offsetof(struct esb_exec, reap_work)))

/* On a pool thread: the zombie's release is kernel work (its /proc entries
 * go) the loop's thread need not do. */
static void reap_on_pool(struct esb_loop_work *w) {
  struct esb_exec *e = EXEC_OF_REAP(w);
  if (esb_child_wait(e->child.pidfd, false, &e->exit) == 1 && e->opts.after_exit)
    e->opts.after_exit(e, e->opts.userdata);
}

static void reap_came_back(struct esb_loop_work *w) {
  struct esb_exec *e = EXEC_OF_REAP(w);
  e->reaping = false;
  exited(e);
}

/* The child exited (its pidfd said so), or is about to (ending: pid 1 of
 * its sandbox is gone, its report pipe said so): reaped on the pool while
 * the loop is busy, else here. */
static void on_exit_seen(struct esb_loop *loop, struct esb_exec *e, uint64_t now, bool ending) {
  /* Outside a pid namespace, processes the program left behind still run:
   * kill its group while the zombie keeps the group id from being reused. */
  if (!in_pid_namespace(e))
    esb_child_kill(&e->child, SIGKILL, true);
  e->exited_ns = now;
  if (loop->count > 1 || loop->works || loop->nwatches) {
    unwatch_pidfd(loop, e);
    e->reaping = true;
    e->reap_work = (struct esb_loop_work){ .work = reap_on_pool, .done = reap_came_back };
    esb_loop_offload(loop, &e->reap_work);
    return;
  }
  if (esb_child_wait(e->child.pidfd, !ending, &e->exit) != 1)
    return;
  unwatch_pidfd(loop, e);
  if (e->opts.after_exit)
    e->opts.after_exit(e, e->opts.userdata);
  exited(e);
}

static void finish_result(struct esb_exec *e) {
  struct esb_result *r = &e->result;
  const char *prog = e->child.argv && e->child.argv[0] ? e->child.argv[0] : "program";
  if (e->report_got == sizeof e->report && e->report.kind == ESB_REPORT_EXEC_FAILED) {
    int err = e->report.error;
    if (err == ENOENT)
      esb_result_fail(r, ESB_E_EXEC_NOT_FOUND, "program not found: %s", prog);
    else
      esb_result_fail(r, ESB_E_EXEC_DENIED, "cannot execute %s: %s", prog, strerror(err));
    return;
  }
  if (e->report_got == sizeof e->report && e->report.kind == ESB_REPORT_SETUP_FAILED) {
    esb_result_fail(r, ESB_E_SANDBOX_SETUP, "sandbox setup failed (%s): %s",
                    esb_setup_step_name(e->report.step), strerror(e->report.error));
    return;
  }
  if (e->interrupted) {
    esb_result_fail(r, ESB_E_INTERRUPTED, "the executor was interrupted by a signal; the program was killed");
    return;
  }
  esb_result_wait_status(r, e->wait_status);
  r->killed_by_us = e->term_sent;
  if (e->term_sent)
    esb_result_timed_out(r);
  /* What the kernel counted for the child and what it reaped; a backend that
   * knows better (a cgroup) overwrites it. */
  if (e->child.reaped) {
    r->cpu_time_ms = e->child.cpu_time_ms;
    r->memory_peak_bytes = e->child.max_rss_bytes;
  }
}

static void unlink_exec(struct esb_loop *loop, struct esb_exec *e) {
  for (struct esb_exec **p = &loop->active; *p; p = &(*p)->next) {
    if (*p == e) {
      *p = e->next;
      loop->count--;
      break;
    }
  }
  e->next = NULL;
}

static void complete(struct esb_loop *loop, struct esb_exec *e) {
  unlink_exec(loop, e);
  if (e->source.waiting)
    unwatch_fd(loop, e->opts.stdin_fd);
  free(e->source.buf);
  e->source.buf = NULL;
  exec_close(e, &e->child.in);
  exec_close(e, &e->child.out);
  exec_close(e, &e->child.err);
  exec_close(e, &e->child.report);
  unwatch_aux(loop, e);
  unwatch_pidfd(loop, e);
  esb_child_close(&e->child);
  if (e->result.duration_ms == 0)
    e->result.duration_ms = (double)(esb_now_ns() - e->started_ns) / 1e6;
  finish_result(e);
  if (e->opts.on_done)
    e->opts.on_done(e, e->opts.userdata);
}

static void add_active(struct esb_loop *loop, struct esb_exec *e) {
  e->next = loop->active;
  loop->active = e;
  loop->count++;
}

/* The fds of a started child the loop watches, by slot (-1: none). */
struct watch_list {
  int fd[ESB_SLOT__EXEC];
  uint32_t events[ESB_SLOT__EXEC];
};

/* The child is started: which of its fds the loop watches, and their pipes
 * sized. Touches only the exec's child (its owner's, whoever starts it). */
static void start_prepare(struct esb_exec *e, struct watch_list *wl) {
  struct esb_child *c = &e->child;
  int *stdio[3] = { &c->in, &c->out, &c->err };
  for (int i = 0; i < 3; i++)
    if (e->handed_over & (1u << i))
      *stdio[i] = -1; /* the caller's: neither watched nor closed */
  if (!e->opts.stdin_data && e->opts.stdin_fd < 0)
    c->in = -1;
  /* Streams get larger pipes: fewer round trips; a refusal costs only speed. */
  else if (e->opts.stdin_fd >= 0 && c->in >= 0)
    fcntl(c->in, F_SETPIPE_SZ, STREAM_PIPE_BYTES);
  if (e->opts.sink_fds[0] >= 0 && c->out >= 0)
    fcntl(c->out, F_SETPIPE_SZ, STREAM_PIPE_BYTES);
  if (e->opts.sink_fds[1] >= 0 && c->err >= 0)
    fcntl(c->err, F_SETPIPE_SZ, STREAM_PIPE_BYTES);
  *wl = (struct watch_list){
    .fd = { [ESB_SLOT_IN] = c->in, [ESB_SLOT_OUT] = c->out, [ESB_SLOT_ERR] = c->err, [ESB_SLOT_REPORT] = c->report,
            /* In a pid namespace, the end of the report pipe is the child's
             * end: one fd less to watch and one wake-up less. */
            [ESB_SLOT_PIDFD] = in_pid_namespace(e) ? -1 : c->pidfd,
            [ESB_SLOT_SOURCE] = -1 /* watched only while the child waits on it */,
            [ESB_SLOT_AUX] = aux_watched(e) ? e->opts.aux_fd : -1 },
    .events = { [ESB_SLOT_IN] = EPOLLOUT, [ESB_SLOT_OUT] = EPOLLIN, [ESB_SLOT_ERR] = EPOLLIN,
                [ESB_SLOT_REPORT] = EPOLLIN, [ESB_SLOT_PIDFD] = EPOLLIN, [ESB_SLOT_AUX] = EPOLLIN },
  };
  for (int k = 0; k < ESB_SLOT__EXEC; k++)
    e->slots[k] = (struct esb_loop_slot){ e, k };
}

/* Adds the fds to the epoll set, in slot order: the fd that says the child
 * ended (its pidfd, or its report pipe in a pid namespace) comes last, so a
 * set that refused one never saw that fd, and no reap of the child can be
 * under way. 0, or -1 with errno (fs.epoll.max_user_watches). Reads only
 * the list and writes nothing of the exec's: a pool thread calls it while
 * the loop may already serve the fds it added. */
static int start_watch(struct esb_loop *loop, const struct watch_list *wl, struct esb_loop_slot *slots) {
  for (int k = 0; k < ESB_SLOT__EXEC; k++)
    if (wl->fd[k] >= 0 && watch_fd(loop, wl->fd[k], wl->events[k], &slots[k]) < 0)
      return -1;
  return 0;
}

/* A started child the loop could not watch: killed and reaped, its fds
 * closed (those in the set taken out first). */
static void start_unwind(struct esb_loop *loop, struct esb_exec *e) {
  struct esb_child *c = &e->child;
  exec_close(e, &c->in);
  exec_close(e, &c->out);
  exec_close(e, &c->err);
  exec_close(e, &c->report);
  unwatch_aux(loop, e);
  unwatch_pidfd(loop, e);
  esb_child_close(c);
}

/* The child is started, on the loop's thread: its fds into the epoll set.
 * 0, or -1 with errno when the set refuses one: the child is then killed
 * and reaped, and its fds closed. */
static int start_done(struct esb_loop *loop, struct esb_exec *e) {
  struct watch_list wl;
  start_prepare(e, &wl);
  if (start_watch(loop, &wl, e->slots) == 0)
    return 0;
  int saved = errno;
  start_unwind(loop, e);
  errno = saved;
  return -1;
}

static void work_on_pool(struct esb_spawner_job *job) {
  struct esb_loop_work *w = (struct esb_loop_work *)((char *)job - offsetof(struct esb_loop_work, job));
  w->work(w);
  esb_handoff_push(&w->loop->done, &w->node, true);
}

/* Counts a work in flight, with the eventfd its end is said on made where
 * missing. false: the kernel gave no eventfd; the caller then does the work
 * on this thread, and its end comes through the list from the next step. */
static bool offload_begin(struct esb_loop *loop, struct esb_loop_work *w, void (*run)(struct esb_spawner_job *)) {
  assert(w->done);
  w->loop = loop;
  w->job = (struct esb_spawner_job){ .run = run };
  w->node = (struct esb_handoff_node)ESB_HANDOFF_NODE_INIT;
  loop->works++;
  if (loop->done.fd < 0 && (loop->done.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) >= 0) {
    loop->own_slots[OWN_DONE] = (struct esb_loop_slot){ NULL, OWN_DONE };
    if (watch_fd(loop, loop->done.fd, EPOLLIN, &loop->own_slots[OWN_DONE]) < 0)
      close_fd(&loop->done.fd);
  }
  return loop->done.fd >= 0;
}

void esb_loop_offload(struct esb_loop *loop, struct esb_loop_work *w) {
  assert(w->work);
  if (!offload_begin(loop, w, work_on_pool)) {
    w->work(w);
    esb_handoff_push(&loop->done, &w->node, false);
    return;
  }
  if (esb_spawner_post(&w->job) < 0)
    work_on_pool(&w->job);
}

/* Starts the pool finished without a word on the eventfd (start_on_pool)
 * are taken at every step while any is in flight. Those whose end the loop
 * now waits on, because their fds already spoke or their deadline is past,
 * are awaited: their push says so (engine/runtime/handoff.h). */
static void await_quiet_starts(struct esb_loop *loop, uint64_t now) {
  for (struct esb_exec *e = loop->active; e; e = e->next)
    if (e->starting && !e->start_awaited && (e->spoke_starting || (e->deadline_ns && now >= e->deadline_ns)))
      e->start_awaited = esb_handoff_await(&loop->done, &e->start_work.node);
}

#define WORK_OF(n) ((struct esb_loop_work *)((char *)(n) - offsetof(struct esb_loop_work, node)))

/* The works the pool has finished since the last look, in the order they
 * were done. woken: the eventfd said so (it is read). */
static void take_done(struct esb_loop *loop, bool woken, uint64_t now) {
  uint64_t count;
  if (woken && loop->done.fd >= 0 && read(loop->done.fd, &count, sizeof count) < 0 && errno != EAGAIN)
    return;
  if (loop->quiet_starts)
    await_quiet_starts(loop, now);
  for (struct esb_handoff_node *n = esb_handoff_take(&loop->done), *next; n; n = next) {
    next = n->next;
    struct esb_loop_work *w = WORK_OF(n);
    loop->works--;
    w->done(w);
  }
  if (!loop->works && loop->done.fd >= 0) {
    unwatch_fd(loop, loop->done.fd);
    close_fd(&loop->done.fd);
  }
}

#define EXEC_OF(w) ((struct esb_exec *)((char *)(w) - offsetof(struct esb_exec, start_work)))

/* On a pool thread: the child started and its fds put into the epoll set
 * here, so the loop's thread learns of the start from the child's own fds,
 * not from a wake-up of its own. The work goes on the list after the fds
 * are in the set, quietly unless the start failed or the loop already
 * waits on it (await_quiet_starts); until the loop takes it, the loop may
 * serve the fds but not end the exec (exec_done). */
static void start_on_pool(struct esb_spawner_job *job) {
  struct esb_loop_work *w = (struct esb_loop_work *)((char *)job - offsetof(struct esb_loop_work, job));
  struct esb_exec *e = EXEC_OF(w);
  struct esb_loop *loop = w->loop;
  if (e->opts.before_start)
    e->opts.before_start(e, e->opts.userdata);
  bool failed = true;
  if (esb_child_start(&e->child, &e->start_err) < 0) {
    e->start_error = errno ? errno : EIO;
  } else {
    struct watch_list wl;
    start_prepare(e, &wl);
    if (start_watch(loop, &wl, e->slots) < 0) {
      e->start_error = errno;
      esb_error_errno(&e->start_err, ESB_E_SYSTEM, "epoll");
    } else {
      failed = false;
    }
  }
  /* Quietly unless it failed: the loop learns of it from the fds, or
   * awaits it (engine/runtime/handoff.h). */
  esb_handoff_push(&loop->done, &w->node, failed);
}

/* Back on the loop: the child is in its poll already, or the start failed
 * and the exec is done. */
static void start_came_back(struct esb_loop_work *w) {
  struct esb_exec *e = EXEC_OF(w);
  struct esb_loop *loop = w->loop;
  e->starting = false;
  loop->quiet_starts--;
  if (!e->start_error)
    return;
  if (e->child.pid > 0)
    start_unwind(loop, e); /* started, but not all its fds are watched */
  unlink_exec(loop, e);
  esb_result_fail_error(&e->result, &e->start_err);
  if (e->opts.on_done)
    e->opts.on_done(e, e->opts.userdata);
}

/* Off the loop's thread when it pays: namespaces to make (hundreds of
 * microseconds of kernel work each) while other work waits for the loop. */
bool esb_loop_busy(const struct esb_loop *loop) {
  return loop->count || loop->nwatches || loop->works;
}

/* An fd of the caller's the child may have as its own stdio: an anonymous
 * pipe or /dev/null. Through /proc/self/fd a child could reopen what it was
 * given, and with the fd it may change what it owns (fchmod): an anonymous
 * pipe gives it only the pipe again; a file, or a named fifo, is a path of
 * the host's, and a terminal takes keystrokes (TIOCSTI), so those are moved
 * by us instead. */
static bool may_hand_over(int fd) {
  struct stat st;
  struct statfs fs;
  if (fstat(fd, &st) < 0)
    return false;
  if (S_ISFIFO(st.st_mode))
    return fstatfs(fd, &fs) == 0 && fs.f_type == PIPEFS_MAGIC;
  return S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3);
}

static bool start_elsewhere(const struct esb_loop *loop, const struct esb_exec *e) {
  return e->child.sandbox && e->child.sandbox->namespaces && esb_loop_busy(loop);
}

/* The exec's own copy of what to run: a fresh child, without what a former
 * start left in it. */
static void take_options(struct esb_exec *e, const struct esb_exec_options *opts) {
  e->opts = *opts;
  e->child = (struct esb_child)ESB_CHILD_INIT;
  e->child.argv = opts->argv;
  e->child.env = opts->env;
  e->child.dir = opts->dir;
  e->child.sandbox = opts->sandbox;
}

int esb_exec_start(struct esb_loop *loop, struct esb_exec *e, const struct esb_exec_options *opts) {
  assert(loop && e && opts && opts->argv && !e->starting && !e->next);
  take_options(e, opts);
  e->result.out.cap = e->opts.max_output_bytes;
  e->result.err.cap = e->opts.max_output_bytes;
  e->child.in = e->opts.stdin_data || e->opts.stdin_fd >= 0 ? ESB_CHILD_PIPE : ESB_CHILD_NULL;
  e->stdin_off = 0;
  e->source = (struct esb_exec_source){ 0 };
  if (e->opts.stdin_fd >= 0) {
    struct stat st;
    e->source.regular = fstat(e->opts.stdin_fd, &st) == 0 && S_ISREG(st.st_mode);
    off_t at = e->source.regular ? lseek(e->opts.stdin_fd, 0, SEEK_CUR) : 0;
    e->source.pos = at > 0 ? at : 0;
  }
  e->child.out = ESB_CHILD_PIPE;
  e->child.err = ESB_CHILD_PIPE;
  e->handed_over = 0;
  if (!e->opts.stdin_data && e->opts.stdin_fd >= 0 && may_hand_over(e->opts.stdin_fd)) {
    e->child.in = e->opts.stdin_fd;
    e->handed_over |= 1u << 0;
  }
  e->sink_files = 0;
  for (int i = 0; i < 2; i++) {
    struct stat st;
    if (e->opts.sink_fds[i] >= 0 && may_hand_over(e->opts.sink_fds[i])) {
      *(i == 0 ? &e->child.out : &e->child.err) = e->opts.sink_fds[i];
      e->handed_over |= 1u << (i + 1);
    } else if (e->opts.sink_fds[i] >= 0 && fstat(e->opts.sink_fds[i], &st) == 0 && S_ISREG(st.st_mode)) {
      e->sink_files |= 1u << i;
    }
  }
  e->started_ns = esb_now_ns();
  e->deadline_ns = e->opts.timeout_ms ? e->started_ns + e->opts.timeout_ms * MS : 0;
  e->start_error = 0;
  e->aux_ended = false;
  e->loop = loop;
  if (start_elsewhere(loop, e)) {
    e->starting = true;
    e->spoke_starting = e->start_awaited = false;
    e->start_work = (struct esb_loop_work){ .done = start_came_back };
    add_active(loop, e);
    loop->quiet_starts++;
    if (!offload_begin(loop, &e->start_work, start_on_pool) || esb_spawner_post(&e->start_work.job) < 0)
      start_on_pool(&e->start_work.job);
    return 0;
  }
  if (e->opts.before_start)
    e->opts.before_start(e, e->opts.userdata);
  int rc = esb_child_start(&e->child, &e->start_err);
  if (rc == 0 && (rc = start_done(loop, e)) < 0)
    esb_error_errno(&e->start_err, ESB_E_SYSTEM, "epoll");
  if (rc < 0) {
    int saved = errno;
    e->start_error = saved;
    esb_result_fail_error(&e->result, &e->start_err);
    errno = saved;
    return -1;
  }
  add_active(loop, e);
  return 0;
}

/* The deadline came: TERM to the program's group, KILL after the grace. */
static void deadline_reached(struct esb_exec *e, uint64_t now) {
  if (e->term_sent || e->child.reaped || e->starting)
    return;
  esb_child_kill(&e->child, SIGTERM, true);
  e->term_sent = true;
  e->kill_at_ns = now + e->opts.kill_grace_ms * MS;
}

static void check_deadlines(struct esb_exec *e, uint64_t now) {
  if (e->starting || e->reaping)
    return; /* looked at again once started or reaped */
  if (e->child.reaped) {
    if (now >= e->drain_until_ns) {
      /* Something escaped the group and holds the pipes: stop waiting. */
      exec_close(e, &e->child.out);
      exec_close(e, &e->child.err);
      exec_close(e, &e->child.report);
    }
    return;
  }
  if (e->deadline_ns && now >= e->deadline_ns)
    deadline_reached(e, now);
  if (e->term_sent && !e->kill_sent && now >= e->kill_at_ns) {
    esb_child_kill(&e->child, SIGKILL, true);
    e->kill_sent = true;
  }
}

static uint64_t next_wakeup(const struct esb_exec *e) {
  /* A start not back by its deadline is awaited (await_quiet_starts): its
   * push wakes the loop. */
  if (e->starting)
    return e->start_awaited ? 0 : e->deadline_ns;
  if (e->reaping)
    return 0;
  if (e->child.reaped)
    return e->drain_until_ns;
  if (e->term_sent)
    return e->kill_sent ? 0 : e->kill_at_ns;
  return e->deadline_ns;
}

int esb_loop_watch(struct esb_loop *loop, int fd, void (*on_ready)(void *), void *userdata) {
  assert(fd >= 0 && on_ready);
  if (loop->nwatches == ESB_LOOP_WATCHES)
    return -1;
  struct esb_loop_slot *slot = &loop->own_slots[OWN_WATCHES + loop->nwatches];
  *slot = (struct esb_loop_slot){ NULL, OWN_WATCHES + (int)loop->nwatches };
  if (watch_fd(loop, fd, EPOLLIN, slot) < 0)
    return -1;
  loop->watches[loop->nwatches++] = (struct esb_loop_watch){ fd, on_ready, userdata };
  return 0;
}

void esb_loop_unwatch(struct esb_loop *loop, int fd) {
  for (size_t i = 0; i < loop->nwatches; i++) {
    if (loop->watches[i].fd != fd)
      continue;
    unwatch_fd(loop, fd);
    /* The last watch takes its place, and its slot with it. */
    size_t last = --loop->nwatches;
    if (i != last) {
      loop->watches[i] = loop->watches[last];
      struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &loop->own_slots[OWN_WATCHES + i] };
      epoll_ctl(loop->epfd, EPOLL_CTL_MOD, loop->watches[i].fd, &ev);
    }
    break;
  }
  if (!loop->count && !loop->nwatches && !loop->timers && !loop->works) {
    close_fd(&loop->epfd); /* idle: the loop holds no fd */
    loop->interrupt_watched = false;
  }
}

void esb_exec_stop(struct esb_exec *e) {
  if (!e->term_sent && (e->starting || !e->child.reaped))
    e->deadline_ns = esb_now_ns();
}

void esb_exec_kill(struct esb_exec *e) {
  e->opts.kill_grace_ms = 0;
  esb_exec_stop(e);
}

enum esb_exec_phase esb_exec_phase(const struct esb_exec *e) {
  if (e->starting)
    return ESB_EXEC_STARTING;
  return e->term_sent || e->reaping || e->child.reaped || e->child.pid <= 0 ? ESB_EXEC_ENDING : ESB_EXEC_RUNNING;
}

void esb_timer_stop(struct esb_loop *loop, struct esb_timer *t) {
  if (!t->started)
    return;
  for (struct esb_timer **p = &loop->timers; *p; p = &(*p)->next) {
    if (*p == t) {
      *p = t->next;
      break;
    }
  }
  t->next = NULL;
  t->started = false;
}

void esb_timer_start(struct esb_loop *loop, struct esb_timer *t) {
  assert(t->fire);
  esb_timer_stop(loop, t);
  struct esb_timer **p = &loop->timers;
  while (*p && (*p)->at_ns <= t->at_ns)
    p = &(*p)->next;
  t->next = *p;
  *p = t;
  t->started = true;
}

/* Fires the timers that are due; each may start or stop timers. */
static void fire_timers(struct esb_loop *loop) {
  uint64_t now = esb_now_ns();
  while (loop->timers && loop->timers->at_ns <= now) {
    struct esb_timer *t = loop->timers;
    esb_timer_stop(loop, t);
    t->fire(t->userdata);
  }
}

/* What an event on one of an exec's fds means. */
static void exec_event(struct esb_loop *loop, struct esb_exec *e, int kind, uint64_t now) {
  struct esb_child *c = &e->child;
  /* Its fds speak before its start came back (start_on_pool): it may soon
   * wait on nothing but that. */
  e->spoke_starting |= e->starting;
  switch (kind) {
  case ESB_SLOT_IN:
    if (c->in >= 0) write_stdin(e);
    break;
  case ESB_SLOT_OUT:
    if (c->out >= 0) read_stream(e, 1, &c->out, &e->result.out);
    break;
  case ESB_SLOT_ERR:
    if (c->err >= 0) read_stream(e, 2, &c->err, &e->result.err);
    break;
  case ESB_SLOT_REPORT:
    if (c->report < 0)
      break;
    read_report(e);
    /* pid 1 of the sandbox held the report pipe to its end: the child is
     * exiting. Its pidfd is not even watched (start_done). */
    if (c->report < 0 && in_pid_namespace(e) && !c->reaped && !e->reaping)
      on_exit_seen(loop, e, now, true);
    break;
  case ESB_SLOT_PIDFD:
    if (!c->reaped && !e->reaping) on_exit_seen(loop, e, now, false);
    break;
  case ESB_SLOT_SOURCE:
    if (e->source.waiting) source_ready(e);
    break;
  case ESB_SLOT_AUX:
    if (aux_watched(e) && !e->opts.on_aux(e, e->opts.userdata))
      unwatch_aux(loop, e);
    break;
  }
}

static void interrupt_all(struct esb_loop *loop, uint64_t now) {
  loop->interrupted = true;
  unwatch_fd(loop, loop->interrupt_fd);
  for (struct esb_exec *x = loop->active; x; x = x->next) {
    if (!x->starting && x->child.reaped)
      continue; /* its own result stands */
    x->interrupted = true;
    if (!x->term_sent)
      x->deadline_ns = now;
  }
}

size_t esb_loop_step(struct esb_loop *loop, int timeout_ms) {
  if (!loop->count && !loop->nwatches && !loop->timers && !loop->works)
    return 0;
  if (loop_epoll(loop) < 0) {
    struct timespec ts = { 0, 10 * 1000000L }; /* no epoll set (out of memory): retry soon */
    nanosleep(&ts, NULL);
    return loop->count + loop->works + (loop->timers != NULL);
  }
  if (loop->interrupt_fd >= 0 && !loop->interrupted && !loop->interrupt_watched) {
    loop->own_slots[OWN_INTERRUPT] = (struct esb_loop_slot){ NULL, OWN_INTERRUPT };
    loop->interrupt_watched = watch_fd(loop, loop->interrupt_fd, EPOLLIN, &loop->own_slots[OWN_INTERRUPT]) == 0;
  }
  uint64_t now = esb_now_ns(), wake = 0;
  for (struct esb_exec *e = loop->active; e; e = e->next) {
    uint64_t w = next_wakeup(e);
    if (w && (!wake || w < wake))
      wake = w;
  }
  if (loop->timers && (!wake || loop->timers->at_ns < wake))
    wake = loop->timers->at_ns;
  /* without an eventfd (done.fd -1) the works are done already */
  int wait_ms = loop->works && loop->done.fd < 0 ? 0 : timeout_ms;
  if (loop->nwatches && (wait_ms < 0 || wait_ms > 1000))
    wait_ms = 1000;
  if (wake) {
    uint64_t left = wake > now ? (wake - now + MS - 1) / MS : 0;
    if (wait_ms < 0 || left < (uint64_t)wait_ms)
      wait_ms = (int)(left > 60000 ? 60000 : left);
  }

  struct epoll_event events[64];
  int ready = epoll_wait(loop->epfd, events, 64, wait_ms);
  now = esb_now_ns();
  /* without an eventfd the works are done already; quiet starts are taken
   * at every step (start_on_pool) */
  bool done_said = false, works_done = loop->works && (loop->done.fd < 0 || loop->quiet_starts);
  struct esb_loop_watch woken[ESB_LOOP_WATCHES];
  size_t nwoken = 0;
  for (int i = 0; i < ready; i++) {
    struct esb_loop_slot *slot = events[i].data.ptr;
    if (slot->exec)
      exec_event(loop, slot->exec, slot->kind, now);
    else if (slot->kind == OWN_DONE)
      done_said = works_done = true; /* after the executions are seen to (below) */
    else if (slot->kind == OWN_INTERRUPT)
      interrupt_all(loop, now);
    else if ((size_t)(slot->kind - OWN_WATCHES) < loop->nwatches)
      woken[nwoken++] = loop->watches[slot->kind - OWN_WATCHES]; /* copied: a callback may change them */
  }
  if (works_done)
    take_done(loop, done_said, now);
  for (struct esb_exec *e = loop->active, *next; e; e = next) {
    next = e->next;
    check_deadlines(e, now);
    if (exec_done(e))
      complete(loop, e);
  }
  fire_timers(loop);
  for (size_t i = 0; i < nwoken; i++)
    woken[i].on_ready(woken[i].userdata);
  if (loop->after_poll)
    loop->after_poll(loop->after_poll_userdata);
  size_t left = loop->count + loop->works + (loop->timers != NULL);
  if (!left && !loop->nwatches) {
    /* Idle: the loop holds no fd (it has no destructor). */
    close_fd(&loop->epfd);
    loop->interrupt_watched = false;
  }
  return left;
}

void esb_loop_run(struct esb_loop *loop) {
  while (esb_loop_step(loop, -1) > 0) {
  }
}

void esb_loop_run_job(int interrupt_fd, int (*start)(struct esb_loop *loop, void *arg), void *arg) {
  struct esb_loop loop = ESB_LOOP_INIT;
  loop.interrupt_fd = interrupt_fd;
  if (start(&loop, arg) == 0 || esb_loop_busy(&loop))
    esb_loop_run(&loop);
  /* A start that failed after the loop made its epoll set leaves it. */
  close_fd(&loop.epfd);
}

void esb_loop_abort(struct esb_loop *loop) {
  uint64_t now = esb_now_ns();
  for (struct esb_exec *e = loop->active; e; e = e->next)
    if (!e->term_sent && (e->starting || !e->child.reaped))
      e->deadline_ns = now;
  esb_loop_run(loop);
}
