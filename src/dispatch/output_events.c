#include "dispatch/output_events.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "engine/text.h"

size_t esb_utf8_cut_tail(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  for (size_t back = 1; back <= 3 && back <= n; back++) {
    unsigned char c = u[n - back];
    if ((c & 0xC0) == 0x80)
      continue; /* a continuation byte: look further back for its lead */
    size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

/* Emits data within the ceiling; false once it is reached. */
static bool emit_within(struct esb_output_events *ev, int stream, const char *data, size_t len) {
  if (ev->capped)
    return false;
  if (len > ev->max_bytes - ev->sent) {
    len = (size_t)(ev->max_bytes - ev->sent);
    ev->capped = true;
  }
  if (len) {
    ev->sent += len;
    ev->emit(stream, data, len, esb_utf8_valid(data, len), ev->userdata);
  }
  if (ev->capped && ev->reached_ceiling)
    ev->reached_ceiling(ev->sent, ev->userdata);
  return !ev->capped;
}

void esb_output_events_init(struct esb_output_events *ev,
                            void (*emit)(int stream, const char *data, size_t len, bool text, void *userdata),
                            void (*reached_ceiling)(uint64_t sent, void *userdata), void *userdata) {
  *ev = (struct esb_output_events)ESB_OUTPUT_EVENTS_INIT;
  ev->emit = emit;
  ev->reached_ceiling = reached_ceiling;
  ev->userdata = userdata;
}

void esb_output_events_feed(struct esb_output_events *ev, int stream, const char *data, size_t len) {
  assert(stream == 1 || stream == 2);
  if (ev->capped || !len)
    return;
  int i = stream - 1;
  char *joined = NULL;
  if (ev->carry_len[i]) { /* the start of a sequence the last chunk cut */
    if (!(joined = malloc(ev->carry_len[i] + len)))
      return; /* out of memory: these bytes miss the events, the result keeps them */
    memcpy(joined, ev->carry[i], ev->carry_len[i]);
    memcpy(joined + ev->carry_len[i], data, len);
    len += ev->carry_len[i];
    data = joined;
    ev->carry_len[i] = 0;
  }
  size_t keep = esb_utf8_cut_tail(data, len);
  /* Only a cut that leaves whole text before it is kept back: bytes that are
   * not UTF-8 anyway go out as they are. */
  if (keep && keep < len && !esb_utf8_valid(data, len - keep))
    keep = 0;
  if (emit_within(ev, stream, data, len - keep) && keep) {
    memcpy(ev->carry[i], data + len - keep, keep);
    ev->carry_len[i] = keep;
  }
  free(joined);
}

void esb_output_events_flush(struct esb_output_events *ev) {
  for (int i = 0; i < 2; i++) {
    size_t n = ev->carry_len[i];
    ev->carry_len[i] = 0;
    if (n)
      emit_within(ev, i + 1, ev->carry[i], n);
  }
}
