-- What a Kubernetes run ends as when the cluster's everyday life gets in its
-- way (graceful deletes, lost nodes, restarts, throttling, quotas): a result
-- that says who ended the run and why, from what the engine saw; and nothing
-- of the run alive long after its result. On the fake API server
-- (spec/support/fake_kube.py, its "pod's life" switches), kubectl 1.30 and
-- 1.35: the pod's life reaches the engine through kubectl's list and watch,
-- which 1.35 makes a streaming list (sendInitialEvents).
-- spec/run: one task per minor, the oldest and the newest of the matrix.
local env = require "spec.support.env"
local fake = require "spec.support.fake_kube"
local cjson = require "cjson"

local faults = require "spec.support.k8s_faults"

local policy = "spec/support/k8s_policy.lua"

-- The result is what the fault table (doc/kubernetes.md) says of fault id.
local expect = faults.expect

-- A program that ignores SIGTERM: only SIGKILL ends it (the ignoring is
-- inherited through exec).
local stubborn = "trap '' TERM; echo started; exec sleep 60"
-- One that ends at once, cleanly, on SIGTERM, as a well-behaved server does.
local polite = "trap 'exit 0' TERM; echo started; sleep 60 & wait"

local function query_lines(server, what)
  local out = {}
  for _, line in ipairs(fake.query(server, "/_fake/requests")) do
    if line:find(what, 1, true) then out[#out + 1] = line end
  end
  return out
end

-- Waits (an interlock, bounded for a failing engine) until no pod and no
-- container process of one is left; returns what is left.
local function settled(server)
  local pods, procs
  for _ = 1, 400 do
    pods, procs = fake.pods(server), fake.query(server, "/_fake/procs")
    if #pods == 0 and #procs == 0 then break end
    env.sleep(0.05)
  end
  return pods, procs
end

-- Starts a run of the request in the background; returns a function that
-- waits for it and returns its result, exit code and stderr, and the CLI's pid.
local function start_run(server, request, policy_path)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  request.backend = "k8s"
  env.write_file(dir .. "/in", cjson.encode(request))
  assert(os.execute(("(%s %s %s run --json --policy %s <%s/in >%s/out 2>%s/err & echo $! >%s/pid; wait $!; " ..
    "echo $? >%s/code.tmp; mv %s/code.tmp %s/code) >/dev/null 2>&1 &"):format(server.env, env.cli_prefix,
    env.quote(env.cli), policy_path or policy, dir, dir, dir, dir, dir, dir, dir)))
  local pid
  for _ = 1, 1000 do
    local f = io.open(dir .. "/pid")
    pid = f and f:read("l")
    if f then f:close() end
    if pid and pid ~= "" then break end
    env.sleep(0.01)
  end
  return function()
    while not io.open(dir .. "/code") do env.sleep(0.02) end
    local out, err = env.read_file(dir .. "/out"), env.read_file(dir .. "/err")
    local code = tonumber(env.read_file(dir .. "/code"))
    os.execute("rm -rf " .. dir)
    local ok, r = pcall(cjson.decode, out)
    assert(ok, out .. err)
    return r, code, err
  end, pid:match("%d+")
end

-- The name of the run's pod once its program has run (written its first line).
local function running_pod(server)
  for _ = 1, 1000 do
    for _, pod in ipairs(fake.pods(server)) do
      if pod.status.phase == "Running" then return pod.metadata.name end
    end
    env.sleep(0.02)
  end
  error("the pod did not run")
end

-- Once the engine watches its pods: the API server's log has the list it
-- makes beside the watch, which begins after the watch's own list (a plain
-- list before kubectl 1.35, a streaming one since).
local function watched(server)
  for _ = 1, 1000 do
    local lists, streaming = 0, false
    for _, line in ipairs(query_lines(server, "managed-by")) do
      if not line:find("watch=", 1, true) then lists = lists + 1 end
      streaming = streaming or line:find("sendInitialEvents=true", 1, true) ~= nil
    end
    if lists >= (streaming and 1 or 2) then return end
    env.sleep(0.02)
  end
  error("the engine never watched the pod")
end

-- A server of the spec's own, stopped however the spec ends.
local function server_of(minor, options)
  local server = fake.start(minor, options)
  finally(function()
    if not server.stopped then fake.stop(server) end
  end)
  return server
end

local function stop(server)
  fake.stop(server)
  server.stopped = true
end

local function no_klog(r)
  for _, text in ipairs { r.error and r.error.message or "", table.concat(r.warnings or {}, "\n"), r.cleanup_error or "" } do
    assert.is_nil(text:find("[IWEF]%d%d%d%d %d%d:%d%d:%d%d%.%d+"), text)
  end
end

-- The oldest and the newest minor of the matrix (1.30 and 1.35;
-- $ESB_SPEC_MINORS narrows it).
local all = env.kubectl_minors
local minors = { all[1], all[#all] ~= all[1] and all[#all] or nil }

for _, minor in ipairs(minors) do
  if not env.kubectl(minor) then
    describe(("kubectl 1.%d"):format(minor), function() pending(select(2, env.kubectl(minor))) end)
  else
    describe(("k8s backend, kubectl 1.%d, the pod's life"):format(minor), function()
      env.check_leaks() -- in this outer block, so it runs after the server is stopped

      describe("with the kubelet's grace", function()
        local fixture = fake.per_spec(minor, "--kubelet-grace")

        -- Checked: without terminationGracePeriodSeconds in the pod and
        -- --grace-period on the delete, the grace is the kubelet's 30 s and
        -- these fail on it. Checked: without the pod's shell passing the
        -- delete's SIGTERM on to the program (the trap of the handshake
        -- script, k8s_command.c), the shell dies of it, no SIGKILL follows
        -- for a container already ended, and the program that ignores
        -- SIGTERM is left behind: these (and the drain of that program below)
        -- fail on it; the files wrapper's trap likewise, the case with files.
        for _, files in ipairs({ false, true }) do
          it("kills a program that ignores SIGTERM within the policy's grace of its deadline" ..
             (files and ", run by the files wrapper" or ""), function()
            local server = fixture.server
            -- a deadline the program's first line comes well before, through
            -- kubectl's create and attach, on a busy machine too
            local request = { shell = stubborn, timeout_ms = 6000 }
            if files then request.files = { f = "x\n" } end
            local r = start_run(server, request)()
            expect(r, "grace_deadline")
            assert.are.equal("started\n", r.stdout)
            local body = fake.query(server, "/_fake/received")[1]
            assert.are.equal(1, body.spec.terminationGracePeriodSeconds) -- kill_grace_ms 200, rounded up
            assert.are.same({ "GRACE echo-sandbox/" .. r.pod .. " 1" }, query_lines(server, "GRACE "))
            local pods, procs = settled(server)
            assert.are.same({}, pods)
            assert.are.same({}, procs)
          end)
        end

        it("and after SIGTERM to the CLI", function()
          local server = fixture.server
          local result, pid = start_run(server, { shell = stubborn, timeout_ms = 60000 })
          local name = running_pod(server)
          os.execute("kill -TERM " .. pid)
          local r, code = result()
          assert.are.equal(143, code)
          expect(r, "grace_sigterm")
          assert.are.same({ "GRACE echo-sandbox/" .. name .. " 1" }, query_lines(server, "GRACE "))
          local pods, procs = settled(server)
          assert.are.same({}, pods)
          assert.are.same({}, procs)
        end)

      end)

      describe("with the kubelet's grace and finalizers", function()
        local fixture = fake.per_spec(minor, "--kubelet-grace --finalizer")

        -- Checked: without deletionTimestamp read from the watch
        -- (pod_cannot_finish in k8s.c), the program that exits 0 on SIGTERM
        -- is reported `exited 0`; the one that ignores it is then still
        -- caught by the get after kubectl failed (decide), and without that
        -- too is `signaled 9`.
        for _, program in ipairs { polite, stubborn } do
          it("ends as Deleted, retryable, when its pod is drained while the program runs: " .. program, function()
            local server = fixture.server
            local result = start_run(server, { shell = program, timeout_ms = 60000 })
            local name = running_pod(server)
            watched(server)
            fake.query(server, "/_fake/drain/" .. name, "{}")
            local r = result()
            assert.are.equal("backend_error", r.error and r.error.code, cjson.encode(r) ..
                             table.concat(fake.query(server, "/_fake/requests"), "\n"))
            expect(r, "drained")
            assert.truthy(r.error.message:find("deleted", 1, true), r.error.message)
            assert.is_true(r.duration_ms < 30000, tostring(r.duration_ms)) -- well before the deadline
            fake.query(server, "/_fake/finalize/" .. name, "{}") -- what held the pod is done
            local pods, procs = settled(server)
            assert.are.same({}, pods)
            assert.are.same({}, procs)
          end)
        end
      end)

      describe("with the kubelet's grace and a pod drained at its first output", function()
        local fixture = fake.per_spec(minor, "--kubelet-grace --drain-at-output")

        -- Checked: without the list beside the watch (k8s_watch.c
        -- start_list), the run waits for its deadline and is `timed_out`
        -- (and the drain specs above never see it: they wait for that list).
        it("ends as Deleted when its pod went before the watch started", function()
          local server = fixture.server
          local r = start_run(server, { shell = polite, timeout_ms = 60000 })()
          expect(r, "drained_early")
          assert.is_true(r.duration_ms < 30000, tostring(r.duration_ms))
          local pods, procs = settled(server)
          assert.are.same({}, pods)
          assert.are.same({}, procs)
        end)
      end)

      describe("with watches that break", function()
        -- Checked: without the list beside the watch, `timed_out` at the deadline.
        it("ends as Deleted when its pod went while the watch was down (410 Expired)", function()
          local server = server_of(minor, "--kubelet-grace --watch-expired 1000")
          local result = start_run(server, { shell = polite, timeout_ms = 60000 })
          local name = running_pod(server)
          for _ = 1, 1000 do -- once a watch has answered 410
            local n = 0
            for _, line in ipairs(query_lines(server, "watch=")) do
              if line:find("managed-by", 1, true) then n = n + 1 end
            end
            if n >= 2 then break end
            env.sleep(0.02)
          end
          fake.query(server, "/_fake/drain/" .. name, "{}")
          local r = result()
          local pods, procs = settled(server)
          stop(server)
          expect(r, "watch_expired")
          assert.is_true(r.duration_ms < 30000, tostring(r.duration_ms))
          assert.are.same({}, pods)
          assert.are.same({}, procs)
        end)
      end)

      describe("on nodes that go wrong", function()
        local fixture = fake.per_spec(minor)

        -- Checked: without pod_cannot_finish (k8s.c) each waits for the
        -- deadline and is `timed_out`.
        for _, case in ipairs {
          { "unknown", "phase Unknown", {}, fault = "unknown" },
          { "notready", "not ready", { not_ready_grace_ms = "300" }, fault = "notready" },
          { "restart", "restarted", {}, fault = "restart" },
        } do
          it(("ends early as %s, retryable, when the pod is %s"):format(faults.by_id[case[1]][4], case[1]),
             function()
            fake.needs("/_fake/" .. case[1] .. " (the node " .. case[2] .. ")")
            local server = fixture.server
            local result = start_run(server, { shell = "echo started; exec sleep 60", timeout_ms = 60000,
                                               labels = case[3] })
            local name = running_pod(server)
            watched(server)
            fake.query(server, "/_fake/" .. case[1] .. "/" .. name, "{}")
            local r = result()
            expect(r, case.fault)
            assert.truthy(r.error.message:find(case[2], 1, true), r.error.message)
            assert.is_true(r.duration_ms < 30000, tostring(r.duration_ms))
            local pods, procs = settled(server)
            assert.are.same({}, pods)
            assert.are.same({}, procs)
          end)
        end

        -- Checked: without `restartPolicy = "Never"` in k8s_pod.lua the pod
        -- crash-loops (the run then ends as CrashLoopBackOff, not exited 1).
        it("keeps restartPolicy Never whatever the site policy says", function()
          local server = fixture.server
          local path = env.policy_file([[
local pod_for = policy.pod_for
function policy:pod_for(req, resources)
  local pod = pod_for(self, req, resources)
  pod.spec.restartPolicy = "Always"
  pod.spec.terminationGracePeriodSeconds = 30
  return pod
end]])
          local result = start_run(server, { shell = "echo once; exit 1", timeout_ms = 60000 }, path)
          local r, code = result()
          os.remove(path)
          expect(r, "restart_policy")
          assert.are.equal(1, code)
          assert.are.equal("once\n", r.stdout)
          local body = fake.query(server, "/_fake/received")[1]
          assert.are.equal("Never", body.spec.restartPolicy)
          assert.are.equal(1, body.spec.terminationGracePeriodSeconds)
        end)
      end)

      describe("with an API server that goes away while the program runs", function()
        -- Checked: with kubectl's klog lines cut to their message
        -- (esb_kubectl_unklog, as before), the cleanup_error held five
        -- "couldn't get current server API group list: Get ...: dial tcp
        -- ...: connect: connection refused" lines before kubectl's error.
        it("says the get and the delete failed in kubectl's words, without its klog lines", function()
          fake.needs("process, to stop while the program runs")
          local path = env.policy_file("policy.k8s.delete_timeout_ms = 1500")
          local server = server_of(minor)
          -- its kubeconfig outlives it (stop removes its own); no discovery
          -- cache: each kubectl asks the API server what it serves (and logs
          -- each failure to, a klog line)
          local kubeconfig = os.tmpname()
          finally(function() os.remove(kubeconfig) end)
          env.write_file(kubeconfig, env.read_file(server.kubeconfig))
          server.env = fake.kubectl_env(minor, kubeconfig) .. " KUBECACHEDIR=/dev/null/none"
          local result = start_run(server, { shell = "echo started; exec sleep 60", timeout_ms = 60000 }, path)
          running_pod(server)
          stop(server) -- its port is closed from now on, its pods' processes killed
          local r = result()
          os.remove(path)
          assert.are.equal("error", r.status, cjson.encode(r))
          assert.truthy(r.cleanup_error, cjson.encode(r))
          -- kubectl's error, where its last try was not cut by the budget's end
          assert.truthy(r.cleanup_error:find("^kubectl delete pod %S+ failed %(%d+ tries%): The connection to the " ..
                                             "server [%d.:]+ was refused") or
                        r.cleanup_error:find("^kubectl delete pod %S+ timed out %(%d+ tries%)"), r.cleanup_error)
          for _, text in ipairs { r.error.message, r.cleanup_error, table.concat(r.warnings or {}, "\n") } do
            assert.is_nil(text:find("API group list", 1, true), text)
          end
          no_klog(r)
        end)
      end)

      describe("with a restartPolicy that a mutating admission webhook sets", function()
        -- Checked: without CrashLoopBackOff and the restart count in
        -- pod_cannot_finish (k8s.c), the run waits for its deadline, as
        -- kubectl waits for a pod that never completes, and is timed_out.
        it("ends early as CrashLoopBackOff when the kubelet restarts the program that exited", function()
          local server = server_of(minor, "--mutate-restart-policy Always")
          local r = start_run(server, { shell = "echo once; exit 1", timeout_ms = 60000 })()
          local pods, procs = settled(server)
          local body = fake.query(server, "/_fake/received")[1]
          stop(server)
          expect(r, "crashloop")
          assert.are.equal("Never", body.spec.restartPolicy) -- as the engine sent it
          assert.truthy(r.error.message:find("restarted", 1, true), r.error.message)
          assert.are.equal("once\n", r.stdout)
          assert.is_true(r.duration_ms < 30000, tostring(r.duration_ms))
          assert.are.same({}, pods)
          assert.are.same({}, procs)
        end)
      end)

      describe("with a create whose answer is cut mid-body (the pod exists)", function()
        -- Checked: without the probe (k8s.c answer_lost), the create is tried
        -- again, meets its own pod (409) and ends as a backend_error that is
        -- not retryable.
        it("adopts its own pod: the program runs once, with its stdin, and its exit code is the result", function()
          local server = server_of(minor, "--cut-create 1")
          local r, code = start_run(server, { shell = "read x; echo got $x; echo err >&2; exit 3",
                                              stdin = "hello\n", timeout_ms = 60000 })()
          local creates = #query_lines(server, "CREATED ")
          local pods, procs = settled(server)
          stop(server)
          expect(r, "adopted")
          assert.are.equal(3, code)
          assert.are.equal("got hello\n", r.stdout)
          assert.are.equal("err\n", r.stderr)
          assert.are.equal(1, creates)
          assert.are.same({}, pods)
          assert.are.same({}, procs)
        end)

        -- Checked: without the instance label's check in probe_done, the run
        -- attaches to the other pod and deletes it.
        it("leaves a pod of its name that is not its own alone, and says so", function()
          local server = server_of(minor, "--cut-create 1 --foreign-pod")
          local r = start_run(server, { shell = "echo hi", timeout_ms = 60000 })()
          local left = fake.pods(server)
          fake.query(server, "/_fake/delete/" .. r.pod, "{}") -- its owner's part
          local pods, procs = settled(server)
          stop(server)
          expect(r, "not_ours")
          assert.truthy(r.error.message:find("not this run's", 1, true), r.error.message)
          assert.are.equal(1, #left) -- not deleted
          assert.are.same({}, pods)
          assert.are.same({}, procs)
        end)
      end)

      describe("with an API server that says no for now", function()
        -- Checked: without `throttled` (k8s.c), the first is "the API server
        -- is unreachable or does not answer" (KubectlTimeout) and the second
        -- a bare backend_error.
        for _, case in ipairs {
          { "--throttle 1000000", "with Retry-After" },
          { "--throttle 1000000 --retry-after -1", "without Retry-After" },
        } do
          it("says a run throttled until its deadline (429 " .. case[2] .. ") was throttled, and retryable", function()
            -- the get after the deadline has half of it: time for kubectl to
            -- say why it gave up
            local path = env.policy_file("policy.k8s.delete_timeout_ms = 6000")
            local server = server_of(minor, case[1])
            local r = start_run(server, { shell = "echo hi", timeout_ms = 2500 }, path)()
            local pods = fake.pods(server)
            stop(server)
            os.remove(path)
            expect(r, "throttled")
            assert.truthy(r.error.message:find("throttled", 1, true), r.error.message)
            assert.is_nil(r.error.message:find("unreachable", 1, true), r.error.message)
            no_klog(r)
            assert.are.same({}, pods)
          end)
        end

        -- Checked: without the quota case in decide (k8s.c), retryable is false.
        it("says a create refused for the namespace's quota is quota, at once, and retryable", function()
          local server = server_of(minor, "--quota")
          local r = start_run(server, { shell = "echo hi", timeout_ms = 60000 })()
          local pods = fake.pods(server)
          stop(server)
          expect(r, "quota")
          assert.truthy(r.error.message:find("quota", 1, true), r.error.message)
          assert.is_true(r.duration_ms < 30000, tostring(r.duration_ms))
          no_klog(r)
          assert.are.same({}, pods)
        end)
      end)
    end)
  end
end
