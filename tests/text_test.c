#include "engine/text.h"

#include "tap.h"

static bool utf8(const char *s) { return esb_utf8_valid(s, strlen(s)); }

/* esb_utf8_scrub of in (len bytes) is want, and valid UTF-8. */
static void scrub_is(const char *in, size_t len, const char *want, const char *what) {
  char out[64];
  size_t n = esb_utf8_scrub(in, len, out);
  ok(n == strlen(want) && memcmp(out, want, n) == 0 && esb_utf8_valid(out, n), what);
}

static void base64_is(const char *in, size_t len, const char *want) {
  char out[64];
  size_t n = esb_base64_length(len);
  esb_base64_encode(in, len, out);
  out[n] = '\0';
  is_str(out, want, "base64 of a short string");
}

int main(void) {
  ok(utf8(""), "the empty string is UTF-8");
  ok(utf8("hello"), "ASCII is UTF-8");
  ok(utf8("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80"), "two-, three- and four-byte sequences");
  ok(esb_utf8_valid("a\0b", 3), "a NUL byte is UTF-8");
  ok(!utf8("\xc0\xaf"), "an overlong '/' is refused");
  ok(!utf8("\xe0\x80\xaf"), "an overlong three-byte form is refused");
  ok(!utf8("\xed\xa0\x80"), "a surrogate is refused");
  ok(!utf8("\xf4\x90\x80\x80"), "above U+10FFFF is refused");
  ok(!utf8("\xe2\x82"), "a sequence cut short is refused");
  ok(!utf8("\x80"), "a lone continuation byte is refused");
  ok(!utf8("\xff"), "0xff is refused");
  is_int(esb_utf8_prefix("ab\xc3\xbc\xe9x", 6), 4, "the valid prefix ends before the first bad byte");
  is_int(esb_utf8_prefix("ab", 2), 2, "all of valid text is its prefix");
  scrub_is("gr\xc3\xbc\xc3\x9f", 6, "gr\xc3\xbc\xc3\x9f", "scrub keeps valid UTF-8 as it is");
  scrub_is("caf\xe9.txt", 8, "caf\xef\xbf\xbd.txt", "scrub replaces a Latin-1 byte by U+FFFD");
  scrub_is("\xff\xfe", 2, "\xef\xbf\xbd\xef\xbf\xbd", "each byte that starts no character, one U+FFFD");
  scrub_is("\xe2\x82", 2, "\xef\xbf\xbd\xef\xbf\xbd", "a sequence cut short: U+FFFD per byte");
  scrub_is("\xed\xa0\x80!", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd!", "a surrogate is no character");
  is_int(esb_base64_length(0), 0, "base64 of nothing is empty");
  is_int(esb_base64_length(1), 4, "one byte takes four characters");
  is_int(esb_base64_length(3), 4, "three bytes take four characters");
  is_int(esb_base64_length(4), 8, "four bytes take eight characters");
  base64_is("f", 1, "Zg==");
  base64_is("fo", 2, "Zm8=");
  base64_is("foo", 3, "Zm9v");
  base64_is("foobar", 6, "Zm9vYmFy");
  base64_is("\xff\xfe\x00", 3, "//4A");
  static const char *const texts[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYmFy", "//4A"};
  static const char *const bytes[] = {"", "f", "fo", "foo", "foobar", "\xff\xfe"};
  static const size_t lens[] = {0, 1, 2, 3, 6, 3};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    char out[16];
    size_t n = 99;
    ok(esb_base64_decode(texts[i], strlen(texts[i]), out, &n) == 0 && n == lens[i] &&
       memcmp(out, bytes[i], n) == 0, "base64 decodes what it encodes");
  }
  char out[16];
  size_t n;
  is_int(esb_base64_decode("Zg=", 3, out, &n), -1, "a length that is no multiple of 4 is refused");
  is_int(esb_base64_decode("Zm9v\nYmFy", 9, out, &n), -1, "a line break is refused");
  is_int(esb_base64_decode("Zh==", 4, out, &n), -1, "bits the padding leaves unused must be zero");
  is_int(esb_base64_decode("Z===", 4, out, &n), -1, "three padding characters are refused");
  is_int(esb_base64_decode("Zg==Zg==", 8, out, &n), -1, "padding only at the end");
  is_int(esb_base64_decode("Zm9-", 4, out, &n), -1, "the URL alphabet is refused");
  return tap_done();
}
