#!/usr/bin/env bash
# Start-up cost of one sandboxed run: `echo-sandbox run --backend local -- /bin/true`
# (network + pid isolation on: the default policy) against bubblewrap with every
# namespace unshared and against a bare /bin/true, in the same hyperfine run.
# A row with the policy's cgroups off shows what the per-run memory and pids
# cgroups cost, one with also its seccomp profile "none" what the filter costs. Three floors go with them: any launcher that execs the program (`env`), and
# util-linux's unshare making just the user + network namespaces, then all of
# them (no mounts, no policy, no result): what the kernel and two execs cost
# here before a sandbox does anything of its own.
# Five rounds of hyperfine, merged (bench/common.sh: hyperfine_rounds).
# Writes bench/results/local_true.md and prints the ratios.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
ensure_packages hyperfine bubblewrap
"$here/bootstrap.sh" build
cli="$here/build/echo-sandbox"
mkdir -p "$here/bench/results"
# The default policy with the memory limit as RLIMIT_AS instead of a cgroup.
nocg=$(mktemp --suffix=.lua) noseccomp=$(mktemp --suffix=.lua)
trap 'rm -f "$nocg" "$noseccomp"' EXIT
policy_file "$nocg" 'p.local_sandbox.cgroups = false'
policy_file "$noseccomp" 'p.local_sandbox.cgroups = false' 'p.local_sandbox.seccomp = "none"'
out="$here/bench/results/local_true"
hyperfine_rounds "$out.json" "$out.md" "${RUNS:-300}" --warmup 20 \
  -n echo-sandbox "$cli run --backend local -- /bin/true" \
  -n bwrap "bwrap --unshare-all --die-with-parent --ro-bind / / --dev /dev --proc /proc /bin/true" \
  -n "echo-sandbox, cgroups off" "$cli run --backend local --policy $nocg -- /bin/true" \
  -n "echo-sandbox, cgroups off, seccomp none" "$cli run --backend local --policy $noseccomp -- /bin/true" \
  -n "unshare user+net" "unshare --user --map-root-user --net /bin/true" \
  -n "unshare all" "unshare --user --map-root-user --net --pid --fork --mount --ipc --uts /bin/true" \
  -n "env (exec floor)" "env /bin/true" \
  -n bare "/bin/true"
with_means "$out.json" 'print(("echo-sandbox / bwrap = %.2f, echo-sandbox / bare = %.2f, unshare user+net / bwrap = %.2f, "
  .. "the filter: %.3f ms"):format(mean["echo-sandbox"] / mean.bwrap, mean["echo-sandbox"] / mean.bare,
  mean["unshare user+net"] / mean.bwrap, (mean["echo-sandbox, cgroups off"] - mean["echo-sandbox, cgroups off, seccomp none"]) * 1000))'
