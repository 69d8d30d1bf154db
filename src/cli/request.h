/* What `run` and `policy explain` share: the request flags, reading a
 * request (flags or JSON on stdin) into a struct esb_request through the one
 * Lua-table validator (on a codec/json.h state). */
#ifndef ESB_CLI_REQUEST_H
#define ESB_CLI_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

#include "engine/contract/limits.h"
#include "engine/contract/request.h"
#include "engine/error.h"

/* Lines for a command's --help. */
extern const char esb_cli_request_flags_help[];

struct esb_cli_options {
  /* request flags */
  const char *shell, *lang, *code, *code_file, *stdin_file, *working_dir, *backend;
  const char *timeout;
  const char *limits[ESB_LIMIT__COUNT]; /* each limit flag's value (engine/contract/limits.def);
                                           a switch's "" when given; NULL: not given */
  char **env;
  int nenv;
  char **allow;    /* --allow-host's, in order */
  int nallow;
  char **program;  /* argv after the options */
  /* command flags */
  const char *policy;
  bool json;
  /* owned: read from files */
  char *code_data;
  size_t code_len;
  int stdin_fd;    /* --stdin-file, opened (0 for '-'); -1 without */
};

/* Parses argv (argv[0] is the command's name). Returns -1 to go on, or the
 * exit code (0 after --help, which prints usage; 125 after a bad flag). */
int esb_cli_parse(int argc, char **argv, struct esb_cli_options *o, const char *usage);
void esb_cli_options_release(struct esb_cli_options *o);
bool esb_cli_has_request_flags(const struct esb_cli_options *o);

/* Builds one request from the flags, or from JSON on stdin when no request
 * flag is given. Returns 0, or -1 with err filled. --stdin-file becomes the
 * request's stdin_fd: streamed, never read into memory here. */
int esb_cli_read_request(lua_State *L, const struct esb_cli_options *o, struct esb_request *req,
                         struct esb_error *err);

/* Pushes an array of request tables (not yet validated): the one the flags
 * make, or those on stdin, one JSON document or NDJSON (one per line). A line
 * of NDJSON that is not JSON is a string in the array instead: "line N:
 * invalid request JSON: ...", and the array's field "lines" holds the line
 * number of each entry (NDJSON only). Returns 0, or -1 with err filled and
 * nothing pushed. */
int esb_cli_read_request_list(lua_State *L, const struct esb_cli_options *o, struct esb_error *err);

#endif
