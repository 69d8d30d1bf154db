/* A session's blocking operations off the caller's loop
 * (dispatch/session_task.h): a local session's run or cell on a thread, the
 * rest in forked helpers.
 *
 * The helper's word is frames on a pipe (a run's thread's too: its output
 * frames, then the pipe's end): a header (kind, length), then the
 * bytes. Output comes as it comes ('o' stdout, 'e' stderr); a create's
 * notes of what the policy lowered ('N', one each); a k8s session's object,
 * or the list of them, as JSON ('J'); the last frame is the run's result
 * ('R'), a cell's ('C': its status and failure, then its JSON), or another
 * op's outcome ('D'). */
#include "dispatch/session_task.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codec/json.h"
#include "dispatch/session.h"
#include "dispatch/session_create.h"
#include "engine/fileio.h"

struct frame {
  uint32_t kind;
  uint32_t len;
};

/* What a create or remove says, in a 'D' frame. */
struct outcome {
  struct esb_error error;
  char id[ESB_K8S_SESSION_ID_LEN + 1];
  enum esb_session_end was;
  char ended[ESB_K8S_ENDED_MAX]; /* a k8s session's why */
};

/* The helper's fds once it has put its own in place. */
enum { FRAMES_FD = 3, INTERRUPT_FD = 4 };

/* ---- the helper's side ---- */

static void send_frame_to(int fd, char kind, const void *p, size_t n) {
  struct frame h = { (uint32_t)kind, (uint32_t)n };
  esb_write_all(fd, (const char *)&h, sizeof h);
  if (n)
    esb_write_all(fd, p, n);
}

static void send_frame(char kind, const void *p, size_t n) { send_frame_to(FRAMES_FD, kind, p, n); }

/* userdata: the frames' fd (an int). */
static void send_output(int stream, const char *data, size_t len, void *userdata) {
  int fd = *(const int *)userdata;
  while (len) { /* a frame's length is 32 bits */
    size_t n = len < (1u << 20) ? len : (1u << 20);
    send_frame_to(fd, stream == 1 ? 'o' : 'e', data, n);
    data += n;
    len -= n;
  }
}

/* Bytes and strings with their length first (UINT64_MAX: NULL). */
static void put_bytes(FILE *m, const void *p, size_t n) {
  uint64_t len = p ? n : UINT64_MAX;
  fwrite(&len, sizeof len, 1, m);
  if (p && n)
    fwrite(p, 1, n, m);
}

static void put_string(FILE *m, const char *s) { put_bytes(m, s, s ? strlen(s) : 0); }

/* The result as bytes: the struct, its owned pointers out, then what they
 * own. Its static strings (sandbox_type, isolation, reason) point into the
 * program's image, which the parent shares: a fork's copy of it. */
static void send_result(const struct esb_result *r) {
  char *buf = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  if (!m)
    _exit(125);
  struct esb_result copy = *r;
  copy.out.data = copy.err.data = copy.error_message = copy.cleanup_error = copy.fallback = NULL;
  copy.warnings = (struct esb_strv)ESB_STRV_INIT;
  copy.files.files = NULL;
  fwrite(&copy, sizeof copy, 1, m);
  put_bytes(m, r->out.data, r->out.len);
  put_bytes(m, r->err.data, r->err.len);
  put_string(m, r->error_message);
  put_string(m, r->cleanup_error);
  put_string(m, r->fallback);
  uint64_t n = r->warnings.n;
  fwrite(&n, sizeof n, 1, m);
  for (size_t i = 0; i < r->warnings.n; i++)
    put_string(m, r->warnings.v[i]);
  for (size_t i = 0; i < r->files.count; i++) {
    const struct esb_collected_file *f = &r->files.files[i];
    struct esb_collected_file fixed = *f;
    fixed.path = fixed.data = NULL;
    fwrite(&fixed, sizeof fixed, 1, m);
    put_string(m, f->path);
    put_bytes(m, f->data, f->len);
  }
  if (fclose(m) != 0)
    _exit(125);
  send_frame('R', buf, len);
  free(buf);
}

/* Its pipes at FRAMES_FD and INTERRUPT_FD, every other fd of the parent's
 * closed (a daemon's connections and listening socket among them), and
 * signals as a new program has them. */
static void helper_fds(int frames, int interrupt) {
  int a = fcntl(frames, F_DUPFD, INTERRUPT_FD + 1);
  int b = interrupt >= 0 ? fcntl(interrupt, F_DUPFD, INTERRUPT_FD + 1) : -1;
  if (a < 0 || dup2(a, FRAMES_FD) < 0 || (b >= 0 && dup2(b, INTERRUPT_FD) < 0))
    _exit(125);
  if (b < 0)
    close(INTERRUPT_FD);
  syscall(SYS_close_range, (unsigned)INTERRUPT_FD + 1, ~0u, 0u);
  sigset_t none;
  sigemptyset(&none);
  signal(SIGPIPE, SIG_DFL); /* its parent gone, the helper goes too */
  sigprocmask(SIG_SETMASK, &none, NULL);
}

/* A k8s session just made, as JSON: nothing of it is on this machine for
 * the parent to read. */
static void send_k8s_made(const struct esb_session_made *made) {
  lua_State *L = esb_json_state();
  struct esb_error err;
  if (!L)
    return;
  esb_k8s_session_push_made(L, made);
  if (esb_json_encode(L, &err) == 0)
    send_frame('J', lua_tostring(L, -1), lua_rawlen(L, -1));
  lua_close(L);
}

/* A k8s session's remove or show, or the list: the answer as JSON. */
static void k8s_answer(struct esb_session_task *t, struct outcome *o) {
  enum esb_k8s_answer what = t->op == ESB_SESSION_OP_K8S_LIST   ? ESB_K8S_ANSWER_LIST
                             : t->op == ESB_SESSION_OP_K8S_SHOW ? ESB_K8S_ANSWER_SHOW
                                                                : ESB_K8S_ANSWER_REMOVE;
  char *json = NULL;
  if (esb_k8s_session_answer(t->policy, what, t->id, &json, o->ended, &o->error) == 0)
    send_frame('J', json, strlen(json));
  free(json);
}

/* The session as the policy decides it; the notes of what it lowered. */
static void create(struct esb_session_task *t, struct outcome *o) {
  struct esb_session_made made = ESB_SESSION_MADE_INIT;
  if (esb_session_make(t->policy, t->req, t->options.ttl_ms, t->options.idle_timeout_ms, &made, &o->error) == 0)
    memcpy(o->id, made.id, sizeof o->id);
  if (o->error.code == ESB_OK && esb_k8s_session_id(made.id))
    send_k8s_made(&made);
  char **const notes[] = { made.decision.clamped, made.plan.clamped };
  for (size_t i = 0; i < 2; i++)
    for (char **v = notes[i]; v && *v; v++)
      send_frame('N', *v, strlen(*v));
  esb_session_made_release(&made);
}

/* A cell in the session's kernel; its result as JSON, made here: the
 * result's owned strings need no framing of their own. */
static _Noreturn void cell(struct esb_session_task *t) {
  struct esb_cell_result r = ESB_CELL_RESULT_INIT;
  if (esb_k8s_session_id(t->id)) /* the plan is this process's copy, a fork's */
    esb_k8s_session_cell(t->id, t->language, t->code, t->code_len, (struct esb_plan *)t->plan, &r, INTERRUPT_FD);
  else
    esb_session_cell(t->id, t->language, t->code, t->code_len, t->plan, &r, INTERRUPT_FD);
  lua_State *L = esb_json_state();
  struct esb_error err;
  if (!L)
    _exit(125);
  esb_session_push_cell(L, &r, t->language, true);
  if (esb_json_encode(L, &err) < 0)
    _exit(125);
  size_t len;
  const char *json = lua_tolstring(L, -1, &len);
  uint32_t head[2] = { (uint32_t)r.status, (uint32_t)r.failure };
  char *frame = malloc(sizeof head + len);
  if (!frame)
    _exit(125);
  memcpy(frame, head, sizeof head);
  memcpy(frame + sizeof head, json, len);
  send_frame('C', frame, sizeof head + len);
  _exit(0);
}

static _Noreturn void helper(struct esb_session_task *t, int frames, int interrupt) {
  helper_fds(frames, interrupt);
  struct outcome o = { .error = ESB_ERROR_INIT, .was = ESB_SESSION_ALIVE };
  if (t->op == ESB_SESSION_OP_RUN) {
    struct esb_result r = ESB_RESULT_INIT;
    int fd = FRAMES_FD;
    struct esb_output_sink sink = { .fn = send_output, .userdata = &fd, .fds = { -1, -1 } };
    if (esb_k8s_session_id(t->id)) /* the plan is this process's copy, a fork's */
      esb_k8s_session_run(t->id, (struct esb_plan *)t->plan, &r, INTERRUPT_FD, t->output.fn ? &sink : NULL);
    else
      esb_session_run(t->id, t->plan, &r, INTERRUPT_FD, t->output.fn ? &sink : NULL);
    send_result(&r);
    _exit(0);
  }
  if (t->op == ESB_SESSION_OP_CELL)
    cell(t);
  if (t->op == ESB_SESSION_OP_CREATE)
    create(t, &o);
  else if (t->op == ESB_SESSION_OP_K8S_LIST || esb_k8s_session_id(t->id))
    k8s_answer(t, &o);
  else
    esb_session_remove(t->id, &o.was, &o.error);
  send_frame('D', &o, sizeof o);
  _exit(0);
}

/* ---- a local session's run or cell: a thread's ---- */

/* The run or cell, as the helper's, on a thread of the caller's process: it
 * clones nothing (the session's holder starts the run, or the kernel; a
 * put of the request's files is a clone made for a threaded process,
 * local_session_files.c), and a fork of a daemon
 * costs more than the run (its page tables copied, then the copy-on-write
 * faults of both, each with its TLB shootdown to the daemon's other
 * threads, and the helper's exit). Its output goes on the pipe as the
 * helper's does; the result is written in place, and `ran` set, before the
 * pipe ends; the loop reads the result once it has seen both.
 *
 * The threads stay for the next run (a thread's start and end cost a
 * clone and, at its end, a madvise of its stack with its own TLB
 * shootdown): a run goes to an idle one, or to a new one where none is
 * idle; one finding more than IDLE_MAX others idle ends. Each has every
 * signal blocked (the daemon's come on its signalfd; SIGPIPE is the
 * process's, which a daemon ignores), and touches its task no more once
 * the pipe has ended: the loop may free it then. */
enum { IDLE_MAX = 4 };

static struct {
  pthread_mutex_t lock;
  pthread_cond_t more;
  struct esb_session_task *head, *tail; /* the runs no thread took yet */
  size_t idle, queued;
} runners = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0 };

/* A cell, as the helper's (cell above): its result as JSON, into the task. */
static void cell_on_thread(struct esb_session_task *t) {
  struct esb_cell_result r = ESB_CELL_RESULT_INIT;
  esb_session_cell(t->id, t->language, t->code, t->code_len, &t->held, &r, t->thread_interrupt);
  lua_State *L = esb_json_state();
  struct esb_error err;
  if (L) {
    esb_session_push_cell(L, &r, t->language, true);
    if (esb_json_encode(L, &err) == 0)
      t->cell_json = strdup(lua_tostring(L, -1));
    lua_close(L);
  }
  if (t->cell_json) { /* else FAILED, as where a helper gave none */
    t->cell_status = r.status;
    t->cell_failure = r.failure;
  }
  esb_cell_result_release(&r);
}

static void run_one(struct esb_session_task *t) {
  struct esb_output_sink sink = { .fn = send_output, .userdata = &t->thread_frames, .fds = { -1, -1 } };
  if (t->op == ESB_SESSION_OP_CELL)
    cell_on_thread(t);
  else
    esb_session_run(t->id, &t->held, &t->result, t->thread_interrupt, t->output.fn ? &sink : NULL);
  int frames = t->thread_frames;
  atomic_store_explicit(&t->ran, true, memory_order_release);
  close(frames); /* the loop's EOF: the result is complete */
}

static void *runner(void *arg) {
  (void)arg;
  pthread_mutex_lock(&runners.lock);
  for (;;) {
    while (!runners.head) {
      if (runners.idle >= IDLE_MAX) {
        pthread_mutex_unlock(&runners.lock);
        return NULL;
      }
      runners.idle++;
      pthread_cond_wait(&runners.more, &runners.lock);
      runners.idle--;
    }
    struct esb_session_task *t = runners.head;
    runners.head = t->queued_next;
    if (!runners.head)
      runners.tail = NULL;
    runners.queued--;
    pthread_mutex_unlock(&runners.lock);
    run_one(t);
    pthread_mutex_lock(&runners.lock);
  }
}

/* The plan moved into the task (the caller's is left empty), and the run
 * queued for a thread: an idle one, or one started for it. 0, or errno. */
static int start_thread(struct esb_session_task *t, int frames, int interrupt) {
  t->held = *t->plan;
  *t->plan = (struct esb_plan)ESB_PLAN_INIT;
  t->plan = &t->held;
  t->thread_frames = frames;
  t->thread_interrupt = interrupt;
  atomic_init(&t->ran, false);
  (void)esb_session_dir(); /* its first call fills a static: on the loop's thread */
  int rc = 0;
  pthread_mutex_lock(&runners.lock);
  if (runners.idle <= runners.queued) {
    pthread_attr_t attr;
    pthread_t thread;
    sigset_t all, old;
    sigfillset(&all);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&thread, &attr, runner, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
  }
  if (rc == 0) {
    t->queued_next = NULL;
    if (runners.tail)
      runners.tail->queued_next = t;
    else
      runners.head = t;
    runners.tail = t;
    runners.queued++;
    pthread_cond_signal(&runners.more);
    t->threaded = true;
  }
  pthread_mutex_unlock(&runners.lock);
  return rc;
}

/* The thread has closed its end of the pipe: what it held let go. */
static void thread_done(struct esb_session_task *t) {
  while (!atomic_load_explicit(&t->ran, memory_order_acquire))
    sched_yield(); /* set before the pipe's end: never waited for */
  t->threaded = false;
  t->got_outcome = t->op != ESB_SESSION_OP_CELL || t->cell_json;
  close(t->thread_interrupt);
  t->thread_interrupt = -1;
  esb_plan_release(&t->held);
}

/* ---- the parent's side ---- */

struct cursor {
  const char *p;
  size_t left;
  bool bad;
};

static void take(struct cursor *c, void *out, size_t n) {
  if (c->bad || c->left < n) {
    c->bad = true;
    memset(out, 0, n);
    return;
  }
  memcpy(out, c->p, n);
  c->p += n;
  c->left -= n;
}

/* put_bytes's bytes, NUL-terminated, owned; NULL for NULL (or bad). */
static char *take_bytes(struct cursor *c, size_t *lenp) {
  uint64_t len;
  take(c, &len, sizeof len);
  if (c->bad || len == UINT64_MAX || len > c->left) {
    c->bad |= len != UINT64_MAX;
    return NULL;
  }
  char *s = malloc(len + 1);
  if (!s) {
    c->bad = true;
    return NULL;
  }
  memcpy(s, c->p, len);
  s[len] = '\0';
  c->p += len;
  c->left -= len;
  if (lenp)
    *lenp = len;
  return s;
}

static void take_capture(struct cursor *c, struct esb_capture *cap) {
  size_t len = 0;
  cap->data = take_bytes(c, &len);
  cap->len = cap->data ? len : 0;
  cap->alloc = cap->data ? len + 1 : 0;
}

static int take_result(const char *p, size_t n, struct esb_result *r) {
  struct cursor c = { p, n, false };
  take(&c, r, sizeof *r);
  take_capture(&c, &r->out);
  take_capture(&c, &r->err);
  r->error_message = take_bytes(&c, NULL);
  r->cleanup_error = take_bytes(&c, NULL);
  r->fallback = take_bytes(&c, NULL);
  uint64_t warnings;
  take(&c, &warnings, sizeof warnings);
  for (uint64_t i = 0; i < warnings && !c.bad; i++) {
    char *w = take_bytes(&c, NULL);
    if (w)
      esb_strv_take(&r->warnings, w);
  }
  size_t count = r->files.count;
  r->files.count = 0;
  r->files.files = count && !c.bad ? calloc(count, sizeof *r->files.files) : NULL;
  for (size_t i = 0; r->files.files && i < count && !c.bad; i++) {
    struct esb_collected_file *f = &r->files.files[i];
    take(&c, f, sizeof *f);
    f->path = take_bytes(&c, NULL);
    f->data = take_bytes(&c, &f->len);
    r->files.count = i + 1;
  }
  return c.bad ? -1 : 0;
}

/* The task's complete frames, handed on; the rest kept for later. */
static void take_frames(struct esb_session_task *t) {
  size_t off = 0;
  struct frame h;
  while (t->len - off >= sizeof h) {
    memcpy(&h, t->buf + off, sizeof h);
    if (t->len - off - sizeof h < h.len)
      break;
    const char *p = t->buf + off + sizeof h;
    if ((h.kind == 'o' || h.kind == 'e') && t->output.fn)
      t->output.fn(h.kind == 'o' ? 1 : 2, p, h.len, t->output.userdata);
    else if (h.kind == 'N') {
      char *note = strndup(p, h.len);
      if (note)
        esb_strv_take(&t->clamped, note);
    } else if (h.kind == 'J') {
      free(t->k8s_json);
      t->k8s_json = strndup(p, h.len);
    } else if (h.kind == 'R') {
      esb_result_release(&t->result);
      t->got_outcome = take_result(p, h.len, &t->result) == 0;
    } else if (h.kind == 'C' && h.len >= 2 * sizeof(uint32_t)) {
      uint32_t head[2];
      memcpy(head, p, sizeof head);
      free(t->cell_json);
      t->cell_json = strndup(p + sizeof head, h.len - sizeof head);
      t->cell_status = head[0] < ESB_CELL__COUNT ? (enum esb_cell_status)head[0] : ESB_CELL_FAILED;
      t->cell_failure = head[1] < ESB_E__COUNT ? (enum esb_error_code)head[1] : ESB_E_SYSTEM;
      t->got_outcome = t->cell_json != NULL;
    } else if (h.kind == 'D' && h.len == sizeof(struct outcome)) {
      struct outcome o;
      memcpy(&o, p, sizeof o);
      t->error = o.error;
      t->was = o.was;
      memcpy(t->k8s_ended, o.ended, sizeof t->k8s_ended);
      if (t->op == ESB_SESSION_OP_CREATE)
        memcpy(t->id, o.id, sizeof t->id);
      t->got_outcome = true;
    }
    off += sizeof h + h.len;
  }
  memmove(t->buf, t->buf + off, t->len - off);
  t->len -= off;
}

/* The helper closed its pipe: it has ended. Reaped, and on_done. */
static void finish(struct esb_session_task *t) {
  epoll_ctl(t->set->epfd, EPOLL_CTL_DEL, t->fd, NULL);
  close(t->fd);
  t->fd = -1;
  if (t->interrupt >= 0)
    close(t->interrupt);
  t->interrupt = -1;
  int status = 0;
  if (t->threaded)
    thread_done(t);
  else
    while (waitpid(t->pid, &status, 0) < 0 && errno == EINTR)
      ;
  free(t->buf);
  t->buf = NULL;
  t->len = t->cap = 0;
  if (!t->got_outcome) {
    esb_error_set(&t->error, ESB_E_SYSTEM, "the session's helper process ended without its outcome "
                  "(wait status %d)", status);
    esb_result_release(&t->result);
    esb_result_fail_error(&t->result, &t->error);
  }
  t->set->in_flight--;
  if (t->prev)
    t->prev->next = t->next;
  else
    t->set->head = t->next;
  if (t->next)
    t->next->prev = t->prev;
  if (t->on_done)
    t->on_done(t, t->userdata);
}

/* What the helper wrote; false once it has ended (on_done ran). */
static bool read_task(struct esb_session_task *t) {
  for (;;) {
    if (t->cap - t->len < 65536) {
      char *p = realloc(t->buf, t->cap * 2 + 65536);
      if (!p)
        break; /* out of memory: the frames so far, and the helper's end */
      t->buf = p;
      t->cap = t->cap * 2 + 65536;
    }
    ssize_t n = read(t->fd, t->buf + t->len, t->cap - t->len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN)
      return true;
    if (n <= 0)
      break;
    t->len += (size_t)n;
    take_frames(t);
  }
  finish(t);
  return false;
}

int esb_session_tasks_init(struct esb_session_tasks *set, struct esb_error *err) {
  set->in_flight = 0;
  set->head = NULL;
  set->epfd = epoll_create1(EPOLL_CLOEXEC);
  return set->epfd < 0 ? esb_error_errno(err, ESB_E_SYSTEM, "making the sessions' epoll set") : 0;
}

void esb_session_tasks_step(struct esb_session_tasks *set) {
  struct epoll_event ev[16];
  int n = epoll_wait(set->epfd, ev, 16, 0);
  for (int i = 0; i < n; i++)
    read_task(ev[i].data.ptr);
}

void esb_session_tasks_close(struct esb_session_tasks *set) {
  if (set->epfd >= 0)
    close(set->epfd);
  set->epfd = -1;
}

/* The helper forked, or a local run's or cell's thread started, with its
 * ends of the pipes (which the task keeps for the thread). 0, or -1 with
 * errno. */
static int start_helper(struct esb_session_task *t, int frames, int interrupt) {
  if ((t->op == ESB_SESSION_OP_RUN || t->op == ESB_SESSION_OP_CELL) && !esb_k8s_session_id(t->id)) {
    int rc = start_thread(t, frames, interrupt);
    if (rc == 0)
      return 0;
    esb_plan_release(&t->held);
    errno = rc;
  } else if ((t->pid = fork()) == 0) {
    helper(t, frames, interrupt);
  }
  int saved = errno;
  close(frames);
  if (interrupt >= 0)
    close(interrupt);
  errno = saved;
  return t->pid < 0 ? -1 : 0;
}

int esb_session_task_start(struct esb_session_tasks *set, struct esb_session_task *t, struct esb_error *err) {
  int frames[2], interrupt[2] = { -1, -1 };
  if (pipe2(frames, O_CLOEXEC) < 0)
    return esb_error_errno(err, ESB_E_SYSTEM, "making a session helper's pipe");
  bool interruptible = t->op == ESB_SESSION_OP_RUN || t->op == ESB_SESSION_OP_CELL;
  if (interruptible && pipe2(interrupt, O_CLOEXEC) < 0) {
    close(frames[0]);
    close(frames[1]);
    return esb_error_errno(err, ESB_E_SYSTEM, "making a session helper's pipe");
  }
  t->set = set;
  t->fd = frames[0];
  t->interrupt = interrupt[1];
  struct epoll_event ev = { .events = EPOLLIN, .data.ptr = t };
  bool watched = fcntl(t->fd, F_SETFL, O_NONBLOCK) == 0 && epoll_ctl(set->epfd, EPOLL_CTL_ADD, t->fd, &ev) == 0;
  if (!watched || start_helper(t, frames[1], interrupt[0]) < 0) {
    esb_error_errno(err, ESB_E_SYSTEM, "starting a session helper");
    if (!watched) {
      close(frames[1]);
      if (interrupt[0] >= 0)
        close(interrupt[0]);
    } else {
      epoll_ctl(set->epfd, EPOLL_CTL_DEL, t->fd, NULL);
    }
    close(t->fd);
    if (t->interrupt >= 0)
      close(t->interrupt);
    t->fd = t->interrupt = -1;
    return -1;
  }
  set->in_flight++;
  t->prev = NULL;
  t->next = set->head;
  if (set->head)
    set->head->prev = t;
  set->head = t;
  return 0;
}

void esb_session_task_interrupt(struct esb_session_task *t) {
  if (t->interrupt >= 0)
    close(t->interrupt);
  t->interrupt = -1;
}

void esb_session_tasks_interrupt(struct esb_session_tasks *set) {
  for (struct esb_session_task *t = set->head; t; t = t->next)
    esb_session_task_interrupt(t);
}
