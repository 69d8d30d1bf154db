/* THE ERROR CONVENTION of src/, written once here.
 *
 *  - A function that can fail takes `struct esb_error *err` (last) and
 *    returns int: 0 on success, -1 on failure with *err filled (a code and
 *    one fixed-size message, for people). Nothing it made is left behind on
 *    failure. A function with a value to hand back returns it (a pointer,
 *    or a count >= 0) and fills *err where it returns NULL or -1.
 *  - errno is read only at the system-call edge: a thin wrapper of a
 *    system call (fileio.h, fd passing, the child's steps that may use only
 *    async-signal-safe calls) may return -1 with errno; its caller turns
 *    errno into words with esb_error_errno.
 *  - An execution never fails by return value once started: its struct
 *    esb_result says what happened, an engine failure as status ERROR with
 *    esb_result_fail's code and message. A run that went on degraded (a
 *    limit that fell back, a status it could not read) carries an entry in
 *    the result's warnings: no failure is dropped.
 *  - Misuse of a contract a header states (a NULL it forbids, a struct not
 *    made with its INIT, a call out of order) is a bug, not an error: it is
 *    an assert(), as in libuv.
 *
 * The one exception is the Lua boundary, where Lua's own convention holds:
 * a C function called from Lua (the module's run, a helper run under
 * esb_lua_pcall) raises a Lua error or returns nil and a message, as lauxlib
 * and io.open do; Lua code we or a policy wrote does the same. Crossing back
 * into C, esb_lua_pcall (luaglue/call.h) turns the error into a struct
 * esb_error, and a face hands a struct esb_error's message to its Lua caller
 * as that nil, message. */
#ifndef ESB_ENGINE_ERROR_H
#define ESB_ENGINE_ERROR_H

/* The size of every message: messages quote others. */
#define ESB_MESSAGE_MAX 4096

/* Error codes. The names (esb_error_name) are part of the result contract;
 * the messages (esb_strerror) are for people. */
enum esb_error_code {
  ESB_OK = 0,
  ESB_E_INVALID_REQUEST,
  ESB_E_POLICY,
  ESB_E_BACKEND_UNAVAILABLE,
  ESB_E_EXEC_NOT_FOUND,   /* the program does not exist: exit code 127 */
  ESB_E_EXEC_DENIED,      /* it exists but cannot be executed: exit code 126 */
  ESB_E_SANDBOX_SETUP,    /* building the sandbox failed */
  ESB_E_SYSTEM,           /* a system call of the engine failed */
  ESB_E_INTERRUPTED,      /* the executor got a signal and killed the program */
  ESB_E_BACKEND,          /* the backend could not run the program (k8s: the pod never ran) */
  ESB_E_UNAUTHORIZED,     /* the daemon's token is missing or wrong (HTTP 401) */
  ESB_E_TOO_MANY_SESSIONS, /* the tenant holds as many live sessions as the policy allows:
                              the same request may succeed once one ends (CLI exit 75,
                              EX_TEMPFAIL) */
  ESB_E__COUNT
};

struct esb_error {
  enum esb_error_code code; /* ESB_OK until a failure fills it */
  char message[ESB_MESSAGE_MAX];
};

#define ESB_ERROR_INIT { .code = ESB_OK, .message = "" }

/* Fills err with code and the printf-style message; returns -1, so that
 * `return esb_error_set(err, ...);` ends a failing function. */
int esb_error_set(struct esb_error *err, enum esb_error_code code, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

/* The same, with ": strerror(errno)" after the message (errno as it was on
 * entry, whatever the formatting does to it). */
int esb_error_errno(struct esb_error *err, enum esb_error_code code, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

/* Puts "context: " before the message already in err (the code stays), as a
 * caller says what it was doing; returns -1. */
int esb_error_prefix(struct esb_error *err, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

/* Never NULL, for any value. */
const char *esb_strerror(enum esb_error_code code);
const char *esb_error_name(enum esb_error_code code);

#endif
