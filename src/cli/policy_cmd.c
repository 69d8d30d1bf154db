/* echo-sandbox policy explain | check: what a policy makes of requests,
 * without running anything. */
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "backend/k8s_command.h"
#include "backend/egress_proxy.h"
#include "backend/local.h"
#include "cli/warm_check.h"
#include "cli/cli.h"
#include "cli/request.h"
#include "luaglue/call.h"
#include "codec/json.h"
#include "engine/cgroup.h"
#include "engine/sandbox/netrules.h"
#include "engine/strv.h"
#include "codec/convert.h"
#include "policy/plan_reader.h"
#include "policy/policy.h"

static const char policy_usage[] =
  "usage: echo-sandbox policy explain [--policy FILE] [--backend local|k8s] [--json] [REQUEST FLAGS]\n"
  "       echo-sandbox policy explain [--policy FILE] [--json] < request.json\n"
  "       echo-sandbox policy check FILE\n"
  "       echo-sandbox policy languages [--policy FILE]\n"
  "\n"
  "explain evaluates the policy for a request (from the request flags of\n"
  "`echo-sandbox run`, or on stdin: a request object, or NDJSON, one request\n"
  "per line, each explained in turn) and prints the policy\n"
  "file, argv, environment, limits, and the local sandbox's settings or the\n"
  "image, pod override and exact kubectl command line. It runs nothing and\n"
  "needs no cluster. The pod name differs at every evaluation.\n"
  "\n"
  "check loads FILE and evaluates it for a set of sample requests on both\n"
  "backends, and its session hook for a sample session; it exits 0, or 1\n"
  "after listing the problems.\n"
  "\n"
  "languages prints the languages the policy knows as JSON, as the daemon's\n"
  "GET /v1/languages does: {\"languages\": [{\"name\", \"image\", \"file\"}, ...]}.\n";

/* Each subcommand's --help: the usage above and its own options (the
 * lines the bash completion reads them from). */
static const char explain_options[] =
  "\n"
  "options:\n"
  "  --json               print the explanation as a JSON object\n";
static const char languages_options[] =
  "\n"
  "options:\n"
  "  --policy FILE        load this policy instead of the default search\n";

static const char *const namespace_names[] = {"user", "mount", "pid", "net", "ipc", "uts"};

struct explanation {
  const char *policy_path;
  const struct esb_plan *plan;
  char **asked_egress; /* the request's limits.network.allow, or NULL */
  char **kubectl; /* NULL for local */
  struct esb_sandbox sandbox;
};

static void set_int(lua_State *L, const char *key, uint64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, key);
}

static void push_strv(lua_State *L, char **v) {
  lua_newtable(L);
  for (int i = 0; v && v[i]; i++) {
    lua_pushstring(L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

/* The filter's rows of the profile in words, one a call (*i from 0): buf,
 * or NULL after the last. */
static const char *seccomp_rule(enum esb_seccomp_profile profile, size_t *i, char *buf, size_t len) {
  for (const struct esb_seccomp_rule *r; (r = &esb_seccomp_rules[*i])->profiles; ++*i) {
    if (r->profiles & 1u << profile) {
      ++*i;
      esb_seccomp_rule_text(r, buf, len);
      return buf;
    }
  }
  return NULL;
}

void esb_cli_push_plan_limits(lua_State *L, const struct esb_plan *p) {
  lua_newtable(L);
  for (size_t i = 0; i < ESB_LIMIT__COUNT; i++) { /* under their policy names (engine/contract/limits.def) */
    const struct esb_limit_field *d = &esb_limit_fields[i];
    const void *member = (const char *)p + esb_plan_limit_offsets[i];
    if (d->kind == ESB_LIMIT_IS_BOOL) {
      lua_pushboolean(L, *(const bool *)member);
      lua_setfield(L, -2, d->plan_key);
    } else {
      set_int(L, d->plan_key, *(const uint64_t *)member);
    }
  }
}

/* The plan's limits as the "limits" field of the table on top. */
static void set_limits(lua_State *L, const struct esb_plan *p) {
  esb_cli_push_plan_limits(L, p);
  lua_setfield(L, -2, "limits");
}

/* The pod and the kubectl command line as the "k8s" field. */
static void set_k8s(lua_State *L, const struct explanation *x) {
  const struct esb_k8s_settings *k = &x->plan->k8s;
  lua_newtable(L);
  lua_pushstring(L, k->image);
  lua_setfield(L, -2, "image");
  lua_pushstring(L, k->namespace_);
  lua_setfield(L, -2, "namespace");
  lua_pushstring(L, k->pod_name);
  lua_setfield(L, -2, "pod_name");
  lua_pushboolean(L, k->handshake);
  lua_setfield(L, -2, "handshake");
  if (k->warm_pool) { /* the pool whose pod the run may take (absent: a pod is made for it) */
    lua_createtable(L, 0, 3);
    lua_pushstring(L, k->warm_pool);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, k->warm_hash);
    lua_setfield(L, -2, "hash");
    lua_pushinteger(L, (lua_Integer)k->warm_claim_grace_ms);
    lua_setfield(L, -2, "claim_grace_ms");
    lua_setfield(L, -2, "warm_pool");
  }
  esb_json_field(L, "decode");
  lua_pushstring(L, k->overrides_json);
  lua_call(L, 1, 1);
  lua_setfield(L, -2, "overrides");
  push_strv(L, x->kubectl);
  lua_setfield(L, -2, "kubectl");
  lua_setfield(L, -2, "k8s");
}

/* The sandbox's namespaces, uid and gid, and mounts, into the table on top. */
static void set_local_identity(lua_State *L, const struct esb_plan *p, const struct esb_sandbox *sb) {
  lua_newtable(L);
  for (int i = 0, n = 0; i < 6; i++) {
    if (sb->namespaces & (1u << i)) {
      lua_pushstring(L, namespace_names[i]);
      lua_rawseti(L, -2, ++n);
    }
  }
  lua_setfield(L, -2, "namespaces");
  set_int(L, "uid", p->local.uid);
  set_int(L, "gid", p->local.gid);
  if (p->local.uid_count) {
    lua_createtable(L, 0, 2);
    set_int(L, "first", p->local.uid_first);
    set_int(L, "count", p->local.uid_count);
    lua_setfield(L, -2, "uid_range");
  }
  lua_newtable(L);
  for (size_t i = 0; i < sb->n_mounts; i++) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, sb->mounts[i].host);
    lua_setfield(L, -2, "host");
    lua_pushstring(L, sb->mounts[i].path);
    lua_setfield(L, -2, "path");
    lua_pushboolean(L, sb->mounts[i].writable);
    lua_setfield(L, -2, "writable");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "mounts");
}

/* The cgroups, the network's allowed ranges and the seccomp filter, into
 * the table on top. */
static void set_local_confinement(lua_State *L, const struct esb_plan *p) {
  lua_pushboolean(L, p->local.cgroups);
  lua_setfield(L, -2, "cgroups");
  if (p->local.cgroups) {
    /* What this host would give a run: the hierarchy and its controllers. */
    struct esb_cgroup_host host;
    char text[1200];
    esb_cgroup_probe(&host);
    esb_cgroup_describe(&host, text, sizeof text);
    lua_pushstring(L, text);
    lua_setfield(L, -2, "cgroup");
  }
  if (p->local.network) {
    lua_newtable(L);
    for (size_t i = 0; i < p->local.n_network_allow; i++) {
      char range[64];
      esb_net_range_format(&p->local.network_allow[i], range, sizeof range);
      lua_pushstring(L, range);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "network_allow");
  }
  lua_pushstring(L, esb_seccomp_profile_name(p->local.seccomp));
  lua_setfield(L, -2, "seccomp");
  lua_newtable(L);
  char rule[ESB_MESSAGE_MAX];
  for (size_t i = 0, n = 1; seccomp_rule(p->local.seccomp, &i, rule, sizeof rule); n++) {
    lua_pushstring(L, rule);
    lua_rawseti(L, -2, (lua_Integer)n);
  }
  lua_setfield(L, -2, "seccomp_rules");
}

/* The local sandbox's settings as the "local" field. */
static void set_local(lua_State *L, const struct explanation *x) {
  const struct esb_plan *p = x->plan;
  const struct esb_sandbox *sb = &x->sandbox;
  lua_newtable(L);
  lua_pushstring(L, esb_isolation_name(p->local.isolation));
  lua_setfield(L, -2, "isolation");
  set_local_identity(L, p, sb);
  if (sb->workdir) {
    lua_pushstring(L, sb->workdir);
    lua_setfield(L, -2, "working_dir");
  }
  set_int(L, "workdir_size_bytes", sb->workdir_size_bytes);
  set_local_confinement(L, p);
  set_int(L, "tmp_size_bytes", sb->tmp_size_bytes);
  lua_newtable(L);
  set_int(L, "address_space", sb->limits.address_space);
  set_int(L, "cpu_secs", sb->limits.cpu_secs);
  set_int(L, "file_size", sb->limits.file_size);
  set_int(L, "open_files", sb->limits.open_files);
  set_int(L, "processes", sb->limits.processes);
  lua_setfield(L, -2, "rlimits");
  lua_setfield(L, -2, "local");
}

/* The explanation as a Lua table (runs protected). */
static int push_explanation(lua_State *L) {
  const struct explanation *x = lua_touserdata(L, 1);
  const struct esb_plan *p = x->plan;
  lua_newtable(L);
  lua_pushstring(L, x->policy_path);
  lua_setfield(L, -2, "policy");
  lua_pushstring(L, esb_backend_name(p->backend));
  lua_setfield(L, -2, "backend");
  push_strv(L, p->argv);
  lua_setfield(L, -2, "argv");
  if (p->code_file) {
    lua_pushstring(L, p->code_file);
    lua_setfield(L, -2, "code_file");
  }
  lua_newtable(L);
  for (char **e = p->env; e && *e; e++) {
    const char *eq = strchr(*e, '=');
    lua_pushlstring(L, *e, (size_t)(eq - *e));
    lua_pushstring(L, eq + 1);
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, "env");
  if (p->working_dir) {
    lua_pushstring(L, p->working_dir);
    lua_setfield(L, -2, "working_dir");
  }
  set_int(L, "timeout_ms", p->timeout_ms);
  set_int(L, "kill_grace_ms", p->kill_grace_ms);
  set_limits(L, p);
  if (p->clamped) {
    push_strv(L, p->clamped);
    lua_setfield(L, -2, "clamped");
  }
  if (p->egress_allow) { /* the list the run gets, and what the request asked */
    lua_newtable(L);
    push_strv(L, p->egress_allow);
    lua_setfield(L, -2, "allow");
    push_strv(L, p->egress_deny ? p->egress_deny : (char *[]){NULL});
    lua_setfield(L, -2, "deny");
    push_strv(L, x->asked_egress ? x->asked_egress : (char *[]){NULL});
    lua_setfield(L, -2, "asked");
    lua_newtable(L); /* credentials added outside: by host, the header and the secret's name, never its value */
    for (size_t i = 0; i < p->n_egress_inject; i++) {
      lua_newtable(L);
      lua_pushstring(L, p->egress_inject[i].header);
      lua_setfield(L, -2, "header");
      lua_pushstring(L, p->egress_inject[i].secret);
      lua_setfield(L, -2, "secret");
      lua_setfield(L, -2, p->egress_inject[i].host);
    }
    lua_setfield(L, -2, "inject");
    if (p->egress_k8s.proxy) { /* the k8s backend's shared proxy */
      lua_pushstring(L, p->egress_k8s.proxy);
      lua_setfield(L, -2, "proxy");
    }
    lua_setfield(L, -2, "egress");
  }
  if (x->kubectl)
    set_k8s(L, x);
  else
    set_local(L, x);
  return 1;
}

/* network: true, as the run will have it (backend/netstack.h). */
static void print_network(const struct esb_local_settings *ls) {
  size_t n;
  const struct esb_net_range *blocked = esb_netrules_blocked(&n);
  printf("network     its own namespace behind pasta (not root where /dev/net/tun is open to the run's uid);\n"
         "            refused: the host's own addresses (at run start)");
  for (size_t i = 0; i < n; i++) {
    char range[64];
    esb_net_range_format(&blocked[i], range, sizeof range);
    printf("%s%s", i % 6 ? ", " : ",\n            ", range);
  }
  printf("\n            unless allowed:");
  for (size_t i = 0; i < ls->n_network_allow; i++) {
    char range[64];
    esb_net_range_format(&ls->network_allow[i], range, sizeof range);
    printf(" %s", range);
  }
  printf("%s\n", ls->n_network_allow ? "" : " none (local_sandbox.network_allow)");
  printf("            the same on every packet, whatever its route (nf_tables, output hook); broadcast never\n");
}

/* One line of names, or "none". */
static void print_names(const char *label, char **names) {
  printf("\n            %s", label);
  for (char **e = names; e && *e; e++)
    printf(" %s", *e);
  printf("%s", names && *names ? "" : " none");
}

/* The network by name (backend/egress_proxy.h): the list the run gets,
 * and what the request asked of it. */
static void print_egress(const struct explanation *x) {
  if (x->plan->backend == ESB_BACKEND_K8S) /* backend/egress_token.h */
    printf("egress      the pod reaches the shared egress proxy %s alone (label echo-sandbox.io/network=egress),\n"
           "            with a token signed for the run (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY); the proxy resolves\n"
           "            and connects: these names only, at public addresses only", x->plan->egress_k8s.proxy);
  else
    printf("egress      loopback only; the engine's proxy at %s (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY) resolves\n"
           "            and connects: these names only, at public addresses only (as network: true refuses)",
           ESB_EGRESS_PROXY_URL);
  print_names("allowed:", x->plan->egress_allow);
  print_names("denied: ", x->plan->egress_deny);
  print_names("asked:  ", x->asked_egress);
  for (size_t i = 0; i < x->plan->n_egress_inject; i++)
    printf("\n            injected: %s gets %s from secret %s (TLS terminated with the run's CA)",
           x->plan->egress_inject[i].host, x->plan->egress_inject[i].header, x->plan->egress_inject[i].secret);
  printf("\n");
}

/* Words a shell would read back as the same argv. */
static void print_quoted(char **argv) {
  for (int i = 0; argv[i]; i++) {
    const char *a = argv[i];
    bool plain = *a && strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "0123456789_./:=@%+,-") == strlen(a);
    fputs(i ? " " : "", stdout);
    if (plain) {
      fputs(a, stdout);
      continue;
    }
    putchar('\'');
    for (; *a; a++)
      fputs(*a == '\'' ? "'\\''" : (char[2]){*a, 0}, stdout);
    putchar('\'');
  }
  putchar('\n');
}

/* The pod, the warm pool it may take a pod of, and kubectl's line. */
static void print_k8s(const struct explanation *x) {
  const struct esb_k8s_settings *k = &x->plan->k8s;
  printf("image       %s\nnamespace   %s\npod         %s\nhandshake   %s\n", k->image, k->namespace_,
         k->pod_name, k->handshake ? "yes" : "no");
  if (k->warm_pool)
    printf("warm pool   %s (hash %s): a ready pod of it is claimed within %llu ms, else the pod below is made\n",
           k->warm_pool, k->warm_hash, (unsigned long long)k->warm_claim_grace_ms);
  else
    printf("warm pool   none of the policy's pools has this pod's shape: the pod below is made\n");
  printf("overrides   %s\nkubectl     ", k->overrides_json);
  print_quoted(x->kubectl);
}

static void print_text(const struct explanation *x) {
  const struct esb_plan *p = x->plan;
  printf("policy      %s\nbackend     %s\nargv        ", x->policy_path, esb_backend_name(p->backend));
  print_quoted(p->argv);
  if (p->code_file)
    printf("code file   %s in the working dir (the request's code)\n", p->code_file);
  printf("env        ");
  for (char **e = p->env; e && *e; e++)
    printf(" %s", *e);
  printf("\nworking dir %s\n", p->working_dir ? p->working_dir : p->local.working_dir);
  printf("timeout     %llu ms, then SIGTERM and SIGKILL %llu ms later\n",
         (unsigned long long)p->timeout_ms, (unsigned long long)p->kill_grace_ms);
  printf("limits      memory %llu bytes, cpu %llu s, cpu rate %llum (cores x 1000), output %llu bytes per "
         "stream, processes %llu, network %s\n",
         (unsigned long long)p->local.memory_bytes, (unsigned long long)p->local.limits.cpu_secs,
         (unsigned long long)p->local.cpu_millicores, (unsigned long long)p->max_output_bytes,
         (unsigned long long)p->local.limits.processes, p->local.network ? "on" : "off");
  for (char **note = p->clamped; note && *note; note++)
    printf("clamped     %s\n", *note);
  if (x->kubectl) {
    if (p->egress_allow)
      print_egress(x);
    print_k8s(x);
    return;
  }
  const struct esb_sandbox *sb = &x->sandbox;
  printf("isolation   %s, namespaces:", esb_isolation_name(p->local.isolation));
  for (int i = 0; i < 6; i++)
    if (sb->namespaces & (1u << i))
      printf(" %s", namespace_names[i]);
  printf("%s\nuid/gid     %u/%u\n", sb->namespaces ? "" : " none",
         (unsigned)p->local.uid, (unsigned)p->local.gid);
  if (p->local.uid_count)
    printf("host uid    its own per live run, of %llu..%llu, when the engine is root (doctor says)\n",
           (unsigned long long)p->local.uid_first,
           (unsigned long long)(p->local.uid_first + p->local.uid_count - 1));
  if (sb->namespaces & ESB_NS_MOUNT) {
    printf("filesystem  a root of its own, read-only: a fresh /dev, its own /proc, no /sys, generated\n"
           "            /etc/passwd, group and hosts; /tmp and /dev/shm private %llu-byte tmpfs; the working\n"
           "            dir %s a private %llu-byte tmpfs; of the host only:\n",
           (unsigned long long)sb->tmp_size_bytes, sb->workdir, (unsigned long long)sb->workdir_size_bytes);
    for (size_t i = 0; i < sb->n_mounts; i++) {
      const struct esb_mount *m = &sb->mounts[i];
      if (strcmp(m->host, m->path))
        printf("mount       %s at %s, %s\n", m->host, m->path, m->writable ? "writable" : "read-only");
      else
        printf("mount       %s, %s\n", m->host, m->writable ? "writable" : "read-only");
    }
  } else {
    printf("filesystem  the host's, as uid %u; a fresh working dir under $TMPDIR\n", (unsigned)p->local.uid);
  }
  if (p->local.cgroups) {
    /* Probed, not made: explain changes nothing on the host. */
    struct esb_cgroup_host host;
    char text[1200];
    esb_cgroup_probe(&host);
    esb_cgroup_describe(&host, text, sizeof text);
    printf("cgroups     %s%s\n", text,
           host.version == ESB_CGROUP_NONE ? " (so memory by RLIMIT_AS, no CPU rate limit, CPU time per process)"
                                           : " (then no RLIMIT_AS; CPU time counts the whole run)");
  } else {
    printf("cgroups     off (memory by RLIMIT_AS, no CPU rate limit, CPU time per process)\n");
  }
  if (p->local.network && (sb->namespaces & ESB_NS_NET))
    print_network(&p->local);
  if (p->egress_allow)
    print_egress(x);
  printf("seccomp     %s%s%s\n", esb_seccomp_profile_name(p->local.seccomp),
         p->local.seccomp == ESB_SECCOMP_NONE ? " (no system-call filter)" : "",
         sb->namespaces & ESB_NS_USER ? "; no nested user namespaces" : "");
  char rule[ESB_MESSAGE_MAX];
  for (size_t i = 0; seccomp_rule(p->local.seccomp, &i, rule, sizeof rule);)
    printf("filter      %s\n", rule);
  printf("rlimits     as %llu, cpu %llu s, fsize %llu, nofile %llu, nproc %llu, core 0\n",
         (unsigned long long)sb->limits.address_space, (unsigned long long)sb->limits.cpu_secs,
         (unsigned long long)sb->limits.file_size, (unsigned long long)sb->limits.open_files,
         (unsigned long long)sb->limits.processes);
}

/* Explains the request table on top of the stack (and pops it); where
 * ("line N: " or "") starts its error messages. */
static int explain_one(lua_State *L, struct esb_policy *policy, const struct esb_cli_options *o,
                       const char *where) {
  struct esb_error err;
  struct esb_request req = ESB_REQUEST_INIT;
  struct esb_plan plan = ESB_PLAN_INIT;
  struct explanation x = { 0 };
  int rc = 125;
  int bad = esb_lua_to_request(L, -1, &req, &err);
  lua_pop(L, 1);
  if (bad < 0) {
    fprintf(stderr, "echo-sandbox: %s%s\n", where, err.message);
    return rc;
  }
  req.stdin_fd = o->stdin_fd; /* its size, for the policy's stdin_bytes */
  /* --backend wins over a request's own, on stdin too: it is what the
   * command line asks to have explained. */
  if (o->backend && esb_backend_parse(o->backend, &req.backend) < 0) {
    fprintf(stderr, "echo-sandbox: --backend %s: expected auto, local or k8s\n", o->backend);
    goto out;
  }
  if (esb_policy_plan(policy, &req, &plan, req.backend == ESB_BACKEND_K8S, &err) < 0) {
    fprintf(stderr, "echo-sandbox: %s%s: %s\n", where, esb_error_name(err.code), err.message);
    goto out;
  }
  x.policy_path = esb_policy_path(policy);
  x.plan = &plan;
  x.asked_egress = req.egress_allow;
  if (plan.backend == ESB_BACKEND_K8S) {
    if (!(x.kubectl = esb_k8s_run_argv(&plan))) {
      fprintf(stderr, "echo-sandbox: out of memory\n");
      goto out;
    }
  } else {
    esb_local_sandbox_for(&plan, false, &x.sandbox);
  }
  if (o->json) {
    lua_pushcfunction(L, push_explanation);
    lua_pushlightuserdata(L, &x);
    struct esb_error failed;
    if (esb_lua_pcall(L, 1, 1, ESB_LUA_MESSAGE, ESB_E_SYSTEM, NULL, &failed) < 0) {
      fprintf(stderr, "echo-sandbox: %s\n", failed.message);
      goto out;
    }
    esb_json_print(L);
  } else {
    print_text(&x);
  }
  rc = 0;
out:
  esb_strv_free(x.kubectl);
  esb_plan_release(&plan);
  esb_request_release(&req);
  return rc;
}

static int explain(int argc, char **argv) {
  char usage[4096];
  struct esb_error err;
  snprintf(usage, sizeof usage, "%s%s%s", policy_usage, explain_options, esb_cli_request_flags_help);
  struct esb_cli_options o = { 0 };
  struct esb_policy *policy = NULL;
  lua_State *L = NULL;
  int rc = esb_cli_parse(argc, argv, &o, usage);
  if (rc >= 0)
    goto out;
  rc = 125;
  if (!(L = esb_json_state())) {
    fprintf(stderr, "echo-sandbox: out of memory\n");
    goto out;
  }
  if (esb_cli_read_request_list(L, &o, &err) < 0 || !(policy = esb_policy_open(o.policy, &err))) {
    fprintf(stderr, "echo-sandbox: %s\n", err.message);
    goto out;
  }
  lua_Unsigned n = lua_rawlen(L, -1);
  lua_getfield(L, -1, "lines"); /* requests, lines (NDJSON) or nil */
  lua_insert(L, -2);            /* lines, requests */
  rc = 0;
  for (lua_Unsigned i = 1; i <= n; i++) {
    char where[64] = "";
    if (lua_istable(L, -2)) {
      lua_rawgeti(L, -2, (lua_Integer)i);
      snprintf(where, sizeof where, "line %lld: ", (long long)lua_tointeger(L, -1));
      lua_pop(L, 1);
    }
    if (lua_rawgeti(L, -1, (lua_Integer)i) == LUA_TSTRING) { /* a line that is not JSON */
      fprintf(stderr, "echo-sandbox: %s\n", lua_tostring(L, -1));
      lua_pop(L, 1);
      rc = 125;
    } else if (explain_one(L, policy, &o, where) != 0) {
      rc = 125;
    }
  }
out:
  esb_policy_close(policy);
  if (L)
    lua_close(L);
  esb_cli_options_release(&o);
  return rc;
}

/* Requests every policy must be able to plan. */
static const char *const samples[] = {
  "{\"language\":\"python\",\"code\":\"print(6*7)\"}",
  "{\"language\":\"node\",\"code\":\"console.log(42)\",\"args\":[\"x\"]}",
  "{\"language\":\"sh\",\"code\":\"echo hi\",\"env\":{\"A\":\"b\"}}",
  "{\"shell\":\"ls -la /\"}",
  "{\"shell\":\"/usr/bin/env python3 -V\"}",
  "{\"program\":\"/usr/bin/python3\",\"args\":[\"-V\"]}",
  "{\"program\":\"cat\",\"stdin\":\"hello\"}",
  "{\"shell\":\"true\",\"timeout_ms\":1500,\"limits\":{\"memory_bytes\":134217728,"
    "\"cpu_time_secs\":5,\"max_output_bytes\":4096,\"max_processes\":8}}",
  "{\"shell\":\"curl -sI http://example.com\",\"limits\":{\"network\":true}}",
  "{\"shell\":\"echo tenant\",\"labels\":{\"tenant\":\"team-a\"}}",
};

/* The session hook, for a create request with a tenant's label: a fault
 * of the hook shows here, not at the first session. 1 for a problem. */
static int check_session(struct esb_policy *policy) {
  char label[] = "tenant=team-a", *labels[] = { label, NULL };
  struct esb_request req = ESB_REQUEST_INIT;
  req.labels = labels;
  req.nlabels = 1;
  uint64_t by_label[1] = { 0 };
  struct esb_session_ask ask = { .req = &req };
  struct esb_session_known known = { .by_label = by_label };
  struct esb_session_decision d;
  struct esb_error err;
  int rc = esb_policy_session(policy, &ask, &known, &d, &err);
  esb_session_decision_release(&d);
  if (rc < 0 && err.code != ESB_E_INVALID_REQUEST) {
    printf("problem  session {\"labels\":{\"tenant\":\"team-a\"}}: %s\n", err.message);
    return 1;
  }
  printf("%s session {\"labels\":{\"tenant\":\"team-a\"}}%s%s\n", rc < 0 ? "rejects " : "ok      ",
         rc < 0 ? ": " : "", rc < 0 ? err.message : "");
  return 0;
}

static void warn_unreached(const char *pool, size_t tried, void *userdata) {
  (void)userdata;
  char words[512];
  esb_cli_unreached_words(pool, tried, words, sizeof words);
  printf("warn     %s\n", words);
}

static int check(int argc, char **argv) {
  if (argc != 2 || argv[1][0] == '-') {
    fputs(policy_usage, argc == 2 && !strcmp(argv[1], "--help") ? stdout : stderr);
    return argc == 2 && !strcmp(argv[1], "--help") ? 0 : 125;
  }
  struct esb_error err;
  struct esb_policy *policy = esb_policy_open(argv[1], &err);
  if (!policy) {
    fprintf(stderr, "problem: %s\n", err.message);
    return 1;
  }
  lua_State *L = esb_json_state();
  int problems = 0, checked = 0;
  static const enum esb_backend backends[] = {ESB_BACKEND_LOCAL, ESB_BACKEND_K8S};
  for (size_t i = 0; L && i < sizeof samples / sizeof samples[0]; i++) {
    for (size_t b = 0; b < 2; b++) {
      struct esb_request req = ESB_REQUEST_INIT;
      struct esb_plan plan = ESB_PLAN_INIT;
      int bad = esb_json_decode(L, samples[i], strlen(samples[i]), &err) < 0;
      if (!bad) {
        bad = esb_lua_to_request(L, -1, &req, &err) < 0;
        lua_pop(L, 1);
      }
      if (bad) {
        fprintf(stderr, "problem: sample %s: %s\n", samples[i], err.message);
        problems++;
        continue;
      }
      req.backend = backends[b];
      int planned = esb_policy_plan(policy, &req, &plan, true, &err);
      checked++;
      if (planned < 0 && err.code == ESB_E_INVALID_REQUEST) {
        printf("rejects  %-5s %s: %s\n", esb_backend_name(backends[b]), samples[i], err.message);
      } else if (planned < 0) {
        printf("problem  %-5s %s: %s\n", esb_backend_name(backends[b]), samples[i], err.message);
        problems++;
      } else {
        printf("ok       %-5s %s\n", esb_backend_name(backends[b]), samples[i]);
      }
      esb_plan_release(&plan);
      esb_request_release(&req);
    }
  }
  problems += check_session(policy);
  if (esb_cli_unreached_pools(policy, warn_unreached, NULL, &err) < 0) {
    printf("problem  warm pools: %s\n", err.message);
    problems++;
  }
  printf("%s: %d sample plans and a session, %d problem%s\n", esb_policy_path(policy), checked, problems,
         problems == 1 ? "" : "s");
  if (L)
    lua_close(L);
  esb_policy_close(policy);
  return problems ? 1 : 0;
}

/* policy languages [--policy FILE] */
static int languages(int argc, char **argv) {
  static const struct option longopts[] = {
    {"policy", required_argument, 0, 'p'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  const char *path = NULL;
  optind = 1;
  opterr = 0;
  for (int c; (c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1;) {
    if (c == 'p') {
      path = optarg;
    } else if (c == 'h') {
      printf("%s%s", policy_usage, languages_options);
      return 0;
    } else {
      fprintf(stderr, "echo-sandbox policy languages: unknown or incomplete option '%s'\n%s%s", argv[optind - 1],
              policy_usage, languages_options);
      return 125;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "echo-sandbox policy languages: expected no operand, got '%s'\n", argv[optind]);
    return 125;
  }
  struct esb_error err;
  struct esb_policy *policy = esb_policy_open(path, &err);
  lua_State *L = policy ? esb_json_state() : NULL;
  struct esb_language *list = NULL;
  size_t n = 0;
  int rc = 125;
  if (!policy)
    fprintf(stderr, "echo-sandbox: %s\n", err.message);
  else if (!L)
    fprintf(stderr, "echo-sandbox: out of memory\n");
  else if (esb_policy_languages(policy, &list, &n, &err) < 0)
    fprintf(stderr, "echo-sandbox: %s\n", err.message);
  else if (esb_json_push_languages(L, list, n) < 0)
    fprintf(stderr, "echo-sandbox: out of memory\n");
  else {
    esb_json_print(L);
    rc = 0;
  }
  esb_languages_free(list, n);
  if (L)
    lua_close(L);
  if (policy)
    esb_policy_close(policy);
  return rc;
}

int esb_cli_policy(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "languages"))
    return languages(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "explain"))
    return explain(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "check"))
    return check(argc - 1, argv + 1);
  bool help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
  fprintf(help ? stdout : stderr, "%s%s", policy_usage, explain_options);
  return help ? 0 : 125;
}
