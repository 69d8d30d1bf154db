#include "engine/error.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct { const char *name, *message; } error_table[ESB_E__COUNT] = {
  [ESB_OK] = {"ok", "no error"},
  [ESB_E_INVALID_REQUEST] = {"invalid_request", "the request is not valid"},
  [ESB_E_POLICY] = {"policy_error", "the policy failed"},
  [ESB_E_BACKEND_UNAVAILABLE] = {"backend_unavailable", "the backend is not available"},
  [ESB_E_EXEC_NOT_FOUND] = {"exec_not_found", "the program was not found"},
  [ESB_E_EXEC_DENIED] = {"exec_denied", "the program cannot be executed"},
  [ESB_E_SANDBOX_SETUP] = {"sandbox_setup", "the sandbox could not be set up"},
  [ESB_E_SYSTEM] = {"system_error", "a system call of the engine failed"},
  [ESB_E_INTERRUPTED] = {"interrupted", "the executor was interrupted"},
  [ESB_E_BACKEND] = {"backend_error", "the backend could not run the program"},
  [ESB_E_UNAUTHORIZED] = {"unauthorized", "the request carries no valid token"},
  [ESB_E_TOO_MANY_SESSIONS] = {"too_many_sessions", "the tenant holds as many sessions as the policy allows"},
};

const char *esb_strerror(enum esb_error_code code) {
  if ((unsigned)code < ESB_E__COUNT && error_table[code].message)
    return error_table[code].message;
  return "unknown error";
}

const char *esb_error_name(enum esb_error_code code) {
  if ((unsigned)code < ESB_E__COUNT && error_table[code].name)
    return error_table[code].name;
  return "unknown_error";
}

static void fill(struct esb_error *err, enum esb_error_code code, const char *fmt, va_list ap) {
  assert(err && code != ESB_OK);
  err->code = code;
  vsnprintf(err->message, sizeof err->message, fmt, ap);
}

int esb_error_set(struct esb_error *err, enum esb_error_code code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fill(err, code, fmt, ap);
  va_end(ap);
  return -1;
}

int esb_error_errno(struct esb_error *err, enum esb_error_code code, const char *fmt, ...) {
  int saved = errno;
  va_list ap;
  va_start(ap, fmt);
  fill(err, code, fmt, ap);
  va_end(ap);
  size_t n = strlen(err->message);
  snprintf(err->message + n, sizeof err->message - n, ": %s", strerror(saved));
  errno = saved;
  return -1;
}

int esb_error_prefix(struct esb_error *err, const char *fmt, ...) {
  char joined[ESB_MESSAGE_MAX];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(joined, sizeof joined, fmt, ap);
  va_end(ap);
  size_t used = n < 0 ? 0 : (size_t)n < sizeof joined ? (size_t)n : sizeof joined - 1;
  size_t room = sizeof joined - 1 - used, tail = strlen(err->message);
  static const char sep[] = ": ";
  for (size_t i = 0; i < sizeof sep - 1 && room; i++, room--)
    joined[used++] = sep[i];
  if (tail > room)
    tail = room;
  memcpy(joined + used, err->message, tail);
  joined[used + tail] = '\0';
  memcpy(err->message, joined, sizeof joined);
  return -1;
}
