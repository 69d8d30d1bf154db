local env = require "spec.support.env"
local fake = require "spec.support.fake_kube"
local cjson = require "cjson"

local function orphan(server, name, expires)
  fake.query(server, "/api/v1/namespaces/echo-sandbox/pods", cjson.encode {
    metadata = { name = name, labels = { ["app.kubernetes.io/managed-by"] = "echo-sandbox" },
                 annotations = { ["echo-sandbox.io/expires-at"] = expires } },
    spec = { containers = { { name = name, image = "x", command = { "sleep", "30" } } } },
  })
end

local function pod_names(server)
  local names = {}
  for _, pod in ipairs(fake.pods(server)) do names[#names + 1] = pod.metadata.name end
  table.sort(names)
  return names
end

-- With the newest kubectl of the matrix alone: cleanup's requests (a list of
-- the managed pods by label, a delete of each) are the same from every
-- kubectl 1.30 to 1.35, as the fake API server's request log shows; what
-- differs between them is how `kubectl run --attach` waits for its pod,
-- which spec/k8s_spec.lua runs on one minor of each way.
describe("echo-sandbox cleanup", function()
  local minor = env.newest_kubectl()
  if not minor then return end
  describe(("kubectl 1.%d"):format(minor), function()
    env.check_leaks() -- in this outer block, so it runs after the server is stopped
    describe("on a fake API server", function()
      local fixture = fake.per_spec(minor)

      it("removes an expired orphan and spares an in-flight pod", function()
        local server = fixture.server
      -- a run in flight, held by its program until we are done
        local script = table.concat({
          "%s %s %s run --backend k8s --shell 'sleep 30' >/dev/null 2>&1 & pid=$!",
          "for i in $(seq 1000); do %s | grep -q Running && break; sleep 0.02; done",
          "echo $pid" }, "\n")
        local p = io.popen(script:format(server.env, env.cli_prefix, env.quote(env.cli),
                                         fake.query_sh(server, "/_fake/pods")))
        local run_pid = p:read("l")
        p:close()
        local function stop_run()
          os.execute("kill -TERM " .. run_pid .. " 2>/dev/null; while kill -0 " .. run_pid ..
                     " 2>/dev/null; do sleep 0.01; done")
        end
        finally(stop_run)
        orphan(server, "echo-sandbox-orphan", "2000-01-01T00:00:00Z")
        local in_flight
        for _, name in ipairs(pod_names(server)) do
          if name ~= "echo-sandbox-orphan" then in_flight = name end
        end
        assert.truthy(in_flight)

        local out, err, code = env.cli_run({ "cleanup", "--dry-run" }, nil, server.env)
        assert.are.equal(0, code, err)
        assert.truthy(out:find("would delete echo-sandbox-orphan", 1, true), out)
        assert.truthy(out:find("keeping " .. in_flight, 1, true), out)
        local both = { "echo-sandbox-orphan", in_flight }
        table.sort(both)
        assert.are.same(both, pod_names(server))

        out, err, code = env.cli_run({ "cleanup" }, nil, server.env)
        assert.are.equal(0, code, err)
        assert.are.same({ in_flight }, pod_names(server))

        stop_run() -- it deletes its own pod
        assert.are.same({}, pod_names(server))
      end)

      -- The fake API server at an https address: kubectl's discovery
      -- fails, and it logs each failure as a klog line (memcache.go) before
      -- its error.
      -- Checked: without kubectl_said (cleanup.c), five "E1206 ...
      -- memcache.go:265] couldn't get current server API group list" lines
      -- came first.
      it("says why listing the pods failed in kubectl's words, without its klog lines", function()
        fake.needs("plain HTTP, to dial with TLS")
        local server = fixture.server
        local https = server.kubeconfig .. ".https"
        env.write_file(https, (env.read_file(server.kubeconfig):gsub('server: "http:', 'server: "https:')))
        local out, err, code = env.cli_run({ "cleanup" }, nil, fake.kubectl_env(minor, https))
        os.remove(https)
        assert.are.equal(125, code, out .. err)
        assert.are.equal("echo-sandbox cleanup: listing pods failed: Unable to connect to the server: tls: first " ..
                         "record does not look like a TLS handshake\n", err)
      end)

      it("deletes every managed pod with --all", function()
        local server = fixture.server
        orphan(server, "echo-sandbox-a", "2999-01-01T00:00:00Z")
        orphan(server, "echo-sandbox-b", "2000-01-01T00:00:00Z")
        local out, err, code = env.cli_run({ "cleanup", "--all" }, nil, server.env)
        assert.are.equal(0, code, err)
        assert.are.same({}, pod_names(server))
        assert.truthy(out:find("deleting echo-sandbox-a", 1, true))
      end)
    end)
  end)
end)

describe("echo-sandbox doctor", function()
  env.check_leaks()
  local minor = env.newest_kubectl()
  if not minor then return end

  it("passes against a ready cluster and says which policy it loaded", function()
    local server = fake.start(minor, "--network-policy")
    local out, err, code = env.cli_run({ "doctor", "--policy", "policies/default.lua" }, nil, server.env)
    fake.stop(server)
    assert.are.equal(0, code, out .. err)
    assert.truthy(out:find("ok    policy         policies/default.lua", 1, true), out)
    assert.truthy(out:find(("ok    cluster        Server Version: v1.%d"):format(minor), 1, true), out)
    assert.truthy(out:find("may create pods/attach", 1, true), out)
    assert.truthy(out:find("ok    networkpolicy", 1, true), out)
    if env.cgroups_available() then
      assert.truthy(out:find("ok    limits         cgroup v1: memory", 1, true), out)
    end
    assert.truthy(out:find("0 failed, 0 warnings", 1, true), out)
  end)

  -- A policy that sends requests to k8s by itself needs the cluster.
  local k8s_policy
  setup(function() k8s_policy = env.policy_file("policy.backend = 'k8s'") end)
  teardown(function() os.remove(k8s_policy) end)

  it("fails when RBAC says no, and warns without a NetworkPolicy", function()
    local server = fake.start(minor, "--deny 'delete pods'")
    local out, _, code = env.cli_run({ "doctor", "--policy", k8s_policy }, nil, server.env)
    fake.stop(server)
    assert.are.equal(1, code)
    assert.truthy(out:find("FAIL  rbac           may not delete pods", 1, true), out)
    assert.truthy(out:find("warn  networkpolicy", 1, true), out)
  end)

  it("fails when the cluster does not answer", function()
    local out, _, code = env.cli_run({ "doctor", "--policy", k8s_policy }, nil,
                                     fake.kubectl_env(minor, "/nonexistent/kubeconfig"))
    assert.are.equal(1, code)
    assert.truthy(out:find("FAIL  cluster", 1, true), out)
    assert.truthy(out:find("local ", 1, true), out)
  end)

  it("says that kubectl did not answer when it hangs", function()
    -- a kubectl that knows itself and its context, and hangs on the cluster
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    env.write_file(dir .. "/kubectl", "#!/bin/sh\ncase \"$*\" in\n" ..
                   "  *--client*) echo 'Client Version: v1.33.0'; exit 0;;\n" ..
                   "  *current-context*) echo fake; exit 0;;\nesac\nexec sleep 60\n")
    os.execute("chmod +x " .. dir .. "/kubectl")
    local out, _, code = env.cli_run({ "doctor", "--policy", k8s_policy }, nil,
                                     "ECHO_SANDBOX_KUBECTL=" .. env.quote(dir .. "/kubectl"))
    os.execute("rm -rf " .. dir)
    assert.are.equal(1, code)
    assert.truthy(out:find("kubectl did not answer within 15 s", 1, true), out)
  end)

  it("only warns about the cluster when the policy's backend is local", function()
    local out, _, code = env.cli_run({ "doctor" }, nil, fake.kubectl_env(minor, "/nonexistent/kubeconfig"))
    assert.are.equal(0, code, out)
    assert.truthy(out:find("warn  cluster", 1, true), out)
    assert.truthy(out:find("ok    backend        local", 1, true), out)
  end)

  it("only warns that kubectl is missing when the policy's backend is local", function()
    local out, _, code = env.cli_run({ "doctor" }, nil, "ECHO_SANDBOX_KUBECTL=/nonexistent/kubectl")
    assert.are.equal(0, code, out)
    assert.truthy(out:find("warn  kubectl        program not found: /nonexistent/kubectl", 1, true), out)
    assert.truthy(out:find("0 failed, 1 warning\n", 1, true), out)
    out, _, code = env.cli_run({ "doctor", "--policy", k8s_policy }, nil, "ECHO_SANDBOX_KUBECTL=/nonexistent/kubectl")
    assert.are.equal(1, code, out)
    assert.truthy(out:find("FAIL  kubectl        program not found", 1, true), out)
  end)
end)

describe("backend fallback", function()
  env.check_leaks()
  local minor = env.newest_kubectl()
  if not minor then return end

  it("picks k8s when the cluster answers, else local where the policy allows it, and says which", function()
    local path = env.policy_file("policy.backend = 'k8s'\npolicy.fallback = 'local'")
    local server = fake.start(minor)
    local out, err, code = env.cli_run({ "run", "--json", "--policy", path, "--shell", "echo hi" }, nil, server.env)
    local left = fake.pods(server)
    fake.stop(server)
    assert.are.equal(0, code, err)
    assert.are.equal("k8s", cjson.decode(out).sandbox_type)
    assert.truthy(err:find("backend k8s: using k8s", 1, true), err)
    assert.are.same({}, left)

    out, err, code = env.cli_run({ "run", "--json", "--policy", path, "--shell", "echo hi" }, nil,
                                 fake.kubectl_env(minor, "/nonexistent/kubeconfig"))
    os.remove(path)
    assert.are.equal(0, code, err)
    assert.are.equal("local", cjson.decode(out).sandbox_type)
    assert.truthy(err:find("the cluster does not answer; the policy allows local: using local", 1, true), err)
  end)
end)

describe("backend fallback in batch", function()
  env.check_leaks()
  local minor = env.newest_kubectl()
  if not minor then return end

  it("asks the cluster once, not for every request", function()
    local path = env.policy_file("policy.backend = 'k8s'\npolicy.fallback = 'local'")
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    -- a kubectl that notes each command line, then is the real one
    env.write_file(dir .. "/kubectl", ('#!/bin/sh\necho "$*" >> %s/calls\nexec kubectl "$@"\n'):format(dir))
    assert(os.execute("chmod +x " .. dir .. "/kubectl"))
    local server = fake.start(minor)
    local lines = {}
    for i = 1, 4 do lines[i] = cjson.encode { id = i, shell = "echo " .. i } end
    local out, err, code = env.cli_run({ "batch", "-j", "1", "--policy", path }, table.concat(lines, "\n") .. "\n",
                                       server.env .. " ECHO_SANDBOX_KUBECTL=" .. dir .. "/kubectl")
    local left = fake.pods(server)
    fake.stop(server)
    local calls = env.read_file(dir .. "/calls")
    os.execute("rm -rf " .. dir)
    os.remove(path)
    assert.are.equal(0, code, err)
    local n = 0
    for text in out:gmatch("[^\n]+") do
      assert.are.equal("k8s", cjson.decode(text).sandbox_type)
      n = n + 1
    end
    assert.are.equal(4, n)
    local probes = 0
    for line in calls:gmatch("[^\n]+") do
      if (" " .. line .. " "):find(" version ", 1, true) then probes = probes + 1 end
    end
    assert.are.equal(1, probes, calls)
    assert.are.same({}, left)
  end)
end)

describe("echo-sandbox batch on the k8s backend", function()
  env.check_leaks()
  describe("on a fake API server", function()
    local minor = env.newest_kubectl()
    if not minor then return end
    local fixture = fake.per_spec(minor)

    it("runs pods side by side in one loop and deletes every one", function()
      local lines = {}
      for i = 1, 8 do
        lines[i] = cjson.encode { id = i, backend = "k8s", shell = "echo pod-" .. i .. "; sleep 0.5" }
      end
      local out, err, code = env.cli_run({ "batch", "-j", "8" }, table.concat(lines, "\n"), fixture.server.env)
      assert.are.equal(0, code, err)
      local pods = {}
      for text in out:gmatch("[^\n]+") do
        local r = cjson.decode(text)
        assert.are.equal("k8s", r.sandbox_type)
        assert.are.equal("pod-" .. math.tointeger(r.id) .. "\n", r.stdout)
        pods[r.pod] = true
      end
      local n = 0
      for _ in pairs(pods) do n = n + 1 end
      assert.are.equal(8, n)
    end)
  end)
end)
