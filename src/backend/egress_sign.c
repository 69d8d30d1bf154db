/* Tokens signed and opened (backend/egress_token.h): HMAC-SHA256 and
 * base64, OpenSSL's, in echo-sandbox-egress only. */
#include "backend/egress_token.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "engine/fileio.h"

enum { KEY_MIN = 32, KEY_MAX = 4096, MAC_LEN = 32 };

int esb_egress_key_read(const char *path, unsigned char **key, size_t *len, struct esb_error *err) {
  char *data = esb_read_file(path, len);
  if (!data)
    return esb_error_errno(err, ESB_E_POLICY, "egress proxy: the key file %s", path);
  if (*len < KEY_MIN || *len > KEY_MAX) {
    OPENSSL_cleanse(data, *len);
    free(data);
    return esb_error_set(err, ESB_E_POLICY, "egress proxy: the key file %s must hold %d to %d bytes (e.g. "
                         "`head -c 32 /dev/urandom`)", path, KEY_MIN, KEY_MAX);
  }
  *key = (unsigned char *)data;
  return 0;
}

/* base64url without padding, of n bytes, into a malloc'd string. */
static char *b64url(const unsigned char *s, size_t n) {
  char *out = malloc(4 * ((n + 2) / 3) + 1);
  if (!out)
    return NULL;
  int len = EVP_EncodeBlock((unsigned char *)out, s, (int)n);
  while (len > 0 && out[len - 1] == '=')
    len--;
  out[len] = '\0';
  for (char *c = out; *c; c++)
    *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
  return out;
}

/* Standard base64 (url: base64url, padding optional) of n bytes, decoded
 * into a malloc'd buffer (NUL after it); NULL where it is none. */
static unsigned char *unb64(const char *s, size_t n, bool url, size_t *out_len) {
  size_t padded = (n + 3) / 4 * 4;
  char *in = malloc(padded + 1);
  unsigned char *out = malloc(padded / 4 * 3 + 1);
  int len = -1;
  if (in && out) {
    for (size_t i = 0; i < n; i++)
      in[i] = !url ? s[i] : s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i] == '+' || s[i] == '/' ? '!' : s[i];
    memset(in + n, '=', padded - n);
    len = n ? EVP_DecodeBlock(out, (unsigned char *)in, (int)padded) : -1;
  }
  size_t pads = 0;
  for (size_t i = padded; i > 0 && in && in[i - 1] == '=' && pads < 2; i--)
    pads++;
  free(in);
  if (len < 0 || (size_t)len < pads) {
    free(out);
    return NULL;
  }
  *out_len = (size_t)len - pads; /* EVP_DecodeBlock counts the padding's bytes as zeros */
  out[*out_len] = '\0';
  return out;
}

static bool mac(const unsigned char *key, size_t key_len, const char *s, size_t n, unsigned char out[MAC_LEN]) {
  unsigned int len = 0;
  return HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)s, n, out, &len) && len == MAC_LEN;
}

char *esb_egress_token_sign(const unsigned char *key, size_t key_len, const char *grant) {
  unsigned char sig[MAC_LEN];
  char *body = b64url((const unsigned char *)grant, strlen(grant)), *token = NULL;
  char *tail = body && mac(key, key_len, body, strlen(body), sig) ? b64url(sig, sizeof sig) : NULL;
  if (tail && asprintf(&token, "%s.%s", body, tail) < 0)
    token = NULL;
  free(body);
  free(tail);
  return token;
}

const char *esb_egress_token_open(const unsigned char *key, size_t key_len, const char *token, size_t len,
                                  struct esb_egress_grant *g) {
  *g = (struct esb_egress_grant){ 0 };
  const char *dot = len < ESB_EGRESS_TOKEN_MAX ? memchr(token, '.', len) : NULL;
  if (!dot)
    return "not a token (too long, or no signature)";
  unsigned char want[MAC_LEN];
  size_t sig_len = 0, grant_len = 0;
  unsigned char *sig = unb64(dot + 1, len - (size_t)(dot + 1 - token), true, &sig_len);
  bool holds = sig && sig_len == MAC_LEN && mac(key, key_len, token, (size_t)(dot - token), want) &&
               CRYPTO_memcmp(sig, want, MAC_LEN) == 0;
  free(sig);
  if (!holds)
    return "its signature does not hold (edited, or signed with another key)";
  unsigned char *grant = unb64(token, (size_t)(dot - token), true, &grant_len);
  int rc = grant ? esb_egress_grant_parse((const char *)grant, grant_len, g) : -1;
  free(grant);
  return rc == 0 ? NULL : "signed, but not a grant this proxy reads";
}

char *esb_egress_token_basic(const char *token) {
  size_t n = strlen(token) + 1;
  char *pair = malloc(n + 1), *out = malloc(6 + 4 * ((n + 2) / 3) + 1);
  if (pair && out) {
    memcpy(pair, token, n - 1);
    pair[n - 1] = ':';
    memcpy(out, "Basic ", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, (unsigned char *)pair, (int)n);
  } else {
    free(out);
    out = NULL;
  }
  free(pair);
  return out;
}

char *esb_egress_token_from_basic(const char *value, size_t len) {
  while (len && (*value == ' ' || *value == '\t'))
    value++, len--;
  if (len < 6 || strncasecmp(value, "basic ", 6) != 0)
    return NULL;
  value += 6;
  len -= 6;
  while (len && (value[len - 1] == ' ' || value[len - 1] == '\t'))
    len--;
  size_t n = 0;
  unsigned char *pair = len ? unb64(value, len, false, &n) : NULL;
  char *colon = pair ? memchr(pair, ':', n) : NULL;
  char *token = colon && colon != (char *)pair ? strndup((char *)pair, (size_t)(colon - (char *)pair)) : NULL;
  if (pair)
    OPENSSL_cleanse(pair, n);
  free(pair);
  return token;
}
