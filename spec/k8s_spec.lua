local env = require "spec.support.env"
local fake = require "spec.support.fake_kube"
local cjson = require "cjson"
local expect = require("spec.support.k8s_faults").expect

local policy = "spec/support/k8s_policy.lua"

-- Runs a request on the k8s backend through `run --json`.
local function run(server, request, extra_env)
  request.backend = "k8s"
  local out, err, code = env.cli_run({ "run", "--json", "--policy", policy }, cjson.encode(request),
                                     server.env .. " " .. (extra_env or ""))
  local ok, result = pcall(cjson.decode, out)
  assert(ok, "no JSON result: " .. out .. err)
  return result, code, err
end

-- One run on a server of its own, started with options; inspect(server),
-- when given, runs before the server stops. Returns the result, the exit
-- code, stderr and what inspect returned.
local function run_alone(minor, options, args, request, inspect)
  local server = fake.start(minor, options)
  local out, err, code = env.cli_run(args, request and cjson.encode(request), server.env)
  local seen = inspect and inspect(server)
  fake.stop(server)
  local ok, r = pcall(cjson.decode, out)
  return ok and r or out, code, err, seen
end

-- A kubectl of the matrix's minor in dir/kubectl that writes each
-- command's first two words (past the connection flags) to dir/log, then
-- runs the matrix's kubectl; from create try hang_from on (where given), it
-- sleeps instead, a try whose answer never comes, until the run's deadline
-- kills it.
local function logging_kubectl(minor, dir, hang_from)
  env.write_file(dir .. "/kubectl", ("#!/bin/sh\nn=0\nfor a; do case $a in --*) continue;; esac; " ..
    "n=$((n + 1)); [ $n = 1 ] && verb=$a; printf '%%s ' \"$a\"; [ $n = 2 ] && break; done >> %s/log\n" ..
    "echo >> %s/log\n[ \"$verb\" = run ] && [ \"$(grep -c '^run ' %s/log)\" -ge %d ] && exec sleep 600\n" ..
    "exec %s \"$@\"\n"):format(dir, dir, dir, hang_from or 1000000, env.quote(assert(env.kubectl(minor)))))
  assert(os.execute("chmod +x " .. dir .. "/kubectl"))
  return dir .. "/kubectl"
end

-- The commands dir/log holds (logging_kubectl), by their first word: how
-- many creates ("run"), and the others in order, but for the pod watch's.
local function logged(dir)
  local runs, others = 0, {}
  for line in env.read_file(dir .. "/log"):gmatch("[^\n]+") do
    if line:find("^run ") then runs = runs + 1
    elseif line ~= "get pods " then others[#others + 1] = line:match("^%S+") end
  end
  return runs, others
end

-- The kubectl matrix (each against a fake API server reporting its minor):
-- a run is `kubectl run --attach`, and kubectl's version changes what it
-- does there. It waits for the pod by a list and a watch, which 1.30-1.31
-- ask for as JSON, 1.32-1.34 as protobuf first, and 1.35 as a streaming
-- list (sendInitialEvents, a bookmark at its end); the attach, its streams,
-- retries and error words are client-go's of that version. So every case
-- that gets as far as a pod runs on the oldest and the newest
-- (env.each_oldest_newest_kubectl: 1.30 and 1.35), and CI runs the middle
-- way, 1.33's, in two more steps with the release build (.ci/run: a run's
-- life under valgrind, and every file with spec/run --kubeconfig);
-- ESB_SPEC_MINORS=33 runs it here (of the minors named, the first and the
-- last). A case whose
-- requests are the same from every kubectl (refused before or at the
-- create: the fake's request log is the same on all six) runs on one
-- (env.kubectl_once).
-- spec/run: one task per minor, the oldest and the newest of the matrix.
env.each_oldest_newest_kubectl(function(minor)
  describe(("k8s backend, kubectl 1.%d"):format(minor), function()
    env.check_leaks() -- in this outer block, so it runs after the server is stopped
    describe("on a fake API server", function()
      local fixture = fake.per_spec(minor, "--forbid forbidden-ns")
      local server
      before_each(function() server = fixture.server end)

      it("runs python in a restricted pod and deletes it", function()
        local r, code = run(server, { language = "python", code = "print(6*7)" })
        assert.are.equal(0, code)
        assert.are.equal(0, r.exit_code)
        assert.are.equal("42\n", r.stdout)
        assert.are.equal("k8s", r.sandbox_type)
        assert.truthy(r.pod:find("^echo%-sandbox%-%x+$"))
        local bodies = fake.query(server, "/_fake/received")
        assert.are.equal(1, #bodies)
        local pod = bodies[1]
        local c = pod.spec.containers[1]
        assert.are.equal(r.pod, pod.metadata.name)
        assert.are.equal(r.pod, c.name)
        assert.are.equal("python:3.12-slim", c.image)
        local argv = table.concat(c.command or {}, " ") .. " " .. table.concat(c.args or {}, " ")
        -- the code is in a file of the pod (spec/k8s_files_spec.lua), argv runs it
        assert.truthy(argv:find(" python3 main.py%s*$"), argv)
        assert.is_nil(argv:find("print(6*7)", 1, true), argv)
        assert.are.same({ requests = { cpu = "100m", memory = "64Mi", ["ephemeral-storage"] = "64Mi" },
                      limits = { cpu = "1", memory = "256Mi", ["ephemeral-storage"] = "512Mi" } },
                        c.resources)
        assert.is_false(c.securityContext.allowPrivilegeEscalation)
        assert.are.same({ "ALL" }, c.securityContext.capabilities.drop)
        assert.is_true(pod.spec.securityContext.runAsNonRoot)
        assert.are.equal("RuntimeDefault", pod.spec.securityContext.seccompProfile.type)
        assert.is_false(pod.spec.automountServiceAccountToken)
        assert.are.equal("echo-sandbox", pod.metadata.labels["app.kubernetes.io/managed-by"])
        assert.are.equal("none", pod.metadata.labels["echo-sandbox.io/network"])
        assert.are.equal(30, pod.spec.activeDeadlineSeconds)
        assert.are.equal("Never", pod.spec.restartPolicy)
        assert.is_true(c.stdin)
        assert.is_nil(c.tty)
        -- a read-only root with writable emptyDirs for /tmp and the working dir
        assert.is_true(c.securityContext.readOnlyRootFilesystem)
        assert.are.equal("/work", c.workingDir)
        assert.are.same({ { name = "tmp", mountPath = "/tmp" }, { name = "work", mountPath = "/work" } },
                        c.volumeMounts)
        assert.are.same({ { name = "tmp", emptyDir = { sizeLimit = "64Mi" } },
                          { name = "work", emptyDir = { sizeLimit = "256Mi" } } }, pod.spec.volumes)
      end)

      it("keeps stdout and stderr apart and reports exit code 3, without kubectl's words", function()
        local r, code = run(server, { shell = "echo out; echo err >&2; exit 3" })
        assert.are.equal(3, code)
        assert.are.equal("exited", r.status)
        assert.are.equal(3, r.exit_code)
        assert.are.equal("out\n", r.stdout)
        assert.are.equal("err\n", r.stderr)
      end)

      it("captures a program that prints at once and exits (the handshake)", function()
        local r = run(server, { program = "echo", args = { "fast" } })
        assert.are.equal("fast\n", r.stdout)
      end)

      it("round-trips 1 MB of stdin through cat", function()
        local data = ("0123456789abcdef"):rep(65536)
        local r = run(server, { program = "cat", stdin = data, limits = { max_output_bytes = #data } })
        assert.are.equal(0, r.exit_code)
        assert.are.equal(#data, r.stdout_bytes)
        assert.is_true(r.stdout == data)
      end)

      -- The deadline is the program's only where the program ran then
      -- (a deadline that passes before kubectl attached is KubectlTimeout):
      -- 8 s leaves kubectl time to attach on a loaded machine, and the
      -- program says it began.
      it("times out, and the pod is deleted", function()
        local r, code = run(server, { shell = "echo started; sleep 30", timeout_ms = 8000 })
        assert.are.equal(124, code, cjson.encode(r))
        assert.are.equal("timed_out", r.status)
        assert.is_true(r.timed_out)
        assert.are.equal("started\n", r.stdout)
        assert.is_true(r.duration_ms < 20000) -- well before the program's 30 s
      end)

      it("reports OOMKilled", function()
        local r, code = run(server, { shell = "echo started", labels = { image = "x-fake-oom" } })
        assert.are.equal("oom_killed", r.status)
        assert.are.equal("OOMKilled", r.reason)
        assert.are.equal(137, code)
      end)

      it("reports a program killed by a signal as signaled, with the signal", function()
        local r, code = run(server, { shell = "echo started; kill -9 $$" })
        assert.are.equal("signaled", r.status, cjson.encode(r))
        assert.are.equal(9, r.signal)
        assert.are.equal(137, code)
        assert.are.equal("started\n", r.stdout)
      end)

      it("reports DeadlineExceeded as a timeout", function()
        local r = run(server, { shell = "sleep 30", labels = { deadline = "1" } })
        assert.are.equal("timed_out", r.status)
        assert.are.equal("DeadlineExceeded", r.reason)
        assert.is_false(r.killed_by_us)
      end)

      it("reports a pod that stays Pending as a backend error with the scheduler's message", function()
        local r, code = run(server, { shell = "true", timeout_ms = 2000, labels = { image = "fake-pending" } })
        assert.are.equal(125, code)
        assert.are.equal("backend_error", r.error.code)
        expect(r, "pending")
        assert.truthy(r.error.message:find("Insufficient cpu", 1, true), r.error.message)
      end)

      it("ends at once when the image cannot be pulled, naming the image and the pull error", function()
        local r, code = run(server, { shell = "true", timeout_ms = 60000, labels = { image = "nosuch-fake-pull-error" } })
        assert.are.equal(125, code)
        assert.are.equal("backend_error", r.error.code, r.error.message)
        expect(r, "image_pull")
        assert.truthy(r.error.message:find("nosuch-fake-pull-error", 1, true), r.error.message)
        assert.truthy(r.error.message:find("not found", 1, true) or r.error.message:find("Back-off", 1, true),
                      r.error.message)
        assert.is_true(r.duration_ms < 30000, tostring(r.duration_ms)) -- well before the deadline
      end)

      it("ends a run whose pod stays unschedulable after the policy's grace, with the scheduler's message", function()
        local r = run(server, { shell = "true", timeout_ms = 60000,
                                labels = { image = "fake-pending", unschedulable_grace_ms = "300" } })
        assert.are.equal("backend_error", r.error.code)
        expect(r, "unschedulable")
        assert.truthy(r.error.message:find("0/1 nodes are available", 1, true), r.error.message)
        assert.is_true(r.duration_ms < 30000, tostring(r.duration_ms))
      end)

      -- Starts a run of shell in the background and returns a function that
      -- waits for its result; the pod runs (its program started) by then.
      local function run_started(shell)
        local dir = os.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir " .. dir))
        env.write_file(dir .. "/in", cjson.encode { backend = "k8s", shell = shell, timeout_ms = 60000 })
        assert(os.execute(("(%s %s %s run --json --policy %s <%s/in >%s/out 2>%s/err; echo $? >%s/code.tmp; " ..
          "mv %s/code.tmp %s/code) &"):format(server.env, env.cli_prefix, env.quote(env.cli), policy, dir, dir,
          dir, dir, dir, dir)))
        local name
        for _ = 1, 1000 do
          for _, pod in ipairs(fake.pods(server)) do
            if pod.status.phase == "Running" then name = pod.metadata.name end
          end
          if name then break end
          env.sleep(0.02)
        end
        assert.truthy(name, "the pod did not run")
        return name, function()
          while not io.open(dir .. "/code") do env.sleep(0.02) end
          local out, err = env.read_file(dir .. "/out"), env.read_file(dir .. "/err")
          os.execute("rm -rf " .. dir)
          local ok, r = pcall(cjson.decode, out)
          assert(ok, out .. err)
          return r
        end
      end

      -- What the cluster does to a running pod, and what the result says.
      for _, case in ipairs {
        { "evict", "Evicted", "low on resource: memory", "reports a pod evicted while the program runs, with the kubelet's message",
          fault = "evicted" },
        { "delete", "Deleted", "was deleted", "ends at once when its pod is deleted from outside", fault = "deleted" },
      } do
        it(case[4], function()
          fake.needs("/_fake/" .. case[1] .. " (the pod " .. case[2]:lower() .. " from outside)")
          local name, result = run_started("echo started; exec sleep 60")
          -- once the engine watches its pods, its list done (the API server's
          -- request log says so: the watch of the managed-by label)
          local watched
          for _ = 1, 1000 do
            for _, line in ipairs(fake.query(server, "/_fake/requests")) do
              watched = watched or (line:find("watch=", 1, true) and line:find("managed-by", 1, true))
            end
            if watched then break end
            env.sleep(0.02)
          end
          assert.truthy(watched, "the engine never watched the pod")
          fake.query(server, "/_fake/" .. case[1] .. "/" .. name, "{}")
          local r = result()
          assert.truthy(r.error, cjson.encode(r))
          assert.are.equal("backend_error", r.error.code, r.error.message)
          assert.are.equal(case[2], r.reason)
          expect(r, case.fault)
          assert.truthy(r.error.message:find(case[3], 1, true), r.error.message)
          assert.is_true(r.duration_ms < 30000, tostring(r.duration_ms)) -- well before the deadline
        end)
      end

      it("survives an API server that is unreachable for a while mid-run: a clear error, and the delete gets through", function()
        fake.needs("/_fake/outage (unreachable for a while)")
        local name, result = run_started("echo started; exec sleep 60")
        fake.query(server, "/_fake/outage/2", "{}")
        local r = result()
        assert.truthy(r.error, cjson.encode(r))
        assert.are.equal("backend_error", r.error.code, r.error.message)
        expect(r, "outage")
        assert.is_nil(r.cleanup_error) -- tried again until the API server was back
        assert.is_nil(r.error.message:find("E%d%d%d%d "), r.error.message)
        assert.is_nil(r.stderr:find("E%d%d%d%d "), r.stderr)
        assert.are.same({}, fake.pods(server))
        assert.truthy(name)
      end)

      it("deletes its pod when it gets SIGTERM, before it exits with 143", function()
        local script = table.concat({
          "%s %s %s run --backend k8s --policy %s --shell 'echo started; exec sleep 30' >/dev/null 2>&1 & pid=$!",
          "for i in $(seq 1000); do %s | grep -q Running && break; sleep 0.02; done",
          "kill -TERM $pid; wait $pid; echo $?",
          "%s" }, "\n")
        local pods = fake.query_sh(server, "/_fake/pods")
        local p = io.popen(script:format(server.env, env.cli_prefix, env.quote(env.cli), policy, pods, pods))
        local code = p:read("n")
        local pods_after = cjson.decode(p:read("a"))
        p:close()
        assert.are.equal(143, code)
        assert.are.same({}, pods_after)
      end)
    end)
  end)

  -- Refused before the create, or by it: no pod, no attach, and the same
  -- requests from every kubectl of the matrix (one POST, or none).
  env.kubectl_once(minor)(("k8s backend, kubectl 1.%d, a run refused before or at its create"):format(minor),
                          function()
    env.check_leaks()
    describe("on a fake API server", function()
      local fixture = fake.per_spec(minor, "--forbid forbidden-ns")
      local server
      before_each(function() server = fixture.server end)

      it("refuses an env name the API server would refuse, before it creates anything", function()
        local r, code = run(server, { shell = "true", env = { ["1ST"] = "x" } })
        assert.are.equal(125, code)
        assert.are.equal("invalid_request", r.error.code)
        assert.truthy(r.error.message:find("env name '1ST'", 1, true), r.error.message)
        assert.are.same({}, fake.query(server, "/_fake/received"))
      end)

      it("refuses a shell line too large for kubectl's command line, naming it, before it creates anything",
         function()
        -- (code goes into a file of the pod: spec/k8s_files_spec.lua)
        local r, code = run(server, { shell = "true\n" .. ("#" .. ("y"):rep(99) .. "\n"):rep(1800) })
        assert.are.equal(125, code)
        assert.are.equal("invalid_request", r.error.code, r.error.message)
        assert.truthy(r.error.message:find("shell line", 1, true), r.error.message)
        assert.are.same({}, fake.query(server, "/_fake/received"))
      end)

      it("reports a forbidden create as a backend error with the API server's message", function()
        fake.needs("--forbid (a namespace it refuses)")
        local r, code = run(server, { shell = "true", labels = { namespace = "forbidden-ns" } })
        assert.are.equal(125, code)
        assert.are.equal("backend_error", r.error.code)
        assert.truthy(r.error.message:find("forbidden", 1, true), r.error.message)
        assert.are.equal("", r.stderr)
      end)
    end)
  end)

  describe(("k8s backend, kubectl 1.%d, an attach that breaks"):format(minor), function()
    env.check_leaks()

    it("is an error that keeps the output and says it is incomplete, without kubectl's words", function()
      local r, code, err = run_alone(minor, "--drop-attach-at one", { "run", "--json", "--policy", policy },
                                     { backend = "k8s", shell = "echo one; sleep 1; echo two >&2; sleep 1; echo three" })
      assert.are.equal(125, code, err)
      assert.are.equal("backend_error", r.error.code, cjson.encode(r))
      expect(r, "attach_dropped")
      assert.truthy(r.error.message:find("incomplete", 1, true), r.error.message)
      assert.truthy(r.stdout:find("^one\n"), r.stdout)
      for _, word in ipairs { "Unhandled Error", "falling back", "couldn't attach", "websocket" } do
        assert.is_nil(r.stderr:find(word, 1, true), r.stderr)
        assert.is_nil(r.error.message:find(word, 1, true), r.error.message)
      end
    end)
  end)

  describe(("k8s backend, kubectl 1.%d, pods/attach forbidden"):format(minor), function()
    env.check_leaks()

    it("ends the run at once, naming the missing permission", function()
      local r, code, err = run_alone(minor, "--deny-attach", { "run", "--json", "--policy", policy },
                                     { backend = "k8s", shell = "echo never", timeout_ms = 60000 })
      assert.are.equal(125, code, err)
      assert.are.equal("backend_error", r.error.code, cjson.encode(r))
      expect(r, "attach_forbidden")
      assert.truthy(r.error.message:find("pods/attach", 1, true), r.error.message)
      assert.is_true(r.duration_ms < 30000, tostring(r.duration_ms)) -- not the deadline
    end)
  end)

  describe(("k8s backend, kubectl 1.%d, an API server that stops answering"):format(minor), function()
    env.check_leaks()

    it("is kubectl not answering, not the program's timeout, and all after the deadline is bounded", function()
      local path = env.policy_file("policy.k8s.delete_timeout_ms = 2000")
      local started = os.time()
      local r, code, err = run_alone(minor, "--hang-after-create", { "run", "--json", "--policy", path },
                                     { backend = "k8s", shell = "true", timeout_ms = 3000 })
      local took = os.time() - started
      os.remove(path)
      assert.are.equal(125, code, err)
      assert.are.equal("backend_error", r.error.code, cjson.encode(r))
      expect(r, "hung")
      assert.truthy(r.error.message:find("did not answer", 1, true), r.error.message)
      assert.truthy(r.cleanup_error, cjson.encode(r)) -- the delete could not be sent either
      -- the deadline (3 s), then get and delete in one 2 s budget; os.time's
      -- whole seconds and a loaded machine get the rest (under valgrind,
      -- which runs the CLI many times slower, 30 s: a loaded machine took 16)
      assert.is_true(took <= (env.wrapped and 30 or 10), took .. " s")
    end)
  end)

  describe(("k8s backend, kubectl 1.%d, many runs at once"):format(minor), function()
    env.check_leaks()

    it("share one pod watch", function()
      local lines = {}
      for i = 1, 3 do lines[i] = cjson.encode { id = i, backend = "k8s", shell = "sleep 2; echo " .. i } end
      local server = fake.start(minor)
      local out, err, code = env.cli_run({ "batch", "-j", "3", "--policy", policy }, table.concat(lines, "\n") .. "\n",
                                         server.env)
      local watches = 0
      for _, line in ipairs(fake.query(server, "/_fake/requests")) do
        if line:find("watch=", 1, true) and line:find("managed-by", 1, true) then watches = watches + 1 end
      end
      local left = fake.pods(server)
      fake.stop(server)
      assert.are.equal(0, code, err)
      local seen = {}
      for text in out:gmatch("[^\n]+") do
        local r = cjson.decode(text)
        seen[r.id] = r.stdout
      end
      assert.are.same({ "1\n", "2\n", "3\n" }, seen)
      assert.are.equal(1, watches) -- every run lasted past the watch's start
      assert.are.same({}, left)
    end)
  end)

  describe(("k8s backend, kubectl 1.%d, an API server that cannot be reached"):format(minor), function()
    env.check_leaks()

    -- A policy whose delete gives up after 1 s (at a closed door).
    local quick_delete
    setup(function() quick_delete = env.policy_file("policy.k8s.delete_timeout_ms = 1000") end)
    teardown(function() os.remove(quick_delete) end)

    -- Checked: without esb_kubectl_unreachable in create_may_succeed_later
    -- (k8s.c), the closed port's create was tried once, not retryable, its
    -- reason backend_error, and a get and 8 deletes followed (the CLI ended
    -- 8.9 s after the result was known). Without the run's `unreachable`
    -- (no try connected), both end as backend_error, after a get and the
    -- deletes. Without decide_refused_then_cut (k8s.c), a try the deadline
    -- cut short made the result KubectlTimeout, "kubectl did not answer"
    -- (the last case: its second try never answers; on a loaded machine, a
    -- try of the others may be cut too, and the result says so). 6 s: a
    -- next try starts only where the deadline leaves twice what the last
    -- took, and under ASan beside the VM a first try took over a second
    -- (2.5 s left room for one try alone).
    for _, case in ipairs {
      { "a closed port", "was refused - did you specify the right host or port?", fault = "unreachable" },
      { "a plain HTTP server at an https address", "tls: first record does not look like a TLS handshake",
        fault = "unreachable" },
      { "a closed port, the deadline cutting the second try short (the pod it may have made read and deleted)",
        "was refused - did you specify the right "
        .. "host or port?", fault = "unreachable", cut = 2 },
    } do
      it(("tries the create again until the deadline, and reads or deletes no pod that was never made: %s")
           :format(case[1]), function()
        fake.needs("port, to close or to dial with TLS")
        local dir = env.temp_dir()
        local holder -- of the closed port
        finally(function()
          if holder then
            os.execute("kill " .. holder)
            env.wait_ended(holder)
          end
          os.execute("rm -rf " .. dir)
        end)
        local server = fake.start(minor)
        local kubeconfig = env.read_file(server.kubeconfig)
        if case[1]:find("^a closed port") then
          fake.stop(server)
          server = nil
          -- not the fake's port once closed: another task's next server could take it (a kubectl of
          -- this run once got that one's NotFound); a port held bound, never listening, refuses all
          local port
          holder, port = env.helper_port("closed-port")
          kubeconfig = kubeconfig:gsub("127%.0%.0%.1:%d+", "127.0.0.1:" .. port)
        else
          kubeconfig = kubeconfig:gsub('server: "http:', 'server: "https:')
        end
        env.write_file(dir .. "/kubeconfig", kubeconfig)
        local kubectl = logging_kubectl(minor, dir, case.cut)
        local out, err, code = env.cli_run({ "run", "--json", "--policy", quick_delete },
          cjson.encode { backend = "k8s", shell = "echo never", timeout_ms = case.cut and 8000 or 6000 },
          ("KUBECONFIG=%s ECHO_SANDBOX_KUBECTL=%s"):format(env.quote(dir .. "/kubeconfig"), env.quote(kubectl)))
        local left = server and fake.pods(server) or {}
        if server then fake.stop(server) end
        local ok, r = pcall(cjson.decode, out)
        assert(ok, out .. err)
        assert.are.equal(125, code, err)
        expect(r, case.fault)
        assert.are.equal("backend_error", r.error.code)
        assert.truthy(r.error.message:find("API server is unreachable", 1, true), r.error.message)
        assert.truthy(r.error.message:find(case[2], 1, true), r.error.message)
        assert.is_nil(r.error.message:find("[IWEF]%d%d%d%d %d%d:%d%d"), r.error.message)
        local runs, others = logged(dir)
        local cut = tonumber(r.error.message:match("cut try (%d+) short"))
        assert.are.equal(case.cut, case.cut and cut, r.error.message)
        if cut then
          -- that try may have connected: its pod looked for, its delete tried, at a closed door
          assert.are.equal(cut, runs)
          assert.are.same({ "get", "delete" }, { others[1], others[#others] })
          assert.truthy(r.cleanup_error, cjson.encode(r))
        else
          assert.is_true(runs >= 2, runs .. " creates") -- tried again
          assert.are.same({}, others) -- no get or delete of a pod never made
          assert.is_nil(r.cleanup_error)
        end
        assert.are.same({}, left)
      end)
    end
  end)

  describe(("k8s backend, kubectl 1.%d, creates that fail"):format(minor), function()
    env.check_leaks()

    it("tries a create the API server refused for now again, and the run goes on", function()
      local posts = 0
      local r, code, err = run_alone(minor, "--fail-create 2", { "run", "--json", "--policy", policy },
                                     { backend = "k8s", shell = "echo done" }, function(server)
        for _, line in ipairs(fake.query(server, "/_fake/requests")) do
          if line:find("^POST /api/v1/namespaces/[^/]+/pods") then posts = posts + 1 end
        end
      end)
      assert.are.equal(0, code, err)
      assert.are.equal("done\n", r.stdout)
      assert.are.equal(3, posts)
    end)
  end)

  -- Every create refused: the same POSTs from every kubectl of the matrix.
  env.kubectl_once(minor)(("k8s backend, kubectl 1.%d, creates that keep failing"):format(minor), function()
    env.check_leaks()

    -- 10 s: under valgrind (CI's step 4) the CLI's own start and kubectl's
    -- first answer took more than 3 s, before any create was refused.
    it("says when one that keeps failing may pass later, and when not", function()
      local r = run_alone(minor, "--fail-create 1000", { "run", "--json", "--policy", policy },
                          { backend = "k8s", shell = "true", timeout_ms = 10000 })
      assert.are.equal("backend_error", r.error.code, cjson.encode(r))
      assert.truthy(r.error.message:find("ServiceUnavailable", 1, true), r.error.message)
      expect(r, "create_failing")
      r = run_alone(minor, "--forbid forbidden-ns", { "run", "--json", "--policy", policy },
                    { backend = "k8s", shell = "true", labels = { namespace = "forbidden-ns" } })
      assert.are.equal("backend_error", r.error.code, cjson.encode(r))
      expect(r, "forbidden")
    end)

    -- The deadline cuts a create short (its second try never answers)
    -- after the API server refused the first for now. Checked: without
    -- decide_refused_then_cut (k8s.c), the result was KubectlTimeout,
    -- "kubectl did not answer within the run's deadline", though the API
    -- server had answered at once.
    it("says the refusal when the deadline cuts the next try short, and looks for and deletes the pod that try "
       .. "may have made", function()
      local dir = env.temp_dir()
      finally(function() os.execute("rm -rf " .. dir) end)
      local server = fake.start(minor, "--fail-create 1000")
      local out, err, code = env.cli_run({ "run", "--json", "--policy", policy },
        cjson.encode { backend = "k8s", shell = "true", timeout_ms = 8000 },
        ("%s ECHO_SANDBOX_KUBECTL=%s"):format(server.env, env.quote(logging_kubectl(minor, dir, 2))))
      local left = fake.pods(server)
      fake.stop(server)
      local ok, r = pcall(cjson.decode, out)
      assert(ok, out .. err)
      assert.are.equal(125, code, err)
      expect(r, "create_cut")
      assert.truthy(r.error.message:find("^Error from server %(ServiceUnavailable%)"), r.error.message)
      assert.truthy(r.error.message:find("cut try 2 short before its answer came", 1, true), r.error.message)
      local runs, others = logged(dir)
      assert.are.equal(2, runs)
      assert.are.same({ "get", "delete" }, others)
      assert.is_nil(r.cleanup_error)
      assert.are.same({}, left)
    end)
  end)

  describe(("k8s backend, kubectl 1.%d, stdin from a file across creates that fail"):format(minor), function()
    env.check_leaks()
    -- What the program read of its stdin: its length and sha256.
    local reader = "import sys, hashlib; d = sys.stdin.buffer.read(); print(len(d), hashlib.sha256(d).hexdigest())"
    local paths = {
      plain = { "--", "python3", "-c", reader },             -- the handshake alone
      wrapper = { "--lang", "python", "--code", reader },    -- code as a file: the wrapper spools stdin
    }

    -- Runs the CLI with the file as its stdin (--stdin-file -), after 7 bytes
    -- of it were read, on a server whose first two creates fail with code;
    -- then reads what is left of the file from the same offset.
    local function through(path, file, code, piped)
      local server = fake.start(minor, "--fail-create 2 --fail-create-code " .. code)
      local args = { "run", "--policy", policy, "--backend", "k8s", "--stdin-file", "-" }
      for _, a in ipairs(paths[path]) do args[#args + 1] = env.quote(a) end
      local cli = ("%s %s %s %s 2>&1"):format(server.env, env.cli_prefix, env.quote(env.cli), table.concat(args, " "))
      local p = io.popen((piped and ("cat %s | %s; echo \"rc=$?\""):format(env.quote(file), cli)
        or ("{ dd bs=7 count=1 >/dev/null 2>&1; %s; echo \"rc=$?\"; wc -c; } < %s"):format(cli, env.quote(file))))
      local out = p:read("a")
      p:close()
      local posts = 0
      for _, line in ipairs(fake.query(server, "/_fake/requests")) do
        if line:find("^POST /api/v1/namespaces/[^/]+/pods") then posts = posts + 1 end
      end
      local left = fake.pods(server)
      fake.stop(server)
      assert.are.same({}, left)
      assert.are.equal(3, posts, out)
      return out
    end

    -- Checked: without the file set before kubectl starts (start_kubectl's
    -- in_fd), the loop took it for a stream and read it, each failed try
    -- losing what it had taken: 26 bytes arrived as 0, 12 MiB without their
    -- first MiBs, and the caller's offset moved to the end of the file.
    for _, case in ipairs { { "26 bytes", 26 + 7, "500" }, { "12 MiB", 12 * 1024 * 1024 + 7, "503" } } do
      for _, path in ipairs { "plain", "wrapper" } do
        it(("sends %s from a file whole after two failed creates (%s), %s, and leaves its offset alone")
             :format(case[1], case[3], path == "plain" and "the handshake alone" or "through the wrapper"), function()
          local file = os.tmpname()
          assert(os.execute(("head -c %d /dev/urandom > %s"):format(case[2], file)))
          local _, sum = env.sh(("tail -c +8 %s | sha256sum"):format(file))
          local want = sum:match("^(%x+)")
          local out = through(path, file, case[3])
          os.remove(file)
          assert.are.equal(("%d %s\nrc=0\n%d\n"):format(case[2] - 7, want, case[2] - 7), out)
        end)
      end
    end

    -- A pipe cannot be read again: it is read to its end before the first
    -- create, and each try sends what was read.
    -- Checked: with a pipe streamed as a file is (run->stdin_fd), the first
    -- failed create took the pipe's first bytes and the program read the
    -- rest only.
    it("sends a piped stdin whole after two failed creates (429): it was read to its end before the first", function()
      local file = os.tmpname()
      assert(os.execute(("head -c %d /dev/urandom > %s"):format(3 * 1024 * 1024, file)))
      local _, sum = env.sh(("sha256sum < %s"):format(file))
      local out = through("plain", file, "429", true)
      os.remove(file)
      assert.are.equal(("%d %s\nrc=0\n"):format(3 * 1024 * 1024, sum:match("^(%x+)")), out)
    end)
  end)

  -- Refused before kubectl runs: the same with every kubectl of the matrix.
  env.kubectl_once(minor)(("k8s backend, kubectl 1.%d, a piped stdin larger than it may be"):format(minor),
                          function()
    env.check_leaks()

    -- Checked: without the bound (read_stream's max, k8s.c), the 64 MiB
    -- and a byte were sent and the run ended exited 0.
    it("is refused before anything is created, naming the bound and what to give instead", function()
      local server = fake.start(minor)
      local cli = ("%s %s %s run --json --policy %s --backend k8s --stdin-file - -- wc -c"):format(server.env,
        env.cli_prefix, env.quote(env.cli), policy)
      local _, out = env.sh(("head -c %d /dev/zero | %s 2>/dev/null; echo \"rc=$?\""):format(64 * 1024 * 1024 + 1,
                                                                                         cli))
      local received = fake.query(server, "/_fake/received")
      fake.stop(server)
      local json, rc = out:match("^(.*)\nrc=(%d+)\n$")
      assert.are.equal("125", rc, out)
      local r = cjson.decode(json)
      assert.are.equal("invalid_request", r.error.code, out)
      assert.truthy(r.error.message:find("more than 64 MiB", 1, true), r.error.message)
      assert.truthy(r.error.message:find("--stdin-file FILE", 1, true), r.error.message)
      assert.are.same({}, received)
    end)
  end)

  -- The run ends before the create is answered: one POST, the same from
  -- every kubectl of the matrix.
  env.kubectl_once(minor)(("k8s backend, kubectl 1.%d, SIGTERM while the create is on its way"):format(minor),
                          function()
    env.check_leaks()

    it("deletes the pod once it exists, and exits 143", function()
      local code, left
      run_alone(minor, "--slow-create 1", { "--version" }, nil, function(server)
        local script = table.concat({
          "%s %s %s run --backend k8s --policy %s --shell 'exec sleep 30' >/dev/null 2>&1 & pid=$!",
          -- once the create has reached the API server, and before it is done
          "for i in $(seq 1000); do %s | grep -q 'POST /api/v1' && break; sleep 0.02; done",
          "kill -TERM $pid; wait $pid; echo $?",
          -- then the create is done on the server's side
          "for i in $(seq 1000); do %s | grep -q CREATED && break; sleep 0.02; done" },
          "\n")
        local requests = fake.query_sh(server, "/_fake/requests")
        local p = io.popen(script:format(server.env, env.cli_prefix, env.quote(env.cli), policy, requests, requests))
        code = p:read("n")
        p:close()
        left = fake.pods(server)
      end)
      assert.are.equal(143, code)
      assert.are.same({}, left)
    end)
  end)

  describe(("k8s backend, kubectl 1.%d, a pod status that cannot be read"):format(minor), function()
    env.check_leaks()

    it("keeps the program's exit code from kubectl's report, its stderr, and warns", function()
      local r, code, err = run_alone(minor, "--fail-get", { "run", "--json", "--policy", policy },
                                     { backend = "k8s", shell = "echo oops >&2; exit 3" })
      assert.are.equal(3, code, err)
      assert.are.equal("exited", r.status)
      assert.are.equal(3, r.exit_code)
      assert.are.equal("oops\n", r.stderr)
      local w = r.warnings and r.warnings[1]
      assert.truthy(w and w:find("could not be read", 1, true), cjson.encode(r))
      assert.truthy(w:find("InternalError", 1, true), w)
    end)
  end)

  describe(("k8s backend, kubectl 1.%d, deletes that fail"):format(minor), function()
    env.check_leaks()

    it("tries the delete again when the API server answers 500, and leaves no pod", function()
      local deletes = 0
      local r, code, err, left = run_alone(minor, "--fail-delete 2", { "run", "--json", "--policy", policy },
                                           { backend = "k8s", shell = "echo done" }, function(server)
        for _, line in ipairs(fake.query(server, "/_fake/requests")) do
          if line:find("^DELETE ") then deletes = deletes + 1 end
        end
        return fake.pods(server)
      end)
      assert.are.equal(0, code, err)
      assert.are.equal("done\n", r.stdout)
      assert.is_nil(r.cleanup_error)
      assert.are.same({}, left)
      assert.are.equal(3, deletes)
    end)

    it("says on stderr in the flag form when the pod could not be deleted, and keeps the program's code", function()
      -- every delete answers 500: three tries fail within the budget; on a
      -- busy machine kubectl may take the budget first, which it says too
      local path = env.policy_file("policy.k8s.delete_timeout_ms = 5000")
      local out, code, err, left = run_alone(minor, "--fail-delete 1000",
                                             { "run", "--policy", path, "--backend", "k8s", "--shell", "echo done; exit 3" },
                                             nil, fake.pods)
      os.remove(path)
      assert.are.equal(3, code)
      assert.are.equal("done\n", out)
      assert.are.equal(1, #left)
      local said = "kubectl delete pod " .. left[1].metadata.name
      assert.truthy(err:find(said .. " failed", 1, true) or err:find(said .. " timed out", 1, true), err)
      assert.truthy(err:find("echo-sandbox cleanup", 1, true), err)
    end)
  end)

  describe(("k8s backend, kubectl 1.%d, a delete that hangs"):format(minor), function()
    env.check_leaks()

    it("does not hang the run beyond the delete timeout", function()
      local path = env.policy_file("policy.k8s.delete_timeout_ms = 1000")
      local r, code, err = run_alone(minor, "--hang-delete", { "run", "--json", "--policy", path },
                                     { backend = "k8s", shell = "echo done" })
      os.remove(path)
      assert.are.equal(0, code, err)
      assert.are.equal("done\n", r.stdout)
      assert.truthy(r.cleanup_error:find("timed out", 1, true), r.cleanup_error)
    end)
  end)
end)
