/* What network: true may reach: routing-policy rules ("ip rule ...
 * prohibit") in the sandbox's own network namespace.
 *
 * pasta (backend/netstack.h) turns each of the program's connections into a
 * socket of the host's, so without these a connection to any address the
 * host has (a second NIC, a bridge, a VPN), to its neighbours on private
 * networks or to a metadata service (169.254.169.254, fd00:ec2::254) would
 * be made by the host on the program's behalf. The rules, in this order:
 * the host's resolvers (/etc/resolv.conf's nameservers, which the sandbox
 * is given with the network) are allowed on port 53 alone; the host's own
 * addresses (found at run start, esb_netrules_build) are refused;
 * then the ranges a policy allows go to the main table; then the ranges of
 * esb_netrules_blocked (private, shared, link-local, unique-local,
 * multicast, reserved). A refused connection fails at once with EACCES, no
 * packet leaves the namespace.
 *
 * Rules, not routes: a prohibit route for 10.0.0.0/8 would lose to the
 * more specific connected route pasta copies from the host (10.0.0.0/24
 * dev eth0, say); a rule is looked at before the main table. The local
 * table's rule (priority 0) still comes first, so the namespace's own
 * addresses and its loopback stay its own, and neighbour discovery (ARP,
 * NDP: no route lookup) still finds the gateway.
 *
 * The same rules, in the same order, are put on the namespace's output
 * hook too (an nf_tables chain): the kernel routes some datagrams without
 * a rule lookup, or past a refusal, where the program chose the interface
 * (multicast, broadcast, IP_UNICAST_IF, IP_PKTINFO; netrules.c says
 * which), and pasta would send each on from the host.
 *
 * The sandbox's pid 1 installs them (esb_netrules_apply), holding
 * CAP_NET_ADMIN over its namespace, before the program runs; the program
 * has no CAP_NET_ADMIN and cannot remove them. */
#ifndef ESB_ENGINE_NETRULES_H
#define ESB_ENGINE_NETRULES_H

#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

/* An address range: family AF_INET or AF_INET6, the address in network
 * order (4 or 16 bytes used), the prefix length. */
struct esb_net_range {
  uint8_t family;
  uint8_t prefix;
  uint8_t addr[16];
};

enum esb_net_action { ESB_NET_REFUSE = 1, ESB_NET_ALLOW };

struct esb_net_rule {
  struct esb_net_range range;
  uint8_t action;   /* enum esb_net_action */
  uint8_t protocol; /* IPPROTO_UDP or _TCP with port; 0: any */
  uint16_t port;    /* the destination port; 0: any */
  uint32_t priority;
};

/* "10.1.0.0/16", "fd00::/8", or an address alone (/32, /128). 0, or -1 with
 * *err (invalid_request): not an address, a bad prefix, or bits set past the
 * prefix ("10.1.2.0/16": which was meant?). */
int esb_net_range_parse(const char *text, struct esb_net_range *r, struct esb_error *err);

/* The range as text, as esb_net_range_parse reads it. */
void esb_net_range_format(const struct esb_net_range *r, char *out, size_t outlen);

/* The ranges refused unless allowed, and their count. */
const struct esb_net_range *esb_netrules_blocked(size_t *count);

/* The rules of a run: the resolvers of resolv_conf (a path; NULL: none)
 * on port 53, the host's addresses now (getifaddrs), then allow, then the
 * blocked ranges. *rules is malloc'd, the caller's to free.
 * 0, or -1 with errno. */
int esb_netrules_build(const char *resolv_conf, const struct esb_net_range *allow, size_t n_allow,
                       struct esb_net_rule **rules, size_t *count);

/* Adds the rules to the calling process's network namespace, over
 * rtnetlink, and the same as an nf_tables chain on its output hook, over
 * nfnetlink. System calls only (it runs in the sandbox's child). 0, or -1
 * with errno (the kernel's answer). */
int esb_netrules_apply(const struct esb_net_rule *rules, size_t count);

#endif
