#!/usr/bin/env bash
# promtool, for the metrics spec, taken out of Debian's prometheus package
# into a cache (installing the package would install and enable a
# Prometheus server too). Idempotent: a cached promtool is kept.
#   spec/support/fetch_promtool.sh [DIR]
# DIR defaults to ${XDG_CACHE_HOME:-~/.cache}/echo-sandbox/promtool.
set -euo pipefail
dir=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/echo-sandbox/promtool}
[ -x "$dir/promtool" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
# apt's own sandbox user cannot write here; the warning says so and is harmless
apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus >/dev/null 2>&1; }
dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool
mkdir -p "$dir"
mv usr/bin/promtool "$dir/promtool"
