#!/usr/bin/env bash
# Start-up cost of one sandboxed run: `echo-sandbox run --backend local -- /bin/true`
# (network + pid isolation on: the default policy) against bubblewrap with every
# namespace unshared and against a bare /bin/true, in the same hyperfine run.
# Writes bench/results/local_true.md and prints the ratio to bwrap.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
ensure_packages hyperfine bubblewrap
"$here/bootstrap.sh" build
cli="$here/build/echo-sandbox"
mkdir -p "$here/bench/results"
out="$here/bench/results/local_true"
hyperfine -N --warmup 20 --runs "${RUNS:-300}" --export-json "$out.json" --export-markdown "$out.md" \
  -n echo-sandbox "$cli run --backend local -- /bin/true" \
  -n bwrap "bwrap --unshare-all --die-with-parent --ro-bind / / --dev /dev --proc /proc /bin/true" \
  -n bare "/bin/true"
with_means "$out.json" 'print(("echo-sandbox / bwrap = %.2f, echo-sandbox / bare = %.2f"):format(
  mean["echo-sandbox"] / mean.bwrap, mean["echo-sandbox"] / mean.bare))'
