#!/usr/bin/env bash
# Requests per second of `echo-sandbox serve` with wrk (16 connections, 10 s):
# POST /v1/run of /bin/true (namespaces on) against GET /healthz on the same
# daemon (the HTTP path alone). Writes bench/results/serve.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
ensure_packages wrk
"$here/bootstrap.sh" build
work=$(mktemp -d)
"$here/build/echo-sandbox" serve --listen 127.0.0.1:0 --port-file "$work/port" 2>"$work/log" &
daemon=$!
trap 'kill $daemon; wait $daemon 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 200); do [ -s "$work/port" ] && break; sleep 0.02; done
port=$(cat "$work/port")
cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"program":"/bin/true"}'
wrk.headers["Content-Type"] = "application/json"
LUA
mkdir -p "$here/bench/results"
{
  echo "## POST /v1/run {\"program\":\"/bin/true\"}"
  wrk -t2 -c16 -d"${SECONDS_EACH:-10}"s -s "$work/post.lua" "http://127.0.0.1:$port/v1/run"
  echo "## GET /healthz"
  wrk -t2 -c16 -d"${SECONDS_EACH:-10}"s "http://127.0.0.1:$port/healthz"
} | tee "$here/bench/results/serve.txt"
