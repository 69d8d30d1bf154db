#include "engine/runtime/exec_path.h"
#include "engine/strv.h"

#include "tap.h"

int main(void) {
  const char *env[] = {"HOME=/h", "PATH=/a:/b/c", NULL};
  is_str(esb_env_path(env), "/a:/b/c", "PATH from the environment");
  const char *bare[] = {"HOME=/h", NULL};
  is_str(esb_env_path(bare), "/usr/local/bin:/usr/bin:/bin", "the default without PATH");
  is_str(esb_env_path(NULL), "/usr/local/bin:/usr/bin:/bin", "the default without an environment");

  char **c = esb_exec_candidates("ls", "/a:/b/c");
  is_int(esb_strv_length(c), 2, "one candidate per entry");
  is_str(c[0], "/a/ls", "in PATH's order");
  is_str(c[1], "/b/c/ls", "the second entry");
  esb_strv_free(c);

  c = esb_exec_candidates("ls", ":rel:/x::./y:/z/");
  is_int(esb_strv_length(c), 2, "empty and relative entries are never searched");
  is_str(c[0], "/x/ls", "an absolute entry");
  is_str(c[1], "/z//ls", "a trailing slash is kept as given");
  esb_strv_free(c);

  c = esb_exec_candidates("./run.sh", "/a");
  is_int(esb_strv_length(c), 1, "a name with a slash is not looked up");
  is_str(c[0], "./run.sh", "it is used as is");
  esb_strv_free(c);

  c = esb_exec_candidates("ls", "");
  ok(c && c[0] == NULL, "an empty PATH gives no candidate");
  esb_strv_free(c);
  return tap_done();
}
