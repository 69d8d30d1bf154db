/* Requests and results as Lua tables (src/codec/convert.c), the check
 * every request of every face goes through: each refusal's message names
 * the field and what is wrong with it, hostile file paths and collect
 * patterns are refused, what passes arrives whole (NUL bytes in stdin,
 * base64 files, modes), and a result's bytes that are not UTF-8 come back
 * as base64 or scrubbed words, so the result stays JSON.
 *
 * Checked: without the esb_file_path_ok call in read_files, the hostile
 * paths are taken; without shape_problem's "exactly one" cases, those
 * requests pass; without the check of a file that is another's directory,
 * that case passes; without the count of an array's entries in
 * esb_lua_array_to_strv, args and collect given as objects are taken (and
 * dropped); with esb_lua_set_bytes always setting the text, the
 * non-UTF-8 cases fail; valgrind (CI) finds a refused request's
 * allocations freed. */
#include "codec/convert.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "engine/contract/limits.h"
#include "lua_expr.h"
#include "tap.h"

/* The message esb_lua_to_request gives for the request expr ("" when it
 * takes it); the stack is left as it was. */
static const char *why(lua_State *L, const char *expr) {
  static struct esb_error err;
  int top = lua_gettop(L);
  push(L, expr);
  struct esb_request req = ESB_REQUEST_INIT;
  err = (struct esb_error)ESB_ERROR_INIT;
  int rc = esb_lua_to_request(L, -1, &req, &err);
  if (rc == 0)
    esb_request_release(&req);
  else if (!err.message[0])
    esb_error_set(&err, ESB_E_SYSTEM, "(refused without a message)");
  else if (err.code != ESB_E_INVALID_REQUEST)
    esb_error_set(&err, ESB_E_SYSTEM, "(refused, not as an invalid request)");
  else if (req.shell || req.files || req.args || req.nfiles)
    esb_error_set(&err, ESB_E_SYSTEM, "(a refused request still holds its fields)");
  lua_pop(L, 1);
  if (lua_gettop(L) != top)
    return "(the stack was not left as it was)";
  return err.message;
}

#define IR "invalid request: "
#define ALLOW_WANT "must be a host name, \"*.\" and a host name, an address or a range, any of them with \":PORT\""
#define FILE_PATH_WANT "a path must be relative to the working dir, without empty, '.' or '..' components, at " \
                       "most 1024 bytes and 255 a component"
#define PATTERN_WANT "is no pattern relative to the working dir: not empty, not absolute, no empty, '.' or '..' " \
                     "segment, at most 1024 bytes"

static const struct { const char *request, *want; } cases[] = {
  {"{shell = 'x'}", ""},
  {"{program = 'p', args = {'a', ''}}", ""},
  {"{code = 'print(1)', language = 'python', args = {'a'}}", ""},
  {"'x'", IR "expected an object, got string"},
  {"{}", IR "give exactly one of 'shell', 'program' or 'code' (got none)"},
  {"{shell = null}", IR "give exactly one of 'shell', 'program' or 'code' (got none)"},
  {"{shell = 'a', program = 'b'}", IR "give exactly one of 'shell', 'program' or 'code' (got more than one)"},
  {"{shell = 'a', code = 'b', language = 'c'}",
   IR "give exactly one of 'shell', 'program' or 'code' (got more than one)"},
  {"{code = 'x'}", IR "'code' needs a 'language'"},
  {"{program = 'p', language = 'python'}", IR "'language' goes with 'code'"},
  {"{shell = 'x', args = {'a'}}", IR "'args' goes with 'program' or 'code', not 'shell'"},
  {"{program = ''}", IR "'program' is empty"},
  {"{shell = 'a\\0b'}", IR "'shell' must be a string without NUL bytes (got \"a\\x00b\")"},
  {"{shell = 3}", IR "'shell' must be a string (got 3)"},
  {"{shell = 'x', bogus = 1}", IR "unknown field 'bogus'"},
  {"{program = 'p', args = {'a', 1}}", IR "'args' must be an array of strings without NUL bytes (got table)"},
  {"{program = 'p', args = {'a\\0'}}", IR "'args' must be an array of strings without NUL bytes (got table)"},
  {"{program = 'p', args = {}}", ""},
  {"{program = 'p', args = {x = 'y'}}", IR "'args' must be an array of strings without NUL bytes (got table)"},
  {"{program = 'p', args = {'a', x = 'y'}}", IR "'args' must be an array of strings without NUL bytes (got table)"},
  {"{program = 'p', args = {'a', [3] = 'c'}}", IR "'args' must be an array of strings without NUL bytes (got table)"},
  {"{program = 'p', args = 'a'}", IR "'args' must be an array of strings without NUL bytes (got \"a\")"},
  {"{shell = 'x', env = {A = '1', ['B=C'] = '2'}}",
   IR "'env' must be an object of strings, with names that are non-empty and without '=' (got table)"},
  {"{shell = 'x', env = {A = 1}}",
   IR "'env' must be an object of strings, with names that are non-empty and without '=' (got table)"},
  {"{shell = 'x', labels = {a = true}}",
   IR "'labels' must be an object of strings, with names that are non-empty and without '=' (got table)"},
  {"{shell = 'x', working_dir = 5}", IR "'working_dir' must be a string (got 5)"},
  {"{shell = 'x', timeout_ms = 1}", ""},
  {"{shell = 'x', timeout_ms = 0}", IR "'timeout_ms' must be a positive integer (got 0)"},
  {"{shell = 'x', timeout_ms = -5}", IR "'timeout_ms' must be a positive integer (got -5)"},
  {"{shell = 'x', timeout_ms = 1.5}", IR "'timeout_ms' must be a positive integer (got 1.5)"},
  {"{shell = 'x', timeout_ms = '5'}", IR "'timeout_ms' must be a positive integer (got \"5\")"},
  {"{shell = 'x', backend = 'moon'}", IR "'backend' must be \"auto\", \"local\" or \"k8s\" (got \"moon\")"},
  {"{shell = 'x', limits = 3}", IR "'limits' must be an object (got 3)"},
  {"{shell = 'x', limits = {nope = 1}}", IR "unknown field 'limits.nope'"},
  {"{shell = 'x', limits = {memory_bytes = 0}}", IR "'limits.memory_bytes' must be a positive integer (got 0)"},
  {"{shell = 'x', limits = {max_processes = -1}}", IR "'limits.max_processes' must be a positive integer (got -1)"},
  {"{shell = 'x', limits = {network = 'yes'}}",
   IR "'limits.network' must be true, false or {\"allow\": [host names]} (got \"yes\")"},
  {"{shell = 'x', limits = {network = {allow = {'pypi.org', '*.pythonhosted.org', 'api.github.com:443'}}}}", ""},
  {"{shell = 'x', limits = {network = {allow = {'203.0.113.0/24', '[2001:db8::1]:443'}}}}", ""},
  {"{shell = 'x', limits = {network = {allow = {}}}}", ""},
  {"{shell = 'x', limits = {network = {allow = {'pypi.org', '10.0.0.256'}}}}",
   IR "'limits.network.allow[2]' (\"10.0.0.256\") " ALLOW_WANT " (not an IPv4 address (an IPv6 one goes in '[...]'))"},
  {"{shell = 'x', limits = {network = {allow = {'localhost'}}}}",
   IR "'limits.network.allow[1]' (\"localhost\") " ALLOW_WANT " (a single label, not a host name with its domain)"},
  {"{shell = 'x', limits = {network = {allow = {'a.*.org'}}}}",
   IR "'limits.network.allow[1]' (\"a.*.org\") " ALLOW_WANT " ('*' only as a whole first label (\"*.example.com\"))"},
  {"{shell = 'x', limits = {network = {allow = {'pypi.org:0'}}}}",
   IR "'limits.network.allow[1]' (\"pypi.org:0\") " ALLOW_WANT " (a port must be 1 to 65535)"},
  {"{shell = 'x', limits = {network = {allow = {'10.0.0.1/8'}}}}",
   IR "'limits.network.allow[1]' (\"10.0.0.1/8\") " ALLOW_WANT " (a range's address has bits set past its prefix length)"},
  {"{shell = 'x', limits = {network = {allow = {'bad_.-x.org'}}}}",
   IR "'limits.network.allow[1]' (\"bad_.-x.org\") " ALLOW_WANT
   " (not a host name (labels of letters, digits and '-', separated by '.'))"},
  {"{shell = 'x', limits = {network = {deny = {'x.org'}}}}", IR "unknown field 'limits.network.deny'"},
  {"{shell = 'x', limits = {cpu = 'lots'}}",
   IR "'limits.cpu' must be a positive number of cores (0.5) or a quantity like \"500m\" or \"2\" (got \"lots\")"},
  {"{shell = 'x', limits = {cpu = 0}}",
   IR "'limits.cpu' must be a positive number of cores (0.5) or a quantity like \"500m\" or \"2\" (got 0)"},
  {"{shell = 'x', limits = {cpu = true}}",
   IR "'limits.cpu' must be a positive number of cores (0.5) or a quantity like \"500m\" or \"2\" (got true)"},
  {"{shell = 'x', stdin = 3}", IR "'stdin' must be a string (got 3)"},
  {"{shell = 'x', files = {'a'}}", IR "'files' must be an object of paths to contents, not an array"},
  {"{shell = 'x', files = 'a'}", IR "'files' must be an object (got \"a\")"},
  {"{shell = 'x', files = {['../a'] = 'x'}}", IR "'files' has the path \"../a\": " FILE_PATH_WANT},
  {"{shell = 'x', files = {['a/../../b'] = 'x'}}", IR "'files' has the path \"a/../../b\": " FILE_PATH_WANT},
  {"{shell = 'x', files = {['/etc/passwd'] = 'x'}}", IR "'files' has the path \"/etc/passwd\": " FILE_PATH_WANT},
  {"{shell = 'x', files = {['.'] = 'x'}}", IR "'files' has the path \".\": " FILE_PATH_WANT},
  {"{shell = 'x', files = {['a/'] = 'x'}}", IR "'files' has the path \"a/\": " FILE_PATH_WANT},
  {"{shell = 'x', files = {[''] = 'x'}}", IR "'files' has the path \"\": " FILE_PATH_WANT},
  {"{shell = 'x', files = {['a//b'] = 'x'}}", IR "'files' has the path \"a//b\": " FILE_PATH_WANT},
  {"{shell = 'x', files = {['a\\0/../../x'] = 'x'}}", IR "'files' has the path \"a\\x00/../../x\": " FILE_PATH_WANT},
  {"{shell = 'x', files = {['\\255\\254'] = 'x'}}", ""},
  {"{shell = 'x', files = {a = 'x', ['a/b'] = 'y'}}", IR "'files.a' is a file, and the directory of 'a/b'"},
  {"{shell = 'x', files = {a = 'x', ['ab/c'] = 'y', ['a.b'] = 'z'}}", ""},
  {"{shell = 'x', files = {a = 3}}", IR "'files.a' must be an object (got 3)"},
  {"{shell = 'x', files = {a = {}}}", IR "'files.a' must have one of 'text' and 'base64' (got neither)"},
  {"{shell = 'x', files = {a = {text = 'x', base64 = 'eA=='}}}",
   IR "'files.a' must have one of 'text' and 'base64' (got both)"},
  {"{shell = 'x', files = {a = {text = 'x', extra = 1}}}", IR "unknown field 'files.a.extra'"},
  {"{shell = 'x', files = {a = {base64 = '!!'}}}",
   IR "'files.a.base64' must be standard base64 with padding (got \"!!\")"},
  {"{shell = 'x', files = {a = {base64 = 'eA'}}}",
   IR "'files.a.base64' must be standard base64 with padding (got \"eA\")"},
  {"{shell = 'x', files = {a = {base64 = 1}}}", IR "'files.a.base64' must be a string (got 1)"},
  {"{shell = 'x', files = {a = {text = 1}}}", IR "'files.a.text' must be a string (got 1)"},
  {"{shell = 'x', files = {a = {text = 'x', mode = 511}}}", ""},
  {"{shell = 'x', files = {a = {text = 'x', mode = 512}}}", IR "'files.a.mode' must be permission bits: an integer up "
   "to 511, or octal digits like \"755\" (got 512)"},
  {"{shell = 'x', files = {a = {text = 'x', mode = -1}}}", IR "'files.a.mode' must be permission bits: an integer up "
   "to 511, or octal digits like \"755\" (got -1)"},
  {"{shell = 'x', files = {a = {text = 'x', mode = 1.5}}}", IR "'files.a.mode' must be permission bits: an integer up "
   "to 511, or octal digits like \"755\" (got 1.5)"},
  {"{shell = 'x', files = {a = {text = 'x', mode = '9'}}}", IR "'files.a.mode' must be permission bits: an integer up "
   "to 511, or octal digits like \"755\" (got \"9\")"},
  {"{shell = 'x', files = {a = {text = 'x', mode = ''}}}", IR "'files.a.mode' must be permission bits: an integer up "
   "to 511, or octal digits like \"755\" (got \"\")"},
  {"{shell = 'x', files = {a = {text = 'x', mode = '1000'}}}", IR "'files.a.mode' must be permission bits: an integer "
   "up to 511, or octal digits like \"755\" (got \"1000\")"},
  {"{shell = 'x', collect = {'out/*.txt', '**'}}", ""},
  {"{shell = 'x', collect = {'../x'}}", IR "'collect[1]' (\"../x\") " PATTERN_WANT},
  {"{shell = 'x', collect = {'a', '/etc/*'}}", IR "'collect[2]' (\"/etc/*\") " PATTERN_WANT},
  {"{shell = 'x', collect = {''}}", IR "'collect[1]' (\"\") " PATTERN_WANT},
  {"{shell = 'x', collect = {'a//b'}}", IR "'collect[1]' (\"a//b\") " PATTERN_WANT},
  {"{shell = 'x', collect = {'a/./b'}}", IR "'collect[1]' (\"a/./b\") " PATTERN_WANT},
  {"{shell = 'x', collect = {x = '../y'}}", IR "'collect' must be an array of strings without NUL bytes (got table)"},
  {"{shell = 'x', collect = 'x'}", IR "'collect' must be an array of strings without NUL bytes (got \"x\")"},
};

/* The request expr, which must pass; NULL (and a note) when it does not. */
static struct esb_request *taken(lua_State *L, const char *expr, struct esb_request *req) {
  struct esb_error err;
  push(L, expr);
  *req = (struct esb_request)ESB_REQUEST_INIT;
  int rc = esb_lua_to_request(L, -1, req, &err);
  lua_pop(L, 1);
  if (rc < 0) {
    printf("# %s: %s\n", expr, err.message);
    return NULL;
  }
  return req;
}

static void requests(lua_State *L) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char what[600];
    snprintf(what, sizeof what, "%s: %s", cases[i].request, cases[i].want[0] ? "refused" : "taken");
    is_str(why(L, cases[i].request), cases[i].want, what);
  }

  /* Overlong: the file path's bound and the pattern count's. */
  char expr[1400];
  snprintf(expr, sizeof expr, "{shell = 'x', files = {[(('a'):rep(254) .. '/'):rep(4) .. 'aaaa'] = 'x'}}");
  is_str(why(L, expr), "", "a file path of 1024 bytes, in components of 254");
  snprintf(expr, sizeof expr, "{shell = 'x', files = {[(('a'):rep(254) .. '/'):rep(4) .. 'aaaaa'] = 'x'}}");
  is_str(why(L, expr), IR "'files' has the path \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"... (1025 bytes): "
         FILE_PATH_WANT, "a file path of 1025 bytes, cut short in the message");
  snprintf(expr, sizeof expr, "{shell = 'x', files = {[('a'):rep(256)] = 'x'}}");
  is_str(why(L, expr), IR "'files' has the path \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"... (256 bytes): "
         FILE_PATH_WANT, "a component of 256 bytes");
  snprintf(expr, sizeof expr, "{shell = 'x', collect = (function() local t = {} for i = 1, 65 do t[i] = 'x' .. i end "
           "return t end)()}");
  is_str(why(L, expr), IR "'collect' has 65 patterns, more than 64", "65 collect patterns");

  struct esb_request req;
  if (taken(L, "{program = 'p', args = {'-c', ''}, env = {B = '2', A = '1'}, working_dir = '/w', timeout_ms = 250, "
            "backend = 'k8s', stdin = 'a\\0b', labels = {team = 'x'}, limits = {memory_bytes = 1048576, "
            "cpu_time_secs = 2, max_output_bytes = 10, max_processes = 3, cpu = '500m', network = false}}", &req)) {
    ok(req.kind == ESB_REQUEST_PROGRAM && !strcmp(req.program, "p"), "a program request");
    ok(req.nargs == 2 && !strcmp(req.args[1], "") && !req.args[2], "its args, an empty one kept");
    ok(req.nenv == 2 && (strcmp(req.env[0], "A=1") == 0 || strcmp(req.env[1], "A=1") == 0), "env as NAME=value");
    is_str(req.working_dir, "/w", "working_dir");
    is_int(req.timeout_ms, 250, "timeout_ms");
    is_int(req.backend, ESB_BACKEND_K8S, "backend");
    ok(req.stdin_len == 3 && !memcmp(req.stdin_data, "a\0b", 3), "stdin whole, its NUL too");
    ok(req.limits.memory_bytes == 1048576 && req.limits.cpu_time_secs == 2 && req.limits.max_output_bytes == 10 &&
       req.limits.max_processes == 3, "the integer limits");
    is_int(req.limits.cpu_millicores, 500, "cpu as millicores");
    is_int(req.limits.network, 0, "network off");
    esb_request_release(&req);
  }
  if (taken(L, "{shell = 'x', limits = {cpu = 0.25}}", &req)) {
    ok(req.kind == ESB_REQUEST_SHELL && req.limits.cpu_millicores == 250 && req.limits.network == -1,
       "cpu as cores; network not given");
    esb_request_release(&req);
  }
  if (taken(L, "{shell = 'x', files = {['z'] = 'plain', ['a/b'] = {base64 = 'AP8=', mode = '755'}, "
            "['m'] = {text = '', mode = 384}}, collect = {'*.txt'}}", &req)) {
    ok(req.nfiles == 3 && !strcmp(req.files[0].path, "a/b") && !strcmp(req.files[1].path, "m") &&
       !strcmp(req.files[2].path, "z"), "files sorted by path");
    ok(req.files[0].len == 2 && !memcmp(req.files[0].data, "\0\xff", 2) && req.files[0].mode == 0755,
       "a base64 file decoded, an octal mode string");
    ok(req.files[1].len == 0 && req.files[1].mode == 0600, "an empty text file, an integer mode");
    ok(req.files[2].len == 5 && req.files[2].mode == 0644, "a string is the text, mode 0644");
    ok(req.ncollect == 1 && !strcmp(req.collect[0], "*.txt"), "collect's patterns");
    esb_request_release(&req);
  }
}

/* Each limit of the table (engine/contract/limits.def) lands in its own
 * member of struct esb_limits and no other, and below its minimum is
 * refused naming it. Checked: with the reader's minimum 0 for every UINT,
 * each below-its-minimum case fails. */
static void table_limits(lua_State *L) {
  for (size_t i = 0; i < ESB_LIMIT__COUNT; i++) {
    const struct esb_limit_field *d = &esb_limit_fields[i];
    char expr[200], what[200];
    const char *value = d->kind == ESB_LIMIT_IS_BOOL ? "true" : "7";
    snprintf(expr, sizeof expr, "{shell = 'x', limits = {%s = %s}}", d->key, value);
    struct esb_request req;
    if (!taken(L, expr, &req)) {
      ok(0, d->key);
      continue;
    }
    struct esb_request init = ESB_REQUEST_INIT;
    struct esb_limits want = init.limits;
    void *member = (char *)&want + d->request_offset;
    if (d->kind == ESB_LIMIT_IS_BOOL)
      *(int *)member = 1;
    else
      *(uint64_t *)member = d->kind == ESB_LIMIT_IS_CPU ? 7000 : 7;
    bool same = true; /* member by member: the struct's padding is no one's */
    for (size_t j = 0; j < ESB_LIMIT__COUNT; j++) {
      size_t at = esb_limit_fields[j].request_offset;
      same &= esb_limit_fields[j].kind == ESB_LIMIT_IS_BOOL
        ? *(int *)((char *)&want + at) == *(int *)((char *)&req.limits + at)
        : *(uint64_t *)((char *)&want + at) == *(uint64_t *)((char *)&req.limits + at);
    }
    snprintf(what, sizeof what, "limits.%s: its member alone", d->key);
    ok(same, what);
    esb_request_release(&req);
    if (d->kind == ESB_LIMIT_IS_UINT && d->minimum > 0) {
      char want_err[200];
      snprintf(expr, sizeof expr, "{shell = 'x', limits = {%s = %llu}}", d->key, (unsigned long long)d->minimum - 1);
      snprintf(want_err, sizeof want_err, IR "'limits.%s' must be a positive integer (got %llu)", d->key,
               (unsigned long long)d->minimum - 1);
      snprintf(what, sizeof what, "limits.%s: below its minimum, refused", d->key);
      is_str(why(L, expr), want_err, what);
    }
  }
}

/* ---- results ---- */

static void results(lua_State *L) {
  struct esb_result r = ESB_RESULT_INIT;
  r.status = ESB_STATUS_EXITED;
  r.exit_code = 3;
  r.duration_ms = 12.34567;
  r.out.data = strdup("hi\n");
  r.out.len = 3;
  r.out.total = 3;
  r.err.data = strdup("\xff\xfe");
  r.err.len = 2;
  r.err.total = 10;
  r.reason = "bad \xff word";
  r.cpu_time_ms = 7;
  int top = lua_gettop(L);
  esb_lua_push_result(L, &r, 0);
  lua_setglobal(L, "r");
  ok(lua_gettop(L) == top, "push_result pushes one table");
  holds(L, "r.exit_code == 3 and r.status == 'exited' and r.timed_out == false and r.sandbox_type == 'local'",
        "exit code, status, timed_out, sandbox_type");
  holds(L, "r.stdout == 'hi\\n' and r.stdout_truncated == false and r.stdout_bytes == 3", "stdout as text");
  holds(L, "r.stderr == nil and r.stderr_base64 == '//4=' and r.stderr_truncated == true and r.stderr_bytes == 10",
        "stderr that is not UTF-8 as base64, truncated");
  holds(L, "r.reason == 'bad \\u{FFFD} word'", "words that are not UTF-8 are scrubbed");
  holds(L, "r.duration_ms == 12.346 and r.cpu_time_ms == 7 and r.memory_peak_bytes == nil and r.signal == nil",
        "duration to the microsecond; unknowns left out without a null");
  holds(L, "r.error == nil and r.files == nil and r.files_truncated == nil",
        "no error table, no files without collect");
  esb_result_release(&r);

  r = (struct esb_result)ESB_RESULT_INIT;
  esb_result_fail(&r, ESB_E_INVALID_REQUEST, "named \xc3 thing");
  r.retryable = true;
  r.files.wanted = true;
  if (esb_collected_push(&r.files, "bad\xff", 4, "x", 1, 1) < 0)
    abort();
  lua_pushlightuserdata(L, NULL);
  esb_lua_push_result(L, &r, -1);
  lua_setglobal(L, "r");
  lua_pop(L, 1);
  holds(L, "r.status == 'error' and r.error.code == 'invalid_request' and r.error.retryable == true and "
        "r.error.message == 'named \\u{FFFD} thing'", "an error: its code, retryable, the message scrubbed");
  holds(L, "r.signal == null and r.cpu_time_ms == null and r.memory_peak_bytes == null",
        "unknowns are the null value given");
  holds(L, "#r.files == 1 and r.files[1].path == nil and r.files[1].path_base64 == 'YmFk/w==' and "
        "r.files[1].base64 == 'eA==' and r.files[1].size == 1 and r.files_truncated == false",
        "a collected file whose name is not UTF-8: path_base64");
  esb_result_release(&r);

  esb_lua_push_base64(L, "", 0);
  is_str(lua_tostring(L, -1), "", "the base64 of nothing");
  esb_lua_push_base64(L, "ab", 2);
  is_str(lua_tostring(L, -1), "YWI=", "base64 with padding");
  lua_pop(L, 2);
}

/* The result's fields (engine/contract/result_fields.def). */
static const struct { const char *name; bool always; } result_fields[] = {
#define ESB_RESULT_FIELD(name, always, doc) {name, always},
#include "engine/contract/result_fields.def"
#undef ESB_RESULT_FIELD
};
#define N_RESULT_FIELDS (sizeof result_fields / sizeof result_fields[0])

/* Pushes r (nulls as a null value) and marks in seen[] each field of the
 * table it has; fails for a field that is not in the table, or an ALWAYS
 * one it lacks. */
static void result_shape(lua_State *L, struct esb_result *r, bool seen[N_RESULT_FIELDS], const char *shape) {
  char what[200];
  lua_pushlightuserdata(L, NULL);
  esb_lua_push_result(L, r, -1);
  bool here[N_RESULT_FIELDS] = {false};
  for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1)) {
    const char *key = lua_tostring(L, -2);
    size_t i = 0;
    while (i < N_RESULT_FIELDS && strcmp(result_fields[i].name, key) != 0)
      i++;
    snprintf(what, sizeof what, "%s: its field '%s' is in result_fields.def", shape, key);
    if (i == N_RESULT_FIELDS)
      ok(0, what);
    else
      here[i] = seen[i] = true;
  }
  lua_pop(L, 2);
  for (size_t i = 0; i < N_RESULT_FIELDS; i++) {
    snprintf(what, sizeof what, "%s: has '%s', a field of every result", shape, result_fields[i].name);
    if (result_fields[i].always)
      ok(here[i], what);
  }
  esb_result_release(r);
}

/* Every field esb_lua_push_result writes is a row of the table, in results
 * of each shape; each row is written by one of them. Checked: with "pod"
 * written as "pod_name", this fails for it both ways. */
static void table_results(lua_State *L) {
  bool seen[N_RESULT_FIELDS] = {false};
  struct esb_result r = ESB_RESULT_INIT;
  esb_result_exited(&r, 0);
  r.out.data = strdup("hi");
  r.out.len = r.out.total = 2;
  r.err.data = strdup("\xff");
  r.err.len = r.err.total = 1;
  r.isolation = "namespaces";
  snprintf(r.sandbox_name, sizeof r.sandbox_name, "echo-sandbox-x");
  snprintf(r.session, sizeof r.session, "0123456789abcdef0123456789abcdef");
  r.cleanup_error = strdup("x");
  esb_result_warn(&r, "x");
  r.fallback = strdup("x");
  r.egress.wanted = true;
  if (esb_egress_ledger_add(&r.egress, "pypi.org", 443) < 0)
    abort();
  r.warm = 1;
  snprintf(r.warm_pool, sizeof r.warm_pool, "shell");
  r.claim_ms = 12.5;
  result_shape(L, &r, seen, "an exit with every note");
  r = (struct esb_result)ESB_RESULT_INIT;
  esb_result_fail(&r, ESB_E_INVALID_REQUEST, "x");
  r.out.data = strdup("\xff");
  r.out.len = r.out.total = 1;
  r.files.wanted = true;
  if (esb_collected_push(&r.files, "f", 1, "x", 1, 1) < 0)
    abort();
  result_shape(L, &r, seen, "an error with collected files");
  for (size_t i = 0; i < N_RESULT_FIELDS; i++) {
    char what[200];
    snprintf(what, sizeof what, "result field '%s': written", result_fields[i].name);
    ok(seen[i], what);
  }
}

int main(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  requests(L);
  table_limits(L);
  results(L);
  table_results(L);
  lua_close(L);
  return tap_done();
}
