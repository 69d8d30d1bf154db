/* The reader of a policy's plan (src/policy/plan_reader.c): what the plan
 * hook returns becomes the struct esb_plan the backends run, so a bad
 * field must be refused with its name, what was expected and what was
 * there; the security-relevant ones (the ids, the mounts, the working dir,
 * code_file, the network ranges, the uid range) with hostile values.
 *
 * Checked: without the uid/gid 0 refusal in read_local, the root cases are
 * taken; without esb_rootfs_path_ok on the mounts or the working dir,
 * their '..', relative and trailing-'/' cases are taken; without
 * esb_file_path_ok on code_file, "../x" is taken; without the range end
 * check of read_uid_range, the range past 2^32 - 2 is taken; before
 * esb_read_net_ranges named a range with a NUL byte, its message was
 * uninitialised bytes (valgrind reported the read); valgrind
 * (CI) finds a refused plan's allocations freed by esb_plan_release.
 * Checked: with "kubeconfig" dropped from policy/plan_fields.def, the full
 * k8s table is refused naming 'k8s.kubeconfig'; with local's rows given the
 * table "k8s", every field of local is refused and 'k8s.uid' taken. */
#include "policy/plan_reader.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lua_expr.h"
#include "tap.h"

/* A plan: the fields of `extra` over a minimal valid one. */
static void push_plan(lua_State *L, const char *extra) {
  char expr[1500];
  snprintf(expr, sizeof expr, "(function(p) local plan = {argv = {'/bin/true'}, timeout_ms = 1000, limits = {}} "
           "for k, v in pairs(p) do plan[k] = v end return plan end)(%s)", extra);
  push(L, expr);
}

/* The message esb_read_plan gives for the plan ("" when it takes it). */
static const char *why(lua_State *L, const char *extra) {
  static struct esb_error err;
  int top = lua_gettop(L);
  push_plan(L, extra);
  struct esb_plan plan = ESB_PLAN_INIT;
  err = (struct esb_error)ESB_ERROR_INIT;
  if (esb_read_plan(L, &plan, &err) < 0 && !err.message[0])
    esb_error_set(&err, ESB_E_SYSTEM, "(refused without a message)");
  else if (err.message[0] && err.code != ESB_E_POLICY)
    esb_error_set(&err, ESB_E_SYSTEM, "(refused, not as the policy's error)");
  esb_plan_release(&plan);
  lua_pop(L, 1);
  return lua_gettop(L) == top ? err.message : "(the stack was not left as it was)";
}

#define BAD "policy hook 'plan' returned a bad field "
#define MOUNT_WANT "expected a host path and a sandbox path, each absolute without '.' or '..'"
#define CODE_FILE_WANT "expected a path relative to the working dir, without empty, '.' or '..' components, at " \
                       "most 1024 bytes and 255 a component"
#define NET_WANT "expected an array of address ranges such as \"10.1.0.0/16\""

static const struct { const char *plan, *want; } cases[] = {
  {"{}", ""},
  {"{argv = {}}", BAD "'argv': expected a non-empty array of strings without NUL bytes, got table"},
  {"{argv = 'sh'}", BAD "'argv': expected an array of strings without NUL bytes, got \"sh\""},
  {"{argv = {'a\\0b'}}", BAD "'argv': expected an array of strings without NUL bytes, got table"},
  {"{argv = {'sh', x = 'y'}}", BAD "'argv': expected an array of strings without NUL bytes, got table"},
  {"{timeout_ms = null}", BAD "'timeout_ms': expected a positive integer, got nothing"},
  {"{timeout_ms = 0}", BAD "'timeout_ms': expected a positive integer, got 0"},
  {"{timeout_ms = 1.5}", BAD "'timeout_ms': expected a positive integer, got 1.5"},
  {"{kill_grace_ms = -1}", BAD "'kill_grace_ms': expected a non-negative integer, got -1"},
  {"{kill_grace_ms = 0}", ""},
  {"{limits = null}", BAD "'limits': expected a table, got nothing"},
  {"{limits = 3}", BAD "'limits': expected a table, got 3"},
  {"{limits = {network = 1}}", BAD "'limits.network': expected a boolean, got 1"},
  {"{limits = {memory_bytes = -1}}", BAD "'limits.memory_bytes': expected a non-negative integer, got -1"},
  {"{backend = 'auto'}", BAD "'backend': expected \"local\" or \"k8s\", got \"auto\""},
  {"{backend = 'mars'}", BAD "'backend': expected \"local\" or \"k8s\", got \"mars\""},
  {"{fallback = 'k8s'}", BAD "'fallback': expected \"local\" or nil, got \"k8s\""},
  {"{env = {A = 1}}", BAD "'env': expected an object of strings, with names that are non-empty and without '=', "
   "got table"},
  {"{clamped = {1}}", BAD "'clamped': expected an array of strings without NUL bytes, got table"},
  {"{code_file = 'main.py'}", ""},
  {"{code_file = '../x'}", BAD "'code_file': " CODE_FILE_WANT ", got \"../x\""},
  {"{code_file = '/etc/profile'}", BAD "'code_file': " CODE_FILE_WANT ", got \"/etc/profile\""},
  {"{code_file = 'a/'}", BAD "'code_file': " CODE_FILE_WANT ", got \"a/\""},
  {"{code_file = 'a\\0/../x'}", BAD "'code_file': expected a string without NUL bytes, got \"a\\x00/../x\""},
  {"{files = {max_count = -1}}", BAD "'files.max_count': expected a non-negative integer, got -1"},
  {"{collect = {max_bytes = 'x'}}", BAD "'collect.max_bytes': expected a non-negative integer, got \"x\""},
  {"{['local'] = 3}", BAD "'local': expected a table, got 3"},
  {"{['local'] = {uid = 1000, gid = 1000}}", ""},
  {"{['local'] = {uid = 0}}", BAD "'local.uid': expected an id other than 0 (the program never runs as root), got 0"},
  {"{['local'] = {gid = 0}}", BAD "'local.gid': expected an id other than 0 (the program never runs as root), got 0"},
  {"{['local'] = {uid = -1}}", BAD "'local.uid': expected a non-negative integer, got -1"},
  {"{['local'] = {isolation = 'none'}}",
   BAD "'local.isolation': expected \"namespaces\", \"best_effort\" or \"rlimits\", got \"none\""},
  {"{['local'] = {seccomp = 'lax'}}", BAD "'local.seccomp': expected \"default\", \"strict\" or \"none\", got \"lax\""},
  {"{['local'] = {cgroups = 'y'}}", BAD "'local.cgroups': expected a boolean, got \"y\""},
  {"{['local'] = {working_dir = '/home/w'}}", ""},
  {"{['local'] = {working_dir = 'w'}}", BAD "'local.working_dir': expected an absolute path without '.' or '..', "
   "got \"w\""},
  {"{['local'] = {working_dir = '/w/../proc'}}", BAD "'local.working_dir': expected an absolute path without '.' "
   "or '..', got \"/w/../proc\""},
  {"{['local'] = {working_dir = '/w/'}}", BAD "'local.working_dir': expected an absolute path without '.' or '..', "
   "got \"/w/\""},
  {"{['local'] = {working_dir = '/'}}", BAD "'local.working_dir': expected an absolute path without '.' or '..', "
   "got \"/\""},
  {"{['local'] = {mounts = {'/usr', {host = '/srv/x', path = '/opt/x', writable = true}}}}", ""},
  {"{['local'] = {network_allow = {'10.1.0.0/16', 'fd12::/16'}}}", ""},
  {"{['local'] = {network_allow = '10.0.0.0/8'}}", BAD "'local.network_allow': " NET_WANT " (not an array), "
   "got \"10.0.0.0/8\""},
  {"{['local'] = {network_allow = {'10.1.2.0/16'}}}", BAD "'local.network_allow': " NET_WANT " ([1] '10.1.2.0/16': "
   "bits are set past the prefix length), got table"},
  {"{['local'] = {network_allow = {'10.0.0.0/8', 'x'}}}", BAD "'local.network_allow': " NET_WANT " ([2] 'x': not an "
   "IPv4 or IPv6 address), got table"},
  {"{['local'] = {network_allow = {1}}}", BAD "'local.network_allow': " NET_WANT " ([1] 'number': not a string), "
   "got table"},
  {"{['local'] = {uid_range = false}}", ""},
  {"{['local'] = {uid_range = {first = 100000, count = 65536}}}", ""},
  {"{['local'] = {uid_range = 3}}", BAD "'local.uid_range': expected a table, got 3"},
  {"{['local'] = {uid_range = {first = 0, count = 1}}}", BAD "'local.uid_range.first': expected a positive integer, "
   "got 0"},
  {"{['local'] = {uid_range = {first = 1, count = 0}}}", BAD "'local.uid_range.count': expected a positive integer, "
   "got 0"},
  {"{['local'] = {uid_range = {first = 4294967294, count = 1}}}", ""},
  {"{['local'] = {uid_range = {first = 4294967294, count = 2}}}", BAD "'local.uid_range.count': expected a positive "
   "number of uids that ends the range below 4294967295, got 2"},
  {"{['local'] = {uid_range = {first = 1, count = 1, x = 1}}}",
   "policy hook 'plan' returned an unknown field 'local.uid_range.x'"},
  /* A name policy/plan_fields.def does not have, in the table it is in:
   * refused, named with its table. */
  {"{timeout = 1000}", "policy hook 'plan' returned an unknown field 'timeout'"},
  {"{['local'] = {uid = 1000, isolaton = 'rlimits'}}", "policy hook 'plan' returned an unknown field 'local.isolaton'"},
  {"{['local'] = {image = 'x'}}", "policy hook 'plan' returned an unknown field 'local.image'"},
  {"{k8s = {image = 'x', memory = '1Gi'}}", "policy hook 'plan' returned an unknown field 'k8s.memory'"},
  {"{k8s = {uid = 1000}}", "policy hook 'plan' returned an unknown field 'k8s.uid'"},
  {"{k8s = 3}", BAD "'k8s': expected a table, got 3"},
  {"{k8s = {image = 'x', namespace = 'n', handshake = true, pod = {}, pod_running_timeout = '2m', "
   "delete_timeout_ms = 1, unschedulable_grace_ms = 1, not_ready_grace_ms = 1, context = 'c', kubeconfig = 'k'}}", ""},
  /* The mounts: an item's name is its index right after the array's. */
  {"{['local'] = {mounts = {'usr'}}}", BAD "'local.mounts[1]': " MOUNT_WANT ", got \"usr\""},
  {"{['local'] = {mounts = {'/usr', '/usr/../proc'}}}", BAD "'local.mounts[2]': " MOUNT_WANT ", got \"/usr/../proc\""},
  {"{['local'] = {mounts = {'/usr/'}}}", BAD "'local.mounts[1]': " MOUNT_WANT ", got \"/usr/\""},
  {"{['local'] = {mounts = {'//proc'}}}", BAD "'local.mounts[1]': " MOUNT_WANT ", got \"//proc\""},
  {"{['local'] = {mounts = {'/a\\0b'}}}", BAD "'local.mounts[1]': " MOUNT_WANT ", got \"/a\\x00b\""},
  {"{['local'] = {mounts = {{host = '/usr', path = 'usr'}}}}", BAD "'local.mounts[1]': " MOUNT_WANT ", got table"},
  {"{['local'] = {mounts = {{path = '/a'}}}}", BAD "'local.mounts[1]': " MOUNT_WANT ", got table"},
  {"{['local'] = {mounts = {{host = 3}}}}", BAD "'local.mounts[1].host': expected a string, got 3"},
  {"{['local'] = {mounts = {{host = '/usr', writable = 'yes'}}}}",
   BAD "'local.mounts[1].writable': expected a boolean, got \"yes\""},
  {"{['local'] = {mounts = {3}}}", BAD "'local.mounts[1]': expected a table, got 3"},
  {"{['local'] = {mounts = (function() local t = {} for i = 1, 257 do t[i] = '/x' end return t end)()}}",
   BAD "'local.mounts': expected at most 256 entries, got table"},
};

static void refusals(lua_State *L) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char what[600];
    snprintf(what, sizeof what, "%s: %s", cases[i].plan, cases[i].want[0] ? "refused" : "taken");
    is_str(why(L, cases[i].plan), cases[i].want, what);
  }
}

/* Each limit of the table (engine/contract/limits.def) under its policy
 * name lands where esb_plan_limit_offsets says and nowhere else; one the
 * plan leaves out keeps the table's default, or the plan's own. Checked:
 * with the reader writing memory_bytes through cpu_time_secs's offset, its
 * case fails. */
static void table_limits(lua_State *L) {
  struct esb_error err = ESB_ERROR_INIT;
  char expr[200], what[200];
  for (size_t i = 0; i < ESB_LIMIT__COUNT; i++) {
    const struct esb_limit_field *d = &esb_limit_fields[i];
    snprintf(expr, sizeof expr, "{limits = {%s = %s}}", d->plan_key, d->kind == ESB_LIMIT_IS_BOOL ? "true" : "7");
    push_plan(L, expr);
    struct esb_plan p = ESB_PLAN_INIT, want = ESB_PLAN_INIT;
    ok(esb_read_plan(L, &p, &err) == 0, expr);
    lua_pop(L, 1);
    for (size_t j = 0; j < ESB_LIMIT__COUNT; j++) { /* the others: their defaults */
      void *member = (char *)&want + esb_plan_limit_offsets[j];
      if (j == i && d->kind == ESB_LIMIT_IS_BOOL)
        *(bool *)member = true;
      else if (j == i)
        *(uint64_t *)member = 7;
      else if (esb_limit_fields[j].default_value)
        *(uint64_t *)member = esb_limit_fields[j].default_value;
    }
    bool same = p.local.limits.address_space == 0 && p.local.limits.file_size == 0; /* no rlimit of local's */
    for (size_t j = 0; j < ESB_LIMIT__COUNT; j++) { /* member by member: a struct's padding is no one's */
      size_t at = esb_plan_limit_offsets[j];
      same &= esb_limit_fields[j].kind == ESB_LIMIT_IS_BOOL
        ? *(bool *)((char *)&p + at) == *(bool *)((char *)&want + at)
        : *(uint64_t *)((char *)&p + at) == *(uint64_t *)((char *)&want + at);
    }
    snprintf(what, sizeof what, "limits.%s: its member, the others' defaults", d->plan_key);
    ok(same, what);
    esb_plan_release(&p);
  }
}

static void fields(lua_State *L) {
  push_plan(L, "{backend = 'k8s', fallback = 'local', argv = {'sh', '-c', 'x'}, env = {B = '2', A = '1'}, "
               "clamped = {}, working_dir = '/w', kill_grace_ms = 50, max_stream_bytes = 7, max_code_bytes = 8, "
               "code_file = 'src/main.py', files = {max_count = 3, max_bytes = 4}, "
               "collect = {max_count = 5, max_file_bytes = 6, max_bytes = 7}, "
               "limits = {max_output_bytes = 9, memory_bytes = 10, cpu_time_secs = 11, max_processes = 12, "
               "cpu_millicores = 13, network = true}, ['local'] = {uid = 1000, gid = 1001, isolation = 'rlimits', "
               "cgroups = false, seccomp = 'strict', tmp_size_bytes = 14, workdir_size_bytes = 15, "
               "working_dir = '/home/w', mounts = {'/usr', {host = '/srv/x', path = '/opt/x', writable = true}}, "
               "network_allow = {'10.1.0.0/16'}, uid_range = {first = 100000, count = 10}, "
               "file_size_bytes = 16, open_files = 17}}");
  struct esb_plan p = ESB_PLAN_INIT;
  struct esb_error err = ESB_ERROR_INIT;
  ok(esb_read_plan(L, &p, &err) == 0, "a full plan is read");
  if (err.message[0])
    printf("# %s\n", err.message);
  ok(p.backend == ESB_BACKEND_K8S && p.fallback_local, "backend and fallback");
  ok(p.argv && !strcmp(p.argv[2], "x") && !p.argv[3], "argv");
  ok(p.env && !strcmp(p.env[0], "A=1") && !strcmp(p.env[1], "B=2") && !p.env[2], "env, sorted");
  ok(p.clamped == NULL, "no clamped notes: NULL");
  is_str(p.working_dir, "/w", "the request's working dir");
  ok(p.timeout_ms == 1000 && p.kill_grace_ms == 50 && p.max_stream_bytes == 7 && p.max_code_bytes == 8,
     "the times and ceilings");
  is_str(p.code_file, "src/main.py", "code_file");
  ok(p.max_files == 3 && p.max_files_bytes == 4, "files' ceilings");
  ok(p.collect.max_count == 5 && p.collect.max_file_bytes == 6 && p.collect.max_bytes == 7, "collect's ceilings");
  ok(p.max_output_bytes == 9 && p.local.memory_bytes == 10 && p.local.limits.cpu_secs == 11 &&
     p.local.limits.processes == 12 && p.local.cpu_millicores == 13 && p.local.network, "the limits");
  ok(p.local.uid == 1000 && p.local.gid == 1001 && p.local.isolation == ESB_ISOLATION_RLIMITS && !p.local.cgroups &&
     p.local.seccomp == ESB_SECCOMP_STRICT, "the local sandbox's ids, isolation, cgroups and filter");
  ok(p.local.tmp_size_bytes == 14 && p.local.workdir_size_bytes == 15, "the tmpfs sizes");
  is_str(p.local.working_dir, "/home/w", "the sandbox's working dir");
  ok(p.local.n_mounts == 2 && !strcmp(p.local.mounts[0].host, "/usr") && !strcmp(p.local.mounts[0].path, "/usr") &&
     !p.local.mounts[0].writable, "a mount by its host path: the same path, read-only");
  ok(!strcmp(p.local.mounts[1].host, "/srv/x") && !strcmp(p.local.mounts[1].path, "/opt/x") &&
     p.local.mounts[1].writable, "a mount as a table");
  is_int(p.local.n_network_allow, 1, "the network ranges");
  ok(p.local.uid_first == 100000 && p.local.uid_count == 10, "the uid range");
  ok(p.local.limits.file_size == 16 && p.local.limits.open_files == 17 && p.local.limits.no_core,
     "the file limits; never a core file");
  esb_plan_release(&p);
  lua_pop(L, 1);

  push_plan(L, "{}");
  p = (struct esb_plan)ESB_PLAN_INIT;
  ok(esb_read_plan(L, &p, &err) == 0 && !strcmp(p.local.working_dir, "/work") && p.local.uid == 65534 &&
     p.local.isolation == ESB_ISOLATION_NAMESPACES && p.local.cgroups, "a minimal plan: the defaults, /work");
  esb_plan_release(&p);
  lua_pop(L, 1);

  table_limits(L);

  struct esb_net_range *ranges;
  size_t n;
  struct esb_error reason;
  push(L, "{'10.0.0.0/8', '::1/128'}");
  ok(esb_read_net_ranges(L, -1, &ranges, &n, &reason) == 0 && n == 2, "two ranges read");
  free(ranges);
  lua_pop(L, 1);
  push(L, "{}");
  ok(esb_read_net_ranges(L, -1, &ranges, &n, &reason) == 0 && n == 0, "no ranges");
  free(ranges);
  lua_pop(L, 1);
  push(L, "(function() local t = {} for i = 1, 257 do t[i] = '10.0.0.0/8' end return t end)()");
  ok(esb_read_net_ranges(L, -1, &ranges, &n, &reason) < 0 && !ranges && n == 0, "257 ranges refused");
  is_str(reason.message, "more than 256 entries", "and why");
  lua_pop(L, 1);
  push(L, "{'10.0.0.0/8', '10.0.0.0/8\\0junk'}");
  ok(esb_read_net_ranges(L, -1, &ranges, &n, &reason) < 0 && !ranges, "a range with a NUL refused");
  is_str(reason.message, "[2] '10.0.0.0/8': a NUL byte in it", "named by its index, and why");
  lua_pop(L, 1);
}

int main(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  refusals(L);
  fields(L);
  lua_close(L);
  return tap_done();
}
