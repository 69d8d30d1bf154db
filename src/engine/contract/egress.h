/* Network by name: the entries of an egress allow list ("pypi.org",
 * "*.pythonhosted.org", either with ":443"), how a connection's host and
 * port are matched against them, and the ledger of the connections a run
 * made or tried (the result's "egress").
 *
 * The grammar is checked wherever a list enters: the request's
 * limits.network.allow (codec/convert.c, invalid_request naming the entry)
 * and the policy's plan (policy/plan_reader.c, policy_error). Names are
 * compared in lower case, without a trailing dot; a name whose last label
 * is all digits is refused (it is an address, or a name no resolver
 * answers).
 *
 * An entry may also be an address or a range: "203.0.113.5",
 * "203.0.113.0/24", "[2001:db8::1]", "[2001:db8::]/32", each with ":PORT"
 * or not. It names the connections the program asks by address (CONNECT
 * 203.0.113.5:443, http://[2001:db8::1]/), never a name that resolves
 * there; an IPv4 address mapped into IPv6 is matched as the IPv4 one. A
 * request may give such entries only where the policy's egress.addresses
 * says so (the policy decides, lua/echo_sandbox/policy/default.lua), and
 * the proxy refuses private, loopback, link-local and metadata addresses
 * whatever the list says, as it does for names. */
#ifndef ESB_ENGINE_CONTRACT_EGRESS_H
#define ESB_ENGINE_CONTRACT_EGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ESB_EGRESS_HOST_MAX 253     /* a DNS name's most bytes */
#define ESB_EGRESS_ENTRY_MAX 270    /* "*." + a name + ":65535" */
#define ESB_EGRESS_LEDGER_MAX 256   /* the most attempts a result lists */

/* NULL when entry is a host name, "*." and a host name, an address or a
 * range, any of them with ":PORT" (1-65535); else why not, in a few words
 * (static). */
const char *esb_egress_entry_problem(const char *entry);

/* Whether entry is written as an address or a range (checked or not). */
bool esb_egress_entry_is_address(const char *entry);

/* Whether host, as a connection asks it, is an address (IPv6 with or
 * without its "[...]"). */
bool esb_egress_host_is_address(const char *host);

/* NULL when host is a host name as an entry has it (no "*.", no port); else
 * why not. */
const char *esb_egress_host_problem(const char *host);

/* Whether host:port is one entry names: "a.b" names a.b alone, "*.a.b"
 * the names below a.b (not a.b itself), an address or a range the
 * addresses within it; without a port, every port. Case-insensitive; host
 * without its trailing dot. entry is checked. */
bool esb_egress_entry_matches(const char *entry, const char *host, unsigned port);

/* Whether some entry of the NULL-terminated list (NULL: none) matches. */
bool esb_egress_list_matches(char *const *list, const char *host, unsigned port);

/* Why an attempt was let through or not: one table of the words
 * (egress.c), for the ledger and the proxy's answers alike. */
enum esb_egress_reason {
  ESB_EGRESS_ALLOWED,         /* on the list, a public address, connected */
  ESB_EGRESS_NOT_LISTED,      /* the name is on no entry of the list */
  ESB_EGRESS_DENIED,          /* the policy's deny list names it */
  ESB_EGRESS_UNRESOLVED,      /* the proxy found no address for the name */
  ESB_EGRESS_BLOCKED_ADDRESS, /* every address of the name is private, loopback,
                                 link-local, metadata or the host's own */
  ESB_EGRESS_CONNECT_FAILED,  /* no address of the name answered */
  ESB_EGRESS_SNI_MISMATCH,    /* the TLS server name is not the name CONNECT asked */
  ESB_EGRESS_NOT_TLS,         /* CONNECT's first bytes were no TLS ClientHello with a name */
  ESB_EGRESS_HOST_MISMATCH,   /* a plain request's Host is not its URL's host */
  ESB_EGRESS_BAD_REQUEST,     /* no HTTP request a proxy serves */
  ESB_EGRESS_UNVERIFIED,      /* a host the proxy injects a credential to showed a
                                 certificate its trust store does not accept */
  ESB_EGRESS_TOKEN_EXPIRED,   /* the shared proxy (Kubernetes): the run's capability is
                                 past its expiry (its run's deadline) */
  ESB_EGRESS_BAD_TOKEN,       /* the shared proxy: no capability, or one whose signature
                                 does not hold (edited, or signed with another key) */
  ESB_EGRESS_REASON__COUNT
};

/* Never NULL. */
const char *esb_egress_reason_name(enum esb_egress_reason reason);

/* One attempt: host as asked (lower case), the port, and the bytes relayed
 * each way (out: from the program). */
struct esb_egress_attempt {
  char *host;
  unsigned port;
  bool allowed;
  enum esb_egress_reason reason;
  uint64_t bytes_out, bytes_in;
};

/* The attempts of a run, the first ESB_EGRESS_LEDGER_MAX of them, and a
 * count of those left off. wanted: the run had a list (the result lists
 * egress, empty or not). */
struct esb_egress_ledger {
  struct esb_egress_attempt *v;
  size_t n, cap;
  uint64_t left_off;
  bool wanted;
};

/* Appends an attempt (host copied): its index, or -1 where it was left off
 * (counted) or out of memory (counted too: the ledger never claims fewer
 * attempts than there were). */
long esb_egress_ledger_add(struct esb_egress_ledger *l, const char *host, unsigned port);

void esb_egress_ledger_release(struct esb_egress_ledger *l);

#endif
