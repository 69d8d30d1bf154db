-- Warm pods (doc/warm-pods.md, src/backend/k8s_warm.h) against the fake API
-- server: `pool run` makes the pods of the policy's k8s.warm_pools, a run
-- whose pod has a pool's shape claims one by a label change under its
-- resourceVersion (the engine's own API request, or kubectl's) and runs in
-- it through kubectl exec, and the pod is
-- deleted after; no pod to claim, and the run makes its own (cold).
-- With the newest kubectl of the matrix alone: traced on 1.30 and 1.35
-- (ESB_FAKE_TRACE, spec/support/kubectl_traces.py, the warm pods' random
-- names made one), the requests of warm runs and of the pools' upkeep are
-- the same on both, kubectl's claims and execs among them; what differs is
-- the wait of a run that went cold (kubectl run --attach), which
-- spec/k8s_spec.lua shows on the matrix, and the body of doctor's access
-- reviews (JSON or protobuf), whose answer (kubectl auth can-i's word) the
-- engine reads alike (spec/k8s_ops_spec.lua: the newest too).
local env = require "spec.support.env"
local fake = require "spec.support.fake_kube"
local daemon = require "spec.support.daemon"
local cjson = require "cjson"

-- A policy of the spec's own with pools (Lua of policy:warm_pool entries),
-- written in the server's dir; its path. The claim grace is long: a claim
-- that goes cold here does so because no pod is claimable, never by time.
local function write_policy(server, name, pools, before)
  local path = ("%s/%s.lua"):format(server.dir, name)
  env.write_policy(path, (before or "") .. "\npolicy.k8s.warm_pools = {" .. pools .. "}\n")
  return path
end

local function shell_pool(size)
  return ("policy:warm_pool { name = 'shell', size = %d, max_age_s = 600, claim_grace_ms = 60000 },"):format(size)
end

local function python_pool(size)
  return ("policy:warm_pool { name = 'python', like = { language = 'python' }, size = %d, max_age_s = 600, "
          .. "claim_grace_ms = 60000 },"):format(size)
end

local function cli(server, args, stdin, prefix)
  return env.cli_run(args, stdin, server.env .. (prefix or ""))
end

-- One run, its request JSON in, its result out.
local function run(server, policy, request, prefix)
  request.backend = "k8s"
  local out, err = cli(server, { "run", "--json", "--policy", policy }, cjson.encode(request), prefix)
  local ok, r = pcall(cjson.decode, out)
  assert(ok, "no JSON result: " .. out .. err)
  return r
end

local function warm_pods(server, pool)
  local out = {}
  for _, p in ipairs(fake.pods(server)) do
    if p.metadata.labels["echo-sandbox.io/warm-pool"] == pool then out[#out + 1] = p end
  end
  return out
end

-- Waits (an interlock on the fake's state, bounded for a failing engine)
-- until pool has n pods, all Running and ready; returns them.
local function wait_ready(server, pool, n)
  local pods
  for _ = 1, 400 do
    pods = warm_pods(server, pool)
    local ready = 0
    for _, p in ipairs(pods) do
      if p.status.phase == "Running" and p.metadata.labels["echo-sandbox.io/warm-state"] == "ready" then
        ready = ready + 1
      end
    end
    if ready == n and #pods == n then return pods end
    env.sleep(0.05)
  end
  error(("pool %s: %d pods, not %d ready"):format(pool, #pods, n))
end

-- `pool run --once`, then its pods up.
local function fill(server, policy, pool, n)
  local out, err, code = cli(server, { "pool", "run", "--once", "--policy", policy })
  assert.are.equal(0, code, out .. err)
  return wait_ready(server, pool, n)
end

-- Waits until no pod named name is left (the run's delete does not wait).
local function wait_gone(server, name)
  for _ = 1, 400 do
    local left = false
    for _, p in ipairs(fake.pods(server)) do left = left or p.metadata.name == name end
    if not left then return end
    env.sleep(0.05)
  end
  error("pod " .. name .. " is still there")
end

-- The fake's requests whose path has what in it, as "METHOD path code".
local function requests(server, what)
  local out = {}
  for _, e in ipairs(fake.request_log(server)) do
    if e.method and e.path:find(what, 1, true) then
      out[#out + 1] = ("%s %s %s"):format(e.method, e.path, e.code and ("%d"):format(e.code) or "-")
    end
  end
  return out
end

-- Who makes a warm run's list, claim and delete: the engine's own API
-- client (src/backend/kube_api.h; its requests' User-Agent is
-- echo-sandbox), or kubectl (ECHO_SANDBOX_K8S_API=kubectl, as where the
-- kubeconfig is one the client leaves to kubectl).
local clients = {
  { name = "the engine's API client", prefix = "", agent = "^echo%-sandbox" },
  { name = "kubectl", prefix = " ECHO_SANDBOX_K8S_API=kubectl", agent = "^kubectl/" },
}

-- The fake's requests after the mark named mark.
local function requests_since(server, mark)
  local out, after = {}, false
  for _, e in ipairs(fake.request_log(server)) do
    if e.mark == mark then after = true elseif after and e.method then out[#out + 1] = e end
  end
  return out
end

-- Waits (an interlock on the fake's log, bounded for a failing engine)
-- until n claims (PATCH of a pod) have arrived after the mark since.
local function wait_claims(server, since, n)
  local seen = 0
  for _ = 1, 600 do
    seen = 0
    for _, e in ipairs(requests_since(server, since)) do
      if e.method == "PATCH" then seen = seen + 1 end
    end
    if seen >= n then return end
    env.sleep(0.05)
  end
  error(("%d claims came, not %d"):format(seen, n))
end

-- A run in the background, its request JSON in; a function that waits for
-- it and returns its result.
local function run_in_background(server, policy, request, prefix, name)
  request.backend = "k8s"
  local out = ("%s/result.%s"):format(server.dir, name)
  env.write_file(out .. ".in", cjson.encode(request))
  local wait = env.in_background(("%s %s %s run --json --policy %s <%s >%s 2>&1"):format(server.env .. prefix,
    env.cli_prefix, env.quote(env.cli), env.quote(policy), env.quote(out .. ".in"), env.quote(out)))
  return function()
    wait()
    local text = env.read_file(out)
    local ok, r = pcall(cjson.decode, text)
    assert(ok, "no JSON result: " .. text)
    return r
  end
end

-- A pool of one, filled, and a run that takes its pod (asserted), the pod
-- gone after; the fake's requests from the run on.
local function one_warm_run(server)
  local policy = write_policy(server, "p", shell_pool(1))
  local pod = fill(server, policy, "shell", 1)[1].metadata.name
  fake.mark(server, "run")
  local r = run(server, policy, { shell = "echo hi" })
  assert.is_true(r.warm, cjson.encode(r))
  assert.are.equal("hi\n", r.stdout, cjson.encode(r))
  wait_gone(server, pod)
  return requests_since(server, "run")
end

-- What of a result must be the same warm or cold: the pod's own name
-- (HOSTNAME) and the fake's working dir of the pod (PWD) differ, and the
-- fake marks an exec'd process (ESB_FAKE_*).
local function comparable(r)
  local out = r.stdout:gsub("HOSTNAME=[^\n]*\n", ""):gsub("PWD=[^\n]*\n", ""):gsub("ESB_FAKE_[^\n]*\n", "")
    :gsub("/[^\n]*/esb%-fake%-pod%.[%w_]+", "WORKDIR")
  return { exit_code = r.exit_code, status = r.status, stdout = out, stderr = r.stderr, files = r.files }
end

-- A CA of the spec's own in dir (ca.crt), and what it signed: the fake's
-- certificate for 127.0.0.1 (server.crt, server.key) and a client's
-- (client.crt, client.key).
local function make_certs(dir)
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  local sh = ("set -e; cd %s; "
    .. "openssl req -x509 %s -keyout ca.key -out ca.crt -days 1 -subj /CN=esb-spec-ca; "
    .. "for who in server client; do openssl req %s -keyout $who.key -out $who.csr -subj /CN=esb-spec-$who; done; "
    .. "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext; "
    .. "printf 'extendedKeyUsage=clientAuth\\n' > client.ext; "
    .. "for who in server client; do openssl x509 -req -in $who.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
    .. "-out $who.crt -days 1 -extfile $who.ext; done) >/dev/null 2>&1"):format(env.quote(dir), ec, ec)
  assert(os.execute("(" .. sh), "openssl could not make the spec's certificates")
end

-- The fake's kubeconfig made one for its HTTPS port: its CA, the client's
-- certificate and key, all as data; tls_server_name where given.
local function tls_kubeconfig(server, certs, tls_server_name)
  local port = env.read_file(server.dir .. "/port.tls"):match("%d+")
  local function data(name) return env.base64(env.read_file(certs .. "/" .. name)) end
  local text, clusters = env.read_file(server.kubeconfig):gsub('cluster: {server: "http://127.0.0.1:%d+"}',
    ('cluster: {server: "https://127.0.0.1:%s", certificate-authority-data: %s%s}'):format(port, data("ca.crt"),
      tls_server_name and (", tls-server-name: " .. tls_server_name) or ""))
  local users
  text, users = text:gsub("user: {token: fake}", ("user: {client-certificate-data: %s, client-key-data: %s}")
    :format(data("client.crt"), data("client.key")))
  assert(clusters == 1 and users == 1, "the fake's kubeconfig is not as this spec knows it")
  env.write_file(server.kubeconfig, text)
end

env.with_newest_kubectl(function(minor)
  describe(("k8s warm pods, kubectl 1.%d"):format(minor), function()
    env.check_leaks() -- outer: after the server has stopped
    -- Checked: with a 401 taken as any failure (no kubectl after it), the
    -- list failed, the run went cold, and this failed on warm.
    describe("on a fake API server that refuses the client's credentials", function()
      local fixture = fake.per_spec(minor, "--request-log --unauthorized-agent echo-sandbox")
      it("goes back to kubectl at a 401, the request made again by it", function()
        local made = {}
        for _, e in ipairs(one_warm_run(fixture.server)) do
          if not e.path:find("/exec$") and not (e.method == "GET" and e.path:find("/pods/")) then
            made[#made + 1] = ("%s %s %d"):format(e.method, e.agent:match("^[%w-]+"), e.code)
          end
        end
        -- The list again by kubectl, its claim and the delete; on a loaded
        -- machine kubectl once listed the pods twice more on its way (CI),
        -- so what lies between the claim and the delete is only kubectl's.
        assert.are.same({ "GET echo-sandbox 401", "GET kubectl 200", "PATCH kubectl 200" },
                        { made[1], made[2], made[3] }, table.concat(made, "; "))
        assert.are.equal("DELETE kubectl 200", made[#made], table.concat(made, "; "))
        for i = 4, #made - 1 do assert.are.equal("GET kubectl 200", made[i], table.concat(made, "; ")) end
      end)
    end)

    -- The API client over TLS: the fake serves HTTPS too, with a
    -- certificate of the spec's CA, and requires a client certificate of
    -- it (kubectl's pool run and exec meet it as the client's requests do).
    -- Checked: with the client's CA taken from the system's roots instead
    -- of the kubeconfig, the list failed its handshake, the run went cold,
    -- and the first failed on warm; with the host name not verified, the
    -- second's list went through, and no warning named the certificate.
    describe("on a fake API server over TLS", function()
      local server, certs
      before_each(function()
        certs = os.tmpname()
        os.remove(certs)
        assert(os.execute("mkdir " .. certs))
        make_certs(certs)
        server = fake.start(minor, ("--request-log --tls %s %s --tls-client-ca %s")
          :format(env.quote(certs .. "/server.crt"), env.quote(certs .. "/server.key"), env.quote(certs .. "/ca.crt")))
      end)
      after_each(function()
        local left = fake.pods(server)
        fake.stop(server)
        os.execute("rm -rf " .. env.quote(certs))
        assert.are.same({}, left)
      end)

      it("claims and deletes a warm pod with the client's own requests, the server's certificate verified", function()
        tls_kubeconfig(server, certs)
        local agents = {}
        for _, e in ipairs(one_warm_run(server)) do
          if e.method ~= "GET" or not e.path:find("/exec$") then agents[e.agent:match("^[%w-]+")] = true end
        end
        assert.is_true(agents["echo-sandbox"], cjson.encode(agents))
      end)

      it("refuses a server whose certificate is not for the kubeconfig's tls-server-name", function()
        tls_kubeconfig(server, certs, "elsewhere.example")
        local policy = write_policy(server, "p", shell_pool(1))
        fake.mark(server, "run")
        -- kubectl's cold create meets the same name, and tries again until the deadline
        local r = run(server, policy, { shell = "echo hi", timeout_ms = 4000 })
        assert.is_false(r.warm, cjson.encode(r))
        assert.matches("the list failed: Unable to connect to the server: the TLS handshake with the API server: "
                       .. "certificate verify failed", table.concat(r.warnings or {}, "\n"), 1, true)
        assert.are.same({}, requests_since(server, "run")) -- neither the client nor kubectl sent a request
      end)
    end)

    describe("on a fake API server", function()
      local fixture = fake.per_spec(minor, "--request-log --delete-at-exec-output DELETE-ME")
      local server
      before_each(function() server = fixture.server end)

      -- The list, the claim and the delete are told apart from kubectl's by
      -- their User-Agent, which the fake logs.
      for _, client in ipairs(clients) do
      it("takes a warm pod of the request's shape and deletes it after the run; with none, makes a pod ("
         .. client.name .. ")", function()
        local policy = write_policy(server, "p", shell_pool(1))
        local pod = fill(server, policy, "shell", 1)[1].metadata.name
        fake.mark(server, "run")
        local r = run(server, policy, { shell = "echo hi" }, client.prefix)
        assert.are.equal(0, r.exit_code, cjson.encode(r))
        assert.are.equal("hi\n", r.stdout)
        assert.is_true(r.warm)
        assert.are.equal(pod, r.pod)
        wait_gone(server, pod)
        -- claimed under the resourceVersion the list gave, then exec, then deleted
        assert.are.equal(1, #requests(server, "/pods/" .. pod .. "/exec"))
        local patched = {}
        for _, line in ipairs(requests(server, "/pods/" .. pod)) do
          patched[#patched + 1] = line:match("^PATCH .* (%d+)$")
        end
        assert.are.same({ "200" }, patched)
        -- the list, the claim, the exec (over WebSocket, by
        -- echo-sandbox-kube: no kubectl runs for a warm run) and the delete:
        -- all the client's, or all kubectl's.
        -- Checked: with the exec left to kubectl exec, this failed on its
        -- agent (kubectl/1.x, not echo-sandbox).
        -- Not the pod watch's list (managed-by, not the pool's label): it
        -- starts a second into a run, which under ASan in CI lasted longer.
        local made = {}
        for _, e in ipairs(requests_since(server, "run")) do
          local watch = (e.query or ""):find("managed%-by")
          local what = e.path:find("/exec$") and "exec"
                       or e.method == "GET" and e.path:find("/pods$") and not watch and "list"
                       or e.method == "PATCH" and "claim" or e.method == "DELETE" and "delete" or nil
          if what then
            made[#made + 1] = what
            assert.matches(client.agent, e.agent, 1, false, what)
          end
        end
        assert.are.same({ "list", "claim", "exec", "delete" }, made)
        r = run(server, policy, { shell = "echo hi" }, client.prefix)
        assert.are.equal("hi\n", r.stdout, cjson.encode(r))
        assert.is_false(r.warm)
        assert.are_not.equal(pod, r.pod)
      end)
      end

      -- Checked: without the request's env in the exec's wrapper (the
      -- warm pod was made before the request and has none of it), the
      -- warm run's env lacked X, LANG and TMPDIR, and these differed.
      it("gives the program env, files, code and stdin in a warm pod exactly as in a cold one", function()
        local policy = write_policy(server, "p", shell_pool(1) .. python_pool(1))
        local requests_ = {
          { shell = "env | sort; pwd; cat; cat in/f.txt; echo out > o.txt; exit 3", env = { X = "x y" },
            stdin = "from stdin\n", files = { ["in/f.txt"] = "a file\n" }, collect = { "*.txt" } },
          { language = "python", env = { X = "x" }, stdin = "s", files = { ["f.txt"] = "f" },
            code = "import os, sys; print(os.environ['X'], sys.stdin.read(), open('f.txt').read()); "
                   .. "sys.stderr.write('e\\n')" },
        }
        for i, req in ipairs(requests_) do
          fill(server, policy, i == 1 and "shell" or "python", 1)
          local warm = run(server, policy, req)
          assert.is_true(warm.warm, cjson.encode(warm))
          wait_gone(server, warm.pod)
          local cold = run(server, policy, req)
          assert.is_false(cold.warm, cjson.encode(cold))
          assert.are.same(comparable(cold), comparable(warm))
        end
        cli(server, { "cleanup", "--all", "--policy", policy }) -- the pools' pods: pool run fills both
      end)

      -- Checked: with the resourceVersion left out of the claim's patch,
      -- both engines' claims went through, both ran in the one pod, and this
      -- failed on two warm results (each client).
      for _, client in ipairs(clients) do
      it("gives a pool's one pod to one of two engines claiming at once; the other makes its own ("
         .. client.name .. ")", function()
        local policy = write_policy(server, "p", shell_pool(1))
        local pod = fill(server, policy, "shell", 1)[1].metadata.name
        -- both claims are held at the API server until both have come
        fake.mark(server, "claims")
        fake.query(server, "/_fake/hold-patches/1", "{}")
        local waits = {}
        for i = 1, 2 do waits[i] = run_in_background(server, policy, { shell = "echo ran" }, client.prefix, i) end
        wait_claims(server, "claims", 2)
        fake.query(server, "/_fake/hold-patches/0", "{}")
        local warm = 0
        for i = 1, 2 do
          local r = waits[i]()
          assert.are.equal("ran\n", r.stdout, cjson.encode(r))
          if r.warm then
            warm = warm + 1
            assert.are.equal(pod, r.pod)
          else
            assert.are_not.equal(pod, r.pod)
          end
        end
        assert.are.equal(1, warm)
        local codes = {}
        for _, line in ipairs(requests(server, "/pods/" .. pod)) do
          if line:find("^PATCH") then codes[#codes + 1] = line:match("(%d+)$") end
        end
        table.sort(codes)
        assert.are.same({ "200", "409" }, codes)
      end)
      end

      -- Each run lists the 20 and claims from a random one, past those the
      -- others took (409): every run gets a pod of its own. Checked: with a
      -- lost claim going cold instead of on to the next pod listed, runs
      -- made pods while the pool still had ready ones, and this failed.
      it("gives each of 20 runs at once a pod of a pool of 20: no pod is made on their way", function()
        local policy = write_policy(server, "p", shell_pool(20))
        fill(server, policy, "shell", 20)
        local lines = {}
        for i = 1, 20 do lines[i] = cjson.encode { shell = "echo " .. i, backend = "k8s" } end
        fake.mark(server, "batch")
        local out, err, code = cli(server, { "batch", "-j", "20", "--policy", policy }, table.concat(lines, "\n") .. "\n")
        fake.mark(server, "done")
        assert.are.equal(0, code, err)
        local pods, seen = {}, 0
        for line in out:gmatch("[^\n]+") do
          local r = cjson.decode(line)
          assert.is_true(r.warm, line)
          assert.is_nil(pods[r.pod], "two runs in pod " .. r.pod)
          pods[r.pod] = true
          seen = seen + 1
        end
        assert.are.equal(20, seen)
        for _, e in ipairs(fake.between(fake.request_log(server), "batch", "done")) do
          assert.is_false(e.method == "POST" and e.path:find("/pods$") ~= nil, "a pod was made: " .. e.path)
        end
      end)

      -- Checked: with the resourceVersion left out of the claim's patch,
      -- the claim went through on the evicted pod, the run was exec'd into
      -- it and failed (WarmPodLost) instead of making its own; a pod
      -- deleted meanwhile is no longer there to patch (NotFound) either way.
      for _, client in ipairs(clients) do
      for _, what in ipairs { "evict", "delete" } do
        it(("never uses a warm pod %s between the list and the claim (%s)"):format(what == "evict" and "evicted"
                                                                                or "deleted", client.name), function()
          local policy = write_policy(server, "p", shell_pool(1))
          local pod = fill(server, policy, "shell", 1)[1].metadata.name
          -- the claim is held at the API server while the pod goes
          fake.mark(server, "claim")
          fake.query(server, "/_fake/hold-patches/1", "{}")
          local wait = run_in_background(server, policy, { shell = "echo ran" }, client.prefix, "r")
          wait_claims(server, "claim", 1)
          fake.query(server, ("/_fake/%s/%s"):format(what, pod), "{}")
          fake.query(server, "/_fake/hold-patches/0", "{}")
          local r = wait()
          assert.are.equal("ran\n", r.stdout, cjson.encode(r))
          assert.is_false(r.warm)
          assert.are.same({}, requests(server, "/pods/" .. pod .. "/exec"))
          cli(server, { "cleanup", "--all", "--policy", policy }) -- the evicted pod, which the pool's next pass deletes
        end)
      end
      end

      -- The pod deleted from outside while the program runs in it (the
      -- fake deletes it once the exec's stdout holds DELETE-ME): the
      -- container's end kills the exec'd command, and the result says the
      -- pod went, not that the program exited (137, its exit code as the
      -- API server's status gives it, or anything else). Checked: with a
      -- missing end mark not taken for a broken exec (decide_in_session),
      -- this was signaled 9 (the exec'd command's 137), by either exec.
      for _, client in ipairs(clients) do
      it("says the pod went, not that the program exited, when a warm pod is deleted while it runs ("
         .. client.name .. ")", function()
        local policy = write_policy(server, "p", shell_pool(1))
        local pod = fill(server, policy, "shell", 1)[1].metadata.name
        local r = run(server, policy, { shell = "echo DELETE-ME; sleep 30; echo survived" }, client.prefix)
        assert.is_true(r.warm, cjson.encode(r))
        assert.are.equal("error", r.status, cjson.encode(r))
        assert.truthy(r.reason == "AttachLost" or r.reason == "Deleted", cjson.encode(r))
        assert.is_nil(r.stdout:find("survived", 1, true))
        wait_gone(server, pod)
      end)
      end

      it("never claims a pod evicted before the run, and the pool replaces it", function()
        local policy = write_policy(server, "p", shell_pool(1))
        local pod = fill(server, policy, "shell", 1)[1].metadata.name
        fake.query(server, "/_fake/evict/" .. pod, "{}")
        local r = run(server, policy, { shell = "echo ran" })
        assert.is_false(r.warm, cjson.encode(r))
        assert.are.same({}, requests(server, "/pods/" .. pod .. "/exec"))
        local out = cli(server, { "pool", "run", "--once", "--policy", policy })
        assert.truthy(out:find("deleting " .. pod .. " (ended)", 1, true), out)
        wait_gone(server, pod)
        wait_ready(server, "shell", 1)
        cli(server, { "cleanup", "--all", "--policy", policy })
      end)

      it("takes warm pods through the daemon too, and counts them in /metrics", function()
        local policy = write_policy(server, "p", shell_pool(1))
        fill(server, policy, "shell", 1)
        local d = daemon.start("--no-warm-pools --policy " .. policy, nil, server.env)
        finally(function() daemon.stop(d) end)
        local request = cjson.encode { shell = "echo hi", backend = "k8s" }
        local _, warm = daemon.request(d, "POST", "/v1/run", request)
        local _, cold = daemon.request(d, "POST", "/v1/run", request)
        assert.are.same({ "hi\n", true, "hi\n", false }, { warm.stdout, warm.warm, cold.stdout, cold.warm })
        local _, metrics = daemon.request(d, "GET", "/metrics")
        assert.truthy(metrics:find('echo_sandbox_k8s_runs_warm_total{warm="true"} 1\n', 1, true), metrics)
        assert.truthy(metrics:find('echo_sandbox_k8s_runs_warm_total{warm="false"} 1\n', 1, true), metrics)
        -- by pool: the result names it, hit or miss, with the claim's time.
        -- Checked: with no warm_pool in the result, neither was counted.
        assert.are.same({ "shell", "shell" }, { warm.warm_pool, cold.warm_pool })
        assert.are.same({ "number", "number" }, { type(warm.claim_ms), type(cold.claim_ms) })
        assert.truthy(metrics:find('echo_sandbox_warm_claims_total{pool="shell",result="hit"} 1\n', 1, true), metrics)
        assert.truthy(metrics:find('echo_sandbox_warm_claims_total{pool="shell",result="miss"} 1\n', 1, true), metrics)
        assert.truthy(metrics:find('echo_sandbox_warm_claim_seconds_count 2\n', 1, true), metrics)
        wait_gone(server, warm.pod)
        wait_gone(server, cold.pod)
      end)

      it("says in doctor whether the account may claim (patch pods), with pools only", function()
        local policy = write_policy(server, "p", shell_pool(1))
        local out = cli(server, { "doctor", "--policy", policy })
        assert.truthy(out:find("ok    rbac           may patch pods (the claims of the policy's 1 warm pool)", 1, true),
                      out)
        local denied = fake.start(minor, "--deny 'patch pods'")
        out = env.cli_run({ "doctor", "--policy", policy }, nil, denied.env)
        fake.stop(denied)
        assert.truthy(out:find("warn  rbac           may not patch pods (the claims of the policy's 1 warm pool: "
                               .. "every run makes its own pod)", 1, true), out)
        out = cli(server, { "doctor", "--policy", write_policy(server, "none", "") })
        assert.is_nil(out:find("patch", 1, true), out)
      end)

      -- Checked: without check_pool_quotas, doctor said nothing of the quota.
      it("warns in doctor where the pools' sizes pass the namespace's ResourceQuota on pods", function()
        fake.query(server, "/_fake/quota-pods/2", "{}")
        finally(function() fake.query(server, "/_fake/quota-pods/-1", "{}") end)
        local out = cli(server, { "doctor", "--policy", write_policy(server, "big", shell_pool(2) .. python_pool(1)) })
        assert.truthy(out:find("warn  warm pools     their sizes in namespace [%w-]+ come to 3 pods, past its "
                               .. "ResourceQuota of 2 pods: the pools never fill"), out)
        out = cli(server, { "doctor", "--policy", write_policy(server, "small", shell_pool(2)) })
        assert.is_nil(out:find("warm pools", 1, true), out)
      end)

      it("keeps a pool full until SIGTERM; a maintainer killed leaves nothing cleanup cannot remove", function()
        local policy = write_policy(server, "p", shell_pool(2))
        for _, sig in ipairs { "TERM", "KILL" } do
          local pidfile = server.dir .. "/pool.pid"
          local wait = env.in_background(("%s %s %s pool run --interval-ms 100 --policy %s >/dev/null 2>&1 & "
            .. "echo $! > %s; wait $!"):format(server.env, env.cli_prefix, env.quote(env.cli), env.quote(policy),
            env.quote(pidfile)))
          local pods = wait_ready(server, "shell", 2)
          -- a pod used is made again by the running maintainer
          fake.query(server, "/_fake/delete/" .. pods[1].metadata.name, "{}")
          wait_gone(server, pods[1].metadata.name)
          wait_ready(server, "shell", 2)
          local pid = env.read_file(pidfile):match("%d+")
          os.execute("kill -" .. sig .. " " .. pid)
          local code = wait()
          assert.are.equal(sig == "TERM" and 0 or 137, code)
        end
        -- what it made are pods of the project: cleanup finds them all
        local out = cli(server, { "cleanup", "--all", "--policy", policy })
        for _, p in ipairs(fake.pods(server)) do
          assert.truthy(out:find("deleting " .. p.metadata.name, 1, true), out)
        end
        for _, p in ipairs(fake.pods(server)) do wait_gone(server, p.metadata.name) end
      end)

      it("refills the pool after use, and says what it holds", function()
        local policy = write_policy(server, "p", shell_pool(2))
        local first = fill(server, policy, "shell", 2)
        local r = run(server, policy, { shell = "true" })
        assert.is_true(r.warm, cjson.encode(r))
        wait_gone(server, r.pod)
        local out = cli(server, { "pool", "status", "--json", "--policy", policy })
        local s = cjson.decode(out)[1]
        assert.are.equal("shell", s.name)
        assert.are.same({ 2, 1, 0, 0 }, { s.size, s.ready, s.claimed, s.stale })
        assert.is_nil(s.created_last_minute) -- no maintainer's status file: not known
        -- the maintainer's status file: what it made in the last minute
        local file = server.dir .. "/pool-status"
        cli(server, { "pool", "run", "--once", "--status-file", file, "--policy", policy })
        local now = wait_ready(server, "shell", 2)
        s = cjson.decode((cli(server, { "pool", "status", "--json", "--status-file", file, "--policy", policy })))[1]
        assert.are.same({ 2, 1, 0 }, { s.ready, s.created_last_minute, s.failed_last_minute })
        -- its last look: the pod it made, ready or not yet
        local said = env.read_file(file)
        assert.truthy(said:find("^shell ready 1 pending 1 claimed 0 stale 0 ended 0 created 1 failed 0\n")
                      or said:find("^shell ready 2 pending 0 claimed 0 stale 0 ended 0 created 1 failed 0\n"), said)
        os.remove(file)
        local names = {}
        for _, p in ipairs(now) do names[p.metadata.name] = true end
        assert.is_nil(names[r.pod])
        assert.is_true(names[first[1].metadata.name == r.pod and first[2].metadata.name or first[1].metadata.name])
        cli(server, { "cleanup", "--all", "--policy", policy })
      end)

      -- Checked: with no keeper started by the daemon, no pod was made
      -- (wait_ready failed); with the reload not passed on to it, the old
      -- shape's pods stayed (wait_gone failed).
      it("keeps the pools full while the daemon runs, drains stale pods at a reload, and stops the keeper with it",
        function()
        local policy = write_policy(server, "p", shell_pool(2))
        local d = daemon.start("--policy " .. policy, nil, server.env)
        local stopped = false
        finally(function()
          if not stopped then daemon.stop(d) end
          cli(server, { "cleanup", "--all", "--policy", policy })
          for _, p in ipairs(fake.pods(server)) do wait_gone(server, p.metadata.name) end
        end)
        local old = wait_ready(server, "shell", 2)
        local _, r = daemon.request(d, "POST", "/v1/run", cjson.encode { shell = "true", backend = "k8s" })
        assert.is_true(r.warm, cjson.encode(r))
        wait_gone(server, r.pod)
        wait_ready(server, "shell", 2) -- made again by the daemon's keeper
        -- /metrics: the pool's pods by state from the keeper's last look
        -- (an interlock: its next pass sees the pod made ready)
        local metrics
        for _ = 1, 600 do
          _, metrics = daemon.request(d, "GET", "/metrics")
          if metrics:find('echo_sandbox_warm_pool_pods{pool="shell",state="ready"} 2\n', 1, true) then break end
          env.sleep(0.05)
        end
        assert.truthy(metrics:find('echo_sandbox_warm_pool_pods{pool="shell",state="ready"} 2\n', 1, true), metrics)
        assert.truthy(metrics:find('echo_sandbox_warm_pool_made_last_minute{pool="shell",result="created"} 3\n', 1,
                                   true), metrics)
        write_policy(server, "p", shell_pool(2), "policy.resources.memory_limit = '128Mi'")
        daemon.signal(d, "HUP")
        for _, p in ipairs(old) do wait_gone(server, p.metadata.name) end
        for _, p in ipairs(wait_ready(server, "shell", 2)) do
          assert.are_not.equal(old[1].metadata.labels["echo-sandbox.io/warm-hash"],
                               p.metadata.labels["echo-sandbox.io/warm-hash"])
        end
        local keeper = assert(daemon.log(d):match("pool run, pid (%d+)"), daemon.log(d))
        daemon.stop(d)
        stopped = true
        assert.is_not_true(os.execute("kill -0 " .. keeper .. " 2>/dev/null"), "the keeper outlived the daemon")
      end)

      local function log_lines(server)
        local n = 0
        for _ in io.lines(server.dir .. "/requests.jsonl") do n = n + 1 end
        return n
      end

      -- The most warm pods there were at once, from the fake's request log
      -- past its line `from` (where no pod was): a create counts from its
      -- answer, a delete from its answer.
      local function most_pods_at_once(server, from)
        local events, asked, n = {}, {}, 0
        for line in io.lines(server.dir .. "/requests.jsonl") do
          n = n + 1
          local ok, e = pcall(cjson.decode, line)
          local q = ok and n > from and e.code and asked[e.seq]
          if ok and n > from and e.method then
            asked[e.seq] = e
          elseif q and q.method == "POST" and q.path:match("/pods$") and e.code == 201 then
            events[#events + 1] = { t = e.t, d = 1 }
          elseif q and q.method == "DELETE" and q.path:match("/pods/echo%-sandbox%-w%-") and e.code == 200 then
            events[#events + 1] = { t = e.t, d = -1 }
          end
        end
        table.sort(events, function(a, b) return a.t < b.t end)
        local now, most = 0, 0
        for _, e in ipairs(events) do
          now = now + e.d
          most = math.max(most, now)
        end
        return most
      end

      -- Checked: with a pass making every missing pod from one list, the
      -- three made 9 pods of a pool of 3.
      it("overshoots a pool's size by one pod a maintainer at most: two pool runs and a daemon", function()
        local policy = write_policy(server, "p", shell_pool(3))
        local from = log_lines(server)
        -- each maintainer's first create waits until all three have listed
        -- the pool (an empty one): the race where each saw every pod missing
        local seen = server.dir .. "/listed"
        assert(os.execute("mkdir " .. seen))
        local hook = " ECHO_SANDBOX_KUBECTL=" .. env.quote(server.dir .. "/kubectl-hook")
        env.write_file(server.dir .. "/kubectl-hook", ("#!/bin/sh\ncase \" $* \" in\n"
          .. "  *' get pods -l echo-sandbox.io/warm-pool='*) touch %s/$PPID ;;\n"
          .. "  *' run echo-sandbox-w-'*) i=0; while [ $(ls %s | wc -l) -lt 3 ] && [ $i -lt 2000 ]; do "
          .. "sleep 0.01; i=$((i+1)); done ;;\nesac\nexec %s \"$@\"\n")
          :format(env.quote(seen), env.quote(seen), env.quote(assert(env.kubectl(server.minor)))))
        assert(os.execute("chmod +x " .. env.quote(server.dir .. "/kubectl-hook")))
        local pidfile, waits = server.dir .. "/pool.pid", {}
        for i = 1, 2 do
          waits[i] = env.in_background(("%s %s %s pool run --interval-ms 50 --policy %s >/dev/null 2>&1 & "
            .. "echo $! > %s%d; wait $!"):format(server.env .. hook, env.cli_prefix, env.quote(env.cli),
            env.quote(policy), env.quote(pidfile), i))
        end
        local d = daemon.start("--policy " .. policy, nil, server.env .. hook)
        local stopped = false
        finally(function()
          if not stopped then daemon.stop(d) end
          for i = 1, 2 do os.execute(("kill -TERM $(cat %s%d) 2>/dev/null"):format(env.quote(pidfile), i)) end
          cli(server, { "cleanup", "--all", "--policy", policy })
          for _, p in ipairs(fake.pods(server)) do wait_gone(server, p.metadata.name) end
          os.execute("rm -rf " .. env.quote(seen))
        end)
        wait_ready(server, "shell", 3)
        daemon.stop(d)
        stopped = true
        for i = 1, 2 do
          os.execute("kill -TERM " .. env.read_file(pidfile .. i):match("%d+"))
          assert.are.equal(0, waits[i]())
        end
        local most = most_pods_at_once(server, from)
        assert.is_true(most <= 3 + 3, ("%d pods at once"):format(most))
      end)

      -- Checked: without the hash in the claim's selector, the run under the
      -- new policy took the old pod (warm true).
      it("drains the pods of a shape the policy no longer has; cleanup those of a pool it no longer has", function()
        local old = write_policy(server, "old", shell_pool(1))
        local stale = fill(server, old, "shell", 1)[1].metadata.name
        local new = write_policy(server, "new", shell_pool(1), "policy.resources.memory_limit = '128Mi'")
        local r = run(server, new, { shell = "true" })
        assert.is_false(r.warm, cjson.encode(r))
        local out = cli(server, { "pool", "run", "--once", "--policy", new })
        assert.truthy(out:find("deleting " .. stale .. " (stale)", 1, true), out)
        wait_gone(server, stale)
        local fresh = wait_ready(server, "shell", 1)[1]
        assert.are_not.equal(fresh.metadata.labels["echo-sandbox.io/warm-hash"], "")
        local none = write_policy(server, "none", "")
        out = cli(server, { "cleanup", "--policy", none })
        assert.truthy(out:find("deleting " .. fresh.metadata.name .. " (a warm pod of a pool the policy no longer "
                               .. "has", 1, true), out)
        wait_gone(server, fresh.metadata.name)
      end)
    end)
  end)
end)

describe("k8s.warm_pools in a policy", function()
  env.check_leaks()
  local dir
  before_each(function() dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir " .. dir)) end)
  after_each(function() os.execute("rm -rf " .. env.quote(dir)) end)

  local function explain(pools)
    local path = dir .. "/p.lua"
    env.write_policy(path, "policy.k8s.warm_pools = {" .. pools .. "}\n")
    return env.cli_run { "policy", "explain", "--policy", path, "--backend", "k8s", "--json", "--", "true" }
  end

  it("is an error naming the pool where the engine cannot make it a pod", function()
    local cases = {
      { "{ name = 'a', image = 'x y', size = 1, max_age_s = 60 }", "pool 'a'.*image" },
      { "{ name = 'b', image = 'x', size = 1, max_age_s = 60, resources = { limits = { cpu = 'lots' } } }",
        "pool 'b'.*resources.limits.cpu" },
      { "{ name = 'c', image = 'x', size = 1, max_age_s = 60, max_age = 5 }", "c%.max_age" },
      { "{ name = 'Bad', image = 'x', size = 1, max_age_s = 60 }", "name" },
      { "{ name = 'd', image = 'x', size = 1, max_age_s = 5 }", "d%.max_age_s" },
      { "{ name = 'e', image = 'x', size = 1, max_age_s = 60 }, { name = 'e', image = 'y', size = 1, max_age_s = 60 }",
        "two pools are named 'e'" },
    }
    for _, c in ipairs(cases) do
      local out, err, code = explain(c[1])
      assert.are_not.equal(0, code, out)
      assert.truthy(err:find("k8s.warm_pools", 1, true) and err:find(c[2]), c[1] .. ": " .. err)
    end
  end)

  -- Checked: with the pools' plans made for the local backend (no pod,
  -- so no pool), every pool was warned of, the shell and python ones too.
  it("is a warning in policy check where no request of the default shapes gets a pool's pod", function()
    local path = dir .. "/p.lua"
    env.write_policy(path, "policy.k8s.warm_pools = {\n"
      .. "  policy:warm_pool { name = 'python', like = { language = 'python' }, size = 1, max_age_s = 60 },\n"
      .. "  policy:warm_pool { name = 'shell', size = 1, max_age_s = 60 },\n"
      .. "  { name = 'big', image = 'debian:12', size = 1, max_age_s = 60,\n"
      .. "    resources = { limits = { memory = '8Gi' } } },\n"
      .. "}\n")
    local out, err, code = env.cli_run { "policy", "check", path }
    assert.are.equal(0, code, out .. err) -- a warning, no problem
    local warned = {}
    for pool in out:gmatch("\nwarn +warm pool ([%w-]+): none of %d+ requests of the default shapes") do
      warned[#warned + 1] = pool
    end
    assert.are.same({ "big" }, warned, out)
  end)

  -- Checked: with the pools not made pods at load, the reload went
  -- through and the daemon never said it failed.
  it("is checked at a daemon's reload, which keeps the old policy where a pool cannot be made a pod", function()
    local path = dir .. "/serve.lua"
    local function write(which, image)
      env.write_policy(path, ("policy.env.WHICH = '%s'\npolicy.k8s.warm_pools = { { name = 'pool', image = '%s', "
                              .. "size = 1, max_age_s = 60 } }\n"):format(which, image))
    end
    write("first", "x")
    local d = daemon.start("--policy " .. path)
    finally(function() daemon.stop(d) end)
    local request = cjson.encode { shell = "echo $WHICH", backend = "local" }
    write("second", "not an image")
    daemon.signal(d, "HUP")
    daemon.await_log(d, "reload failed")
    assert.truthy(daemon.log(d):find("pool 'pool' cannot be made a pod", 1, true), daemon.log(d))
    local _, r = daemon.request(d, "POST", "/v1/run", request)
    assert.are.equal("first\n", r.stdout)
  end)

  it("has the fields doc/warm-pods.md lists, each of src/policy/warm_pool_fields.def", function()
    local doc = env.read_file("doc/warm-pods.md")
    local n = 0
    for name in env.read_file("src/policy/warm_pool_fields.def"):gmatch('\nESB_WARM_POOL_FIELD%("([%w_]+)"') do
      assert.truthy(doc:find("| `" .. name .. "` |", 1, true), name)
      n = n + 1
    end
    assert.are.equal(10, n)
  end)

  it("shows the pool a request would take a pod of, by its pod's shape", function()
    local out, err = explain("policy:warm_pool { name = 'shell', size = 1, max_age_s = 600 }")
    local x = cjson.decode(out)
    assert.are.equal("shell", x.k8s.warm_pool.name, err)
    assert.are.equal(200, x.k8s.warm_pool.claim_grace_ms)
    -- another shape (more memory): no pool
    out = env.cli_run { "policy", "explain", "--policy", dir .. "/p.lua", "--backend", "k8s", "--json",
                        "--memory", "128Mi", "--", "true" }
    assert.is_nil(cjson.decode(out).k8s.warm_pool)
  end)
end)
