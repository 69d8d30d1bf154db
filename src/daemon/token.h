/* The bearer token of `serve --token-file`: what a token file must hold,
 * and the comparison of a token a client sent with it. Pure (no HTTP), so
 * both have unit tests. */
#ifndef ESB_DAEMON_TOKEN_H
#define ESB_DAEMON_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

/* What is wrong with the first line of TEXT[0..len) (a token file's
 * contents, not NUL-terminated) as a token: NULL when it is one, with its
 * length in *token_len; else a reason ("its first line is empty", ...). A
 * token is one or more visible ASCII characters: anything else cannot
 * travel in an Authorization header as it was written (HTTP trims blanks),
 * and a NUL would cut it short. */
const char *esb_token_line(const char *text, size_t len, size_t *token_len);

/* Whether GIVEN is SECRET, in time that depends on GIVEN's length only,
 * never on how much of it matches. Safe for any lengths: an empty SECRET
 * matches nothing, not even an empty GIVEN. */
bool esb_token_matches(const char *given, const char *secret);

#endif
