#include "engine/netrules.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/fib_rules.h>
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

int esb_net_range_parse(const char *text, struct esb_net_range *r, char *why, size_t whylen) {
  char addr[INET6_ADDRSTRLEN + 1];
  const char *slash = strchr(text, '/');
  size_t len = slash ? (size_t)(slash - text) : strlen(text);
  memset(r, 0, sizeof *r);
  if (len >= sizeof addr) {
    snprintf(why, whylen, "not an address");
    return -1;
  }
  memcpy(addr, text, len);
  addr[len] = '\0';
  r->family = strchr(addr, ':') ? AF_INET6 : AF_INET;
  if (inet_pton(r->family, addr, r->addr) != 1) {
    snprintf(why, whylen, "not an IPv4 or IPv6 address");
    return -1;
  }
  unsigned bits = (unsigned)address_bytes(r->family) * 8, prefix = bits;
  if (slash) {
    char *end;
    unsigned long n = strtoul(slash + 1, &end, 10);
    if (slash[1] < '0' || slash[1] > '9' || *end || n > bits) {
      snprintf(why, whylen, "the prefix length must be 0 to %u", bits);
      return -1;
    }
    prefix = (unsigned)n;
  }
  r->prefix = (uint8_t)prefix;
  for (unsigned b = prefix; b < bits; b++)
    if (r->addr[b / 8] & (0x80 >> (b % 8))) {
      snprintf(why, whylen, "bits are set past the prefix length");
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
  char line[256], addr[INET6_ADDRSTRLEN + 1], why[96];
  int rc = 0;
  while (rc == 0 && fgets(line, sizeof line, f)) {
    struct esb_net_range r;
    if (sscanf(line, " nameserver %46[0-9a-fA-F.:]", addr) != 1 || esb_net_range_parse(addr, &r, why, sizeof why) < 0)
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

int esb_netrules_apply(const struct esb_net_rule *rules, size_t count) {
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
