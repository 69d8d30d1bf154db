/* echo-sandbox batch: NDJSON requests in, NDJSON results out, many at once
 * in one event loop. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "cli/cli.h"
#include "cli/plan_queue.h"
#include "dispatch/job.h"
#include "dispatch/output_events.h"
#include "engine/cgroup.h"
#include "engine/sandbox/host_paths.h"
#include "engine/runtime/signals.h"
#include "engine/fileio.h"
#include "codec/convert.h"
#include "luaglue/call.h"
#include "codec/json.h"

static const char batch_usage[] =
  "usage: echo-sandbox batch [-j N] [--events] [--policy FILE] [FILE | -]\n"
  "\n"
  "Reads one request object per line of FILE (stdin when there is none, or\n"
  "for '-') and prints one result object per line, in the order the runs\n"
  "end, each with the request's \"id\" (null when it had none) and its\n"
  "\"line\" number. At most N run at once, all in one event loop,\n"
  "on either backend. A line that is not a valid request gets an error result;\n"
  "the others go on. SIGINT/SIGTERM kill every run (and delete its pod).\n"
  "\n"
  "options:\n"
  "  --events         also print each run's output as it comes, before its result:\n"
  "                   {\"id\", \"line\", \"event\": \"output\", \"stream\": \"stdout\" or \"stderr\",\n"
  "                   \"data\" (or \"data_base64\" where the bytes are not UTF-8)}, and\n"
  "                   {\"event\": \"truncated\", \"max_stream_bytes\"} at the policy's ceiling\n"
  "  -j, --jobs N     runs in flight at once (default: twice the cores)\n"
  "  --policy FILE    load this policy instead of the default search\n"
  "  -h, --help       show this help\n";

struct batch;

/* A line of the input: planned on the planner thread, run on the loop's. */
struct batch_job {
  struct esb_plan_queue_item link; /* in the queue, planner to loop */
  struct esb_job job;         /* planned (job.planned), or job.result says
                                 why the line is not run */
  struct esb_request request; /* the job's plan borrows its stdin */
  struct batch *batch;
  long line;
  char *id;                   /* the request's "id" as JSON text; NULL: none */
  struct esb_output_events events; /* with --events */
};

/* The lines are decoded and planned on a thread of their own, a queue of
 * `jobs` ahead of the runs, so the loop's thread only starts runs, moves
 * their bytes and prints results: the policy's Lua and the request's JSON
 * cost the loop nothing. Each thread has a Lua state of its own (the
 * planner's decodes, the loop's encodes); the policy is the planner's. */
struct batch {
  lua_State *L;                /* the loop's: results and events to JSON */
  long in_flight;
  bool events;                 /* --events */
  struct esb_plan_queue queue;
  /* the planner's */
  lua_State *planner_L;
  struct esb_policy *policy;
  const char *next, *end;      /* the lines not yet planned */
  long lost;                   /* lines it could not hand over (out of memory) */
};

/* Pushes cjson.decode(id), or cjson.null without one (runs protected). */
static void push_id(lua_State *L, const char *id) {
  if (!id) {
    esb_json_field(L, "null");
    return;
  }
  esb_json_field(L, "decode");
  lua_pushstring(L, id);
  lua_call(L, 1, 1);
}

/* Pushes the event (1) with the id (3) of its line (2) (runs protected). */
static int push_line_event(lua_State *L) {
  esb_json_event_table(L, lua_touserdata(L, 1));    /* event */
  push_id(L, lua_touserdata(L, 3));                 /* event, id */
  lua_setfield(L, -2, "id");
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "line");
  return 1;
}

static void print_event(struct batch_job *bj, const struct esb_json_event *ev) {
  lua_State *L = bj->batch->L;
  struct esb_error err;
  lua_pushcfunction(L, push_line_event);
  lua_pushlightuserdata(L, (void *)ev);
  lua_pushinteger(L, bj->line);
  lua_pushlightuserdata(L, bj->id);
  if (esb_lua_pcall(L, 3, 1, ESB_LUA_MESSAGE, ESB_E_SYSTEM, NULL, &err) < 0) {
    fprintf(stderr, "echo-sandbox batch: line %ld: %s\n", bj->line, err.message);
    return;
  }
  esb_json_print(L);
}

static void emit_output(int stream, const char *data, size_t len, bool text, void *userdata) {
  struct batch_job *bj = userdata;
  print_event(bj, &(struct esb_json_event){ .stream = stream, .data = data, .len = len, .text = text });
}

/* An attempt of the network by name as the proxy decided it. */
static void on_egress(const struct esb_egress_attempt *attempt, void *userdata) {
  print_event(userdata, &(struct esb_json_event){ .egress = attempt });
}

static void emit_ceiling(uint64_t sent, void *userdata) {
  struct batch_job *bj = userdata;
  (void)sent;
  print_event(bj, &(struct esb_json_event){ .ceiling = bj->job.plan.max_stream_bytes });
}

/* The job's output as it comes, into events (the plan, and its ceiling, are
 * made by the time output comes). */
static void on_output(int stream, const char *data, size_t len, void *userdata) {
  struct batch_job *bj = userdata;
  bj->events.max_bytes = bj->job.plan.max_stream_bytes;
  esb_output_events_feed(&bj->events, stream, data, len);
}

/* Pushes {result..., id, line}: the result (1), its line (2), its id (3)
 * (runs protected). */
static int push_line_result(lua_State *L) {
  esb_json_field(L, "null");
  esb_lua_push_result(L, lua_touserdata(L, 1), lua_gettop(L)); /* null, result */
  push_id(L, lua_touserdata(L, 3));
  lua_setfield(L, -2, "id");
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "line");
  return 1;
}

static void print_result(struct batch_job *bj) {
  lua_State *L = bj->batch->L;
  lua_pushcfunction(L, push_line_result);
  lua_pushlightuserdata(L, &bj->job.result);
  lua_pushinteger(L, bj->line);
  lua_pushlightuserdata(L, bj->id);
  struct esb_error err;
  if (esb_lua_pcall(L, 3, 1, ESB_LUA_MESSAGE, ESB_E_SYSTEM, NULL, &err) < 0) {
    fprintf(stderr, "echo-sandbox batch: line %ld: %s\n", bj->line, err.message);
    return;
  }
  esb_json_print(L);
}

static void batch_job_free(struct batch_job *bj) {
  esb_result_release(&bj->job.result);
  esb_job_release(&bj->job);
  esb_request_release(&bj->request);
  free(bj->id);
  free(bj);
}

static void job_done(struct esb_job *job, void *userdata) {
  struct batch_job *bj = userdata;
  (void)job; /* bj's own */
  if (bj->batch->events)
    esb_output_events_flush(&bj->events);
  print_result(bj);
  bj->batch->in_flight--;
  batch_job_free(bj);
}

/* On the loop's thread: a planned line started, or a line that failed
 * printed. */
static void start_job(struct batch *b, struct esb_loop *loop, struct batch_job *bj) {
  if (bj->job.planned) {
    bj->job.on_done = job_done;
    bj->job.userdata = bj;
    if (b->events) {
      esb_output_events_init(&bj->events, emit_output, emit_ceiling, bj);
      bj->job.output = (struct esb_output_sink){ .fn = on_output, .userdata = bj, .fds = { -1, -1 },
                                                 .on_egress = on_egress };
    }
    if (esb_job_run(&bj->job, loop) == 0) {
      b->in_flight++;
      return;
    }
  }
  print_result(bj);
  batch_job_free(bj);
}

/* Decodes the line (1): pushes the request and its "id" as JSON text, or
 * nil without one (runs protected). */
static int decode_line(lua_State *L) {
  esb_json_field(L, "decode");
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);                                /* line, request */
  if (lua_istable(L, -1))
    lua_getfield(L, -1, "id");
  else
    lua_pushnil(L);                                 /* line, request, id */
  if (!lua_isnil(L, -1)) {
    esb_json_field(L, "encode");
    lua_insert(L, -2);
    lua_call(L, 1, 1);                              /* line, request, id's text */
  }
  return 2;
}

/* On the planner's thread: the line decoded and planned, or failed. */
static void plan_line(struct batch *b, struct batch_job *bj, const char *text, size_t len) {
  struct esb_error err = ESB_ERROR_INIT;
  lua_State *L = b->planner_L;
  lua_pushcfunction(L, decode_line);
  lua_pushlstring(L, text, len);
  char what[64];
  snprintf(what, sizeof what, "line %ld: invalid request JSON", bj->line);
  if (esb_lua_pcall(L, 1, 2, ESB_LUA_MESSAGE, ESB_E_INVALID_REQUEST, what, &err) < 0) {
    esb_result_fail_error(&bj->job.result, &err);
    return;
  }
  if (lua_type(L, -1) == LUA_TSTRING && !(bj->id = strdup(lua_tostring(L, -1)))) {
    lua_pop(L, 2);
    esb_result_fail(&bj->job.result, ESB_E_SYSTEM, "out of memory");
    return;
  }
  int bad = esb_lua_to_request(L, lua_absindex(L, -2), &bj->request, &err);
  lua_pop(L, 2);
  if (bad < 0) {
    esb_result_fail_error(&bj->job.result, &err);
    return;
  }
  esb_job_plan(&bj->job, b->policy, &bj->request, stderr);
}

static void *planner(void *arg) {
  struct batch *b = arg;
  long line = 0;
  pthread_setname_np(pthread_self(), "esb-planner"); /* top -H, bench/loop_thread.sh */
  while (b->next < b->end) {
    const char *nl = memchr(b->next, '\n', (size_t)(b->end - b->next));
    const char *stop = nl ? nl : b->end, *text = b->next;
    size_t n = (size_t)(stop - text);
    b->next = nl ? nl + 1 : b->end;
    line++;
    if (!n || strspn(text, " \t\r") >= n)
      continue;
    struct batch_job *bj = calloc(1, sizeof *bj);
    if (!bj) {
      fprintf(stderr, "echo-sandbox batch: line %ld: out of memory\n", line);
      b->lost++;
      continue;
    }
    *bj = (struct batch_job){ .job = ESB_JOB_INIT, .request = ESB_REQUEST_INIT, .batch = b, .line = line };
    plan_line(b, bj, text, n);
    if (!esb_plan_queue_put(&b->queue, &bj->link)) {
      batch_job_free(bj); /* stopped by a signal: start nothing more */
      break;
    }
  }
  esb_plan_queue_close(&b->queue);
  return NULL;
}

static void queue_readable(void *userdata) {
  esb_plan_queue_clear_wake(userdata);
}

/* Starts the planner with every signal blocked: they are the loop's. */
static int start_planner(struct batch *b, pthread_t *thread) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(thread, NULL, planner, b);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return -rc;
}

struct batch_options {
  long jobs;
  const char *policy_path;
  bool events;
};

/* Reads the options into o: -1 to go on, or the exit status. */
static int read_batch_options(int argc, char **argv, struct batch_options *o) {
  static const struct option longopts[] = {
    {"jobs", required_argument, 0, 'j'}, {"policy", required_argument, 0, 'p'}, {"events", no_argument, 0, 'e'},
    {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  o->jobs = cores > 0 ? 2 * cores : 2;
  optind = 1;
  opterr = 0;
  for (int c; (c = getopt_long(argc, argv, "+hj:", longopts, NULL)) != -1;) {
    char *end;
    switch (c) {
    case 'j':
      o->jobs = strtol(optarg, &end, 10);
      if (*end || o->jobs < 1) {
        fprintf(stderr, "echo-sandbox batch: -j %s: expected a positive whole number\n", optarg);
        return 125;
      }
      break;
    case 'p': o->policy_path = optarg; break;
    case 'e': o->events = true; break;
    case 'h': fputs(batch_usage, stdout); return 0;
    default:
      fprintf(stderr, "echo-sandbox batch: unknown or incomplete option '%s'\n%s", argv[optind - 1], batch_usage);
      return 125;
    }
  }
  return -1;
}

/* Starts the planned jobs, up to `jobs` at once, until the planner has
 * finished and every job has ended, or a signal came. */
static void run_jobs(struct batch *b, struct esb_loop *loop, long jobs) {
  for (;;) {
    bool finished = false;
    struct esb_plan_queue_item *item;
    while (b->in_flight < jobs && !loop->interrupted && (item = esb_plan_queue_take(&b->queue, &finished)))
      start_job(b, loop, (struct batch_job *)item);
    if (loop->interrupted)
      esb_plan_queue_stop(&b->queue); /* a signal: start nothing more */
    if (b->in_flight == 0 && (finished || loop->interrupted))
      break;
    esb_loop_step(loop, -1);
  }
}

int esb_cli_batch(int argc, char **argv) {
  struct batch_options o = { 0 };
  int done = read_batch_options(argc, argv, &o);
  if (done >= 0)
    return done;
  long jobs = o.jobs;
  /* The requests' file: a name that cannot be read is an error, never a
   * silent read of stdin instead. */
  if (argc - optind > 1) {
    fprintf(stderr, "echo-sandbox batch: expected at most one FILE, got '%s' and '%s'\n%s", argv[optind],
            argv[optind + 1], batch_usage);
    return 125;
  }
  const char *input_path = optind < argc ? argv[optind] : "-";
  struct esb_error err;
  struct batch b = { .events = o.events, .queue = { .wake_fd = -1 } };
  int rc = 125;
  size_t len = 0;
  char *input = NULL;
  int sigfd = -1;
  bool queue_made = false, planning = false;
  pthread_t planner_thread;
  struct esb_cgroup_pool cgroups = ESB_CGROUP_POOL_INIT;
  struct esb_loop loop = ESB_LOOP_INIT;
  if (!(b.L = esb_json_state()) || !(b.planner_L = esb_json_state()) ||
      !(b.policy = esb_policy_open(o.policy_path, &err))) {
    fprintf(stderr, "echo-sandbox batch: %s\n", b.L && b.planner_L ? err.message : "out of memory");
    goto out;
  }
  if (!(input = esb_read_file(input_path, &len))) {
    fprintf(stderr, "echo-sandbox batch: %s: %s\n", strcmp(input_path, "-") == 0 ? "reading stdin" : input_path,
            strerror(errno));
    goto out;
  }
  b.next = input;
  b.end = input + len;
  static const int exit_signals[] = { SIGINT, SIGTERM };
  sigfd = esb_signal_fd(exit_signals, 2);
  loop.interrupt_fd = sigfd;
  loop.cgroup_pool = &cgroups;
  esb_host_paths_keep(true); /* the policy's host paths, as each plan finds them */
  /* The planner keeps up to `jobs` ahead (at most 64: a plan holds its
   * request's code and files). */
  int made = esb_plan_queue_init(&b.queue, jobs < 64 ? (size_t)jobs : 64);
  queue_made = made == 0;
  if (made < 0 || esb_loop_watch(&loop, b.queue.wake_fd, queue_readable, &b.queue) < 0 ||
      (made = start_planner(&b, &planner_thread)) < 0) {
    fprintf(stderr, "echo-sandbox batch: %s\n", strerror(made < 0 ? -made : EMFILE));
    goto out;
  }
  planning = true;
  run_jobs(&b, &loop, jobs);
  rc = loop.interrupted ? 130 : b.lost ? 1 : 0;
out:
  if (planning) {
    esb_plan_queue_stop(&b.queue);
    pthread_join(planner_thread, NULL);
    bool finished;
    for (struct esb_plan_queue_item *item; (item = esb_plan_queue_take(&b.queue, &finished));)
      batch_job_free((struct batch_job *)item);
  }
  esb_loop_unwatch(&loop, b.queue.wake_fd);
  if (queue_made)
    esb_plan_queue_destroy(&b.queue);
  esb_cgroup_pool_clear(&cgroups);
  esb_host_paths_keep(false);
  if (sigfd >= 0)
    close(sigfd);
  free(input);
  esb_policy_close(b.policy);
  if (b.planner_L)
    lua_close(b.planner_L);
  if (b.L)
    lua_close(b.L);
  return rc;
}
