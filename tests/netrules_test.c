#include "engine/sandbox/netrules.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include "tap.h"

/* The range as esb_net_range_format writes it back, or why it is refused. */
static const char *round_trip(const char *text) {
  static char out[96];
  static struct esb_error err;
  struct esb_net_range r;
  if (esb_net_range_parse(text, &r, &err) < 0)
    return err.message;
  esb_net_range_format(&r, out, sizeof out);
  return out;
}

/* The rules of the calling process's namespace's nf_tables, counted; -1 on
 * an error. */
static int filter_rules(void) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  struct {
    struct nlmsghdr nh;
    struct nfgenmsg g;
  } req = { { sizeof req, NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, 1, 0 },
            { NFPROTO_INET, NFNETLINK_V0, 0 } };
  if (fd < 0 || send(fd, &req, sizeof req, 0) != (ssize_t)sizeof req)
    return -1;
  int rules = 0;
  for (;;) {
    _Alignas(struct nlmsghdr) char buf[32768];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      break;
    for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)n); nh = NLMSG_NEXT(nh, n)) {
      if (nh->nlmsg_type == NLMSG_DONE || nh->nlmsg_type == NLMSG_ERROR) {
        close(fd);
        return nh->nlmsg_type == NLMSG_DONE ? rules : -1;
      }
      rules++;
    }
  }
  close(fd);
  return -1;
}

/* In a network namespace of a child's own: the rules applied, and how many
 * the filter holds (-1: could not apply, -2: no namespace to try in). */
static int applied_filter(const struct esb_net_rule *rules, size_t count) {
  int pipefd[2], got = -1;
  if (pipe(pipefd) < 0)
    return -1;
  pid_t pid = fork();
  if (pid == 0) {
    if (unshare(CLONE_NEWNET) < 0 && unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0)
      got = -2;
    else if (esb_netrules_apply(rules, count) == 0)
      got = filter_rules();
    _exit(write(pipefd[1], &got, sizeof got) == sizeof got ? 0 : 1);
  }
  close(pipefd[1]);
  if (pid < 0 || read(pipefd[0], &got, sizeof got) != sizeof got)
    got = -1;
  close(pipefd[0]);
  if (pid > 0)
    waitpid(pid, NULL, 0);
  return got;
}

int main(void) {
  static const struct { const char *text, *want, *what; } cases[] = {
    { "10.1.0.0/16", "10.1.0.0/16", "an IPv4 range" },
    { "203.0.113.7", "203.0.113.7/32", "an address alone is a range of one" },
    { "fd00:ec2::254", "fd00:ec2::254/128", "so is an IPv6 one" },
    { "fc00::/7", "fc00::/7", "an IPv6 range" },
    { "0.0.0.0/0", "0.0.0.0/0", "everything" },
    { "10.1.2.0/16", "bits are set past the prefix length", "host bits are refused" },
    { "10.1.0.0/33", "the prefix length must be 0 to 32", "a prefix too long" },
    { "fd00::/129", "the prefix length must be 0 to 128", "an IPv6 prefix too long" },
    { "10.1.0.0/", "the prefix length must be 0 to 32", "an empty prefix" },
    { "10.1.0.0/+8", "the prefix length must be 0 to 32", "a signed prefix" },
    { "example.com", "not an IPv4 or IPv6 address", "a name" },
    { "10.1/16", "not an IPv4 or IPv6 address", "a short form inet_aton would take" },
    { "", "not an IPv4 or IPv6 address", "nothing" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    is_str(round_trip(cases[i].text), cases[i].want, cases[i].what);

  size_t n;
  const struct esb_net_range *blocked = esb_netrules_blocked(&n);
  char text[64];
  bool metadata = false, ula = false, nat64 = false, sixtofour = false, teredo = false, compatible = false;
  for (size_t i = 0; i < n; i++) {
    esb_net_range_format(&blocked[i], text, sizeof text);
    metadata |= strcmp(text, "169.254.0.0/16") == 0;
    ula |= strcmp(text, "fc00::/7") == 0;
    nat64 |= strcmp(text, "64:ff9b::/96") == 0;
    sixtofour |= strcmp(text, "2002::/16") == 0;
    teredo |= strcmp(text, "2001::/32") == 0;
    compatible |= strcmp(text, "::/96") == 0;
  }
  ok(metadata && ula, "the blocked ranges hold both metadata ranges");
  /* each a way to an IPv4 address, a private one too, through an IPv6 one */
  ok(nat64 && sixtofour && teredo && compatible, "and the IPv6 forms of IPv4 addresses: NAT64, 6to4, Teredo");

  struct esb_net_range allow = { AF_INET, 16, { 10, 1 } };
  struct esb_net_rule *rules;
  size_t count;
  if (ok(esb_netrules_build(NULL, &allow, 1, &rules, &count) == 0, "a run's rules")) {
    size_t allowed = 0, host = 0;
    for (size_t i = 0; i < count; i++) {
      allowed += rules[i].action == ESB_NET_ALLOW;
      host += rules[i].priority == 1000;
      ok(i == 0 || rules[i].priority >= rules[i - 1].priority, "in the order they are looked at");
    }
    is_int(allowed, 1, "the allowed range, once");
    ok(host >= 1, "the host's addresses (loopback at least)");
    is_int(count, host + 1 + n, "and the blocked ranges");
    int got = applied_filter(rules, count);
    if (got == -2)
      printf("ok %d - # SKIP no network namespace to apply them in\n", ++tap_count);
    else /* loopback, neighbour discovery and broadcast come first */
      is_int(got, (int)count + 3, "applied, the output hook's chain holds each and three before them");
    free(rules);
  }

  /* Many ranges allowed (a host with many addresses, too): the chain is
   * sent in several transactions. Checked: without a new batch begun after
   * each one sent, the apply failed (-1). */
  static struct esb_net_range many[300];
  for (size_t i = 0; i < 300; i++)
    many[i] = (struct esb_net_range){ AF_INET, 32, { 10, 7, (uint8_t)(i / 256), (uint8_t)i } };
  if (ok(esb_netrules_build(NULL, many, 300, &rules, &count) == 0, "a run's rules with 300 ranges allowed")) {
    int got = applied_filter(rules, count);
    if (got == -2)
      printf("ok %d - # SKIP no network namespace to apply them in\n", ++tap_count);
    else
      is_int(got, (int)count + 3, "all of them in the chain, over more than one batch");
    free(rules);
  }
  return tap_done();
}
