/* The engine's side of the egress proxy's process (backend/egress_helper.h). */
#include "backend/egress_helper.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/fileio.h"
#include "engine/install_paths.h"
#include "engine/sandbox/netrules.h"

static char program_path[4096];
static bool program_found;
static pthread_once_t program_once = PTHREAD_ONCE_INIT;

static void find_program(void) {
  const char *env = getenv("ECHO_SANDBOX_EGRESS");
  const char *libexec = esb_install_dir(ESB_DIR_LIBEXEC);
  if (env && *env)
    snprintf(program_path, sizeof program_path, "%s", env);
  else if (libexec)
    snprintf(program_path, sizeof program_path, "%s/echo-sandbox-egress", libexec);
  program_found = program_path[0] && access(program_path, X_OK) == 0;
}

const char *esb_egress_program(void) {
  pthread_once(&program_once, find_program);
  return program_found ? program_path : NULL;
}

/* Our ends of its pipes: blocking, for the short conversation. */
static void blocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK); }

static int say_lists(FILE *f, const struct esb_plan *plan, bool events) {
  for (char **e = plan->egress_allow; e && *e; e++)
    fprintf(f, "allow %s\n", *e);
  for (char **e = plan->egress_deny; e && *e; e++)
    fprintf(f, "deny %s\n", *e);
  for (size_t i = 0; i < plan->n_egress_inject; i++) { /* the secret's file: its value is never ours */
    const struct esb_egress_inject *e = &plan->egress_inject[i];
    size_t len = strlen(e->secret);
    for (char **s = plan->egress_secrets; s && *s; s++)
      if (!strncmp(*s, e->secret, len) && (*s)[len] == '=')
        fprintf(f, "inject %s %s %s %s\n", e->host, e->header, e->secret, *s + len + 1);
  }
  if (plan->egress_upstream_ca)
    fprintf(f, "upstream_ca %s\n", plan->egress_upstream_ca);
  if (events)
    fputs("events\n", f);
  for (size_t i = 0; i < plan->local.n_network_allow; i++) {
    char range[64];
    esb_net_range_format(&plan->local.network_allow[i], range, sizeof range);
    fprintf(f, "net_allow %s\n", range);
  }
  fputs("end\n", f);
  return fflush(f) == 0 ? 0 : -1;
}

/* At most n of the helper's bytes: first those esb_egress_helper_poll read
 * ahead, then its stdout's (blocking). > 0, or 0 at its end, -1. */
static ssize_t take(struct esb_egress_helper *h, char *dst, size_t n) {
  if (h->ahead_len) {
    size_t k = n < h->ahead_len ? n : h->ahead_len;
    memcpy(dst, h->ahead, k);
    memmove(h->ahead, h->ahead + k, h->ahead_len - k);
    h->ahead_len -= k;
    return (ssize_t)k;
  }
  ssize_t r;
  do
    r = read(h->child.out, dst, n);
  while (r < 0 && errno == EINTR);
  return r;
}

/* One line of the helper's (without its newline), at most n - 1 bytes. */
static bool read_line(struct esb_egress_helper *h, char *line, size_t n) {
  size_t got = 0;
  while (got + 1 < n) {
    if (take(h, line + got, 1) <= 0)
      return false;
    if (line[got] == '\n')
      break;
    got++;
  }
  line[got] = '\0';
  return true;
}

static int said_error(const char *line, struct esb_error *err);

/* The helper's answer: 0 at want, or -1 with err (its error's words). */
static int expect(struct esb_egress_helper *h, const char *want, struct esb_error *err) {
  char line[ESB_MESSAGE_MAX];
  if (!read_line(h, line, sizeof line))
    return esb_error_set(err, ESB_E_SANDBOX_SETUP, "egress proxy: echo-sandbox-egress ended before it listened");
  return strcmp(line, want) == 0 ? 0 : said_error(line, err);
}

/* A line of the helper's that is not what was wanted: its "error CODE
 * MESSAGE" into err, or the line itself. -1. */
static int said_error(const char *line, struct esb_error *err) {
  int code = ESB_E_SANDBOX_SETUP, used = 0;
  if (sscanf(line, "error %d %n", &code, &used) < 1 || code <= ESB_OK || code >= ESB_E__COUNT)
    code = ESB_E_SANDBOX_SETUP;
  return esb_error_set(err, (enum esb_error_code)code, "%s", used ? line + used : line);
}

/* "ca LENGTH" and the certificate's bytes, then the host's trust store
 * after them in the bundle (read here: the bundle is public). */
static int read_ca(struct esb_egress_helper *h, struct esb_error *err) {
  char line[ESB_MESSAGE_MAX];
  size_t len = 0, got = 0, sys_len = 0;
  if (!read_line(h, line, sizeof line))
    return esb_error_set(err, ESB_E_SANDBOX_SETUP, "egress proxy: echo-sandbox-egress sent no CA certificate");
  if (sscanf(line, "ca %zu", &len) != 1 || !len || len > 65536)
    return said_error(line, err);
  if (!(h->ca_pem = malloc(len)))
    return esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  while (got < len) {
    ssize_t r = take(h, h->ca_pem + got, len - got);
    if (r <= 0)
      return esb_error_set(err, ESB_E_SANDBOX_SETUP, "egress proxy: echo-sandbox-egress's CA certificate ended early");
    got += (size_t)r;
  }
  h->ca_len = len;
  char *sys = esb_read_file("/etc/ssl/certs/ca-certificates.crt", &sys_len);
  if ((h->bundle = malloc(len + (sys ? sys_len : 0) + 1))) {
    memcpy(h->bundle, h->ca_pem, len);
    if (sys)
      memcpy(h->bundle + len, sys, sys_len);
    h->bundle_len = len + (sys ? sys_len : 0);
  }
  free(sys);
  return h->bundle ? 0 : esb_error_set(err, ESB_E_SYSTEM, "out of memory");
}

int esb_egress_helper_prepare(struct esb_egress_helper *h, const struct esb_plan *plan, struct esb_error *err) {
  const char *program = esb_egress_program();
  if (!program)
    return esb_error_set(err, ESB_E_SANDBOX_SETUP, "egress proxy: echo-sandbox-egress is not installed beside "
                         "the engine (or $ECHO_SANDBOX_EGRESS names no program)");
  const char *argv[] = { program, NULL };
  const char *env[] = { NULL };
  h->child = (struct esb_child)ESB_CHILD_INIT;
  h->ahead_len = 0;
  h->child.argv = argv;
  h->child.env = env;
  h->child.in = ESB_CHILD_PIPE;
  h->child.out = ESB_CHILD_PIPE;
  if (esb_child_start(&h->child, err) < 0) {
    esb_error_prefix(err, "egress proxy: starting echo-sandbox-egress");
    return -1;
  }
  h->started = true;
  blocking(h->child.in);
  blocking(h->child.out);
  FILE *to = fdopen(dup(h->child.in), "w");
  int rc = to ? say_lists(to, plan, h->on_seen != NULL) : -1;
  if (to)
    fclose(to);
  if (rc < 0)
    esb_error_set(err, ESB_E_SANDBOX_SETUP, "egress proxy: echo-sandbox-egress ended before it listened");
  else if ((plan->n_egress_inject && read_ca(h, err) < 0) || expect(h, "prepared", err) < 0)
    rc = -1;
  if (rc < 0)
    esb_egress_helper_finish(h, NULL);
  return rc;
}

int esb_egress_helper_sandbox_files(struct esb_egress_helper *h, const struct esb_file *files, size_t n,
                                    const struct esb_file **out, size_t *n_out) {
  *out = files;
  *n_out = n;
  if (!h->ca_pem)
    return 0;
  free(h->files);
  if (!(h->files = calloc(n + 2, sizeof *h->files)))
    return -1;
  if (n)
    memcpy(h->files, files, n * sizeof *files);
  h->files[n] = (struct esb_file){ .path = (char *)ESB_EGRESS_CA_FILE, .data = h->ca_pem, .len = h->ca_len,
                                   .mode = 0444 };
  h->files[n + 1] = (struct esb_file){ .path = (char *)ESB_EGRESS_BUNDLE_FILE, .data = h->bundle,
                                       .len = h->bundle_len, .mode = 0444 };
  *out = h->files;
  *n_out = n + 2;
  return 0;
}

int esb_egress_helper_start(struct esb_egress_helper *h, pid_t child, struct esb_error *err) {
  if (!h->started)
    return esb_error_set(err, ESB_E_SANDBOX_SETUP, "egress proxy: echo-sandbox-egress was not prepared");
  if (dprintf(h->child.in, "listen %d\n", (int)child) < 0 || expect(h, "ready", err) < 0) {
    if (err->code == ESB_OK)
      esb_error_set(err, ESB_E_SANDBOX_SETUP, "egress proxy: echo-sandbox-egress ended before it listened");
    esb_egress_helper_finish(h, NULL);
    return -1;
  }
  h->listening = true;
  return 0;
}

/* One attempt's record after its line ("attempt" or "seen", then REASON
 * PORT OUT IN LENGTH): its host's bytes and a newline, into *a (its host
 * in host[]). 0, or -1 where it is out of bounds. */
static int read_attempt(struct esb_egress_helper *h, const char *line, struct esb_egress_attempt *a,
                        char host[ESB_EGRESS_HOST_MAX + 2]) {
  unsigned reason, port;
  unsigned long long bytes_out, bytes_in;
  size_t len, got = 0;
  if (sscanf(line, "%*s %u %u %llu %llu %zu", &reason, &port, &bytes_out, &bytes_in, &len) != 5 ||
      reason >= ESB_EGRESS_REASON__COUNT || port > 65535 || len > ESB_EGRESS_HOST_MAX)
    return -1;
  while (got < len + 1) {
    ssize_t r = take(h, host + got, len + 1 - got);
    if (r <= 0)
      return -1;
    got += (size_t)r;
  }
  if (host[len] != '\n' || memchr(host, '\0', len))
    return -1;
  host[len] = '\0';
  *a = (struct esb_egress_attempt){ .host = host, .port = port, .reason = (enum esb_egress_reason)reason,
                                    .allowed = reason == ESB_EGRESS_ALLOWED, .bytes_out = bytes_out,
                                    .bytes_in = bytes_in };
  return 0;
}

static void add_attempt(struct esb_egress_ledger *out, const struct esb_egress_attempt *a) {
  long i = out ? esb_egress_ledger_add(out, a->host, a->port) : -1;
  if (i >= 0) {
    struct esb_egress_attempt *into = &out->v[i];
    into->reason = a->reason;
    into->allowed = a->allowed;
    into->bytes_out = a->bytes_out;
    into->bytes_in = a->bytes_in;
  }
}

/* A verdict as it was given ("seen"): to the caller's on_seen. */
static int read_seen(struct esb_egress_helper *h, const char *line) {
  struct esb_egress_attempt a;
  char host[ESB_EGRESS_HOST_MAX + 2];
  if (read_attempt(h, line, &a, host) < 0)
    return -1;
  if (h->on_seen)
    h->on_seen(&a, h->seen_userdata);
  return 0;
}

static int read_ledger(struct esb_egress_helper *h, struct esb_egress_ledger *out) {
  char line[128], host[ESB_EGRESS_HOST_MAX + 2];
  unsigned long long left_off;
  struct esb_egress_attempt a;
  while (read_line(h, line, sizeof line) && !strncmp(line, "seen ", 5)) /* the verdicts not yet told */
    if (read_seen(h, line) < 0)
      return -1;
  if (sscanf(line, "left_off %llu", &left_off) != 1)
    return -1;
  if (out)
    out->left_off += left_off;
  while (read_line(h, line, sizeof line)) {
    if (strcmp(line, "end") == 0)
      return 0;
    if (strncmp(line, "attempt ", 8) != 0 || read_attempt(h, line, &a, host) < 0)
      return -1;
    add_attempt(out, &a);
  }
  return -1;
}

/* The whole "seen" records at the front of what was read ahead: each to
 * on_seen, and out of the buffer. */
static void tell_ahead(struct esb_egress_helper *h) {
  for (;;) {
    char *nl = memchr(h->ahead, '\n', h->ahead_len);
    size_t len;
    char line[128];
    if (!nl || (size_t)(nl - h->ahead) >= sizeof line || strncmp(h->ahead, "seen ", 5) != 0)
      return;
    memcpy(line, h->ahead, (size_t)(nl - h->ahead));
    line[nl - h->ahead] = '\0';
    if (sscanf(line, "%*s %*u %*u %*u %*u %zu", &len) != 1 || len > ESB_EGRESS_HOST_MAX)
      return; /* finish finds it wrong */
    size_t head = (size_t)(nl - h->ahead) + 1;
    if (head + len + 1 > h->ahead_len)
      return; /* the rest is on its way */
    memmove(h->ahead, h->ahead + head, h->ahead_len - head); /* take() now starts at the host */
    h->ahead_len -= head;
    if (read_seen(h, line) < 0)
      return;
  }
}

bool esb_egress_helper_poll(struct esb_egress_helper *h) {
  if (!h->listening)
    return false;
  ssize_t r;
  do /* readable: this read does not wait */
    r = read(h->child.out, h->ahead + h->ahead_len, sizeof h->ahead - h->ahead_len);
  while (r < 0 && errno == EINTR);
  if (r > 0)
    h->ahead_len += (size_t)r;
  tell_ahead(h);
  /* its end, a failure, or a buffer full of what is no verdict: finish reads the rest */
  return r > 0 && h->ahead_len < sizeof h->ahead;
}

int esb_egress_helper_finish(struct esb_egress_helper *h, struct esb_egress_ledger *out) {
  free(h->ca_pem);
  free(h->bundle);
  free(h->files);
  h->ca_pem = h->bundle = NULL;
  h->files = NULL;
  if (!h->started)
    return 0;
  h->started = false;
  close(h->child.in); /* its word to stop */
  h->child.in = -1;
  /* one that never listened has no ledger: nothing went through it */
  int rc = h->listening ? read_ledger(h, out) : 0;
  h->listening = false;
  h->ahead_len = 0;
  if (rc < 0 && out)
    out->left_off++; /* what it could not say is not claimed absent */
  int status;
  esb_child_reap(&h->child, &status, false);
  esb_child_close(&h->child);
  return rc;
}
