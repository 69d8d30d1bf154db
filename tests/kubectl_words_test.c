#include "backend/kubectl_words.h"

#include "tap.h"

static bool own(const char *line) { return esb_kubectl_own_line(line, strlen(line)); }

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

  char quoted[] = "E1206 13:54:45.783326   21077 memcache.go:265] couldn't get the API group list\n"
                  "Error from server (TooManyRequests): try later\nW0102 00:00:00.000001 1 x.go:1] w";
  n = esb_kubectl_unklog(quoted, strlen(quoted));
  quoted[n] = '\0';
  is_str(quoted, "couldn't get the API group list\nError from server (TooManyRequests): try later\nw",
         "klog lines keep only their message");
  return tap_done();
}
