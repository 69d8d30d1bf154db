#include "backend/egress_inject.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "engine/fileio.h"
#include "engine/strv.h"

enum {
  SECRET_MAX = 8192,       /* a header's value */
  CERT_DAYS = 2,           /* a run's CA and its leaves: the run ends first */
};

/* ---- secrets ---- */

/* The value of the secret named name: its file's content less one final
 * newline, one line of visible bytes (a CR or LF would end the header and
 * start another). 0, or -1 with *err naming the secret, never its bytes. */
static int read_secret(const struct esb_plan *plan, const char *name, struct esb_egress_rule *r,
                       struct esb_error *err) {
  const char *path = NULL;
  size_t len = strlen(name);
  for (char **s = plan->egress_secrets; s && *s && !path; s++)
    if (!strncmp(*s, name, len) && (*s)[len] == '=')
      path = *s + len + 1;
  if (!path)
    return esb_error_set(err, ESB_E_POLICY, "egress.secrets has no %s", name);
  if (!(r->value = esb_read_file(path, &r->value_len)))
    return esb_error_errno(err, ESB_E_POLICY, "egress.secrets.%s: %s", name, path);
  if (r->value_len && r->value[r->value_len - 1] == '\n')
    r->value[--r->value_len] = '\0';
  if (r->value_len && r->value[r->value_len - 1] == '\r')
    r->value[--r->value_len] = '\0';
  for (size_t i = 0; i < r->value_len; i++)
    if ((unsigned char)r->value[i] < 0x20 && r->value[i] != '\t')
      return esb_error_set(err, ESB_E_POLICY, "egress.secrets.%s: %s holds a control byte or more than one line",
                           name, path);
  if (!r->value_len || r->value_len > SECRET_MAX)
    return esb_error_set(err, ESB_E_POLICY, "egress.secrets.%s: %s is empty or over 8 KiB", name, path);
  return 0;
}

/* ---- certificates ---- */

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  int ok = ext && X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok ? 0 : -1;
}

/* A certificate for key named cn, valid from an hour ago for CERT_DAYS,
 * with a random serial; issued by issuer (NULL: itself). Its extensions
 * are the caller's to add, then sign_cert. */
static X509 *new_cert(EVP_PKEY *key, const char *cn, X509 *issuer) {
  X509 *cert = X509_new();
  unsigned char serial[16];
  BIGNUM *bn = NULL;
  X509_NAME *name = X509_NAME_new();
  bool ok = cert && name && RAND_bytes(serial, sizeof serial) == 1;
  serial[0] &= 0x7f; /* positive */
  ok = ok && (bn = BN_bin2bn(serial, sizeof serial, NULL)) && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) &&
       X509_set_version(cert, 2) && X509_gmtime_adj(X509_getm_notBefore(cert), -3600) &&
       X509_gmtime_adj(X509_getm_notAfter(cert), 86400L * CERT_DAYS) &&
       X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) &&
       X509_set_subject_name(cert, name) &&
       X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name) && X509_set_pubkey(cert, key);
  BN_free(bn);
  X509_NAME_free(name);
  if (!ok) {
    X509_free(cert);
    return NULL;
  }
  return cert;
}

/* The run's CA: may sign server certificates for the injected hosts only
 * (name constraints), so that a copy of it in another trust store vouches
 * for nothing else. */
static int make_ca(struct esb_egress_injector *in) {
  size_t cap = 64;
  for (size_t i = 0; i < in->n_rules; i++)
    cap += strlen(in->rules[i].host) + 24;
  char *permitted = malloc(cap);
  if (!permitted || !(in->ca_key = EVP_EC_gen("P-256")) ||
      !(in->ca = new_cert(in->ca_key, "echo-sandbox egress proxy (this run's)", NULL))) {
    free(permitted);
    return -1;
  }
  size_t n = (size_t)snprintf(permitted, cap, "critical");
  for (size_t i = 0; i < in->n_rules; i++)
    n += (size_t)snprintf(permitted + n, cap - n, ",permitted;DNS:%s", in->rules[i].host);
  int rc = add_ext(in->ca, in->ca, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") < 0 ||
           add_ext(in->ca, in->ca, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
           add_ext(in->ca, in->ca, NID_subject_key_identifier, "hash") < 0 ||
           add_ext(in->ca, in->ca, NID_name_constraints, permitted) < 0 ||
           !X509_sign(in->ca, in->ca_key, EVP_sha256()) ? -1 : 0;
  free(permitted);
  return rc;
}

static X509 *make_leaf(const struct esb_egress_injector *in, const char *host) {
  char san[300];
  snprintf(san, sizeof san, "DNS:%s", host);
  X509 *leaf = new_cert(in->leaf_key, host, in->ca);
  if (leaf && add_ext(leaf, in->ca, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
      add_ext(leaf, in->ca, NID_key_usage, "critical,digitalSignature") == 0 &&
      add_ext(leaf, in->ca, NID_ext_key_usage, "serverAuth") == 0 &&
      add_ext(leaf, in->ca, NID_subject_alt_name, san) == 0 &&
      add_ext(leaf, in->ca, NID_authority_key_identifier, "keyid") == 0 &&
      X509_sign(leaf, in->ca_key, EVP_sha256()))
    return leaf;
  X509_free(leaf);
  return NULL;
}

/* The CA's certificate in PEM, for the engine to give the sandbox. */
static int write_pem(struct esb_egress_injector *in) {
  BIO *mem = BIO_new(BIO_s_mem());
  char *data;
  if (!mem || !PEM_write_bio_X509(mem, in->ca)) {
    BIO_free(mem);
    return -1;
  }
  long len = BIO_get_mem_data(mem, &data);
  if ((in->ca_pem = malloc((size_t)len + 1))) {
    memcpy(in->ca_pem, data, (size_t)len);
    in->ca_len = (size_t)len;
  }
  BIO_free(mem);
  return in->ca_pem ? 0 : -1;
}

/* ---- TLS ---- */

/* The ClientHello is parsed: its server name must be the host the
 * certificate was made for (the app data's). */
static int on_servername(SSL *ssl, int *alert, void *arg) {
  (void)arg;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  struct esb_egress_sni *sni = SSL_get_app_data(ssl);
  sni->named = name != NULL;
  sni->mismatch = name && strcasecmp(name, sni->host) != 0;
  *alert = SSL_AD_UNRECOGNIZED_NAME;
  return name && !sni->mismatch ? SSL_TLSEXT_ERR_OK : SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int make_contexts(struct esb_egress_injector *in, const struct esb_plan *plan) {
  if (!(in->server = SSL_CTX_new(TLS_server_method())) || !(in->client = SSL_CTX_new(TLS_client_method())))
    return -1;
  SSL_CTX_set_min_proto_version(in->server, TLS1_2_VERSION);
  SSL_CTX_set_min_proto_version(in->client, TLS1_2_VERSION);
  /* An end without close_notify is an end: the relay passes it on as one */
  SSL_CTX_set_options(in->server, SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_options(in->client, SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_tlsext_servername_callback(in->server, on_servername);
  /* no ALPN: the program speaks HTTP/1.1 to the proxy, whose heads it rewrites */
  SSL_CTX_set_verify(in->client, SSL_VERIFY_PEER, NULL);
  /* The host's store as its hashed directory, looked up as a chain needs
   * a CA: the default paths' bundle file would be parsed whole at each
   * run's start (20 ms measured, for a store most runs never use). */
  return plan->egress_upstream_ca ? (SSL_CTX_load_verify_file(in->client, plan->egress_upstream_ca) == 1 ? 0 : -1)
                                  : (SSL_CTX_load_verify_dir(in->client, X509_get_default_cert_dir()) == 1 ? 0 : -1);
}

int esb_egress_injector_init(struct esb_egress_injector *in, const struct esb_plan *plan, struct esb_error *err) {
  *in = (struct esb_egress_injector){ 0 };
  if (!(in->rules = calloc(plan->n_egress_inject ? plan->n_egress_inject : 1, sizeof *in->rules)))
    return esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  for (size_t i = 0; i < plan->n_egress_inject; i++) {
    const struct esb_egress_inject *e = &plan->egress_inject[i];
    struct esb_egress_rule *r = &in->rules[in->n_rules++];
    if (!(r->host = strdup(e->host)) || !(r->header = strdup(e->header)))
      return esb_error_set(err, ESB_E_SYSTEM, "out of memory");
    for (char *c = r->host; *c; c++)
      *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    if (read_secret(plan, e->secret, r, err) < 0)
      return -1;
  }
  if (make_ca(in) < 0 || !(in->leaf_key = EVP_EC_gen("P-256")) || write_pem(in) < 0)
    return esb_error_set(err, ESB_E_SYSTEM, "egress proxy: making the run's CA (OpenSSL)");
  if (make_contexts(in, plan) < 0)
    return esb_error_set(err, ESB_E_POLICY, "egress proxy: the TLS contexts (egress.upstream_ca %s: not a PEM "
                         "file of certificates?)", plan->egress_upstream_ca ? plan->egress_upstream_ca : "unset");
  return 0;
}

/* The operator's CA: its certificate and key, PEM files. 0, or -1. */
static int load_ca(struct esb_egress_injector *in, const char *ca_cert, const char *ca_key) {
  FILE *f = fopen(ca_cert, "re");
  in->ca = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
  if (f)
    fclose(f);
  f = in->ca ? fopen(ca_key, "re") : NULL;
  in->ca_key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
  if (f)
    fclose(f);
  return in->ca && in->ca_key && X509_check_private_key(in->ca, in->ca_key) == 1 ? 0 : -1;
}

int esb_egress_injector_init_shared(struct esb_egress_injector *in, const struct esb_plan *plan,
                                    const char *ca_cert, const char *ca_key, struct esb_error *err) {
  *in = (struct esb_egress_injector){ 0 };
  size_t n = esb_strv_length(plan->egress_secrets);
  if (!(in->rules = calloc(n ? n : 1, sizeof *in->rules)))
    return esb_error_set(err, ESB_E_SYSTEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    struct esb_egress_rule *r = &in->rules[in->n_rules++];
    const char *s = plan->egress_secrets[i];
    if (!(r->secret = strndup(s, strcspn(s, "="))))
      return esb_error_set(err, ESB_E_SYSTEM, "out of memory");
    if (read_secret(plan, r->secret, r, err) < 0)
      return -1;
  }
  if (load_ca(in, ca_cert, ca_key) < 0) {
    ERR_clear_error();
    return esb_error_set(err, ESB_E_POLICY, "egress proxy: the CA (--ca-cert %s, --ca-key %s): not a PEM "
                         "certificate and its private key", ca_cert, ca_key);
  }
  if (!(in->leaf_key = EVP_EC_gen("P-256")) || write_pem(in) < 0)
    return esb_error_set(err, ESB_E_SYSTEM, "egress proxy: the leaves' key (OpenSSL)");
  if (make_contexts(in, plan) < 0)
    return esb_error_set(err, ESB_E_POLICY, "egress proxy: the TLS contexts (--upstream-ca %s: not a PEM "
                         "file of certificates?)", plan->egress_upstream_ca ? plan->egress_upstream_ca : "unset");
  return 0;
}

const struct esb_egress_rule *esb_egress_injector_secret(const struct esb_egress_injector *in, const char *name) {
  for (size_t i = 0; in && i < in->n_rules; i++)
    if (in->rules[i].secret && !strcmp(in->rules[i].secret, name))
      return &in->rules[i];
  return NULL;
}

const struct esb_egress_rule *esb_egress_injector_rule(const struct esb_egress_injector *in, const char *host) {
  for (size_t i = 0; in && i < in->n_rules; i++)
    if (in->rules[i].host && !strcmp(in->rules[i].host, host))
      return &in->rules[i];
  return NULL;
}

SSL *esb_egress_injector_accept(const struct esb_egress_injector *in, struct esb_egress_sni *sni) {
  X509 *leaf = make_leaf(in, sni->host);
  SSL *ssl = leaf ? SSL_new(in->server) : NULL;
  if (ssl && (SSL_use_certificate(ssl, leaf) != 1 || SSL_use_PrivateKey(ssl, in->leaf_key) != 1)) {
    SSL_free(ssl);
    ssl = NULL;
  }
  X509_free(leaf); /* the SSL holds its own reference */
  if (ssl)
    SSL_set_app_data(ssl, sni);
  return ssl;
}

SSL *esb_egress_injector_connect(const struct esb_egress_injector *in, const char *host) {
  SSL *ssl = SSL_new(in->client);
  if (ssl && (SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1)) {
    SSL_free(ssl);
    return NULL;
  }
  return ssl;
}

void esb_egress_injector_release(struct esb_egress_injector *in) {
  for (size_t i = 0; i < in->n_rules; i++) {
    free(in->rules[i].host);
    free(in->rules[i].secret);
    free(in->rules[i].header);
    if (in->rules[i].value)
      OPENSSL_cleanse(in->rules[i].value, in->rules[i].value_len);
    free(in->rules[i].value);
  }
  free(in->rules);
  EVP_PKEY_free(in->ca_key);
  EVP_PKEY_free(in->leaf_key);
  X509_free(in->ca);
  SSL_CTX_free(in->server);
  SSL_CTX_free(in->client);
  free(in->ca_pem);
  *in = (struct esb_egress_injector){ 0 };
}
