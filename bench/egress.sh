#!/usr/bin/env bash
# The network by name against network: true, in one run: 100 MiB downloaded
# by curl in the sandbox from a test host, through the egress proxy
# (limits.network = {"allow": [...]}) and through pasta (network: true);
# then the time of one connection (connect, one small GET, the answer, close)
# each way, and to the test host from its own namespace's neighbour with no
# sandbox at all. As the specs do, the test host lives in network namespaces
# made here (spec/egress_local_spec.lua): "host", where the engine runs,
# and "peer", 203.0.113.2, serving HTTP (Python's http.server). No packet
# leaves them. Root only. Writes bench/results/egress.md.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/bootstrap.sh" build >/dev/null
cli="$here/build/echo-sandbox"
rounds=${ROUNDS:-3} conns=${CONNS:-200}
id=$$ host=esb-bh-$$ peer=esb-bp-$$ dir=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && while kill -0 "$server_pid" 2>/dev/null; do sleep 0.01; done
  ip netns del "$host" 2>/dev/null || true
  ip netns del "$peer" 2>/dev/null || true
  rm -rf "$dir" "/etc/netns/$host"
}
trap cleanup EXIT

mkdir -p "/etc/netns/$host"
printf '127.0.0.1 localhost\n203.0.113.2 bulk.esb.test\n' > "/etc/netns/$host/hosts"
echo 'nameserver 127.0.0.1' > "/etc/netns/$host/resolv.conf"
ip netns add "$host"
ip netns add "$peer"
ip -n "$host" link set lo up
ip -n "$peer" link set lo up
ip -n "$host" link add "eh$id" type veth peer name "ep$id" netns "$peer"
ip -n "$host" addr add 203.0.113.1/24 dev "eh$id"
ip -n "$host" link set "eh$id" up
ip -n "$peer" addr add 203.0.113.2/24 dev "ep$id"
ip -n "$peer" link set "ep$id" up
ip -n "$host" route add default via 203.0.113.2

cat > "$dir/server.py" <<'EOF'
import http.server, socketserver, sys
chunk = b"x" * (1 << 20)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        n = 100 if self.path == "/100m" else 0
        self.send_response(200)
        self.send_header("Content-Length", str(n * len(chunk) if n else 3)); self.end_headers()
        if not n: self.wfile.write(b"ok\n")
        for _ in range(n): self.wfile.write(chunk)
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True; allow_reuse_address = True
s = S(("0.0.0.0", 80), H)
open(sys.argv[1], "w").close()
s.serve_forever()
EOF
# One connection at a time, conns of them: the mean milliseconds of one.
cat > "$dir/conns.py" <<'EOF'
import socket, sys, time
addr, via_proxy, n = sys.argv[1], sys.argv[2] == "proxy", int(sys.argv[3])
t = time.perf_counter()
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", 3128) if via_proxy else (addr, 80))
    target = ("http://%s/" % addr) if via_proxy else "/"
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (target, addr)).encode())
    while s.recv(65536): pass
    s.close()
print("%.3f" % ((time.perf_counter() - t) / n * 1000))
EOF
ip netns exec "$peer" python3 "$dir/server.py" "$dir/ready" >/dev/null 2>&1 &
server_pid=$!
for _ in $(seq 1000); do [ -e "$dir/ready" ] && break; sleep 0.01; done

# The CLI in the host namespace; /dev/net/tun 0666 as udev makes it, so that
# pasta runs as the run's uid (as spec/network_host_spec.lua does).
in_host() {
  ip netns exec "$host" unshare -m sh -c \
    'd=$(mktemp -d) && mknod -m 666 $d/tun c 10 200 && mount --bind $d/tun /dev/net/tun && rm -r $d && exec "$@"' sh "$@"
}
# run NETWORK SCRIPT: the sandbox's stdout (NETWORK: the limits.network JSON).
run() {
  local req
  req=$(python3 -c 'import json, sys; print(json.dumps({"program": "sh", "args": ["-c", sys.argv[2]],
    "files": {"conns.py": open(sys.argv[3]).read()}, "timeout_ms": 120000,
    "limits": {"network": json.loads(sys.argv[1]), "memory_bytes": 1 << 30}}))' "$1" "$2" "$dir/conns.py")
  echo "$req" | in_host "$cli" run --json | python3 -c 'import json, sys; r = json.load(sys.stdin)
if r["status"] != "exited" or r["exit_code"]: sys.exit("run failed: %s" % json.dumps(r)[:2000])
print(r["stdout"], end="")'
}

allow='{"allow": ["bulk.esb.test"]}'
speed='curl -sS -o /dev/null -w "%{speed_download}\n"'
# Each round both ways, one after the other: the host's other load falls on
# both alike.
proxy_mib=() pasta_mib=() proxy_ms=() pasta_ms=() bare_ms=()
for _ in $(seq "$rounds"); do
  proxy_mib+=("$(run "$allow" "$speed http://bulk.esb.test/100m")")
  pasta_mib+=("$(run true "$speed http://203.0.113.2/100m")")
  proxy_ms+=("$(run "$allow" "python3 conns.py bulk.esb.test proxy $conns")")
  pasta_ms+=("$(run true "python3 conns.py 203.0.113.2 direct $conns")")
  bare_ms+=("$(ip netns exec "$host" python3 "$dir/conns.py" 203.0.113.2 direct "$conns")")
done

mkdir -p "$here/bench/results"
python3 - "$here/bench/results/egress.md" "$rounds" "$conns" "${proxy_ms[*]}" "${pasta_ms[*]}" "${bare_ms[*]}" \
  "${proxy_mib[*]}" "${pasta_mib[*]}" <<'EOF'
import statistics, sys
out, rounds, conns = sys.argv[1:4]
median = lambda words, scale=1: statistics.median(float(w) * scale for w in words.split())
proxy_ms, pasta_ms, bare_ms = (median(w) for w in sys.argv[4:7])
mib = lambda words: [float(w) / (1 << 20) for w in words.split()]
proxy, pasta = mib(sys.argv[7]), mib(sys.argv[8])
p, q = statistics.median(proxy), statistics.median(pasta)
text = f"""# The network by name against network: true

100 MiB from a test host in a network namespace, by curl in the sandbox (median of {rounds} runs):

| path | MiB/s (each run) | median MiB/s |
|---|---|---|
| egress proxy (`network: {{"allow": [...]}}`) | {", ".join(f"{x:.0f}" for x in proxy)} | {p:.0f} |
| pasta (`network: true`) | {", ".join(f"{x:.0f}" for x in pasta)} | {q:.0f} |

proxy / pasta = {p / q:.2f}

One connection (connect, a small GET, its answer, close): the median over the rounds of the mean of {conns} in a row
(the client is Python; in the sandbox it runs under the default policy's CPU rate and filter):

| path | ms |
|---|---|
| egress proxy | {proxy_ms:.3f} |
| pasta (`network: true`) | {pasta_ms:.3f} |
| no sandbox (the engine's namespace) | {bare_ms:.3f} |

the proxy's added time per connection: {proxy_ms - pasta_ms:.3f} ms against network: true,
{proxy_ms - bare_ms:.3f} ms against no sandbox at all
"""
open(out, "w").write(text)
print(text)
EOF
