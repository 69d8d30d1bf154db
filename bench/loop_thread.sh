#!/usr/bin/env bash
# How much of the loop's own thread one sandboxed run takes, and what a
# batch costs against the kernel's floor:
#   1. `echo-sandbox batch -j J` of N /bin/true (default policy: every
#      namespace, seccomp, cgroups): the loop thread's CPU time (utime +
#      stime of /proc/PID/task/PID/stat, sampled until the batch ends), per
#      run, median of three batches. The sandboxes are started on the pool's
#      threads (src/engine/runtime/spawner.h) and the lines planned on batch's
#      planner thread (its CPU is shown too), so this is what bounds the
#      runs one loop can start a second whatever the cores.
#   2. hyperfine, in one run (in rounds, bench/common.sh): that batch against `xargs -P J unshare` making
#      the same namespaces (user, mount, pid, net, ipc, uts) around each
#      /bin/true: the kernel's floor for the same work without a sandbox;
#      and the same batch with each run's init exec'd rather than forked by
#      the init's fork server (ECHO_SANDBOX_FORK_SERVER=0).
# J defaults to 8, N to 1000 (JOBS=16 on a 16-core host).
# Writes bench/results/loop_thread.md and prints both.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
ensure_packages hyperfine findutils util-linux
"$here/bootstrap.sh" build
jobs=${JOBS:-8} n=${N:-1000}
cli="$here/build/echo-sandbox"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq "$n"); do echo "{\"id\":$i,\"program\":\"/bin/true\"}"; done > "$work/requests.ndjson"

# The loop thread's CPU when the batch ends (the main thread's tid is the
# pid): "TICKS NS PLANNER_NS", the ticks of utime + stime in
# /proc/PID/task/PID/stat and, to the nanosecond, the time on a CPU in its
# schedstat; then the schedstat time of batch's planner thread (named
# esb-planner), which decodes and plans the lines off the loop's thread.
loop_cpu() {
  "$cli" batch -j "$jobs" < "$work/requests.ndjson" > "$work/out.ndjson" &
  local pid=$! last=0 ns=0 planner_ns=0 stat sched fields task
  while stat=$(cat "/proc/$pid/task/$pid/stat" 2>/dev/null) &&
        sched=$(cat "/proc/$pid/task/$pid/schedstat" 2>/dev/null); do
    read -r -a fields <<< "${stat##*) }"
    last=$((fields[11] + fields[12]))
    ns=${sched%% *}
    for task in /proc/$pid/task/*; do
      if [ "$(cat "$task/comm" 2>/dev/null)" = esb-planner ]; then
        sched=$(cat "$task/schedstat" 2>/dev/null) && planner_ns=${sched%% *}
      fi
    done
    sleep 0.005
  done
  wait "$pid"
  [ "$(grep -c '"exit_code":0' "$work/out.ndjson")" = "$n" ] || { echo "a run failed" >&2; exit 1; }
  echo "$last $ns $planner_ns"
}
hz=$(getconf CLK_TCK)
cpu=$(for _ in 1 2 3; do loop_cpu; done)
samples=$(echo "$cpu" | cut -d' ' -f1 | sort -n | tr '\n' ' ')
median=$(echo "$samples" | awk '{print $2}')
sched_us=$(echo "$cpu" | cut -d' ' -f2 | sort -n | awk -v n="$n" 'NR == 2 { printf "%.0f", $1 / 1000 / n }')
planner_us=$(echo "$cpu" | cut -d' ' -f3 | sort -n | awk -v n="$n" 'NR == 2 { printf "%.0f", $1 / 1000 / n }')
per_run_us=$(awk -v t="$median" -v hz="$hz" -v n="$n" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }')

mkdir -p "$here/bench/results"
out="$here/bench/results/loop_thread"
hyperfine_rounds "$out.json" "$out.runs.md" "${RUNS:-20}" --warmup 1 \
  -n "batch -j $jobs" "bash -c '$cli batch -j $jobs < $work/requests.ndjson > /dev/null'" \
  -n "batch -j $jobs, init exec per run" \
     "bash -c 'ECHO_SANDBOX_FORK_SERVER=0 $cli batch -j $jobs < $work/requests.ndjson > /dev/null'" \
  -n "xargs -P $jobs unshare" \
     "bash -c 'seq $n | xargs -P $jobs -I{} unshare --user --map-root-user --mount --pid --fork --net --ipc --uts /bin/true'"
ratio=$(with_means "$out.json" "io.write(('%.2f'):format(mean['batch -j $jobs'] / mean['xargs -P $jobs unshare']))")
{
  echo "| measure | value |"
  echo "|---|---|"
  echo "| loop thread CPU per run, batch -j $jobs of $n /bin/true (ticks of 1/$hz s: $samples) | ${per_run_us} µs |"
  echo "| the same from its schedstat (time on a CPU, median of the three) | ${sched_us} µs |"
  echo "| batch's planner thread (decodes and plans each line), from its schedstat | ${planner_us} µs |"
  with_means "$out.json" "
    for name, m in pairs(mean) do print(('| %s, mean | %.3f s |'):format(name, m)) end"
  echo "| batch -j $jobs / xargs -P $jobs unshare | $ratio |"
  with_means "$out.json" "io.write(('| batch -j $jobs, init exec per run / xargs -P $jobs unshare | %.2f |\\n'):format(
    mean['batch -j $jobs, init exec per run'] / mean['xargs -P $jobs unshare']))"
} > "$out.md"
cat "$out.md"
