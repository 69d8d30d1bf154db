/* A small client of the Kubernetes API server, for the few requests of a
 * warm run that would each cost a kubectl process (~50 ms of CPU, more than
 * the request): the list of a pool's ready pods, the claim's PATCH, the
 * delete, and the exec into a warm pod or a session's (kube_exec.h).
 * Everything else stays kubectl's.
 *
 * The cluster and the credentials are kubectl's own, read once a process
 * (for each --kubeconfig and --context) by `kubectl config view --raw
 * --minify` with a jsonpath of the few fields it uses: kubectl resolves the
 * kubeconfig files, their merge and the current context. What this client
 * does not do it leaves to kubectl, which then runs as before
 * (esb_kube_api_get says why, once): an exec plugin or auth provider, basic
 * auth, impersonation, a proxy (the kubeconfig's, or HTTPS_PROXY and its
 * kin in the environment), insecure-skip-tls-verify, a relative file path.
 * A 401 marks the credentials stale for the process: kubectl from then on.
 *
 * One request is one connection (HTTP/1.1, Connection: close), TLS where
 * the server is https (OpenSSL, the cluster's CA, the host name verified,
 * a client certificate or a bearer token; a tokenFile is read for each
 * request, as kubectl reads it), the answer read by http-parser: in
 * echo-sandbox-kube, a process of its own for each request
 * (backend/kube_transport.h), so that the engine links neither library. A
 * request blocks its thread: the k8s run makes it on the loop's pool
 * (esb_loop_offload). */
#ifndef ESB_BACKEND_KUBE_API_H
#define ESB_BACKEND_KUBE_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/plan.h"

/* The cluster and user of kubectl's current context, as kubectl resolves them. */
struct esb_kube_api {
  bool tls;
  char host[256];
  char port[8];
  char base_path[256];     /* the server URL's path, "" for most */
  char *ca_file, *ca_pem;  /* certificate-authority(-data, decoded) */
  char *cert_file, *cert_pem, *key_file, *key_pem;
  char *token, *token_file;
  char *server_name;       /* tls-server-name, else host */
  char namespace_[64];     /* the context's, "default" where none */
};

/* The jsonpath template of the kubeconfig's fields, one line apart by tabs. */
extern const char esb_kube_api_config_template[];

/* Reads the line the template printed (text, len) into api. Returns 0, or
 * -1 with why (at most why_n bytes) where this client cannot do what
 * kubectl would: kubectl is used then. Pure but for the environment's proxy
 * variables. */
int esb_kube_api_parse_config(const char *text, size_t len, struct esb_kube_api *api, char *why, size_t why_n);

void esb_kube_api_release(struct esb_kube_api *api);

/* The client of k's kubeconfig and context, resolved on the first call of
 * the process (a kubectl process); NULL where kubectl is to be used (the
 * first such call prints nothing: *why, when why is given, says it). Safe
 * from any thread; the client lives as long as the process. */
const struct esb_kube_api *esb_kube_api_get(const struct esb_k8s_settings *k, const char **why);

/* The client's credentials were refused (401): kubectl from now on. */
void esb_kube_api_drop(const struct esb_kube_api *api);

/* An answer: the HTTP status and the body; code 0 where none came (err
 * says why: connection, TLS, timeout). */
struct esb_kube_reply {
  int code;
  char *body;
  size_t len;
  char err[256];
};

void esb_kube_reply_release(struct esb_kube_reply *r);

/* One request: method, the path and query (the server's path prepended),
 * a body of content_type or none. Waits at most timeout_ms for the whole
 * answer (at most 16 MiB). Returns 0 when an answer came (any code), -1
 * otherwise (r->err). */
int esb_kube_api_request(const struct esb_kube_api *api, const char *method, const char *path,
                         const char *content_type, const char *body, uint64_t timeout_ms, struct esb_kube_reply *r);

/* The exec into a pod in place of kubectl exec -i (kube_exec.h): the
 * path of pods/exec in namespace_ (NULL: the context's) for pod, its
 * container of the pod's name, and command's words; malloc'd, NULL out of
 * memory. */
char *esb_kube_api_exec_path(const struct esb_kube_api *api, const char *namespace_, const char *pod,
                             const char *const *command);

/* What echo-sandbox-kube's stdin is for the exec of path: the request
 * (the credentials among it: the caller wipes it once written), then in
 * (in_len bytes: the command's stdin, or its start). malloc'd (*len
 * bytes), NULL out of memory. The helper connects and upgrades within
 * timeout_ms; its stderr's last line, after ESB_KUBE_EXEC_MARK and secret,
 * says how the exec ended. */
char *esb_kube_api_exec_request(const struct esb_kube_api *api, const char *path, uint64_t timeout_ms,
                                const char *secret, const char *in, size_t in_len, size_t *len);

/* What kubectl would have printed of an answer that is not 2xx, as its
 * first line ("Error from server (Conflict): MESSAGE"): the k8s run reads
 * kubectl's words for what a failure was, and reads these the same. The
 * reason is the Status's own where the body is one, else the code's.
 * Pure. */
void esb_kube_api_said(const struct esb_kube_reply *r, char *out, size_t n);

/* s with every byte but A-Za-z0-9-_.~ as %XX, into out (n bytes); -1 where
 * it does not fit. Pure. */
int esb_kube_api_escape(const char *s, char *out, size_t n);

#endif
