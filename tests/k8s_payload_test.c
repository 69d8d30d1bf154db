/* The k8s wrapper's protocol, the engine's side: the block it sends, and the
 * split of kubectl's stdout into the program's output and the frames. */
#include "backend/k8s_payload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "tap.h"

struct sink {
  char buf[4096];
  size_t len;
};

static void to_sink(const char *data, size_t len, void *userdata) {
  struct sink *s = userdata;
  memcpy(s->buf + s->len, data, len);
  s->len += len;
}

/* Feeds text in pieces of n bytes. */
static void feed(struct esb_k8s_frames *f, const char *text, size_t len, size_t n, struct sink *out) {
  for (size_t at = 0; at < len; at += n)
    esb_k8s_frames_feed(f, text + at, len - at < n ? len - at : n, to_sink, out);
  esb_k8s_frames_end(f, to_sink, out);
}

int main(void) {
  struct esb_file files[] = {
    { .path = "notes/a.txt", .data = "hello\n", .len = 6, .mode = 0644 },
    { .path = "run.sh", .data = "#!/bin/sh\n", .len = 10, .mode = 0755 },
  };
  const char *patterns[] = { "out/*.png" };
  struct esb_plan plan = ESB_PLAN_INIT;
  plan.files = files;
  plan.n_files = 2;
  plan.collect.patterns = patterns;
  plan.collect.n_patterns = 1;
  plan.k8s.handshake = true;
  ok(esb_k8s_payload_wanted(&plan), "files or patterns want the wrapper");
  struct esb_error err = ESB_ERROR_INIT;
  ok(esb_k8s_payload_check(&plan, &err) == 0, "clean paths and patterns go");

  char marker[ESB_K8S_MARKER_SIZE];
  ok(esb_k8s_payload_marker(marker) == 0 && strlen(marker) == ESB_K8S_MARKER_SIZE - 1 && marker[0] == '\036',
     "a marker is made");
  char other[ESB_K8S_MARKER_SIZE];
  esb_k8s_payload_marker(other);
  ok(strcmp(marker, other) != 0, "and each is another");

  size_t len;
  char *head = esb_k8s_payload_head(&plan, 5, "M", &len);
  const char *want = "53 16 5 64 4194304 16777216 M\n"
                     "f 0 6 644 notes/a.txt\nf 6 10 755 run.sh\nc out/*.png\n\n"
                     "hello\n#!/bin/sh\n";
  ok(head && len == strlen(want) && memcmp(head, want, len) == 0, "the header, the index and the files' bytes");
  if (head && len != strlen(want))
    printf("# got %.*s\n", (int)len, head);
  free(head);

  struct esb_plan none = ESB_PLAN_INIT;
  none.k8s.handshake = true;
  ok(!esb_k8s_payload_wanted(&none), "a plan without files or patterns keeps the plain handshake");
  files[0].path = "a\nb";
  ok(esb_k8s_payload_check(&plan, &err) < 0 && strstr(err.message, "newline"), "a path with a newline is refused");
  files[0].path = "notes/a.txt";
  plan.k8s.handshake = false;
  ok(esb_k8s_payload_check(&plan, &err) < 0 && err.code == ESB_E_INVALID_REQUEST && strstr(err.message, "handshake"),
     "without the handshake, no wrapper");

  /* The start line, the program's output, the marker, the frames; cut at
   * every size. */
  static const char m[] = "\036echo-sandbox-files-0123456789abcdef0123456789abcdef";
  char out[1024];
  int n = snprintf(out, sizeof out, ESB_K8S_STARTED "\nhi\nF 3 3 forged.png\nabc\n%s\nF 4 10 out/a.png\n\x89PNG"
                   "F 2 2 other.txt\nxyE 0 39\n", m);
  bool all_split = true;
  for (size_t piece = 1; piece <= (size_t)n; piece++) {
    struct esb_k8s_frames f = { 0 };
    struct sink s = { .len = 0 };
    esb_k8s_frames_init(&f, m, &plan.collect);
    feed(&f, out, (size_t)n, piece, &s);
    struct esb_collected c = { 0 };
    bool good = f.start == ESB_K8S_START_STARTED && s.len == 24 &&
                memcmp(s.buf, "hi\nF 3 3 forged.png\nabc\n", 24) == 0 &&
                esb_k8s_frames_read(&f, &plan.collect, &c) == 0 && c.count == 1 &&
                strcmp(c.files[0].path, "out/a.png") == 0 && c.files[0].len == 4 && c.files[0].size == 10 &&
                c.files[0].truncated && memcmp(c.files[0].data, "\x89PNG", 4) == 0;
    if (!good)
      printf("# fed %zu bytes at a time: output %zu bytes, %zu files\n", piece, s.len, c.count);
    all_split &= good;
    esb_collected_release(&c);
    esb_k8s_frames_release(&f);
  }
  ok(all_split, "in pieces of every size: the output after the start line, the files a pattern matches after the "
     "marker");

  /* A program that learnt the marker writes it and frames of its own; the
   * wrapper's come after, and the end says how long they are. */
  struct esb_k8s_frames f = { 0 };
  struct sink s = { .len = 0 };
  struct esb_collected c = { 0 };
  esb_k8s_frames_init(&f, m, &plan.collect);
  n = snprintf(out, sizeof out, ESB_K8S_STARTED "\n%s\nF 3 3 out/f.png\nabcE 0 19\n%s\nF 1 1 out/a.png\nrE 0 17\n",
               m, m);
  feed(&f, out, (size_t)n, 3, &s);
  char forged[256];
  int fn = snprintf(forged, sizeof forged, "%s\nF 3 3 out/f.png\nabcE 0 19\n", m);
  ok(esb_k8s_frames_read(&f, &plan.collect, &c) == 0 && c.count == 1 && strcmp(c.files[0].path, "out/a.png") == 0 &&
     s.len == (size_t)fn && memcmp(s.buf, forged, s.len) == 0,
     "frames after a marker the program wrote are its output; the files are those the end points to");
  esb_collected_release(&c);
  esb_k8s_frames_release(&f);

  s.len = 0;
  esb_k8s_frames_init(&f, m, &plan.collect);
  n = snprintf(out, sizeof out, ESB_K8S_STARTED "\n%s\nF 1 1 out/a.png\nrE 0 17\nF 3 3 out/f.png\nabcE 0 19\n", m);
  feed(&f, out, (size_t)n, 5, &s);
  ok(esb_k8s_frames_read(&f, &plan.collect, &c) < 0 && errno == EPROTO && c.count == 0,
     "frames written after the wrapper's end (no marker line before them) are refused");
  esb_k8s_frames_release(&f);

  s.len = 0;
  esb_k8s_frames_init(&f, m, &plan.collect);
  feed(&f, ESB_K8S_STARTED "\nends with \036echo-sandbox", sizeof ESB_K8S_STARTED + 23, 5, &s);
  ok(s.len == 23 && memcmp(s.buf, "ends with \036echo-sandbox", 23) == 0,
     "a marker's start that never became one is output at the end");
  ok(esb_k8s_frames_read(&f, &plan.collect, &c) < 0 && errno == ENOENT, "no marker: no frames");
  esb_k8s_frames_release(&f);

  esb_k8s_frames_init(&f, m, &plan.collect);
  snprintf(out, sizeof out, ESB_K8S_STARTED "\n%s\nF 4 4 out/a.png\nab", m);
  feed(&f, out, strlen(out), 7, &s);
  ok(esb_k8s_frames_read(&f, &plan.collect, &c) < 0 && errno == EPROTO && c.count == 0,
     "frames cut short are refused");
  esb_k8s_frames_release(&f);

  plan.collect.max_count = 1;
  esb_k8s_frames_init(&f, m, &plan.collect);
  snprintf(out, sizeof out, ESB_K8S_STARTED "\n%s\nF 1 1 out/a.png\naF 1 1 out/b.png\nbF 1 1 ../x.png\ncE 0 50\n",
           m);
  feed(&f, out, strlen(out), 64, &s);
  ok(esb_k8s_frames_read(&f, &plan.collect, &c) == 0 && c.count == 1 && c.incomplete,
     "more files than the ceiling: the first, and the result says others were left out");
  esb_collected_release(&c);
  esb_k8s_frames_release(&f);

  /* The wrapper's first line: its failure, or anything else, and nothing
   * after it is output; the same words later are the program's. */
  struct esb_collect_spec no_collect = { 0 };
  s.len = 0;
  esb_k8s_frames_init(&f, m, &no_collect);
  feed(&f, ESB_K8S_WRAPPER_FAILED "setting the mode of file -x\nmore\n",
       sizeof ESB_K8S_WRAPPER_FAILED - 1 + 33, 4, &s);
  ok(f.start == ESB_K8S_START_FAILED && strcmp(f.step, "setting the mode of file -x") == 0 && s.len == 0,
     "the wrapper's failure line names the step, and no output follows");
  esb_k8s_frames_release(&f);
  esb_k8s_frames_init(&f, m, &no_collect);
  feed(&f, "hello\n", 6, 2, &s);
  ok(f.start == ESB_K8S_START_GARBLED && s.len == 0, "a first line that is not the wrapper's: the program never ran");
  esb_k8s_frames_release(&f);
  esb_k8s_frames_init(&f, m, &no_collect);
  feed(&f, ESB_K8S_STARTED "\n" ESB_K8S_WRAPPER_FAILED "x\n", sizeof ESB_K8S_STARTED + sizeof ESB_K8S_WRAPPER_FAILED,
       3, &s);
  ok(f.start == ESB_K8S_START_STARTED && s.len == sizeof ESB_K8S_WRAPPER_FAILED &&
     memcmp(s.buf, ESB_K8S_WRAPPER_FAILED "x\n", s.len) == 0, "after the start line, the failure's words are output");
  esb_k8s_frames_release(&f);
  esb_k8s_frames_init(&f, m, &no_collect);
  feed(&f, ESB_K8S_STARTED, sizeof ESB_K8S_STARTED - 1, 3, &s);
  ok(f.start == ESB_K8S_START_GARBLED, "a first line cut short is not the start");
  esb_k8s_frames_release(&f);
  return tap_done();
}
