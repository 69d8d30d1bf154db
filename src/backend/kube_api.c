#include "backend/kube_api.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <signal.h>
#include <time.h>

#include "backend/k8s.h"
#include "backend/k8s_command.h"
#include "backend/k8s_warm.h"
#include "engine/fileio.h"
#include "engine/install_paths.h"
#include "engine/text.h"
#include "engine/runtime/clock.h"
#include "engine/sandbox/spawn.h"

/* ---- the kubeconfig, as kubectl resolves it ----------------------------- */

/* The fields read, in this order; an empty one where the kubeconfig has none. */
#define CLUSTER(f) "{.clusters[0].cluster." f "}{\"\\t\"}"
#define USER(f) "{.users[0].user." f "}{\"\\t\"}"
const char esb_kube_api_config_template[] =
  "jsonpath=" CLUSTER("server") CLUSTER("certificate-authority") CLUSTER("certificate-authority-data")
  CLUSTER("insecure-skip-tls-verify") CLUSTER("tls-server-name") CLUSTER("proxy-url") USER("token")
  USER("tokenFile") USER("client-certificate") USER("client-certificate-data") USER("client-key")
  USER("client-key-data") USER("username") USER("exec.command") USER("auth-provider.name") USER("as")
  USER("as-groups") "{.contexts[0].context.namespace}{\"\\n\"}";
#undef CLUSTER
#undef USER
enum { F_SERVER, F_CA, F_CA_DATA, F_INSECURE, F_SERVER_NAME, F_PROXY, F_TOKEN, F_TOKEN_FILE, F_CERT, F_CERT_DATA,
       F_KEY, F_KEY_DATA, F_USERNAME, F_EXEC, F_AUTH_PROVIDER, F_AS, F_AS_GROUPS, F_NAMESPACE, N_FIELDS };

/* What this client leaves to kubectl, by the field that has it. */
static const struct { int field; const char *what; } unsupported[] = {
  { F_INSECURE, "insecure-skip-tls-verify" }, { F_PROXY, "a proxy-url" }, { F_USERNAME, "basic auth" },
  { F_EXEC, "an exec credential plugin" }, { F_AUTH_PROVIDER, "an auth provider" },
  { F_AS, "impersonation" }, { F_AS_GROUPS, "impersonation" },
};

static char *decode_base64(const char *s, size_t n) {
  char *out = malloc(n / 4 * 3 + 3);
  size_t len = 0;
  if (!out || esb_base64_decode(s, n, out, &len) < 0) {
    free(out);
    return NULL;
  }
  out[len] = '\0';
  return out;
}

/* The server URL: scheme, host (an IPv6 one in brackets), port, path. */
static int parse_server(const char *url, size_t n, struct esb_kube_api *api) {
  char s[512];
  if (n >= sizeof s)
    return -1;
  memcpy(s, url, n);
  s[n] = '\0';
  char *at = strstr(s, "://");
  if (!at)
    return -1;
  *at = '\0';
  if (strcmp(s, "https") == 0)
    api->tls = true;
  else if (strcmp(s, "http") != 0)
    return -1;
  char *host = at + 3, *path = host + strcspn(host, "/?#");
  if (*path == '?' || *path == '#')
    return -1;
  snprintf(api->base_path, sizeof api->base_path, "%s", path);
  size_t bl = strlen(api->base_path);
  while (bl && api->base_path[bl - 1] == '/')
    api->base_path[--bl] = '\0';
  *path = '\0';
  char *port = NULL;
  if (*host == '[') {
    char *close = strchr(host, ']');
    if (!close)
      return -1;
    *close = '\0';
    host++;
    port = close[1] == ':' ? close + 2 : NULL;
  } else if ((port = strrchr(host, ':'))) {
    *port++ = '\0';
  }
  if (!*host || strlen(host) >= sizeof api->host || (port && (!*port || strlen(port) >= sizeof api->port ||
                                                                strspn(port, "0123456789") != strlen(port))))
    return -1;
  snprintf(api->host, sizeof api->host, "%s", host);
  snprintf(api->port, sizeof api->port, "%s", port ? port : api->tls ? "443" : "80");
  return 0;
}

static int why_not(char *why, size_t why_n, const char *what) {
  snprintf(why, why_n, "%s", what);
  return -1;
}

/* A file path of the kubeconfig: kubectl gives it as written, and a
 * relative one is relative to a file this client does not know. */
static int take_path(const char *s, size_t n, char **out) {
  if (!n)
    return 0;
  if (s[0] != '/')
    return -1;
  return (*out = strndup(s, n)) ? 0 : -1;
}

static int take_data(const char *s, size_t n, char **out) {
  return !n ? 0 : (*out = decode_base64(s, n)) ? 0 : -1;
}

static const char *proxy_env(void) {
  static const char *const names[] = { "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", NULL };
  for (const char *const *v = names; *v; v++)
    if (getenv(*v) && *getenv(*v))
      return *v;
  return NULL;
}

int esb_kube_api_parse_config(const char *text, size_t len, struct esb_kube_api *api, char *why, size_t why_n) {
  const char *f[N_FIELDS];
  size_t fl[N_FIELDS];
  *api = (struct esb_kube_api){ 0 };
  while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
    len--;
  const char *at = text, *end = text + len;
  for (int k = 0; k < N_FIELDS; k++) {
    const char *tab = k < N_FIELDS - 1 ? memchr(at, '\t', (size_t)(end - at)) : NULL;
    if (k < N_FIELDS - 1 && !tab)
      return why_not(why, why_n, "kubectl config view gave fewer fields than asked");
    f[k] = at;
    fl[k] = tab ? (size_t)(tab - at) : (size_t)(end - at);
    at = tab ? tab + 1 : end;
  }
  if (memchr(f[N_FIELDS - 1], '\t', fl[N_FIELDS - 1]) || memchr(text, '\n', len))
    return why_not(why, why_n, "kubectl config view gave more than one context");
  for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++)
    if (fl[unsupported[i].field] && !(unsupported[i].field == F_INSECURE && fl[F_INSECURE] == 5 &&
                                      memcmp(f[F_INSECURE], "false", 5) == 0))
      return why_not(why, why_n, unsupported[i].what);
  if (proxy_env())
    return why_not(why, why_n, "a proxy in the environment");
  if (!fl[F_SERVER] || parse_server(f[F_SERVER], fl[F_SERVER], api) < 0)
    return why_not(why, why_n, "no server URL of http or https");
  int rc = take_path(f[F_CA], fl[F_CA], &api->ca_file) | take_data(f[F_CA_DATA], fl[F_CA_DATA], &api->ca_pem) |
           take_path(f[F_CERT], fl[F_CERT], &api->cert_file) |
           take_data(f[F_CERT_DATA], fl[F_CERT_DATA], &api->cert_pem) | take_path(f[F_KEY], fl[F_KEY], &api->key_file) |
           take_data(f[F_KEY_DATA], fl[F_KEY_DATA], &api->key_pem) |
           take_path(f[F_TOKEN_FILE], fl[F_TOKEN_FILE], &api->token_file);
  if (!rc && fl[F_TOKEN] && !(api->token = strndup(f[F_TOKEN], fl[F_TOKEN])))
    rc = -1;
  if (!rc && fl[F_SERVER_NAME] && !(api->server_name = strndup(f[F_SERVER_NAME], fl[F_SERVER_NAME])))
    rc = -1;
  if (rc) {
    esb_kube_api_release(api);
    return why_not(why, why_n, "a relative file path or data that is not base64");
  }
  snprintf(api->namespace_, sizeof api->namespace_, "%.*s", (int)fl[F_NAMESPACE], f[F_NAMESPACE]);
  if (!api->namespace_[0])
    snprintf(api->namespace_, sizeof api->namespace_, "default");
  return 0;
}

void esb_kube_api_release(struct esb_kube_api *api) {
  char **owned[] = { &api->ca_file, &api->ca_pem, &api->cert_file, &api->cert_pem, &api->key_file, &api->key_pem,
                     &api->token, &api->token_file, &api->server_name };
  for (size_t i = 0; i < sizeof owned / sizeof *owned; i++) {
    free(*owned[i]);
    *owned[i] = NULL;
  }
}

/* ---- one client a kubeconfig and context, for the process --------------- */

#define CLIENTS_MAX 8
static struct client {
  char *kubeconfig, *context; /* the key; NULL: kubectl's default */
  struct esb_kube_api api;
  bool usable;
  char why[128];
} clients[CLIENTS_MAX];
static size_t n_clients;
static pthread_mutex_t clients_lock = PTHREAD_MUTEX_INITIALIZER;

static bool same(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* ---- what kubectl config view said, kept between processes --------------
 *
 * A CLI run is one process: kubectl config view would cost each warm run a
 * kubectl process, as much as the list it saves. So its line is kept in a
 * file of the user's own ($XDG_RUNTIME_DIR/echo-sandbox/kube-api, else
 * ~/.cache/echo-sandbox/kube-api: a directory of mode 0700 owned by the user, a file
 * of mode 0600; any other is not read), under a key that holds the
 * --kubeconfig and --context, $KUBECONFIG, $HOME and the working directory, and the device, inode,
 * size, mtime and ctime of each kubeconfig file kubectl would read: a
 * kubeconfig changed or replaced is a new key, and kubectl is asked again.
 * The line holds what the kubeconfig holds (its tokens and keys), no more,
 * as readable as it: by the user. A token file is read at each request. */

static int cache_dir(char *out, size_t n) {
  const char *run = getenv("XDG_RUNTIME_DIR"), *home = getenv("HOME");
  bool in_run = run && run[0] == '/';
  if (!in_run && !(home && home[0] == '/'))
    return -1;
  int len = snprintf(out, n, "%s%s", in_run ? run : home, in_run ? "" : "/.cache");
  for (const char *part = "/echo-sandbox\0/kube-api\0"; *part && len > 0 && (size_t)len < n;
       part += strlen(part) + 1) {
    mkdir(out, 0700);
    len += snprintf(out + len, n - (size_t)len, "%s", part);
  }
  if (len < 0 || (size_t)len >= n)
    return -1;
  mkdir(out, 0700);
  struct stat st;
  return lstat(out, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() && (st.st_mode & 077) == 0 ? 0 : -1;
}

/* The key: the settings, the environment kubectl reads them with, and the
 * identity of each kubeconfig file (one that is missing too). */
static int cache_key(const struct esb_k8s_settings *k, char *out, size_t n, size_t *named) {
  const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");
  char files[4096];
  if (k->kubeconfig)
    snprintf(files, sizeof files, "%s", k->kubeconfig);
  else if (env && *env)
    snprintf(files, sizeof files, "%s", env);
  else
    snprintf(files, sizeof files, "%s/.kube/config", home ? home : "");
  char cwd[4096]; /* a relative path is the working directory's */
  if (!getcwd(cwd, sizeof cwd))
    return -1;
  size_t o = (size_t)snprintf(out, n, "kubeconfig=%s context=%s KUBECONFIG=%s HOME=%s cwd=%s",
                              k->kubeconfig ? k->kubeconfig : "", k->context ? k->context : "", env ? env : "",
                              home ? home : "", cwd);
  *named = o; /* the file's name: a kubeconfig changed replaces its line */
  for (char *save = NULL, *f = strtok_r(files, ":", &save); f && o < n; f = strtok_r(NULL, ":", &save)) {
    struct stat st = { 0 };
    int missing = stat(f, &st) < 0;
    o += (size_t)snprintf(out + o, n - o, " %s:%d:%llu:%llu:%lld:%lld.%09ld:%lld.%09ld", f, missing,
                          (unsigned long long)st.st_dev, (unsigned long long)st.st_ino, (long long)st.st_size,
                          (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec,
                          st.st_ctim.tv_nsec);
  }
  return o < n && !strchr(out, '\n') ? 0 : -1;
}

static int cache_path(const char *key, size_t named, char *out, size_t n) {
  char dir[4096], hash[ESB_WARM_HASH_HEX + 1], *name = strndup(key, named);
  if (!name || cache_dir(dir, sizeof dir) < 0) {
    free(name);
    return -1;
  }
  esb_warm_hash(name, hash);
  free(name);
  int len = snprintf(out, n, "%s/kubeconfig-%s", dir, hash);
  return len < 0 || (size_t)len >= n ? -1 : 0;
}

/* The line kept under key: malloc'd, or NULL. */
static char *cache_read(const char *key, size_t named, size_t *len) {
  char path[4200];
  int fd = cache_path(key, named, path, sizeof path) == 0 ? open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
  struct stat st;
  char *text = NULL;
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() && (st.st_mode & 077) == 0)
    text = esb_read_fd(fd, len);
  if (fd >= 0)
    close(fd);
  size_t kl = strlen(key);
  if (!text || *len <= kl || memcmp(text, key, kl) != 0 || text[kl] != '\n') {
    free(text);
    return NULL;
  }
  memmove(text, text + kl + 1, *len - kl); /* with its NUL */
  *len -= kl + 1;
  return text;
}

static void cache_write(const char *key, size_t named, const char *line, size_t len) {
  char path[4200], tmp[4300];
  if (cache_path(key, named, path, sizeof path) < 0)
    return;
  snprintf(tmp, sizeof tmp, "%s.%d", path, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return;
  bool ok = esb_write_all(fd, key, strlen(key)) == 0 && esb_write_all(fd, "\n", 1) == 0 &&
            esb_write_all(fd, line, len) == 0;
  ok = close(fd) == 0 && ok;
  if (!ok || rename(tmp, path) < 0)
    unlink(tmp);
}

static void resolve(const struct esb_k8s_settings *k, struct client *c) {
  const char *off = getenv("ECHO_SANDBOX_K8S_API");
  if (off && strcmp(off, "kubectl") == 0) {
    snprintf(c->why, sizeof c->why, "ECHO_SANDBOX_K8S_API=kubectl");
    return;
  }
  if (!esb_install_program(ESB_PROGRAM_KUBE)) {
    snprintf(c->why, sizeof c->why, "echo-sandbox-kube is not installed beside the engine");
    return;
  }
  char key[8192];
  size_t len = 0, named = 0;
  bool keyed = cache_key(k, key, sizeof key, &named) == 0;
  char *line = keyed ? cache_read(key, named, &len) : NULL;
  if (!line) {
    const char *tail[] = { "config", "view", "--raw", "--minify", "-o", esb_kube_api_config_template, NULL };
    struct esb_k8s_settings only = { .kubeconfig = k->kubeconfig, .context = k->context };
    struct esb_result r = ESB_RESULT_INIT;
    esb_k8s_kubectl_run(&only, tail, 10000, &r);
    if (r.status == ESB_STATUS_EXITED && r.exit_code == 0 && (line = strndup(r.out.data ? r.out.data : "", r.out.len)))
      len = r.out.len;
    esb_result_release(&r);
    if (!line) {
      snprintf(c->why, sizeof c->why, "kubectl config view failed");
      return;
    }
    if (keyed)
      cache_write(key, named, line, len);
  }
  c->usable = esb_kube_api_parse_config(line, len, &c->api, c->why, sizeof c->why) == 0;
  explicit_bzero(line, len);
  free(line);
}

const struct esb_kube_api *esb_kube_api_get(const struct esb_k8s_settings *k, const char **why) {
  pthread_mutex_lock(&clients_lock);
  struct client *c = NULL;
  for (size_t i = 0; i < n_clients && !c; i++)
    if (same(clients[i].kubeconfig, k->kubeconfig) && same(clients[i].context, k->context))
      c = &clients[i];
  if (!c && n_clients < CLIENTS_MAX) {
    c = &clients[n_clients++];
    c->kubeconfig = k->kubeconfig ? strdup(k->kubeconfig) : NULL;
    c->context = k->context ? strdup(k->context) : NULL;
    resolve(k, c); /* under the lock: the process's runs wait for the one kubectl */
  }
  const struct esb_kube_api *api = c && c->usable ? &c->api : NULL;
  if (why)
    *why = !c ? "too many kubeconfigs in one process" : c->why;
  pthread_mutex_unlock(&clients_lock);
  return api;
}

void esb_kube_api_drop(const struct esb_kube_api *api) {
  pthread_mutex_lock(&clients_lock);
  for (size_t i = 0; i < n_clients; i++)
    if (&clients[i].api == api) {
      clients[i].usable = false; /* its memory stays: a request in flight may read it */
      snprintf(clients[i].why, sizeof clients[i].why, "the API server refused its credentials (401)");
    }
  pthread_mutex_unlock(&clients_lock);
}

/* ---- one request --------------------------------------------------------- */

void esb_kube_reply_release(struct esb_kube_reply *r) {
  free(r->body);
  r->body = NULL;
  r->len = 0;
}

/* One field of the request for echo-sandbox-kube (none where value is NULL). */
static void say_field(FILE *f, const char *name, const char *value) {
  if (value)
    fprintf(f, "%s %zu\n%s\n", name, strlen(value), value);
}

/* The request's fields, as echo-sandbox-kube reads them (kube_main.c). */
static void put_fields(FILE *f, const struct esb_kube_api *api, const char *method, const char *path,
                       const char *content_type, const char *body, uint64_t timeout_ms, const char *exec_secret) {
  char timeout[32];
  snprintf(timeout, sizeof timeout, "%llu", (unsigned long long)timeout_ms);
  const char *fields[][2] = {
    { "tls", api->tls ? "1" : "0" }, { "host", api->host }, { "port", api->port }, { "base_path", api->base_path },
    { "ca_file", api->ca_file }, { "ca_pem", api->ca_pem }, { "cert_file", api->cert_file },
    { "cert_pem", api->cert_pem }, { "key_file", api->key_file }, { "key_pem", api->key_pem },
    { "token", api->token }, { "token_file", api->token_file }, { "server_name", api->server_name },
    { "method", method }, { "path", path }, { "content_type", content_type }, { "body", body },
    { "timeout_ms", timeout }, { "exec_secret", exec_secret },
  };
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
    say_field(f, fields[i][0], fields[i][1]);
  fputs("end\n", f);
}

/* The request, on the helper's stdin (a pipe it reads whole before it
 * answers). SIGPIPE, where the helper is gone, is this thread's only and
 * taken back: a write error then. 0, or -1. */
static int say_request(int fd, const struct esb_kube_api *api, const char *method, const char *path,
                       const char *content_type, const char *body, uint64_t timeout_ms) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  FILE *f = fdopen(fd, "w");
  if (!f) {
    close(fd);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -1;
  }
  put_fields(f, api, method, path, content_type, body, timeout_ms, NULL);
  int rc = fclose(f) == 0 ? 0 : -1;
  struct timespec none = { 0, 0 };
  while (sigtimedwait(&pipe_set, NULL, &none) > 0) /* one a write raised, taken back */
    ;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}

char *esb_kube_api_exec_request(const struct esb_kube_api *api, const char *path, uint64_t timeout_ms,
                                const char *secret, const char *in, size_t in_len, size_t *len) {
  char *text = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&text, &n);
  if (!f)
    return NULL;
  put_fields(f, api, NULL, path, NULL, NULL, timeout_ms, secret);
  if (in_len)
    fwrite(in, 1, in_len, f);
  if (fclose(f) != 0 || n < in_len) {
    free(text);
    return NULL;
  }
  *len = n;
  return text;
}

char *esb_kube_api_exec_path(const struct esb_kube_api *api, const char *namespace_, const char *pod,
                             const char *const *command) {
  char *path = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&path, &n);
  if (!f)
    return NULL;
  int rc = 0;
  fprintf(f, "/api/v1/namespaces/%s/pods/%s/exec?container=%s&stdin=true&stdout=true&stderr=true",
          namespace_ ? namespace_ : api->namespace_, pod, pod);
  for (const char *const *w = command; *w && rc == 0; w++) {
    size_t size = 3 * strlen(*w) + 1;
    char *escaped = malloc(size);
    rc = escaped && esb_kube_api_escape(*w, escaped, size) == 0 ? 0 : -1;
    if (rc == 0)
      fprintf(f, "&command=%s", escaped);
    free(escaped);
  }
  if (fclose(f) != 0 || rc < 0) {
    free(path);
    return NULL;
  }
  return path;
}

/* The helper's answer: "reply CODE LENGTH" and the body, or "error
 * LENGTH" and why. 0 with r's code and body, or -1 with r->err. */
static int read_reply(int fd, struct esb_kube_reply *r) {
  size_t len = 0;
  char *all = NULL;
  FILE *f = fdopen(fd, "r");
  int code = 0, used = 0, rc = -1;
  size_t n = 0;
  if (!f) {
    close(fd);
    snprintf(r->err, sizeof r->err, "echo-sandbox-kube: %s", strerror(errno));
    return -1;
  }
  ssize_t got = getline(&all, &len, f);
  if (got > 0 && sscanf(all, "reply %d %zu%n", &code, &n, &used) == 2 && n <= (16u << 20) &&
      (r->body = malloc(n + 1)) && fread(r->body, 1, n, f) == n) {
    r->body[n] = '\0';
    r->len = n;
    r->code = code;
    rc = 0;
  } else if (got > 0 && sscanf(all, "error %zu", &n) == 1 && n < sizeof r->err && fread(r->err, 1, n, f) == n) {
    r->err[n] = '\0';
  } else {
    snprintf(r->err, sizeof r->err, "echo-sandbox-kube ended without an answer");
  }
  free(all);
  fclose(f);
  if (rc < 0)
    esb_kube_reply_release(r);
  return rc;
}

int esb_kube_api_request(const struct esb_kube_api *api, const char *method, const char *path,
                         const char *content_type, const char *body, uint64_t timeout_ms, struct esb_kube_reply *r) {
  *r = (struct esb_kube_reply){ 0 };
  const char *program = esb_install_program(ESB_PROGRAM_KUBE);
  if (!program) {
    snprintf(r->err, sizeof r->err, "echo-sandbox-kube is not installed beside the engine");
    return -1;
  }
  const char *argv[] = { program, NULL };
  const char *env[] = { NULL };
  struct esb_child child = ESB_CHILD_INIT;
  struct esb_error err = ESB_ERROR_INIT;
  child.argv = argv;
  child.env = env;
  child.in = ESB_CHILD_PIPE;
  child.out = ESB_CHILD_PIPE;
  if (esb_child_start(&child, &err) < 0) {
    snprintf(r->err, sizeof r->err, "starting echo-sandbox-kube: %.200s", err.message);
    return -1;
  }
  for (int *fd = &child.in; fd <= &child.out; fd++) /* ours, blocking: the helper's time is its timeout */
    fcntl(*fd, F_SETFL, fcntl(*fd, F_GETFL) & ~O_NONBLOCK);
  int in = child.in, out = child.out;
  child.in = child.out = -1; /* the FILEs own them */
  int said = say_request(in, api, method, path, content_type, body, timeout_ms);
  int rc = read_reply(out, r);
  if (rc == 0 && said < 0) { /* an answer to what it did not read whole is none */
    esb_kube_reply_release(r);
    snprintf(r->err, sizeof r->err, "echo-sandbox-kube: the request could not be written");
    rc = -1;
  }
  int status;
  esb_child_reap(&child, &status, false);
  esb_child_close(&child);
  return rc;
}
