/* The capability of a Kubernetes run with an allow list: what the shared
 * egress proxy (echo-sandbox-egress serve, backend/egress_proxy.h) lets
 * that run's program do, carried by the program itself.
 *
 * The proxy serves every run of a cluster and holds no per-run state to
 * decide with: each connection carries its run's grant in its
 * Proxy-Authorization (the user of HTTP_PROXY's http://TOKEN@proxy:port,
 * which clients send as Basic credentials). The grant is text, lines of
 * "WORD VALUE":
 *   echo-sandbox-egress 1      the form, first
 *   run POD                    the run's id (its pod's name): the ledger's key
 *   expires SECONDS            Unix time after which the grant is refused
 *   allow ENTRY / deny ENTRY   the plan's lists (engine/contract/egress.h)
 *   inject HOST HEADER SECRET  a header the proxy adds for HOST, with the
 *                              value of its secret of that name (the
 *                              proxy's, never the grant's)
 * The token is base64url(grant) "." base64url(HMAC-SHA256(key, the first
 * part)), the key a file that the engines and the proxy share (a Secret).
 * Only echo-sandbox-egress computes HMACs (it links OpenSSL; the engine
 * asks it to sign: backend/egress_helper.h); this file is the grant's
 * text, which both sides read and write. */
#ifndef ESB_BACKEND_EGRESS_TOKEN_H
#define ESB_BACKEND_EGRESS_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "backend/plan.h"
#include "engine/error.h"

#define ESB_EGRESS_TOKEN_MAX 12288 /* a token's bytes: it travels in one header */
#define ESB_EGRESS_RUN_MAX 63      /* a run id's bytes (a pod's name) */

struct esb_egress_grant {
  char run[ESB_EGRESS_RUN_MAX + 1];
  int64_t expires;                    /* Unix seconds */
  char **allow, **deny;               /* NULL-terminated; deny may be NULL */
  struct esb_egress_inject *inject;   /* n_inject; secret: a name the proxy knows */
  size_t n_inject;
};

/* The grant of plan's lists for run, until expires: malloc'd text, or NULL
 * (no memory, or an entry with a space or newline, which no checked list
 * has). */
char *esb_egress_grant_text(const struct esb_plan *plan, const char *run, int64_t expires);

/* Reads a grant's text (len bytes) into *g (zeroed first; release it
 * either way). 0, or -1 where it is not one: a form, run, expiry or entry
 * out of the grammar. */
int esb_egress_grant_parse(const char *text, size_t len, struct esb_egress_grant *g);

void esb_egress_grant_release(struct esb_egress_grant *g);

/* ---- echo-sandbox-egress only (egress_sign.c, OpenSSL) ---- */

/* The shared key: a file's bytes, at least 32 of them (a Secret's). 0, or
 * -1 with *err naming the file, never its bytes. */
int esb_egress_key_read(const char *path, unsigned char **key, size_t *len, struct esb_error *err);

/* The token of a grant's text: malloc'd, or NULL (no memory). */
char *esb_egress_token_sign(const unsigned char *key, size_t key_len, const char *grant);

/* Why a token is refused, or NULL where its signature holds (then *g holds
 * its grant, the caller's to release; its expiry is the caller's to judge). */
const char *esb_egress_token_open(const unsigned char *key, size_t key_len, const char *token, size_t len,
                                  struct esb_egress_grant *g);

/* "Basic " and the base64 of "TOKEN:", a Proxy-Authorization value:
 * malloc'd, or NULL. */
char *esb_egress_token_basic(const char *token);

/* The token in a Proxy-Authorization value ("Basic " and the base64 of
 * "TOKEN:" or "TOKEN:anything"): malloc'd, or NULL where it holds none. */
char *esb_egress_token_from_basic(const char *value, size_t len);

#endif
