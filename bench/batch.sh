#!/usr/bin/env bash
# 1,000 sandboxed runs of /bin/true through one `echo-sandbox batch -j 8`
# (namespaces on: the default policy) against 1,000 bare /bin/true at the same
# parallelism (xargs -P 8), in one hyperfine run. Three more batch rows take
# the sandbox apart: the policy's cgroups off (the memory limit as RLIMIT_AS),
# then also network allowed (every namespace but the network one), then the
# policy isolation "rlimits" (no namespaces either).
# Writes bench/results/batch.md and prints the ratios.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
ensure_packages hyperfine findutils
"$here/bootstrap.sh" build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq 1000); do echo "{\"id\":$i,\"program\":\"/bin/true\"}"; done > "$work/requests.ndjson"
for i in $(seq 1000); do echo "{\"id\":$i,\"program\":\"/bin/true\",\"limits\":{\"network\":true}}"; done > "$work/network.ndjson"
policy_file "$work/nocg.lua" 'p.local_sandbox.cgroups = false'
policy_file "$work/rlimits.lua" 'p.local_sandbox.cgroups = false' 'p.local_sandbox.isolation = "rlimits"'
mkdir -p "$here/bench/results"
out="$here/bench/results/batch"
hyperfine --warmup 1 --runs "${RUNS:-5}" --export-json "$out.json" --export-markdown "$out.md" \
  -n "batch -j 8" "$here/build/echo-sandbox batch -j 8 < $work/requests.ndjson > /dev/null" \
  -n "batch -j 8, cgroups off" "$here/build/echo-sandbox batch -j 8 --policy $work/nocg.lua < $work/requests.ndjson > /dev/null" \
  -n "batch -j 8, cgroups off, network allowed" \
     "$here/build/echo-sandbox batch -j 8 --policy $work/nocg.lua < $work/network.ndjson > /dev/null" \
  -n "batch -j 8, cgroups off, isolation rlimits" \
     "$here/build/echo-sandbox batch -j 8 --policy $work/rlimits.lua < $work/requests.ndjson > /dev/null" \
  -n "xargs -P 8" "seq 1000 | xargs -P 8 -I{} /bin/true"
with_means "$out.json" '
local bare = mean["xargs -P 8"]
print(("batch / bare = %.2f (cgroups off %.2f, and network allowed %.2f, and isolation rlimits %.2f)"):format(
  mean["batch -j 8"] / bare, mean["batch -j 8, cgroups off"] / bare,
  mean["batch -j 8, cgroups off, network allowed"] / bare, mean["batch -j 8, cgroups off, isolation rlimits"] / bare))'
