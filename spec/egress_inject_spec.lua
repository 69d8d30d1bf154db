-- Credentials added outside the sandbox (backend/egress_inject.h): for a
-- host the policy's egress.inject names, the egress proxy puts a header
-- with a secret's value on the program's requests, plain or TLS (which it
-- terminates with the run's own CA and re-originates, verified, to the
-- host), and the value is nowhere the program, the result, the logs or the
-- metrics can read.
--
-- The test hosts as in egress_local_spec.lua: namespaces this spec makes,
-- the engine's ("host") and the test host's ("peer", 203.0.113.2), whose
-- servers (spec/support/egress_server.py: HTTP on 80, HTTPS on 443 with a
-- certificate of a CA this spec makes, for allowed.esb.test and
-- other.esb.test) answer "<scheme> <Host> <path> auth=[...]": each
-- Authorization header they got, "secret" where it is the secret's value
-- (so that the value itself never comes back to the program).
-- wrong.esb.test points at them too, a name their certificate does not
-- carry.
local env = require "spec.support.env"
local cjson = require "cjson"
local daemon = require "spec.support.daemon"
local netns = require "spec.support.netns"


local sh, wait_for, ledger = netns.sh, netns.wait_for, netns.ledger

describe("network by name: credentials injected outside the sandbox (local)", function()
  if not env.is_root() then
    it("needs root to make network namespaces", function() pending("not root") end)
    return
  end
  env.check_leaks()

  local id, host, peer = netns.names("i")
  local dir = os.tmpname()
  local server_pid, ca, hosts_line
  -- the secret's value: letters only, so that the sandbox can look for it
  -- by its ROT13 form without carrying it
  local secret, rot13 = netns.secret("esbsecret")

  setup(function()
    os.remove(dir)
    sh("mkdir -m 0700 " .. dir)
    ca = netns.test_ca(dir, { "allowed.esb.test", "other.esb.test" })
    env.write_file(dir .. "/secret", secret .. "\n")
    sh("chmod 0600 " .. dir .. "/secret")
    hosts_line = netns.hosts(host, dir, { "127.0.0.1 localhost",
                                          "203.0.113.2 allowed.esb.test other.esb.test wrong.esb.test" })
    netns.make_pair(id, host, peer)
    server_pid = sh(("ip netns exec %s python3 spec/support/egress_server.py %s %s/ready %s/secret >/dev/null 2>&1 " ..
                     "& echo $!"):format(peer, dir, dir, dir)):match("%d+")
    assert(wait_for(dir .. "/ready"), "the test host's servers did not start")
  end)

  teardown(function()
    if server_pid then netns.stop(server_pid) end
    netns.remove(id, { host, peer }, host, dir)
  end)

  -- The policy: allowed.esb.test and wrong.esb.test get the secret; the
  -- upstream trust store is this spec's CA unless upstream is given ("":
  -- the host's own store).
  local function policy_body(upstream, extra)
    return hosts_line .. ([[
policy.egress.inject = { ["allowed.esb.test"] = { header = "Authorization", secret = "token" },
                         ["wrong.esb.test"] = { header = "Authorization", secret = "token" } }
policy.egress.secrets = { token = %q }
policy.egress.upstream_ca = %s
]]):format(dir .. "/secret", upstream == "" and "nil" or ("%q"):format(upstream or dir .. "/ca.pem")) .. (extra or "")
  end

  local function request(script)
    return { program = "bash", args = { "-c", script }, files = { ["ca.pem"] = ca },
             limits = { network = { allow = { "*.esb.test" } } } }
  end

  -- The script in the sandbox, run by the CLI in the host namespace: the
  -- result, and the CLI's stderr.
  local function run(script, body)
    local policy = env.policy_file(body or policy_body())
    local out, err = env.cli_run({ "run", "--json", "--policy", policy }, cjson.encode(request(script)),
                                 "ip netns exec " .. host .. " ")
    os.remove(policy)
    local ok, result = pcall(cjson.decode, out)
    assert(ok, "no JSON result: " .. out .. err)
    return result, err, out
  end

  local function why(r) return r.stderr .. (r.error and r.error.message or "") end

  local curl = "curl -sS -m 10 "

  -- Defence: the program's own header of that name is dropped before the
  -- secret's is added (inject_head). Checked: with every header kept, the
  -- server saw "auth=[program-token,secret]" on both.
  it("adds the header to plain and TLS requests to the host, replacing the program's own", function()
    local r, err, out = run(curl .. "http://allowed.esb.test/a; " ..
                            curl .. "-H 'authorization: program-token' http://allowed.esb.test/b; " ..
                            curl .. "https://allowed.esb.test/c; " ..
                            curl .. "-H 'Authorization: program-token' https://allowed.esb.test/d; " ..
                            "python3 -c 'import urllib.request as u; " ..
                            "print(u.urlopen(\"https://allowed.esb.test/e\").read().decode(), end=\"\")'")
    assert.are.equal("http allowed.esb.test /a auth=[secret]\nhttp allowed.esb.test /b auth=[secret]\n" ..
                     "https allowed.esb.test /c auth=[secret]\nhttps allowed.esb.test /d auth=[secret]\n" ..
                     "https allowed.esb.test /e auth=[secret]\n", r.stdout, why(r))
    assert.are.equal("allowed.esb.test:80 allowed\nallowed.esb.test:80 allowed\nallowed.esb.test:443 allowed\n" ..
                     "allowed.esb.test:443 allowed\nallowed.esb.test:443 allowed", ledger(r))
    assert.is_nil(out:find(secret, 1, true), "the result carries the secret")
    assert.is_nil(err:find(secret, 1, true), "the engine's stderr carries the secret")
  end)

  -- Defence: the secret is the proxy's process's memory only; the engine
  -- and the sandbox get the CA's certificate, never more. Checked: with
  -- echo-sandbox-egress sending the secret's value in place of the
  -- certificate (say_prepared), this read "files:
  -- /work/.echo-sandbox-egress-bundle.pem /work/.echo-sandbox-egress-ca.pem".
  it("keeps the secret out of the sandbox's files and environment, the result, the log and the metrics", function()
    local policy = env.policy_file(policy_body())
    local d = daemon.start("--policy " .. env.quote(policy), "unix", "ip netns exec " .. host .. " ")
    local script = curl .. "https://allowed.esb.test/f; needle=$(printf %s '" .. rot13 ..
                   "' | tr 'A-Za-z' 'N-ZA-Mn-za-m'); echo \"files: $(grep -rlsF -D skip --exclude-dir=proc " ..
                   "--exclude-dir=usr --exclude-dir=sys -e \"$needle\" / | head -5 | tr '\\n' ' ')\"; " ..
                   "echo \"env: $(env | grep -cF -e \"$needle\")\"; cat /proc/self/environ | tr '\\0' '\\n' | " ..
                   "grep -c SSL_CERT_FILE"
    local status, r = daemon.request(d, "POST", "/v1/run", cjson.encode(request(script)))
    local _, metrics = daemon.request(d, "GET", "/metrics")
    daemon.stop(d) -- and its log, read first:
    os.remove(policy)
    assert.are.equal(200, status, cjson.encode(r))
    assert.are.equal("https allowed.esb.test /f auth=[secret]\nfiles: \nenv: 0\n1\n", r.stdout, why(r))
    assert.is_nil(cjson.encode(r):find(secret, 1, true), "the result carries the secret")
    assert.is_nil(metrics:find(secret, 1, true), "the metrics carry the secret")
    assert.truthy(metrics:find('echo_sandbox_egress_total{reason="allowed"} 1', 1, true), metrics)
  end)

  -- Defence: only the hosts inject names are terminated
  -- (esb_egress_injector_rule); the others stay a blind tunnel. Checked:
  -- with every host taken for the first rule's, other.esb.test showed a
  -- certificate of the run's CA, which curl with the test CA alone refused
  -- ("refused 60" first).
  it("leaves a host inject does not name a blind tunnel: the program sees the host's own certificate", function()
    -- curl's 60: the peer's certificate is not one the CA file vouches for
    local r = run(curl .. "--cacert ca.pem https://other.esb.test/g; " ..
                  curl .. "https://other.esb.test/h 2>/dev/null || echo refused $?; " ..
                  curl .. "--cacert ca.pem https://allowed.esb.test/i 2>/dev/null || echo refused $?")
    assert.are.equal("https other.esb.test /g auth=[]\nrefused 60\nrefused 60\n", r.stdout, why(r))
    assert.are.equal("other.esb.test:443 allowed\nother.esb.test:443 allowed\nallowed.esb.test:443 not_tls (refused)",
                     ledger(r))
  end)

  -- Defence: the proxy's TLS to the host verifies the chain (SSL_VERIFY_PEER
  -- against upstream_ca or the host's store) and the name (SSL_set1_host).
  -- Checked: with SSL_VERIFY_NONE, both requests below reached the test
  -- host with the secret ("https allowed.esb.test /j auth=[secret]"); without
  -- SSL_set1_host, wrong.esb.test did.
  it("refuses a host whose certificate the trust store does not accept, and the ledger says why", function()
    local r = run(curl .. "https://allowed.esb.test/j", policy_body(""))
    assert.are.equal("echo-sandbox egress proxy: allowed.esb.test:443: upstream_unverified\n", r.stdout, why(r))
    assert.are.equal("allowed.esb.test:443 upstream_unverified (refused)", ledger(r))
    r = run(curl .. "https://wrong.esb.test/k")
    assert.are.equal("echo-sandbox egress proxy: wrong.esb.test:443: upstream_unverified\n", r.stdout, why(r))
    assert.are.equal("wrong.esb.test:443 upstream_unverified (refused)", ledger(r))
  end)

  -- Defence: the terminated TLS answers only the name CONNECT asked
  -- (on_servername): a ClientHello naming another host, or none, gets no
  -- certificate and no header. Checked: with any name taken, the first
  -- two handshakes completed ("handshake" three times).
  it("terminates TLS only for the name CONNECT asked", function()
    local s_client = "openssl s_client -proxy 127.0.0.1:3128 -connect allowed.esb.test:443 -CAfile " ..
                     ".echo-sandbox-egress-ca.pem -verify_return_error </dev/null >/dev/null 2>&1 "
    local r = run(s_client .. "-servername other.esb.test && echo handshake || echo refused; " ..
                  s_client .. "-noservername && echo handshake || echo refused; " ..
                  s_client .. "-servername allowed.esb.test && echo handshake || echo refused")
    assert.are.equal("refused\nrefused\nhandshake\n", r.stdout, why(r))
    assert.are.equal("allowed.esb.test:443 sni_mismatch (refused)\nallowed.esb.test:443 not_tls (refused)\n" ..
                     "allowed.esb.test:443 bad_request (refused)", ledger(r))
  end)

  it("is in policy explain: each host, its header and the secret's name, never the value", function()
    local policy = env.policy_file(policy_body())
    local out, err = env.cli_run({ "policy", "explain", "--json", "--policy", policy }, cjson.encode(request("true")))
    local text = env.cli_run({ "policy", "explain", "--policy", policy }, cjson.encode(request("true")))
    os.remove(policy)
    local ok, x = pcall(cjson.decode, out)
    assert(ok, out .. err)
    assert.are.same({ header = "Authorization", secret = "token" }, x.egress.inject["allowed.esb.test"])
    assert.truthy(text:find("injected: allowed.esb.test gets Authorization from secret token", 1, true), text)
    assert.is_nil((out .. text):find(secret, 1, true), "explain shows the secret")
  end)

  it("refuses a policy whose inject is not well formed, naming what is wrong, and never shows the value", function()
    local cases = {
      { 'policy.egress.inject = { ["*.esb.test"] = { header = "Authorization", secret = "token" } }',
        [['egress.inject["*.esb.test"]' must be keyed by a host name]] },
      { 'policy.egress.inject["allowed.esb.test"].secret = "nope"', "egress.inject.[\"allowed.esb.test\"].secret" },
      { 'policy.egress.inject["allowed.esb.test"].header = "Host"', "egress.inject.[\"allowed.esb.test\"].header" },
      { 'policy.egress.secrets = { token = "relative" }', "must name a secret's absolute file path" },
      { 'policy.egress.secrets = { token = "' .. dir .. '/none" }', "egress.secrets.token: " .. dir .. "/none" },
    }
    for _, c in ipairs(cases) do
      local r, err, out = run("true", policy_body(nil, c[1]))
      assert.truthy(r.error and r.error.message:find(c[2], 1, true), c[1] .. ": " .. out .. err)
    end
  end)
end)
