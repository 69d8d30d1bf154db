/* The daemon's endpoints (src/daemon/routes.c). */
#include "daemon/routes.h"

#include "tap.h"

int main(void) {
  const char *allowed = NULL;
  is_int(esb_route("POST", "/v1/run", &allowed), ESB_ENDPOINT_RUN, "POST /v1/run runs");
  is_int(esb_route("GET", "/healthz", NULL), ESB_ENDPOINT_HEALTHZ, "GET /healthz");
  is_int(esb_route("GET", "/metrics", NULL), ESB_ENDPOINT_METRICS, "GET /metrics");
  is_int(esb_route("GET", "/readyz", NULL), ESB_ENDPOINT_READYZ, "GET /readyz");
  is_int(esb_route("GET", "/v1/languages", NULL), ESB_ENDPOINT_LANGUAGES, "GET /v1/languages");
  is_int(esb_route("GET", "/openapi.json", NULL), ESB_ENDPOINT_OPENAPI, "GET /openapi.json");
  ok(esb_route_is_probe("/healthz") && esb_route_is_probe("/readyz") && esb_route_is_probe("/metrics"),
     "the probes are healthz, readyz and metrics");
  ok(!esb_route_is_probe("/v1/run") && !esb_route_is_probe("/v1/languages") && !esb_route_is_probe("/"),
     "and nothing else");
  is_int(esb_route("GET", "/v1/run", &allowed), ESB_ENDPOINT_WRONG_METHOD, "GET /v1/run: the wrong method");
  is_str(allowed, "POST /v1/run", "naming the right one");
  is_int(esb_route("POST", "/healthz", &allowed), ESB_ENDPOINT_WRONG_METHOD, "POST /healthz too");
  is_str(allowed, "GET /healthz", "naming GET");
  is_int(esb_route("GET", "/v1/run/", NULL), ESB_ENDPOINT_NONE, "paths match exactly");
  is_int(esb_route("GET", "/", NULL), ESB_ENDPOINT_NONE, "no endpoint at /");
  is_int(esb_route("post", "/v1/run", NULL), ESB_ENDPOINT_WRONG_METHOD, "methods are case-sensitive (RFC 9110)");
  /* Checked: with "{id}" matched as text, or as any rest of the path, these fail. */
  is_int(esb_route("POST", "/v1/sessions", NULL), ESB_ENDPOINT_SESSION_CREATE, "POST /v1/sessions creates");
  is_int(esb_route("GET", "/v1/sessions", NULL), ESB_ENDPOINT_SESSION_LIST, "GET /v1/sessions lists");
  is_int(esb_route("GET", "/v1/sessions/abc", NULL), ESB_ENDPOINT_SESSION_SHOW, "GET /v1/sessions/ID shows");
  is_int(esb_route("DELETE", "/v1/sessions/abc", NULL), ESB_ENDPOINT_SESSION_DELETE, "DELETE /v1/sessions/ID");
  is_int(esb_route("POST", "/v1/sessions/abc/run", NULL), ESB_ENDPOINT_SESSION_RUN, "POST /v1/sessions/ID/run");
  is_int(esb_route("GET", "/v1/sessions/", NULL), ESB_ENDPOINT_NONE, "an id is not empty");
  is_int(esb_route("GET", "/v1/sessions/a/b", NULL), ESB_ENDPOINT_NONE, "an id is one segment");
  is_int(esb_route("POST", "/v1/sessions/a/run/x", NULL), ESB_ENDPOINT_NONE, "and nothing follows run");
  is_int(esb_route("GET", "/v1/sessions/{id}", NULL), ESB_ENDPOINT_SESSION_SHOW, "{id} in a path is an id too");
  is_int(esb_route("PUT", "/v1/sessions/abc", &allowed), ESB_ENDPOINT_WRONG_METHOD, "PUT /v1/sessions/ID");
  is_int(esb_route("POST", "/v1/sessions/abc/cell", NULL), ESB_ENDPOINT_SESSION_CELL, "POST /v1/sessions/ID/cell");
  /* Checked: with "{path}" matched as one segment, the nested path fails. */
  is_int(esb_route("PUT", "/v1/sessions/abc/files/a/b.txt", NULL), ESB_ENDPOINT_SESSION_PUT,
         "PUT /v1/sessions/ID/files/PATH, its slashes and all");
  is_int(esb_route("GET", "/v1/sessions/abc/files/a", NULL), ESB_ENDPOINT_SESSION_GET, "GET one");
  is_int(esb_route("GET", "/v1/sessions/abc/files", NULL), ESB_ENDPOINT_SESSION_FILES, "GET the working dir's");
  is_int(esb_route("GET", "/v1/sessions/abc/files/", NULL), ESB_ENDPOINT_NONE, "a path is not empty");
  is_int(esb_route("GET", "/v1/sessions/abc/filesx/a", NULL), ESB_ENDPOINT_NONE, "files is a whole segment");
  is_str(esb_route_path("/v1/sessions/abc/files/a/b.txt"), "a/b.txt", "the path of a session's file");
  ok(esb_route_path("/v1/sessions/abc/run") == NULL, "none outside files/");
  char id[40];
  esb_route_id("/v1/sessions/abc/run", id, sizeof id);
  is_str(id, "abc", "the id of a session's run");
  esb_route_id("/v1/run", id, sizeof id);
  is_str(id, "", "no id outside /v1/sessions/");
  char methods[32];
  esb_route_methods("/v1/sessions/abc", methods, sizeof methods);
  is_str(methods, "GET, DELETE", "the Allow of a session");
  esb_route_methods("/v1/run", methods, sizeof methods);
  is_str(methods, "POST", "the Allow of /v1/run");
  esb_route_methods("/nowhere", methods, sizeof methods);
  is_str(methods, "", "no Allow where no endpoint is");
  char list[1024];
  esb_routes_list(list, sizeof list);
  is_str(list, "POST /v1/run, GET /v1/languages, GET /healthz, GET /readyz, GET /metrics, GET /openapi.json, "
         "POST /v1/sessions, GET /v1/sessions, GET /v1/sessions/{id}, DELETE /v1/sessions/{id}, "
         "POST /v1/sessions/{id}/run, POST /v1/sessions/{id}/cell, GET /v1/sessions/{id}/files, "
         "PUT /v1/sessions/{id}/files/{path} or GET /v1/sessions/{id}/files/{path}",
         "the list of endpoints for a 404");
  char small[8];
  esb_routes_list(small, sizeof small);
  ok(strlen(small) < sizeof small, "a short buffer stays terminated");
  return tap_done();
}
