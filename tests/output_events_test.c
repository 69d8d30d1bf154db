/* Output events (src/dispatch/output_events.c): UTF-8 kept whole across
 * chunks, bytes that are not text marked, and the ceiling. */
#include "dispatch/output_events.h"

#include <stdio.h>

#include "tap.h"

struct seen {
  char text[256];
  size_t len;
  int events, binary, streams[3];
  uint64_t ceiling;
};

static void emit(int stream, const char *data, size_t len, bool text, void *userdata) {
  struct seen *s = userdata;
  memcpy(s->text + s->len, data, len);
  s->len += len;
  s->text[s->len] = '\0';
  s->events++;
  s->binary += !text;
  s->streams[stream]++;
}

static void reached(uint64_t sent, void *userdata) {
  ((struct seen *)userdata)->ceiling = sent;
}

int main(void) {
  is_int(esb_utf8_cut_tail("abc", 3), 0, "ASCII: nothing cut");
  is_int(esb_utf8_cut_tail("a\xc3", 2), 1, "a two-byte sequence cut after its lead");
  is_int(esb_utf8_cut_tail("a\xc3\xa9", 3), 0, "a whole two-byte sequence");
  is_int(esb_utf8_cut_tail("\xe2\x82", 2), 2, "a three-byte sequence cut after two");
  is_int(esb_utf8_cut_tail("\xf0\x9f\x98", 3), 3, "a four-byte sequence cut after three");
  is_int(esb_utf8_cut_tail("\xf0\x9f\x98\x80", 4), 0, "a whole four-byte sequence");
  is_int(esb_utf8_cut_tail("", 0), 0, "nothing");

  struct seen s = { 0 };
  struct esb_output_events ev = ESB_OUTPUT_EVENTS_INIT;
  ev.emit = emit;
  ev.reached_ceiling = reached;
  ev.userdata = &s;
  esb_output_events_feed(&ev, 1, "caf\xc3", 4);
  is_str(s.text, "caf", "the cut sequence is kept back");
  is_int(s.binary, 0, "and what went out is text");
  esb_output_events_feed(&ev, 1, "\xa9!", 2);
  is_str(s.text, "caf\xc3\xa9!", "then sent whole with the next chunk");
  is_int(s.binary, 0, "as text");
  esb_output_events_feed(&ev, 2, "\xff\xfe", 2);
  is_int(s.binary, 1, "bytes that are not UTF-8 are marked");
  is_int(s.streams[2], 1, "on their stream");
  esb_output_events_feed(&ev, 1, "x\xe2\x82", 3);
  esb_output_events_flush(&ev);
  is_int(s.binary, 2, "a cut sequence the run never finished goes out as bytes at the end");
  is_int(s.len, 11, "every byte once");

  struct seen c = { 0 };
  struct esb_output_events capped = ESB_OUTPUT_EVENTS_INIT;
  capped.max_bytes = 5;
  capped.emit = emit;
  capped.reached_ceiling = reached;
  capped.userdata = &c;
  esb_output_events_feed(&capped, 1, "abc", 3);
  esb_output_events_feed(&capped, 2, "defg", 4);
  is_str(c.text, "abcde", "the ceiling cuts the events");
  is_int(c.ceiling, 5, "and says how much they carried, once");
  esb_output_events_feed(&capped, 1, "more", 4);
  esb_output_events_flush(&capped);
  is_int(c.events, 2, "nothing after the ceiling");
  return tap_done();
}
