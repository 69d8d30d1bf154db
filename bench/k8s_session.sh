#!/usr/bin/env bash
# Wall time of a run in a k8s session against raw kubectl exec -i of the
# same command into the same pod, on the loopback fake API server
# (spec/support/fake_kube.py, reporting 1.${MINOR:-32}), in one hyperfine run:
#   session run       echo-sandbox session run ID -- /bin/true
#   kubectl exec -i   kubectl exec -i -q ID -- /bin/true (stdin empty)
# Writes bench/results/k8s_session.md and prints the ratio.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
ensure_packages hyperfine python3
"$here/bootstrap.sh" build
work=$(mktemp -d)
start_fake_kube "$work" "${MINOR:-32}"
trap 'kill $server; wait $server 2>/dev/null; rm -rf "$work"' EXIT
id=$("$here/build/echo-sandbox" session create --backend k8s --idle-timeout 600000)
mkdir -p "$here/bench/results"
out="$here/bench/results/k8s_session"
# rounds (bench/common.sh): load drifts on a shared machine
hyperfine_rounds "$out.json" "$out.md" "${RUNS:-100}" --warmup 5 \
  -n "session run" "$here/build/echo-sandbox session run $id -- /bin/true" \
  -n "kubectl exec -i" "kubectl --namespace=echo-sandbox exec -i -q $id -- /bin/true"
cat "$out.md"
with_means "$out.json" '
print(("session run / kubectl exec -i = %.2f (means)"):format(mean["session run"] / mean["kubectl exec -i"]))'
"$here/build/echo-sandbox" session rm "$id"
