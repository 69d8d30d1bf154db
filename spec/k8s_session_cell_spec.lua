-- Cells in k8s sessions (esb_k8s_session_cell, src/dispatch/session_k8s.c;
-- the relay in the pod, esb_k8s_session_cell_script in
-- src/backend/k8s_session.c), against the fake API server, which runs an
-- exec'd command as a local process in the pod's working dir: the kernel
-- (kernels/python.py, kernels/node.js) is kept as a process in the pod from
-- cell to cell, and each cell reaches it through an exec (the engine's API
-- client's, as a run's in the session). Every
-- case ends with the pod deleted and checks that no process of it is left
-- on this machine (the fake's /_fake/procs: the exec'd processes and every
-- process they started, wherever it went; the leak check: every process of
-- the suite's).
--
-- One minor of kubectl's matrix: a cell is a run in the session, whose
-- exec spec/k8s_session_spec.lua covers on every minor.
local env = require "spec.support.env"
local fake = require "spec.support.fake_kube"
local cjson = require "cjson"

local policy = "spec/support/k8s_policy.lua"

local minor = env.newest_kubectl()
if minor then
  describe("cells in k8s sessions, kubectl 1." .. minor, function()
    env.check_leaks() -- outer: after the server has stopped
    describe("on a fake API server", function()
      local server
      after_each(function() -- before the fixture's, which stops the server
        assert.are.same({}, fake.query(server, "/_fake/procs"))
      end)
      local fixture = fake.per_spec(minor)
      before_each(function() server = fixture.server end)

      local function cli(args)
        local all = {}
        for _, a in ipairs(args) do all[#all + 1] = a end
        all[#all + 1] = "--policy"
        all[#all + 1] = policy
        return env.cli_run(all, nil, server.env)
      end

      local function create()
        local out, err, code = cli { "session", "create", "--backend", "k8s" }
        assert.are.equal(0, code, err)
        return (out:match("^(%S+)\n$"))
      end

      local function cell(id, lang, code, timeout)
        local args = { "session", "cell", id, "--lang", lang, "--json", "--code", code }
        if timeout then
          args[#args + 1] = "--timeout"
          args[#args + 1] = timeout
        end
        local out, err, status = cli(args)
        local ok, r = pcall(cjson.decode, out)
        assert(ok, "stdout is not JSON: " .. out .. "\nstderr: " .. err)
        return r, status
      end

      local function rm(id)
        local _, err, code = cli { "session", "rm", id }
        assert.are.equal(0, code, err)
      end

      -- Checked: without the fake's kill of what the pod's execs started
      -- (exec_marked, as the container's cgroup ends), the kernel lived on
      -- after rm.
      it("keeps a Python kernel's state from cell to cell, each cell a separate CLI process", function()
        local id = create()
        local r, status = cell(id, "python", "x = 41\nprint('set')")
        assert.are.equal(0, status, cjson.encode(r))
        assert.are.same({ "ok", "set\n", false, id }, { r.status, r.stdout, r.state_lost, r.session })
        r = cell(id, "python", "x + 1")
        assert.are.same({ "ok", "42" }, { r.status, r.value }, cjson.encode(r))
        assert.is_false(r.state_lost)
        -- the kernel is a process of the pod's, outside every run
        local out = cli { "session", "run", id, "--shell", "cat .echo-sandbox-kernel-python/pid" }
        local pid = assert(out:match("^(%d+)\n$"), out)
        assert.truthy(io.open("/proc/" .. pid .. "/cmdline"), "the kernel " .. pid .. " is not there")
        rm(id)
        local left = io.open("/proc/" .. pid .. "/cmdline")
        local cmdline = left and left:read("a") or ""
        if left then left:close() end
        assert.is_nil(cmdline:find("python3", 1, true), "the kernel " .. pid .. " is left: " .. cmdline)
      end)

      it("keeps a Node kernel's state from cell to cell; a cell once the session is gone says so", function()
        local id = create()
        local r = cell(id, "node", "var x = 41")
        assert.are.equal("ok", r.status, cjson.encode(r))
        r = cell(id, "node", "x + 1")
        assert.are.same({ "ok", "42" }, { r.status, r.value }, cjson.encode(r))
        rm(id)
        local status
        r, status = cell(id, "node", "x")
        assert.are.equal("session_ended", r.status, cjson.encode(r))
        assert.truthy(r.message:find("does not exist", 1, true), r.message)
        assert.are.equal(125, status)
      end)

      it("says what a cell raised, with its traceback, and keeps the earlier state", function()
        local id = create()
        assert.are.equal("ok", cell(id, "python", "y = 'kept'").status)
        local r, status = cell(id, "python", "raise ValueError('no good')")
        assert.are.equal(1, status)
        assert.are.equal("error", r.status, cjson.encode(r))
        assert.are.same({ "ValueError", "no good" }, { r.error.name, r.error.message })
        assert.truthy(r.error.traceback:find("<cell", 1, true), r.error.traceback)
        r = cell(id, "python", "y")
        assert.are.same({ "ok", "'kept'" }, { r.status, r.value }, cjson.encode(r))
        rm(id)
      end)

      -- Checked: without the relay's timer (its sleep and SIGINT), the
      -- cell ran on to the run's own deadline and said "failed".
      it("interrupts a cell past its deadline, and the kernel keeps its state", function()
        local id = create()
        assert.are.equal("ok", cell(id, "python", "z = 7").status)
        local r, status = cell(id, "python", "import time\nprint('before', flush=True)\ntime.sleep(300)", "1")
        assert.are.equal(124, status, cjson.encode(r))
        assert.are.same({ "timed_out", false, "before\n" }, { r.status, r.state_lost, r.stdout })
        r = cell(id, "python", "z * 6")
        assert.are.same({ "ok", "42", false }, { r.status, r.value, r.state_lost }, cjson.encode(r))
        rm(id)
      end)

      -- Checked: without the relay's start of a kernel that is not alive
      -- (the pid file's kernel taken as it is), the cell after the death
      -- waited on the fifo until its deadline and said timed_out.
      it("restarts a kernel that died, and the cell says the state was lost", function()
        local id = create()
        assert.are.equal("ok", cell(id, "python", "w = 1").status)
        local r = cell(id, "python", "import os\nos._exit(3)")
        assert.are.same({ "died", true }, { r.status, r.state_lost }, cjson.encode(r))
        r = cell(id, "python", "'w' in globals()")
        assert.are.same({ "ok", "False", true }, { r.status, r.value, r.state_lost }, cjson.encode(r))
        rm(id)
      end)

      -- The first cell waits on a fifo of the spec's (the fake's pod is a
      -- local process) after it has made a file that says it runs: the
      -- second comes while it surely goes on.
      -- Checked: without the relay's lock, the second cell went to the
      -- kernel behind the first, waited with it and said timed_out.
      it("refuses a second cell while one goes on in the kernel (busy), and runs nothing of it", function()
        local id = create()
        local dir = os.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir " .. dir .. " && mkfifo " .. dir .. "/go"))
        finally(function() os.execute("rm -rf " .. env.quote(dir)) end)
        local first = dir .. "/first.json"
        local code = ("open(%q, 'w').close()\nopen(%q).read()\n'first'"):format(dir .. "/started", dir .. "/go")
        os.execute(("%s %s session cell %s --lang python --json --code %s --policy %s > %s 2>&1 &"):format(
          server.env .. " " .. env.cli_prefix, env.quote(env.cli), id, env.quote(code), policy, env.quote(first)))
        for _ = 1, 3000 do
          if io.open(dir .. "/started") then break end
          env.sleep(0.01)
        end
        local r, status = cell(id, "python", "second = True")
        assert.are.equal("busy", r.status, cjson.encode(r))
        assert.are.equal(125, status)
        assert(os.execute("echo go > " .. dir .. "/go"))
        for _ = 1, 3000 do
          if (env.read_file(first) or ""):find("}%s*$") then break end
          env.sleep(0.01)
        end
        r = cjson.decode(env.read_file(first))
        assert.are.same({ "ok", "'first'" }, { r.status, r.value })
        r = cell(id, "python", "'second' in globals()")
        assert.are.same({ "ok", "False" }, { r.status, r.value }, cjson.encode(r))
        rm(id)
      end)
    end)
  end)
end
