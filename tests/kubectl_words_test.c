#include "backend/kubectl_words.h"

#include "tap.h"

static bool own(const char *line) { return esb_kubectl_own_line(line, strlen(line)); }

/* What a mark scanner passed on: before the mark, and after it. */
struct split {
  char before[256], after[256];
  size_t nb, na;
};

static void to_before(const char *d, size_t n, void *u) {
  struct split *s = u;
  memcpy(s->before + s->nb, d, n);
  s->nb += n;
  s->before[s->nb] = '\0';
}

static void to_after(const char *d, size_t n, void *u) {
  struct split *s = u;
  memcpy(s->after + s->na, d, n);
  s->na += n;
  s->after[s->na] = '\0';
}

/* The text fed in chunks of `step` bytes, then ended. */
static struct split feed(const char *text, size_t step) {
  struct esb_kubectl_mark m;
  esb_kubectl_mark_init(&m, "\036MARK\n");
  struct split s = { 0 };
  for (size_t at = 0, n = strlen(text); at < n; at += step)
    esb_kubectl_mark_feed(&m, text + at, n - at < step ? n - at : step, to_before, to_after, &s);
  esb_kubectl_mark_end(&m, to_before, &s);
  return s;
}

static void marks(void) {
  for (size_t step = 1; step <= 40; step++) {
    struct split s = feed("kubectl says\n\036MARK\nthe program\n", step);
    if (strcmp(s.before, "kubectl says\n") || strcmp(s.after, "the program\n")) {
      ok(false, "a mark split over chunks of some size is found");
      return;
    }
  }
  ok(true, "a mark split over chunks of any size is found, the bytes on each side placed");
  struct split s = feed("\036MAR\036MARK\nx", 3);
  is_str(s.before, "\036MAR", "a false start before the mark is passed on");
  is_str(s.after, "x", "and what follows the mark");
  s = feed("no mark \036MA", 4);
  is_str(s.before, "no mark \036MA", "a tail like the mark's start is passed on at the end");
  is_int((int)s.na, 0, "nothing after a mark that never came");
  s = feed("\036MARK\n\036MARK\n", 5);
  is_str(s.after, "\036MARK\n", "only the first mark splits: a second is after it");
}

/* kubectl 1.30 and 1.35's last words against a closed port, a port that
 * takes connections and never answers (https: the handshake times out), a
 * plain HTTP server at an https address, an address without a route and a
 * name without an address (in a network namespace of loopback alone, its
 * resolver on loopback); and words that are not these: failures after a
 * request went out, the API server's own answers, a certificate refused. */
static void unreachable(void) {
  static const char *const never[] = {
    "The connection to the server 127.0.0.1:43337 was refused - did you specify the right host or port?",
    "Unable to connect to the server: net/http: TLS handshake timeout",
    "Unable to connect to the server: http: server gave HTTP response to HTTPS client",
    "Unable to connect to the server: tls: first record does not look like a TLS handshake",
    "Unable to connect to the server: dial tcp 10.255.0.1:6443: connect: network is unreachable",
    "Unable to connect to the server: dial tcp 10.255.0.1:6443: connect: no route to host",
    "Unable to connect to the server: dial tcp 10.255.0.1:6443: i/o timeout",
    "Unable to connect to the server: dial tcp: lookup nosuch.example.test on 127.0.0.1:53: no such host",
    "Unable to connect to the server: dial tcp: lookup nosuch.example.test on 127.0.0.1:53: read udp "
    "127.0.0.1:37706->127.0.0.1:53: read: connection refused",
    "Unable to connect to the server: net/http: request canceled while waiting for connection (Client.Timeout "
    "exceeded while awaiting headers)",
    "error: client rate limiter Wait returned an error: context deadline exceeded - error from a previous "
    "attempt: dial tcp 127.0.0.1:33545: connect: connection reset by peer",
  };
  for (size_t i = 0; i < sizeof never / sizeof *never; i++)
    ok(esb_kubectl_unreachable(never[i]), never[i]);
  static const char *const sent[] = {
    "Unable to connect to the server: read tcp 127.0.0.1:48340->127.0.0.1:33545: read: connection reset by peer",
    "Unable to connect to the server: net/http: request canceled (Client.Timeout exceeded while awaiting headers)",
    "Unable to connect to the server: context deadline exceeded",
    "Unable to connect to the server: tls: failed to verify certificate: x509: certificate signed by unknown "
    "authority",
    "Unable to connect to the server: unexpected EOF",
    "error: timed out waiting for the condition",
    "Error from server (ServiceUnavailable): the server is currently unable to handle the request",
    "Error from server (TooManyRequests): the server has received too many requests and has asked us to try "
    "again later",
  };
  for (size_t i = 0; i < sizeof sent / sizeof *sent; i++)
    ok(!esb_kubectl_unreachable(sent[i]), sent[i]);
  ok(!esb_kubectl_unreachable(NULL), "nothing said");
}

int main(void) {
  ok(own("E1127 08:56:18.527967   11982 v2.go:167] \"Unhandled Error\" err=\"x\""), "a klog error line");
  ok(own("W0102 00:00:00.000001       1 loader.go:223] Config not found"), "a klog warning line");
  ok(own("warning: couldn't attach to pod/x, " ESB_KUBECTL_FELL_BACK ": boom"), "the fallback notice");
  ok(!own("E1127 is not a klog line"), "a line that starts like one");
  ok(!own("error: something the program printed"), "the program's own line");
  ok(!own(""), "an empty line");

  char buf[] = "one\nE1127 08:56:18.527967   11982 v2.go:167] gone\ntwo\n";
  size_t n = esb_kubectl_strip_own_lines(buf, strlen(buf));
  buf[n] = '\0';
  is_str(buf, "one\ntwo\n", "kubectl's lines are taken out, the program's kept");

  char tail[] = "out\nE1127 08:56:18.527967   11982 v2.go:167] last";
  n = esb_kubectl_strip_own_lines(tail, strlen(tail));
  tail[n] = '\0';
  is_str(tail, "out\n", "a last line without a newline too");

  char none[] = "a\nb";
  is_int(esb_kubectl_strip_own_lines(none, 3), 3, "nothing to take out");
  marks();

  unreachable();
  return tap_done();
}
