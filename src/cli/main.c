#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/sandbox/spawn.h"

/* The commands: the table the dispatch and the usage text share. */
static const struct command {
  const char *name;
  int (*main)(int argc, char **argv);
  const char *summary;
} commands[] = {
  {"run", esb_cli_run, "run one request (flags, or request JSON on stdin with --json)"},
  {"batch", esb_cli_batch, "run NDJSON requests, many at once, results as NDJSON"},
  {"serve", esb_cli_serve, "an HTTP daemon: POST /v1/run, GET /v1/languages, /healthz, /readyz, /metrics"},
  {"session", esb_cli_session, "a sandbox that lives: create, run in it, ls, show, rm"},
  {"policy", esb_cli_policy, "explain what the policy makes of a request; check a policy file"},
  {"pool", esb_cli_pool, "keep the policy's warm pods on Kubernetes (pool run), show them (pool status)"},
  {"cleanup", esb_cli_cleanup, "delete the expired pods an executor left on Kubernetes"},
  {"doctor", esb_cli_doctor, "check kubectl, the cluster, RBAC, the NetworkPolicy and local isolation"},
};

static void print_usage(FILE *to) {
  fputs("usage: echo-sandbox COMMAND [OPTIONS]\n\n"
        "Runs untrusted commands and code in a sandbox and reports what happened.\n\ncommands:\n", to);
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(to, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fputs("\necho-sandbox COMMAND --help describes a command.\n", to);
}

int main(int argc, char **argv) {
  /* A reader of our stdout that goes away must not kill us mid-cleanup. */
  signal(SIGPIPE, SIG_IGN);
  /* We reap no child we did not start: sandboxes may start in
   * echo-sandbox-init (engine/sandbox/spawn.h, esb_init_program). */
  esb_spawn_use_init(true);
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    print_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    puts("echo-sandbox " ESB_VERSION);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(argv[1], commands[i].name) == 0)
      return commands[i].main(argc - 1, argv + 1);
  fprintf(stderr, "echo-sandbox: unknown command '%s'\n", argv[1]);
  print_usage(stderr);
  return 2;
}
