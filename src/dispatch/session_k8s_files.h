/* The files of a k8s session, for every face: put, get and list, each a
 * run in the session's pod (dispatch/session_k8s.h) of a request made here,
 * whose result is read back here. Nothing of it is a way in that a run of
 * the session lacks: the same policy plans it, into the same pod, within
 * the same limits.
 *   put   the file comes in as a run's `files` do (the wrapper writes it,
 *         its directories made where missing), the program a no-op;
 *   get   it goes out as `collect` does: its path is the one pattern, so
 *         the file comes back within the policy's collect ceilings
 *         (esb_plan.collect), a larger one an error naming the ceiling;
 *   list  a POSIX shell lists the directory, an entry at a time (`ls -ldn`
 *         for its mode and size, its name as the shell's glob gave it,
 *         NUL-ended: any name, a newline in it included).
 * Paths are relative to the working dir (esb_file_path_ok); a get's path
 * has no glob character (* ? [ \), which a pattern would read as one.
 *
 * Functions follow engine/error.h: 0, or -1 with err filled; a session
 * that ended is the run's error, "SessionEnded" its reason. */
#ifndef ESB_DISPATCH_SESSION_K8S_FILES_H
#define ESB_DISPATCH_SESSION_K8S_FILES_H

#include <stddef.h>

#include "backend/local_session.h"
#include "engine/contract/request.h"
#include "engine/contract/result.h"
#include "engine/error.h"
#include "policy/policy.h"

/* SHOW, the daemon's GET of a path: a directory's listing, or where the
 * path is no directory, the file (one run: the listing and the collect). */
enum esb_k8s_files_op { ESB_K8S_FILES_PUT, ESB_K8S_FILES_GET, ESB_K8S_FILES_LIST, ESB_K8S_FILES_SHOW };

/* The request of op into *req (ESB_REQUEST_INIT'd; the caller releases
 * it): path the file's (GET), the directory's (LIST; NULL: the working
 * dir), f the file (PUT; its bytes are copied). */
int esb_k8s_files_request(enum esb_k8s_files_op op, const char *path, const struct esb_file *f,
                          struct esb_request *req, struct esb_error *err);

/* What the run of that request did, read from its result (the id names
 * the session in messages). GET: the file's bytes, malloc'd, into *data
 * (*len); LIST: fn for each entry; SHOW: either (*data stays NULL for a
 * listing). */
int esb_k8s_files_done(enum esb_k8s_files_op op, const char *id, const char *path, struct esb_result *r,
                       char **data, size_t *len, void (*fn)(const struct esb_session_entry *e, void *arg),
                       void *arg, struct esb_error *err);

/* The whole of it, planned by policy and run to its end: for the CLI. */
int esb_k8s_session_put(struct esb_policy *policy, const char *id, const struct esb_file *f, struct esb_error *err);
int esb_k8s_session_get(struct esb_policy *policy, const char *id, const char *path, char **data, size_t *len,
                        struct esb_error *err);
int esb_k8s_session_files(struct esb_policy *policy, const char *id, const char *path,
                          void (*fn)(const struct esb_session_entry *e, void *arg), void *arg,
                          struct esb_error *err);

#endif
