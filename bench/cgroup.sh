#!/usr/bin/env bash
# The per-run cost of a run's cgroup: `echo-sandbox run --backend local --
# /bin/true` with the policy's cgroups on against the same with them off, in
# one hyperfine run, on this machine's hierarchy (cgroup v1 here) and then on
# cgroup v2, in the VM of spec/support/cgroup_v2_vm.sh (TCG: every time there
# is far above the host's; compare the two rows of the same run only).
# Writes bench/results/cgroup_v1.md and cgroup_v2.md and prints the
# differences and ratios.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"

if [ "${1:-}" != --inside ]; then
  ensure_packages hyperfine
  "$here/bootstrap.sh" build
  mkdir -p "$here/bench/results"
  # Here first, then the same script in the VM.
  "$0" --inside v1 "${RUNS:-300}"
  log=$(mktemp)
  ESB_VM_COMMAND="bench/cgroup.sh --inside v2 ${VM_RUNS:-60}" "$here/spec/support/cgroup_v2_vm.sh" > "$log" || true
  sed -n 's/^cgroup_v2.md: //p' "$log" > "$here/bench/results/cgroup_v2.md"
  grep -E '^(cgroup v2|esb-vm)' "$log"
  rm -f "$log"
  exit 0
fi

name=$2 runs=$3
cli="$here/build/echo-sandbox"
nocg=$(mktemp --suffix=.lua)
trap 'rm -f "$nocg"' EXIT
policy_file "$nocg" 'p.local_sandbox.cgroups = false'
out=$(mktemp -d)
hyperfine_rounds "$out/r.json" "$out/r.md" "$runs" --warmup 10 \
  -n "cgroups on" "$cli run --backend local -- /bin/true" \
  -n "cgroups off" "$cli run --backend local --policy $nocg -- /bin/true"
# In the VM the repository is read-only: the table goes to the console.
if [ -w "$here/bench/results" ]; then
  cp "$out/r.md" "$here/bench/results/cgroup_$name.md"
else
  sed "s/^/cgroup_$name.md: /" "$out/r.md"
fi
with_means "$out/r.json" "print(('cgroup $name: on %.2f ms, off %.2f ms: the cgroup costs %.2f ms a run (%.2fx)')
  :format(mean['cgroups on'] * 1000, mean['cgroups off'] * 1000, (mean['cgroups on'] - mean['cgroups off']) * 1000,
  mean['cgroups on'] / mean['cgroups off']))"
rm -rf "$out"
