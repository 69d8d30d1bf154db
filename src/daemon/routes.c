#include "daemon/routes.h"

#include <stdio.h>
#include <string.h>

static const struct route {
  const char *method, *path, *both; /* both: "METHOD PATH", as messages say it */
  enum esb_endpoint endpoint;
  bool probe;
} routes[] = {
  { "POST", "/v1/run", "POST /v1/run", ESB_ENDPOINT_RUN, false },
  { "GET", "/v1/languages", "GET /v1/languages", ESB_ENDPOINT_LANGUAGES, false },
  { "GET", "/healthz", "GET /healthz", ESB_ENDPOINT_HEALTHZ, true },
  { "GET", "/readyz", "GET /readyz", ESB_ENDPOINT_READYZ, true },
  { "GET", "/metrics", "GET /metrics", ESB_ENDPOINT_METRICS, true },
  { "GET", "/openapi.json", "GET /openapi.json", ESB_ENDPOINT_OPENAPI, false },
  { "POST", "/v1/sessions", "POST /v1/sessions", ESB_ENDPOINT_SESSION_CREATE, false },
  { "GET", "/v1/sessions", "GET /v1/sessions", ESB_ENDPOINT_SESSION_LIST, false },
  { "GET", "/v1/sessions/{id}", "GET /v1/sessions/{id}", ESB_ENDPOINT_SESSION_SHOW, false },
  { "DELETE", "/v1/sessions/{id}", "DELETE /v1/sessions/{id}", ESB_ENDPOINT_SESSION_DELETE, false },
  { "POST", "/v1/sessions/{id}/run", "POST /v1/sessions/{id}/run", ESB_ENDPOINT_SESSION_RUN, false },
  { "POST", "/v1/sessions/{id}/cell", "POST /v1/sessions/{id}/cell", ESB_ENDPOINT_SESSION_CELL, false },
  { "GET", "/v1/sessions/{id}/files", "GET /v1/sessions/{id}/files", ESB_ENDPOINT_SESSION_FILES, false },
  { "PUT", "/v1/sessions/{id}/files/{path}", "PUT /v1/sessions/{id}/files/{path}", ESB_ENDPOINT_SESSION_PUT,
    false },
  { "GET", "/v1/sessions/{id}/files/{path}", "GET /v1/sessions/{id}/files/{path}", ESB_ENDPOINT_SESSION_GET,
    false },
};

#define SESSIONS "/v1/sessions/"

#define TAIL "{path}"

/* Whether path is pattern's, "{id}" standing for one segment (not empty,
 * no '/'), a last "{path}" for the rest of it (not empty). */
static bool matches(const char *pattern, const char *path) {
  const char *hole = strstr(pattern, "{id}");
  if (!hole)
    return strcmp(pattern, path) == 0;
  size_t head = (size_t)(hole - pattern);
  if (strncmp(pattern, path, head) != 0)
    return false;
  const char *seg = path + head, *end = strchrnul(seg, '/');
  const char *tail = strstr(hole, TAIL);
  if (end == seg)
    return false;
  if (!tail)
    return strcmp(hole + 4, end) == 0;
  size_t between = (size_t)(tail - (hole + 4));
  return strncmp(hole + 4, end, between) == 0 && end[between] != '\0';
}

const char *esb_route_path(const char *path) {
  static const char files[] = "/files/";
  if (strncmp(path, SESSIONS, strlen(SESSIONS)) != 0)
    return NULL;
  const char *end = strchrnul(path + strlen(SESSIONS), '/');
  return strncmp(end, files, strlen(files)) == 0 ? end + strlen(files) : NULL;
}

void esb_route_id(const char *path, char *buf, size_t n) {
  buf[0] = '\0';
  if (strncmp(path, SESSIONS, strlen(SESSIONS)) != 0)
    return;
  const char *seg = path + strlen(SESSIONS);
  size_t len = (size_t)(strchrnul(seg, '/') - seg);
  snprintf(buf, n, "%.*s", (int)len, seg);
}

#define N_ROUTES (sizeof routes / sizeof routes[0])

enum esb_endpoint esb_route(const char *method, const char *path, const char **allowed) {
  enum esb_endpoint found = ESB_ENDPOINT_NONE;
  for (size_t i = 0; i < N_ROUTES; i++) {
    if (!matches(routes[i].path, path))
      continue;
    if (strcmp(method, routes[i].method) == 0)
      return routes[i].endpoint;
    found = ESB_ENDPOINT_WRONG_METHOD;
    if (allowed)
      *allowed = routes[i].both;
  }
  return found;
}

bool esb_route_is_probe(const char *path) {
  for (size_t i = 0; i < N_ROUTES; i++)
    if (routes[i].probe && matches(routes[i].path, path))
      return true;
  return false;
}

void esb_route_methods(const char *path, char *buf, size_t n) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < N_ROUTES && used < n; i++) {
    if (!matches(routes[i].path, path))
      continue;
    int w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", routes[i].method);
    used += w > 0 ? (size_t)w : 0;
  }
}

void esb_routes_list(char *buf, size_t n) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < N_ROUTES && used < n; i++) {
    const char *sep = i == 0 ? "" : i + 1 == N_ROUTES ? " or " : ", ";
    int w = snprintf(buf + used, n - used, "%s%s", sep, routes[i].both);
    used += w > 0 ? (size_t)w : 0;
  }
}
