#include "backend/egress_token.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/contract/egress.h"
#include "engine/strv.h"

static const char form[] = "echo-sandbox-egress 1";

/* A value that may stand in a line of the grant: no space, no newline. */
static bool word_ok(const char *s) {
  return s && *s && !strpbrk(s, " \n\r");
}

char *esb_egress_grant_text(const struct esb_plan *plan, const char *run, int64_t expires) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  bool ok = f && word_ok(run) && strlen(run) <= ESB_EGRESS_RUN_MAX;
  if (f)
    fprintf(f, "%s\nrun %s\nexpires %" PRId64 "\n", form, run ? run : "", expires);
  for (char **e = plan->egress_allow; ok && e && *e; e++)
    ok = word_ok(*e) && fprintf(f, "allow %s\n", *e) > 0;
  for (char **e = plan->egress_deny; ok && e && *e; e++)
    ok = word_ok(*e) && fprintf(f, "deny %s\n", *e) > 0;
  for (size_t i = 0; ok && i < plan->n_egress_inject; i++) {
    const struct esb_egress_inject *e = &plan->egress_inject[i];
    ok = word_ok(e->host) && word_ok(e->header) && word_ok(e->secret) &&
         fprintf(f, "inject %s %s %s\n", e->host, e->header, e->secret) > 0;
  }
  if (f && fclose(f) != 0)
    ok = false;
  if (!ok) {
    free(text);
    errno = f ? EINVAL : ENOMEM;
    return NULL;
  }
  return text;
}

/* "HOST HEADER SECRET" into the grant's next injection. */
static int parse_inject(char *value, struct esb_egress_grant *g) {
  char *header = strchr(value, ' '), *secret = header ? strchr(header + 1, ' ') : NULL;
  if (!secret || strchr(secret + 1, ' '))
    return -1;
  *header++ = '\0';
  *secret++ = '\0';
  if (esb_egress_host_problem(value) || !*header || !*secret)
    return -1;
  struct esb_egress_inject *grown = realloc(g->inject, (g->n_inject + 1) * sizeof *grown);
  if (!grown)
    return -1;
  g->inject = grown;
  struct esb_egress_inject *e = &grown[g->n_inject++];
  *e = (struct esb_egress_inject){ .host = strdup(value), .header = strdup(header), .secret = strdup(secret) };
  return e->host && e->header && e->secret ? 0 : -1;
}

/* One line of a grant, "WORD VALUE", into g. 0, or -1. */
static int parse_line(char *line, struct esb_egress_grant *g, struct esb_strv *allow, struct esb_strv *deny) {
  char *value = strchr(line, ' '), *end;
  if (!value || !value[1])
    return -1;
  *value++ = '\0';
  if (!strcmp(line, "run")) {
    if (g->run[0] || strlen(value) > ESB_EGRESS_RUN_MAX)
      return -1;
    memcpy(g->run, value, strlen(value) + 1);
    return 0;
  }
  if (!strcmp(line, "expires")) {
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (g->expires || errno || *end || v <= 0)
      return -1;
    g->expires = v;
    return 0;
  }
  if (!strcmp(line, "allow") || !strcmp(line, "deny"))
    return esb_egress_entry_problem(value) ? -1 : esb_strv_push(*line == 'a' ? allow : deny, value);
  if (!strcmp(line, "inject"))
    return parse_inject(value, g);
  return -1;
}

int esb_egress_grant_parse(const char *text, size_t len, struct esb_egress_grant *g) {
  *g = (struct esb_egress_grant){ 0 };
  struct esb_strv allow = ESB_STRV_INIT, deny = ESB_STRV_INIT;
  char *copy = len < ESB_EGRESS_TOKEN_MAX && !memchr(text, '\0', len) ? strndup(text, len) : NULL;
  char *line = copy, *next;
  int rc = copy && !strncmp(copy, form, sizeof form - 1) && copy[sizeof form - 1] == '\n' ? 0 : -1;
  for (line = copy ? copy + sizeof form : NULL; rc == 0 && line && *line; line = next) {
    if (!(next = strchr(line, '\n'))) { /* every line ends with its newline */
      rc = -1;
      break;
    }
    *next++ = '\0';
    rc = parse_line(line, g, &allow, &deny);
  }
  free(copy);
  if (rc == 0 && (!g->run[0] || !g->expires || !allow.n))
    rc = -1;
  if (rc == 0) {
    g->allow = esb_strv_detach(&allow);
    g->deny = deny.n ? esb_strv_detach(&deny) : NULL;
    rc = g->allow ? 0 : -1;
  }
  esb_strv_clear(&allow);
  esb_strv_clear(&deny);
  return rc;
}

void esb_egress_grant_release(struct esb_egress_grant *g) {
  esb_strv_free(g->allow);
  esb_strv_free(g->deny);
  esb_egress_inject_free(g->inject, g->n_inject);
  *g = (struct esb_egress_grant){ 0 };
}
