#!/usr/bin/env bash
# Warm pods (doc/warm-pods.md) against cold ones, on the loopback fake API
# server (spec/support/fake_kube.py, reporting 1.${MINOR:-35}) with a pod
# start delay of ${START_DELAY:-2} s (scheduling and container start): the
# issue's three ratios in one run, each pair interleaved (hyperfine_rounds:
# ROUNDS rounds, each with every command, so that a shared machine's load
# drifts over both sides alike), as medians:
#   warm              echo-sandbox run --backend k8s -- true, a ready pod of
#                     its pool waiting (hyperfine's --prepare: pool run
#                     --once, until the pod is ready)
#   cold              the same run under the same policy without the pool
#   kubectl exec -i   kubectl exec -i -q into a running pod -- true
# then batch -j ${BATCH:-20} of ${BATCH:-20} such runs, a pool of
# ${BATCH:-20} ready against none, and ${BATCH:-20} raw kubectl exec -i at
# once (the floor of a warm batch, each of whose runs is one). The machine's load is printed before and
# after. Writes bench/results/k8s_warm.md and k8s_warm_batch.md and prints
# the ratios.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
ensure_packages hyperfine python3
"$here/bootstrap.sh" build
work=$(mktemp -d)
export ESB_FAKE_START_DELAY=${START_DELAY:-2}
start_fake_kube "$work" "${MINOR:-35}"
trap 'kill $server; wait $server 2>/dev/null; rm -rf "$work"' EXIT
cli=$here/build/echo-sandbox
# the API client's kept kubeconfig line (src/backend/kube_api.c) goes with $work
export XDG_RUNTIME_DIR=$work
n=${BATCH:-20}
policy_file "$work/warm.lua" "p.k8s.warm_pools = { p:warm_pool { name = 'bench', size = 1, max_age_s = 3600 } }"
policy_file "$work/warm-batch.lua" \
  "p.k8s.warm_pools = { p:warm_pool { name = 'bench', size = $n, max_age_s = 3600, claim_grace_ms = 5000 } }"
policy_file "$work/cold.lua"
# the pool full and its pods ready: what a maintainer keeps
cat > "$work/fill.sh" <<SH
"$cli" pool run --once --policy "\$1" >/dev/null
until "$cli" pool status --json --policy "\$1" | grep -q "\"ready\":\$2[,}]"; do sleep 0.1; done
SH
id=$("$cli" session create --backend k8s --idle-timeout 3600000)
mkdir -p "$here/bench/results"
out="$here/bench/results/k8s_warm"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
# no shell between hyperfine and the commands (-N): the exec's stdin is
# hyperfine's /dev/null
hyperfine_rounds "$out.json" "$out.md" "${RUNS:-30}" \
  -n warm --prepare "bash $work/fill.sh $work/warm.lua 1" "$cli run --backend k8s --policy $work/warm.lua -- true" \
  -n cold "$cli run --backend k8s --policy $work/cold.lua -- true" \
  -n "kubectl exec -i" "kubectl --namespace=echo-sandbox exec -i -q $id -- true"
for i in $(seq "$n"); do echo '{"program": "true", "backend": "k8s"}'; done > "$work/batch.ndjson"
ROUNDS=${BATCH_RUNS:-3} hyperfine_rounds "${out}_batch.json" "${out}_batch.md" "${BATCH_RUNS:-3}" \
  -n "warm batch" --prepare "bash $work/fill.sh $work/warm-batch.lua $n" \
  "bash -c '$cli batch -j $n --policy $work/warm-batch.lua < $work/batch.ndjson > $work/warm.out'" \
  -n "cold batch" "bash -c '$cli batch -j $n --policy $work/cold.lua < $work/batch.ndjson > $work/cold.out'" \
  -n "$n kubectl exec -i at once" \
  "bash -c 'for i in \$(seq $n); do kubectl --namespace=echo-sandbox exec -i -q $id -- true </dev/null & done; wait'"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
"$cli" session rm "$id"
cat "$out.md" "${out}_batch.md"
echo "warm results in the last warm batch: $(grep -c '"warm":true' "$work/warm.out") of $n"
with_means "$out.json" '
print(("warm / cold = %.2f (target <= 0.25), warm / kubectl exec -i = %.2f (target <= 1.2) "
  .. "(medians: %.0f, %.0f, %.0f ms)"):format(median.warm / median.cold, median.warm / median["kubectl exec -i"], median.warm * 1e3, median.cold * 1e3,
          median["kubectl exec -i"] * 1e3))'
with_means "${out}_batch.json" '
print(("batch of '"$n"': cold / warm = %.2f (throughput of warm over cold; target >= 5) (medians: %.2f s, %.2f s)")
  :format(median["cold batch"] / median["warm batch"], median["warm batch"], median["cold batch"]))
print(("batch of '"$n"': warm / '"$n"' raw kubectl exec -i at once = %.2f (the floor while each run is a kubectl exec)")
  :format(median["warm batch"] / median["'"$n"' kubectl exec -i at once"]))'
