/* What the API server's answers say, and the exec's words
 * (backend/kube_exec.h): pure, linked into the engine and into
 * echo-sandbox-kube. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/kube_api.h"
#include "backend/kube_exec.h"


static const struct { int code; const char *reason; } reasons[] = {
  { 400, "BadRequest" }, { 401, "Unauthorized" }, { 403, "Forbidden" }, { 404, "NotFound" },
  { 405, "MethodNotAllowed" }, { 409, "Conflict" }, { 410, "Expired" }, { 422, "Invalid" },
  { 429, "TooManyRequests" }, { 500, "InternalError" }, { 503, "ServiceUnavailable" }, { 504, "Timeout" },
};

/* The JSON string value of "key" in body, its escapes left as they are. */
static int string_field(const char *body, const char *key, char *out, size_t n) {
  char k[32];
  snprintf(k, sizeof k, "\"%s\":", key);
  const char *at = body ? strstr(body, k) : NULL;
  if (!at)
    return -1;
  at += strlen(k);
  at += strspn(at, " ");
  if (*at++ != '"')
    return -1;
  size_t len = 0;
  while (at[len] && at[len] != '"')
    len += at[len] == '\\' && at[len + 1] ? 2 : 1;
  snprintf(out, n, "%.*s", (int)len, at);
  return 0;
}

void esb_kube_api_said(const struct esb_kube_reply *r, char *out, size_t n) {
  char reason[64] = "", message[512] = "";
  if (string_field(r->body, "reason", reason, sizeof reason) < 0 || !reason[0])
    for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++)
      if (reasons[i].code == r->code)
        snprintf(reason, sizeof reason, "%s", reasons[i].reason);
  if (string_field(r->body, "message", message, sizeof message) < 0)
    snprintf(message, sizeof message, "the server answered %d", r->code);
  snprintf(out, n, "Error from server (%s): %s", reason[0] ? reason : "Unknown", message);
}

int esb_kube_api_escape(const char *s, char *out, size_t n) {
  static const char keep[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~";
  size_t o = 0;
  for (; *s; s++) {
    if (o + 4 > n)
      return -1;
    if (strchr(keep, *s))
      out[o++] = *s;
    else
      o += (size_t)snprintf(out + o, n - o, "%%%02X", (unsigned char)*s);
  }
  out[o] = '\0';
  return 0;
}

/* ---- the exec's words (kube_exec.h) -------------------------------------- */

static const char *const end_words[ESB_KUBE_EXEC__ENDS] = {
  [ESB_KUBE_EXEC_EXIT] = "exit", [ESB_KUBE_EXEC_ERROR] = "error", [ESB_KUBE_EXEC_KUBECTL] = "kubectl",
  [ESB_KUBE_EXEC_UNAUTHORIZED] = "unauthorized",
};

void esb_kube_exec_word_format(const struct esb_kube_exec_word *w, char *out, size_t n) {
  if (w->end == ESB_KUBE_EXEC_EXIT) {
    snprintf(out, n, " exit %d\n", w->exit_code);
    return;
  }
  int len = snprintf(out, n, " %s %s", end_words[w->end], w->said);
  size_t end = len < 0 ? 0 : (size_t)len < n - 1 ? (size_t)len : n - 2;
  for (char *p = out; p < out + end; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  out[end] = '\n';
  out[end + 1] = '\0';
}

int esb_kube_exec_word_parse(const char *text, size_t len, struct esb_kube_exec_word *w) {
  *w = (struct esb_kube_exec_word){ .end = ESB_KUBE_EXEC__ENDS };
  if (len < 2 || text[0] != ' ' || text[len - 1] != '\n' || memchr(text, '\n', len - 1))
    return -1;
  const char *word = text + 1, *end = text + len - 1;
  size_t wl = strcspn(word, " \n");
  for (int e = 0; e < ESB_KUBE_EXEC__ENDS; e++)
    if (strlen(end_words[e]) == wl && memcmp(end_words[e], word, wl) == 0)
      w->end = (enum esb_kube_exec_end)e;
  if (w->end == ESB_KUBE_EXEC__ENDS || word + wl == end)
    return w->end == ESB_KUBE_EXEC__ENDS || w->end == ESB_KUBE_EXEC_EXIT ? -1 : 0;
  const char *rest = word + wl + 1;
  if (w->end != ESB_KUBE_EXEC_EXIT) {
    snprintf(w->said, sizeof w->said, "%.*s", (int)(end - rest), rest);
    return 0;
  }
  int code = 0;
  for (const char *p = rest; p < end; p++) {
    if (*p < '0' || *p > '9' || (code = code * 10 + (*p - '0')) > 255)
      return -1;
  }
  w->exit_code = code;
  return rest < end ? 0 : -1;
}

/* The string value of "key" in json[0, len) from `from` on: its start and
 * length (escapes left as they are), or NULL. */
static const char *string_in(const char *from, const char *end, const char *key, size_t *n) {
  size_t kl = strlen(key);
  for (const char *at = from; at + kl + 2 < end; at++) {
    if (at[0] != '"' || memcmp(at + 1, key, kl) != 0 || at[kl + 1] != '"')
      continue;
    const char *v = at + kl + 2;
    while (v < end && (*v == ' ' || *v == ':'))
      v++;
    if (v >= end || *v != '"')
      continue;
    const char *s = ++v;
    while (v < end && *v != '"')
      v += *v == '\\' && v + 1 < end ? 2 : 1;
    *n = (size_t)(v - s);
    return v < end ? s : NULL;
  }
  return NULL;
}

static bool value_is(const char *v, size_t n, const char *what) {
  return v && n == strlen(what) && memcmp(v, what, n) == 0;
}

/* The ExitCode cause's message among the status's causes: -1 where none. */
static int exit_code_cause(const char *json, const char *end) {
  const char *at = json, *v;
  size_t n;
  while (at < end && (at = memchr(at, '{', (size_t)(end - at)))) {
    const char *close = memchr(at, '}', (size_t)(end - at));
    if (!close)
      return -1;
    if ((v = string_in(at, close, "reason", &n)) && value_is(v, n, "ExitCode") &&
        (v = string_in(at, close, "message", &n)) && n > 0 && n <= 3 && strspn(v, "0123456789") >= n) {
      int code = atoi(v);
      return code <= 255 ? code : -1;
    }
    at = close + 1;
  }
  return -1;
}

void esb_kube_exec_status_read(const char *json, size_t len, struct esb_kube_exec_word *w) {
  const char *end = json + len, *v, *causes = memmem(json, len, "\"causes\"", 8);
  size_t n = 0, mn = 0;
  *w = (struct esb_kube_exec_word){ .end = ESB_KUBE_EXEC_ERROR };
  if ((v = string_in(json, end, "status", &n)) && value_is(v, n, "Success")) {
    w->end = ESB_KUBE_EXEC_EXIT;
    return;
  }
  const char *reason = string_in(json, end, "reason", &n), *message = string_in(json, end, "message", &mn);
  int code = -1;
  if (value_is(reason, n, "NonZeroExitCode") && causes)
    code = exit_code_cause(causes, end);
  if (code >= 0) {
    w->end = ESB_KUBE_EXEC_EXIT;
    w->exit_code = code;
    return;
  }
  if (message)
    snprintf(w->said, sizeof w->said, "error: %.*s", (int)mn, message);
  else
    snprintf(w->said, sizeof w->said, "error: the exec's status failed");
}
