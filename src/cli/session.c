/* echo-sandbox session: a sandbox that lives (backend/local_session.h):
 * create prints its id; run, show and rm take it; ls lists them. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>

#include "backend/k8s_session.h"
#include "backend/local_session.h"
#include "cli/cli.h"
#include "cli/request.h"
#include "cli/session_k8s.h"
#include "dispatch/session_k8s.h"
#include "dispatch/session_k8s_files.h"
#include "dispatch/session_create.h"
#include "codec/json.h"
#include "codec/convert.h"
#include "dispatch/session.h"
#include "engine/contract/quantity.h"
#include "engine/fileio.h"
#include "engine/strv.h"
#include "engine/runtime/signals.h"
#include "policy/policy.h"

static const char session_usage[] =
  "usage: echo-sandbox session create [--ttl MS] [--idle-timeout MS] [--label KEY=VALUE] [LIMITS] [--json]\n"
  "       echo-sandbox session run ID [OPTIONS] (--shell CMD | -- PROGRAM [ARGS...])\n"
  "       echo-sandbox session run ID --json < request.json\n"
  "       echo-sandbox session cell ID --lang LANGUAGE [--code CODE | --code-file FILE] [--json]\n"
  "       echo-sandbox session cp SRC DST      (one of them ID:PATH; - is stdin/stdout)\n"
  "       echo-sandbox session files ID [DIR] [--json]\n"
  "       echo-sandbox session ls [--json]\n"
  "       echo-sandbox session show ID [--json]\n"
  "       echo-sandbox session rm ID\n"
  "\n"
  "A session is a sandbox with an id, a lifetime and limits of its own, into\n"
  "which runs go one after another or side by side. Its working dir (files)\n"
  "persists from run to run; the processes a run starts end with that run.\n"
  "A cell runs code in the session's kernel of its language, whose variables,\n"
  "imports and definitions persist from cell to cell.\n"
  "It ends by itself at its TTL or once idle for its idle timeout, or on rm.\n"
  "echo-sandbox session COMMAND --help describes a command.\n";

static const char create_usage[] =
  "usage: echo-sandbox session create [OPTIONS]\n"
  "\n"
  "Makes a session and prints its id (the object with --json: what the policy\n"
  "decided, its lifetime, limits, kernels and notes of what it lowered). It\n"
  "lives on after this command exits. More sessions of one tenant than the\n"
  "policy allows: exit status 75, until one ends.\n"
  "\n"
  "options:\n"
  "  --ttl MS             its lifetime (default 600000: 10 minutes; at most the\n"
  "                       policy's ceiling)\n"
  "  --idle-timeout MS    it ends once no run went on for this long (default 120000)\n"
  "  --label KEY=VALUE    a label of the session (repeatable; Kubernetes label\n"
  "                       syntax): the policy's tenant label says whose it is\n"
  "  --memory QUANTITY    memory limit of the whole session (a cgroup's where the\n"
  "                       engine can make one, else each process's address space)\n"
  "  --cpu CORES          CPU rate limit of the whole session: 0.5, 2 or 500m\n"
  "  --max-processes N    process limit inside the session\n"
  "  --policy FILE        load this policy instead of the default search\n"
  "  --json               print the session as a JSON object\n"
  "  -h, --help           show this help\n";

static const char run_usage[] =
  "usage: echo-sandbox session run ID [OPTIONS] --shell CMD\n"
  "       echo-sandbox session run ID [OPTIONS] -- PROGRAM [ARGS...]\n"
  "       echo-sandbox session run ID --json [--policy FILE] < request.json\n"
  "\n"
  "Runs one request in session ID, as `run` runs it in a fresh sandbox: the\n"
  "result is a run's, with \"session\": ID. Its files (and --code's file) are\n"
  "written into the session's working dir before it starts, replacing what is\n"
  "there. --memory, --cpu and --network are the whole session's: give them to\n"
  "create. --max-processes is the run's own (its pids cgroup below the\n"
  "session's). At --timeout the run's processes get SIGTERM, then SIGKILL\n"
  "after the grace.\n"
  "\n"
  "options:\n"
  "  --json               result JSON on stdout; the request JSON on stdin unless\n"
  "                       request flags are given\n";

static const char cell_usage[] =
  "usage: echo-sandbox session cell ID --lang LANG [--code CODE | --code-file FILE] [OPTIONS]\n"
  "\n"
  "Runs code (from --code, --code-file, or stdin) as a cell of session ID's\n"
  "kernel of LANG: its variables, imports and definitions persist from\n"
  "cell to cell (the kernel starts at the first cell and ends with the\n"
  "session). Prints the cell's stdout and stderr, then the value of its last\n"
  "expression. Exit status: 0 ok; 1 the cell raised (its traceback on\n"
  "stderr); 124 timed out; 130 interrupted; 125 the kernel died, the session\n"
  "ended, another cell of the kernel is going on, or the cell could not run.\n"
  "A cell past its deadline is interrupted (SIGINT: KeyboardInterrupt, Node's\n"
  "interrupt) and the kernel keeps its state; one that does not answer within\n"
  "1 s is killed, and the result says its state was lost (state_lost).\n"
  "\n"
  "options:\n"
  "  --lang %-14s the kernel's language\n"
  "  --code CODE          the cell's code\n"
  "  --code-file FILE     the cell's code from FILE ('-': stdin)\n"
  "  --timeout SECONDS    the cell's deadline (decimals allowed; default: the\n"
  "                       policy's timeout)\n"
  "  --policy FILE        load this policy instead of the default search\n"
  "  --json               print the result as a JSON object: status (ok, error,\n"
  "                       timed_out, interrupted, died, busy, session_ended,\n"
  "                       failed), stdout, stderr, value, error, state_lost,\n"
  "                       message, code, duration_ms, session, language\n"
  "  -h, --help           show this help\n";

static const char show_usage[] =
  "usage: echo-sandbox session show ID [--json]\n"
  "       echo-sandbox session ls [--json]\n"
  "\n"
  "Says whether a session is alive or ended and why (ttl, idle, deleted, died),\n"
  "the runs it started, and when its TTL ends.\n"
  "\n"
  "options:\n"
  "  --json               print JSON objects\n"
  "  -h, --help           show this help\n";

static const char rm_usage[] =
  "usage: echo-sandbox session rm ID\n"
  "\n"
  "Ends a session (every process in it) and removes what it holds: its\n"
  "directory, its cgroups. An ended session's remains go the same way.\n"
  "\n"
  "options:\n"
  "  -h, --help           show this help\n";

static const char cp_usage[] =
  "usage: echo-sandbox session cp FILE ID:PATH\n"
  "       echo-sandbox session cp ID:PATH FILE\n"
  "\n"
  "Copies a file into a live session's working dir, or out of it. PATH is\n"
  "relative to the working dir, without '.' or '..' parts; FILE - is stdin\n"
  "or stdout. Into the session: PATH's directories are made where missing,\n"
  "a file or a link there is replaced (never followed), a directory is not;\n"
  "the file keeps FILE's permission bits (0644 from stdin). Out of it: a\n"
  "regular file only. A path that leads outside the working dir (a link a\n"
  "run made, to anywhere) is refused. At most the working dir's size.\n"
  "A k8s session's file goes in or out through a run in its pod (its\n"
  "policy's: --policy), out as `collect` takes files, within its ceilings.\n"
  "\n"
  "options:\n"
  "  --policy FILE        the policy (a k8s session's: its cluster)\n"
  "  -h, --help           show this help\n";

static const char files_usage[] =
  "usage: echo-sandbox session files ID [DIR] [--json]\n"
  "\n"
  "Lists a directory of a live session's working dir (DIR relative to it;\n"
  "none: the working dir itself), one entry a line: its type (file, dir,\n"
  "link, other), permission bits, size in bytes and name.\n"
  "\n"
  "options:\n"
  "  --json               one JSON object a line: name, type, mode, size\n"
  "  --policy FILE        the policy (a k8s session's: its cluster)\n"
  "  -h, --help           show this help\n";

static bool wants_help(int argc, char **argv) {
  for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
      return true;
  return false;
}

static int usage_error(const char *command, const char *what, const char *arg) {
  fprintf(stderr, "echo-sandbox session %s: %s%s%s\n(echo-sandbox session %s --help lists the options)\n",
          command, what, arg ? " " : "", arg ? arg : "", command);
  return 125;
}

/* An engine error, as the CLI says one: a line, and the exit code of its
 * code (engine/contract/result.h). */
static int fail(const struct esb_error *err) {
  fprintf(stderr, "echo-sandbox: %s\n", err->message);
  struct esb_result r = ESB_RESULT_INIT;
  esb_result_fail(&r, err->code, "%s", err->message);
  int rc = esb_result_exit_code(&r);
  esb_result_release(&r);
  return rc;
}

int esb_cli_session_fail(const struct esb_error *err) {
  return fail(err);
}

/* What create and run share: flags through run's parser (cli/request.h),
 * a request, the policy's plan of it. */
struct planned {
  struct esb_cli_options o;
  struct esb_request req;
  struct esb_policy *policy;
  struct esb_plan plan;
  lua_State *L;
  char **args;
  bool k8s; /* a run in a k8s session: planned for k8s, whatever the policy's backend */
};

static void planned_release(struct planned *p) {
  esb_plan_release(&p->plan);
  esb_policy_close(p->policy);
  esb_request_release(&p->req);
  if (p->L)
    lua_close(p->L);
  esb_cli_options_release(&p->o);
  free(p->args);
}

/* Parses args (args[0] the command's name), reads the request and opens
 * the policy. 0; -1 with the error in err; or the exit code of a usage
 * error (> 0). */
static int read_from(struct planned *p, int argc, char **args, const char *usage, bool need_request,
                     struct esb_error *err) {
  int rc = esb_cli_parse(argc, args, &p->o, usage);
  if (rc >= 0)
    return rc;
  if (!(p->L = esb_json_state()))
    return esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  if (need_request && !p->o.json && !esb_cli_has_request_flags(&p->o))
    return esb_error_set(err, ESB_E_INVALID_REQUEST,
                         "nothing to run: give --shell, -- PROGRAM, or --json with a request on stdin");
  if (esb_cli_read_request(p->L, &p->o, &p->req, err) < 0 || !(p->policy = esb_policy_open(p->o.policy, err)))
    return -1;
  return 0;
}

static int plan(struct planned *p, struct esb_error *err) {
  p->plan = (struct esb_plan)ESB_PLAN_INIT;
  if (p->k8s)
    p->req.backend = ESB_BACKEND_K8S;
  return esb_policy_plan(p->policy, &p->req, &p->plan, p->k8s, err);
}

/* read_from, then plan. */
static int plan_from(struct planned *p, int argc, char **args, const char *usage, bool need_request,
                     struct esb_error *err) {
  int rc = read_from(p, argc, args, usage, need_request, err);
  return rc != 0 ? rc : plan(p, err);
}

/* A whole number of milliseconds, 1 or more. */
static int parse_ms(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || v == 0 || s[0] == '-')
    return -1;
  *out = v;
  return 0;
}

/* create's own flags out of argv (--label's values into labels), the rest
 * into args for run's parser, with a program to plan (the session runs
 * none). */
static int create_args(int argc, char **argv, struct esb_session_options *so, struct esb_strv *labels,
                       char **args, int *n) {
  static char name[] = "session create", dashes[] = "--", program[] = "/bin/true";
  args[(*n)++] = name;
  for (int i = 1; i < argc; i++) {
    bool ttl = strcmp(argv[i], "--ttl") == 0, idle = strcmp(argv[i], "--idle-timeout") == 0;
    if (strcmp(argv[i], "--label") == 0) {
      if (i + 1 >= argc || !strchr(argv[i + 1], '='))
        return usage_error("create", "--label takes KEY=VALUE, not", i + 1 < argc ? argv[i + 1] : "nothing");
      if (esb_strv_push(labels, argv[++i]) < 0)
        return usage_error("create", "out of memory", NULL);
      continue;
    }
    if (!ttl && !idle) {
      args[(*n)++] = argv[i];
      continue;
    }
    if (i + 1 >= argc || parse_ms(argv[i + 1], ttl ? &so->ttl_ms : &so->idle_timeout_ms) < 0)
      return usage_error("create", ttl ? "--ttl takes a whole number of milliseconds, 1 or more, not"
                                       : "--idle-timeout takes a whole number of milliseconds, 1 or more, not",
                         i + 1 < argc ? argv[i + 1] : "nothing");
    i++;
  }
  args[(*n)++] = dashes;
  args[(*n)++] = program;
  args[*n] = NULL;
  return -1;
}

/* What the policy decided, into the session's object on top: the limits of
 * its plan, its kernels and labels, the notes of what was lowered (the
 * decision's, then the plan's). */
static void push_decision(lua_State *L, const struct esb_session_made *m, char **labels) {
  esb_cli_push_plan_limits(L, &m->plan);
  lua_setfield(L, -2, "limits");
  lua_newtable(L);
  int n = 0;
  for (char **v = m->decision.kernels; v && *v; v++) {
    lua_pushstring(L, *v);
    lua_rawseti(L, -2, ++n);
  }
  lua_setfield(L, -2, "kernels");
  lua_newtable(L);
  for (char **kv = labels; kv && *kv; kv++) {
    const char *eq = strchr(*kv, '=');
    lua_pushlstring(L, *kv, (size_t)(eq - *kv));
    lua_pushstring(L, eq + 1);
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, "labels");
  lua_newtable(L);
  n = 0;
  char **const notes[] = { m->decision.clamped, m->plan.clamped };
  for (size_t i = 0; i < 2; i++)
    for (char **v = notes[i]; v && *v; v++) {
      lua_pushstring(L, *v);
      lua_rawseti(L, -2, ++n);
    }
  lua_setfield(L, -2, "clamped");
}

/* The notes of what the policy lowered, on stderr, where no JSON says them. */
static void say_clamped(const struct esb_session_made *m) {
  char **const notes[] = { m->decision.clamped, m->plan.clamped };
  for (size_t i = 0; i < 2; i++)
    for (char **v = notes[i]; v && *v; v++)
      fprintf(stderr, "echo-sandbox: %s\n", *v);
}

/* A create that failed, with --json: {"error": {"code", "message"}} on
 * stdout, as a run's result says its error. */
static void print_error(lua_State *L, const struct esb_error *err) {
  lua_createtable(L, 0, 1);
  lua_createtable(L, 0, 2);
  lua_pushstring(L, esb_error_name(err->code));
  lua_setfield(L, -2, "code");
  lua_pushstring(L, err->message);
  lua_setfield(L, -2, "message");
  lua_setfield(L, -2, "error");
  esb_json_print(L);
}

static int session_create(int argc, char **argv) {
  if (wants_help(argc, argv)) {
    fputs(create_usage, stdout);
    return 0;
  }
  struct planned p = { .policy = NULL };
  struct esb_session_options so = { 0 };
  struct esb_strv labels = ESB_STRV_INIT;
  struct esb_session_made made = ESB_SESSION_MADE_INIT;
  struct esb_error err = ESB_ERROR_INIT;
  int n = 0, rc;
  if (!(p.args = calloc((size_t)argc + 3, sizeof *p.args)))
    return usage_error("create", "out of memory", NULL);
  if ((rc = create_args(argc, argv, &so, &labels, p.args, &n)) >= 0 ||
      (rc = read_from(&p, n, p.args, create_usage, false, &err)) > 0)
    goto out;
  p.req.nlabels = labels.n;
  if (rc == 0 && labels.n && !(p.req.labels = esb_strv_detach(&labels)))
    rc = esb_error_set(&err, ESB_E_SYSTEM, "out of memory");
  struct esb_session_info info;
  if (rc < 0 || esb_session_make(p.policy, &p.req, so.ttl_ms, so.idle_timeout_ms, &made, &err) < 0 ||
      (!esb_k8s_session_id(made.id) && esb_session_info(made.id, &info, &err) < 0)) {
    if (p.o.json && p.L)
      print_error(p.L, &err);
    rc = fail(&err);
    goto out;
  }
  if (p.o.json) {
    if (esb_k8s_session_id(made.id))
      esb_k8s_session_push_made(p.L, &made);
    else
      esb_session_push_info(p.L, &info);
    push_decision(p.L, &made, p.req.labels);
    esb_json_print(p.L);
  } else {
    say_clamped(&made);
    puts(made.id);
  }
  rc = 0;
out:
  esb_session_made_release(&made);
  esb_strv_clear(&labels);
  planned_release(&p);
  return rc;
}

static void print_result(lua_State *L, const struct esb_result *r) {
  if (esb_json_push_result(L, r) < 0) {
    fprintf(stderr, "echo-sandbox: cannot encode the result: out of memory\n");
    return;
  }
  esb_json_print(L);
}

static int session_run(int argc, char **argv) {
  char usage[4096];
  snprintf(usage, sizeof usage, "%s%s", run_usage, esb_cli_request_flags_help);
  if (wants_help(argc, argv)) {
    fputs(usage, stdout);
    return 0;
  }
  if (argc < 2 || argv[1][0] == '-')
    return usage_error("run", "the session's id comes first", NULL);
  const char *id = argv[1];
  struct planned p = { .k8s = esb_k8s_session_id(id) };
  struct esb_error err = ESB_ERROR_INIT;
  int rc;
  if (!(p.args = calloc((size_t)argc + 1, sizeof *p.args)))
    return usage_error("run", "out of memory", NULL);
  static char name[] = "session run";
  p.args[0] = name;
  for (int i = 2; i < argc; i++)
    p.args[i - 1] = argv[i];
  if ((rc = plan_from(&p, argc - 1, p.args, usage, true, &err)) != 0) {
    if (rc < 0)
      rc = fail(&err);
    goto out;
  }
  static const int exit_signals[] = { SIGINT, SIGTERM, SIGHUP };
  int sigfd = esb_signal_fd(exit_signals, 3);
  struct esb_result result = ESB_RESULT_INIT;
  struct esb_output_sink ours = { .fds = { 1, 2 } };
  if (esb_session_check_run(&p.req, &err) < 0)
    esb_result_fail_error(&result, &err);
  else if (p.k8s)
    esb_k8s_session_run(id, &p.plan, &result, sigfd, p.o.json ? NULL : &ours);
  else
    esb_session_run(id, &p.plan, &result, sigfd, p.o.json ? NULL : &ours);
  if (result.status == ESB_STATUS_ERROR)
    fprintf(stderr, "echo-sandbox: %s\n", result.error_message ? result.error_message : esb_strerror(result.error));
  else if (result.status == ESB_STATUS_TIMED_OUT && !p.o.json)
    fprintf(stderr, "echo-sandbox: timed out after %.0f ms\n", result.duration_ms);
  else if (result.status == ESB_STATUS_OOM_KILLED && !p.o.json)
    fprintf(stderr, "echo-sandbox: killed after %.0f ms: out of memory (the session's memory limit)\n",
            result.duration_ms);
  for (size_t i = 0; !p.o.json && i < result.warnings.n; i++)
    fprintf(stderr, "echo-sandbox: warning: %s\n", result.warnings.v[i]);
  if (p.o.json)
    print_result(p.L, &result);
  rc = esb_result_exit_code(&result);
  esb_result_release(&result);
  if (sigfd >= 0)
    close(sigfd);
  esb_cli_leave_to_the_exit(p.policy, p.L); /* as run's: the exit frees them at once */
  p.policy = NULL;
  p.L = NULL;
out:
  planned_release(&p);
  return rc;
}

/* cell's own flags; --timeout and --policy go on to run's parser. */
struct cell_options {
  const char *id, *lang, *code, *code_file, *timeout, *policy;
  bool json;
};

static int cell_options(int argc, char **argv, struct cell_options *o) {
  if (argc < 2 || argv[1][0] == '-')
    return usage_error("cell", "the session's id comes first", NULL);
  o->id = argv[1];
  for (int i = 2; i < argc; i++) {
    static const char *const names[] = { "--lang", "--code", "--code-file", "--timeout", "--policy" };
    const char **into[] = { &o->lang, &o->code, &o->code_file, &o->timeout, &o->policy };
    size_t k = 0;
    while (k < 5 && strcmp(argv[i], names[k]) != 0)
      k++;
    if (strcmp(argv[i], "--json") == 0)
      o->json = true;
    else if (k == 5)
      return usage_error("cell", "unexpected", argv[i]);
    else if (i + 1 >= argc)
      return usage_error("cell", argv[i], "takes a value");
    else
      *into[k] = argv[++i];
  }
  if (!o->lang)
    return usage_error("cell", "--lang is missing: the languages with a kernel are",
                       esb_session_kernel_languages());
  if (o->code && o->code_file)
    return usage_error("cell", "give --code or --code-file, not both", NULL);
  return -1;
}

/* The kernel's plan: its program as a run's, through the policy. */
static int plan_kernel(struct planned *p, const struct cell_options *co, struct esb_error *err) {
  const char *argv[3];
  if (esb_session_kernel_argv(co->lang, argv, err) < 0)
    return -1;
  static char name[] = "session cell", timeout[] = "--timeout", policy[] = "--policy", dashes[] = "--";
  int n = 0;
  if (!(p->args = calloc(10, sizeof *p->args)))
    return esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  p->args[n++] = name;
  if (co->timeout) {
    p->args[n++] = timeout;
    p->args[n++] = (char *)co->timeout;
  }
  if (co->policy) {
    p->args[n++] = policy;
    p->args[n++] = (char *)co->policy;
  }
  p->args[n++] = dashes;
  for (int i = 0; i < 3; i++)
    p->args[n++] = (char *)argv[i];
  int rc = plan_from(p, n, p->args, cell_usage, true, err);
  return rc > 0 ? esb_error_set(err, ESB_E_INVALID_REQUEST, "bad --timeout or --policy") : rc;
}

/* People's output: the cell's own, its value, then the engine's word. */
static void print_cell(const struct esb_cell_result *r) {
  esb_write_all(1, r->out.data ? r->out.data : "", r->out.len);
  esb_write_all(2, r->err.data ? r->err.data : "", r->err.len);
  if (r->value)
    printf("%s\n", r->value);
  if (r->status == ESB_CELL_ERROR && r->error_traceback && r->error_traceback[0])
    fprintf(stderr, "%s%s", r->error_traceback,
            r->error_traceback[strlen(r->error_traceback) - 1] == '\n' ? "" : "\n");
  else if (r->status == ESB_CELL_ERROR)
    fprintf(stderr, "%s: %s\n", r->error_name ? r->error_name : "error", r->error_message ? r->error_message : "");
  if (r->message)
    fprintf(stderr, "echo-sandbox: %s%s\n", r->status == ESB_CELL_OK || r->status == ESB_CELL_ERROR ? "warning: " : "",
            r->message);
}

/* What stops a cell before it goes in: a result all the same. */
static void cell_failed(struct esb_cell_result *r, const struct esb_error *err) {
  r->status = ESB_CELL_FAILED;
  r->failure = err->code;
  r->message = strdup(err->message);
}

static int session_cell(int argc, char **argv) {
  if (wants_help(argc, argv)) {
    char langs[128];
    snprintf(langs, sizeof langs, "%s", esb_session_kernel_languages());
    for (char *c = langs; (c = strstr(c, ", ")); )
      memmove(c, c + 1, strlen(c)), *c = '|'; /* the list as a metavariable: a|b */
    printf(cell_usage, langs);
    return 0;
  }
  struct cell_options co = { .id = NULL };
  int rc = cell_options(argc, argv, &co);
  if (rc >= 0)
    return rc;
  struct planned p = { .k8s = esb_k8s_session_id(co.id) };
  struct esb_error err = ESB_ERROR_INIT;
  struct esb_cell_result r = ESB_CELL_RESULT_INIT;
  size_t len = co.code ? strlen(co.code) : 0;
  char *read = co.code ? NULL : esb_read_file(co.code_file ? co.code_file : "-", &len);
  static const int exit_signals[] = { SIGINT, SIGTERM, SIGHUP };
  int sigfd = -1;
  if (!co.code && !read) {
    esb_error_errno(&err, ESB_E_INVALID_REQUEST, "reading the cell's code from %s",
                    co.code_file ? co.code_file : "stdin");
    cell_failed(&r, &err);
  } else if (plan_kernel(&p, &co, &err) < 0) {
    cell_failed(&r, &err);
  } else {
    sigfd = esb_signal_fd(exit_signals, 3);
    if (p.k8s)
      esb_k8s_session_cell(co.id, co.lang, co.code ? co.code : read, len, &p.plan, &r, sigfd);
    else
      esb_session_cell(co.id, co.lang, co.code ? co.code : read, len, &p.plan, &r, sigfd);
  }
  if (co.json && (p.L || (p.L = esb_json_state()))) {
    esb_session_push_cell(p.L, &r, co.lang, true);
    esb_json_print(p.L);
  } else {
    print_cell(&r);
  }
  rc = esb_cell_exit_code(&r);
  esb_cell_result_release(&r);
  if (sigfd >= 0)
    close(sigfd);
  free(read);
  planned_release(&p);
  return rc;
}

static void print_line(const struct esb_session_info *info) {
  time_t expires = (time_t)((info->created_ms + info->ttl_ms) / 1000);
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&expires));
  printf("%s  %s%s  runs %" PRIu64 "  expires %s\n", info->id, info->end == ESB_SESSION_ALIVE ? "alive" : "ended: ",
         info->end == ESB_SESSION_ALIVE ? "" : esb_session_end_name(info->end), info->runs, when);
}

/* ls: one line a session, or one JSON object a line (NDJSON). */
static void list_one(const struct esb_session_info *info, void *arg) {
  lua_State *L = arg;
  if (!L) {
    print_line(info);
    return;
  }
  esb_session_push_info(L, info);
  esb_json_print(L);
}

/* show ID and ls: [--json] only. */
static int session_show(int argc, char **argv, bool one) {
  if (wants_help(argc, argv)) {
    fputs(show_usage, stdout);
    return 0;
  }
  bool json = false;
  const char *id = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0)
      json = true;
    else if (one && !id && argv[i][0] != '-')
      id = argv[i];
    else
      return usage_error(one ? "show" : "ls", "unexpected", argv[i]);
  }
  if (one && !id)
    return usage_error("show", "the session's id is missing", NULL);
  struct esb_error err = ESB_ERROR_INIT;
  lua_State *L = json ? esb_json_state() : NULL;
  struct esb_session_info info;
  int rc = 0;
  if (json && !L)
    return usage_error(one ? "show" : "ls", "out of memory", NULL);
  if (one ? esb_session_info(id, &info, &err) : esb_session_list(list_one, L, &err))
    rc = fail(&err);
  else if (one)
    list_one(&info, L);
  if (L)
    lua_close(L);
  return rc;
}

static int session_rm(int argc, char **argv) {
  if (wants_help(argc, argv)) {
    fputs(rm_usage, stdout);
    return 0;
  }
  if (argc != 2 || argv[1][0] == '-')
    return usage_error("rm", "takes one session id", NULL);
  struct esb_error err = ESB_ERROR_INIT;
  enum esb_session_end was;
  if (esb_session_remove(argv[1], &was, &err) < 0)
    return fail(&err);
  if (was != ESB_SESSION_ALIVE)
    fprintf(stderr, "echo-sandbox: session %s had ended (%s); what it left is removed\n", argv[1],
            esb_session_end_name(was));
  return 0;
}

/* ID:PATH: the id, into id (the path follows the colon); NULL where arg
 * is a file of ours. */
static const char *remote_path(const char *arg, char id[ESB_K8S_SESSION_ID_LEN + 1]) {
  const char *colon = strchr(arg, ':');
  size_t n = colon ? (size_t)(colon - arg) : 0;
  if (n != ESB_SESSION_ID_LEN && n != ESB_K8S_SESSION_ID_LEN)
    return NULL;
  memcpy(id, arg, n);
  id[n] = '\0';
  return n == ESB_SESSION_ID_LEN || esb_k8s_session_id(id) ? colon + 1 : NULL;
}

/* --policy FILE out of argv (argc shrinks): the policy a k8s session's
 * files go through (its cluster, the run's plan); a local session's need
 * none. -1: --policy without its FILE. */
static int take_policy(int *argc, char **argv, const char **policy) {
  int kept = 1;
  for (int i = 1; i < *argc; i++) {
    if (strcmp(argv[i], "--policy") != 0) {
      argv[kept++] = argv[i];
      continue;
    }
    if (++i == *argc)
      return -1;
    *policy = argv[i];
  }
  *argc = kept;
  return 0;
}

/* All of f's bytes, at most limit: a buffer, or NULL with err. */
static char *read_all(FILE *f, const char *name, size_t limit, size_t *len, struct esb_error *err) {
  size_t cap = 65536, got = 0;
  char *buf = malloc(cap);
  while (buf) {
    got += fread(buf + got, 1, cap - got, f);
    if (got < cap || got > limit)
      break;
    char *more = realloc(buf, cap * 2);
    if (!more)
      free(buf);
    buf = more;
    cap *= 2;
  }
  if (!buf) {
    esb_error_set(err, ESB_E_SYSTEM, "reading %s: out of memory", name);
  } else if (ferror(f) || got > limit) {
    if (ferror(f))
      esb_error_set(err, ESB_E_INVALID_REQUEST, "reading %s: a read error", name);
    else
      esb_error_set(err, ESB_E_INVALID_REQUEST, "%s: more than the session's working dir holds (%zu bytes)",
                    name, limit);
    free(buf);
    buf = NULL;
  }
  *len = got;
  return buf;
}

/* A file of ours (-: stdin), whole, and its permission bits. */
static char *read_local(const char *name, size_t limit, size_t *len, unsigned *mode, struct esb_error *err) {
  FILE *f = strcmp(name, "-") == 0 ? stdin : fopen(name, "rbe");
  struct stat st;
  *mode = 0644;
  if (!f) {
    esb_error_errno(err, ESB_E_INVALID_REQUEST, "%s", name);
    return NULL;
  }
  if (f != stdin && fstat(fileno(f), &st) == 0)
    *mode = st.st_mode & 0777;
  char *data = read_all(f, name, limit, len, err);
  if (f != stdin)
    fclose(f);
  return data;
}

static int write_local(const char *name, const char *data, size_t len, struct esb_error *err) {
  FILE *f = strcmp(name, "-") == 0 ? stdout : fopen(name, "wbe");
  if (!f)
    return esb_error_errno(err, ESB_E_INVALID_REQUEST, "%s", name);
  bool ok = fwrite(data, 1, len, f) == len;
  ok = (f == stdout ? fflush(f) : fclose(f)) == 0 && ok;
  return ok ? 0 : esb_error_errno(err, ESB_E_SYSTEM, "writing %s", name);
}

static int session_cp(int argc, char **argv) {
  if (wants_help(argc, argv)) {
    fputs(cp_usage, stdout);
    return 0;
  }
  const char *policy_path = NULL;
  if (take_policy(&argc, argv, &policy_path) < 0)
    return usage_error("cp", "--policy takes a FILE", NULL);
  if (argc != 3)
    return usage_error("cp", "takes SRC and DST, one of them ID:PATH", NULL);
  char id[ESB_K8S_SESSION_ID_LEN + 1];
  const char *from = remote_path(argv[1], id), *to = from ? NULL : remote_path(argv[2], id);
  if (!from == !to)
    return usage_error("cp", "one of SRC and DST is ID:PATH (a session's), the other a file or -", NULL);
  struct esb_error err = ESB_ERROR_INIT;
  struct esb_file f = { .path = (char *)(from ? from : to) };
  uint64_t limit = 0;
  bool k8s = esb_k8s_session_id(id), failed;
  struct esb_policy *policy = k8s ? esb_policy_open(policy_path, &err) : NULL;
  if (k8s && !policy)
    failed = true;
  else if (from)
    failed = (k8s ? esb_k8s_session_get(policy, id, from, &f.data, &f.len, &err)
                  : esb_session_get(id, from, &f.data, &f.len, &err)) < 0 ||
             write_local(argv[2], f.data, f.len, &err) < 0;
  else
    failed = (!k8s && esb_session_workdir_size(id, &limit, &err) < 0) ||
             !(f.data = read_local(argv[1], limit ? (size_t)limit : SIZE_MAX, &f.len, &f.mode, &err)) ||
             (k8s ? esb_k8s_session_put(policy, id, &f, &err) : esb_session_put(id, &f, &err)) < 0;
  free(f.data);
  esb_policy_close(policy);
  return failed ? fail(&err) : 0;
}

/* The words of an entry's type (struct esb_session_entry). */
static const struct { char type; const char *name; } entry_types[] = {
  { 'f', "file" }, { 'd', "dir" }, { 'l', "link" }, { 'o', "other" },
};

static const char *entry_type(char type) {
  for (size_t i = 0; i < sizeof entry_types / sizeof entry_types[0]; i++)
    if (entry_types[i].type == type)
      return entry_types[i].name;
  return "other";
}

static void print_entry(const struct esb_session_entry *e, void *arg) {
  lua_State *L = arg;
  if (!L) {
    printf("%-5s %04o %10" PRIu64 "  %s\n", entry_type(e->type), e->mode, e->size, e->name);
    return;
  }
  lua_createtable(L, 0, 4);
  lua_pushstring(L, e->name);
  lua_setfield(L, -2, "name");
  lua_pushstring(L, entry_type(e->type));
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)e->mode);
  lua_setfield(L, -2, "mode");
  lua_pushinteger(L, (lua_Integer)e->size);
  lua_setfield(L, -2, "size");
  esb_json_print(L);
}

static int session_files(int argc, char **argv) {
  if (wants_help(argc, argv)) {
    fputs(files_usage, stdout);
    return 0;
  }
  const char *args[2] = { NULL, NULL }, *policy_path = NULL;
  int n = 0;
  bool json = false;
  if (take_policy(&argc, argv, &policy_path) < 0)
    return usage_error("files", "--policy takes a FILE", NULL);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0)
      json = true;
    else if (argv[i][0] != '-' && n < 2)
      args[n++] = argv[i];
    else
      return usage_error("files", "unexpected", argv[i]);
  }
  if (!n)
    return usage_error("files", "the session's id is missing", NULL);
  struct esb_error err = ESB_ERROR_INIT;
  lua_State *L = json ? esb_json_state() : NULL;
  if (json && !L)
    return usage_error("files", "out of memory", NULL);
  struct esb_policy *policy = NULL;
  int rc;
  if (!esb_k8s_session_id(args[0]))
    rc = esb_session_files(args[0], args[1], print_entry, L, &err);
  else
    rc = (policy = esb_policy_open(policy_path, &err)) ? esb_k8s_session_files(policy, args[0], args[1], print_entry, L, &err)
                                                  : -1;
  rc = rc < 0 ? fail(&err) : 0;
  esb_policy_close(policy);
  if (L)
    lua_close(L);
  return rc;
}

static int session_ls(int argc, char **argv) { return session_show(argc, argv, false); }
static int session_show_one(int argc, char **argv) { return session_show(argc, argv, true); }

static const struct {
  const char *name;
  int (*main)(int argc, char **argv);
} subcommands[] = {
  {"create", session_create}, {"run", session_run}, {"cell", session_cell}, {"ls", session_ls},
  {"show", session_show_one}, {"rm", session_rm}, {"cp", session_cp}, {"files", session_files},
};

int esb_cli_session(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fputs(session_usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (esb_cli_k8s_session_command(argc, argv))
    return esb_cli_k8s_session(argc - 1, argv + 1);
  for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
    if (strcmp(argv[1], subcommands[i].name) == 0)
      return subcommands[i].main(argc - 1, argv + 1);
  fprintf(stderr, "echo-sandbox session: unknown command '%s'\n", argv[1]);
  fputs(session_usage, stderr);
  return 2;
}

static void say_swept(const char *id, const char *why, void *arg) {
  bool dry_run = *(bool *)arg;
  printf("%s session %s (%s)\n", dry_run ? "would remove" : "removed", id, why);
}

bool esb_cli_session_sweep(bool dry_run) {
  struct esb_error err = ESB_ERROR_INIT;
  if (esb_session_sweep(dry_run, say_swept, &dry_run, &err) >= 0)
    return false;
  fprintf(stderr, "echo-sandbox cleanup: %s\n", err.message);
  return true;
}
