-- network: true reaches the internet, not the host: pasta makes each of
-- the program's connections a socket of the host's, so the sandbox's
-- namespace refuses the host's own addresses and the private, link-local,
-- unique-local and metadata ranges (engine/sandbox/netrules.h), and pasta is not
-- root (backend/netstack.h).
--
-- Everything happens among network namespaces this spec makes: "host", the
-- engine's, where echo-sandbox runs (pasta takes it for the host), with a
-- veth to "peer", a test host on 203.0.113.0/24 (TEST-NET-3, the
-- internet here) that also carries 10.98.0.2 (a private neighbour). The
-- host namespace has more addresses on a second interface: 10.99.0.1 and
-- 10.99.0.53 (private), 198.51.100.1 (public-looking, TEST-NET-2) and
-- fd00:ec2::254 (AWS's IPv6 metadata address), and a listener on every
-- address, [::] with IPv4 too. No packet goes anywhere else.
local env = require "spec.support.env"
local cjson = require "cjson"
local netns = require "spec.support.netns"

-- A TCP listener on [::] and 0.0.0.0 at the port of argv[2] (0: any, told
-- in the file argv[1]); it answers "hello\n". With argv[3], a directory: it
-- first makes argv[3]/accepted, then waits for argv[3]/release (the spec's
-- interlock), then answers.
local listener = [[
import os, socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", int(sys.argv[2]))); s.listen(16)
open(sys.argv[1] + ".tmp", "w").write("%d\n" % s.getsockname()[1])
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    c, _ = s.accept()
    if len(sys.argv) > 3:
        open(os.path.join(sys.argv[3], "accepted"), "w").close()
        while not os.path.exists(os.path.join(sys.argv[3], "release")):
            time.sleep(0.01)
    c.sendall(b"hello\n"); c.close()
]]

-- A UDP listener on the interface argv[2]: port 5353 of 0.0.0.0 and [::],
-- in the mDNS groups 224.0.0.251 and ff02::fb and SSDP's 239.255.255.250,
-- and port 53 of 0.0.0.0. It notes every datagram it gets; on "done"
-- (the run's last, on port 53) it takes what else is queued and writes its
-- notes into argv[1], one payload a line, then ends.
local udp_listener = [[
import os, select, socket, struct, sys
idx = socket.if_nametoindex(sys.argv[2])
def udp(family, port):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(("::" if family == socket.AF_INET6 else "", port)); return s
m4, m6, u = udp(socket.AF_INET, 5353), udp(socket.AF_INET6, 5353), udp(socket.AF_INET, 53)
for group in ("224.0.0.251", "239.255.255.250"):
    m4.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                  struct.pack("4s4si", socket.inet_aton(group), bytes(4), idx))
m6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
              socket.inet_pton(socket.AF_INET6, "ff02::fb") + struct.pack("@I", idx))
open(sys.argv[1] + ".ready", "w").close()
got, done = [], False
while not done:
    for s in select.select([m4, m6, u], [], [])[0]:
        data, addr = s.recvfrom(2000)
        got.append(data.decode(errors="replace"))
        if got[-1] == "done":  # acknowledged: the sender waits for it before it ends
            s.sendto(b"ack", addr); done = True
for s in (m4, m6, u):
    s.setblocking(False)
    try:
        while True:
            data = s.recv(2000).decode(errors="replace")
            if data != "done": got.append(data)  # the sender's "done" again: its ack was late
    except BlockingIOError: pass
open(sys.argv[1] + ".tmp", "w").write("".join(g + "\n" for g in got))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
]]

-- The run's side: datagrams to the mDNS, SSDP and broadcast addresses and
-- to private ones, each with the interface chosen as a program can choose
-- it, one line each ("NAME sent" or "NAME <the error>"); then "done" to
-- the host's resolver (allowed, port 53) and to the peer, for the
-- listeners.
local udp_sender = [[
import socket, struct
AF4, AF6, IP, IP6 = socket.AF_INET, socket.AF_INET6, socket.IPPROTO_IP, socket.IPPROTO_IPV6
IP_PKTINFO, IP_UNICAST_IF, IPV6_UNICAST_IF = 8, 50, 76
eth = [i for i, name in socket.if_nameindex() if name != "lo"][0]
def pktinfo4(): return [(IP, IP_PKTINFO, struct.pack("i4s4s", eth, bytes(4), bytes(4)))]
def pktinfo6(): return [(IP6, socket.IPV6_PKTINFO, bytes(16) + struct.pack("@I", eth))]
def send(name, family, dest, option=None, value=None, cmsg=None, source=None):
    s = socket.socket(family, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if option: s.setsockopt(*option, value)
        if source: s.bind((source, 0))
        if cmsg: s.sendmsg([name.encode()], cmsg, 0, dest)
        else: s.sendto(name.encode(), dest)
        print(name, "sent")
    except OSError as e: print(name, e.strerror)
    s.close()
mreqn = struct.pack("4s4si", bytes(4), bytes(4), eth)
send("mdns4-multicast-if", AF4, ("224.0.0.251", 5353), (IP, socket.IP_MULTICAST_IF), mreqn)
send("mdns4-pktinfo", AF4, ("224.0.0.251", 5353), cmsg=pktinfo4())
send("ssdp-multicast-if", AF4, ("239.255.255.250", 5353), (IP, socket.IP_MULTICAST_IF), mreqn)
send("ssdp-bound-source", AF4, ("239.255.255.250", 5353), source="203.0.113.1")
send("broadcast-unicast-if", AF4, ("255.255.255.255", 53), (IP, IP_UNICAST_IF), struct.pack("!I", eth))
send("broadcast-pktinfo", AF4, ("255.255.255.255", 53), cmsg=pktinfo4())
send("subnet-broadcast", AF4, ("203.0.113.255", 53))
send("mdns6", AF6, ("ff02::fb", 5353, 0, eth))
send("mdns6-multicast-if", AF6, ("ff02::fb", 5353), (IP6, socket.IPV6_MULTICAST_IF), struct.pack("@i", eth))
send("mdns6-pktinfo", AF6, ("ff02::fb", 5353), cmsg=pktinfo6())
send("host-unicast-if", AF4, ("10.99.0.1", 53), (IP, IP_UNICAST_IF), struct.pack("!I", eth))
send("host-pktinfo", AF4, ("10.99.0.1", 53), cmsg=pktinfo4())
send("neighbour-unicast-if", AF4, ("10.98.0.2", 53), (IP, IP_UNICAST_IF), struct.pack("!I", eth))
send("neighbour-pktinfo", AF4, ("10.98.0.2", 53), cmsg=pktinfo4())
send("metadata6-unicast-if", AF6, ("fd00:ec2::254", 53), (IP6, IPV6_UNICAST_IF), struct.pack("@i", eth))
send("metadata6-pktinfo", AF6, ("fd00:ec2::254", 53), cmsg=pktinfo6())
# "done" until the listener acknowledges it (an interlock): the run must
# not end, and its pasta with it, before the datagram is through.
for dest in ("10.99.0.53", "203.0.113.2"):
    s = socket.socket(AF4, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    for _ in range(40):
        s.sendto(b"done", (dest, 53))
        try:
            if s.recv(16) == b"ack": break
        except socket.timeout: pass
]]

local sh, wait_for = netns.sh, netns.wait_for

describe("network: true", function()
  if not env.is_root() then
    it("needs root to make network namespaces", function() pending("not root") end)
    return
  end
  env.check_leaks()

  local id, host, peer = netns.names("n")
  local dir, script = os.tmpname(), nil
  local listeners = {}  -- pid -> true
  local ports = {}      -- host, peer, peer_hold, dns

  -- Starts the listener in namespace ns; returns its port.
  local function listen(name, ns, port, hold)
    local file = dir .. "/port-" .. name
    local pid = sh(("ip netns exec %s python3 %s %s %d %s >/dev/null 2>&1 & echo $!"):format(
      ns, script, file, port or 0, hold or ""))
    listeners[#listeners + 1] = pid:match("%d+")
    assert(wait_for(file), "listener " .. name .. " did not start")
    local f = io.open(file)
    local got = f:read("n")
    f:close()
    return got
  end

  setup(function()
    os.remove(dir)
    sh("mkdir " .. dir)
    script = dir .. "/listen.py"
    env.write_file(script, listener)
    -- ip netns exec mounts this over /etc/resolv.conf in the host namespace:
    -- the engine, and the sandbox, take 10.99.0.53 for their resolver.
    sh("mkdir -p /etc/netns/" .. host .. " && echo 'nameserver 10.99.0.53' > /etc/netns/" .. host .. "/resolv.conf")
    netns.make_pair(id, host, peer, {
      peer = { "addr add 2001:db8:1::2/64 dev ep" .. id .. " nodad", "addr add 10.98.0.2/32 dev lo" },
      host = {
        "addr add 2001:db8:1::1/64 dev eh" .. id .. " nodad", "-6 route add default via 2001:db8:1::2",
        "route add 10.98.0.0/24 via 203.0.113.2",
        -- the host's second interface (no dummy module here: a veth pair)
        "link add ea" .. id .. " type veth peer name eb" .. id,
        "link set ea" .. id .. " up", "link set eb" .. id .. " up",
        "addr add 10.99.0.1/24 dev ea" .. id, "addr add 10.99.0.53/24 dev ea" .. id,
        "addr add 198.51.100.1/24 dev ea" .. id, "addr add fd00:ec2::254/64 dev ea" .. id .. " nodad",
      },
    })
    ports.host = listen("host", host)
    ports.dns = listen("dns", host, 53)
    ports.peer = listen("peer", peer)
    sh("mkdir " .. dir .. "/hold")
    ports.hold = listen("hold", peer, nil, dir .. "/hold")
  end)

  teardown(function()
    for _, pid in ipairs(listeners) do netns.stop(pid) end
    netns.remove(id, { host, peer }, host, dir) -- and checks that what this spec made is gone
  end)

  -- The CLI in the host namespace, in a mount namespace of its own where
  -- /dev/net/tun is a 0666 node as udev makes it (a container's /dev may
  -- have it 0600, where pasta has to stay root).
  local function in_host(tun)
    return ("ip netns exec %s unshare -m sh -c '%sexec \"$@\"' sh"):format(host, tun == false and "" or
      "d=$(mktemp -d) && mknod -m 666 $d/tun c 10 200 && mount --bind $d/tun /dev/net/tun && rm -r $d && ")
  end

  local function run(script_text, policy_body, tun, program)
    local args = { "run", "--json" }
    local policy
    if policy_body then
      policy = env.policy_file(policy_body)
      args[#args + 1] = "--policy"
      args[#args + 1] = policy
    end
    local out, err = env.cli_run(args, cjson.encode { program = program or "bash", args = { "-c", script_text },
                                                      limits = { network = true } }, in_host(tun))
    if policy then os.remove(policy) end
    local ok, result = pcall(cjson.decode, out)
    assert(ok, "no JSON result: " .. out .. err)
    return result
  end

  -- One line per address: "ADDR hello" when the listener answered, else
  -- "ADDR refused: <bash's reason>".
  local function probe(targets)
    local lines = { "c() { if out=$({ exec 3<>/dev/tcp/$1/$2 && head -c 5 <&3; } 2>/tmp/e); then echo \"$1 $out\";" ..
                    " else echo \"$1 refused: $(sed -n '$s/.*: //p' /tmp/e)\"; fi; }" }
    for _, t in ipairs(targets) do lines[#lines + 1] = ("c %s %d"):format(t[1], t[2]) end
    return table.concat(lines, "\n")
  end

  local function said(r, addr)
    return r.stdout:match("\n?(" .. addr:gsub("[%.%-]", "%%%0") .. " [^\n]*)")
  end

  -- Defence: the host's own addresses and the private ranges are refused
  -- by rules in the sandbox's namespace (engine/sandbox/netrules.c). Checked:
  -- without the rules (esb_netrules_apply not called), 10.99.0.1 read
  -- "hello" from the host's listener; without the host's addresses
  -- (add_host_addresses), 198.51.100.1 did.
  it("cannot reach a listener on the host's other addresses, private or public", function()
    local r = run(probe { { "10.99.0.1", ports.host }, { "198.51.100.1", ports.host }, { "10.99.0.53", ports.host } })
    assert.are.equal("10.99.0.1 refused: Permission denied", said(r, "10.99.0.1"), r.stdout .. r.stderr)
    assert.are.equal("198.51.100.1 refused: Permission denied", said(r, "198.51.100.1"), r.stdout)
    assert.are.equal("10.99.0.53 refused: Permission denied", said(r, "10.99.0.53"), r.stdout)
  end)

  -- Defence: fc00::/7 among the refused ranges (engine/sandbox/netrules.c).
  -- Checked: without it, and without the rules at all, fd00:ec2::254
  -- answered "hello".
  it("cannot reach fd00:ec2::254 (IPv6 instance metadata) nor a private neighbour", function()
    local r = run(probe { { "fd00:ec2::254", ports.host }, { "10.98.0.2", ports.peer } })
    assert.are.equal("fd00:ec2::254 refused: Permission denied", said(r, "fd00:ec2::254"), r.stdout .. r.stderr)
    assert.are.equal("10.98.0.2 refused: Permission denied", said(r, "10.98.0.2"), r.stdout)
  end)

  -- The positive control: the rules refuse no public address, and a
  -- range the policy allows is reached; the host's own addresses in it
  -- are not (defence: their rules come first. Checked: without the
  -- host's addresses, 10.99.0.1 answered "hello").
  it("reaches a public address (IPv4 and IPv6) and a private range the policy allows", function()
    local targets = { { "203.0.113.2", ports.peer }, { "2001:db8:1::2", ports.peer }, { "10.98.0.2", ports.peer },
                      { "10.99.0.1", ports.host } }
    local r = run(probe(targets), 'policy.local_sandbox.network_allow = { "10.96.0.0/12" }')
    assert.are.equal("203.0.113.2 hello", said(r, "203.0.113.2"), r.stdout .. r.stderr)
    assert.are.equal("2001:db8:1::2 hello", said(r, "2001:db8:1::2"), r.stdout)
    assert.are.equal("10.98.0.2 hello", said(r, "10.98.0.2"), r.stdout)
    assert.are.equal("10.99.0.1 refused: Permission denied", said(r, "10.99.0.1"), r.stdout)
  end)

  -- The host's resolver is allowed on port 53 alone (engine/sandbox/netrules.c
  -- add_resolvers; the first spec shows another port of it refused).
  -- Checked: without add_resolvers, port 53 was refused too.
  it("still reaches the host's resolver, on port 53 only", function()
    local r = run(probe { { "10.99.0.53", ports.dns } })
    assert.are.equal("10.99.0.53 hello", said(r, "10.99.0.53"), r.stdout .. r.stderr)
  end)

  -- Defence: the same rules on the namespace's output hook, for every
  -- packet whatever its route (engine/sandbox/netrules.c, apply_filter). Checked:
  -- without it, the host's listener got mdns4-multicast-if, mdns4-pktinfo,
  -- ssdp-multicast-if, ssdp-bound-source, mdns6, mdns6-multicast-if,
  -- mdns6-pktinfo, host-unicast-if and host-pktinfo, the peer's the
  -- multicast ones and neighbour-unicast-if and neighbour-pktinfo (the
  -- broadcasts were sent, pasta did not pass them on).
  it("cannot reach the link's multicast, broadcast or private UDP services, whatever interface it chooses", function()
    local pids, logs = {}, {}
    env.write_file(dir .. "/udp.py", udp_listener)
    for _, l in ipairs { { "host", host, "eh" .. id }, { "peer", peer, "ep" .. id } } do
      local file = dir .. "/udp-" .. l[1]
      logs[l[1]] = file
      pids[#pids + 1] = sh(("ip netns exec %s python3 %s/udp.py %s %s >/dev/null 2>&1 & echo $!"):format(
        l[2], dir, file, l[3])):match("%d+")
      assert(wait_for(file .. ".ready"), "the UDP listener of " .. l[1] .. " did not start")
    end
    local r = run(udp_sender, nil, nil, "python3")
    local got = {}
    for name, file in pairs(logs) do
      if wait_for(file) then
        local f = io.open(file)
        got[name] = f:read("a")
        f:close()
      end
    end
    for _, pid in ipairs(pids) do netns.stop(pid) end
    assert.are.equal("done\n", got.host, r.stdout .. r.stderr)
    assert.are.equal("done\n", got.peer, r.stdout)
    assert.are.equal(16, select(2, r.stdout:gsub("\n", "")), r.stdout)
    assert.is_nil(r.stdout:find(" sent\n"), r.stdout)
  end)

  -- Checked: without the rules, the count of prohibit rules was 0.
  it("cannot remove the rules: the program has no capability", function()
    local r = run("grep CapEff /proc/self/status; ip rule del priority 3000 2>&1; ip -6 rule flush 2>&1; " ..
                  "ip rule | grep -c prohibit")
    assert.truthy(r.stdout:find("CapEff:\t0000000000000000\n", 1, true), r.stdout .. r.stderr)
    assert.truthy(r.stdout:find("RTNETLINK answers: Operation not permitted\n", 1, true), r.stdout)
    assert.is_nil(r.stdout:find("\n0\n$"), r.stdout)
  end)

  -- Defence: pasta started by setpriv as the run's own host uid (backend/netstack.c).
  -- Checked: without it (as_run false), pasta's uid was 0. The run is held
  -- inside a connection to the peer while the spec looks at pasta.
  it("runs pasta as the run's uid, not root", function()
    local hold, port = dir .. "/hold", ports.hold
    local request = dir .. "/request.json"
    env.write_file(request, cjson.encode { program = "bash", limits = { network = true },
                                           args = { "-c", probe { { "203.0.113.2", port } } } })
    local parts = { in_host(), env.cli_prefix, env.quote(env.cli), "run", "--json" }
    local wait = env.in_background(table.concat(parts, " ") .. " <" .. request .. " >" .. dir .. "/out.json")
    local seen = wait_for(hold .. "/accepted")
    local uids = {}
    if seen then
      local pids = sh("ip netns pids " .. host)
      for pid in pids:gmatch("%d+") do
        local cmdline = io.open("/proc/" .. pid .. "/cmdline") -- its comm is passt's (passt.avx2, say)
        local status = io.open("/proc/" .. pid .. "/status")
        if cmdline and cmdline:read("a"):match("^[^%z]*") == "pasta" and status then
          uids[#uids + 1] = status:read("a"):match("\nUid:%s+(%d+)")
        end
        if cmdline then cmdline:close() end
        if status then status:close() end
      end
    end
    sh("touch " .. hold .. "/release")
    assert.are.equal(0, wait())
    assert.is_true(seen, "the run never connected")
    -- the run's own host uid, from the default policy's uid_range
    assert.are.equal(1, #uids, table.concat(uids, " "))
    local uid = tonumber(uids[1])
    assert.is_true(uid >= 1879048192 and uid < 1879048192 + 65536, uids[1])
    local f = io.open(dir .. "/out.json")
    local r = cjson.decode(f:read("a"))
    f:close()
    assert.are.equal("203.0.113.2 hello\n", r.stdout, r.stderr)
  end)

  it("is said by doctor: what pasta runs as", function()
    local out = env.cli_run({ "doctor", "--local-only" }, nil, in_host())
    local own = "ok    network        pasta runs as the run's own uid (1879048192 for the first), not root\n"
    assert.truthy(out:find(own, 1, true), out)
    local _, mode = env.sh("stat -c %a /dev/net/tun")
    out = env.cli_run({ "doctor", "--local-only" }, nil, in_host(false))
    local line = mode:match("66\n$") and own
                 or "ok    network        pasta runs as root: /dev/net/tun is not open to the run's uid 1879048192"
    assert.truthy(out:find(line, 1, true), out)
    -- A tun device closed to the run's uid, and an engine without
    -- CAP_SYS_ADMIN (a unit's bounding set): pasta as root could not enter
    -- the namespaces the run's uid owns. Checked: without the check,
    -- doctor said "ok" and every network: true run failed.
    local closed = "unshare -m sh -c 'd=$(mktemp -d) && mknod -m 600 $d/tun c 10 200 && " ..
                   "mount --bind $d/tun /dev/net/tun && rm -r $d && exec \"$@\"' sh setpriv --bounding-set -sys_admin"
    out = env.cli_run({ "doctor", "--local-only" }, nil, closed)
    assert.truthy(out:find("warn  network        network: true runs fail: /dev/net/tun is not open to the run's " ..
                           "uid 1879048192", 1, true), out)
  end)

  -- Defence: check_network_allow (policy/policy.c). Checked: without it,
  -- the error came only from the plan, as a bad field of the hook's.
  it("refuses a policy whose network_allow has a bad range when it is loaded, naming it", function()
    local policy = env.policy_file('policy.local_sandbox.network_allow = { "10.1.0.0/16", "10.1.2.0/16" }')
    local out, err, code = env.cli_run { "policy", "explain", "--policy", policy, "--", "true" }
    os.remove(policy)
    assert.are_not.equal(0, code, out)
    assert.truthy(err:find("local_sandbox.network_allow: [2] '10.1.2.0/16': bits are set past the prefix length",
                           1, true), err)
  end)

  it("shows what a run with the network refuses and allows (policy explain)", function()
    local policy = env.policy_file('policy.local_sandbox.network_allow = { "10.1.0.0/16", "fd12::/16" }')
    local out, err = env.cli_run({ "policy", "explain", "--policy", policy, "--json" },
                                 cjson.encode { shell = "true", limits = { network = true } })
    os.remove(policy)
    local x = cjson.decode(out)
    assert.are.same({ "10.1.0.0/16", "fd12::/16" }, x["local"].network_allow, err)
  end)
end)
