#!/usr/bin/env bash
# Bodies and streamed answers of `echo-sandbox serve`, with curl, in one
# hyperfine run against baselines on the same daemon:
#   - POST /v1/run of `wc -c` with 4 MiB of stdin in the body, against the
#     same run with an empty stdin (the difference: reading the body);
#   - a program that prints 10 MiB, asked with ?stream=1 (NDJSON output
#     events, then the result) against the same request unstreamed, with the
#     default limits (the result keeps 1 MiB of stdout) and with
#     max_output_bytes 10 MiB (the result keeps all of it); `batch --events`
#     of the same request for scale.
# Writes bench/results/serve_stream.md and prints it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
ensure_packages hyperfine curl
"$here/bootstrap.sh" build
cli="$here/build/echo-sandbox"
work=$(mktemp -d)
"$cli" serve --listen 127.0.0.1:0 --port-file "$work/port" 2>"$work/log" &
daemon=$!
trap 'kill $daemon; wait $daemon 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 200); do [ -s "$work/port" ] && break; sleep 0.02; done
url="http://127.0.0.1:$(cat "$work/port")/v1/run"
mib=$((1 << 20))
lua5.4 -e "
  local cjson = require 'cjson'
  local function write(name, t)
    local f = assert(io.open('$work/' .. name, 'w'))
    f:write(cjson.encode(t), '\n')
    f:close()
  end
  write('body4m', { shell = 'wc -c', stdin = ('x'):rep(4 * $mib) })
  write('body0', { shell = 'wc -c' })
  write('out10m', { shell = 'yes | head -c ' .. 10 * $mib })
  write('out10m_all', { shell = 'yes | head -c ' .. 10 * $mib, limits = { max_output_bytes = 10 * $mib } })"
post() { echo "curl -sf -o /dev/null -H Content-Type:application/json --data-binary @$work/$1 $url${2:-}"; }
mkdir -p "$here/bench/results"
out="$here/bench/results/serve_stream"
hyperfine_rounds "$out.json" "$out.table.md" "${RUNS:-20}" --warmup 2 \
  -n "4 MiB body" "$(post body4m)" \
  -n "empty body" "$(post body0)" \
  -n "10 MiB streamed" "$(post out10m '?stream=1')" \
  -n "10 MiB unstreamed" "$(post out10m)" \
  -n "10 MiB streamed, max_output_bytes 10 MiB" "$(post out10m_all '?stream=1')" \
  -n "10 MiB unstreamed, max_output_bytes 10 MiB" "$(post out10m_all)" \
  -n "batch --events, 10 MiB" "bash -c '$cli batch --events < $work/out10m > /dev/null'"
{
  echo "echo-sandbox serve over loopback TCP, curl as the client (this machine: $(nproc) cores)."
  echo
  cat "$out.table.md"
  echo
  echo "| measure | value |"
  echo "|---|---|"
  with_means "$out.json" "
    print(('| reading a 4 MiB body (4 MiB body - empty body) | %.1f ms |'):format(
      (mean['4 MiB body'] - mean['empty body']) * 1e3))
    print(('| 10 MiB streamed / unstreamed | %.2f |'):format(mean['10 MiB streamed'] / mean['10 MiB unstreamed']))
    print(('| the same, max_output_bytes 10 MiB | %.2f |'):format(
      mean['10 MiB streamed, max_output_bytes 10 MiB'] / mean['10 MiB unstreamed, max_output_bytes 10 MiB']))"
} > "$out.md"
rm -f "$out.table.md"
cat "$out.md"
