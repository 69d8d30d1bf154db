/* The daemon's endpoints as data: one table that routing and the 404's
 * list of endpoints share (daemon/server.h says what each answers). */
#ifndef ESB_DAEMON_ROUTES_H
#define ESB_DAEMON_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

enum esb_endpoint {
  ESB_ENDPOINT_RUN,
  ESB_ENDPOINT_LANGUAGES,
  ESB_ENDPOINT_HEALTHZ,
  ESB_ENDPOINT_READYZ,
  ESB_ENDPOINT_METRICS,
  ESB_ENDPOINT_OPENAPI,
  ESB_ENDPOINT_SESSION_CREATE,
  ESB_ENDPOINT_SESSION_LIST,
  ESB_ENDPOINT_SESSION_SHOW,
  ESB_ENDPOINT_SESSION_DELETE,
  ESB_ENDPOINT_SESSION_RUN,
  ESB_ENDPOINT_SESSION_CELL,
  ESB_ENDPOINT_SESSION_FILES,
  ESB_ENDPOINT_SESSION_PUT,
  ESB_ENDPOINT_SESSION_GET,
  ESB_ENDPOINT_NONE,          /* no endpoint has this path */
  ESB_ENDPOINT_WRONG_METHOD,  /* one has, for another method */
};

/* The endpoint of METHOD PATH. A path's "{id}" matches one segment of
 * PATH (esb_route_id gives it), a last "{path}" the rest, whatever its
 * slashes (esb_route_path gives it). For ESB_ENDPOINT_WRONG_METHOD, *allowed
 * (when not NULL) is "POST /v1/run" or the like. */
enum esb_endpoint esb_route(const char *method, const char *path, const char **allowed);

/* The {id} segment of PATH (the one after /v1/sessions/) into buf; ""
 * when PATH has none. */
void esb_route_id(const char *path, char *buf, size_t n);

/* The {path} of a session's file (what follows /v1/sessions/ID/files/),
 * a pointer into PATH; NULL when PATH has none. */
const char *esb_route_path(const char *path);

/* The methods PATH answers, as an Allow header lists them ("POST", "GET"),
 * into buf; "" when no endpoint has PATH. */
void esb_route_methods(const char *path, char *buf, size_t n);

/* "POST /v1/run, GET /v1/languages, ... or GET /metrics" into buf. */
void esb_routes_list(char *buf, size_t n);

/* Whether PATH is a probe's (healthz, readyz, metrics): what
 * --public-probes leaves open, whatever the method. */
bool esb_route_is_probe(const char *path);

#endif
