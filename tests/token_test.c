/* The daemon's bearer token (src/daemon/token.c). */
#include "daemon/token.h"

#include <stdlib.h>
#include <string.h>

#include "tap.h"

static const char *take(const char *text, char *copy) {
  strcpy(copy, text);
  return esb_token_take(copy);
}

int main(void) {
  char copy[64];
  ok(take("s3cret\n", copy) == NULL, "a token on its own line is one");
  is_str(copy, "s3cret", "cut at the line's end");
  ok(take("s3cret\r\nmore\n", copy) == NULL && strcmp(copy, "s3cret") == 0, "a CRLF line, the rest ignored");
  ok(take("s3cret", copy) == NULL, "no newline at the end");
  /* Checked: without the check of an empty first line, "\nsecond-line"
   * gave the token "". */
  static const char *const empty[] = { "", "\n", "\r\n", "\nsecond-line\n" };
  for (size_t i = 0; i < sizeof empty / sizeof *empty; i++) {
    const char *why = take(empty[i], copy);
    ok(why && strstr(why, "empty"), "an empty first line is no token");
  }
  ok(take("s3cret \n", copy) != NULL, "a trailing blank is refused");
  ok(take(" s3cret\n", copy) != NULL, "a leading blank too");
  ok(take("s3\tcret\n", copy) != NULL, "a tab");
  ok(take("s3cr\xc3\xa9t\n", copy) != NULL, "a non-ASCII byte");

  ok(esb_token_matches("s3cret", "s3cret"), "the token matches");
  ok(!esb_token_matches("", "s3cret"), "empty does not");
  ok(!esb_token_matches("s", "s3cret"), "one byte does not");
  ok(!esb_token_matches("s3cre", "s3cret"), "a prefix does not");
  ok(!esb_token_matches("s3cretX", "s3cret"), "a longer one does not");
  ok(!esb_token_matches("s3crets3cret", "s3cret"), "the token twice does not");
  ok(!esb_token_matches("S3cret", "s3cret"), "the same length, wrong, does not");
  char *big = malloc(100001);
  memset(big, 's', 100000);
  big[100000] = '\0';
  ok(big && !esb_token_matches(big, "s3cret"), "100000 bytes do not");
  free(big);
  /* Checked: without the guard of an empty secret, the next check died of
   * SIGFPE (the modulo by the secret's length) and the one after matched. */
  ok(!esb_token_matches("x", ""), "an empty secret matches nothing");
  ok(!esb_token_matches("", ""), "not even an empty token");
  return tap_done();
}
