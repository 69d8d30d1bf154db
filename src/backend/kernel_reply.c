/* A session kernel's reply, read (backend/kernel_reply.h). A recursive
 * descent over the bytes, bounded in depth: the reply is the program's. */
#include "backend/kernel_reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 8

struct reader {
  const char *p, *end;
};

static void skip_space(struct reader *rd) {
  while (rd->p < rd->end && (*rd->p == ' ' || *rd->p == '\t' || *rd->p == '\n' || *rd->p == '\r'))
    rd->p++;
}

static bool take(struct reader *rd, char c) {
  skip_space(rd);
  if (rd->p < rd->end && *rd->p == c) {
    rd->p++;
    return true;
  }
  return false;
}

static bool take_word(struct reader *rd, const char *word) {
  size_t n = strlen(word);
  skip_space(rd);
  if ((size_t)(rd->end - rd->p) < n || memcmp(rd->p, word, n) != 0)
    return false;
  rd->p += n;
  return true;
}

static int hex4(struct reader *rd, unsigned *out) {
  if (rd->end - rd->p < 4)
    return -1;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = *rd->p++;
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

/* A \u escape (a surrogate pair as one) as UTF-8 into o; its length. A
 * lone surrogate becomes U+FFFD. */
static int unicode_escape(struct reader *rd, char *o) {
  unsigned c;
  if (hex4(rd, &c) < 0)
    return -1;
  if (c >= 0xd800 && c < 0xdc00 && rd->end - rd->p >= 6 && rd->p[0] == '\\' && rd->p[1] == 'u') {
    struct reader ahead = { rd->p + 2, rd->end };
    unsigned low;
    if (hex4(&ahead, &low) == 0 && low >= 0xdc00 && low < 0xe000) {
      c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
      rd->p = ahead.p;
    }
  }
  if (c >= 0xd800 && c < 0xe000)
    c = 0xfffd;
  if (c < 0x80) { o[0] = (char)c; return 1; }
  if (c < 0x800) { o[0] = (char)(0xc0 | c >> 6); o[1] = (char)(0x80 | (c & 0x3f)); return 2; }
  if (c < 0x10000) {
    o[0] = (char)(0xe0 | c >> 12); o[1] = (char)(0x80 | ((c >> 6) & 0x3f)); o[2] = (char)(0x80 | (c & 0x3f));
    return 3;
  }
  o[0] = (char)(0xf0 | c >> 18); o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
  o[2] = (char)(0x80 | ((c >> 6) & 0x3f)); o[3] = (char)(0x80 | (c & 0x3f));
  return 4;
}

/* A string; *out (when out) gets it, malloc'd. The decoded text is never
 * longer than its escaped form, so one buffer of that size does. */
static int read_string(struct reader *rd, char **out) {
  if (!take(rd, '"'))
    return -1;
  const char *start = rd->p;
  char *buf = out ? malloc((size_t)(rd->end - start) + 1) : NULL;
  char scratch[4];
  size_t n = 0;
  if (out && !buf)
    return -1;
  while (rd->p < rd->end && *rd->p != '"') {
    char c = *rd->p++;
    int k = 1;
    char *o = buf ? buf + n : scratch;
    if ((unsigned char)c < 0x20)
      goto bad;
    if (c != '\\') {
      *o = c;
    } else if (rd->p == rd->end) {
      goto bad;
    } else {
      static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
      char e = *rd->p++;
      const char *at = e ? strchr(from, e) : NULL;
      if (at) *o = to[at - from];
      else if (e != 'u' || (k = unicode_escape(rd, o)) < 0) goto bad;
    }
    if (buf)
      n += (size_t)k;
  }
  if (rd->p == rd->end)
    goto bad;
  rd->p++;
  if (buf) {
    buf[n] = '\0';
    *out = buf;
  }
  return 0;
bad:
  free(buf);
  return -1;
}

static int read_integer(struct reader *rd, int64_t *out) {
  skip_space(rd);
  char tmp[24];
  size_t n = 0;
  while (rd->p < rd->end && n < sizeof tmp - 1 && (*rd->p == '-' || (*rd->p >= '0' && *rd->p <= '9')))
    tmp[n++] = *rd->p++;
  tmp[n] = '\0';
  char *end;
  long long v = strtoll(tmp, &end, 10);
  if (n == 0 || *end || (rd->p < rd->end && strchr(".eE", *rd->p)))
    return -1;
  *out = v;
  return 0;
}

static int read_object(struct reader *rd, int depth,
                       int (*field)(struct reader *rd, const char *key, void *arg, int depth), void *arg);

/* Any value, dropped. */
static int skip_value(struct reader *rd, int depth) {
  int64_t i;
  skip_space(rd);
  if (rd->p == rd->end || depth > MAX_DEPTH)
    return -1;
  if (*rd->p == '"')
    return read_string(rd, NULL);
  if (*rd->p == '{')
    return read_object(rd, depth + 1, NULL, NULL);
  if (take_word(rd, "null") || take_word(rd, "true") || take_word(rd, "false"))
    return 0;
  return read_integer(rd, &i);
}

static int read_object(struct reader *rd, int depth,
                       int (*field)(struct reader *rd, const char *key, void *arg, int depth), void *arg) {
  if (!take(rd, '{'))
    return -1;
  if (take(rd, '}'))
    return 0;
  do {
    char *key = NULL;
    if (read_string(rd, &key) < 0)
      return -1;
    int rc = take(rd, ':') ? (field ? field(rd, key, arg, depth) : skip_value(rd, depth)) : -1;
    free(key);
    if (rc < 0)
      return -1;
  } while (take(rd, ','));
  return take(rd, '}') ? 0 : -1;
}

/* A string or null into *out (a second of the same key replaces it). */
static int string_or_null(struct reader *rd, char **out) {
  if (take_word(rd, "null"))
    return 0;
  char *s;
  if (read_string(rd, &s) < 0)
    return -1;
  free(*out);
  *out = s;
  return 0;
}

static int error_field(struct reader *rd, const char *key, void *arg, int depth) {
  struct esb_kernel_reply *r = arg;
  char **to = strcmp(key, "name") == 0 ? &r->name : strcmp(key, "message") == 0 ? &r->message
            : strcmp(key, "traceback") == 0 ? &r->traceback : NULL;
  return to ? string_or_null(rd, to) : skip_value(rd, depth);
}

static int reply_field(struct reader *rd, const char *key, void *arg, int depth) {
  struct esb_kernel_reply *r = arg;
  if (strcmp(key, "id") == 0) {
    r->id = -1;
    return take_word(rd, "null") ? 0 : read_integer(rd, &r->id);
  }
  if (strcmp(key, "status") == 0) {
    char *s = NULL;
    if (read_string(rd, &s) < 0)
      return -1;
    snprintf(r->status, sizeof r->status, "%s", s);
    free(s);
    return 0;
  }
  if (strcmp(key, "value") == 0)
    return string_or_null(rd, &r->value);
  if (strcmp(key, "error") == 0)
    return take_word(rd, "null") ? 0 : read_object(rd, depth + 1, error_field, r);
  return skip_value(rd, depth);
}

int esb_kernel_reply_parse(const char *text, size_t len, struct esb_kernel_reply *r) {
  *r = (struct esb_kernel_reply)ESB_KERNEL_REPLY_INIT;
  struct reader rd = { text, text + len };
  if (read_object(&rd, 0, reply_field, r) < 0 || (skip_space(&rd), rd.p != rd.end)) {
    esb_kernel_reply_release(r);
    return -1;
  }
  return 0;
}

void esb_kernel_reply_release(struct esb_kernel_reply *r) {
  free(r->value);
  free(r->name);
  free(r->message);
  free(r->traceback);
  *r = (struct esb_kernel_reply)ESB_KERNEL_REPLY_INIT;
}

int esb_json_escape_append(char **buf, size_t *len, size_t *cap, const char *text, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (*cap - *len < 8) {
      size_t want = *cap ? *cap * 2 : n + 64;
      char *grown = realloc(*buf, want);
      if (!grown)
        return -1;
      *buf = grown;
      *cap = want;
    }
    unsigned char c = (unsigned char)text[i];
    if (c == '"' || c == '\\') {
      (*buf)[(*len)++] = '\\';
      (*buf)[(*len)++] = (char)c;
    } else if (c < 0x20 || c == 0x7f) {
      *len += (size_t)snprintf(*buf + *len, 8, "\\u%04x", c);
    } else {
      (*buf)[(*len)++] = (char)c;
    }
  }
  return 0;
}
