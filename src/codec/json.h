/* The JSON front end that the CLI commands and the daemon share: a small Lua
 * state holding cjson (the base, string and math libraries only: it runs our
 * own modules, never a policy's code), and protected encode/decode calls on it so a
 * malformed document or an out-of-memory error becomes a message, not a
 * longjmp past the caller's frees. The caller owns the state (lua_close). */
#ifndef ESB_CODEC_JSON_H
#define ESB_CODEC_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "engine/contract/result.h"
#include "engine/contract/language.h"
#include "engine/error.h"

/* A new front-end state; NULL when out of memory. */
lua_State *esb_json_state(void);

/* Pushes cjson's field NAME ("decode", "encode", "null"). Raw access: never
 * raises. */
void esb_json_field(lua_State *L, const char *name);

/* Decodes TEXT and pushes the value: 0; or -1 with err
 * (ESB_E_INVALID_REQUEST, "invalid request JSON: ...") and nothing pushed. */
int esb_json_decode(lua_State *L, const char *text, size_t len, struct esb_error *err);

/* Replaces the value on top of the stack by its JSON text: 0; or -1 with the
 * value popped and err (ESB_E_SYSTEM) saying why. */
int esb_json_encode(lua_State *L, struct esb_error *err);

/* Pushes the result as a table, cjson.null where the result model has null:
 * 0; or -1 (out of memory) with nothing pushed. */
int esb_json_push_result(lua_State *L, const struct esb_result *r);

/* An output event (dispatch/output_events.h), the one shape of every face:
 * {"event": "output", "stream": "stdout" | "stderr", "data": TEXT} or, where
 * text is false, "data_base64"; stream 0: {"event": "truncated",
 * "max_stream_bytes": ceiling}. Pushes the table: 0; or -1 (out of memory)
 * with nothing pushed. The caller may add fields (an id) before encoding. */
struct esb_json_event {
  int stream;
  const char *data;
  size_t len;
  bool text;
  uint64_t ceiling;
  const struct esb_egress_attempt *egress; /* set: {"event": "egress", host, port,
                                              allowed, reason}, as the proxy decided */
};
int esb_json_push_event(lua_State *L, const struct esb_json_event *ev);

/* The same, unprotected (it raises when out of memory): for a caller's own
 * protected function that adds to the table. [-0, +1, m] */
void esb_json_event_table(lua_State *L, const struct esb_json_event *ev);

/* {"languages": [{"name", "image", "file"}, ...]} (engine/contract/language.h's list,
 * absent fields left out), the answer of GET /v1/languages and `policy
 * languages`: 0; or -1 (out of memory) with nothing pushed. */
int esb_json_push_languages(lua_State *L, const struct esb_language *list, size_t n);

/* Encodes the value on top of the stack, writes it and a newline to fd 1 and
 * pops it; a value that cannot be encoded is reported on stderr. */
void esb_json_print(lua_State *L);

#endif
