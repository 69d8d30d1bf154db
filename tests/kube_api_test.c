#include "backend/kube_api.h"
#include "backend/kube_exec.h"

#include <stdlib.h>

#include "tap.h"

/* A line as the config template prints it: 18 fields, those given set. */
struct fields {
  const char *f[18];
};

static int parse(const struct fields *in, struct esb_kube_api *api, char *why, size_t n) {
  char line[4096] = "";
  for (int i = 0; i < 18; i++) {
    strcat(line, in->f[i] ? in->f[i] : "");
    strcat(line, i < 17 ? "\t" : "\n");
  }
  return esb_kube_api_parse_config(line, strlen(line), api, why, n);
}

enum { SERVER, CA, CA_DATA, INSECURE, SERVER_NAME, PROXY, TOKEN, TOKEN_FILE, CERT, CERT_DATA, KEY, KEY_DATA,
       USERNAME, EXEC, AUTH_PROVIDER, AS, AS_GROUPS, NAMESPACE };

static void servers(void) {
  struct esb_kube_api api;
  char why[128];
  struct fields f = { .f = { [SERVER] = "http://127.0.0.1:40000", [TOKEN] = "t", [NAMESPACE] = "ns" } };
  is_int(parse(&f, &api, why, sizeof why), 0, "a plain server and a token");
  ok(!api.tls, "http is no TLS");
  is_str(api.host, "127.0.0.1", "its host");
  is_str(api.port, "40000", "its port");
  is_str(api.base_path, "", "no path");
  is_str(api.token, "t", "the token");
  is_str(api.namespace_, "ns", "the context's namespace");
  esb_kube_api_release(&api);
  f.f[SERVER] = "https://[::1]/k8s/clusters/c-1/";
  f.f[NAMESPACE] = NULL;
  is_int(parse(&f, &api, why, sizeof why), 0, "https, IPv6, a path");
  ok(api.tls, "https is TLS");
  is_str(api.host, "::1", "the host out of its brackets");
  is_str(api.port, "443", "https's port");
  is_str(api.base_path, "/k8s/clusters/c-1", "the path, without its last slash");
  is_str(api.namespace_, "default", "no namespace in the context: default");
  esb_kube_api_release(&api);
  const char *bad[] = { "127.0.0.1:80", "ftp://h", "https://h:x", "https://h?x=1", "https://:443", "" };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    f.f[SERVER] = bad[i];
    is_int(parse(&f, &api, why, sizeof why), -1, bad[i]);
  }
}

static void credentials(void) {
  struct esb_kube_api api;
  char why[128];
  /* "-----BEGIN X-----\n" in base64 */
  struct fields f = { .f = { [SERVER] = "https://h", [CA_DATA] = "LS0tLS1CRUdJTiBYLS0tLS0K",
                             [CERT] = "/c.pem", [KEY] = "/k.pem", [TOKEN_FILE] = "/t" } };
  is_int(parse(&f, &api, why, sizeof why), 0, "CA data, cert and key files, a token file");
  const char *got[] = { api.ca_pem, api.cert_file, api.key_file, api.token_file, api.token, api.cert_pem };
  const char *want[] = { "-----BEGIN X-----\n", "/c.pem", "/k.pem", "/t", NULL, NULL };
  for (size_t i = 0; i < sizeof got / sizeof *got; i++)
    is_str(got[i], want[i], "the CA's data decoded, the files' paths as they are, no token nor cert data");
  esb_kube_api_release(&api);
  f.f[CERT] = "certs/c.pem";
  is_int(parse(&f, &api, why, sizeof why), -1, "a relative path: kubectl's");
  f.f[CERT] = NULL;
  f.f[CA_DATA] = "not base64!";
  is_int(parse(&f, &api, why, sizeof why), -1, "data that is not base64");
  f.f[CA_DATA] = NULL;
  f.f[INSECURE] = "false";
  is_int(parse(&f, &api, why, sizeof why), 0, "insecure-skip-tls-verify false is none");
  esb_kube_api_release(&api);
  /* each of what the client leaves to kubectl */
  const int theirs[] = { INSECURE, PROXY, USERNAME, EXEC, AUTH_PROVIDER, AS, AS_GROUPS };
  const char *names[] = { "insecure-skip-tls-verify", "a proxy-url", "basic auth", "an exec credential plugin",
                          "an auth provider", "impersonation", "impersonation" };
  for (size_t i = 0; i < sizeof theirs / sizeof *theirs; i++) {
    struct fields g = { .f = { [SERVER] = "https://h" } };
    g.f[theirs[i]] = "true";
    is_int(parse(&g, &api, why, sizeof why), -1, names[i]);
    is_str(why, names[i], "and says it");
  }
  setenv("HTTPS_PROXY", "http://proxy:3128", 1);
  struct fields g = { .f = { [SERVER] = "https://h" } };
  is_int(parse(&g, &api, why, sizeof why), -1, "a proxy in the environment");
  unsetenv("HTTPS_PROXY");
  is_int(esb_kube_api_parse_config("a\tb\n", 4, &api, why, sizeof why), -1, "too few fields");
}

static void said(void) {
  char out[256];
  struct esb_kube_reply r = { .code = 409, .body = (char *)"{\"kind\":\"Status\",\"message\":\"Operation cannot be "
                              "fulfilled on pods \\\"p\\\": the object has been modified\",\"reason\":\"Conflict\"}" };
  esb_kube_api_said(&r, out, sizeof out);
  is_str(out, "Error from server (Conflict): Operation cannot be fulfilled on pods \\\"p\\\": the object has been "
         "modified", "a Status: its reason and message, as kubectl says them");
  r = (struct esb_kube_reply){ .code = 404, .body = NULL };
  esb_kube_api_said(&r, out, sizeof out);
  is_str(out, "Error from server (NotFound): the server answered 404", "no body: the code's reason");
  r = (struct esb_kube_reply){ .code = 599, .body = (char *)"<html>" };
  esb_kube_api_said(&r, out, sizeof out);
  is_str(out, "Error from server (Unknown): the server answered 599", "a code it does not know");
}

static void escape(void) {
  char out[64];
  is_int(esb_kube_api_escape("echo-sandbox.io/warm-pool=a,b", out, sizeof out), 0, "a selector");
  is_str(out, "echo-sandbox.io%2Fwarm-pool%3Da%2Cb", "its query form");
  is_int(esb_kube_api_escape("abcdefghijklmnopqrstuvwxyz/abcdefghijklmnopqrstuvwxyz", out, 40), -1, "too long");
}

/* The exec's status (channel 3) and echo-sandbox-kube's word on it
 * (backend/kube_exec.h): an exit only where the status says one. */
static void exec_words(void) {
  struct esb_kube_exec_word w;
  const char *ok = "{\"metadata\":{},\"status\":\"Success\"}";
  esb_kube_exec_status_read(ok, strlen(ok), &w);
  is_int(w.end == ESB_KUBE_EXEC_EXIT && w.exit_code == 0, 1, "Success: exit 0");
  const char *three = "{\"metadata\": {}, \"status\": \"Failure\", \"reason\": \"NonZeroExitCode\", \"message\": "
                      "\"command terminated with non-zero exit code: exit code 3\", \"details\": {\"causes\": "
                      "[{\"message\": \"3\", \"reason\": \"ExitCode\"}]}}";
  esb_kube_exec_status_read(three, strlen(three), &w);
  is_int(w.end == ESB_KUBE_EXEC_EXIT && w.exit_code == 3, 1, "NonZeroExitCode: its ExitCode cause");
  const char *lost = "{\"status\":\"Failure\",\"reason\":\"InternalError\",\"message\":\"container not found\"}";
  esb_kube_exec_status_read(lost, strlen(lost), &w);
  is_int(w.end, ESB_KUBE_EXEC_ERROR, "another failure: the exec's, not the command's");
  is_str(w.said, "error: container not found", "its message");
  const char *no_code = "{\"status\":\"Failure\",\"reason\":\"NonZeroExitCode\",\"details\":{\"causes\":"
                        "[{\"reason\":\"ExitCode\",\"message\":\"999\"}]}}";
  esb_kube_exec_status_read(no_code, strlen(no_code), &w);
  is_int(w.end, ESB_KUBE_EXEC_ERROR, "an exit code out of 0-255 is no exit");
  esb_kube_exec_status_read("{\"status\":\"Failure\"}", 20, &w);
  is_str(w.said, "error: the exec's status failed", "a failure without its message: said whole");
  char line[600];
  w = (struct esb_kube_exec_word){ .end = ESB_KUBE_EXEC_EXIT, .exit_code = 255 };
  esb_kube_exec_word_format(&w, line, sizeof line);
  is_str(line, " exit 255\n", "an exit's word");
  is_int(esb_kube_exec_word_parse(line, strlen(line), &w) == 0 && w.exit_code == 255, 1, "read back");
  w = (struct esb_kube_exec_word){ .end = ESB_KUBE_EXEC_ERROR };
  snprintf(w.said, sizeof w.said, "error: two\nlines");
  esb_kube_exec_word_format(&w, line, sizeof line);
  is_str(line, " error error: two lines\n", "a failure's word: one line");
  is_int(esb_kube_exec_word_parse(line, strlen(line), &w) == 0 && w.end == ESB_KUBE_EXEC_ERROR, 1, "read back");
  is_str(w.said, "error: two lines", "its words");
  is_int(esb_kube_exec_word_parse(" exit 3", 7, &w), -1, "cut short");
  is_int(esb_kube_exec_word_parse(" exit 256\n", 10, &w), -1, "no exit code");
  is_int(esb_kube_exec_word_parse(" exit\n", 6, &w), -1, "an exit without its code");
  is_int(esb_kube_exec_word_parse(" quit 3\n", 8, &w), -1, "no word of ours");
}

int main(void) {
  servers();
  credentials();
  said();
  escape();
  exec_words();
  return tap_done();
}
