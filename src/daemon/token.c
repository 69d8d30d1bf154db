#include "daemon/token.h"

#include <stddef.h>
#include <string.h>

int esb_token_line(const char *text, size_t len, size_t *token_len, struct esb_error *err) {
  size_t n = 0;
  while (n < len && text[n] != '\n')
    n++;
  if (n > 0 && text[n - 1] == '\r') /* a CRLF line */
    n--;
  *token_len = n;
  if (n == 0)
    return esb_error_set(err, ESB_E_INVALID_REQUEST, "its first line is empty: the token goes there");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)text[i];
    if (c <= ' ' || c >= 0x7f)
      return esb_error_set(err, ESB_E_INVALID_REQUEST, "its first line holds a blank, a control or a non-ASCII "
                           "character: a token is visible ASCII characters only");
  }
  return 0;
}

bool esb_token_matches(const char *given, const char *secret) {
  size_t n = strlen(given), m = strlen(secret);
  /* No secret is no key: refusing here also keeps the modulo below from
   * dividing by zero. */
  if (m == 0)
    return false;
  /* Every byte of GIVEN is compared, against the secret's bytes in turn,
   * with no early exit: the time says how long GIVEN is, nothing else. */
  volatile unsigned char diff = (unsigned char)(n != m);
  for (size_t i = 0; i < n; i++)
    diff |= (unsigned char)(given[i] ^ secret[i % m]);
  return diff == 0;
}
