#include "cli/request.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "engine/runtime/cpu.h"
#include "engine/fileio.h"
#include "engine/contract/quantity.h"
#include "codec/convert.h"
#include "luaglue/call.h"
#include "luaglue/embedded.h"
#include "codec/json.h"

const char esb_cli_request_flags_help[] =
  "  --shell CMD          run CMD with /bin/sh -c\n"
  "  --lang LANGUAGE      the language of --code/--code-file (see the policy)\n"
  "  --code CODE          source code to run\n"
  "  --code-file FILE     read the source code from FILE\n"
  "  --stdin-file FILE    stream FILE to the program as stdin ('-': our stdin), as\n"
  "                       it reads; without it the program reads EOF at once\n"
  "  --env NAME=VALUE     set a variable in the program's environment (repeatable)\n"
  "  --working-dir DIR    run in DIR instead of a fresh temporary dir\n"
  "  --timeout SECONDS    wall-clock limit (decimals allowed)\n"
#define ESB_LIMIT(id, kind, key, plan_key, request_member, plan_member, flag, minimum, default_value, doc, help) help
#include "engine/contract/limits.def"
#undef ESB_LIMIT
  "  --allow-host HOST    let the program reach HOST (pypi.org, *.pythonhosted.org,\n"
  "                       either with :PORT), by name, through the egress proxy;\n"
  "                       nothing else (repeatable; not with --network)\n"
  "  --backend auto|local|k8s  where it runs (auto: where the policy sends it)\n"
  "  --policy FILE        load this policy instead of the default search\n"
  "  -h, --help           show this help\n";

static int fail_usage(const char *command, const char *fmt, const char *arg) {
  fprintf(stderr, "echo-sandbox %s: ", command);
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n(echo-sandbox %s --help lists the options)\n", command);
  return 125;
}

/* Sizes and counts: a whole quantity (engine/contract/quantity.h), 1 or more. */
static int parse_whole(const char *s, long long *out) {
  uint64_t v;
  if (esb_quantity_whole(s, 1, INT64_MAX, &v) < 0)
    return -1;
  *out = (long long)v;
  return 0;
}

/* The program and its arguments ("args"), into the request on top: with
 * --code or --code-file every word is an argument. */
static void set_program(lua_State *L, const struct esb_cli_options *o) {
  if (!o->program || !o->program[0])
    return;
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

/* --env NAME=VALUE flags as the "env" table: 0, or raises the error. */
static int set_env(lua_State *L, const struct esb_cli_options *o) {
  if (!o->nenv)
    return 0;
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
  return 0;
}

/* One limit flag's value into the "limits" table on top, checked as its
 * kind says: 0, or raises the error. */
static int set_flag_limit(lua_State *L, const struct esb_limit_field *d, const char *value) {
  long long v;
  uint64_t millicores;
  switch (d->kind) {
  case ESB_LIMIT_IS_UINT:
    if (parse_whole(value, &v) < 0)
      return luaL_error(L, "%s %s: expected a positive whole number or a quantity like 64k or 256Mi (%s)", d->flag,
                        value, d->doc);
    lua_pushinteger(L, v);
    break;
  case ESB_LIMIT_IS_CPU:
    if (esb_cpu_parse(value, &millicores) < 0)
      return luaL_error(L, "%s %s: expected a positive number of cores (0.5, 2) or millicores (500m)", d->flag, value);
    lua_pushstring(L, value);
    break;
  case ESB_LIMIT_IS_BOOL:
    lua_pushboolean(L, 1);
    break;
  }
  lua_setfield(L, -2, d->key);
  return 0;
}

/* The limit flags as the "limits" table, --allow-host as its network =
 * { allow = {...} }: 0, or raises the error. */
static int set_flag_limits(lua_State *L, const struct esb_cli_options *o) {
  lua_newtable(L);
  for (size_t i = 0; i < ESB_LIMIT__COUNT; i++)
    if (o->limits[i])
      set_flag_limit(L, &esb_limit_fields[i], o->limits[i]);
  if (o->nallow && o->limits[ESB_LIMIT_NETWORK])
    return luaL_error(L, "give --network (the whole network) or --allow-host (these hosts), not both");
  if (o->nallow) {
    lua_createtable(L, 0, 1);
    lua_createtable(L, o->nallow, 0);
    for (int i = 0; i < o->nallow; i++) {
      lua_pushstring(L, o->allow[i]);
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "allow");
    lua_setfield(L, -2, "network");
  }
  lua_setfield(L, -2, "limits");
  return 0;
}

/* Builds the request table from the options; runs protected. */
static int push_flag_request(lua_State *L) {
  struct esb_cli_options *o = lua_touserdata(L, 1);
  lua_newtable(L);
  if (o->shell) { lua_pushstring(L, o->shell); lua_setfield(L, -2, "shell"); }
  if (o->lang) { lua_pushstring(L, o->lang); lua_setfield(L, -2, "language"); }
  if (o->code) { lua_pushstring(L, o->code); lua_setfield(L, -2, "code"); }
  if (o->code_data) { lua_pushlstring(L, o->code_data, o->code_len); lua_setfield(L, -2, "code"); }
  if (o->working_dir) { lua_pushstring(L, o->working_dir); lua_setfield(L, -2, "working_dir"); }
  if (o->backend) { lua_pushstring(L, o->backend); lua_setfield(L, -2, "backend"); }
  set_program(L, o);
  set_env(L, o);
  if (o->timeout) {
    double secs;
    if (esb_quantity_number(o->timeout, &secs) < 0 || !(secs > 0) || secs > 1e9)
      return luaL_error(L, "--timeout %s: expected a positive number of seconds", o->timeout);
    lua_pushinteger(L, (lua_Integer)ceil(secs * 1000.0));
    lua_setfield(L, -2, "timeout_ms");
  }
  set_flag_limits(L, o);
  return 1;
}

/* Runs protected: pushes requests.split(cjson.decode, text) for the text
 * (1): one JSON document, or NDJSON (lua/echo_sandbox/engine/requests.lua). */
static int decode_requests(lua_State *L) {
  esb_lua_embedded_require(L, "echo_sandbox.engine.requests");
  lua_getfield(L, -1, "split");                /* text, requests, split */
  esb_json_field(L, "decode");
  lua_pushvalue(L, 1);                         /* text, requests, split, decode, text */
  lua_call(L, 2, 1);                           /* text, requests, list */
  return 1;
}

int esb_cli_read_request_list(lua_State *L, const struct esb_cli_options *o, struct esb_error *err) {
  if (esb_cli_has_request_flags(o)) {
    lua_createtable(L, 1, 0);
    lua_pushcfunction(L, push_flag_request);
    lua_pushlightuserdata(L, (void *)o);
    if (esb_lua_pcall(L, 1, 1, ESB_LUA_MESSAGE, ESB_E_INVALID_REQUEST, NULL, err) < 0) {
      lua_pop(L, 1);
      return -1;
    }
    lua_rawseti(L, -2, 1);
    return 0;
  }
  if (o->stdin_file)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "a request on stdin carries its own stdin; drop --stdin-file");
  size_t len;
  char *text = esb_read_file("-", &len);
  if (!text)
    return esb_error_errno(err, ESB_E_INVALID_REQUEST, "reading requests from stdin");
  lua_pushcfunction(L, decode_requests);
  lua_pushlstring(L, text, len);
  free(text);
  return esb_lua_pcall(L, 1, 1, ESB_LUA_MESSAGE, ESB_E_INVALID_REQUEST, "invalid request JSON", err);
}

bool esb_cli_has_request_flags(const struct esb_cli_options *o) {
  return o->shell || o->lang || o->code || o->code_file || o->program[0];
}

void esb_cli_options_release(struct esb_cli_options *o) {
  free(o->env);
  free(o->allow);
  free(o->code_data);
  if (o->stdin_fd > 0)
    close(o->stdin_fd);
  o->stdin_fd = -1;
}

int esb_cli_read_request(lua_State *L, const struct esb_cli_options *o, struct esb_request *req,
                         struct esb_error *err) {
  if (esb_cli_read_request_list(L, o, err) < 0)
    return -1;
  if (lua_rawlen(L, -1) != 1) {
    esb_error_set(err, ESB_E_INVALID_REQUEST, "expected one request, got %llu (NDJSON is for batch)",
                  (unsigned long long)lua_rawlen(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  lua_rawgeti(L, -1, 1);
  if (lua_type(L, -1) == LUA_TSTRING) { /* cannot be: one line is one document */
    esb_error_set(err, ESB_E_INVALID_REQUEST, "%s", lua_tostring(L, -1));
    lua_pop(L, 2);
    return -1;
  }
  int rc = esb_lua_to_request(L, -1, req, err);
  lua_pop(L, 2);
  if (rc == 0)
    req->stdin_fd = o->stdin_fd;
  return rc;
}

int esb_cli_parse(int argc, char **argv, struct esb_cli_options *o, const char *usage) {
  /* each limit's flag is O_LIMIT + its enum esb_limit_id */
  enum { O_SHELL = 256, O_LANG, O_CODE, O_CODE_FILE, O_STDIN_FILE, O_ENV, O_ALLOW, O_WORKDIR, O_TIMEOUT,
         O_BACKEND, O_POLICY, O_JSON, O_LIMIT };
  static const struct option longopts[] = {
    {"shell", required_argument, 0, O_SHELL}, {"lang", required_argument, 0, O_LANG},
    {"code", required_argument, 0, O_CODE}, {"code-file", required_argument, 0, O_CODE_FILE},
    {"stdin-file", required_argument, 0, O_STDIN_FILE}, {"env", required_argument, 0, O_ENV},
    {"allow-host", required_argument, 0, O_ALLOW},
    {"working-dir", required_argument, 0, O_WORKDIR}, {"timeout", required_argument, 0, O_TIMEOUT},
#define ESB_LIMIT(id, kind, key, plan_key, request_member, plan_member, flag, ...) \
    {&flag[2], ESB_LIMIT_IS_##kind == ESB_LIMIT_IS_BOOL ? no_argument : required_argument, 0, O_LIMIT + ESB_LIMIT_##id},
#include "engine/contract/limits.def"
#undef ESB_LIMIT
    {"backend", required_argument, 0, O_BACKEND},
    {"policy", required_argument, 0, O_POLICY}, {"json", no_argument, 0, O_JSON},
    {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  o->stdin_fd = -1;
  o->env = calloc((size_t)argc + 1, sizeof *o->env);
  o->allow = calloc((size_t)argc + 1, sizeof *o->allow);
  if (!o->env || !o->allow)
    return fail_usage(argv[0], "%s", "out of memory");
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
    case O_ALLOW: o->allow[o->nallow++] = optarg; break;
    case O_WORKDIR: o->working_dir = optarg; break;
    case O_TIMEOUT: o->timeout = optarg; break;
    case O_BACKEND: o->backend = optarg; break;
    case O_POLICY: o->policy = optarg; break;
    case O_JSON: o->json = true; break;
    case 'h': fputs(usage, stdout); return 0;
    default:
      if (c >= O_LIMIT && c < O_LIMIT + ESB_LIMIT__COUNT) {
        o->limits[c - O_LIMIT] = optarg ? optarg : "";
        break;
      }
      return fail_usage(argv[0], "unknown or incomplete option '%s'", argv[optind - 1]);
    }
  }
  o->program = argv + optind;
  if (o->code && o->code_file)
    return fail_usage(argv[0], "%s", "give --code or --code-file, not both");
  struct esb_error why;
  if (o->code_file && !(o->code_data = esb_read_file(o->code_file, &o->code_len))) {
    esb_error_errno(&why, ESB_E_INVALID_REQUEST, "--code-file %s", o->code_file);
    return fail_usage(argv[0], "%s", why.message);
  }
  if (o->stdin_file) {
    o->stdin_fd = strcmp(o->stdin_file, "-") == 0 ? 0 : open(o->stdin_file, O_RDONLY | O_CLOEXEC);
    if (o->stdin_fd < 0) {
      esb_error_errno(&why, ESB_E_INVALID_REQUEST, "--stdin-file %s", o->stdin_file);
      return fail_usage(argv[0], "%s", why.message);
    }
  }
  return -1; /* go on */
}

