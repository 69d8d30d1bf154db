#!/usr/bin/env bash
# Streams in the flag form of `run`: 1 GiB through `run --stdin-file FILE --
# cat` against bubblewrap's `cat` with the same file as stdin, both writing
# to /dev/null, in one hyperfine run (both under `bash -c` for the
# redirections); then the CLI's maximum RSS from /usr/bin/time -v, and the
# same through a pipe to a reader (`| cat > /dev/null`) for both.
# The file is written first (not sparse) and read once so it is in the page
# cache for every run. SIZE_MIB defaults to 1024.
# Writes bench/results/stream_cat.md and prints it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
ensure_packages hyperfine bubblewrap time
"$here/bootstrap.sh" build
cli="$here/build/echo-sandbox"
size=${SIZE_MIB:-1024}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data="$work/data"
head -c "$((size << 20))" /dev/urandom > "$data"
cat "$data" > /dev/null
bwrap_cat="bwrap --unshare-all --die-with-parent --ro-bind / / --dev /dev --proc /proc cat"
mkdir -p "$here/bench/results"
out="$here/bench/results/stream_cat"
hyperfine_rounds "$out.json" "$out.table.md" "${RUNS:-10}" --warmup 1 \
  -n "echo-sandbox run, to /dev/null" "bash -c '$cli run --stdin-file $data -- cat > /dev/null'" \
  -n "echo-sandbox run, to a pipe" "bash -c '$cli run --stdin-file $data -- cat | cat > /dev/null'" \
  -n "bwrap, to a pipe" "bash -c '$bwrap_cat < $data | cat > /dev/null'" \
  -n "bwrap, to /dev/null" "bash -c '$bwrap_cat < $data > /dev/null'"
rss_kib=$(/usr/bin/time -v "$cli" run --stdin-file "$data" -- cat 2>&1 >/dev/null |
          awk -F': ' '/Maximum resident set size/ { print $2 }')
{
  echo "$size MiB of random bytes through \`cat\`, stdin from the file (this machine: $(nproc) cores)."
  echo
  cat "$out.table.md"
  echo
  echo "| measure | value |"
  echo "|---|---|"
  with_means "$out.json" "
    print(('| throughput of echo-sandbox / bubblewrap, to /dev/null | %.2f |'):format(
      mean['bwrap, to /dev/null'] / mean['echo-sandbox run, to /dev/null']))
    print(('| throughput of echo-sandbox / bubblewrap, to a pipe | %.2f |'):format(
      mean['bwrap, to a pipe'] / mean['echo-sandbox run, to a pipe']))"
  echo "| echo-sandbox run's maximum RSS (/usr/bin/time -v) | $((rss_kib / 1024)) MiB ($rss_kib KiB) |"
} > "$out.md"
rm -f "$out.table.md"
cat "$out.md"
