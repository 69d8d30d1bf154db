#include "engine/contract/capture.h"

#include "tap.h"

int main(void) {
  struct esb_capture c = ESB_CAPTURE_INIT;
  c.cap = 10;
  ok(esb_capture_append(&c, "hello", 5) == 0, "appends under the cap");
  ok(!esb_capture_truncated(&c), "not truncated yet");
  esb_capture_append(&c, " world, and more", 16);
  is_int(c.len, 10, "keeps the first cap bytes");
  is_int(c.total, 21, "counts every byte");
  ok(esb_capture_truncated(&c), "says it truncated");
  is_str(c.data, "hello worl", "what it kept, NUL-terminated");
  esb_capture_append(&c, "x", 1);
  is_int(c.len, 10, "nothing more is kept once full");
  is_int(c.total, 22, "but it is counted");
  esb_capture_release(&c);
  ok(c.data == NULL && c.len == 0, "release frees the data");

  struct esb_capture nul = ESB_CAPTURE_INIT;
  nul.cap = 1 << 20;
  ok(esb_capture_append(&nul, "a\0b", 3) == 0 && nul.len == 3 && nul.data[1] == '\0', "keeps NUL bytes");
  static char big[200000];
  memset(big, 'z', sizeof big);
  esb_capture_append(&nul, big, sizeof big);
  is_int(nul.len, 200003, "grows for a large chunk");
  ok(nul.data[nul.len] == '\0', "and stays terminated");
  esb_capture_release(&nul);

  struct esb_capture none = ESB_CAPTURE_INIT;
  esb_capture_append(&none, "abc", 3);
  is_int(none.len, 0, "a cap of 0 keeps nothing");
  is_int(none.total, 3, "and counts all");
  esb_capture_release(&none);
  return tap_done();
}
