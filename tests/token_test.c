/* The daemon's bearer token (src/daemon/token.c). */
#include "daemon/token.h"

#include <stdlib.h>
#include <string.h>

#include "tap.h"

/* The reason esb_token_line gives for TEXT (its bytes up to the NUL), and
 * the token's length in *n. */
static const char *line(const char *text, size_t *n) {
  static struct esb_error err;
  return esb_token_line(text, strlen(text), n, &err) == 0 ? NULL : err.message;
}

int main(void) {
  size_t n;
  ok(line("s3cret\n", &n) == NULL, "a token on its own line is one");
  is_int(n, 6, "cut at the line's end");
  ok(line("s3cret\r\nmore\n", &n) == NULL && n == 6, "a CRLF line, the rest ignored");
  ok(line("s3cret", &n) == NULL && n == 6, "no newline at the end");
  /* The file's bytes are not NUL-terminated: only len of them count.
   * Checked: with the line cut by strcspn (a C string), this read past the
   * buffer (ASan) and took the bytes after it into the token. */
  struct esb_error err = ESB_ERROR_INIT;
  ok(esb_token_line("s3cretGARBAGE", 6, &n, &err) == 0 && n == 6, "only the file's bytes are read");
  /* Checked: without the check of an empty first line, "\nsecond-line"
   * gave the token "". */
  static const char *const empty[] = { "", "\n", "\r\n", "\r", "\nsecond-line\n" };
  for (size_t i = 0; i < sizeof empty / sizeof *empty; i++) {
    const char *why = line(empty[i], &n);
    ok(why && strstr(why, "empty"), "an empty first line is no token");
  }
  ok(line("s3cret \n", &n) != NULL, "a trailing blank is refused");
  ok(line(" s3cret\n", &n) != NULL, "a leading blank too");
  ok(line("s3\tcret\n", &n) != NULL, "a tab");
  ok(line("s3\rcret\n", &n) != NULL, "a CR inside the line");
  ok(line("s3cr\xc3\xa9t\n", &n) != NULL, "a non-ASCII byte");
  ok(esb_token_line("s3\0cret\n", 7, &n, &err) < 0 && err.code == ESB_E_INVALID_REQUEST,
     "a NUL, which would cut the token short");

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
