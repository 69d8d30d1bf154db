/* The network by name's pure pieces (engine/contract/egress.h): the
 * grammar of an allow-list entry, matching a connection's host and port,
 * the ledger's bound, and a k8s run's grant (backend/egress_token.h) as
 * text, both ways. */
#include "engine/contract/egress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/egress_token.h"

#include "tap.h"

static void grammar(void) {
  static const struct { const char *entry; bool good; } cases[] = {
    {"pypi.org", true}, {"*.pythonhosted.org", true}, {"api.github.com:443", true}, {"*.a.b:8080", true},
    {"PyPI.Org", true}, {"x_y.example.com", true},
    {"", false}, {"org", false}, {"*.org", false}, {"*", false}, {"a.*.org", false}, {"**.a.org", false},
    {"pypi.org.", false}, {".pypi.org", false}, {"-a.org", false}, {"a-.org", false},
    {"pypi.org:", false}, {"pypi.org:0", false}, {"pypi.org:65536", false}, {"pypi.org:443:1", false},
    {"pypi.org:4a", false}, {"a b.org", false}, {"1.2.3", false}, {"a.123", false}, {"1password.com", true},
    /* addresses and ranges */
    {"10.0.0.1", true}, {"1.2.3.4:80", true}, {"10.0.0.0/8", true}, {"203.0.113.0/24:443", true},
    {"0.0.0.0/0", true}, {"[::1]", true}, {"[::1]:443", true}, {"[2001:db8::]/32", true},
    {"[2001:db8::]/32:443", true}, {"[::ffff:203.0.113.5]", true},
    {"::1", false}, {"2001:db8::1", false}, {"[::1", false}, {"[::1]x", false}, {"[1.2.3.4]", false},
    {"1.2.3.256", false}, {"1.2.3.4/33", false}, {"1.2.3.4/24", false}, {"1.2.3.0/", false},
    {"1.2.3.0/2a", false}, {"[2001:db8::]/129", false}, {"[2001:db8::1]/32", false}, {"1.2.3.4:0", false},
    {"[::1]:", false}, {"[::1]:65536", false}, {"1.2.3.4/24/8", false}, {"[zz::1]", false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char what[128];
    snprintf(what, sizeof what, "'%s' is %s", cases[i].entry, cases[i].good ? "an entry" : "refused");
    ok((esb_egress_entry_problem(cases[i].entry) == NULL) == cases[i].good, what);
  }
  char long_label[80], long_name[300];
  snprintf(long_label, sizeof long_label, "%s.org", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
  ok(esb_egress_entry_problem(long_label) != NULL, "a label of 64 bytes is refused");
  for (size_t i = 0; i < 127; i++)
    snprintf(long_name + 2 * i, 3, "a.");
  snprintf(long_name + 254, 4, "org");
  ok(esb_egress_entry_problem(long_name) != NULL, "a name of 257 bytes is refused");
}

static void matching(void) {
  static const struct { const char *entry, *host; unsigned port; bool match; } cases[] = {
    {"pypi.org", "pypi.org", 443, true}, {"pypi.org", "PYPI.ORG", 80, true}, {"pypi.org", "pypi.org.", 443, true},
    {"pypi.org", "www.pypi.org", 443, false}, {"pypi.org", "evilpypi.org", 443, false},
    {"pypi.org", "pypi.org.evil.com", 443, false},
    {"*.pythonhosted.org", "files.pythonhosted.org", 443, true},
    {"*.pythonhosted.org", "a.b.pythonhosted.org", 443, true},
    {"*.pythonhosted.org", "pythonhosted.org", 443, false},
    {"*.pythonhosted.org", "evilpythonhosted.org", 443, false},
    {"api.github.com:443", "api.github.com", 443, true}, {"api.github.com:443", "api.github.com", 80, false},
    {"*.a.org:8080", "x.a.org", 8080, true}, {"*.a.org:8080", "x.a.org", 80, false},
    /* addresses and ranges match the addresses asked, never a name */
    {"203.0.113.5", "203.0.113.5", 443, true}, {"203.0.113.5", "203.0.113.6", 443, false},
    {"203.0.113.5:443", "203.0.113.5", 80, false}, {"203.0.113.0/24", "203.0.113.77", 80, true},
    {"203.0.113.0/24", "203.0.114.1", 80, false}, {"203.0.113.128/25", "203.0.113.127", 80, false},
    {"203.0.113.128/25", "203.0.113.128", 80, true}, {"0.0.0.0/0", "198.51.100.1", 80, true},
    {"0.0.0.0/0", "example.org", 80, false}, {"203.0.113.5", "example.org", 80, false},
    {"example.org", "203.0.113.5", 80, false},
    {"[2001:db8::1]", "2001:db8::1", 443, true}, {"[2001:db8::1]", "[2001:db8::1]", 443, true},
    {"[2001:db8::1]", "2001:DB8:0:0:0:0:0:1", 443, true}, {"[2001:db8::]/32", "2001:db8:ffff::1", 443, true},
    {"[2001:db8::]/32", "2001:db9::1", 443, false}, {"[2001:db8::]/33", "2001:db8:8000::1", 443, false},
    {"203.0.113.5", "::ffff:203.0.113.5", 80, true}, {"[::ffff:203.0.113.5]", "203.0.113.5", 80, true},
    {"[2001:db8::1]", "203.0.113.5", 80, false}, {"203.0.113.5", "2001:db8::1", 80, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char what[160];
    snprintf(what, sizeof what, "'%s' %s %s:%u", cases[i].entry, cases[i].match ? "names" : "does not name",
             cases[i].host, cases[i].port);
    ok(esb_egress_entry_matches(cases[i].entry, cases[i].host, cases[i].port) == cases[i].match, what);
  }
  char *list[] = {"a.org", "*.b.org:443", NULL};
  ok(esb_egress_list_matches(list, "x.b.org", 443) && !esb_egress_list_matches(list, "x.b.org", 80),
     "a list matches by any entry");
  ok(!esb_egress_list_matches(NULL, "a.org", 80), "no list matches nothing");
  ok(esb_egress_entry_is_address("10.0.0.0/8:443") && esb_egress_entry_is_address("[::1]") &&
     !esb_egress_entry_is_address("pypi.org") && !esb_egress_entry_is_address("1password.com"),
     "an address entry is told from a name");
  ok(esb_egress_host_is_address("203.0.113.5") && esb_egress_host_is_address("2001:db8::1") &&
     esb_egress_host_is_address("[2001:db8::1]") && !esb_egress_host_is_address("pypi.org") &&
     !esb_egress_host_is_address("1.2.3"), "a host asked by address is told from a name");
}

static void ledger(void) {
  struct esb_egress_ledger l = { 0 };
  for (int i = 0; i < ESB_EGRESS_LEDGER_MAX + 5; i++)
    esb_egress_ledger_add(&l, "A.Example.org", 443);
  is_int(l.n, ESB_EGRESS_LEDGER_MAX, "the ledger keeps its bound");
  is_int(l.left_off, 5, "and counts what it left off");
  is_str(l.v[0].host, "a.example.org", "hosts in lower case");
  ok(!l.v[0].allowed && l.v[0].reason == ESB_EGRESS_BAD_REQUEST, "an attempt is refused until a verdict says");
  esb_egress_ledger_release(&l);
  for (int r = 0; r < ESB_EGRESS_REASON__COUNT; r++)
    ok(esb_egress_reason_name((enum esb_egress_reason)r) != NULL, "every reason has its word");
}

/* A grant's text read back is the grant; text out of the grammar is none. */
static void grants(void) {
  char *allow[] = {"pypi.org", "*.pythonhosted.org:443", NULL}, *deny[] = {"evil.pypi.org", NULL};
  struct esb_egress_inject inject = { .host = "api.github.com", .header = "Authorization", .secret = "github" };
  struct esb_plan plan = { .egress_allow = allow, .egress_deny = deny, .egress_inject = &inject, .n_egress_inject = 1 };
  char *text = esb_egress_grant_text(&plan, "echo-sandbox-0123", 1765000000);
  struct esb_egress_grant g;
  ok(text && esb_egress_grant_parse(text, strlen(text), &g) == 0, "a grant's text reads back");
  ok(!strcmp(g.run, "echo-sandbox-0123") && g.expires == 1765000000, "its run and expiry");
  ok(g.allow && !strcmp(g.allow[1], "*.pythonhosted.org:443") && !g.allow[2] && g.deny && !strcmp(g.deny[0], deny[0]),
     "its lists");
  ok(g.n_inject == 1 && !strcmp(g.inject[0].header, "Authorization") && !strcmp(g.inject[0].secret, "github"),
     "its injection");
  esb_egress_grant_release(&g);
  free(text);
  static const char *const bad[] = {
    "run r\nexpires 1\nallow a.org\n",                               /* no form */
    "echo-sandbox-egress 2\nrun r\nexpires 1\nallow a.org\n",       /* another form */
    "echo-sandbox-egress 1\nexpires 1\nallow a.org\n",               /* no run */
    "echo-sandbox-egress 1\nrun r\nallow a.org\n",                   /* no expiry */
    "echo-sandbox-egress 1\nrun r\nexpires 1\n",                     /* no list */
    "echo-sandbox-egress 1\nrun r\nexpires 1\nallow *.org\n",       /* no entry */
    "echo-sandbox-egress 1\nrun r\nexpires -5\nallow a.org\n",      /* an expiry out of range */
    "echo-sandbox-egress 1\nrun r\nrun s\nexpires 1\nallow a.org\n", /* two runs */
    "echo-sandbox-egress 1\nrun r\nexpires 1\nallow a.org",          /* a line without its end */
    "echo-sandbox-egress 1\nrun r\nexpires 1\nallow a.org\nwiden *\n", /* a word not known */
    "echo-sandbox-egress 1\nrun r\nexpires 1\nallow a.org\ninject a.org H\n", /* an injection short */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char what[64];
    snprintf(what, sizeof what, "grant %zu out of the grammar is refused", i);
    ok(esb_egress_grant_parse(bad[i], strlen(bad[i]), &g) < 0, what);
    esb_egress_grant_release(&g);
  }
  ok(esb_egress_grant_parse("echo-sandbox-egress 1\nrun r\0\nexpires 1\nallow a.org\n", 42, &g) < 0,
     "a NUL byte is refused");
  esb_egress_grant_release(&g);
  char *spaced[] = {"a.org b.org", NULL};
  plan.egress_allow = spaced;
  ok(!esb_egress_grant_text(&plan, "r", 1), "an entry with a space makes no grant");
}

int main(void) {
  grammar();
  matching();
  ledger();
  grants();
  return tap_done();
}
