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

  char quoted[] = "E1206 13:54:45.783326   21077 memcache.go:265] couldn't get the API group list\n"
                  "Error from server (TooManyRequests): try later\nW0102 00:00:00.000001 1 x.go:1] w";
  n = esb_kubectl_unklog(quoted, strlen(quoted));
  quoted[n] = '\0';
  is_str(quoted, "couldn't get the API group list\nError from server (TooManyRequests): try later\nw",
         "klog lines keep only their message");
  return tap_done();
}
