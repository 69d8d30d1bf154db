/* echo-sandbox-egress PID: the egress proxy (backend/egress_proxy.h) of the
 * run whose sandbox's pid 1 is PID, in a process of its own; the engine
 * starts one per run with an allow list and talks with it on its stdin and
 * stdout (backend/egress_helper.h has the words). It listens in the run's
 * network namespace, says "ready", serves until its stdin ends, then writes
 * the run's ledger and exits. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/egress_proxy.h"
#include "engine/sandbox/netrules.h"
#include "engine/strv.h"

#define LINE_MAX_BYTES 512

/* The lists the engine says, into plan's fields (allocated). 0, or -1 with
 * err. */
static int read_lists(FILE *in, struct esb_plan *plan, struct esb_error *err) {
  struct esb_strv allow = ESB_STRV_INIT, deny = ESB_STRV_INIT;
  char line[LINE_MAX_BYTES];
  while (fgets(line, sizeof line, in)) {
    line[strcspn(line, "\n")] = '\0';
    if (strcmp(line, "end") == 0) {
      plan->egress_allow = esb_strv_detach(&allow);
      plan->egress_deny = esb_strv_detach(&deny);
      return 0;
    }
    char *value = strchr(line, ' ');
    if (!value)
      break;
    *value++ = '\0';
    if (strcmp(line, "allow") == 0 || strcmp(line, "deny") == 0) {
      if (esb_strv_push(strcmp(line, "allow") == 0 ? &allow : &deny, value) < 0)
        break;
    } else if (strcmp(line, "net_allow") == 0) {
      struct esb_net_range *r = realloc(plan->local.network_allow,
                                        (plan->local.n_network_allow + 1) * sizeof *r);
      if (!r)
        break;
      plan->local.network_allow = r;
      if (esb_net_range_parse(value, &r[plan->local.n_network_allow], err) < 0)
        return -1;
      plan->local.n_network_allow++;
    } else {
      break;
    }
  }
  esb_strv_clear(&allow);
  esb_strv_clear(&deny);
  return esb_error_set(err, ESB_E_SANDBOX_SETUP, "egress proxy: the engine's lists ended early or were not ours");
}

static void write_ledger(const struct esb_egress_ledger *l) {
  printf("left_off %llu\n", (unsigned long long)l->left_off);
  for (size_t i = 0; i < l->n; i++) {
    const struct esb_egress_attempt *a = &l->v[i];
    size_t len = strlen(a->host);
    printf("attempt %u %u %llu %llu %zu\n", (unsigned)a->reason, a->port, (unsigned long long)a->bytes_out,
           (unsigned long long)a->bytes_in, len);
    fwrite(a->host, 1, len, stdout);
    putchar('\n');
  }
  puts("end");
  fflush(stdout);
}

int main(int argc, char **argv) {
  /* A relay's write to a connection its program closed is an error of that
   * connection, not our end. */
  signal(SIGPIPE, SIG_IGN);
  char *end;
  long pid = argc == 2 ? strtol(argv[1], &end, 10) : 0;
  if (argc != 2 || *end || pid <= 0) {
    fprintf(stderr, "usage: echo-sandbox-egress PID (the engine starts it: backend/egress_helper.h)\n");
    return 2;
  }
  struct esb_plan plan = ESB_PLAN_INIT;
  struct esb_egress_proxy proxy = ESB_EGRESS_PROXY_INIT;
  struct esb_error err = ESB_ERROR_INIT;
  if (read_lists(stdin, &plan, &err) < 0 || esb_egress_proxy_prepare(&proxy, &plan, &err) < 0 ||
      esb_egress_proxy_start(&proxy, (pid_t)pid, &err) < 0) {
    char message[sizeof err.message];
    snprintf(message, sizeof message, "%s", err.message);
    message[strcspn(message, "\n")] = '\0';
    printf("error %d %s\n", (int)err.code, message);
    return 1;
  }
  puts("ready");
  fflush(stdout);
  char buf[64];
  while (fread(buf, 1, sizeof buf, stdin) > 0 || (ferror(stdin) && errno == EINTR && (clearerr(stdin), 1)))
    ; /* until the engine's stop: our stdin's end */
  struct esb_egress_ledger ledger = { 0 };
  esb_egress_proxy_release(&proxy, &ledger);
  write_ledger(&ledger);
  esb_egress_ledger_release(&ledger);
  esb_strv_free(plan.egress_allow);
  esb_strv_free(plan.egress_deny);
  free(plan.local.network_allow);
  return 0;
}
