#include "engine/netrules.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tap.h"

/* The range as esb_net_range_format writes it back, or why it is refused. */
static const char *round_trip(const char *text) {
  static char out[96];
  struct esb_net_range r;
  if (esb_net_range_parse(text, &r, out, sizeof out) == 0)
    esb_net_range_format(&r, out, sizeof out);
  return out;
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
    free(rules);
  }
  return tap_done();
}
