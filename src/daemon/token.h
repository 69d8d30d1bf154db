/* The bearer token of `serve --token-file`: what a token file must hold,
 * and the comparison of a token a client sent with it. Pure (no HTTP), so
 * both have unit tests. */
#ifndef ESB_DAEMON_TOKEN_H
#define ESB_DAEMON_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/error.h"

/* Whether the first line of TEXT[0..len) (a token file's contents, not
 * NUL-terminated) is a token: 0 with its length in *token_len; else -1 with
 * *err (invalid_request: "its first line is empty", ...). A token is one or
 * more visible ASCII characters: anything else cannot travel in an
 * Authorization header as it was written (HTTP trims blanks), and a NUL
 * would cut it short. */
int esb_token_line(const char *text, size_t len, size_t *token_len, struct esb_error *err);

/* Whether GIVEN is SECRET, in time that depends on GIVEN's length only,
 * never on how much of it matches. Safe for any lengths: an empty SECRET
 * matches nothing, not even an empty GIVEN. */
bool esb_token_matches(const char *given, const char *secret);

#endif
