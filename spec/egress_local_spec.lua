-- The network by name on the local backend: limits.network = { allow =
-- {...} } gives the program loopback only, where the engine's egress proxy
-- listens (backend/egress_proxy.h); the proxy lets it reach the hosts on
-- the list, by name, at public addresses only, and the result's egress
-- lists every attempt.
--
-- Everything happens among network namespaces this spec makes: "host",
-- the engine's, with a veth to "peer", the test host: 203.0.113.2
-- (TEST-NET-3, a public address here), 10.98.0.2 (private) and
-- 169.254.169.254 (the metadata address) on its loopback, routed from the
-- host. The peer serves HTTP on port 80 and HTTPS on 443 (a certificate of
-- a CA this spec makes; spec/support/egress_server.py) on all of them,
-- answering "<scheme> <Host> <path>".
-- Names resolve from the spec's hosts file, which the proxy reads itself
-- (egress.hosts_file: netns.hosts); the host namespace's resolver is
-- 127.0.0.1, where nothing answers. No packet goes anywhere else.
local env = require "spec.support.env"
local cjson = require "cjson"
local netns = require "spec.support.netns"
local daemon = require "spec.support.daemon"


-- In the sandbox: CONNECT to the proxy for argv[1]:443, then a TLS
-- handshake that names argv[2] (SNI), or, with argv[2] "-", plain bytes.
-- Prints what came back, or the error.
local tunnel = [[
import socket, ssl, sys
s = socket.create_connection(("127.0.0.1", 3128))
s.sendall(("CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n" % (sys.argv[1], sys.argv[1])).encode())
print(s.recv(100).decode().split("\r\n")[0])
try:
    if sys.argv[2] == "-":
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"); print("plain:", s.recv(100) or b"closed")
    else:
        ctx = ssl.create_default_context(cafile="ca.pem")
        ctx.check_hostname = False
        t = ctx.wrap_socket(s, server_hostname=sys.argv[2])
        t.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % sys.argv[1].encode()); print("tls:", t.recv(200))
except (OSError, ssl.SSLError) as e:
    print("failed")
]]

-- In the sandbox: one raw request to the proxy a line of stdin (Python
-- string escapes), each on a connection of its own; prints the first line
-- of each answer, or "closed".
local raw = [[
import socket, sys
for line in sys.stdin:
    s = socket.create_connection(("127.0.0.1", 3128))
    try:
        s.sendall(line.rstrip("\n").encode().decode("unicode_escape").encode("latin-1"))
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            b = s.recv(4096)
            if not b: break
            got += b
        print(got.decode(errors="replace").split("\r\n")[0] or "closed")
    except OSError as e:
        print("closed")
    s.close()
]]

local sh, wait_for, ledger = netns.sh, netns.wait_for, netns.ledger

describe("network by name (local)", function()
  if not env.is_root() then
    it("needs root to make network namespaces", function() pending("not root") end)
    return
  end
  env.check_leaks()

  local id, host, peer = netns.names("e")
  local dir = os.tmpname()
  local server_pid
  local ca, hosts_line

  setup(function()
    os.remove(dir)
    sh("mkdir " .. dir)
    ca = netns.test_ca(dir, { "allowed.esb.test", "other.esb.test", "private.esb.test" })
    hosts_line = netns.hosts(host, dir, {
      "127.0.0.1 localhost",
      "203.0.113.2 allowed.esb.test other.esb.test",
      "10.98.0.2 private.esb.test",
      "169.254.169.254 metadata.esb.test",
    })
    netns.make_pair(id, host, peer, { peer = { "addr add 10.98.0.2/32 dev lo", "addr add 169.254.169.254/32 dev lo" } })
    server_pid = sh(("ip netns exec %s python3 spec/support/egress_server.py %s %s/ready >/dev/null 2>&1 & echo $!")
      :format(peer, dir, dir)):match("%d+")
    assert(wait_for(dir .. "/ready"), "the test host's servers did not start")
  end)

  teardown(function()
    if server_pid then netns.stop(server_pid) end
    netns.remove(id, { host, peer }, host, dir) -- and checks that what this spec made is gone
  end)

  -- The script in bash in the sandbox, with ca.pem and tunnel.py in its
  -- working dir, run by the CLI in the host namespace.
  local function run(script, allow, policy_body)
    local policy = env.policy_file(hosts_line .. (policy_body or ""))
    local args = { "run", "--json", "--policy", policy }
    local request = { program = "bash", args = { "-c", script },
                      files = { ["ca.pem"] = ca, ["tunnel.py"] = tunnel, ["raw.py"] = raw },
                      limits = { network = { allow = allow } } }
    local out, err = env.cli_run(args, cjson.encode(request), "ip netns exec " .. host .. " ")
    if policy then os.remove(policy) end
    local ok, result = pcall(cjson.decode, out)
    assert(ok, "no JSON result: " .. out .. err)
    return result
  end

  -- What a failed run said: its stderr, its error.
  local function why(r)
    return r.stderr .. (r.error and r.error.message or "")
  end

  local curl = "curl -sS -m 10 --cacert ca.pem "

  -- The positive control: both ways out through the proxy, each in the
  -- ledger with the bytes it moved.
  -- The proxy parses the program's bytes in a process of its own: neither
  -- the CLI nor the daemon links OpenSSL or http-parser (a flaw there
  -- reaches the proxy's process, and no run pays for them at its start).
  -- Checked: against the build where the proxy ran on the engine's threads,
  -- both binaries defined SSL_CTX_new and http_parser_execute.
  it("is a program of its own: the CLI and the daemon link neither OpenSSL nor http-parser", function()
    local function links(binary, symbol)
      -- defined (static) or needed from a shared library (the sanitizers' build)
      local p = io.popen(("nm %s 2>/dev/null | grep -Ec ' [A-Za-z] %s(@.*)?$'"):format(env.quote(binary), symbol))
      local n = tonumber(p:read("a"))
      p:close()
      return (n or 0) > 0
    end
    for _, binary in ipairs { "echo-sandbox", "echo-sandbox-serve" } do
      assert.is_false(links(env.build .. "/" .. binary, "SSL_CTX_new"), binary)
      assert.is_false(links(env.build .. "/" .. binary, "http_parser_execute"), binary)
    end
    assert.is_true(links(env.build .. "/echo-sandbox-egress", "SSL_CTX_new"))
  end)

  -- The names come from the spec's hosts file, read by the proxy itself
  -- (egress.hosts_file), whatever the machine's /etc/hosts and
  -- /etc/nsswitch.conf (a minimal root has neither): this file passes in a
  -- mount namespace where both are gone. Checked: with resolve skipping
  -- the file (getaddrinfo alone), every name was unresolved.
  it("reaches a host on the list over HTTP and HTTPS (CONNECT), through the proxy the environment names", function()
    local r = run("echo $HTTPS_PROXY $http_proxy; " .. curl .. "http://allowed.esb.test/a; " ..
                  curl .. "https://allowed.esb.test/b", { "allowed.esb.test" })
    assert.are.equal("http://127.0.0.1:3128 http://127.0.0.1:3128\nhttp allowed.esb.test /a\n" ..
                     "https allowed.esb.test /b\n", r.stdout, why(r))
    assert.are.equal("allowed.esb.test:80 allowed\nallowed.esb.test:443 allowed", ledger(r))
    for _, e in ipairs(r.egress) do
      assert.truthy(e.allowed and e.bytes_out > 0 and e.bytes_in > 0, cjson.encode(e))
    end
    assert.are.equal(0, r.egress_left_off)
  end)

  -- Defence: the list (esb_egress_list_matches in judge_name). Checked:
  -- with judge_name letting every name through, this failed (and the
  -- port and deny spec below). And the sandbox has no resolver: the name
  -- cannot even be looked up, with the proxy or without.
  it("refuses a host not on the list, and its name does not resolve in the sandbox", function()
    local r = run(curl .. "http://other.esb.test/; " .. curl .. "https://other.esb.test/; " ..
                  "getent hosts other.esb.test || echo unresolved; " ..
                  curl .. "--noproxy '*' http://other.esb.test/ 2>&1 | sed 's/ after.*//'", { "allowed.esb.test" })
    assert.are.equal("echo-sandbox egress proxy: other.esb.test:80: not_listed\nunresolved\n" ..
                     "curl: (6) Could not resolve host: other.esb.test\n", r.stdout, why(r))
    assert.truthy(r.stderr:find("CONNECT tunnel failed, response 403", 1, true), r.stderr)
    assert.are.equal("other.esb.test:80 not_listed (refused)\nother.esb.test:443 not_listed (refused)", ledger(r))
  end)

  -- Defence: the proxy connects to public addresses only, whatever the
  -- name points to (address_public, on the addresses it resolved).
  -- Checked: with address_public always true, this failed (and so did
  -- the next: the metadata address answered).
  it("refuses a name on the list that resolves to a private or link-local (metadata) address", function()
    local r = run(curl .. "http://private.esb.test/; " .. curl .. "http://metadata.esb.test/; " ..
                  curl .. "https://private.esb.test/", { "*.esb.test" })
    assert.are.equal("echo-sandbox egress proxy: private.esb.test:80: blocked_address\n" ..
                     "echo-sandbox egress proxy: metadata.esb.test:80: blocked_address\n", r.stdout, why(r))
    assert.are.equal("private.esb.test:80 blocked_address (refused)\n" ..
                     "metadata.esb.test:80 blocked_address (refused)\n" ..
                     "private.esb.test:443 blocked_address (refused)", ledger(r))
  end)

  -- The operator's way to a private range (local_sandbox.network_allow,
  -- as for network: true): reached then, the metadata address still not.
  it("reaches a private range the policy allows", function()
    local r = run(curl .. "https://private.esb.test/p; " .. curl .. "http://metadata.esb.test/",
                  { "*.esb.test" }, 'policy.local_sandbox.network_allow = { "10.98.0.0/24" }')
    assert.are.equal("https private.esb.test /p\n" ..
                     "echo-sandbox egress proxy: metadata.esb.test:80: blocked_address\n", r.stdout, why(r))
  end)

  -- An address or a range on the list names the connections the program
  -- asks by address, never a name; a private address on it stays refused
  -- (address_public), and TLS to an address needs no server name.
  -- Checked: with judge_name refusing every host that is no name (as
  -- before addresses), the first two were not_listed; without
  -- check_hello's way for an address, the second was not_tls.
  it("reaches an address within a range on the list, and never a private one or a name", function()
    local r = run(curl .. "http://203.0.113.2/a; " .. curl .. "-k https://203.0.113.2/b; " ..
                  curl .. "http://10.98.0.2/; " .. curl .. "http://allowed.esb.test/; " ..
                  curl .. "http://[::ffff:203.0.113.2]/",
                  { "203.0.113.0/24", "10.98.0.0/24" }, "policy.egress.addresses = true")
    assert.are.equal("http 203.0.113.2 /a\nhttps 203.0.113.2 /b\n" ..
                     "echo-sandbox egress proxy: 10.98.0.2:80: blocked_address\n" ..
                     "echo-sandbox egress proxy: allowed.esb.test:80: not_listed\n" ..
                     "echo-sandbox egress proxy: ::ffff:203.0.113.2:80: blocked_address\n", r.stdout, why(r))
    assert.are.equal("203.0.113.2:80 allowed\n203.0.113.2:443 allowed\n10.98.0.2:80 blocked_address (refused)\n" ..
                     "allowed.esb.test:80 not_listed (refused)\n::ffff:203.0.113.2:80 blocked_address (refused)",
                     ledger(r))
  end)

  -- batch --events tells each attempt as the proxy decides it, while the
  -- run goes on, as the program's output is told: the program connects,
  -- then waits on a fifo the spec writes only once it read that attempt's
  -- event. Checked: with the proxy's verdicts read only at the run's end
  -- (no watch of its stdout), the spec read no event before the watchdog
  -- ended the batch.
  it("tells each attempt as an event while the run goes on (batch --events)", function()
    local gate = os.tmpname()
    os.remove(gate)
    sh(("mkdir -m 755 %s && mkfifo -m 666 %s/go %s/out"):format(gate, gate, gate))
    local policy = env.policy_file(hosts_line .. ([[
policy.local_sandbox.mounts[#policy.local_sandbox.mounts + 1] = { host = %q, path = "/gate", writable = true }]])
      :format(gate))
    finally(function()
      os.execute("rm -rf " .. gate)
      os.remove(policy)
    end)
    env.write_file(gate .. "/requests", cjson.encode {
      id = "e1", program = "bash", files = { ["ca.pem"] = ca },
      args = { "-c", curl .. "-o /dev/null http://allowed.esb.test/a; read x < /gate/go; " .. curl ..
                     "-o /dev/null http://other.esb.test/b; echo \"got $x\"" },
      limits = { network = { allow = { "allowed.esb.test" } } } } .. "\n")
    local wait = env.in_background(("ip netns exec %s timeout 60 %s %s batch --events --policy %s < %s/requests " ..
      "> %s/out 2>%s/err"):format(host, env.cli_prefix, env.quote(env.cli), policy, gate, gate, gate))
    local out = assert(io.open(gate .. "/out", "r"))
    local first = cjson.decode((assert(out:read("l"), "no event before the program went on")))
    assert.are.same({ id = "e1", line = 1, event = "egress", host = "allowed.esb.test", port = 80, allowed = true,
                      reason = "allowed" }, first)
    -- A writer waits for a reader: the program, still at its read.
    assert(os.execute(("timeout 20 sh -c 'echo on > %s/go'"):format(gate)), "the program was gone by then")
    local egress, result = {}, nil
    for line in out:lines() do
      local doc = cjson.decode(line)
      if doc.event == "egress" then egress[#egress + 1] = ("%s:%d %s"):format(doc.host, doc.port, doc.reason) end
      if not doc.event then result = doc end
    end
    out:close()
    assert.are.equal(0, wait(), env.read_file(gate .. "/err"))
    assert.are.same({ "other.esb.test:80 not_listed" }, egress)
    assert.truthy(result, "a result line after the events")
    assert.are.equal("got on\n", result.stdout, why(result))
    assert.are.equal("allowed.esb.test:80 allowed\nother.esb.test:80 not_listed (refused)", ledger(result))
  end)

  -- The daemon's ?stream=1 carries the same events, each line checked
  -- against doc/openapi.json's Event (spec/support/http_client.py).
  it("tells each attempt as an event in the daemon's stream, before the result line", function()
    local policy = env.policy_file(hosts_line)
    local d = daemon.start("--policy " .. env.quote(policy), nil, "ip netns exec " .. host)
    finally(function()
      daemon.stop(d)
      os.remove(policy)
    end)
    local body = cjson.encode { program = "bash", files = { ["ca.pem"] = ca },
      args = { "-c", curl .. "-o /dev/null http://allowed.esb.test/a; " .. curl .. "-o /dev/null https://other.esb.test/" },
      limits = { network = { allow = { "allowed.esb.test" } } } }
    local p = io.popen(("ip netns exec %s python3 spec/support/http_client.py request %s POST /v1/run?stream=1 %s")
      :format(host, env.quote(d.addr), env.quote(body)))
    local r = cjson.decode(p:read("a"))
    p:close()
    assert.are.same({}, r.schema_errors, r.body)
    local lines = {}
    for line in r.body:gmatch("[^\n]+") do
      local e = cjson.decode(line)
      if e.event ~= "output" then -- curl's word on the refusal
        lines[#lines + 1] = e.event == "egress" and ("%s:%d %s"):format(e.host, e.port, e.reason) or e.event
      end
    end
    assert.are.same({ "allowed.esb.test:80 allowed", "other.esb.test:443 not_listed", "result" }, lines)
  end)

  -- Defence: the sandbox's network namespace has loopback only; the proxy's
  -- socket is the one way out. Checked: with the sandbox left in the
  -- engine's network namespace, 203.0.113.2, 10.98.0.2 and 169.254.169.254
  -- were reached.
  it("reaches nothing by a connection that ignores the proxy", function()
    local r = run("for a in 203.0.113.2 10.98.0.2 169.254.169.254 203.0.113.1; do " ..
                  "(exec 3<>/dev/tcp/$a/80) 2>/dev/null && echo $a reached || echo $a unreachable; done",
                  { "allowed.esb.test" })
    assert.are.equal("203.0.113.2 unreachable\n10.98.0.2 unreachable\n169.254.169.254 unreachable\n" ..
                     "203.0.113.1 unreachable\n", r.stdout, why(r))
    assert.is_nil(r.egress, "no attempt went through the proxy")
  end)

  -- Defence: the ClientHello's server name must be the name CONNECT asked
  -- (check_hello), read before anything goes on to the host. Checked:
  -- with check_hello's verdict taken as ALLOWED, the mismatched tunnel
  -- read "tls: b'HTTP/1.0 200 OK..." from the test host, and the ledger
  -- called the plain bytes' tunnel allowed.
  it("refuses a tunnel whose TLS server name is not the name asked, or which is not TLS", function()
    local r = run("python3 tunnel.py allowed.esb.test other.esb.test; python3 tunnel.py allowed.esb.test -; " ..
                  "python3 tunnel.py allowed.esb.test allowed.esb.test | sed 's/OK.*/OK/'", { "allowed.esb.test" })
    assert.are.equal("HTTP/1.1 200 Connection established\nfailed\n" ..
                     "HTTP/1.1 200 Connection established\nplain: b'closed'\n" ..
                     "HTTP/1.1 200 Connection established\ntls: b'HTTP/1.0 200 OK\n", r.stdout, why(r))
    assert.are.equal("allowed.esb.test:443 sni_mismatch (refused)\nallowed.esb.test:443 not_tls (refused)\n" ..
                     "allowed.esb.test:443 allowed", ledger(r))
  end)

  -- Defence: a plain request's Host must name its URL's host (find_target).
  -- Checked: without the comparison, this failed.
  it("refuses a plain request whose Host header names another host", function()
    local r = run(curl .. "-H 'Host: other.esb.test' http://allowed.esb.test/", { "allowed.esb.test" })
    assert.are.equal("echo-sandbox egress proxy: allowed.esb.test:80: host_mismatch\n", r.stdout, why(r))
    assert.are.equal("allowed.esb.test:80 host_mismatch (refused)", ledger(r))
  end)

  -- What a hostile program may send the proxy: each answered (or closed)
  -- and in the ledger, and the proxy serves the next as before.
  it("answers malformed and tricky requests without letting them through", function()
    local requests = {
      "garbage\\r\\n\\r\\n",
      "GET http://allowed.esb.test/ HTTP/1.1\\r\\nX: " .. ("a"):rep(20000) .. "\\r\\n\\r\\n",
      "GET http://allowed.esb.test/ HTTP/1.1\\r\\nHost: allowed.esb.test\\r\\nHost: other.esb.test\\r\\n\\r\\n",
      "CONNECT 203.0.113.2:443 HTTP/1.1\\r\\n\\r\\n",
      "CONNECT [::1]:443 HTTP/1.1\\r\\n\\r\\n",
      "GET https://allowed.esb.test/ HTTP/1.1\\r\\nHost: allowed.esb.test\\r\\n\\r\\n",
      "GET http://allowed.esb.test.evil.example/ HTTP/1.1\\r\\n\\r\\n",
      "GET /origin HTTP/1.1\\r\\nHost: allowed.esb.test\\r\\nConnection: close\\r\\n\\r\\n",
    }
    local r = run("python3 raw.py <<'EOF'\n" .. table.concat(requests, "\n") .. "\nEOF", { "allowed.esb.test" })
    -- the head past 16 KiB: its answer, or a reset where the proxy closed on
    -- bytes it did not read
    local stdout = r.stdout:gsub("^(HTTP/1.1 400 Bad Request\n)closed\n", "%1HTTP/1.1 400 Bad Request\n")
    assert.are.equal("HTTP/1.1 400 Bad Request\nHTTP/1.1 400 Bad Request\nHTTP/1.1 400 Bad Request\n" ..
                     "HTTP/1.1 403 Forbidden\nHTTP/1.1 403 Forbidden\nHTTP/1.1 400 Bad Request\n" ..
                     "HTTP/1.1 403 Forbidden\nHTTP/1.0 200 OK\n", stdout, why(r))
    assert.are.equal(":0 bad_request (refused)\n:0 bad_request (refused)\n:0 bad_request (refused)\n" ..
                     "203.0.113.2:443 not_listed (refused)\n::1:443 not_listed (refused)\n" ..
                     ":0 bad_request (refused)\n" ..
                     "allowed.esb.test.evil.example:80 not_listed (refused)\nallowed.esb.test:80 allowed", ledger(r))
  end)

  -- The policy's lists: a port on an entry, the deny list.
  it("keeps to an entry's port and to the policy's deny list", function()
    local r = run(curl .. "http://allowed.esb.test/; " .. curl .. "https://allowed.esb.test/",
                  { "allowed.esb.test:443" })
    assert.are.equal("echo-sandbox egress proxy: allowed.esb.test:80: not_listed\nhttps allowed.esb.test /\n",
                     r.stdout, why(r))
    r = run(curl .. "http://allowed.esb.test/", { "*.esb.test" }, 'policy.egress.deny = { "allowed.esb.test" }')
    assert.are.equal("echo-sandbox egress proxy: allowed.esb.test:80: denied\n", r.stdout, why(r))
  end)
end)

describe("network by name: the request and the policy", function()
  local function explain(request, policy_body)
    local policy = env.policy_file(policy_body)
    local out, err, code = env.cli_run({ "policy", "explain", "--json", "--policy", policy }, cjson.encode(request))
    os.remove(policy)
    return code == 0 and cjson.decode(out) or nil, err
  end

  local function asking(allow) return { shell = "true", limits = { network = { allow = allow } } } end

  -- A request narrows the policy's list, never widens it. Checked: with
  -- egress_for taking every entry, "other.example.org" was planned.
  it("narrows the policy's list, never widens it, and explain shows both", function()
    local body = 'policy.egress.may_ask = { "*.pythonhosted.org", "pypi.org:443" }\n' ..
                 'policy.egress.always = { "mirror.example.org" }'
    local x, err = explain(asking { "files.pythonhosted.org", "pypi.org:443" }, body)
    assert.truthy(x, err)
    assert.are.same({ "files.pythonhosted.org", "pypi.org:443", "mirror.example.org" }, x.egress.allow)
    assert.are.same({ "files.pythonhosted.org", "pypi.org:443" }, x.egress.asked)
    assert.is_false(x.limits.network)
    for _, wider in ipairs { "pypi.org", "pythonhosted.org", "other.example.org" } do
      x, err = explain(asking { "pypi.org:443", wider }, body)
      assert.is_nil(x, wider)
      local want = ('limits.network.allow[2] ("%s") is not within the policy\'s list'):format(wider)
      assert.truthy(err:find(want, 1, true), err)
    end
  end)

  it("is the CLI's --allow-host, repeatable, not with --network", function()
    local out, err = env.cli_run { "policy", "explain", "--json", "--allow-host", "pypi.org", "--allow-host",
                                   "*.pythonhosted.org:443", "--", "true" }
    local ok, x = pcall(cjson.decode, out)
    assert.truthy(ok, out .. err)
    assert.are.same({ "pypi.org", "*.pythonhosted.org:443" }, x.egress.allow)
    local _, err2, code = env.cli_run { "run", "--allow-host", "pypi.org", "--network", "--", "true" }
    assert.are.equal(125, code)
    assert.truthy(err2:find("give --network (the whole network) or --allow-host (these hosts), not both", 1, true),
                  err2)
  end)

  -- Refused, not dropped: a run there would have no network at all.
  -- Checked: without the refusal in esb_policy_session, the session was
  -- made; without plan_reader's, the k8s plan was explained.
  -- (On k8s with the policy's egress.k8s: spec/egress_k8s_spec.lua.)
  it("is refused on k8s without egress.k8s, and in a session, for now", function()
    local _, err = explain({ shell = "true", backend = "k8s", limits = { network = { allow = { "pypi.org" } } } })
    assert.truthy(err:find("on the k8s backend the network by name needs the policy's egress.k8s", 1, true), err)
    -- and whatever a policy plans (the engine's check: plan_reader.c)
    _, err = explain({ shell = "true", limits = { network = { allow = { "pypi.org" } } } },
                     'policy.backend = "k8s"\nfunction policy:egress_for() return { allow = { "pypi.org" } } end\n' ..
                     'local plan = policy.plan\nfunction policy:plan(req)\n' ..
                     '  local p, e = plan(self, { shell = req.shell, backend = "k8s" })\n' ..
                     '  if p then p.egress = { allow = { "pypi.org" } } end\n  return p, e\nend')
    assert.truthy(err:find("the plan has egress and backend k8s but no egress.k8s", 1, true), err)
    -- through the Lua module, in a directory of sessions of its own; a
    -- session made all the same is deleted at once
    local dir = assert(io.popen("mktemp -d")):read("l")
    local script = os.tmpname()
    env.write_file(script, ("package.cpath = %q\n"):format(package.cpath) .. [[
local sbx = require "echo_sandbox"
local id, err = sbx.session_create { limits = { network = { allow = { "pypi.org" } } } }
if id then sbx.session_delete(id) end
print(id, err)
]])
    local p = io.popen(("ECHO_SANDBOX_SESSION_DIR=%s %s %s 2>&1"):format(dir, env.module_lua, script))
    local out = p:read("a")
    local ok = p:close()
    os.remove(script)
    assert(os.execute("rmdir " .. dir))
    assert.truthy(ok, out)
    assert.truthy(out:find("^nil\t.*a session has no network by name yet"), out)
  end)

  it("refuses an entry that is no host name, address or range, naming it", function()
    local _, err = explain(asking { "pypi.org", "pypi..org" })
    assert.truthy(err:find([['limits.network.allow[2]' ("pypi..org") must be a host name]], 1, true), err)
    _, err = explain(asking { "pypi.org", "::1" })
    assert.truthy(err:find([[("::1") must be a host name, "*." and a host name, an address or a range, any of ]] ..
                           [[them with ":PORT" (an IPv6 address goes in '[...]')]], 1, true), err)
    local policy = env.policy_file('policy.egress.always = { "10.0.0.0/33" }')
    local out, err2 = env.cli_run({ "run", "--json", "--policy", policy }, cjson.encode(asking { "pypi.org" }))
    os.remove(policy)
    assert.truthy(cjson.decode(out).error.message:find([['egress.allow[2]' ("10.0.0.0/33") must be a host name]], 1,
                                                        true), out .. err2)
  end)

  -- Defence: a request names an address or a range only where the policy
  -- says so (egress_for, egress.addresses). Checked: without that check,
  -- the default policy planned the run.
  it("refuses an address or a range in a request unless the policy lets requests name them", function()
    local _, err = explain(asking { "pypi.org", "203.0.113.0/24" })
    assert.truthy(err:find([[limits.network.allow[2] ("203.0.113.0/24") is an address or a range, which this ]] ..
                           [[policy does not let a request name (egress.addresses)]], 1, true), err)
  end)

end)
