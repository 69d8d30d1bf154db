/* What kubectl writes on its stderr of its own, among the program's stderr
 * (kubectl run --attach passes the program's stderr on as its own): klog
 * lines ("E1127 08:56:18.527967   11982 v2.go:167] ...") and the notice that
 * the attach broke and it fell back to the pod's logs; and the marks the
 * pod's command writes around the program, found in kubectl's streams as
 * they come (k8s.c says what each mark proves). Pure functions.
 *
 * The words alone prove nothing: a program may print any of them. They are
 * read only where the marks say the program cannot have written them. */
#ifndef ESB_BACKEND_KUBECTL_WORDS_H
#define ESB_BACKEND_KUBECTL_WORDS_H

#include <stdbool.h>
#include <stddef.h>

/* The notice's words: where they are, the output is incomplete (the logs
 * repeat what was already passed on, and what follows may be lost). */
#define ESB_KUBECTL_FELL_BACK "falling back to streaming logs"

/* Is this line (without its newline) one of kubectl's own? */
bool esb_kubectl_own_line(const char *line, size_t n);

/* Removes kubectl's own lines from buf in place; returns the new length.
 * A program line that looks exactly like a klog line goes too. */
size_t esb_kubectl_strip_own_lines(char *buf, size_t len);

/* A mark looked for in a stream read in chunks: the bytes before it go one
 * way, those after it another. A tail that may be the mark's start is held
 * until the next chunk (or the end) shows whether it is. */
#define ESB_KUBECTL_MARK_MAX 48

typedef void (*esb_kubectl_bytes_fn)(const char *data, size_t len, void *userdata);

struct esb_kubectl_mark {
  char text[ESB_KUBECTL_MARK_MAX];
  size_t len;
  char held[ESB_KUBECTL_MARK_MAX];
  size_t held_len;
  bool seen;
};

/* Readies m to look for text (at most ESB_KUBECTL_MARK_MAX - 1 bytes). */
void esb_kubectl_mark_init(struct esb_kubectl_mark *m, const char *text);

/* A chunk of the stream: before() gets what precedes the mark, at once but
 * for a tail that may be its start; after() everything that follows it. */
void esb_kubectl_mark_feed(struct esb_kubectl_mark *m, const char *data, size_t len, esb_kubectl_bytes_fn before,
                           esb_kubectl_bytes_fn after, void *userdata);

/* The stream ended: a held tail that never became the mark goes to before(). */
void esb_kubectl_mark_end(struct esb_kubectl_mark *m, esb_kubectl_bytes_fn before, void *userdata);

/* The length of the longest end of s[0..n) that begins m's mark (shorter
 * than the mark): what a scanner holds back. */
size_t esb_kubectl_mark_piece(const struct esb_kubectl_mark *m, const char *s, size_t n);
/* Whether kubectl's own words (its stderr, klog lines left out) say that
 * no connection to the API server was made: refused, no such host, no
 * route, a TLS handshake that timed out, a server that is no API server
 * (plain HTTP on an https address), a request given up while waiting for a
 * connection. No request went out then: the cluster never saw one. The
 * wordings are those kubectl 1.30-1.35 print (tests/kubectl_words_test.c). */
bool esb_kubectl_unreachable(const char *said);

#endif
