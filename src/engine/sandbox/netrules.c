#include "engine/sandbox/netrules.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/fib_rules.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* Where each kind of rule sits in the namespace's rule list: after the
 * local table (0), before the main table (32766). */
enum { PRIORITY_RESOLVER = 500, PRIORITY_HOST = 1000, PRIORITY_ALLOW = 2000, PRIORITY_BLOCKED = 3000 };

#define V4(a, b, c, d, len) { AF_INET, len, { a, b, c, d } }
#define V6(len, ...) { AF_INET6, len, { __VA_ARGS__ } }

/* Nothing of these is the internet a program asks for; each is where a
 * host's own services, its neighbours or a cloud's metadata live. */
static const struct esb_net_range blocked[] = {
  V4(0, 0, 0, 0, 8),          /* "this network" */
  V4(10, 0, 0, 0, 8),         /* private (RFC 1918) */
  V4(100, 64, 0, 0, 10),      /* shared address space (carrier NAT, RFC 6598); Alibaba's metadata */
  V4(127, 0, 0, 0, 8),        /* loopback (the namespace's own stays its own) */
  V4(169, 254, 0, 0, 16),     /* link-local: AWS, GCP, Azure metadata at 169.254.169.254 */
  V4(172, 16, 0, 0, 12),      /* private */
  V4(192, 0, 0, 0, 24),       /* IETF protocol assignments */
  V4(192, 168, 0, 0, 16),     /* private */
  V4(224, 0, 0, 0, 3),        /* multicast, reserved, broadcast */
  V6(96, 0),                  /* ::, ::1 and the IPv4-compatible form of any IPv4 address */
  V6(128, [15] = 1),          /* ::1 */
  V6(96, [10] = 0xff, [11] = 0xff), /* IPv4-mapped */
  V6(96, 0, 0x64, 0xff, 0x9b), /* NAT64 (RFC 6052): a gateway's way to private IPv4 ranges */
  V6(48, 0, 0x64, 0xff, 0x9b, 0, 1), /* NAT64, local use (RFC 8215) */
  V6(16, 0x20, 0x02),         /* 6to4: an IPv4 address inside, private ones too */
  V6(32, 0x20, 0x01, 0, 0),   /* Teredo: likewise */
  V6(7, 0xfc),                /* unique local: fd00:ec2::254 is AWS's metadata */
  V6(10, 0xfe, 0x80),         /* link-local */
  V6(10, 0xfe, 0xc0),         /* site-local (deprecated) */
  V6(8, 0xff),                /* multicast */
};

const struct esb_net_range *esb_netrules_blocked(size_t *count) {
  *count = sizeof blocked / sizeof blocked[0];
  return blocked;
}

static size_t address_bytes(int family) {
  return family == AF_INET ? 4 : 16;
}

int esb_net_range_parse(const char *text, struct esb_net_range *r, struct esb_error *err) {
  char addr[INET6_ADDRSTRLEN + 1];
  const char *slash = strchr(text, '/');
  size_t len = slash ? (size_t)(slash - text) : strlen(text);
  memset(r, 0, sizeof *r);
  if (len >= sizeof addr) {
    esb_error_set(err, ESB_E_INVALID_REQUEST, "not an address");
    return -1;
  }
  memcpy(addr, text, len);
  addr[len] = '\0';
  r->family = strchr(addr, ':') ? AF_INET6 : AF_INET;
  if (inet_pton(r->family, addr, r->addr) != 1) {
    esb_error_set(err, ESB_E_INVALID_REQUEST, "not an IPv4 or IPv6 address");
    return -1;
  }
  unsigned bits = (unsigned)address_bytes(r->family) * 8, prefix = bits;
  if (slash) {
    char *end;
    unsigned long n = strtoul(slash + 1, &end, 10);
    if (slash[1] < '0' || slash[1] > '9' || *end || n > bits) {
      esb_error_set(err, ESB_E_INVALID_REQUEST, "the prefix length must be 0 to %u", bits);
      return -1;
    }
    prefix = (unsigned)n;
  }
  r->prefix = (uint8_t)prefix;
  for (unsigned b = prefix; b < bits; b++)
    if (r->addr[b / 8] & (0x80 >> (b % 8))) {
      esb_error_set(err, ESB_E_INVALID_REQUEST, "bits are set past the prefix length");
      return -1;
    }
  return 0;
}

void esb_net_range_format(const struct esb_net_range *r, char *out, size_t outlen) {
  char addr[INET6_ADDRSTRLEN];
  if (!inet_ntop(r->family, r->addr, addr, sizeof addr))
    snprintf(addr, sizeof addr, "?");
  snprintf(out, outlen, "%s/%u", addr, (unsigned)r->prefix);
}

struct list {
  struct esb_net_rule *rules;
  size_t n, cap;
};

static int add(struct list *l, const struct esb_net_range *r, enum esb_net_action action, uint32_t priority) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 32;
    struct esb_net_rule *grown = realloc(l->rules, cap * sizeof *grown);
    if (!grown)
      return -1;
    l->rules = grown;
    l->cap = cap;
  }
  l->rules[l->n++] = (struct esb_net_rule){ .range = *r, .action = (uint8_t)action, .priority = priority };
  return 0;
}

/* The nameservers of resolv.conf, each on UDP and TCP port 53 only: a
 * resolver on a private address (a cloud's VPC resolver, a host's
 * dnsmasq) keeps answering the program's names, and nothing else there
 * does. A file that cannot be read has none. */
static int add_resolvers(struct list *l, const char *path) {
  FILE *f = path ? fopen(path, "re") : NULL;
  if (!f)
    return 0;
  char line[256], addr[INET6_ADDRSTRLEN + 1];
  struct esb_error ignored; /* a line that is no address is skipped */
  int rc = 0;
  while (rc == 0 && fgets(line, sizeof line, f)) {
    struct esb_net_range r;
    if (sscanf(line, " nameserver %46[0-9a-fA-F.:]", addr) != 1 || esb_net_range_parse(addr, &r, &ignored) < 0)
      continue; /* a scoped address (fe80::1%eth0) is link-local: left refused */
    for (int i = 0; i < 2 && rc == 0; i++) {
      rc = add(l, &r, ESB_NET_ALLOW, PRIORITY_RESOLVER);
      if (rc == 0) {
        l->rules[l->n - 1].protocol = i ? IPPROTO_TCP : IPPROTO_UDP;
        l->rules[l->n - 1].port = 53;
      }
    }
  }
  fclose(f);
  return rc;
}

/* Every address of the host's network namespace, each a range of one. */
static int add_host_addresses(struct list *l) {
  struct ifaddrs *all;
  if (getifaddrs(&all) < 0)
    return -1;
  int rc = 0;
  for (struct ifaddrs *a = all; a && rc == 0; a = a->ifa_next) {
    if (!a->ifa_addr || (a->ifa_addr->sa_family != AF_INET && a->ifa_addr->sa_family != AF_INET6))
      continue;
    struct esb_net_range r = { .family = (uint8_t)a->ifa_addr->sa_family };
    if (r.family == AF_INET)
      memcpy(r.addr, &((struct sockaddr_in *)a->ifa_addr)->sin_addr, 4);
    else
      memcpy(r.addr, &((struct sockaddr_in6 *)a->ifa_addr)->sin6_addr, 16);
    r.prefix = (uint8_t)(address_bytes(r.family) * 8);
    rc = add(l, &r, ESB_NET_REFUSE, PRIORITY_HOST);
  }
  freeifaddrs(all);
  return rc;
}

int esb_netrules_build(const char *resolv_conf, const struct esb_net_range *allow, size_t n_allow,
                       struct esb_net_rule **rules, size_t *count) {
  struct list l = { 0 };
  int rc = add_resolvers(&l, resolv_conf);
  if (rc == 0)
    rc = add_host_addresses(&l);
  for (size_t i = 0; rc == 0 && i < n_allow; i++)
    rc = add(&l, &allow[i], ESB_NET_ALLOW, PRIORITY_ALLOW);
  for (size_t i = 0; rc == 0 && i < sizeof blocked / sizeof blocked[0]; i++)
    rc = add(&l, &blocked[i], ESB_NET_REFUSE, PRIORITY_BLOCKED);
  if (rc < 0) {
    int saved = errno;
    free(l.rules);
    errno = saved ? saved : ENOMEM;
    return -1;
  }
  *rules = l.rules;
  *count = l.n;
  return 0;
}

/* ---- the child's side: system calls only ---- */

struct rule_msg {
  struct nlmsghdr nh;
  struct fib_rule_hdr frh;
  char attrs[4 * RTA_SPACE(16)];
};

static void put_attr(struct rule_msg *m, unsigned short type, const void *data, size_t len) {
  struct rtattr *a = (struct rtattr *)((char *)m + NLMSG_ALIGN(m->nh.nlmsg_len));
  a->rta_type = type;
  a->rta_len = (unsigned short)RTA_LENGTH(len);
  memcpy(RTA_DATA(a), data, len);
  m->nh.nlmsg_len = NLMSG_ALIGN(m->nh.nlmsg_len) + RTA_SPACE(len);
}

/* RTM_NEWRULE, as `ip rule add to RANGE [ipproto P dport N] priority P
 * prohibit` (or `lookup main` for an allowed range) would send it. */
static void rule_message(const struct esb_net_rule *r, uint32_t seq, struct rule_msg *m) {
  memset(m, 0, sizeof *m);
  m->nh.nlmsg_len = NLMSG_LENGTH(sizeof m->frh);
  m->nh.nlmsg_type = RTM_NEWRULE;
  m->nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK;
  m->nh.nlmsg_seq = seq;
  m->frh.family = r->range.family;
  m->frh.dst_len = r->range.prefix;
  m->frh.action = r->action == ESB_NET_ALLOW ? FR_ACT_TO_TBL : FR_ACT_PROHIBIT;
  m->frh.table = r->action == ESB_NET_ALLOW ? RT_TABLE_MAIN : RT_TABLE_UNSPEC;
  if (r->range.prefix)
    put_attr(m, FRA_DST, r->range.addr, address_bytes(r->range.family));
  put_attr(m, FRA_PRIORITY, &r->priority, sizeof r->priority);
  if (r->protocol)
    put_attr(m, FRA_IP_PROTO, &r->protocol, sizeof r->protocol);
  if (r->port) {
    struct fib_rule_port_range ports = { r->port, r->port };
    put_attr(m, FRA_DPORT_RANGE, &ports, sizeof ports);
  }
}

static int apply_routing_rules(const struct esb_net_rule *rules, size_t count) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0)
    return -1;
  int err = 0;
  for (size_t i = 0; i < count && !err; i++) {
    struct rule_msg m;
    rule_message(&rules[i], (uint32_t)i + 1, &m);
    if (send(fd, &m, m.nh.nlmsg_len, 0) != (ssize_t)m.nh.nlmsg_len) {
      err = errno;
      break;
    }
    struct {
      struct nlmsghdr nh;
      struct nlmsgerr err;
    } ack;
    ssize_t n = recv(fd, &ack, sizeof ack, 0);
    if (n < (ssize_t)sizeof ack || ack.nh.nlmsg_type != NLMSG_ERROR)
      err = n < 0 ? errno : EPROTO;
    else if (ack.err.error)
      err = -ack.err.error;
  }
  close(fd);
  errno = err;
  return err ? -1 : 0;
}

/* ---- the same rules again, for every packet: nf_tables ----
 *
 * A routing-policy rule is only consulted by a route lookup, and the
 * kernel makes IPv4 routes without one, or past a refusal, where the
 * program chose the interface: with IP_MULTICAST_IF, IP_UNICAST_IF or an
 * IP_PKTINFO message, a datagram to 224.0.0.0/24 or 255.255.255.255 skips
 * the lookup, one from a bound source address to any multicast group
 * does too, and a unicast one whose lookup is refused is sent as if on
 * the link (ip_route_output_key_hash_rcu); IPv6 multicast has a route of
 * its own in the local table, which comes before the rules. pasta sends
 * each such datagram on from a socket of the host's: the host's and its
 * neighbours' mDNS, SSDP and private UDP services answered. The option in
 * sendmsg's ancillary data is out of seccomp's reach, and turning the
 * interface's MULTICAST flag off changed nothing the kernel sends.
 *
 * So a chain on the output hook looks at each packet the namespace sends,
 * whatever its route, and judges it by the same rules in the same order:
 * drop (the sender gets EPERM) or accept. Before them: what goes to
 * loopback stays in the namespace (the local table's part), neighbour
 * discovery (ICMPv6 133-136, the kernel's own) finds the gateway, and a
 * subnet's broadcast address is dropped, whatever a policy allows. */

enum { BATCH_BYTES = 16384, RULE_BYTES_MAX = 1024 };

struct batch {
  int fd;
  uint32_t seq, acks;
  size_t len;
  _Alignas(struct nlmsghdr) char buf[BATCH_BYTES];
};

static size_t msg_start(struct batch *b, uint16_t type, uint16_t flags, uint8_t family, uint16_t res_id) {
  size_t at = b->len;
  struct nlmsghdr *nh = (struct nlmsghdr *)(b->buf + at);
  *nh = (struct nlmsghdr){ .nlmsg_type = type, .nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags),
                           .nlmsg_seq = ++b->seq };
  *(struct nfgenmsg *)NLMSG_DATA(nh) = (struct nfgenmsg){ family, NFNETLINK_V0, htons(res_id) };
  b->len += NLMSG_LENGTH(sizeof(struct nfgenmsg));
  b->acks += (flags & NLM_F_ACK) != 0;
  return at;
}

static void msg_end(struct batch *b, size_t at) {
  b->len = NLMSG_ALIGN(b->len);
  ((struct nlmsghdr *)(b->buf + at))->nlmsg_len = (uint32_t)(b->len - at);
}

static void put(struct batch *b, uint16_t type, const void *data, size_t len) {
  struct nlattr *a = (struct nlattr *)(b->buf + b->len);
  a->nla_type = type;
  a->nla_len = (uint16_t)(NLA_HDRLEN + len);
  if (len)
    memcpy((char *)a + NLA_HDRLEN, data, len);
  memset((char *)a + NLA_HDRLEN + len, 0, NLA_ALIGN(len) - len);
  b->len += NLA_HDRLEN + NLA_ALIGN(len);
}

static void put_be32(struct batch *b, uint16_t type, uint32_t value) {
  value = htonl(value);
  put(b, type, &value, sizeof value);
}

static void put_str(struct batch *b, uint16_t type, const char *s) {
  put(b, type, s, strlen(s) + 1);
}

static size_t nest(struct batch *b, uint16_t type) {
  size_t at = b->len;
  put(b, (uint16_t)(type | NLA_F_NESTED), NULL, 0);
  return at;
}

static void unnest(struct batch *b, size_t at) {
  ((struct nlattr *)(b->buf + at))->nla_len = (uint16_t)(b->len - at);
}

/* One expression: its name, then (the caller's) its attributes; ended by
 * expr_end with the two offsets it returns. */
static size_t expr_start(struct batch *b, const char *name, size_t *data) {
  size_t elem = nest(b, NFTA_LIST_ELEM);
  put_str(b, NFTA_EXPR_NAME, name);
  *data = nest(b, NFTA_EXPR_DATA);
  return elem;
}

static void expr_end(struct batch *b, size_t elem, size_t data) {
  unnest(b, data);
  unnest(b, elem);
}

static void put_value(struct batch *b, uint16_t type, const void *value, size_t len) {
  size_t at = nest(b, type);
  put(b, NFTA_DATA_VALUE, value, len);
  unnest(b, at);
}

static void expr_meta(struct batch *b, uint32_t key) {
  size_t data, elem = expr_start(b, "meta", &data);
  put_be32(b, NFTA_META_KEY, key);
  put_be32(b, NFTA_META_DREG, NFT_REG_1);
  expr_end(b, elem, data);
}

static void expr_cmp(struct batch *b, uint32_t op, const void *value, size_t len) {
  size_t data, elem = expr_start(b, "cmp", &data);
  put_be32(b, NFTA_CMP_SREG, NFT_REG_1);
  put_be32(b, NFTA_CMP_OP, op);
  put_value(b, NFTA_CMP_DATA, value, len);
  expr_end(b, elem, data);
}

static void expr_payload(struct batch *b, uint32_t base, uint32_t offset, uint32_t len) {
  size_t data, elem = expr_start(b, "payload", &data);
  put_be32(b, NFTA_PAYLOAD_DREG, NFT_REG_1);
  put_be32(b, NFTA_PAYLOAD_BASE, base);
  put_be32(b, NFTA_PAYLOAD_OFFSET, offset);
  put_be32(b, NFTA_PAYLOAD_LEN, len);
  expr_end(b, elem, data);
}

static void expr_mask(struct batch *b, const uint8_t *mask, size_t len) {
  static const uint8_t zero[16];
  size_t data, elem = expr_start(b, "bitwise", &data);
  put_be32(b, NFTA_BITWISE_SREG, NFT_REG_1);
  put_be32(b, NFTA_BITWISE_DREG, NFT_REG_1);
  put_be32(b, NFTA_BITWISE_LEN, (uint32_t)len);
  put_value(b, NFTA_BITWISE_MASK, mask, len);
  put_value(b, NFTA_BITWISE_XOR, zero, len);
  expr_end(b, elem, data);
}

static void expr_verdict(struct batch *b, uint32_t code) {
  size_t data, elem = expr_start(b, "immediate", &data);
  put_be32(b, NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
  size_t value = nest(b, NFTA_IMMEDIATE_DATA), verdict = nest(b, NFTA_DATA_VERDICT);
  put_be32(b, NFTA_VERDICT_CODE, code);
  unnest(b, verdict);
  unnest(b, value);
  expr_end(b, elem, data);
}

/* "fib daddr type": the destination's type in the local table. */
static void expr_address_type(struct batch *b) {
  size_t data, elem = expr_start(b, "fib", &data);
  put_be32(b, NFTA_FIB_DREG, NFT_REG_1);
  put_be32(b, NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
  put_be32(b, NFTA_FIB_FLAGS, NFTA_FIB_F_DADDR);
  expr_end(b, elem, data);
}

static void match_byte(struct batch *b, uint32_t key, uint8_t value) {
  expr_meta(b, key);
  expr_cmp(b, NFT_CMP_EQ, &value, 1);
}

/* The destination in r: only the prefix's bytes are loaded and compared. */
static void match_range(struct batch *b, const struct esb_net_range *r) {
  match_byte(b, NFT_META_NFPROTO, r->family == AF_INET ? NFPROTO_IPV4 : NFPROTO_IPV6);
  size_t bytes = (r->prefix + 7u) / 8u;
  if (!bytes)
    return;
  expr_payload(b, NFT_PAYLOAD_NETWORK_HEADER, r->family == AF_INET ? 16 : 24, (uint32_t)bytes);
  if (r->prefix % 8) {
    uint8_t mask[16];
    memset(mask, 0xff, bytes);
    mask[bytes - 1] = (uint8_t)(0xff << (8 - r->prefix % 8));
    expr_mask(b, mask, bytes);
  }
  expr_cmp(b, NFT_CMP_EQ, r->addr, bytes);
}

static size_t rule_start(struct batch *b, size_t *exprs) {
  size_t at = msg_start(b, NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK,
                        NFPROTO_INET, 0);
  put_str(b, NFTA_RULE_TABLE, "echo-sandbox");
  put_str(b, NFTA_RULE_CHAIN, "output");
  *exprs = nest(b, NFTA_RULE_EXPRESSIONS);
  return at;
}

static void rule_end(struct batch *b, size_t at, size_t exprs, uint32_t verdict) {
  expr_verdict(b, verdict);
  unnest(b, exprs);
  msg_end(b, at);
}

/* The table, its chain on the output hook, and the rules that come before
 * the run's: loopback and neighbour discovery pass, broadcast does not. */
static void filter_head(struct batch *b) {
  size_t at = msg_start(b, NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_ACK, NFPROTO_INET, 0);
  put_str(b, NFTA_TABLE_NAME, "echo-sandbox");
  msg_end(b, at);
  at = msg_start(b, NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWCHAIN, NLM_F_CREATE | NLM_F_ACK, NFPROTO_INET, 0);
  put_str(b, NFTA_CHAIN_TABLE, "echo-sandbox");
  put_str(b, NFTA_CHAIN_NAME, "output");
  size_t hook = nest(b, NFTA_CHAIN_HOOK);
  put_be32(b, NFTA_HOOK_HOOKNUM, NF_INET_LOCAL_OUT);
  put_be32(b, NFTA_HOOK_PRIORITY, 0);
  unnest(b, hook);
  put_be32(b, NFTA_CHAIN_POLICY, NF_ACCEPT);
  put_str(b, NFTA_CHAIN_TYPE, "filter");
  msg_end(b, at);

  size_t exprs;
  uint32_t loopback = 1; /* every namespace's first device */
  at = rule_start(b, &exprs);
  expr_meta(b, NFT_META_OIF);
  expr_cmp(b, NFT_CMP_EQ, &loopback, sizeof loopback);
  rule_end(b, at, exprs, NF_ACCEPT);

  uint8_t solicit = 133, advert = 136; /* router and neighbour solicitation, advertisement */
  at = rule_start(b, &exprs);
  match_byte(b, NFT_META_NFPROTO, NFPROTO_IPV6);
  match_byte(b, NFT_META_L4PROTO, IPPROTO_ICMPV6);
  expr_payload(b, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1);
  expr_cmp(b, NFT_CMP_GTE, &solicit, 1);
  expr_cmp(b, NFT_CMP_LTE, &advert, 1);
  rule_end(b, at, exprs, NF_ACCEPT);

  uint32_t broadcast = RTN_BROADCAST;
  at = rule_start(b, &exprs);
  expr_address_type(b);
  expr_cmp(b, NFT_CMP_EQ, &broadcast, sizeof broadcast);
  rule_end(b, at, exprs, NF_DROP);
}

static void filter_rule(struct batch *b, const struct esb_net_rule *r) {
  size_t exprs, at = rule_start(b, &exprs);
  match_range(b, &r->range);
  if (r->protocol)
    match_byte(b, NFT_META_L4PROTO, r->protocol);
  if (r->port) {
    uint16_t port = htons(r->port);
    expr_payload(b, NFT_PAYLOAD_TRANSPORT_HEADER, 2, sizeof port); /* TCP's and UDP's destination port */
    expr_cmp(b, NFT_CMP_EQ, &port, sizeof port);
  }
  rule_end(b, at, exprs, r->action == ESB_NET_ALLOW ? NF_ACCEPT : NF_DROP);
}

/* Sends the batch (begun by batch_begin) as one transaction, and reads an
 * answer for every message that asked for one. 0, or an errno. */
static int batch_send(struct batch *b) {
  size_t at = msg_start(b, NFNL_MSG_BATCH_END, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
  msg_end(b, at);
  if (send(b->fd, b->buf, b->len, 0) != (ssize_t)b->len)
    return errno;
  _Alignas(struct nlmsghdr) char answer[8192];
  while (b->acks) {
    ssize_t n = recv(b->fd, answer, sizeof answer, 0);
    if (n < 0)
      return errno;
    for (struct nlmsghdr *nh = (struct nlmsghdr *)answer; NLMSG_OK(nh, (size_t)n); nh = NLMSG_NEXT(nh, n)) {
      if (nh->nlmsg_type != NLMSG_ERROR)
        continue;
      const struct nlmsgerr *e = NLMSG_DATA(nh);
      if (e->error)
        return -e->error;
      b->acks--;
    }
  }
  return 0;
}

static void batch_begin(struct batch *b) {
  b->len = 0;
  size_t at = msg_start(b, NFNL_MSG_BATCH_BEGIN, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
  msg_end(b, at);
}

static int apply_filter(const struct esb_net_rule *rules, size_t count) {
  struct batch b = { .fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER) };
  if (b.fd < 0)
    return errno;
  int one = 1, err = 0;
  setsockopt(b.fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one); /* an error's answer without our message */
  batch_begin(&b);
  filter_head(&b);
  for (size_t i = 0; i < count && !err; i++) {
    if (b.len > sizeof b.buf - RULE_BYTES_MAX) {
      err = batch_send(&b);
      batch_begin(&b);
    }
    filter_rule(&b, &rules[i]);
  }
  if (!err)
    err = batch_send(&b);
  close(b.fd);
  return err;
}

int esb_netrules_apply(const struct esb_net_rule *rules, size_t count) {
  if (apply_routing_rules(rules, count) < 0)
    return -1;
  int err = apply_filter(rules, count);
  errno = err;
  return err ? -1 : 0;
}
