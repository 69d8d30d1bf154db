local env = require "spec.support.env"
local fake = require "spec.support.fake_kube"
local cjson = require "cjson"

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

env.each_kubectl(function(minor)
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
        assert.truthy(argv:find("python3 -c print(6*7)", 1, true), argv)
        assert.are.same({ requests = { cpu = "100m", memory = "64Mi" }, limits = { cpu = "1", memory = "256Mi" } },
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

      it("times out, and the pod is deleted", function()
        local r, code = run(server, { shell = "sleep 30", timeout_ms = 1500 })
        assert.are.equal(124, code)
        assert.are.equal("timed_out", r.status)
        assert.is_true(r.timed_out)
        assert.is_true(r.duration_ms < 10000)
      end)

      it("reports OOMKilled", function()
        local r, code = run(server, { shell = "echo started", labels = { image = "x-fake-oom" } })
        assert.are.equal("oom_killed", r.status)
        assert.are.equal("OOMKilled", r.reason)
        assert.are.equal(137, code)
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
        assert.are.equal("error", r.status)
        assert.are.equal("backend_error", r.error.code)
        assert.truthy(r.error.message:find("Insufficient cpu", 1, true), r.error.message)
      end)

      it("reports a forbidden create as a backend error with the API server's message", function()
        local r, code = run(server, { shell = "true", labels = { namespace = "forbidden-ns" } })
        assert.are.equal(125, code)
        assert.are.equal("backend_error", r.error.code)
        assert.truthy(r.error.message:find("forbidden", 1, true), r.error.message)
        assert.are.equal("", r.stderr)
      end)

      it("deletes its pod when it gets SIGTERM, before it exits with 143", function()
        local script = table.concat({
          "%s %s %s run --backend k8s --policy %s --shell 'echo started; exec sleep 30' >/dev/null 2>&1 & pid=$!",
          "for i in $(seq 1000); do python3 %s query %d /_fake/pods | grep -q Running && break; sleep 0.02; done",
          "kill -TERM $pid; wait $pid; echo $?",
          "python3 %s query %d /_fake/pods" }, "\n")
        local p = io.popen(script:format(server.env, env.cli_prefix, env.quote(env.cli), policy,
                                         fake.script, server.port, fake.script, server.port))
        local code = p:read("n")
        local pods_after = cjson.decode(p:read("a"))
        p:close()
        assert.are.equal(143, code)
        assert.are.same({}, pods_after)
      end)
    end)
  end)

  describe(("k8s backend, kubectl 1.%d, a delete that hangs"):format(minor), function()
    env.check_leaks()

    it("does not hang the run beyond the delete timeout", function()
      local server = fake.start(minor, "--hang-delete")
      local path = env.policy_file("policy.k8s.delete_timeout_ms = 1000")
      local out, err, code = env.cli_run({ "run", "--json", "--policy", path },
                                         cjson.encode { backend = "k8s", shell = "echo done" }, server.env)
      os.remove(path)
      fake.stop(server)
      local r = cjson.decode(out)
      assert.are.equal(0, code, err)
      assert.are.equal("done\n", r.stdout)
      assert.truthy(r.cleanup_error:find("timed out", 1, true), r.cleanup_error)
    end)
  end)
end)
