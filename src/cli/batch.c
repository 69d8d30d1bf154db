/* echo-sandbox batch: NDJSON requests in, NDJSON results out, many at once
 * in one event loop. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "cli/cli.h"
#include "dispatch/job.h"
#include "dispatch/output_events.h"
#include "engine/cgroup.h"
#include "engine/signals.h"
#include "engine/fileio.h"
#include "luaglue/convert.h"
#include "luaglue/call.h"
#include "luaglue/json.h"

static const char batch_usage[] =
  "usage: echo-sandbox batch [-j N] [--events] [--policy FILE] < requests.ndjson\n"
  "\n"
  "Reads one request object per line and prints one result object per line,\n"
  "in the order the runs end, each with the request's \"id\" (null when it had\n"
  "none) and its \"line\" number. At most N run at once, all in one event loop,\n"
  "on either backend. A line that is not a valid request gets an error result;\n"
  "the others go on. SIGINT/SIGTERM kill every run (and delete its pod).\n"
  "\n"
  "options:\n"
  "  --events         also print each run's output as it comes, before its result:\n"
  "                   {\"id\", \"line\", \"event\": \"output\", \"stream\": \"stdout\" or \"stderr\",\n"
  "                   \"data\" (or \"data_base64\" where the bytes are not UTF-8)}, and\n"
  "                   {\"event\": \"truncated\", \"max_stream_bytes\"} at the policy's ceiling\n"
  "  -j, --jobs N     runs in flight at once (default: twice the cores)\n"
  "  --policy FILE    load this policy instead of the default search\n";

struct batch;

struct batch_job {
  struct esb_job job;
  struct esb_request request; /* the job's plan borrows its stdin */
  struct batch *batch;
  long line;
  struct esb_output_events events; /* with --events */
};

struct batch {
  lua_State *L;
  struct esb_policy *policy;
  int ids;         /* registry ref: line -> the request's id */
  long in_flight;
  bool events;     /* --events */
};

/* Pushes the event (1) with the id (from the ids table, 3) of its line (2)
 * (runs protected). */
static int push_line_event(lua_State *L) {
  lua_Integer line = lua_tointeger(L, 2);
  esb_json_event_table(L, lua_touserdata(L, 1));    /* event */
  lua_rawgeti(L, LUA_REGISTRYINDEX, (int)lua_tointeger(L, 3));
  lua_rawgeti(L, -1, line);                         /* event, ids, ids[line] */
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    esb_json_field(L, "null");
  }
  lua_setfield(L, -3, "id");
  lua_pop(L, 1);                                    /* event */
  lua_pushinteger(L, line);
  lua_setfield(L, -2, "line");
  return 1;
}

static void print_event(struct batch_job *bj, const struct esb_json_event *ev) {
  lua_State *L = bj->batch->L;
  char err[ESB_MESSAGE_MAX];
  lua_pushcfunction(L, push_line_event);
  lua_pushlightuserdata(L, (void *)ev);
  lua_pushinteger(L, bj->line);
  lua_pushinteger(L, bj->batch->ids);
  if (esb_lua_pcall(L, 3, 1, ESB_LUA_MESSAGE, NULL, err, sizeof err) < 0) {
    fprintf(stderr, "echo-sandbox batch: line %ld: %s\n", bj->line, err);
    return;
  }
  esb_json_print(L);
}

static void emit_output(int stream, const char *data, size_t len, bool text, void *userdata) {
  struct batch_job *bj = userdata;
  print_event(bj, &(struct esb_json_event){ .stream = stream, .data = data, .len = len, .text = text });
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

/* Prints {result..., id, line} (runs protected). */
static int push_line_result(lua_State *L) {
  const struct esb_result *r = lua_touserdata(L, 1);
  lua_Integer line = lua_tointeger(L, 2);
  int ids = (int)lua_tointeger(L, 3);
  esb_json_field(L, "null");
  int null_idx = lua_gettop(L);
  esb_lua_push_result(L, r, null_idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ids);
  lua_rawgeti(L, -1, line);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushvalue(L, null_idx);
  }
  lua_setfield(L, -3, "id");
  lua_pop(L, 1);
  lua_pushinteger(L, line);
  lua_setfield(L, -2, "line");
  return 1;
}

static void print_result(struct batch *b, const struct esb_result *r, long line) {
  lua_pushcfunction(b->L, push_line_result);
  lua_pushlightuserdata(b->L, (void *)r);
  lua_pushinteger(b->L, line);
  lua_pushinteger(b->L, b->ids);
  char err[ESB_MESSAGE_MAX];
  if (esb_lua_pcall(b->L, 3, 1, ESB_LUA_MESSAGE, NULL, err, sizeof err) < 0) {
    fprintf(stderr, "echo-sandbox batch: line %ld: %s\n", line, err);
    return;
  }
  esb_json_print(b->L);
}

static void forget_id(struct batch *b, long line) {
  lua_rawgeti(b->L, LUA_REGISTRYINDEX, b->ids);
  lua_pushnil(b->L);
  lua_rawseti(b->L, -2, line);
  lua_pop(b->L, 1);
}

static void job_done(struct esb_job *job, void *userdata) {
  struct batch_job *bj = userdata;
  struct batch *b = bj->batch;
  if (b->events)
    esb_output_events_flush(&bj->events);
  print_result(b, &job->result, bj->line);
  forget_id(b, bj->line);
  esb_result_release(&job->result);
  esb_job_release(job);
  esb_request_release(&bj->request);
  free(bj);
  b->in_flight--;
}

/* Decodes a line and keeps its id (runs protected): pushes the request. */
static int decode_line(lua_State *L) {
  esb_json_field(L, "decode");
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  if (lua_istable(L, -1)) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, (int)lua_tointeger(L, 3));
    lua_getfield(L, -2, "id");
    lua_rawseti(L, -2, lua_tointeger(L, 2));
    lua_pop(L, 1);
  }
  return 1;
}

static void fail_line(struct batch *b, long line, enum esb_error code, const char *msg) {
  struct esb_result r = ESB_RESULT_INIT;
  esb_result_fail(&r, code, "%s", msg);
  print_result(b, &r, line);
  esb_result_release(&r);
  forget_id(b, line);
}

static void start_line(struct batch *b, struct esb_loop *loop, const char *text, size_t len, long line) {
  char err[ESB_MESSAGE_MAX];
  lua_State *L = b->L;
  lua_pushcfunction(L, decode_line);
  lua_pushlstring(L, text, len);
  lua_pushinteger(L, line);
  lua_pushinteger(L, b->ids);
  char what[64];
  snprintf(what, sizeof what, "line %ld: invalid request JSON", line);
  if (esb_lua_pcall(L, 3, 1, ESB_LUA_MESSAGE, what, err, sizeof err) < 0) {
    fail_line(b, line, ESB_E_INVALID_REQUEST, err);
    return;
  }
  struct esb_request req = ESB_REQUEST_INIT;
  int bad = esb_lua_to_request(L, -1, &req, err, sizeof err);
  lua_pop(L, 1);
  if (bad < 0) {
    fail_line(b, line, ESB_E_INVALID_REQUEST, err);
    return;
  }
  struct batch_job *bj = calloc(1, sizeof *bj);
  if (!bj) {
    esb_request_release(&req);
    fail_line(b, line, ESB_E_SYSTEM, "out of memory");
    return;
  }
  bj->job = (struct esb_job)ESB_JOB_INIT;
  bj->job.on_done = job_done;
  bj->job.userdata = bj;
  if (b->events) {
    bj->events = (struct esb_output_events)ESB_OUTPUT_EVENTS_INIT;
    bj->events.emit = emit_output;
    bj->events.reached_ceiling = emit_ceiling;
    bj->events.userdata = bj;
    bj->job.output.fn = on_output;
    bj->job.output.userdata = bj;
  }
  bj->request = req;
  bj->batch = b;
  bj->line = line;
  if (esb_job_start(&bj->job, loop, b->policy, &bj->request, stderr) == 0) {
    b->in_flight++;
    return;
  }
  print_result(b, &bj->job.result, line);
  forget_id(b, line);
  esb_result_release(&bj->job.result);
  esb_job_release(&bj->job);
  esb_request_release(&bj->request);
  free(bj);
}

int esb_cli_batch(int argc, char **argv) {
  static const struct option longopts[] = {
    {"jobs", required_argument, 0, 'j'}, {"policy", required_argument, 0, 'p'}, {"events", no_argument, 0, 'e'},
    {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  long jobs = cores > 0 ? 2 * cores : 2;
  const char *policy_path = NULL;
  bool events = false;
  optind = 1;
  opterr = 0;
  for (int c; (c = getopt_long(argc, argv, "+hj:", longopts, NULL)) != -1;) {
    char *end;
    switch (c) {
    case 'j':
      jobs = strtol(optarg, &end, 10);
      if (*end || jobs < 1) {
        fprintf(stderr, "echo-sandbox batch: -j %s: expected a positive whole number\n", optarg);
        return 125;
      }
      break;
    case 'p': policy_path = optarg; break;
    case 'e': events = true; break;
    case 'h': fputs(batch_usage, stdout); return 0;
    default:
      fprintf(stderr, "echo-sandbox batch: unknown or incomplete option '%s'\n%s", argv[optind - 1], batch_usage);
      return 125;
    }
  }
  char err[ESB_MESSAGE_MAX];
  struct batch b = { .events = events };
  int rc = 125;
  size_t len = 0;
  char *input = NULL;
  int sigfd = -1;
  struct esb_cgroup_pool cgroups = ESB_CGROUP_POOL_INIT;
  if (!(b.L = esb_json_state()) || !(b.policy = esb_policy_open(policy_path, err, sizeof err))) {
    fprintf(stderr, "echo-sandbox batch: %s\n", b.L ? err : "out of memory");
    goto out;
  }
  lua_newtable(b.L);
  b.ids = luaL_ref(b.L, LUA_REGISTRYINDEX);
  if (!(input = esb_read_file("-", &len))) {
    fprintf(stderr, "echo-sandbox batch: reading stdin: %s\n", strerror(errno));
    goto out;
  }
  static const int exit_signals[] = { SIGINT, SIGTERM };
  sigfd = esb_signal_fd(exit_signals, 2);
  struct esb_loop loop = ESB_LOOP_INIT;
  loop.interrupt_fd = sigfd;
  loop.cgroup_pool = &cgroups;
  char *next = input, *end = input + len;
  long line = 0;
  while (next < end || b.in_flight > 0) {
    while (next < end && b.in_flight < jobs && !loop.interrupted) {
      char *nl = memchr(next, '\n', (size_t)(end - next));
      char *stop = nl ? nl : end;
      line++;
      size_t n = (size_t)(stop - next);
      if (n && strspn(next, " \t\r") < n)
        start_line(&b, &loop, next, n, line);
      next = nl ? nl + 1 : end;
    }
    if (loop.interrupted && next < end)
      next = end; /* a signal: start nothing more */
    if (b.in_flight > 0)
      esb_loop_step(&loop, -1);
  }
  rc = loop.interrupted ? 130 : 0;
out:
  esb_cgroup_pool_clear(&cgroups);
  if (sigfd >= 0)
    close(sigfd);
  free(input);
  esb_policy_close(b.policy);
  if (b.L)
    lua_close(b.L);
  return rc;
}
