#include "daemon/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>
#include <microhttpd.h>

#include "daemon/admission.h"
#include "daemon/listen.h"
#include "daemon/metrics.h"
#include "daemon/pool_keeper.h"
#include "daemon/routes.h"
#include "daemon/token.h"
#include "dispatch/output_events.h"
#include "dispatch/prove.h"
#include "dispatch/job.h"
#include "engine/cgroup.h"
#include "engine/sandbox/host_paths.h"
#include "engine/runtime/exec_path.h"
#include "engine/strv.h"
#include "engine/runtime/signals.h"
#include "backend/k8s_command.h"
#include "backend/k8s_session.h"
#include "dispatch/execute.h"
#include "dispatch/session.h"
#include "dispatch/session_k8s_files.h"
#include "dispatch/session_task.h"
#include "luaglue/call.h"
#include "codec/convert.h"
#include "codec/json.h"

struct conn;

/* A session the daemon saw ended, and why: a 404's words once its
 * directory is gone. The last GONE_MAX, newest over oldest. */
#define GONE_MAX 1024
struct gone {
  char id[ESB_SESSION_ID_LEN + 1];
  enum esb_session_end end;
  bool removing;            /* a remove of what it left is on */
};

struct server {
  const struct esb_server_options *o;
  struct MHD_Daemon *mhd;
  int listen_fd, sigfd;
  char *unix_path;
  struct esb_loop loop;
  struct esb_cgroup_pool cgroups; /* idle cgroups of finished local runs */
  struct esb_policy *policy;
  lua_State *L;             /* cjson, for requests and results */
  struct esb_metrics m;
  struct esb_admission admission;
  bool stopping, done;
  uint64_t stop_deadline_ns;
  /* readiness (GET /readyz), checked at start and after each reload */
  bool ready;
  const char *ready_backend;   /* static: "local" or "k8s" */
  char ready_reason[ESB_MESSAGE_MAX];
  /* sessions (dispatch/session_task.h): their helpers' epoll set, the ones
     seen ended, and when the directory of sessions was last looked over */
  struct esb_session_tasks tasks;
  struct gone gone[GONE_MAX];
  size_t gone_next;
  uint64_t swept_ns;
  size_t sessions_alive;    /* as the last look counted them */
  struct esb_pool_keeper keeper; /* the warm pools' maintainer, a helper process */
};

/* What a request that runs something asks for. */
enum conn_kind { CONN_RUN, CONN_SESSION_CREATE, CONN_SESSION_RUN, CONN_SESSION_DELETE, CONN_K8S_SESSION_ASK,
                 CONN_SESSION_CELL, CONN_K8S_FILES };

/* One HTTP request. */
struct conn {
  struct server *s;
  struct MHD_Connection *c;
  char *body;
  size_t len, cap;
  bool too_large;
  unsigned code;            /* the response, once there is one */
  char *response;
  size_t response_len;
  const char *content_type;
  const char *header;       /* one more header of the answer (Retry-After, Allow,
                               WWW-Authenticate), or NULL */
  char header_value[96];
  struct esb_request req;
  enum conn_kind kind;
  struct esb_job job;       /* CONN_RUN */
  char session[ESB_K8S_SESSION_ID_LEN + 1]; /* the others: the session's id, once known (a local
                                               session's, or a k8s session's: its pod's name) */
  struct esb_session_options session_options;
  struct esb_session_task task;
  struct esb_session_info info; /* DELETE: the session as it was */
  struct esb_session_cell_body cell; /* CELL: its body */
  enum esb_k8s_files_op files_op;    /* K8S_FILES: what its run does (dispatch/session_k8s_files.h) */
  char files_path[ESB_FILE_PATH_MAX + 1]; /* K8S_FILES: its path, "" for the working dir */
  bool running;
  struct esb_waiter waiter; /* while it waits for a slot */
  /* POST /v1/run?stream=1: event lines, then the result line, as they come */
  bool streaming;
  char *lines;              /* NDJSON not yet taken by MHD */
  size_t lines_len, lines_cap, lines_off;
  bool lines_done;          /* the result line is in: the end follows it */
  bool reader_waits;        /* the content reader suspended the connection */
  bool stream_queued;       /* the streamed answer is MHD's: results go into it */
  bool gone;                /* the client left while its run went on: the run
                               frees the conn when it ends */
  struct esb_output_events events;
};

static struct conn *conn_of(struct esb_waiter *w) {
  return (struct conn *)((char *)w - offsetof(struct conn, waiter));
}

/* ---- responses ---- */

static void set_response(struct conn *st, unsigned code, const char *type, const char *body, size_t len) {
  free(st->response);
  st->response = malloc(len ? len : 1);
  if (st->response)
    memcpy(st->response, body, len);
  st->response_len = st->response ? len : 0;
  st->code = st->response ? code : MHD_HTTP_INTERNAL_SERVER_ERROR;
  st->content_type = type;
}

static void respond_result(struct conn *st, unsigned code, const struct esb_result *r) {
  lua_State *L = st->s->L;
  struct esb_error err;
  if (esb_json_push_result(L, r) < 0 || esb_json_encode(L, &err) < 0) {
    const char *fallback = "{\"status\":\"error\",\"error\":{\"code\":\"system_error\",\"message\":\"cannot encode the result\"}}";
    set_response(st, 500, "application/json", fallback, strlen(fallback));
    return;
  }
  size_t len;
  const char *json = lua_tolstring(L, -1, &len);
  set_response(st, code, "application/json", json, len);
  lua_pop(L, 1);
}

static void respond_error(struct conn *st, unsigned code, enum esb_error_code err, const char *msg) {
  struct esb_result r = ESB_RESULT_INIT;
  esb_result_fail(&r, err, "%s", msg);
  respond_result(st, code, &r);
  esb_result_release(&r);
}

static void add_header(struct conn *st, const char *name, const char *value) {
  st->header = name;
  snprintf(st->header_value, sizeof st->header_value, "%s", value);
}

/* How long a refused client should wait before it asks again. A run slot
 * frees when a run ends, which the daemon cannot foresee; a second is what
 * a short run takes, and a stopping daemon's successor (systemd's restart,
 * another replica behind the service) takes about as long to answer. */
#define RETRY_AFTER_S "1"

/* 429 (busy) and 503 (stopping): the same request may succeed later, and
 * Retry-After says when to ask (RFC 9110 10.2.3). */
static void respond_retry_later(struct conn *st, unsigned code, struct esb_result *r) {
  r->retryable = true;
  respond_result(st, code, r);
  add_header(st, "Retry-After", RETRY_AFTER_S);
}

static void respond_busy(struct conn *st, unsigned code, const char *msg) {
  struct esb_result r = ESB_RESULT_INIT;
  esb_result_fail(&r, ESB_E_BACKEND_UNAVAILABLE, "%s", msg);
  respond_retry_later(st, code, &r);
  esb_result_release(&r);
}

/* doc/openapi.json, compiled in (CMakeLists.txt). */
extern const char esb_openapi_json[];

/* The table on top of the cjson state as the JSON answer (popped). */
static void respond_table(struct conn *st, unsigned code) {
  lua_State *L = st->s->L;
  struct esb_error err;
  if (esb_json_encode(L, &err) < 0) {
    respond_error(st, 500, err.code, err.message);
    return;
  }
  size_t len;
  const char *json = lua_tolstring(L, -1, &len);
  set_response(st, code, "application/json", json, len);
  lua_pop(L, 1);
}

static void respond_languages(struct conn *st) {
  struct esb_error err;
  struct esb_language *list;
  size_t n;
  if (esb_policy_languages(st->s->policy, &list, &n, &err) < 0) {
    respond_error(st, 500, err.code, err.message);
    return;
  }
  if (esb_json_push_languages(st->s->L, list, n) == 0)
    respond_table(st, 200);
  else
    respond_error(st, 500, ESB_E_SYSTEM, "out of memory");
  esb_languages_free(list, n);
}

static void set_field(lua_State *L, const char *key, const char *value) {
  if (!value)
    return;
  lua_pushstring(L, value);
  lua_setfield(L, -2, key);
}

/* What GET /readyz answers: the server's readiness, and with ?prove=1 the
 * quick checks' JSON (dispatch/prove.h) and the names of those that failed
 * ("" where none did). */
struct readiness {
  const struct server *s;
  const char *proof;
  char failed[512];
};

static int push_readiness(lua_State *L) {
  const struct readiness *r = lua_touserdata(L, 1);
  const struct server *s = r->s;
  bool ready = s->ready && !r->failed[0];
  lua_createtable(L, 0, 5);                            /* answer */
  set_field(L, "status", ready ? "ready" : "not_ready");
  set_field(L, "backend", s->ready_backend);
  set_field(L, "policy", s->policy ? esb_policy_path(s->policy) : NULL);
  if (!s->ready)
    set_field(L, "reason", s->ready_reason);
  else if (r->failed[0])
    set_field(L, "reason", r->failed);
  if (r->proof) {
    esb_json_field(L, "decode");
    lua_pushstring(L, r->proof);
    lua_call(L, 1, 1);
    lua_setfield(L, -2, "prove");
  }
  return 1;
}

/* ?prove=1: the quick checks, now, on the daemon's thread (the runs in
 * flight wait the half second they take, as for the readiness check at
 * start); their verdicts go to /metrics. Returns the JSON (malloc'd), or
 * NULL out of memory. */
static char *prove_now(struct server *s, struct readiness *r) {
  struct esb_prove_outcome *out = calloc(ESB_PROVE__COUNT, sizeof *out);
  if (!out)
    return NULL;
  esb_prove(s->policy, &(struct esb_prove_options){ .quick = true }, out);
  for (int i = 0; i < ESB_PROVE__COUNT; i++) {
    if (out[i].verdict == ESB_PROVE_NOT_RUN)
      continue;
    s->m.defences[i] = (unsigned char)out[i].verdict;
    if (out[i].verdict == ESB_PROVE_FAILED || out[i].verdict == ESB_PROVE_UNPROVEN) {
      size_t len = strlen(r->failed);
      snprintf(r->failed + len, sizeof r->failed - len, "%s%s %s", len ? ", " : "a defence failed: ",
               esb_prove_checks[i].name, esb_prove_verdict_name(out[i].verdict));
    }
  }
  size_t n = esb_prove_json(out, NULL, 0) + 1;
  char *text = malloc(n);
  if (text)
    esb_prove_json(out, text, n);
  free(out);
  return text;
}

static void respond_readiness(struct conn *st) {
  lua_State *L = st->s->L;
  struct esb_error err;
  struct readiness r = { .s = st->s };
  const char *prove = MHD_lookup_connection_value(st->c, MHD_GET_ARGUMENT_KIND, "prove");
  char *proof = prove && !strcmp(prove, "1") && st->s->ready ? prove_now(st->s, &r) : NULL;
  r.proof = proof;
  lua_pushcfunction(L, push_readiness);
  lua_pushlightuserdata(L, &r);
  if (esb_lua_pcall(L, 1, 1, ESB_LUA_MESSAGE, ESB_E_SYSTEM, NULL, &err) < 0)
    respond_error(st, 500, err.code, err.message);
  else
    respond_table(st, st->s->ready && !r.failed[0] ? 200 : 503);
  free(proof);
}

/* Whether the policy's default backend can run something: local, a run of
 * `true` through the whole engine; k8s, a kubectl to run (the cluster's
 * health is the cluster's probes' business, and a pod per probe would cost
 * it). */
static void check_ready(struct server *s) {
  struct esb_error err;
  struct esb_request req = ESB_REQUEST_INIT;
  struct esb_plan plan = ESB_PLAN_INIT;
  s->ready = false;
  s->ready_backend = NULL;
  req.kind = ESB_REQUEST_PROGRAM;
  if (!(req.program = strdup("true"))) {
    snprintf(s->ready_reason, sizeof s->ready_reason, "out of memory");
    return;
  }
  if (esb_policy_plan(s->policy, &req, &plan, false, &err) < 0) {
    snprintf(s->ready_reason, sizeof s->ready_reason, "the policy cannot plan a run: %.3900s", err.message);
  } else if ((s->ready_backend = esb_backend_name(plan.backend)), plan.backend == ESB_BACKEND_K8S) {
    const char *k = esb_k8s_kubectl();
    char **candidates = esb_exec_candidates(k, getenv("PATH"));
    for (char **c = candidates; c && *c && !s->ready; c++)
      s->ready = access(*c, X_OK) == 0;
    esb_strv_free(candidates);
    if (!s->ready)
      snprintf(s->ready_reason, sizeof s->ready_reason, "the k8s backend has no %s to run", k);
  } else {
    struct esb_result r = ESB_RESULT_INIT;
    esb_execute(s->policy, &req, &r, -1, NULL, NULL);
    s->ready = r.status == ESB_STATUS_EXITED && r.exit_code == 0;
    if (!s->ready)
      snprintf(s->ready_reason, sizeof s->ready_reason, "a local run of `true` failed: %.3900s",
               r.error_message ? r.error_message : esb_status_name(r.status));
    esb_result_release(&r);
  }
  esb_plan_release(&plan);
  esb_request_release(&req);
}

static enum MHD_Result send_response(struct conn *st) {
  struct MHD_Response *resp =
    MHD_create_response_from_buffer(st->response_len, st->response ? st->response : (void *)"", MHD_RESPMEM_MUST_COPY);
  if (!resp)
    return MHD_NO;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, st->content_type);
  if (st->header)
    MHD_add_response_header(resp, st->header, st->header_value);
  enum MHD_Result ok = MHD_queue_response(st->c, st->code, resp);
  MHD_destroy_response(resp);
  return ok;
}

/* ---- runs ---- */

static void start_queued(struct server *s);

/* ---- streamed answers (?stream=1) ---- */

/* Appends the JSON value on top of the stack (popped) and a newline to the
 * conn's lines, and wakes the content reader if it waits for them. */
static void append_line(struct conn *st) {
  lua_State *L = st->s->L;
  struct esb_error err;
  if (st->gone) {
    lua_pop(L, 1);
    return;
  }
  if (esb_json_encode(L, &err) < 0)
    return;                                        /* -- */
  size_t len;
  const char *json = lua_tolstring(L, -1, &len);
  size_t need = st->lines_len + len + 1;
  if (need > st->lines_cap) {
    char *p = realloc(st->lines, need * 2);
    if (!p) {
      lua_pop(L, 1);
      return; /* out of memory: this line is lost; the result line says what the run did */
    }
    st->lines = p;
    st->lines_cap = need * 2;
  }
  memcpy(st->lines + st->lines_len, json, len);
  st->lines[st->lines_len + len] = '\n';
  st->lines_len = need;
  lua_pop(L, 1);                                   /* -- */
  if (st->reader_waits) {
    st->reader_waits = false;
    MHD_resume_connection(st->c);
  }
}

static void emit_event(int stream, const char *data, size_t len, bool text, void *userdata) {
  struct conn *st = userdata;
  if (esb_json_push_event(st->s->L, &(struct esb_json_event){ .stream = stream, .data = data, .len = len,
                                                               .text = text }) == 0)
    append_line(st);
}

static void emit_ceiling(uint64_t sent, void *userdata) {
  struct conn *st = userdata;
  (void)sent;
  if (esb_json_push_event(st->s->L, &(struct esb_json_event){ .ceiling = st->events.max_bytes }) == 0)
    append_line(st);
}

/* An attempt of the network by name as the proxy decided it. */
static void on_egress(const struct esb_egress_attempt *attempt, void *userdata) {
  struct conn *st = userdata;
  if (esb_json_push_event(st->s->L, &(struct esb_json_event){ .egress = attempt }) == 0)
    append_line(st);
}

static void on_output(int stream, const char *data, size_t len, void *userdata) {
  struct conn *st = userdata;
  st->events.max_bytes = st->job.plan.max_stream_bytes; /* planned by the time output comes */
  esb_output_events_feed(&st->events, stream, data, len);
}

/* {"event": "result", "result": {...}}, the stream's last line. */
static void stream_result(struct conn *st, const struct esb_result *r) {
  lua_State *L = st->s->L;
  esb_output_events_flush(&st->events);
  if (esb_json_push_result(L, r) == 0) {           /* result */
    lua_createtable(L, 0, 2);                      /* result, line */
    lua_pushliteral(L, "result");
    lua_setfield(L, -2, "event");
    lua_insert(L, -2);                             /* line, result */
    lua_setfield(L, -2, "result");                 /* line */
    append_line(st);
  }
  st->lines_done = true;
  if (st->reader_waits && !st->gone) {
    st->reader_waits = false;
    MHD_resume_connection(st->c);
  }
}

/* MHD's content reader of a streamed answer: the lines as they come. */
static ssize_t read_lines(void *cls, uint64_t pos, char *buf, size_t max) {
  struct conn *st = cls;
  (void)pos;
  size_t left = st->lines_len - st->lines_off;
  if (left == 0) {
    if (st->lines_done)
      return MHD_CONTENT_READER_END_OF_STREAM;
    st->reader_waits = true; /* woken by append_line */
    MHD_suspend_connection(st->c);
    return 0;
  }
  size_t n = left < max ? left : max;
  memcpy(buf, st->lines + st->lines_off, n);
  st->lines_off += n;
  if (st->lines_off == st->lines_len)
    st->lines_off = st->lines_len = 0;
  return (ssize_t)n;
}

static enum MHD_Result send_stream(struct conn *st) {
  struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, read_lines, st, NULL);
  if (!resp)
    return MHD_NO;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-ndjson");
  enum MHD_Result ok = MHD_queue_response(st->c, 200, resp);
  MHD_destroy_response(resp);
  return ok;
}

static void free_conn(struct conn *st) {
  free(st->body);
  free(st->response);
  free(st->lines);
  esb_request_release(&st->req);
  esb_session_cell_body_release(&st->cell);
  free(st);
}

/* An admitted request's end: its slot back, its connection resumed (a
 * streamed answer resumes itself), the next waiter started. */
static void admitted_ended(struct conn *st) {
  struct server *s = st->s;
  st->running = false;
  esb_admission_done(&s->admission);
  if (!st->streaming)
    MHD_resume_connection(st->c);
  else if (st->gone)
    free_conn(st);
  start_queued(s);
}

/* A run's end, a job's or a session's: counted and answered. */
static void run_ended(struct conn *st, const struct esb_result *r) {
  esb_metrics_record(&st->s->m, r);
  if (st->streaming)
    stream_result(st, r);
  else
    respond_result(st, 200, r);
  admitted_ended(st);
}

static void job_done(struct esb_job *job, void *userdata) {
  struct conn *st = userdata;
  if (job->result.fallback) /* the operator should know the cluster is away */
    fprintf(stderr, "echo-sandbox serve: a run for k8s ran locally: %s\n", job->result.fallback);
  struct esb_result r = ESB_RESULT_INIT;
  esb_result_move(&r, &job->result);
  esb_job_release(job);
  run_ended(st, &r);
  esb_result_release(&r);
}

static bool start_session_task(struct conn *st);
static bool start_session_cell(struct conn *st);

/* Starts the conn's request, admitted in flight; false when it ended at
 * once (response set, slot given back). */
static bool start_run(struct conn *st) {
  struct server *s = st->s;
  if (st->kind == CONN_SESSION_CELL)
    return start_session_cell(st);
  if (st->kind != CONN_RUN)
    return start_session_task(st);
  st->job = (struct esb_job)ESB_JOB_INIT;
  st->job.on_done = job_done;
  st->job.userdata = st;
  if (st->streaming) {
    esb_output_events_init(&st->events, emit_event, emit_ceiling, st);
    st->job.output = (struct esb_output_sink){ .fn = on_output, .userdata = st, .fds = { -1, -1 },
                                               .on_egress = on_egress };
  }
  if (esb_job_start(&st->job, &s->loop, s->policy, &st->req, NULL) == 0) {
    st->running = true;
    return true;
  }
  esb_admission_done(&s->admission);
  unsigned code = st->job.result.error == ESB_E_INVALID_REQUEST ? 400 : 200;
  if (code == 400)
    s->m.rejected_bad++;
  else
    esb_metrics_record(&s->m, &st->job.result);
  if (st->stream_queued) /* it waited for a slot: its answer has begun */
    stream_result(st, &st->job.result);
  else
    respond_result(st, code, &st->job.result);
  esb_result_release(&st->job.result);
  esb_job_release(&st->job);
  return false;
}

static void start_queued(struct server *s) {
  for (struct esb_waiter *w; (w = esb_admission_next(&s->admission));) {
    struct conn *st = conn_of(w);
    if (st->gone) { /* its client left while it waited */
      esb_admission_done(&s->admission);
      free_conn(st);
      continue;
    }
    if (!start_run(st) && !st->stream_queued)
      MHD_resume_connection(st->c); /* a streamed answer resumes itself */
  }
}

/* ---- sessions ---- */

static bool session_id_valid(const char *id) {
  size_t n = strspn(id, "0123456789abcdef");
  return n == ESB_SESSION_ID_LEN && id[n] == '\0';
}

static struct gone *gone_find(struct server *s, const char *id) {
  for (size_t i = 0; i < GONE_MAX; i++)
    if (s->gone[i].id[0] && strcmp(s->gone[i].id, id) == 0)
      return &s->gone[i];
  return NULL;
}

/* Remembers that session id ended, and why; counts each end once. */
static struct gone *gone_note(struct server *s, const char *id, enum esb_session_end end) {
  struct gone *g = gone_find(s, id);
  if (g)
    return g;
  g = &s->gone[s->gone_next];
  s->gone_next = (s->gone_next + 1) % GONE_MAX;
  *g = (struct gone){ .end = end };
  snprintf(g->id, sizeof g->id, "%.*s", ESB_SESSION_ID_LEN, id);
  s->m.sessions_ended[end]++;
  return g;
}

/* 404 for a session that is not there: id unknown (end ALIVE), or ended,
 * and why. The body is an error result's, with the session's id and
 * "ended" (doc/openapi.json's SessionGone). */
static void respond_gone_said(struct conn *st, const char *id, const char *ended, const char *message);

static void respond_session_gone(struct conn *st, const char *id, enum esb_session_end end) {
  char message[128];
  if (!id)
    snprintf(message, sizeof message, "no such session: a session id is %d hex digits, or a k8s session's "
             ESB_K8S_SESSION_PREFIX " and %d", ESB_SESSION_ID_LEN, ESB_K8S_SESSION_HEX);
  else if (end == ESB_SESSION_ALIVE)
    snprintf(message, sizeof message, "no session %s", id);
  else
    snprintf(message, sizeof message, "session %s has ended (%s)", id, esb_session_end_name(end));
  respond_gone_said(st, id, end == ESB_SESSION_ALIVE ? NULL : esb_session_end_name(end), message);
}

/* The 404 of a session that is not there, message saying why; ended: how
 * it ended, where the daemon knows. */
static void respond_gone_said(struct conn *st, const char *id, const char *ended, const char *message) {
  lua_State *L = st->s->L;
  lua_createtable(L, 0, 4);
  set_field(L, "status", "error");
  lua_createtable(L, 0, 3);
  set_field(L, "code", esb_error_name(ESB_E_INVALID_REQUEST));
  set_field(L, "message", message);
  lua_pushboolean(L, false);
  lua_setfield(L, -2, "retryable");
  lua_setfield(L, -2, "error");
  set_field(L, "session", id);
  set_field(L, "ended", ended);
  respond_table(st, 404);
}

static void respond_info(struct conn *st, unsigned code, const struct esb_session_info *info) {
  esb_session_push_info(st->s->L, info);
  respond_table(st, code);
}

/* What an ended session left (its directory, its cgroups) is removed by a
 * helper of its own, as `cleanup` would: nobody else may be watching. */
struct reap {
  struct esb_session_task task;
  struct server *s;
};

static void reap_done(struct esb_session_task *t, void *userdata) {
  struct reap *r = userdata;
  struct gone *g = gone_find(r->s, t->id);
  if (g)
    g->removing = false;
  esb_result_release(&t->result);
  free(r);
}

static void reap(struct server *s, const char *id, enum esb_session_end end) {
  struct gone *g = gone_note(s, id, end);
  struct reap *r = g->removing || s->stopping ? NULL : malloc(sizeof *r);
  if (!r)
    return;
  *r = (struct reap){ .task = ESB_SESSION_TASK_INIT, .s = s };
  r->task.op = ESB_SESSION_OP_REMOVE;
  snprintf(r->task.id, sizeof r->task.id, "%.*s", ESB_SESSION_ID_LEN, id);
  r->task.on_done = reap_done;
  r->task.userdata = r;
  struct esb_error err;
  if (esb_session_task_start(&s->tasks, &r->task, &err) < 0) {
    fprintf(stderr, "echo-sandbox serve: cannot remove what session %s left: %s\n", id, err.message);
    free(r);
    return;
  }
  g->removing = true;
}

/* How long what an ended session left stays for others to see (`session
 * show` says why it ended) before a look over the directory removes it;
 * asking this daemon for it removes it at once. */
#define REAP_GRACE_S 60

/* Whether the session's holder wrote its state (its end, for an ended one)
 * less than REAP_GRACE_S ago. */
static bool ended_lately(const char *id) {
  char path[4200];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s/state", esb_session_dir(), id);
  return stat(path, &st) == 0 && time(NULL) - st.st_mtime < REAP_GRACE_S;
}

static void sweep_one(const struct esb_session_info *info, void *arg) {
  struct server *s = arg;
  if (info->end == ESB_SESSION_ALIVE)
    s->sessions_alive++;
  else if (!ended_lately(info->id))
    reap(s, info->id, info->end);
}

/* Looks over the directory of sessions: counts the live ones, and removes
 * what the ended ones left once REAP_GRACE_S is past (a session ends by
 * itself, at its TTL or idle timeout, with nobody watching). */
static void sweep(struct server *s) {
  struct esb_error err;
  s->swept_ns = esb_now_ns();
  s->sessions_alive = 0;
  if (esb_session_list(sweep_one, s, &err) < 0)
    fprintf(stderr, "echo-sandbox serve: %s\n", err.message);
  const struct esb_warm_pool *pools;
  esb_pool_keeper_look(&s->keeper, !s->o->no_warm_pools && esb_policy_warm_pools(s->policy, &pools) > 0);
}

/* The session the path names: 0 with its info while it is alive; else
 * answered 404 (unknown, or ended and why) and -1. */
static int alive_session(struct conn *st, const char *url, struct esb_session_info *info) {
  struct server *s = st->s;
  char id[128];
  struct esb_error err;
  esb_route_id(url, id, sizeof id);
  if (!session_id_valid(id)) {
    respond_session_gone(st, NULL, ESB_SESSION_ALIVE);
    return -1;
  }
  memcpy(st->session, id, sizeof st->session);
  struct gone *g = gone_find(s, id);
  if (g || esb_session_info(id, info, &err) < 0) {
    respond_session_gone(st, id, g ? g->end : ESB_SESSION_ALIVE);
    return -1;
  }
  if (info->end != ESB_SESSION_ALIVE) {
    reap(s, id, info->end);
    respond_session_gone(st, id, info->end);
    return -1;
  }
  return 0;
}

/* ---- sessions on k8s ----
 * A k8s session is its pod (backend/k8s_session.h): nothing of it is kept
 * here, so any daemon on the cluster serves it. Each answer asks the
 * cluster with kubectl, in a helper (dispatch/session_task.h): the loop
 * never waits for the cluster. */

/* Whether the path names a k8s session (its pod's name): kept in st. */
static bool k8s_session_in(struct conn *st, const char *url) {
  char id[128];
  esb_route_id(url, id, sizeof id);
  if (!esb_k8s_session_id(id))
    return false;
  memcpy(st->session, id, sizeof st->session);
  return true;
}

/* Whether GET /v1/sessions lists the k8s sessions too: where the policy's
 * default backend is k8s, or ?backend=k8s asks. A daemon of the local
 * backend does not ask a cluster it may not have. */
static bool lists_k8s(struct conn *st) {
  const char *b = MHD_lookup_connection_value(st->c, MHD_GET_ARGUMENT_KIND, "backend");
  const char *ours = st->s->ready_backend;
  return b ? strcmp(b, "k8s") == 0 : ours && strcmp(ours, "k8s") == 0;
}

/* How a k8s session ended, as its run's error message says it
 * (dispatch/session_k8s.h); NULL where it says none (it is gone). */
static const char *k8s_ended_in(const char *message) {
  static const char *const ends[] = { "ttl", "idle", "deleted", "memory", "evicted", "died" };
  char said[32];
  for (size_t i = 0; message && i < sizeof ends / sizeof ends[0]; i++) {
    snprintf(said, sizeof said, "has ended (%s)", ends[i]);
    if (strstr(message, said))
      return ends[i];
  }
  return NULL;
}

static void session_task_done(struct esb_session_task *t, void *userdata);
static void respond_sessions(struct conn *st, const char *k8s_json);

/* A helper for op on session st->session (none for a list), the
 * connection suspended until it has answered. -1: answered already (500). */
static int start_asking(struct conn *st, enum esb_session_op op) {
  struct server *s = st->s;
  struct esb_error err;
  st->task = (struct esb_session_task)ESB_SESSION_TASK_INIT;
  st->task.op = op;
  memcpy(st->task.id, st->session, sizeof st->task.id);
  st->task.policy = s->policy;
  st->task.on_done = session_task_done;
  st->task.userdata = st;
  if (esb_session_task_start(&s->tasks, &st->task, &err) < 0) {
    respond_error(st, 500, err.code, err.message);
    return -1;
  }
  st->running = true;
  MHD_suspend_connection(st->c);
  return 0;
}

static int start_k8s_ask(struct conn *st, enum esb_session_op op) {
  st->kind = CONN_K8S_SESSION_ASK;
  return start_asking(st, op);
}

/* What the cluster said of a show, a DELETE or the list. A session shown
 * or deleted once it had ended is a 404 that says why (its pod deleted
 * all the same, by a DELETE), as a local one's. */
static void k8s_ask_done(struct conn *st) {
  struct esb_session_task *t = &st->task;
  struct esb_error err;
  char message[160];
  bool deleted = t->op == ESB_SESSION_OP_REMOVE && strcmp(t->k8s_ended, "deleted") == 0;
  if (t->op == ESB_SESSION_OP_K8S_LIST && t->error.code == ESB_OK) {
    respond_sessions(st, t->k8s_json);
  } else if (t->error.code == ESB_E_INVALID_REQUEST) { /* it has no pod */
    respond_gone_said(st, st->session, NULL, t->error.message);
  } else if (t->error.code != ESB_OK) {
    respond_error(st, 500, t->error.code, t->error.message);
  } else if (t->k8s_ended[0] && !deleted) {
    snprintf(message, sizeof message, "session %s has ended (%s)", st->session, t->k8s_ended);
    respond_gone_said(st, st->session, t->k8s_ended, message);
  } else if (t->k8s_json && esb_json_decode(st->s->L, t->k8s_json, strlen(t->k8s_json), &err) == 0) {
    respond_table(st, 200);
  } else {
    respond_error(st, 500, ESB_E_SYSTEM, "the session's helper gave no answer");
  }
  if (deleted)
    st->s->m.sessions_ended[ESB_SESSION_END_DELETED]++;
  free(t->k8s_json);
  t->k8s_json = NULL;
  esb_result_release(&t->result);
  st->running = false;
  MHD_resume_connection(st->c);
}

static void on_session_output(int stream, const char *data, size_t len, void *userdata) {
  struct conn *st = userdata;
  esb_output_events_feed(&st->events, stream, data, len);
}

static void session_run_done(struct conn *st) {
  struct server *s = st->s;
  struct esb_result r = ESB_RESULT_INIT;
  esb_result_move(&r, &st->task.result);
  struct esb_session_info info;
  struct esb_error err = ESB_ERROR_INIT;
  /* Refused by the session (what a run in one does not take yet), or it
   * ended, or was removed, between the look before and the run: answered
   * as a request is, 400 or 404, unless its answer has begun (streamed). */
  bool refused = r.status == ESB_STATUS_ERROR && r.error == ESB_E_INVALID_REQUEST && !st->streaming;
  bool k8s = esb_k8s_session_id(st->session);
  bool gone = refused && !k8s &&
              (esb_session_info(st->session, &info, &err) < 0 || info.end != ESB_SESSION_ALIVE);
  if (refused && k8s && r.reason && strcmp(r.reason, "SessionEnded") == 0) {
    respond_gone_said(st, st->session, k8s_ended_in(r.error_message), r.error_message);
    admitted_ended(st);
  } else if (gone) {
    respond_session_gone(st, st->session, err.code == ESB_OK ? info.end : ESB_SESSION_ALIVE);
    admitted_ended(st);
  } else if (refused) {
    s->m.rejected_bad++;
    respond_result(st, 400, &r);
    admitted_ended(st);
  } else {
    s->m.session_runs++;
    run_ended(st, &r);
  }
  esb_result_release(&r);
}

/* The session as made: its info, and "clamped", the notes of what the
 * policy lowered, where it lowered something. */
static void respond_made(struct conn *st);

static void respond_created(struct conn *st, const struct esb_session_info *info) {
  esb_session_push_info(st->s->L, info);
  respond_made(st);
}

/* A k8s session as made: the object its helper made of it (nothing of it
 * is on this machine to read). */
static void respond_k8s_created(struct conn *st) {
  struct esb_error err;
  const char *json = st->task.k8s_json;
  if (!json || esb_json_decode(st->s->L, json, strlen(json), &err) < 0) {
    respond_error(st, 500, ESB_E_SYSTEM, "the session's helper gave no object of the k8s session made");
    return;
  }
  respond_made(st);
}

/* The object on top of the stack as a create's answer (201), with
 * "clamped". */
static void respond_made(struct conn *st) {
  lua_State *L = st->s->L;
  const struct esb_strv *notes = &st->task.clamped;
  if (notes->n) {
    lua_createtable(L, (int)notes->n, 0);
    for (size_t i = 0; i < notes->n; i++) {
      lua_pushstring(L, notes->v[i]);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "clamped");
  }
  respond_table(st, 201);
}

static void session_created(struct conn *st) {
  struct server *s = st->s;
  struct esb_error err = st->task.error;
  struct esb_session_info info;
  if (err.code == ESB_OK && esb_k8s_session_id(st->task.id)) {
    s->m.sessions_created++;
    respond_k8s_created(st);
  } else if (err.code == ESB_OK && esb_session_info(st->task.id, &info, &err) == 0) {
    s->m.sessions_created++;
    respond_created(st, &info);
  } else if (err.code == ESB_E_TOO_MANY_SESSIONS) { /* one of the tenant's may end */
    s->m.rejected_busy++;
    struct esb_result r = ESB_RESULT_INIT;
    esb_result_fail_error(&r, &err);
    respond_retry_later(st, 429, &r);
    esb_result_release(&r);
  } else {
    respond_error(st, err.code == ESB_E_INVALID_REQUEST ? 400 : 500, err.code, err.message);
  }
  esb_result_release(&st->task.result);
  esb_strv_clear(&st->task.clamped);
  free(st->task.k8s_json);
  admitted_ended(st);
}

static void session_deleted(struct conn *st) {
  struct esb_session_task *t = &st->task;
  if (t->error.code != ESB_OK) { /* removed meanwhile: no session */
    respond_session_gone(st, st->session, ESB_SESSION_ALIVE);
  } else if (t->was != ESB_SESSION_ALIVE) {
    gone_note(st->s, st->session, t->was);
    respond_session_gone(st, st->session, t->was);
  } else {
    gone_note(st->s, st->session, ESB_SESSION_END_DELETED);
    st->info.end = ESB_SESSION_END_DELETED;
    respond_info(st, 200, &st->info);
  }
  esb_result_release(&t->result);
  st->running = false;
  MHD_resume_connection(st->c);
}

static void session_cell_done(struct conn *st);
static void k8s_files_done(struct conn *st);

static void session_task_done(struct esb_session_task *t, void *userdata) {
  struct conn *st = userdata;
  (void)t;
  if (st->kind == CONN_SESSION_CELL)
    session_cell_done(st);
  else if (st->kind == CONN_K8S_SESSION_ASK)
    k8s_ask_done(st);
  else if (st->kind == CONN_K8S_FILES)
    k8s_files_done(st);
  else if (st->kind == CONN_SESSION_RUN)
    session_run_done(st);
  else if (st->kind == CONN_SESSION_CREATE)
    session_created(st);
  else
    session_deleted(st);
}

/* A session's create or run, admitted in flight, planned and handed to
 * its helper (a local run: to a thread, which takes the plan); false when
 * it ended at once (response set, slot given back). */
static bool start_session_task(struct conn *st) {
  struct server *s = st->s;
  struct esb_error err = ESB_ERROR_INIT;
  struct esb_plan plan = ESB_PLAN_INIT;
  bool create = st->kind == CONN_SESSION_CREATE;
  int rc = create                           ? 0
           : esb_k8s_session_id(st->session) ? esb_k8s_session_plan_run(s->policy, &st->req, &plan, &err)
                                             : esb_session_plan_run(s->policy, &st->req, &plan, &err);
  st->task = (struct esb_session_task)ESB_SESSION_TASK_INIT;
  st->task.op = create ? ESB_SESSION_OP_CREATE : ESB_SESSION_OP_RUN;
  memcpy(st->task.id, st->session, sizeof st->task.id);
  st->task.plan = &plan;
  st->task.policy = s->policy;
  st->task.req = &st->req;
  st->task.options = st->session_options;
  st->task.on_done = session_task_done;
  st->task.userdata = st;
  if (st->streaming) {
    esb_output_events_init(&st->events, emit_event, emit_ceiling, st);
    st->events.max_bytes = plan.max_stream_bytes;
    st->task.output = (struct esb_output_sink){ .fn = on_session_output, .userdata = st, .fds = { -1, -1 } };
  }
  if (rc == 0)
    rc = esb_session_task_start(&s->tasks, &st->task, &err);
  esb_plan_release(&plan);
  if (rc == 0) {
    st->running = true;
    return true;
  }
  esb_admission_done(&s->admission);
  struct esb_result r = ESB_RESULT_INIT;
  esb_result_fail_error(&r, &err);
  snprintf(r.session, sizeof r.session, "%s", st->session);
  unsigned code = err.code == ESB_E_INVALID_REQUEST ? 400 : create ? 500 : 200;
  if (code == 400)
    s->m.rejected_bad++;
  if (st->stream_queued)
    stream_result(st, &r);
  else if (st->kind == CONN_K8S_FILES) /* answered as a files op's refusal, not as a run's */
    respond_error(st, code == 200 ? 500 : code, err.code, err.message);
  else
    respond_result(st, code, &r);
  esb_result_release(&r);
  return false;
}

/* DELETE /v1/sessions/ID: ends it and removes what it held, off the loop. */
static enum MHD_Result handle_delete(struct conn *st, const char *url) {
  if (alive_session(st, url, &st->info) < 0)
    return send_response(st);
  st->kind = CONN_SESSION_DELETE;
  return start_asking(st, ESB_SESSION_OP_REMOVE) < 0 ? send_response(st) : MHD_YES;
}

static void list_alive(const struct esb_session_info *info, void *arg) {
  lua_State *L = arg;
  if (info->end != ESB_SESSION_ALIVE)
    return;
  esb_session_push_info(L, info);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

/* The live k8s sessions' objects (JSON text of an array) appended to the
 * array on top of the stack. */
static int list_k8s(lua_State *L, const char *k8s_json, struct esb_error *err) {
  if (!k8s_json)
    return 0;
  if (esb_json_decode(L, k8s_json, strlen(k8s_json), err) < 0)
    return -1;
  for (lua_Integer i = 1; lua_type(L, -1) == LUA_TTABLE && i <= (lua_Integer)lua_rawlen(L, -1); i++) {
    lua_rawgeti(L, -1, i);
    lua_rawseti(L, -3, (lua_Integer)lua_rawlen(L, -3) + 1);
  }
  lua_pop(L, 1);
  return 0;
}

/* GET /v1/sessions: {"sessions": [...]}, the live ones, whoever made them;
 * k8s_json: the live k8s sessions too (JSON text of an array), or NULL. */
static void respond_sessions(struct conn *st, const char *k8s_json) {
  struct server *s = st->s;
  lua_State *L = s->L;
  struct esb_error err;
  sweep(s);
  lua_createtable(L, 0, 1);
  lua_createtable(L, (int)s->sessions_alive, 0);
  if (esb_session_list(list_alive, L, &err) < 0 || list_k8s(L, k8s_json, &err) < 0) {
    lua_pop(L, 2);
    respond_error(st, 500, err.code, err.message);
    return;
  }
  if (lua_rawlen(L, -1) == 0) { /* cjson would write {} */
    lua_pop(L, 2);
    set_response(st, 200, "application/json", "{\"sessions\":[]}", 15);
    return;
  }
  lua_setfield(L, -2, "sessions");
  respond_table(st, 200);
}

/* ---- a session's cells and files ---- */

/* A cell's kernel planned, and the cell handed to its helper; false when
 * it ended at once (response set, slot given back). */
static bool start_session_cell(struct conn *st) {
  struct server *s = st->s;
  struct esb_error err = ESB_ERROR_INIT;
  struct esb_plan plan = ESB_PLAN_INIT;
  int rc = esb_session_plan_cell(s->policy, st->session, st->cell.language, st->cell.timeout_ms, &plan, &err);
  st->task = (struct esb_session_task)ESB_SESSION_TASK_INIT;
  st->task.op = ESB_SESSION_OP_CELL;
  memcpy(st->task.id, st->session, sizeof st->task.id);
  st->task.plan = &plan;
  st->task.language = st->cell.language;
  st->task.code = st->cell.code;
  st->task.code_len = st->cell.len;
  st->task.on_done = session_task_done;
  st->task.userdata = st;
  st->running = rc == 0 && esb_session_task_start(&s->tasks, &st->task, &err) == 0;
  esb_plan_release(&plan);
  if (st->running)
    return true;
  esb_admission_done(&s->admission);
  if (err.code == ESB_E_INVALID_REQUEST)
    s->m.rejected_bad++;
  respond_error(st, err.code == ESB_E_INVALID_REQUEST ? 400 : 500, err.code, err.message);
  return false;
}

/* A cell that did not go in, as an error result: busy (409: another cell
 * of the kernel goes on; it may go in later, so retryable), or refused
 * (400). The words are the cell result's message. */
/* The engine's word in the cell's result ("message"), into buf. */
static void cell_message(struct conn *st, char *buf, size_t n) {
  lua_State *L = st->s->L;
  struct esb_error err;
  int top = lua_gettop(L);
  bool decoded = esb_json_decode(L, st->task.cell_json, strlen(st->task.cell_json), &err) == 0;
  snprintf(buf, n, "%s", decoded && lua_getfield(L, -1, "message") == LUA_TSTRING ? lua_tostring(L, -1)
                                                                                  : "the cell did not go in");
  lua_settop(L, top);
}

static void respond_cell_refused(struct conn *st, unsigned http, bool busy) {
  struct esb_result r = ESB_RESULT_INIT;
  char message[1024];
  cell_message(st, message, sizeof message);
  esb_result_fail(&r, busy ? ESB_E_BACKEND_UNAVAILABLE : st->task.cell_failure, "%s", message);
  r.retryable = busy;
  snprintf(r.session, sizeof r.session, "%s", st->session);
  respond_result(st, http, &r);
  esb_result_release(&r);
}

/* The cell's end: its result (200); or busy 409, refused 400, the session
 * gone 404 (unknown, or ended, and why). */
static void session_cell_done(struct conn *st) {
  struct esb_session_task *t = &st->task;
  struct esb_session_info info;
  struct esb_error err = ESB_ERROR_INIT;
  bool failed = t->cell_status == ESB_CELL_SESSION_ENDED || t->cell_status == ESB_CELL_FAILED;
  bool k8s = esb_k8s_session_id(st->session); /* its pod's word: nothing of it is here */
  bool gone = failed && !k8s && (esb_session_info(st->session, &info, &err) < 0 || info.end != ESB_SESSION_ALIVE);
  bool refused = t->cell_json && t->cell_status == ESB_CELL_FAILED && t->cell_failure == ESB_E_INVALID_REQUEST;
  char message[1024];
  if (k8s && t->cell_json && t->cell_status == ESB_CELL_SESSION_ENDED) {
    cell_message(st, message, sizeof message);
    respond_gone_said(st, st->session, k8s_ended_in(message), message);
  } else if (gone) {
    respond_session_gone(st, st->session, err.code == ESB_OK ? info.end : ESB_SESSION_ALIVE);
  } else if (!t->cell_json) {
    respond_error(st, 500, t->error.code, t->error.message);
  } else if (t->cell_status == ESB_CELL_BUSY || refused) {
    st->s->m.rejected_bad += refused;
    respond_cell_refused(st, refused ? 400 : 409, !refused);
  } else {
    st->s->m.session_cells++;
    set_response(st, 200, "application/json", t->cell_json, strlen(t->cell_json));
  }
  free(t->cell_json);
  t->cell_json = NULL;
  admitted_ended(st);
}

/* A refusal of esb_session_put/get/files: the session gone meanwhile
 * (404), the path refused (400: outside the working dir, a link a run
 * planted, no such file), or the engine's failure (500). */
static void respond_files_failed(struct conn *st, const struct esb_error *err) {
  struct esb_session_info info;
  struct esb_error e = ESB_ERROR_INIT;
  if (esb_session_info(st->session, &info, &e) < 0 || info.end != ESB_SESSION_ALIVE)
    respond_session_gone(st, st->session, e.code == ESB_OK ? info.end : ESB_SESSION_ALIVE);
  else
    respond_error(st, err->code == ESB_E_INVALID_REQUEST ? 400 : 500, err->code, err->message);
}

/* A put's ?mode=OCTAL (permission bits), 0644 where absent; -1 when bad. */
static int put_mode(struct conn *st) {
  const char *v = MHD_lookup_connection_value(st->c, MHD_GET_ARGUMENT_KIND, "mode");
  char *end;
  unsigned long mode = v ? strtoul(v, &end, 8) : 0644;
  return v && (!*v || *end || mode > 07777) ? -1 : (int)mode;
}

static void respond_too_large(struct conn *st, const char *what, uint64_t limit) {
  char message[160];
  snprintf(message, sizeof message, "%s is larger than %llu bytes", what, (unsigned long long)limit);
  st->s->m.rejected_too_large++;
  respond_error(st, 413, ESB_E_INVALID_REQUEST, message);
}

/* A put's answer: {"path": P, "size": N}. */
static void respond_put(struct conn *st, const char *path, size_t size) {
  lua_State *L = st->s->L;
  lua_createtable(L, 0, 2);
  set_field(L, "path", path);
  lua_pushinteger(L, (lua_Integer)size);
  lua_setfield(L, -2, "size");
  respond_table(st, 200);
}

/* PUT /v1/sessions/ID/files/PATH: the body is the file's bytes, written as
 * `session cp` writes them (esb_session_put: nothing outside the working
 * dir, through no link a run planted). Small and bounded by the working
 * dir's size: done on the loop. */
static void handle_put(struct conn *st, const char *url) {
  struct esb_error err = ESB_ERROR_INIT;
  uint64_t limit = 0;
  int mode = put_mode(st);
  if (st->too_large) {
    respond_too_large(st, "the request body", st->s->o->max_body);
    return;
  }
  if (alive_session(st, url, &st->info) < 0)
    return;
  struct esb_file f = { .path = (char *)esb_route_path(url), .data = st->body ? st->body : (char *)"",
                        .len = st->len, .mode = (unsigned)mode };
  if (mode < 0)
    respond_error(st, 400, ESB_E_INVALID_REQUEST, "invalid request: 'mode' is permission bits in octal (0644)");
  else if (esb_session_workdir_size(st->session, &limit, &err) < 0)
    respond_files_failed(st, &err);
  else if (limit && f.len > limit)
    respond_too_large(st, "the file (the session's working dir holds no more)", limit);
  else if (esb_session_put(st->session, &f, &err) < 0)
    respond_files_failed(st, &err);
  else
    respond_put(st, f.path, f.len);
}

/* The words of an entry's type (struct esb_session_entry), as `session
 * files --json` says them. */
static const struct { char type; const char *name; } entry_types[] = {
  { 'f', "file" }, { 'd', "dir" }, { 'l', "link" }, { 'o', "other" },
};

static void push_entry(const struct esb_session_entry *e, void *arg) {
  lua_State *L = arg;
  const char *type = "other";
  for (size_t i = 0; i < sizeof entry_types / sizeof entry_types[0]; i++)
    if (entry_types[i].type == e->type)
      type = entry_types[i].name;
  lua_createtable(L, 0, 4);
  set_field(L, "name", e->name);
  set_field(L, "type", type);
  lua_pushinteger(L, (lua_Integer)e->mode);
  lua_setfield(L, -2, "mode");
  lua_pushinteger(L, (lua_Integer)e->size);
  lua_setfield(L, -2, "size");
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

/* A directory's listing, {"path": P, "entries": [...]}, begun: push_entry
 * adds to it; respond_entries answers with it. */
static void begin_entries(lua_State *L, const char *path) {
  lua_createtable(L, 0, 2);
  set_field(L, "path", path ? path : "");
  lua_createtable(L, 8, 0);
}

static void respond_entries(struct conn *st) {
  lua_State *L = st->s->L;
  if (lua_rawlen(L, -1) > 0) {
    lua_setfield(L, -2, "entries");
    respond_table(st, 200);
    return;
  }
  lua_pop(L, 1); /* cjson writes an empty table as {} */
  struct esb_error e;
  if (esb_json_encode(L, &e) < 0) {
    respond_error(st, 500, e.code, e.message);
    return;
  }
  const char *json = lua_tostring(L, -1); /* {"path":...} */
  size_t n = strlen(json) + 16;
  char *body = malloc(n);
  if (body) {
    snprintf(body, n, "{\"entries\":[],%s", json + 1);
    set_response(st, 200, "application/json", body, strlen(body));
  } else {
    respond_error(st, 500, ESB_E_SYSTEM, "out of memory");
  }
  free(body);
  lua_pop(L, 1);
}

/* A local session's directory's listing: 0, or -1 with err (not a
 * directory among them) and nothing answered. */
static int respond_listing(struct conn *st, const char *path, struct esb_error *err) {
  begin_entries(st->s->L, path);
  if (esb_session_files(st->session, path, push_entry, st->s->L, err) < 0) {
    lua_pop(st->s->L, 2);
    return -1;
  }
  respond_entries(st);
  return 0;
}

/* GET /v1/sessions/ID/files[/PATH]: a directory's listing (JSON), or a
 * file's bytes (application/octet-stream), read as `session cp` reads
 * them (esb_session_get). */
static void respond_file(struct conn *st, const char *path) {
  struct esb_error err = ESB_ERROR_INIT;
  if (respond_listing(st, path, &err) == 0)
    return;
  char *data = NULL;
  size_t len = 0;
  if (!path || esb_session_get(st->session, path, &data, &len, &err) < 0)
    respond_files_failed(st, &err);
  else
    set_response(st, 200, "application/octet-stream", data, len);
  free(data);
}

/* ---- a k8s session's files: each a run in its pod, off the loop ---- */

static enum MHD_Result handle_run(struct conn *st);

/* The request of a k8s session's files op, then on as a run in it. */
static enum MHD_Result handle_k8s_files(struct conn *st, enum esb_endpoint endpoint, const char *url) {
  const char *path = esb_route_path(url);
  int mode = endpoint == ESB_ENDPOINT_SESSION_PUT ? put_mode(st) : 0644;
  struct esb_error err = ESB_ERROR_INIT;
  st->files_op = endpoint == ESB_ENDPOINT_SESSION_PUT ? ESB_K8S_FILES_PUT : ESB_K8S_FILES_SHOW;
  snprintf(st->files_path, sizeof st->files_path, "%s", path ? path : "");
  struct esb_file f = { .path = (char *)(path ? path : ""), .data = st->body ? st->body : (char *)"",
                        .len = st->len, .mode = (unsigned)mode };
  if (mode < 0)
    esb_error_set(&err, ESB_E_INVALID_REQUEST, "invalid request: 'mode' is permission bits in octal (0644)");
  else if (!st->too_large)
    esb_k8s_files_request(st->files_op, path, &f, &st->req, &err);
  if (err.code != ESB_OK) {
    st->s->m.rejected_bad++;
    respond_error(st, 400, err.code, err.message);
    return send_response(st);
  }
  st->kind = CONN_K8S_FILES;
  return handle_run(st);
}

/* A session's file put or got, or a directory of its working dir listed:
 * a local session's on the loop, a k8s session's through a run in its pod. */
static enum MHD_Result answer_files(struct conn *st, enum esb_endpoint endpoint, const char *url) {
  if (k8s_session_in(st, url))
    return handle_k8s_files(st, endpoint, url);
  if (endpoint == ESB_ENDPOINT_SESSION_PUT)
    handle_put(st, url);
  else if (alive_session(st, url, &st->info) == 0)
    respond_file(st, esb_route_path(url));
  return send_response(st);
}

/* What the run of a k8s session's files op did, answered: a put's
 * object, a listing, or a file's bytes. */
static void answer_k8s_files(struct conn *st, struct esb_result *r) {
  lua_State *L = st->s->L;
  const char *path = st->files_path[0] ? st->files_path : NULL;
  struct esb_error err = ESB_ERROR_INIT;
  char *data = NULL;
  size_t len = 0;
  if (st->files_op == ESB_K8S_FILES_PUT) {
    if (esb_k8s_files_done(st->files_op, st->session, path, r, NULL, NULL, NULL, NULL, &err) < 0)
      respond_error(st, err.code == ESB_E_INVALID_REQUEST ? 400 : 500, err.code, err.message);
    else
      respond_put(st, st->files_path, st->len);
    return;
  }
  begin_entries(L, path);
  if (esb_k8s_files_done(st->files_op, st->session, path, r, &data, &len, push_entry, L, &err) < 0 || data) {
    lua_pop(L, 2);
    if (data)
      set_response(st, 200, "application/octet-stream", data, len);
    else
      respond_error(st, err.code == ESB_E_INVALID_REQUEST ? 400 : 500, err.code, err.message);
  } else {
    respond_entries(st);
  }
  free(data);
}

/* The run of a k8s session's files op has ended; a session that had
 * ended is gone (404), as for a run in it. */
static void k8s_files_done(struct conn *st) {
  struct esb_result r = ESB_RESULT_INIT;
  esb_result_move(&r, &st->task.result);
  if (r.status == ESB_STATUS_ERROR && r.reason && strcmp(r.reason, "SessionEnded") == 0)
    respond_gone_said(st, st->session, k8s_ended_in(r.error_message), r.error_message);
  else
    answer_k8s_files(st, &r);
  esb_result_release(&r);
  admitted_ended(st);
}

/* ---- requests ---- */

/* The body as the conn's kind reads it: a request, or a session's create. */
static int read_request(struct conn *st, struct esb_error *err) {
  lua_State *L = st->s->L;
  if (esb_json_decode(L, st->body ? st->body : "", st->len, err) < 0)
    return -1;
  int rc = st->kind == CONN_SESSION_CREATE ? esb_session_create_request(L, -1, &st->req, &st->session_options, err)
           : st->kind == CONN_SESSION_CELL   ? esb_session_cell_read(L, -1, &st->cell, err)
                                             : esb_lua_to_request(L, -1, &st->req, err);
  lua_pop(L, 1);
  return rc;
}

/* POST /v1/run, POST /v1/sessions and POST /v1/sessions/ID/run, body
 * complete: answers now, or suspends until it ends. */
static enum MHD_Result handle_run(struct conn *st) {
  struct server *s = st->s;
  struct esb_error err;
  if (st->too_large) {
    s->m.rejected_too_large++;
    esb_error_set(&err, ESB_E_INVALID_REQUEST, "the request body is larger than %zu bytes", s->o->max_body);
    respond_error(st, 413, err.code, err.message);
    return send_response(st);
  }
  if (s->stopping) {
    respond_busy(st, 503, "the daemon is shutting down");
    return send_response(st);
  }
  if (st->kind != CONN_K8S_FILES && read_request(st, &err) < 0) {
    s->m.rejected_bad++;
    respond_error(st, 400, err.code, err.message);
    return send_response(st);
  }
  const char *stream = MHD_lookup_connection_value(st->c, MHD_GET_ARGUMENT_KIND, "stream");
  st->streaming = stream && (st->kind == CONN_RUN || st->kind == CONN_SESSION_RUN) &&
                 (strcmp(stream, "1") == 0 || strcmp(stream, "true") == 0);
  switch (esb_admission_offer(&s->admission, &st->waiter)) {
  case ESB_ADMIT_RUN:
    if (!start_run(st))
      return send_response(st);
    break;
  case ESB_ADMIT_WAIT:
    break;
  case ESB_ADMIT_REFUSE:
    s->m.rejected_busy++;
    esb_error_set(&err, ESB_E_BACKEND_UNAVAILABLE, "busy: %zu runs in flight and %zu waiting",
                  s->admission.in_flight, s->admission.queued);
    respond_busy(st, 429, err.message);
    return send_response(st);
  }
  if (st->streaming) { /* the answer begins now; its reader waits for the lines */
    st->stream_queued = true;
    return send_stream(st);
  }
  MHD_suspend_connection(st->c);
  return MHD_YES;
}

static bool authorized(struct server *s, struct MHD_Connection *c) {
  if (!s->o->token)
    return true;
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  return h && !strncmp(h, "Bearer ", 7) && esb_token_matches(h + 7, s->o->token);
}

/* 401 as RFC 6750 3 has it: the challenge says the scheme, and, when a
 * token came and is not the one, error="invalid_token". */
static void respond_unauthorized(struct conn *st) {
  bool sent = MHD_lookup_connection_value(st->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION) != NULL;
  respond_error(st, 401, ESB_E_UNAUTHORIZED, "a valid \"Authorization: Bearer TOKEN\" is required");
  add_header(st, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
             sent ? "Bearer realm=\"echo-sandbox\", error=\"invalid_token\"" : "Bearer realm=\"echo-sandbox\"");
}

/* The first call for a connection: the headers are in, no byte of the body
 * is read yet. Refuses here, so that an unauthenticated or oversized body
 * costs us nothing (MHD then closes the connection instead of reading it). */
static enum MHD_Result begin_request(struct server *s, struct MHD_Connection *c, const char *url, void **con_cls) {
  struct conn *st = calloc(1, sizeof *st);
  if (!st)
    return MHD_NO;
  st->s = s;
  st->c = c;
  st->req = (struct esb_request)ESB_REQUEST_INIT;
  *con_cls = st;
  if (!(s->o->public_probes && esb_route_is_probe(url)) && !authorized(s, c)) {
    s->m.rejected_unauthorized++;
    respond_unauthorized(st);
    return send_response(st);
  }
  const char *length = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (length && strtoull(length, NULL, 10) > s->o->max_body) {
    struct esb_error err;
    esb_error_set(&err, ESB_E_INVALID_REQUEST, "the request body is larger than %zu bytes", s->o->max_body);
    respond_error(st, 413, err.code, err.message);
    return send_response(st);
  }
  return MHD_YES;
}

/* A piece of the body: kept up to the limit, read on and dropped past it. */
static enum MHD_Result read_body(struct conn *st, const char *upload_data, size_t *upload_data_size) {
  size_t n = *upload_data_size;
  *upload_data_size = 0;
  if (st->too_large || st->len + n > st->s->o->max_body) {
    st->too_large = true; /* read on, keep nothing */
    return MHD_YES;
  }
  if (st->len + n > st->cap) {
    size_t want = (st->len + n) * 2;
    char *p = realloc(st->body, want);
    if (!p)
      return MHD_NO;
    st->body = p;
    st->cap = want;
  }
  memcpy(st->body + st->len, upload_data, n);
  st->len += n;
  return MHD_YES;
}

/* The whole request is in: the endpoint's answer. */
static enum MHD_Result answer(struct conn *st, const char *method, const char *url) {
  struct server *s = st->s;
  const char *allowed = NULL;
  char buf[16384];
  enum esb_endpoint endpoint = esb_route(method, url, &allowed);
  switch (endpoint) {
  case ESB_ENDPOINT_RUN:
    return handle_run(st);
  case ESB_ENDPOINT_SESSION_CREATE:
    st->kind = CONN_SESSION_CREATE;
    return handle_run(st);
  case ESB_ENDPOINT_SESSION_RUN:
    if (!k8s_session_in(st, url) && alive_session(st, url, &st->info) < 0)
      break;
    st->kind = CONN_SESSION_RUN;
    return handle_run(st);
  case ESB_ENDPOINT_SESSION_DELETE:
    if (k8s_session_in(st, url))
      return start_k8s_ask(st, ESB_SESSION_OP_REMOVE) < 0 ? send_response(st) : MHD_YES;
    return handle_delete(st, url);
  case ESB_ENDPOINT_SESSION_CELL:
    if (!k8s_session_in(st, url) && alive_session(st, url, &st->info) < 0)
      break;
    st->kind = CONN_SESSION_CELL;
    return handle_run(st);
  case ESB_ENDPOINT_SESSION_PUT:
  case ESB_ENDPOINT_SESSION_GET:
  case ESB_ENDPOINT_SESSION_FILES:
    return answer_files(st, endpoint, url);
  case ESB_ENDPOINT_SESSION_SHOW:
    if (k8s_session_in(st, url))
      return start_k8s_ask(st, ESB_SESSION_OP_K8S_SHOW) < 0 ? send_response(st) : MHD_YES;
    if (alive_session(st, url, &st->info) == 0)
      respond_info(st, 200, &st->info);
    break;
  case ESB_ENDPOINT_SESSION_LIST:
    if (!lists_k8s(st))
      respond_sessions(st, NULL);
    else if (start_k8s_ask(st, ESB_SESSION_OP_K8S_LIST) == 0)
      return MHD_YES;
    break;
  case ESB_ENDPOINT_LANGUAGES:
    respond_languages(st);
    break;
  case ESB_ENDPOINT_HEALTHZ:
    set_response(st, 200, "application/json", "{\"status\":\"ok\"}", 15);
    break;
  case ESB_ENDPOINT_OPENAPI:
    set_response(st, 200, "application/json", esb_openapi_json, strlen(esb_openapi_json));
    break;
  case ESB_ENDPOINT_READYZ:
    respond_readiness(st);
    break;
  case ESB_ENDPOINT_METRICS: {
    sweep(s);
    size_t len = esb_metrics_render(&s->m, s->admission.in_flight, s->admission.queued, s->sessions_alive,
                                    esb_pool_keeper_status(&s->keeper), buf, sizeof buf);
    set_response(st, 200, "text/plain; version=0.0.4", buf, len < sizeof buf ? len : sizeof buf - 1);
    break;
  }
  case ESB_ENDPOINT_WRONG_METHOD: {
    char methods[64];
    snprintf(buf, sizeof buf, "use %s", allowed);
    respond_error(st, 405, ESB_E_INVALID_REQUEST, buf);
    esb_route_methods(url, methods, sizeof methods);
    add_header(st, MHD_HTTP_HEADER_ALLOW, methods); /* RFC 9110 15.5.6: a 405 must */
    break;
  }
  case ESB_ENDPOINT_NONE: {
    char list[1024];
    esb_routes_list(list, sizeof list);
    snprintf(buf, sizeof buf, "no such endpoint: use %s", list);
    respond_error(st, 404, ESB_E_INVALID_REQUEST, buf);
    break;
  }
  }
  return send_response(st);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  (void)version;
  struct conn *st = *con_cls;
  if (!st)
    return begin_request(cls, c, url, con_cls);
  if (*upload_data_size)
    return read_body(st, upload_data, upload_data_size);
  if (st->response)
    return send_response(st); /* after a suspended run, or refused above */
  return answer(st, method, url);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why) {
  (void)cls; (void)c; (void)why;
  struct conn *st = *con_cls;
  if (!st)
    return;
  *con_cls = NULL;
  /* A streamed answer's client may leave while its run goes on, or while
   * it waits for a slot: the run, or the queue, frees it then. */
  if (st->running || (st->stream_queued && !st->lines_done)) {
    st->gone = true;
    return;
  }
  free_conn(st);
}

/* ---- the loop ---- */

static void drive_http(void *userdata) {
  struct server *s = userdata;
  MHD_run(s->mhd);
}

static void drive_sessions(void *userdata) {
  struct server *s = userdata;
  esb_session_tasks_step(&s->tasks);
}

/* How long the loop may sleep before MHD must run again. MHD watches its
 * connections edge-triggered and reads or writes one buffer of a connection
 * per MHD_run: a connection with more to do stays on MHD's own ready list,
 * which no event of the epoll fd announces. Only MHD_get_timeout says so
 * (0), and sleeping past it left a body read, or a streamed answer
 * written, one buffer per wake-up of the loop. */
static int http_wait_ms(struct server *s) {
  MHD_UNSIGNED_LONG_LONG ms;
  if (MHD_get_timeout(s->mhd, &ms) != MHD_YES)
    return -1; /* no connection has a deadline: its fds wake the loop */
  return ms > INT_MAX ? INT_MAX : (int)ms;
}

static void reload_policy(struct server *s) {
  struct esb_error err;
  s->m.policy_reloads++;
  struct esb_policy *fresh = esb_policy_open(s->o->policy_path, &err);
  if (!fresh) {
    s->m.policy_reload_failures++;
    fprintf(stderr, "echo-sandbox serve: policy reload failed, keeping the old one: %s\n", err.message);
    return;
  }
  /* Plans are made when runs start; a run in flight holds no reference. */
  esb_policy_close(s->policy);
  s->policy = fresh;
  fprintf(stderr, "echo-sandbox serve: policy reloaded from %s\n", esb_policy_path(fresh));
  esb_pool_keeper_reload(&s->keeper);
  check_ready(s);
}

static void on_signal(void *userdata) {
  struct server *s = userdata;
  struct signalfd_siginfo si;
  while (read(s->sigfd, &si, sizeof si) == sizeof si) {
    if (si.ssi_signo == SIGHUP) {
      reload_policy(s);
    } else if (!s->stopping) {
      s->stopping = true;
      s->stop_deadline_ns = esb_now_ns() + s->o->grace_ms * 1000000ull;
      int fd = MHD_quiesce_daemon(s->mhd); /* accept no more */
      if (fd >= 0) {
        close(fd);
        s->listen_fd = -1;
      }
      fprintf(stderr, "echo-sandbox serve: stopping; %zu runs in flight\n", s->admission.in_flight);
    }
  }
}

/* The HTTP server on the listening socket, driven by the loop with the
 * signals that stop it. */
static bool start_http(struct server *s) {
  s->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                            on_request, s,
                            MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
                            /* idle that long without a complete request: closed (a
                               run in flight suspends its connection, which does not
                               time out) */
                            MHD_OPTION_CONNECTION_TIMEOUT, s->o->header_timeout_s,
                            MHD_OPTION_END);
  if (!s->mhd) {
    fprintf(stderr, "echo-sandbox serve: cannot start the HTTP server\n");
    return false;
  }
  static const int handled[] = { SIGHUP, SIGTERM, SIGINT };
  s->sigfd = esb_signal_fd(handled, 3);
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
  esb_loop_watch(&s->loop, info->epoll_fd, drive_http, s);
  esb_loop_watch(&s->loop, s->sigfd, on_signal, s);
  esb_loop_watch(&s->loop, s->tasks.epfd, drive_sessions, s);
  s->loop.after_poll = drive_http;
  s->loop.after_poll_userdata = s;
  return true;
}

/* The address listened on, into the file (written whole, then renamed). */
static void write_port_file(const char *path, const char *where) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (f) {
    fprintf(f, "%s\n", where);
    fclose(f);
    rename(tmp, path);
  }
}

/* Grace is over: no more queued starts, kill what runs (pods are deleted). */
static void end_grace(struct server *s) {
  for (struct esb_waiter *w; (w = esb_admission_drop(&s->admission));) {
    struct conn *st = conn_of(w);
    if (st->gone) {
      free_conn(st);
      continue;
    }
    struct esb_result r = ESB_RESULT_INIT;
    esb_result_fail(&r, ESB_E_BACKEND_UNAVAILABLE, "the daemon shut down before this request ran");
    if (st->stream_queued) {
      r.retryable = true;
      stream_result(st, &r);
    } else {
      respond_retry_later(st, 503, &r);
      MHD_resume_connection(st->c);
    }
    esb_result_release(&r);
  }
  esb_session_tasks_interrupt(&s->tasks);
  esb_loop_abort(&s->loop);
}

/* How often the directory of sessions is looked over (the loop wakes at
 * least once a second while it watches fds). */
#define SWEEP_NS 1000000000ull

/* Serves until a signal stops the daemon and what it admitted has ended,
 * or the grace after the signal is over. */
static void serve_until_stopped(struct server *s) {
  for (;;) {
    esb_loop_step(&s->loop, http_wait_ms(s));
    if (!s->stopping && esb_now_ns() - s->swept_ns >= SWEEP_NS)
      sweep(s);
    if (!s->stopping)
      continue;
    if (s->admission.in_flight == 0 && s->admission.queued == 0 && s->tasks.in_flight == 0)
      break;
    if (esb_now_ns() >= s->stop_deadline_ns)
      end_grace(s);
  }
  /* Hand out the last answers: a resumed connection needs a few rounds to
   * queue and write its response; kept-alive idle ones are not waited for. */
  for (int round = 0; round < 20; round++) {
    MHD_run(s->mhd);
    struct timespec pause = { 0, 10 * 1000000L };
    nanosleep(&pause, NULL);
  }
}

/* How long the warm pools' keeper may take to end its pass when the daemon
 * stops, before it is killed (a killed one leaves pods cleanup removes). */
#define KEEPER_GRACE_MS 10000

static void release_server(struct server *s) {
  esb_pool_keeper_stop(&s->keeper, KEEPER_GRACE_MS);
  if (s->mhd)
    MHD_stop_daemon(s->mhd);
  if (s->listen_fd >= 0)
    close(s->listen_fd);
  if (s->sigfd >= 0)
    close(s->sigfd);
  if (s->unix_path) {
    unlink(s->unix_path);
    free(s->unix_path);
  }
  esb_cgroup_pool_clear(&s->cgroups);
  esb_host_paths_keep(false);
  esb_session_tasks_close(&s->tasks);
  esb_policy_close(s->policy);
  if (s->L)
    lua_close(s->L);
}

int esb_serve(const struct esb_server_options *o) {
  struct server s = { .o = o, .listen_fd = -1, .sigfd = -1, .loop = ESB_LOOP_INIT,
                      .cgroups = ESB_CGROUP_POOL_INIT, .tasks = ESB_SESSION_TASKS_INIT,
                      .admission = ESB_ADMISSION_INIT(o->max_running, o->max_queue),
                      .keeper = { .policy_path = o->policy_path } };
  s.loop.cgroup_pool = &s.cgroups;
  esb_host_paths_keep(true); /* the policy's host paths, as each plan finds them */
  struct esb_error err;
  char where[256];
  int rc = 125;
  if (!(s.policy = esb_policy_open(o->policy_path, &err))) {
    fprintf(stderr, "echo-sandbox serve: %s\n", err.message);
    goto out;
  }
  if (!(s.L = esb_json_state())) {
    fprintf(stderr, "echo-sandbox serve: out of memory\n");
    goto out;
  }
  if (esb_session_tasks_init(&s.tasks, &err) < 0) {
    fprintf(stderr, "echo-sandbox serve: %s\n", err.message);
    goto out;
  }
  check_ready(&s);
  if (!s.ready)
    fprintf(stderr, "echo-sandbox serve: not ready (GET /readyz answers 503): %s\n", s.ready_reason);
  struct esb_error listen_err = ESB_ERROR_INIT;
  s.listen_fd = esb_daemon_listen(o->listen, o->socket_mode, o->socket_gid, &s.unix_path, where, sizeof where,
                                  &listen_err);
  if (s.listen_fd < 0) {
    fprintf(stderr, "echo-sandbox serve: %s\n", listen_err.message);
    goto out;
  }
  if (!start_http(&s))
    goto out;
  if (o->port_file)
    write_port_file(o->port_file, where);
  fprintf(stderr, "echo-sandbox serve: listening on %s%s (policy %s)\n",
          s.unix_path ? "unix:" : "port ", where, esb_policy_path(s.policy));
  serve_until_stopped(&s);
  rc = 0;
out:
  release_server(&s);
  return rc;
}
