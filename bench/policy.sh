#!/usr/bin/env bash
# Cost of the policy runtime, measured with hyperfine in one run:
#   start:   `policy explain` of one request against `echo-sandbox --version`
#            (the same binary doing nothing): VM start + policy load + one plan.
#   per request: `policy explain --json` of 2001 requests against 1 request;
#            the difference / 2000 is one request through every hook (k8s
#            requests included) plus decoding it and encoding the explanation.
# Writes bench/results/policy.md and prints the derived numbers.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
ensure_packages hyperfine
"$here/bootstrap.sh" build
cli="$here/build/echo-sandbox"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
requests=(
  '{"language":"python","code":"print(6*7)"}'
  '{"backend":"k8s","language":"python","code":"print(6*7)","limits":{"memory_bytes":134217728}}'
  '{"shell":"ls -la /tmp","env":{"A":"b"}}'
  '{"backend":"k8s","program":"/usr/local/bin/node","args":["-v"],"labels":{"tenant":"a"}}'
)
printf '%s\n' "${requests[0]}" > "$work/one.ndjson"
: > "$work/many.ndjson"
for i in $(seq 0 2000); do printf '%s\n' "${requests[$((i % 4))]}" >> "$work/many.ndjson"; done
mkdir -p "$here/bench/results"
out="$here/bench/results/policy"
# hyperfine 1.15 has no --input: the shell redirects (and hyperfine subtracts
# the shell's own start-up).
hyperfine --warmup 10 --runs "${RUNS:-100}" --export-json "$out.json" --export-markdown "$out.md" \
  -n version "$cli --version" \
  -n "explain 1" "$cli policy explain --json < $work/one.ndjson" \
  -n "explain 2001" "$cli policy explain --json < $work/many.ndjson"
with_means "$out.json" '
print(("start (VM + policy load + one plan): %.2f ms"):format((mean["explain 1"] - mean.version) * 1e3))
print(("per request (all hooks, decode, explain, encode): %.1f us"):format(
  (mean["explain 2001"] - mean["explain 1"]) / 2000 * 1e6))'
