#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char usage[] =
  "usage: echo-sandbox COMMAND [OPTIONS]\n"
  "\n"
  "Runs untrusted commands and code in a sandbox and reports what happened.\n"
  "\n"
  "commands:\n"
  "  run        run one request (flags, or request JSON on stdin with --json)\n"
  "  batch      run NDJSON requests, many at once, results as NDJSON\n"
  "  serve      an HTTP daemon: POST /v1/run, GET /healthz, GET /metrics\n"
  "  policy     explain what the policy makes of a request; check a policy file\n"
  "  cleanup    delete the expired pods an executor left on Kubernetes\n"
  "  doctor     check kubectl, the cluster, RBAC, the NetworkPolicy and local isolation\n"
  "\n"
  "echo-sandbox COMMAND --help describes a command.\n";

int main(int argc, char **argv) {
  /* A reader of our stdout that goes away must not kill us mid-cleanup. */
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fputs(usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    puts("echo-sandbox " ESB_VERSION);
    return 0;
  }
  if (strcmp(argv[1], "run") == 0)
    return esb_cli_run(argc - 1, argv + 1);
  if (strcmp(argv[1], "policy") == 0)
    return esb_cli_policy(argc - 1, argv + 1);
  if (strcmp(argv[1], "serve") == 0)
    return esb_cli_serve(argc - 1, argv + 1);
  if (strcmp(argv[1], "batch") == 0)
    return esb_cli_batch(argc - 1, argv + 1);
  if (strcmp(argv[1], "cleanup") == 0)
    return esb_cli_cleanup(argc - 1, argv + 1);
  if (strcmp(argv[1], "doctor") == 0)
    return esb_cli_doctor(argc - 1, argv + 1);
  fprintf(stderr, "echo-sandbox: unknown command '%s'\n%s", argv[1], usage);
  return 2;
}
