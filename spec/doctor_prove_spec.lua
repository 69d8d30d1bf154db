-- `echo-sandbox doctor --prove`: the attacks of the security model against
-- the live configuration (src/dispatch/prove.h; the checks' table is
-- src/dispatch/prove_checks.def). On this machine every local defence
-- holds; each check is then shown to say "failed", and the doctor to exit
-- 1, under a test policy that turns its defence off:
--   syscall_filter   seccomp = "none"
--   host_files, no_network, network_blocks, workdir_size
--                    isolation = "rlimits" (no root, network namespace or
--                    tmpfs working dir of the run's own)
--   user_namespace, mount
--                    isolation = "rlimits" with seccomp = "none": inside the
--                    namespaces, user.max_user_namespaces = 0 refuses a
--                    nested user namespace (and with it a mount) even
--                    without the filter, and no policy turns that off
--   deadline         isolation = "rlimits" with uid_range = false: a run's
--                    own uid is what lets the engine end what the run left
--                    outside its process group
--   per_run_uid      uid_range = false
--   memory_limit, process_limit, cpu_time_limit
--                    a limits_for that gives the run no limit (0)
--   cpu_rate         a limits_for that gives the run no CPU rate
--                    (cpu_millicores 0): the verdicts compared, never times
-- k8s_network_policy, k8s_pod_security, k8s_memory_limit, k8s_rbac,
-- k8s_pod_security_admission, k8s_ephemeral_storage
--                    the fake API server (spec/support/fake_kube.py), whose
--                    pods are processes on this host, as root, on its
--                    network, without limits, in namespaces without a Pod
--                    Security label, on a kubelet that evicts nothing: as a
--                    cluster whose CNI ignores NetworkPolicy and whose pods
--                    run privileged; --deny "get secrets" is an account RBAC
--                    keeps from secrets, --namespace-label
--                    pod-security.kubernetes.io/enforce=restricted a namespace
--                    with Pod Security admission, --evict-storage a kubelet
--                    that evicts for ephemeral storage
-- tiocsti cannot be turned off by a policy: every sandbox starts a new
-- session (no controlling terminal) and has no /dev/tty, whatever the
-- isolation; the filter's TIOCSTI row is shown by syscall_filter.
local env = require "spec.support.env"
local daemon = require "spec.support.daemon"
local fake = require "spec.support.fake_kube"
local cjson = require "cjson"

-- Runs doctor --prove --json with the policy body (nil: the default
-- policy, as the suite's isolation has it); returns the checks by name and
-- the exit code.
local function prove(body, quick, extra, env_prefix)
  local path = body and env.policy_file(body)
  local args = { "doctor", "--prove", "--json", "--policy", path or env.policy_file("") }
  if quick then table.insert(args, 3, "--quick") end
  for i, arg in ipairs(extra or {}) do table.insert(args, 2 + i, arg) end
  local out, err, code = env.cli_run(args, nil, env_prefix)
  os.remove(args[#args])
  local ok, report = pcall(cjson.decode, out)
  assert(ok, "no JSON: " .. out .. err)
  local by_name = {}
  for _, check in ipairs(report.checks) do by_name[check.name] = check end
  return by_name, code, report
end

local function verdicts(checks, names)
  local seen = {}
  for _, name in ipairs(names) do
    seen[name] = checks[name] and checks[name].verdict .. ": " .. checks[name].detail
  end
  return seen
end

-- Asserts that exactly the named checks failed, each with what got through.
local function only_failed(checks, code, names)
  local want, failed = {}, {}
  for _, name in ipairs(names) do want[name] = true end
  for name, check in pairs(checks) do
    if check.verdict == "failed" then failed[name] = true end
    if not want[name] then
      assert.is_true(check.verdict == "held" or check.verdict == "not_applicable", name .. ": " .. check.detail)
    end
  end
  assert.are.same(want, failed, cjson.encode(verdicts(checks, names)))
  assert.are.equal(1, code)
end

describe("doctor --prove", function()
  env.check_leaks()

  if env.isolation == "rlimits" or not env.is_root() then
    it("needs root and the namespace sandbox to prove it", function()
      pending("isolation " .. env.isolation .. (env.is_root() and "" or ", not root"))
    end)
    return
  end

  it("holds every local defence on this machine, and says what each attack saw", function()
    local checks, code, report = prove(nil)
    assert.are.equal(20, #report.checks)
    for name, check in pairs(checks) do
      -- the probe pods: not for a policy that runs requests locally (below)
      local want = check.backend == "k8s" and "not_applicable" or "held"
      assert.are.equal(want, check.verdict, name .. ": " .. check.detail)
      assert.truthy(check.attack ~= "" and check.held_when ~= "", name)
    end
    assert.are.equal(0, code, cjson.encode(report))
    assert.are.equal(0, report.failed)
    assert.truthy(checks.syscall_filter.detail:find("x32 getpid: killed (SIGSYS)", 1, true))
    assert.truthy(checks.memory_limit.detail:find("killed for memory", 1, true), checks.memory_limit.detail)
    assert.truthy(checks.cpu_time_limit.detail:find("CpuTimeExceeded", 1, true), checks.cpu_time_limit.detail)
    assert.truthy(checks.cpu_rate.detail:find("under a CPU rate of 0.05 CPUs: spun 300 ms of CPU time in", 1, true),
                  checks.cpu_rate.detail)
  end)

  it("prints a line per check, and with --quick leaves out those that take seconds", function()
    local out, _, code = env.cli_run { "doctor", "--prove", "--quick" }
    assert.are.equal(0, code, out)
    assert.truthy(out:find("\nheld +per_run_uid +two runs at once were host uids %d+ and %d+\n"), out)
    assert.is_nil(out:find("deadline", 1, true), out)
    assert.is_nil(out:find("cpu_time_limit", 1, true), out)
    local _, err, bad = env.cli_run { "doctor", "--json" }
    assert.are.equal(125, bad)
    assert.truthy(err:find("--quick, --json, --k8s and --prove-target go with --prove", 1, true), err)
  end)

  it("says the syscall filter failed under seccomp = \"none\", each class reaching the kernel", function()
    local checks, code = prove("policy.local_sandbox.seccomp = 'none'", true)
    only_failed(checks, code, { "syscall_filter" })
    local detail = checks.syscall_filter.detail
    assert.truthy(detail:find('seccomp is "none"', 1, true), detail)
    assert.truthy(detail:find("chroot (the mount API): reached the kernel", 1, true), detail)
    assert.truthy(detail:find("x32 getpid: reached the kernel", 1, true), detail)
    -- beneath the filter, the sandbox's user namespace allows no other
    assert.truthy(checks.user_namespace.detail:find("No space left on device", 1, true))
  end)

  it("says the host's files, the network and the working dir's size failed with isolation rlimits", function()
    local checks, code = prove("policy.local_sandbox.isolation = 'rlimits'", true)
    only_failed(checks, code, { "host_files", "no_network", "network_blocks", "workdir_size" })
    assert.truthy(checks.host_files.detail:find("the run read and changed the host's ", 1, true))
    assert.truthy(checks.no_network.detail:find("took a connection from the run", 1, true))
    assert.truthy(checks.workdir_size.detail:find("got through: wrote 72 MiB", 1, true))
  end)

  it("says a user namespace and a mount got through with isolation rlimits and no filter", function()
    local checks, code = prove("policy.local_sandbox.isolation = 'rlimits'\n" ..
                               "policy.local_sandbox.seccomp = 'none'", true)
    only_failed(checks, code, { "host_files", "no_network", "network_blocks", "workdir_size", "syscall_filter",
                                "user_namespace", "mount" })
    assert.truthy(checks.mount.detail:find("in a user namespace of its own: mounted", 1, true))
  end)

  -- Without a pid namespace, a process that left the run's session is
  -- ended at the deadline by the run's uid (a uid range) or its cgroup;
  -- with neither, it outlives the run. (A process the engine has killed
  -- but its parent has not yet reaped is not counted: it is dead.
  -- Checked: counting those, the cgroup's case said failed here, and held
  -- in a pid namespace whose init reaped sooner.)
  it("says runs share a uid, and a process outlived the deadline, without a uid range and cgroups", function()
    local checks, code = prove("policy.local_sandbox.uid_range = false", true)
    only_failed(checks, code, { "per_run_uid" })
    assert.truthy(checks.per_run_uid.detail:find("both host uid 65534", 1, true))
    local rlimits = "policy.local_sandbox.isolation = 'rlimits'\npolicy.local_sandbox.uid_range = false"
    checks, code = prove(rlimits)
    local cgroups = checks.cpu_rate.verdict ~= "not_applicable"
    only_failed(checks, code, { "host_files", "no_network", "network_blocks", "workdir_size", "per_run_uid",
                                not cgroups and "deadline" or nil })
    checks, code = prove(rlimits .. "\npolicy.local_sandbox.cgroups = false")
    only_failed(checks, code, { "host_files", "no_network", "network_blocks", "workdir_size", "per_run_uid",
                                "deadline" })
    assert.truthy(checks.deadline.detail:find("outlived its deadline; the doctor killed", 1, true))
  end)

  it("says the memory, process and CPU-time limits failed where the policy gives none", function()
    local checks, code = prove(table.concat({
      "local limits_for = policy.limits_for",
      "function policy:limits_for(req)",
      "  local limits, clamped = limits_for(self, req)",
      "  limits.memory_bytes, limits.max_processes, limits.cpu_time_secs = 0, 0, 0",
      "  return limits, clamped",
      "end" }, "\n"))
    only_failed(checks, code, { "memory_limit", "process_limit", "cpu_time_limit", "workdir_size" })
    assert.truthy(checks.memory_limit.detail:find("got through: touched 96 MiB (no memory limit)", 1, true))
    assert.truthy(checks.process_limit.detail:find("got through: 24 processes at once", 1, true))
  end)

  -- A run held to 0.05 CPUs spins about 1.5 s of CPU time in the check's
  -- 30 s: past the limit of 1 s that the policy does not give, but not
  -- the 3 s the probe asks, so its deadline ends it (as a busy host can).
  it("says the CPU-time limit failed where the run spun past it until its deadline", function()
    local checks = prove(table.concat({
      "local limits_for = policy.limits_for",
      "function policy:limits_for(req)",
      "  local limits, clamped = limits_for(self, req)",
      "  limits.cpu_time_secs, limits.cpu_millicores = 0, 50",
      "  return limits, clamped",
      "end" }, "\n"))
    local check = checks.cpu_time_limit
    assert.are.equal("failed", check.verdict, check.detail)
    assert.truthy(check.detail:find("^got through: the run spun %d+ ms of CPU time, past its limit of 1 s, until its " ..
                                    "deadline$"), check.detail)
  end)

  -- Checked: the same check held under the default policy (above); without
  -- the rate it says failed. The verdicts are compared, never the times.
  it("says the CPU rate failed where the policy gives none, and not applicable without cgroups", function()
    local checks, code = prove(table.concat({
      "local limits_for = policy.limits_for",
      "function policy:limits_for(req)",
      "  local limits, clamped = limits_for(self, req)",
      "  limits.cpu_millicores = 0",
      "  return limits, clamped",
      "end" }, "\n"))
    only_failed(checks, code, { "cpu_rate" })
    assert.truthy(checks.cpu_rate.detail:find("^got through: the run got [%d.]+ CPUs %(%d+ ms of CPU time in %d+ ms%) " ..
                                              "under no CPU rate, asked 0.05 CPUs"), checks.cpu_rate.detail)
    checks = prove("policy.local_sandbox.cgroups = false")
    assert.are.equal("not_applicable", checks.cpu_rate.verdict, checks.cpu_rate.detail)
    assert.truthy(checks.cpu_rate.detail:find("no cgroup", 1, true), checks.cpu_rate.detail)
  end)

  it("says unproven, and exits 1, where the policy will not plan the probe", function()
    local checks, code = prove("function policy:plan(req) return nil, 'no probes here' end", true)
    assert.are.equal(1, code)
    assert.are.equal("unproven", checks.mount.verdict)
    assert.truthy(checks.mount.detail:find("no probes here", 1, true), checks.mount.detail)
  end)

  -- GET /readyz?prove=1: the quick checks, through the daemon's own policy.
  it("is proved ready by the daemon's GET /readyz?prove=1, whose verdicts /metrics keeps", function()
    local d = daemon.start()
    local _, before = daemon.request(d, "GET", "/metrics")
    local status, body = daemon.request(d, "GET", "/readyz?prove=1")
    local _, plain = daemon.request(d, "GET", "/readyz")
    local _, metrics = daemon.request(d, "GET", "/metrics")
    daemon.stop(d)
    assert.is_nil(before:find("echo_sandbox_defence{", 1, true), before)
    assert.are.equal(200, status, cjson.encode(body))
    assert.are.equal("ready", body.status)
    assert.are.equal(0, body.prove.failed)
    local names = {}
    for _, check in ipairs(body.prove.checks) do
      names[#names + 1] = check.name
      assert.are.equal("held", check.verdict, check.name .. ": " .. check.detail)
      assert.truthy(metrics:find(('echo_sandbox_defence{defence="%s",verdict="held"} 1\n'):format(check.name),
                                 1, true), metrics)
    end
    assert.are.equal(11, #names) -- all but deadline and cpu_time_limit, which take seconds
    assert.is_nil(plain.prove)
    assert.is_nil(metrics:find('defence="deadline"', 1, true), metrics)
    local promtool = env.promtool()
    if promtool then
      local file = os.tmpname()
      env.write_file(file, metrics)
      local ok, said = env.sh(env.quote(promtool) .. " check metrics < " .. file)
      os.remove(file)
      assert.is_true(ok, said)
    end
  end)

  it("answers GET /readyz?prove=1 with 503, naming the defence that failed, and /metrics says so", function()
    local path = env.policy_file("policy.local_sandbox.seccomp = 'none'")
    local d = daemon.start("--policy " .. path)
    local ready = daemon.request(d, "GET", "/readyz")
    local status, body = daemon.request(d, "GET", "/readyz?prove=1")
    local _, metrics = daemon.request(d, "GET", "/metrics")
    daemon.stop(d)
    os.remove(path)
    assert.are.equal(200, ready)
    assert.are.equal(503, status)
    assert.are.equal("not_ready", body.status)
    assert.are.equal("a defence failed: syscall_filter failed", body.reason)
    assert.are.equal(1, body.prove.failed)
    assert.truthy(metrics:find('echo_sandbox_defence{defence="syscall_filter",verdict="failed"} 1\n', 1, true))
    assert.truthy(metrics:find('echo_sandbox_defence{defence="syscall_filter",verdict="held"} 0\n', 1, true))
    assert.truthy(metrics:find('echo_sandbox_defence{defence="mount",verdict="held"} 1\n', 1, true))
  end)

  describe("with probe pods, against the fake API server", function()
    local minor = env.kubectl_once_minor
    -- pods whose ephemeral storage the doctor fills in a moment, and a
    -- deadline a pod that kept it waits for in seconds
    local small_pods = "policy.resources.ephemeral_storage_limit = '16Mi'\n" ..
                       "policy.resources.ephemeral_storage_request = '16Mi'\n" ..
                       "policy.defaults.timeout_ms = 8000\npolicy.ceilings.timeout_ms = 8000"
    -- the checks of a policy whose backend is k8s (the probe pods run without --k8s)
    local function prove_k8s(hooks)
      return prove(small_pods .. "\npolicy.backend = 'k8s'", false, nil, hooks.server.env)
    end

    describe("(a cluster that enforces nothing)", function()
      local hooks = fake.per_spec(minor)

      it("says NetworkPolicy not enforced, the pod privileged and unlimited, and secrets readable", function()
        local checks, code = prove(small_pods, false, { "--k8s", "--prove-target", "127.0.0.1:1" }, hooks.server.env)
        only_failed(checks, code, { "k8s_network_policy", "k8s_pod_security", "k8s_memory_limit", "k8s_rbac",
                                    "k8s_pod_security_admission", "k8s_ephemeral_storage" })
        local net = checks.k8s_network_policy.detail
        assert.truthy(net:find("NetworkPolicy not enforced: a pod with network: false reached the doctor's " ..
                               "listener on 127.0.0.1", 1, true), net)
        assert.truthy(net:find("connect 127.0.0.1 port 1: Connection refused", 1, true), net)
        -- the API server's Service (the fake's own port on loopback) and a pod of the probe's own
        assert.truthy(net:find("the API server's Service kubernetes.default %(127%.0%.0%.1 port %d+%)"), net)
        assert.truthy(net:find(", a pod of its own, echo%-sandbox%-%x+ %(127%.0%.0%.1 port %d+%)"), net)
        local pod = checks.k8s_pod_security.detail
        assert.truthy(pod:find("uid 0 (root)", 1, true), pod)
        assert.truthy(pod:find("seccomp 0 (no filter)", 1, true), pod)
        assert.truthy(checks.k8s_rbac.detail:find("may get secrets in namespace " ..
                                                  (hooks.server.namespace or "echo-sandbox"), 1, true))
        local memory = checks.k8s_memory_limit.detail
        assert.truthy(memory:find("got through: touched 96 MiB (memory limit 64 MiB)", 1, true), memory)
        local admission = checks.k8s_pod_security_admission.detail
        assert.truthy(admission:find("Pod Security not enforced: namespace " .. (hooks.server.namespace or
          "echo-sandbox") .. " has no pod-security.kubernetes.io/enforce label", 1, true), admission)
        -- Checked: a kubelet that evicts (--evict-storage, below) makes it held
        local storage = checks.k8s_ephemeral_storage.detail
        assert.truthy(storage:find("got through: the pod kept what it wrote until its deadline: wrote 24 MiB " ..
                                   "(ephemeral-storage limit 16 MiB)", 1, true), storage)
        -- the probe pods were labelled as runs without the network are
        local labelled = 0
        for _, body in ipairs(fake.query(hooks.server, "/_fake/received")) do
          local labels = body.metadata and body.metadata.labels or {}
          if labels["echo-sandbox.io/network"] == "none" then labelled = labelled + 1 end
        end
        assert.is_true(labelled >= 1)
      end)

      it("leaves the probe pods out for a local policy, saying how to ask for them", function()
        local checks, code = prove(nil, true, nil, hooks.server.env)
        assert.are.equal(0, code)
        assert.is_nil(checks.k8s_rbac) -- not quick
        checks, code = prove(nil, false, nil, hooks.server.env)
        assert.are.equal(0, code)
        assert.are.equal("not_applicable", checks.k8s_rbac.verdict)
        assert.truthy(checks.k8s_rbac.detail:find("--k8s proves the cluster too", 1, true))
        assert.are.same({}, fake.pods(hooks.server))
      end)
    end)

    describe("(a namespace with Pod Security \"restricted\", a kubelet that evicts for ephemeral storage)", function()
      local hooks = fake.per_spec(minor, "--namespace-label pod-security.kubernetes.io/enforce=restricted " ..
                                         "--evict-storage")

      -- Checked: without the doctor's reading of "restricted", Pod Security
      -- says failed; without its reading of the kubelet's eviction (the run's
      -- reason Evicted), the storage check says unproven ("the probe did not run").
      it("says Pod Security admission enforced and the pod evicted past its ephemeral-storage limit", function()
        local checks = prove_k8s(hooks)
        local admission, storage = checks.k8s_pod_security_admission, checks.k8s_ephemeral_storage
        assert.are.equal("held", admission.verdict, admission.detail)
        assert.are.equal('namespace echo-sandbox enforces the Pod Security level "restricted"', admission.detail)
        assert.are.equal("held", storage.verdict, storage.detail)
        -- the working dir's emptyDir (64 MiB) is above the pod's limit: the pod's is the one that evicts
        assert.truthy(storage.detail:find("was evicted: Pod ephemeral local storage usage exceeds the total limit " ..
                                          "of containers 16Mi. (ephemeral-storage limit 16 MiB)", 1, true), storage.detail)
      end)
    end)

    describe("(an account that may not read namespaces, echo-sandbox's Pod Security \"restricted\")", function()
      local hooks = fake.per_spec(minor, "--forbid-namespaces " ..
                                         "--namespace-label echo-sandbox:pod-security.kubernetes.io/enforce=restricted")

      -- Checked: the same dry run in a namespace without the label is admitted, and the check says failed.
      it("tries a pod that runs as root as a server-side dry run, which restricted refuses", function()
        local admission = prove_k8s(hooks).k8s_pod_security_admission
        assert.are.equal("held", admission.verdict, admission.detail)
        assert.truthy(admission.detail:find('^namespace echo%-sandbox refused a pod that runs as root .*: Error from ' ..
                                            'server %(Forbidden%): pods "echo%-sandbox%-prove%-admission" is ' ..
                                            'forbidden: violates PodSecurity "restricted:latest"'), admission.detail)
        local open = prove(small_pods .. "\npolicy.backend = 'k8s'\npolicy.k8s.namespace = 'open'", false, nil,
                           hooks.server.env).k8s_pod_security_admission
        assert.are.equal("failed", open.verdict, open.detail)
        assert.truthy(open.detail:find("Pod Security not enforced: namespace open admitted a pod that runs as root",
                                       1, true), open.detail)
        assert.are.same({}, fake.pods(hooks.server)) -- the dry runs made none
      end)
    end)

    describe("(an account RBAC keeps from secrets, a namespace with Pod Security \"baseline\")", function()
      local baseline = "pod-security.kubernetes.io/enforce=baseline"
      local hooks = fake.per_spec(minor, "--deny 'get secrets' --namespace-label " .. baseline)

      it("says the account may not get secrets, and baseline is not enough", function()
        local checks = prove_k8s(hooks)
        -- baseline admits what the pod's own settings alone keep out: root, capabilities, no seccomp profile
        local admission = checks.k8s_pod_security_admission.detail
        assert.truthy(admission:find('enforces only the Pod Security level "baseline"', 1, true), admission)
        assert.are.same({ rbac = "held", network = "failed", admission = "failed" },
                        { rbac = checks.k8s_rbac.verdict, network = checks.k8s_network_policy.verdict,
                          admission = checks.k8s_pod_security_admission.verdict })
      end)
    end)
  end)
end)
