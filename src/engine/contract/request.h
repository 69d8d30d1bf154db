/* A request as the engine sees it, after a face (CLI, module, daemon) has
 * validated it. Every pointer is owned by the request (esb_request_release). */
#ifndef ESB_ENGINE_REQUEST_H
#define ESB_ENGINE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum esb_request_kind { ESB_REQUEST_SHELL, ESB_REQUEST_PROGRAM, ESB_REQUEST_CODE };
enum esb_backend { ESB_BACKEND_AUTO, ESB_BACKEND_LOCAL, ESB_BACKEND_K8S };

/* The request's limits, one member a row of engine/contract/limits.def
 * (its header says the types): 0, or -1 for a switch, means "not given":
 * the policy's default applies. */
#define ESB_LIMIT_CTYPE_UINT uint64_t
#define ESB_LIMIT_CTYPE_CPU uint64_t /* millicores: cores x 1000 */
#define ESB_LIMIT_CTYPE_BOOL int     /* -1 not given, 0 off, 1 on */
struct esb_limits {
#define ESB_LIMIT(id, kind, key, plan_key, request_member, ...) ESB_LIMIT_CTYPE_##kind request_member;
#include "engine/contract/limits.def"
#undef ESB_LIMIT
};

/* A file the request puts into the program's working dir before it starts. */
struct esb_file {
  char *path;             /* relative to the working dir: esb_file_path_ok */
  char *data;             /* any bytes */
  size_t len;
  unsigned mode;          /* permission bits, 0644 unless the request says */
};

#define ESB_FILE_PATH_MAX 1024

/* Whether path names one place below a directory: not empty, relative, no
 * empty, "." or ".." component, no trailing '/', at most ESB_FILE_PATH_MAX
 * bytes and 255 a component. */
bool esb_file_path_ok(const char *path);

struct esb_request {
  enum esb_request_kind kind;
  char *shell;            /* kind SHELL */
  char *program;          /* kind PROGRAM */
  char *language, *code;  /* kind CODE */
  char **args;            /* NULL-terminated; for PROGRAM and CODE */
  size_t nargs;
  char *stdin_data;       /* written to the program's stdin first */
  size_t stdin_len;
  int stdin_fd;           /* -1, or an fd (not owned) whose bytes follow stdin_data,
                             streamed (engine/runtime/loop.h): the CLI's --stdin-file.
                             Neither: the program reads EOF at once */
  char **env;             /* NULL-terminated "KEY=VALUE" */
  size_t nenv;
  char *working_dir;
  uint64_t timeout_ms;    /* 0: policy default */
  enum esb_backend backend;
  struct esb_limits limits;
  char **labels;          /* NULL-terminated "KEY=VALUE", for the policy */
  size_t nlabels;
  struct esb_file *files; /* for the working dir, sorted by path */
  size_t nfiles;
  char **collect;         /* NULL-terminated glob patterns (engine/contract/collect.h) of the
                             files the result brings back; NULL: none */
  size_t ncollect;
  char **egress_allow;    /* NULL-terminated: limits.network = {"allow": [...]}, the hosts
                             the program may reach through the egress proxy
                             (engine/contract/egress.h); NULL: not asked */
  size_t negress_allow;
};

#define ESB_REQUEST_INIT { .stdin_fd = -1, .limits = { .network = -1 } }

void esb_request_release(struct esb_request *req);
const char *esb_backend_name(enum esb_backend b);
/* The backend named "auto", "local" or "k8s": 0, or -1 for any other name. */
int esb_backend_parse(const char *name, enum esb_backend *b);

#endif
