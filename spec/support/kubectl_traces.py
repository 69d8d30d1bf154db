#!/usr/bin/env python3
"""Compares what each kubectl minor of the matrix asked the fake API server.

    ESB_FAKE_TRACE=/tmp/trace spec/run spec/k8s_spec.lua
    spec/support/kubectl_traces.py /tmp/trace

For each server the specs started, in the order each minor started them (a
case, or a block of cases with one server), prints "same on all" when every
minor made the same requests (as a set: polls and concurrent runs come in
any order), else which minors asked alike and the requests that tell them
apart. The discovery requests (/api, /apis/...) are left out: kubectl makes
them when its cache of them is cold, on any minor. What kubectl writes on
its own streams is not traced.
"""
import collections
import re
import sys

DISCOVERY = re.compile(r"GET /apis?(/[a-z0-9.]+)*(/v1)?\?timeout=T ")


def read(path):
    servers = collections.OrderedDict()  # (minor, pid) -> [options, set of requests]
    with open(path) as f:
        for line in f:
            pid, minor, rest = line.rstrip("\n").split(" ", 2)
            server = servers.setdefault((int(minor), pid), ["", set()])
            if rest.startswith("START "):
                server[0] = rest[6:]
            elif not DISCOVERY.match(rest + " "):
                server[1].add(rest)
    by_minor = collections.defaultdict(list)
    for (minor, _), server in servers.items():
        by_minor[minor].append(server)
    return by_minor


def main():
    by_minor = read(sys.argv[1])
    minors = sorted(by_minor)
    print("servers per minor:", {m: len(by_minor[m]) for m in minors})
    for i in range(min(len(by_minor[m]) for m in minors)):
        groups = collections.OrderedDict()
        for m in minors:
            groups.setdefault(frozenset(by_minor[m][i][1]), []).append(m)
        head = "#%d (%s)" % (i, by_minor[minors[0]][i][0])
        if len(groups) == 1:
            print(head, "same on all")
            continue
        print(head, " | ".join(",".join("1.%d" % m for m in ms) for ms in groups.values()))
        common = frozenset.intersection(*groups)
        for requests, ms in groups.items():
            for r in sorted(requests - common):
                print("   ", ",".join("1.%d" % m for m in ms), r)


if __name__ == "__main__":
    main()
