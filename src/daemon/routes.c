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
};

#define N_ROUTES (sizeof routes / sizeof routes[0])

enum esb_endpoint esb_route(const char *method, const char *path, const char **allowed) {
  enum esb_endpoint found = ESB_ENDPOINT_NONE;
  for (size_t i = 0; i < N_ROUTES; i++) {
    if (strcmp(path, routes[i].path) != 0)
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
    if (routes[i].probe && strcmp(path, routes[i].path) == 0)
      return true;
  return false;
}

void esb_route_methods(const char *path, char *buf, size_t n) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < N_ROUTES && used < n; i++) {
    if (strcmp(path, routes[i].path) != 0)
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
