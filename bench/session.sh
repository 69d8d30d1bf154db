#!/usr/bin/env bash
# What a session saves an agent, on the local backend, in one hyperfine run:
#   session run    echo-sandbox session run ID -- /bin/true, in a live session
#   run            echo-sandbox run -- /bin/true, a sandbox of its own
#   cell           echo-sandbox session cell ID --lang python --code 'x += 1'
# then, without the CLI's own start: the median round trip of 200 Python
# cells `x += 1` through one daemon's POST /v1/sessions/ID/cell on one
# keep-alive connection, and of 200 runs of /bin/true in that session
# (POST /v1/sessions/ID/run) by turns with 200 in sandboxes of their own
# (POST /v1/run) on the same connection; and the host memory an idle session holds: the
# resident set of its processes (the holder and the next run's pid 1 it
# keeps made ahead; no kernel started), from /proc/PID/status VmRSS and
# smaps_rollup Pss, summed.
# Writes bench/results/session.md and prints the ratios.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
ensure_packages hyperfine python3
"$here/bootstrap.sh" build
cli="$here/build/echo-sandbox"
work=$(mktemp -d)
export ECHO_SANDBOX_SESSION_DIR=$work/sessions
ids=()
daemon=
cleanup() {
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  for id in "${ids[@]}"; do "$cli" session rm "$id" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
id=$("$cli" session create --ttl 3600000 --idle-timeout 3600000)
ids+=("$id")
"$cli" session cell "$id" --lang python --code 'x = 0' >/dev/null
mkdir -p "$here/bench/results"
out="$here/bench/results/session"
hyperfine_rounds "$out.json" "$out.md" "${RUNS:-200}" --warmup 5 \
  -n "session run" "$cli session run $id -- /bin/true" \
  -n "cell" "$cli session cell $id --lang python --code 'x += 1'" \
  -n "run" "$cli run -- /bin/true"

# Cells through a daemon: the engine's part without a CLI's start.
"$cli" serve --listen "127.0.0.1:0" --port-file "$work/port" >/dev/null 2>&1 &
daemon=$!
for _ in $(seq 200); do [ -s "$work/port" ] && break; sleep 0.05; done
cells=$(python3 - "$(cat "$work/port")" <<'PY'
import http.client, json, statistics, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
def call(method, path, body=None):
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, json.loads(r.read() or b"null")
status, made = call("POST", "/v1/sessions", {"ttl_ms": 600000})
assert status == 201, (status, made)
sid = made["id"]
try:
    status, first = call("POST", f"/v1/sessions/{sid}/cell", {"language": "python", "code": "x = 0"})
    assert status == 200 and first["status"] == "ok", (status, first)
    times = []
    for _ in range(200):
        t = time.perf_counter()
        status, r = call("POST", f"/v1/sessions/{sid}/cell", {"language": "python", "code": "x += 1"})
        times.append((time.perf_counter() - t) * 1000)
        assert status == 200 and r["status"] == "ok", r
    status, last = call("POST", f"/v1/sessions/{sid}/cell", {"language": "python", "code": "x"})
    assert last["value"] == "200", last
    # /bin/true in the session and in a sandbox of its own, by turns
    runs = {"session": [], "own": []}
    for _ in range(200):
        for kind, path in (("session", f"/v1/sessions/{sid}/run"), ("own", "/v1/run")):
            t = time.perf_counter()
            status, r = call("POST", path, {"program": "/bin/true"})
            runs[kind].append((time.perf_counter() - t) * 1000)
            assert status == 200 and r["status"] == "exited" and r["exit_code"] == 0, r
    print(f"{statistics.median(times):.2f} {statistics.median(runs['session']):.2f} {statistics.median(runs['own']):.2f}")
finally:
    call("DELETE", f"/v1/sessions/{sid}")
PY
)

# An idle session's host memory: its processes', without a kernel: the
# holder and the next run's pid 1 it keeps made ahead (after one run).
idle=$("$cli" session create --ttl 3600000 --idle-timeout 3600000)
ids+=("$idle")
"$cli" session run "$idle" -- /bin/true
pid=$("$cli" session show "$idle" --json | lua5.4 -e 'print(math.tointeger(require("cjson").decode(io.read("a")).pid))')
procs="$pid $(cat "/proc/$pid/task/$pid/children")"
rss=0 pss=0
for p in $procs; do
  rss=$((rss + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status")))
  pss=$((pss + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup")))
done
nprocs=$(echo $procs | wc -w)
with_means "$out.json" "
print(('session run / run = %.2f (target 0.35); cell through the CLI %.2f ms median'):format(
  mean['session run'] / mean.run, mean.cell * 1000))"
read -r cells daemon_session_run daemon_run <<< "$cells"
echo "cell through the daemon: ${cells} ms median of 200 (target 2 ms)"
with_means "$out.json" "
print(('through the daemon, one keep-alive connection, medians of 200 by turns: /bin/true in the session %.2f ms, ' ..
       'in a sandbox of its own %.2f ms (%.2f of it); the session run through the daemon / run through the CLI = %.2f')
  :format($daemon_session_run, $daemon_run, $daemon_session_run / $daemon_run, $daemon_session_run / (mean.run * 1000)))"
echo "idle session: its ${nprocs} processes' RSS ${rss} KiB, PSS ${pss} KiB (target 4 MiB)"
{
  echo
  echo "| measure | value |"
  echo "|---|---|"
  echo "| Python cell \`x += 1\` through the daemon, median of 200 | ${cells} ms |"
  echo "| /bin/true through the daemon (keep-alive), in the session / in a sandbox of its own, medians of 200 by turns | ${daemon_session_run} / ${daemon_run} ms |"
  echo "| idle session, its ${nprocs} processes' RSS / PSS (the holder, the next run's pid 1) | ${rss} / ${pss} KiB |"
} >> "$out.md"
