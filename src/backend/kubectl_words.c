#include "backend/kubectl_words.h"

#include <string.h>

static bool digits(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

/* klog's header: Lmmdd hh:mm:ss.uuuuuu THREADID FILE:LINE], with the space
 * after it: its length, or 0 where s does not start with one. */
static size_t klog_header(const char *s, size_t n) {
  if (n < 23 || !strchr("IWEF", s[0]) || !digits(s + 1, 4) || s[5] != ' ' || !digits(s + 6, 2) ||
      s[8] != ':' || !digits(s + 9, 2) || s[11] != ':' || !digits(s + 12, 2) || s[14] != '.' ||
      !digits(s + 15, 6) || s[21] != ' ')
    return 0;
  size_t i = 21;
  while (i < n && s[i] == ' ')
    i++;
  size_t start = i;
  while (i < n && s[i] >= '0' && s[i] <= '9')
    i++;
  if (i == start || i >= n || s[i] != ' ')
    return 0;
  const char *bracket = memchr(s + i, ']', n - i);
  const char *colon = bracket ? memchr(s + i, ':', (size_t)(bracket - (s + i))) : NULL;
  if (!colon || colon + 1 >= bracket || !digits(colon + 1, (size_t)(bracket - colon - 1)))
    return 0;
  size_t end = (size_t)(bracket - s) + 1;
  return end < n && s[end] == ' ' ? end + 1 : end;
}

static bool klog_line(const char *s, size_t n) {
  return klog_header(s, n) != 0;
}

bool esb_kubectl_own_line(const char *line, size_t n) {
  static const char notice[] = "warning: couldn't attach to pod/";
  if (n >= sizeof notice - 1 && memcmp(line, notice, sizeof notice - 1) == 0)
    return true;
  return klog_line(line, n);
}

/* Rewrites buf in place, line by line: cut(line, n) says how many bytes
 * the line loses from its start, more than n to lose it with its newline.
 * Returns the new length. */
static size_t cut_lines(char *buf, size_t len, size_t (*cut)(const char *line, size_t n)) {
  size_t out = 0;
  for (size_t at = 0; at < len;) {
    const char *nl = memchr(buf + at, '\n', len - at);
    size_t n = nl ? (size_t)(nl - (buf + at)) : len - at;
    size_t with_nl = n + (nl != NULL);
    size_t head = cut(buf + at, n);
    if (head > n)
      head = with_nl;
    memmove(buf + out, buf + at + head, with_nl - head);
    out += with_nl - head;
    at += with_nl;
  }
  return out;
}

void esb_kubectl_mark_init(struct esb_kubectl_mark *m, const char *text) {
  *m = (struct esb_kubectl_mark){ 0 };
  m->len = strnlen(text, sizeof m->text - 1);
  memcpy(m->text, text, m->len);
}

/* How much of the end of s (n bytes) is the mark's start. */
size_t esb_kubectl_mark_piece(const struct esb_kubectl_mark *m, const char *s, size_t n) {
  for (size_t k = n < m->len - 1 ? n : m->len - 1; k > 0; k--)
    if (memcmp(s + n - k, m->text, k) == 0)
      return k;
  return 0;
}

/* The mark found at s[at]: what precedes it to before(), the rest to after(). */
static void split_at(struct esb_kubectl_mark *m, const char *s, size_t n, size_t at, esb_kubectl_bytes_fn before,
                     esb_kubectl_bytes_fn after, void *userdata) {
  m->seen = true;
  if (at)
    before(s, at, userdata);
  if (n > at + m->len)
    after(s + at + m->len, n - at - m->len, userdata);
}

void esb_kubectl_mark_feed(struct esb_kubectl_mark *m, const char *data, size_t len, esb_kubectl_bytes_fn before,
                           esb_kubectl_bytes_fn after, void *userdata) {
  if (m->seen) {
    if (len)
      after(data, len, userdata);
    return;
  }
  /* A mark that starts in the held tail ends within the chunk's first
   * bytes: look for it in the two joined (no more than twice the mark). */
  if (m->held_len) {
    char joined[2 * ESB_KUBECTL_MARK_MAX];
    size_t head = len < m->len ? len : m->len;
    size_t h = m->held_len;
    memcpy(joined, m->held, h);
    memcpy(joined + h, data, head);
    m->held_len = 0;
    for (size_t at = 0; at < h; at++) {
      if (h + head - at >= m->len && memcmp(joined + at, m->text, m->len) == 0) {
        m->seen = true;
        if (at)
          before(joined, at, userdata);
        size_t used = at + m->len - h; /* of the chunk */
        if (len > used)
          after(data + used, len - used, userdata);
        return;
      }
    }
    if (h + len < m->len) { /* the chunk is short: held and chunk may still begin it */
      size_t keep = esb_kubectl_mark_piece(m, joined, h + len);
      if (h + len > keep)
        before(joined, h + len - keep, userdata);
      memcpy(m->held, joined + h + len - keep, keep);
      m->held_len = keep;
      return;
    }
    before(joined, h, userdata);
  }
  const char *hit = len >= m->len ? memmem(data, len, m->text, m->len) : NULL;
  if (hit) {
    split_at(m, data, len, (size_t)(hit - data), before, after, userdata);
    return;
  }
  size_t keep = esb_kubectl_mark_piece(m, data, len);
  if (len > keep)
    before(data, len - keep, userdata);
  memcpy(m->held, data + len - keep, keep);
  m->held_len = keep;
}

void esb_kubectl_mark_end(struct esb_kubectl_mark *m, esb_kubectl_bytes_fn before, void *userdata) {
  if (m->held_len && !m->seen)
    before(m->held, m->held_len, userdata);
  m->held_len = 0;
}

static size_t whole_if_own(const char *line, size_t n) {
  return esb_kubectl_own_line(line, n) ? n + 1 : 0;
}

size_t esb_kubectl_strip_own_lines(char *buf, size_t len) {
  return cut_lines(buf, len, whole_if_own);
}

bool esb_kubectl_unreachable(const char *said) {
  /* Go's and client-go's words for a connection never made, as kubectl
   * ends with them: "The connection to the server HOST:PORT was refused -
   * did you specify the right host or port?", or a dial that failed ("dial
   * tcp: lookup HOST on ...: no such host", "dial tcp ADDR: connect:
   * network is unreachable", "dial tcp ADDR: i/o timeout"). A reset, an EOF
   * or a timeout while awaiting headers ("read tcp ...") may come after the
   * request went out: not here. Nor a certificate refused (x509): no
   * request went out either, but no second try will pass. */
  static const char *const never_connected[] = {
    "was refused - did you specify the right host or port?", "dial tcp", "net/http: TLS handshake timeout",
    "server gave HTTP response to HTTPS client", "tls: first record does not look like a TLS handshake",
    "request canceled while waiting for connection", NULL,
  };
  for (const char *const *w = never_connected; said && *w; w++)
    if (strstr(said, *w))
      return true;
  return false;
}
