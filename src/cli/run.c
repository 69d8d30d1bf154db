/* echo-sandbox run: one request from flags or JSON, one result. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "cli/cli.h"
#include "dispatch/execute.h"
#include "luaglue/convert.h"

int luaopen_cjson(lua_State *L);

static const char run_usage[] =
  "usage: echo-sandbox run [OPTIONS] --shell CMD\n"
  "       echo-sandbox run [OPTIONS] --lang LANGUAGE (--code CODE | --code-file FILE)\n"
  "       echo-sandbox run [OPTIONS] -- PROGRAM [ARGS...]\n"
  "       echo-sandbox run --json [--policy FILE] < request.json\n"
  "\n"
  "Runs one request in the sandbox. The flag forms copy the program's stdout\n"
  "and stderr to ours and exit with its code: 124 timed out, 125 executor\n"
  "error, 126 cannot execute, 127 not found, 128+N killed by signal N.\n"
  "--json reads a request object on stdin and prints the result object.\n"
  "\n"
  "options:\n"
  "  --shell CMD          run CMD with /bin/sh -c\n"
  "  --lang LANGUAGE      the language of --code/--code-file (see the policy)\n"
  "  --code CODE          source code to run\n"
  "  --code-file FILE     read the source code from FILE\n"
  "  --stdin-file FILE    give FILE to the program as stdin ('-': our stdin);\n"
  "                       without it the program reads EOF at once\n"
  "  --env NAME=VALUE     set a variable in the program's environment (repeatable)\n"
  "  --working-dir DIR    run in DIR instead of a fresh temporary dir\n"
  "  --timeout SECONDS    wall-clock limit (decimals allowed)\n"
  "  --memory QUANTITY    address-space limit: bytes or 512k, 256M, 1G, 256Mi, 1Gi\n"
  "  --cpu-time SECONDS   CPU-time limit\n"
  "  --max-processes N    process limit inside the sandbox\n"
  "  --max-output BYTES   keep at most BYTES of stdout and of stderr\n"
  "  --network            allow network access (default: loopback only, isolated)\n"
  "  --backend NAME       auto, local or k8s\n"
  "  --policy FILE        load this policy instead of the default search\n"
  "  --json               request JSON on stdin, result JSON on stdout\n"
  "  -h, --help           show this help\n";

struct run_options {
  const char *shell, *lang, *code, *code_file, *stdin_file, *working_dir, *backend, *policy;
  const char *memory, *cpu_time, *max_processes, *max_output, *timeout;
  char **env;
  int nenv;
  bool network, json;
  char **program;  /* argv after the options */
  /* read from files, owned */
  char *code_data, *stdin_data;
  size_t code_len, stdin_len;
};

static int fail_usage(const char *fmt, const char *arg) {
  fputs("echo-sandbox run: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs("\n(echo-sandbox run --help lists the options)\n", stderr);
  return 125;
}

/* Reads a whole file ('-': stdin) into a malloc'd buffer. */
static char *slurp(const char *path, size_t *lenp) {
  int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  size_t len = 0, cap = 65536;
  char *buf = malloc(cap);
  while (buf) {
    if (len == cap) {
      char *p = realloc(buf, cap *= 2);
      if (!p) { free(buf); buf = NULL; errno = ENOMEM; break; }
      buf = p;
    }
    ssize_t n = read(fd, buf + len, cap - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) { int e = errno; free(buf); buf = NULL; errno = e; break; }
    if (n == 0) break;
    len += (size_t)n;
  }
  if (fd > 0) {
    int e = errno;
    close(fd);
    errno = e;
  }
  *lenp = len;
  return buf;
}

/* Kubernetes-style quantity: an integer with an optional suffix k M G T
 * (powers of 1000) or Ki Mi Gi Ti (powers of 1024). */
static int parse_quantity(const char *s, long long *out) {
  static const struct { const char *suffix; long long factor; } units[] = {
    {"", 1}, {"k", 1000LL}, {"M", 1000000LL}, {"G", 1000000000LL}, {"T", 1000000000000LL},
    {"Ki", 1LL << 10}, {"Mi", 1LL << 20}, {"Gi", 1LL << 30}, {"Ti", 1LL << 40}};
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || v <= 0)
    return -1;
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcmp(end, units[i].suffix) == 0) {
      if (v > INT64_MAX / units[i].factor)
        return -1;
      *out = v * units[i].factor;
      return 0;
    }
  }
  return -1;
}

static int parse_count(const char *s, long long *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v <= 0)
    return -1;
  *out = v;
  return 0;
}

/* Builds the request table from the options; runs protected. */
static int push_flag_request(lua_State *L) {
  struct run_options *o = lua_touserdata(L, 1);
  lua_newtable(L);
  if (o->shell) { lua_pushstring(L, o->shell); lua_setfield(L, -2, "shell"); }
  if (o->lang) { lua_pushstring(L, o->lang); lua_setfield(L, -2, "language"); }
  if (o->code) { lua_pushstring(L, o->code); lua_setfield(L, -2, "code"); }
  if (o->code_data) { lua_pushlstring(L, o->code_data, o->code_len); lua_setfield(L, -2, "code"); }
  if (o->stdin_data) { lua_pushlstring(L, o->stdin_data, o->stdin_len); lua_setfield(L, -2, "stdin"); }
  if (o->working_dir) { lua_pushstring(L, o->working_dir); lua_setfield(L, -2, "working_dir"); }
  if (o->backend) { lua_pushstring(L, o->backend); lua_setfield(L, -2, "backend"); }
  if (o->program && o->program[0]) {
    bool is_code = o->code || o->code_data;
    int i = 0;
    if (!is_code) {
      lua_pushstring(L, o->program[0]);
      lua_setfield(L, -2, "program");
      i = 1;
    }
    lua_newtable(L);
    for (int k = 1; o->program[i]; i++, k++) {
      lua_pushstring(L, o->program[i]);
      lua_rawseti(L, -2, k);
    }
    lua_setfield(L, -2, "args");
  }
  if (o->nenv) {
    lua_newtable(L);
    for (int i = 0; i < o->nenv; i++) {
      const char *eq = strchr(o->env[i], '=');
      if (!eq)
        return luaL_error(L, "--env %s: expected NAME=VALUE", o->env[i]);
      lua_pushlstring(L, o->env[i], (size_t)(eq - o->env[i]));
      lua_pushstring(L, eq + 1);
      lua_rawset(L, -3);
    }
    lua_setfield(L, -2, "env");
  }
  long long v;
  if (o->timeout) {
    char *end;
    double secs = strtod(o->timeout, &end);
    if (end == o->timeout || *end || !(secs > 0) || secs > 1e9)
      return luaL_error(L, "--timeout %s: expected a positive number of seconds", o->timeout);
    lua_pushinteger(L, (lua_Integer)ceil(secs * 1000.0));
    lua_setfield(L, -2, "timeout_ms");
  }
  lua_newtable(L);
  static const struct {
    size_t option;  /* offset of the flag's value in struct run_options */
    const char *key, *flag, *expected;
    int (*parse)(const char *, long long *);
  } limit_flags[] = {
    {offsetof(struct run_options, memory), "memory_bytes", "--memory",
     "bytes or a quantity like 256Mi", parse_quantity},
    {offsetof(struct run_options, cpu_time), "cpu_time_secs", "--cpu-time",
     "a positive whole number of seconds", parse_count},
    {offsetof(struct run_options, max_processes), "max_processes", "--max-processes",
     "a positive whole number", parse_count},
    {offsetof(struct run_options, max_output), "max_output_bytes", "--max-output",
     "a positive number of bytes, or a quantity like 64k", parse_quantity},
  };
  for (size_t i = 0; i < sizeof limit_flags / sizeof limit_flags[0]; i++) {
    const char *value = *(const char **)((const char *)o + limit_flags[i].option);
    if (!value)
      continue;
    if (limit_flags[i].parse(value, &v) < 0)
      return luaL_error(L, "%s %s: expected %s", limit_flags[i].flag, value, limit_flags[i].expected);
    lua_pushinteger(L, v);
    lua_setfield(L, -2, limit_flags[i].key);
  }
  if (o->network) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "network");
  }
  lua_setfield(L, -2, "limits");
  return 1;
}

static int decode_json(lua_State *L) {
  size_t len;
  const char *text = lua_tolstring(L, 1, &len);
  lua_getfield(L, LUA_REGISTRYINDEX, "esb.cjson");
  lua_getfield(L, -1, "decode");
  lua_pushlstring(L, text, len);
  lua_call(L, 1, 1);
  return 1;
}

static int encode_result(lua_State *L) {
  const struct esb_result *r = lua_touserdata(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, "esb.cjson");
  lua_getfield(L, -1, "encode");
  lua_getfield(L, -2, "null");
  esb_lua_push_result(L, r, -1);
  lua_remove(L, -2);
  lua_call(L, 1, 1);
  return 1;
}

static int open_frontend(lua_State *L) {
  luaL_requiref(L, "cjson", luaopen_cjson, 0);
  lua_setfield(L, LUA_REGISTRYINDEX, "esb.cjson");
  return 0;
}

static void write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
}

static void print_json(lua_State *L, const struct esb_result *r) {
  lua_pushcfunction(L, encode_result);
  lua_pushlightuserdata(L, (void *)r);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "echo-sandbox: cannot encode the result: %s\n", lua_tostring(L, -1));
  } else {
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    write_all(1, s, len);
    write_all(1, "\n", 1);
  }
  lua_pop(L, 1);
}

static void print_plain(const struct esb_result *r) {
  if (r->out.data) write_all(1, r->out.data, r->out.len);
  if (r->err.data) write_all(2, r->err.data, r->err.len);
  if (esb_capture_truncated(&r->out))
    fprintf(stderr, "echo-sandbox: stdout truncated: %llu bytes written, %zu kept\n",
            (unsigned long long)r->out.total, r->out.len);
  if (esb_capture_truncated(&r->err))
    fprintf(stderr, "echo-sandbox: stderr truncated: %llu bytes written, %zu kept\n",
            (unsigned long long)r->err.total, r->err.len);
  if (r->status == ESB_STATUS_TIMED_OUT)
    fprintf(stderr, "echo-sandbox: timed out after %.0f ms\n", r->duration_ms);
}

/* SIGINT, SIGTERM and SIGHUP arrive on an fd the loop watches, so the
 * sandbox is torn down before we exit. */
static int block_exit_signals(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGHUP);
  if (sigprocmask(SIG_BLOCK, set, NULL) < 0)
    return -1;
  return signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static int parse_options(int argc, char **argv, struct run_options *o) {
  enum { O_SHELL = 256, O_LANG, O_CODE, O_CODE_FILE, O_STDIN_FILE, O_ENV, O_WORKDIR, O_TIMEOUT,
         O_MEMORY, O_CPU, O_PROCS, O_OUTPUT, O_NETWORK, O_BACKEND, O_POLICY, O_JSON };
  static const struct option longopts[] = {
    {"shell", required_argument, 0, O_SHELL}, {"lang", required_argument, 0, O_LANG},
    {"code", required_argument, 0, O_CODE}, {"code-file", required_argument, 0, O_CODE_FILE},
    {"stdin-file", required_argument, 0, O_STDIN_FILE}, {"env", required_argument, 0, O_ENV},
    {"working-dir", required_argument, 0, O_WORKDIR}, {"timeout", required_argument, 0, O_TIMEOUT},
    {"memory", required_argument, 0, O_MEMORY}, {"cpu-time", required_argument, 0, O_CPU},
    {"max-processes", required_argument, 0, O_PROCS}, {"max-output", required_argument, 0, O_OUTPUT},
    {"network", no_argument, 0, O_NETWORK}, {"backend", required_argument, 0, O_BACKEND},
    {"policy", required_argument, 0, O_POLICY}, {"json", no_argument, 0, O_JSON},
    {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  o->env = calloc((size_t)argc + 1, sizeof *o->env);
  if (!o->env)
    return fail_usage("%s", "out of memory");
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
    switch (c) {
    case O_SHELL: o->shell = optarg; break;
    case O_LANG: o->lang = optarg; break;
    case O_CODE: o->code = optarg; break;
    case O_CODE_FILE: o->code_file = optarg; break;
    case O_STDIN_FILE: o->stdin_file = optarg; break;
    case O_ENV: o->env[o->nenv++] = optarg; break;
    case O_WORKDIR: o->working_dir = optarg; break;
    case O_TIMEOUT: o->timeout = optarg; break;
    case O_MEMORY: o->memory = optarg; break;
    case O_CPU: o->cpu_time = optarg; break;
    case O_PROCS: o->max_processes = optarg; break;
    case O_OUTPUT: o->max_output = optarg; break;
    case O_NETWORK: o->network = true; break;
    case O_BACKEND: o->backend = optarg; break;
    case O_POLICY: o->policy = optarg; break;
    case O_JSON: o->json = true; break;
    case 'h': fputs(run_usage, stdout); return 0;
    default:
      return fail_usage("unknown or incomplete option '%s'", argv[optind - 1]);
    }
  }
  o->program = argv + optind;
  if (o->json && (o->shell || o->lang || o->code || o->code_file || o->program[0] || o->stdin_file))
    return fail_usage("%s", "--json takes the whole request from stdin; drop the request flags");
  if (o->code && o->code_file)
    return fail_usage("%s", "give --code or --code-file, not both");
  if (o->code_file && !(o->code_data = slurp(o->code_file, &o->code_len)))
    return fail_usage("--code-file: %s", strerror(errno));
  if (o->stdin_file && !(o->stdin_data = slurp(o->stdin_file, &o->stdin_len)))
    return fail_usage("--stdin-file: %s", strerror(errno));
  return -1; /* go on */
}

/* Prints an engine error before a request could run, as the output mode wants. */
static int early_error(lua_State *L, bool json, enum esb_error code, const char *msg) {
  struct esb_result r = ESB_RESULT_INIT;
  esb_result_fail(&r, code, "%s", msg);
  fprintf(stderr, "echo-sandbox: %s\n", msg);
  if (json && L)
    print_json(L, &r);
  int rc = esb_result_exit_code(&r);
  esb_result_release(&r);
  return rc;
}

int esb_cli_run(int argc, char **argv) {
  struct run_options o = { 0 };
  struct esb_request req = ESB_REQUEST_INIT;
  struct esb_policy *policy = NULL;
  char err[2048];
  int rc = parse_options(argc, argv, &o), sigfd = -1;
  lua_State *L = NULL;
  if (rc >= 0)
    goto out;
  if (!(L = luaL_newstate())) {
    rc = early_error(NULL, false, ESB_E_SYSTEM, "out of memory");
    goto out;
  }
  lua_pushcfunction(L, open_frontend);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    rc = early_error(NULL, false, ESB_E_SYSTEM, lua_tostring(L, -1));
    goto out;
  }
  if (o.json) {
    size_t len;
    char *text = slurp("-", &len);
    if (!text) {
      snprintf(err, sizeof err, "reading the request from stdin: %s", strerror(errno));
      rc = early_error(L, true, ESB_E_INVALID_REQUEST, err);
      goto out;
    }
    lua_pushcfunction(L, decode_json);
    lua_pushlstring(L, text, len);
    free(text);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
      snprintf(err, sizeof err, "invalid request JSON: %s", lua_tostring(L, -1));
      rc = early_error(L, true, ESB_E_INVALID_REQUEST, err);
      goto out;
    }
  } else {
    lua_pushcfunction(L, push_flag_request);
    lua_pushlightuserdata(L, &o);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
      rc = early_error(L, false, ESB_E_INVALID_REQUEST, lua_tostring(L, -1));
      goto out;
    }
  }
  if (esb_lua_to_request(L, -1, &req, err, sizeof err) < 0) {
    rc = early_error(L, o.json, ESB_E_INVALID_REQUEST, err);
    goto out;
  }
  lua_pop(L, 1);
  if (!(policy = esb_policy_open(o.policy, err, sizeof err))) {
    rc = early_error(L, o.json, ESB_E_POLICY, err);
    goto out;
  }
  sigset_t exit_signals;
  sigfd = block_exit_signals(&exit_signals);
  struct esb_result result = ESB_RESULT_INIT;
  esb_execute(policy, &req, &result, sigfd);
  if (result.status == ESB_STATUS_ERROR)
    fprintf(stderr, "echo-sandbox: %s\n", result.error_message ? result.error_message : esb_strerror(result.error));
  if (o.json)
    print_json(L, &result);
  else
    print_plain(&result);
  rc = esb_result_exit_code(&result);
  if (result.status == ESB_STATUS_ERROR && result.error == ESB_E_INTERRUPTED) {
    struct signalfd_siginfo si;
    rc = read(sigfd, &si, sizeof si) == sizeof si ? 128 + (int)si.ssi_signo : 130;
  }
  esb_result_release(&result);
out:
  if (sigfd >= 0)
    close(sigfd);
  esb_policy_close(policy);
  esb_request_release(&req);
  if (L)
    lua_close(L);
  free(o.env);
  free(o.code_data);
  free(o.stdin_data);
  return rc;
}
