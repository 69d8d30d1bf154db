/* Credentials added outside the sandbox: for a host the plan's
 * egress.inject names, the egress proxy (backend/egress_proxy.h) puts a
 * header with a secret's value on the program's requests, so the program
 * uses the credential without ever holding it.
 *
 * Where the values come from: each secret is a file the policy names
 * (egress.secrets), read here, in the proxy's process (echo-sandbox-egress,
 * root, outside the sandbox), when the run starts: the engine never holds
 * it. Its whole content, less one final newline, is the header's value; it
 * lives in this struct only: the policy's Lua sees the file's path, the
 * sandbox, the result, the logs and the metrics never see the value.
 *
 * TLS to such a host is terminated: the injector holds a CA made for the
 * run (an EC key and a self-signed certificate, in memory, whose name
 * constraints permit the injected hosts only), signs a certificate for the
 * host on each connection, and opens a TLS connection of its own to the
 * real host that verifies its chain and name against upstream_ca, or the
 * host's trust store. The CA's certificate (never its key) is the
 * sandbox's: ca_pem goes to the engine, which writes it, alone and with
 * the host's trust store, in the files backend/egress_helper.h names (and
 * SSL_CERT_FILE and the like name them: backend/local.c). */
#ifndef ESB_BACKEND_EGRESS_INJECT_H
#define ESB_BACKEND_EGRESS_INJECT_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "backend/plan.h"
#include "engine/error.h"

struct esb_egress_rule {
  char *host;      /* lower case; the shared proxy's: NULL (the token names the host) */
  char *secret;    /* the shared proxy's: the secret's name (egress.secrets), else NULL */
  char *header;
  char *value;     /* the secret's: cleansed when released */
  size_t value_len;
};

struct esb_egress_injector {
  struct esb_egress_rule *rules;
  size_t n_rules;
  EVP_PKEY *ca_key, *leaf_key; /* the leaves share one key: the CA is the run's alone */
  X509 *ca;
  SSL_CTX *server, *client;   /* toward the program; toward the real host (verifying) */
  char *ca_pem;                /* its certificate, PEM: the sandbox's (never the key) */
  size_t ca_len;
};

/* Reads the plan's secrets and makes the run's CA. 0, or -1 with *err
 * naming the secret or file at fault (never a value). */
int esb_egress_injector_init(struct esb_egress_injector *in, const struct esb_plan *plan, struct esb_error *err);

/* The shared proxy's (echo-sandbox-egress serve, backend/egress_token.h):
 * every secret of plan's egress.secrets read, by name (rules without a
 * host: each run's token says which host gets which, with which header),
 * and the CA from the operator's files (cert and key, PEM): the engines
 * give its certificate to the pods. 0, or -1 with *err naming the file. */
int esb_egress_injector_init_shared(struct esb_egress_injector *in, const struct esb_plan *plan,
                                    const char *ca_cert, const char *ca_key, struct esb_error *err);

/* The shared proxy's secret of that name (its rule), or NULL. */
const struct esb_egress_rule *esb_egress_injector_secret(const struct esb_egress_injector *in, const char *name);

/* The rule for host (lower case), or NULL: a host not named is never
 * terminated. */
const struct esb_egress_rule *esb_egress_injector_rule(const struct esb_egress_injector *in, const char *host);

/* What the program's ClientHello named, against the host CONNECT asked. */
struct esb_egress_sni {
  const char *host;
  bool named, mismatch;  /* it named a server; another than host */
};

/* A TLS server for the program's side of one connection: a certificate
 * for sni->host signed by the run's CA; the handshake fails unless the
 * ClientHello names that host (*sni says what it named; it must outlive
 * the SSL). NULL on failure. */
SSL *esb_egress_injector_accept(const struct esb_egress_injector *in, struct esb_egress_sni *sni);

/* A TLS client toward the real host, verifying its chain and its name.
 * NULL on failure. */
SSL *esb_egress_injector_connect(const struct esb_egress_injector *in, const char *host);

void esb_egress_injector_release(struct esb_egress_injector *in);

#endif
