#include "engine/request.h"

#include <stdlib.h>

#include "engine/strv.h"

void esb_request_release(struct esb_request *req) {
  free(req->shell);
  free(req->program);
  free(req->language);
  free(req->code);
  esb_strv_free(req->args);
  free(req->stdin_data);
  esb_strv_free(req->env);
  free(req->working_dir);
  esb_strv_free(req->labels);
  *req = (struct esb_request)ESB_REQUEST_INIT;
}

const char *esb_backend_name(enum esb_backend b) {
  switch (b) {
  case ESB_BACKEND_AUTO: return "auto";
  case ESB_BACKEND_LOCAL: return "local";
  case ESB_BACKEND_K8S: return "k8s";
  }
  return "auto";
}
