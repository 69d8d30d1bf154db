/* echo-sandbox-kube: one request of the API client of warm runs
 * (backend/kube_api.h), made in a process of its own so that the engine
 * links neither OpenSSL nor http-parser (backend/kube_transport.h says
 * why). The engine starts it for each request and talks with it on its
 * stdin and stdout:
 *   engine -> helper  "FIELD LENGTH" lines, each followed by LENGTH bytes
 *                     and a newline, for the fields named below (one left
 *                     out is none); then "end"
 *   helper -> engine  "reply CODE LENGTH" and the answer's body, or
 *                     "error LENGTH" and why no answer came; then it exits.
 * With the field exec_secret, the request is an exec into a pod in place
 * of `kubectl exec -i` (backend/kube_exec.h): path is the exec's, what
 * follows "end" on stdin is the command's stdin, and the command's stdout
 * and stderr are ours; the exit code is the command's, and the last line
 * of stderr, after ESB_KUBE_EXEC_MARK and the secret, says how the exec
 * ended.
 * The credentials pass on the pipe, never on the command line or in the
 * environment. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/kube_transport.h"
#include "engine/fileio.h"

#define FIELD_MAX (16u << 20)

struct request {
  struct esb_kube_api api;
  char *method, *path, *content_type, *body, *tls, *timeout_ms, *exec_secret;
};

/* stdin, read in chunks: the request's fields, then (an exec) the
 * command's stdin, whose first bytes may be read with the fields. */
static struct {
  char buf[32768];
  size_t off, len;
  bool eof;
} in;

static bool fill(void) {
  if (in.off < in.len)
    return true;
  ssize_t n;
  do
    n = read(0, in.buf, sizeof in.buf);
  while (n < 0 && errno == EINTR);
  in.off = 0;
  in.len = n > 0 ? (size_t)n : 0;
  in.eof = n <= 0;
  return n > 0;
}

/* n bytes into dst: 0, or -1 where stdin ends first. */
static int read_exact(char *dst, size_t n) {
  while (n) {
    if (!fill())
      return -1;
    size_t take = in.len - in.off < n ? in.len - in.off : n;
    memcpy(dst, in.buf + in.off, take);
    in.off += take;
    dst += take;
    n -= take;
  }
  return 0;
}

/* A line (at most n - 1 bytes, its newline kept): 0, or -1. */
static int read_line(char *dst, size_t n) {
  size_t got = 0;
  while (got + 1 < n && fill()) {
    dst[got] = in.buf[in.off++];
    if (dst[got++] == '\n') {
      dst[got] = '\0';
      return 0;
    }
  }
  return -1;
}

/* Where a field's value goes: a fixed buffer (size > 0) or a string of its own. */
struct field {
  const char *name;
  char **str;
  char *buf;
  size_t size;
};

static int read_field(struct field *f, size_t len) {
  char *value = malloc(len + 1), nl = 0;
  if (!value || read_exact(value, len) < 0 || read_exact(&nl, 1) < 0 || nl != '\n') {
    free(value);
    return -1;
  }
  value[len] = '\0';
  if (f->size) {
    int fits = len < f->size;
    if (fits)
      memcpy(f->buf, value, len + 1);
    free(value);
    return fits ? 0 : -1;
  }
  free(*f->str);
  *f->str = value;
  return 0;
}

static int read_request(struct request *q) {
  struct esb_kube_api *a = &q->api;
  struct field fields[] = {
    { "host", NULL, a->host, sizeof a->host }, { "port", NULL, a->port, sizeof a->port },
    { "base_path", NULL, a->base_path, sizeof a->base_path }, { "ca_file", &a->ca_file, NULL, 0 },
    { "ca_pem", &a->ca_pem, NULL, 0 }, { "cert_file", &a->cert_file, NULL, 0 },
    { "cert_pem", &a->cert_pem, NULL, 0 }, { "key_file", &a->key_file, NULL, 0 },
    { "key_pem", &a->key_pem, NULL, 0 }, { "token", &a->token, NULL, 0 },
    { "token_file", &a->token_file, NULL, 0 }, { "server_name", &a->server_name, NULL, 0 },
    { "tls", &q->tls, NULL, 0 }, { "method", &q->method, NULL, 0 }, { "path", &q->path, NULL, 0 },
    { "content_type", &q->content_type, NULL, 0 }, { "body", &q->body, NULL, 0 },
    { "timeout_ms", &q->timeout_ms, NULL, 0 }, { "exec_secret", &q->exec_secret, NULL, 0 },
  };
  char line[128], name[64];
  size_t len;
  while (read_line(line, sizeof line) == 0) {
    if (strcmp(line, "end\n") == 0)
      return (q->method || q->exec_secret) && q->path && q->timeout_ms ? 0 : -1;
    if (sscanf(line, "%63s %zu", name, &len) != 2 || len > FIELD_MAX)
      return -1;
    size_t i = 0;
    while (i < sizeof fields / sizeof fields[0] && strcmp(fields[i].name, name) != 0)
      i++;
    if (i == sizeof fields / sizeof fields[0] || read_field(&fields[i], len) < 0)
      return -1;
  }
  return -1;
}

static void release(struct request *q) {
  struct esb_kube_api *a = &q->api;
  char **owned[] = { &a->ca_file, &a->ca_pem, &a->cert_file, &a->cert_pem, &a->key_file, &a->key_pem, &a->token,
                     &a->token_file, &a->server_name, &q->method, &q->path, &q->content_type, &q->body, &q->tls,
                     &q->timeout_ms, &q->exec_secret };
  for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) {
    if (*owned[i])
      explicit_bzero(*owned[i], strlen(*owned[i])); /* credentials among them */
    free(*owned[i]);
  }
}

/* The exec: the command's streams, then the word after the mark. Its
 * exit code is the command's, else 1. */
static int exec_in_pod(struct request *q) {
  struct esb_kube_exec_word w;
  signal(SIGPIPE, SIG_IGN); /* a socket or a pipe gone is a write's error */
  esb_kube_transport_exec(&q->api, q->path, strtoull(q->timeout_ms, NULL, 10), in.buf + in.off, in.len - in.off,
                          &w);
  char word[sizeof w.said + 32];
  esb_kube_exec_word_format(&w, word, sizeof word);
  dprintf(2, ESB_KUBE_EXEC_MARK "%s%s", q->exec_secret, word);
  return w.end == ESB_KUBE_EXEC_EXIT ? w.exit_code : 1;
}

int main(int argc, char **argv) {
  (void)argv;
  if (argc != 1) {
    fprintf(stderr, "usage: echo-sandbox-kube (the engine starts it: backend/kube_main.c)\n");
    return 2;
  }
  struct request q = { 0 };
  struct esb_kube_reply r = { 0 };
  int rc = 1;
  if (read_request(&q) < 0) {
    snprintf(r.err, sizeof r.err, "echo-sandbox-kube: the engine's request ended early or was not ours");
  } else if (q.exec_secret) {
    q.api.tls = q.tls && strcmp(q.tls, "1") == 0;
    rc = exec_in_pod(&q);
    release(&q);
    return rc;
  } else {
    q.api.tls = q.tls && strcmp(q.tls, "1") == 0;
    rc = esb_kube_transport_request(&q.api, q.method, q.path, q.content_type, q.body,
                                    strtoull(q.timeout_ms, NULL, 10), &r) == 0 ? 0 : 1;
  }
  if (rc == 0) {
    printf("reply %d %zu\n", r.code, r.len);
    fwrite(r.body ? r.body : "", 1, r.len, stdout);
  } else {
    printf("error %zu\n%s", strlen(r.err), r.err);
  }
  fflush(stdout);
  free(r.body);
  release(&q);
  return rc;
}
