#!/usr/bin/env bash
# 1,000 sandboxed runs of /bin/true through one `echo-sandbox batch -j 8`
# (namespaces on: the default policy) against 1,000 bare /bin/true at the same
# parallelism (xargs -P 8), in one hyperfine run. Writes bench/results/batch.md
# and prints the ratio.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
ensure_packages hyperfine findutils
"$here/bootstrap.sh" build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq 1000); do echo "{\"id\":$i,\"program\":\"/bin/true\"}"; done > "$work/requests.ndjson"
mkdir -p "$here/bench/results"
out="$here/bench/results/batch"
hyperfine --warmup 1 --runs "${RUNS:-5}" --export-json "$out.json" --export-markdown "$out.md" \
  -n "batch -j 8" "$here/build/echo-sandbox batch -j 8 < $work/requests.ndjson > /dev/null" \
  -n "xargs -P 8" "seq 1000 | xargs -P 8 -I{} /bin/true"
with_means "$out.json" '
print(("batch / bare = %.2f; %.2f ms per sandboxed run"):format(
  mean["batch -j 8"] / mean["xargs -P 8"], mean["batch -j 8"]))'
