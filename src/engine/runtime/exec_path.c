#include "engine/runtime/exec_path.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/strv.h"

const char *esb_env_path(const char *const *env) {
  for (; env && *env; env++)
    if (strncmp(*env, "PATH=", 5) == 0)
      return *env + 5;
  return "/usr/local/bin:/usr/bin:/bin";
}

char **esb_exec_candidates(const char *prog, const char *path) {
  struct esb_strv out = ESB_STRV_INIT;
  if (strchr(prog, '/'))
    return esb_strv_push(&out, prog) < 0 ? NULL : esb_strv_detach(&out);
  for (const char *s = path;;) {
    const char *e = strchrnul(s, ':');
    if (e > s && *s == '/') { /* empty and relative entries are never searched */
      char *candidate;
      if (asprintf(&candidate, "%.*s/%s", (int)(e - s), s, prog) < 0 || esb_strv_take(&out, candidate) < 0) {
        esb_strv_clear(&out);
        return NULL;
      }
    }
    if (!*e)
      break;
    s = e + 1;
  }
  return esb_strv_detach(&out);
}
