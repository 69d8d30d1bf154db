#include "engine/contract/request.h"

#include <stdlib.h>
#include <string.h>

#include "engine/strv.h"

bool esb_file_path_ok(const char *path) {
  size_t n = strlen(path);
  if (n == 0 || n > ESB_FILE_PATH_MAX || path[0] == '/' || path[n - 1] == '/')
    return false;
  for (const char *p = path; *p;) {
    size_t len = strcspn(p, "/");
    if (len == 0 || len > 255 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
      return false;
    p += len;
    if (*p == '/')
      p++;
  }
  return true;
}

void esb_request_release(struct esb_request *req) {
  for (size_t i = 0; i < req->nfiles; i++) {
    free(req->files[i].path);
    free(req->files[i].data);
  }
  free(req->files);
  free(req->shell);
  free(req->program);
  free(req->language);
  free(req->code);
  esb_strv_free(req->args);
  free(req->stdin_data);
  esb_strv_free(req->env);
  free(req->working_dir);
  esb_strv_free(req->labels);
  esb_strv_free(req->collect);
  esb_strv_free(req->egress_allow);
  *req = (struct esb_request)ESB_REQUEST_INIT;
}

/* The backends' words, for parsing and printing alike. */
static const char *const backend_names[] = {
  [ESB_BACKEND_AUTO] = "auto", [ESB_BACKEND_LOCAL] = "local", [ESB_BACKEND_K8S] = "k8s",
};

const char *esb_backend_name(enum esb_backend b) {
  return (unsigned)b < sizeof backend_names / sizeof backend_names[0] ? backend_names[b] : "auto";
}

int esb_backend_parse(const char *name, enum esb_backend *b) {
  for (size_t i = 0; name && i < sizeof backend_names / sizeof backend_names[0]; i++) {
    if (strcmp(name, backend_names[i]) == 0) {
      *b = (enum esb_backend)i;
      return 0;
    }
  }
  return -1;
}
