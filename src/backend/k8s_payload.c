#include "backend/k8s_payload.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

bool esb_k8s_payload_wanted(const struct esb_plan *plan) {
  return plan->n_files || plan->collect.n_patterns;
}

int esb_k8s_payload_check(const struct esb_plan *plan, struct esb_error *err) {
  if (!plan->k8s.handshake)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "invalid request: 'files', code as a file and 'collect' need "
                         "the handshake on the k8s backend (a POSIX shell in the image), which the policy turned "
                         "off (k8s.handshake = false)");
  for (size_t i = 0; i < plan->n_files; i++)
    if (strchr(plan->files[i].path, '\n'))
      return esb_error_set(err, ESB_E_INVALID_REQUEST, "invalid request: 'files' path %.200s has a newline, which "
                           "the k8s backend cannot pass on", plan->files[i].path);
  for (size_t i = 0; i < plan->collect.n_patterns; i++)
    if (strchr(plan->collect.patterns[i], '\n'))
      return esb_error_set(err, ESB_E_INVALID_REQUEST, "invalid request: 'collect[%zu]' has a newline, which the "
                           "k8s backend cannot pass on", i + 1);
  return 0;
}

int esb_k8s_payload_marker(char marker[ESB_K8S_MARKER_SIZE]) {
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    got += (size_t)n;
  }
  int at = snprintf(marker, ESB_K8S_MARKER_SIZE, "\036echo-sandbox-files-");
  for (size_t i = 0; i < sizeof bytes; i++)
    at += snprintf(marker + at, ESB_K8S_MARKER_SIZE - (size_t)at, "%02x", bytes[i]);
  return 0;
}

char *esb_k8s_payload_head(const struct esb_plan *plan, uint64_t stdin_bytes, const char *marker, size_t *len) {
  const struct esb_collect_spec *c = &plan->collect;
  size_t index = 1, data = 0; /* the index's closing empty line */
  for (size_t i = 0; i < plan->n_files; i++) {
    index += (size_t)snprintf(NULL, 0, "f %zu %zu %o %s\n", data, plan->files[i].len, plan->files[i].mode & 07777,
                              plan->files[i].path);
    data += plan->files[i].len;
  }
  for (size_t i = 0; i < c->n_patterns; i++)
    index += strlen(c->patterns[i]) + 3;
  bool collect = c->n_patterns != 0;
  char header[256];
  int hn = snprintf(header, sizeof header, "%zu %zu %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %s\n", index,
                    data, stdin_bytes, collect ? c->max_count : 0, collect ? c->max_file_bytes : 0,
                    collect ? c->max_bytes : 0, collect ? marker : "-");
  size_t total = (size_t)hn + index + data;
  char *buf = malloc(total + 1), *p = buf;
  if (!buf)
    return NULL;
  memcpy(p, header, (size_t)hn);
  p += hn;
  size_t off = 0;
  for (size_t i = 0; i < plan->n_files; i++) {
    p += sprintf(p, "f %zu %zu %o %s\n", off, plan->files[i].len, plan->files[i].mode & 07777, plan->files[i].path);
    off += plan->files[i].len;
  }
  for (size_t i = 0; i < c->n_patterns; i++)
    p += sprintf(p, "c %s\n", c->patterns[i]);
  *p++ = '\n';
  for (size_t i = 0; i < plan->n_files; i++) {
    if (plan->files[i].len)
      memcpy(p, plan->files[i].data, plan->files[i].len);
    p += plan->files[i].len;
  }
  *len = total;
  return buf;
}

/* ---- the frames ---- */

void esb_k8s_frames_init(struct esb_k8s_frames *f, const char *marker, const struct esb_collect_spec *spec) {
  esb_k8s_frames_release(f);
  *f = (struct esb_k8s_frames){ .collect = spec->n_patterns != 0, .section = SIZE_MAX };
  f->marker_len = (size_t)snprintf(f->marker, sizeof f->marker, "%s\n", marker);
  f->frames.cap = spec->max_bytes + (spec->max_count + 1) * (ESB_FILE_PATH_MAX + 64);
}

/* The wrapper's first line, at the stream's start: how many bytes of data
 * are its (the rest are the program's, once it started). */
static size_t first_line(struct esb_k8s_frames *f, const char *data, size_t len) {
  static const char started[] = ESB_K8S_STARTED, failed[] = ESB_K8S_WRAPPER_FAILED;
  const char *nl = memchr(data, '\n', len);
  size_t take = nl ? (size_t)(nl - data) + 1 : len, room = sizeof f->step - 1 - f->step_len;
  size_t keep = nl ? take - 1 : take;
  memcpy(f->step + f->step_len, data, keep < room ? keep : room);
  f->step_len += keep < room ? keep : room;
  f->step[f->step_len] = '\0';
  if (!nl) {
    if (f->step_len == sizeof f->step - 1)
      f->start = ESB_K8S_START_GARBLED; /* longer than any line of the wrapper's */
    return take;
  }
  if (strcmp(f->step, started) == 0) {
    f->start = ESB_K8S_START_STARTED;
    f->step_len = 0;
  } else if (strncmp(f->step, failed, sizeof failed - 1) == 0 && !memchr(f->step, '\0', f->step_len)) {
    f->start = ESB_K8S_START_FAILED;
    f->step_len -= sizeof failed - 1;
    memmove(f->step, f->step + sizeof failed - 1, f->step_len + 1);
  } else {
    f->start = ESB_K8S_START_GARBLED;
  }
  return take;
}

/* How much of the end of s (n bytes) is the marker's start. */
static size_t marker_start(const struct esb_k8s_frames *f, const char *s, size_t n) {
  for (size_t k = n < f->marker_len - 1 ? n : f->marker_len - 1; k > 0; k--)
    if (memcmp(s + n - k, f->marker, k) == 0)
      return k;
  return 0;
}

/* The program's output, the marker looked for as it comes. */
static void split_output(struct esb_k8s_frames *f, const char *data, size_t len, esb_k8s_output_fn out,
                         void *userdata) {
  if (f->seen) {
    esb_capture_append(&f->frames, data, len);
    return;
  }
  /* The held tail and the chunk, as one text to look for the marker in. */
  const char *s = data;
  size_t n = len;
  char *joined = NULL;
  if (f->held_len) {
    if (!(joined = malloc(f->held_len + len))) {
      out(f->held, f->held_len, userdata); /* out of memory: no marker split over the two */
      f->held_len = 0;
    } else {
      memcpy(joined, f->held, f->held_len);
      memcpy(joined + f->held_len, data, len);
      s = joined;
      n = f->held_len + len;
      f->held_len = 0;
    }
  }
  const char *m = memmem(s, n, f->marker, f->marker_len);
  if (m) {
    if (m > s)
      out(s, (size_t)(m - s), userdata);
    f->seen = true;
    esb_capture_append(&f->frames, m + f->marker_len, n - (size_t)(m - s) - f->marker_len);
  } else {
    size_t keep = marker_start(f, s, n);
    if (n > keep)
      out(s, n - keep, userdata);
    memcpy(f->held, s + n - keep, keep);
    f->held_len = keep;
  }
  free(joined);
}

void esb_k8s_frames_feed(struct esb_k8s_frames *f, const char *data, size_t len, esb_k8s_output_fn out,
                         void *userdata) {
  if (f->start == ESB_K8S_START_WAITING) {
    size_t took = first_line(f, data, len);
    data += took;
    len -= took;
  }
  if (f->start != ESB_K8S_START_STARTED || len == 0)
    return; /* before the program, or instead of it: nothing is its output */
  if (f->collect)
    split_output(f, data, len, out, userdata);
  else
    out(data, len, userdata);
}

/* A decimal number, then the byte stop, from *p (before end). */
static bool number(const char **p, const char *end, char stop, uint64_t *v) {
  const char *s = *p;
  uint64_t x = 0;
  if (s == end || *s < '0' || *s > '9')
    return false;
  while (s < end && *s >= '0' && *s <= '9') {
    if (x > (UINT64_MAX - 9) / 10)
      return false;
    x = x * 10 + (uint64_t)(*s++ - '0');
  }
  if (s == end || *s != stop)
    return false;
  *p = s + 1;
  *v = x;
  return true;
}

/* The frames, found from the end: the E line ends the stream (the wrapper
 * wrote last, alone) and says how many bytes of frames precede it, right
 * after a marker line. Held bytes before that line were the program's own
 * (it wrote the marker itself): they are output. No such end: f->section
 * stays SIZE_MAX. */
static void locate_frames(struct esb_k8s_frames *f, esb_k8s_output_fn out, void *userdata) {
  const char *d = f->frames.data ? f->frames.data : "";
  size_t n = f->frames.len, e = n;
  if (esb_capture_truncated(&f->frames) || n == 0 || d[--e] != '\n')
    return;
  /* "E MORE BYTES\n" read backwards: it follows a file's bytes, not a newline */
  while (e > 0 && d[e - 1] >= '0' && d[e - 1] <= '9')
    e--;
  if (e < 4 || e == n - 1 || d[e - 1] != ' ' || (d[e - 2] != '0' && d[e - 2] != '1') || d[e - 3] != ' ' ||
      d[e - 4] != 'E')
    return;
  const char *p = d + e;
  uint64_t bytes;
  if (!number(&p, d + n, '\n', &bytes) || bytes > (e -= 4))
    return;
  f->end = e;
  f->more = d[e + 2] == '1';
  size_t at = e - (size_t)bytes;
  if (at) {
    if (at < f->marker_len || memcmp(d + at - f->marker_len, f->marker, f->marker_len) != 0)
      return;
    out(f->marker, f->marker_len, userdata);
    if (at > f->marker_len)
      out(d, at - f->marker_len, userdata);
  }
  f->section = at;
}

void esb_k8s_frames_end(struct esb_k8s_frames *f, esb_k8s_output_fn out, void *userdata) {
  if (f->start == ESB_K8S_START_WAITING && f->step_len)
    f->start = ESB_K8S_START_GARBLED; /* a first line never ended */
  if (f->held_len)
    out(f->held, f->held_len, userdata);
  f->held_len = 0;
  if (f->seen)
    locate_frames(f, out, userdata);
}

static bool wanted(const struct esb_collect_spec *spec, const char *path) {
  for (size_t i = 0; i < spec->n_patterns; i++)
    if (esb_glob_match(spec->patterns[i], path))
      return true;
  return false;
}

int esb_k8s_frames_read(const struct esb_k8s_frames *f, const struct esb_collect_spec *spec,
                        struct esb_collected *c) {
  esb_collected_release(c);
  if (!f->seen) {
    errno = ENOENT;
    return -1;
  }
  if (f->section == SIZE_MAX)
    return esb_collected_discard(c, EPROTO);
  const char *p = f->frames.data + f->section, *end = f->frames.data + f->end;
  c->incomplete = f->more;
  uint64_t bytes = 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    uint64_t n, size;
    const char *at = p + 2;
    if (!nl || nl - p < 2 || p[0] != 'F' || p[1] != ' ' || !number(&at, nl, ' ', &n) ||
        !number(&at, nl, ' ', &size) || n > size || n > (uint64_t)(end - nl - 1))
      return esb_collected_discard(c, EPROTO);
    size_t path_len = (size_t)(nl - at);
    char path[ESB_FILE_PATH_MAX + 1];
    if (path_len == 0 || path_len > ESB_FILE_PATH_MAX || memchr(at, '\0', path_len))
      return esb_collected_discard(c, EPROTO);
    memcpy(path, at, path_len);
    path[path_len] = '\0';
    const char *data = nl + 1;
    p = data + n;
    /* The wrapper matched and counted as the engine does; what it should
     * not have sent is dropped, not trusted. */
    if (!esb_file_path_ok(path) || !wanted(spec, path))
      continue;
    if (c->count >= spec->max_count || n > spec->max_file_bytes || n > spec->max_bytes - bytes) {
      c->incomplete = true;
      continue;
    }
    if (esb_collected_push(c, path, path_len, data, (size_t)n, size) < 0)
      return esb_collected_discard(c, ENOMEM);
    bytes += n;
  }
  esb_collected_sort(c);
  return 0;
}

void esb_k8s_frames_release(struct esb_k8s_frames *f) {
  esb_capture_release(&f->frames);
}
