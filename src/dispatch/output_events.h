/* Output events: a run's output as it comes, cut into events that each are
 * whole UTF-8 text (or, where the bytes are not UTF-8, marked as bytes for
 * base64), within the plan's max_stream_bytes. The faces that stream (batch
 * --events, the daemon's ?stream=1) share it, so the events have one shape
 * everywhere. Pure: no I/O; the emit callback does that.
 *
 * A chunk that ends inside a UTF-8 sequence keeps those bytes (at most 3)
 * for the stream's next chunk, so text is never cut into two base64 halves;
 * esb_output_events_flush hands out what is kept once the run is over. */
#ifndef ESB_DISPATCH_OUTPUT_EVENTS_H
#define ESB_DISPATCH_OUTPUT_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct esb_output_events {
  /* inputs */
  uint64_t max_bytes;   /* the ceiling of all events' bytes together */
  /* stream 1 stdout, 2 stderr; text: the bytes are valid UTF-8 */
  void (*emit)(int stream, const char *data, size_t len, bool text, void *userdata);
  /* once, when the ceiling stops the events (sent: the bytes they carried) */
  void (*reached_ceiling)(uint64_t sent, void *userdata);
  void *userdata;
  /* private */
  uint64_t sent;
  bool capped;
  char carry[2][4];
  size_t carry_len[2];
};

#define ESB_OUTPUT_EVENTS_INIT { .max_bytes = UINT64_MAX }

/* Readies ev (as ESB_OUTPUT_EVENTS_INIT) with its callbacks. */
void esb_output_events_init(struct esb_output_events *ev,
                            void (*emit)(int stream, const char *data, size_t len, bool text, void *userdata),
                            void (*reached_ceiling)(uint64_t sent, void *userdata), void *userdata);

/* Feeds a chunk of stream 1 or 2. */
void esb_output_events_feed(struct esb_output_events *ev, int stream, const char *data, size_t len);

/* The run is over: emits what the streams kept back. */
void esb_output_events_flush(struct esb_output_events *ev);

/* How many trailing bytes of s[0..n) begin a UTF-8 sequence that n cuts
 * short (0 to 3). */
size_t esb_utf8_cut_tail(const char *s, size_t n);

#endif
