#!/usr/bin/env bash
# Wall time of one run on the k8s backend against raw kubectl on the same
# loopback fake API server (spec/support/fake_kube.py, reporting 1.${MINOR:-32}),
# in one hyperfine run:
#   echo-sandbox     echo-sandbox run --backend k8s -- /bin/true
#   kubectl (same)   the same kubectl run command line (from `policy explain`,
#                    a fresh pod name each time), then the same kubectl delete
#   kubectl --rm     a plain kubectl run --attach -i -q --rm, without the
#                    strategic-merge override and the handshake
# then 50 runs at once: one `echo-sandbox batch -j 50` against 50 of the same
# kubectl lines through xargs -P 50.
# Writes bench/results/k8s.md and k8s-50.md and prints the ratios.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
ensure_packages hyperfine python3
"$here/bootstrap.sh" build
work=$(mktemp -d)
start_fake_kube "$work" "${MINOR:-32}"
trap 'kill $server; wait $server 2>/dev/null; rm -rf "$work"' EXIT
raw='kubectl run b$RANDOM$RANDOM --image=x --restart=Never --attach -i -q'
# explain prints the kubectl line shell-quoted; the pod name (also inside the
# quoted override) becomes a fresh one for each run, by sed before the shell
line=$("$here/build/echo-sandbox" policy explain --backend k8s -- /bin/true | sed -n 's/^kubectl  *//p')
pod=$(echo "$line" | grep -o 'echo-sandbox-[0-9a-f]\{32\}' | head -n 1)
{
  echo "echo | ${line//$pod/PODNAME}"
  echo 'kubectl --namespace=echo-sandbox delete pod PODNAME --ignore-not-found --wait=false >/dev/null'
} > "$work/same.template"
echo 'sed "s/PODNAME/bench-$RANDOM$RANDOM/g" "$(dirname "$0")/same.template" | bash' > "$work/same.sh"
mkdir -p "$here/bench/results"
out="$here/bench/results/k8s"
hyperfine --warmup 3 --runs "${RUNS:-30}" --export-json "$out.json" --export-markdown "$out.md" \
  -n echo-sandbox "$here/build/echo-sandbox run --backend k8s -- /bin/true" \
  -n "kubectl (same)" "bash $work/same.sh" \
  -n "kubectl --rm" "echo | $raw --rm --command -- /bin/true"
with_means "$out.json" '
print(("echo-sandbox / kubectl (same) = %.2f, echo-sandbox / kubectl --rm = %.2f"):format(
  mean["echo-sandbox"] / mean["kubectl (same)"], mean["echo-sandbox"] / mean["kubectl --rm"]))'

for i in $(seq 50); do echo "{\"id\":$i,\"backend\":\"k8s\",\"program\":\"/bin/true\"}"; done > "$work/fifty.ndjson"
hyperfine --warmup 1 --runs "${RUNS_50:-5}" --export-json "$out-50.json" --export-markdown "$out-50.md" \
  -n "batch -j 50" "$here/build/echo-sandbox batch -j 50 < $work/fifty.ndjson > /dev/null" \
  -n "xargs -P 50" "seq 50 | xargs -P 50 -I{} bash $work/same.sh"
with_means "$out-50.json" '
print(("50 at once: batch / kubectl (same) = %.2f"):format(mean["batch -j 50"] / mean["xargs -P 50"]))'
