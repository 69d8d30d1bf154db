-- The k8s backend's reading of kubectl's streams (src/backend/k8s.c, "kubectl's
-- streams"): the program's words never end its run nor vanish from its
-- result, and a deadline is the program's timeout only where the program
-- ran then. Against the fake API server on the oldest and newest kubectl of
-- the matrix: the two sides of kubectl's streaming list (1.35), by which
-- `kubectl run --attach` learns that its pod runs before it attaches.
-- spec/run: one task per minor, the oldest and the newest of the matrix.
local env = require "spec.support.env"
local fake = require "spec.support.fake_kube"
local cjson = require "cjson"
local expect = require("spec.support.k8s_faults").expect

local policy = "spec/support/k8s_policy.lua"

-- A file's text, "" while it is not there.
local function text(path)
  local ok, t = pcall(env.read_file, path)
  return ok and t or ""
end

-- Polls check() every 20 ms, at most about 20 s (an interlock, not a
-- clock: the bound only keeps a failing spec from hanging).
local function wait_for(check)
  for _ = 1, 1000 do
    local v = check()
    if v then return v end
    env.sleep(0.02)
  end
end

-- One run through `run --json` on server; returns the result, the exit
-- code, the CLI's stderr and the wall time in seconds (os.time's).
local function run(server, request, policy_path)
  request.backend = "k8s"
  local started = os.time()
  local out, err, code = env.cli_run({ "run", "--json", "--policy", policy_path or policy }, cjson.encode(request),
                                     server.env)
  local ok, r = pcall(cjson.decode, out)
  assert(ok, "no JSON result: " .. out .. err)
  return r, code, err, os.time() - started
end

-- `batch --events` of one request on server, in the background, writing
-- into dir: returns done(), which waits for its end and gives the stderr
-- its events carried and its result.
local function batch_events(server, request, dir)
  request.backend = "k8s"
  env.write_file(dir .. "/in", cjson.encode(request) .. "\n")
  assert(os.execute(("(%s %s %s batch --events --policy %s <%s/in >%s/out 2>%s/err; mv %s/out %s/done) &")
    :format(server.env, env.cli_prefix, env.quote(env.cli), policy, dir, dir, dir, dir, dir)))
  return function()
    wait_for(function() return io.open(dir .. "/done") end)
    local stderr, result = "", nil
    for line in env.read_file(dir .. "/done"):gmatch("[^\n]+") do
      local ev = cjson.decode(line)
      if ev.event == "output" and ev.stream == "stderr" then stderr = stderr .. ev.data end
      if ev.event == nil or ev.event == "result" then result = ev.result or ev end
    end
    return stderr, result
  end
end

-- A program that writes stderr (first, a shell line), then waits for the
-- spec's go before its stdout, through `batch --events` on server: whether
-- a stderr event came while it waited, the events' stderr, the result.
local function stderr_events_before_go(server, first, files)
  local dir = env.temp_dir()
  finally(function() os.execute("rm -rf " .. dir) end)
  local shell = ("%s; while [ ! -e %s/go ]; do sleep 0.02; done; echo out; exit 3"):format(first, dir)
  local done = batch_events(server, { shell = shell, files = files }, dir)
  local live = wait_for(function() return text(dir .. "/out"):find("\"stderr\"", 1, true) end)
  assert(os.execute("touch " .. dir .. "/go"))
  local stderr, result = done()
  return live, stderr, result
end

-- After a run: no pod on the server, no process of the program left.
local function nothing_left(server, program_argv)
  assert.are.same({}, fake.pods(server))
  if program_argv then assert.is_false(env.running(program_argv)) end
end

-- One run on a server of its own, started with options, whose program runs
-- as program_argv: the result, the exit code, the CLI's stderr, the wall
-- time, and what was left after it: { pods = ..., running = bool,
-- created = the pod bodies the server received }.
local function run_alone(minor, options, request, program_argv)
  local server = fake.start(minor, options)
  local r, code, err, took = run(server, request)
  local left = { pods = fake.pods(server), running = env.running(program_argv),
                 created = #fake.query(server, "/_fake/received") }
  fake.stop(server)
  assert.are.same({}, left.pods)
  assert.is_false(left.running)
  return r, code, err, took, left
end

-- The oldest and the newest minor of the matrix (1.30 and 1.35), or, where
-- $ESB_SPEC_MINORS names others (the sanitizer step's one), those.
local minors = {}
for _, m in ipairs(env.kubectl_minors) do
  if m == 30 or m == 35 then minors[#minors + 1] = m end
end
if #minors == 0 then minors = env.kubectl_minors end

for _, minor in ipairs(minors) do
  local _, why = env.kubectl(minor)
  describe(("k8s streams, kubectl 1.%d"):format(minor), function()
    if why then pending(why) return end
    env.check_leaks()

    describe("a program that writes kubectl's words", function()
      local fixture = fake.per_spec(minor)

      -- Checked: without the start mark's rule (kubectl's notice read
      -- anywhere in its stderr), the run is killed at once as
      -- AttachForbidden, retryable.
      it("runs on to its own end, its stderr whole, when it prints the attach notices", function()
        local notice = "warning: couldn't attach to pod/x, falling back to streaming logs: pods \"x\" is " ..
                       "forbidden: User cannot create resource \"pods/attach\"\n"
        local lost = "warning: couldn't attach to pod/y, falling back to streaming logs: EOF\n"
        -- (a nap of its own: the other minor's task may run this case at once)
        local nap = ("0.5%05d"):format(math.random(0, 99999))
        local shell = ("printf '%%s' %s >&2; printf '%%s' %s >&2; echo after; exec sleep %s")
          :format(env.quote(notice), env.quote(lost), nap)
        local r, code, err, took = run(fixture.server, { shell = shell, timeout_ms = 60000 })
        assert.are.equal(0, code, err)
        assert.are.equal("exited", r.status, cjson.encode(r))
        assert.are.equal(0, r.exit_code)
        assert.is_nil(r.error)
        assert.are.equal("after\n", r.stdout)
        assert.are.equal(notice .. lost, r.stderr)
        assert.are.equal(#notice + #lost, r.stderr_bytes)
        assert.is_true(took < 30, took .. " s") -- well before the deadline
        nothing_left(fixture.server, { "sleep", nap })
      end)

      -- Checked: with kubectl's klog lines and trailer taken out of the
      -- program's stderr by their words (as before the marks), its stderr
      -- is "": its lines gone and not counted.
      it("keeps its klog lines and a line like kubectl's trailer, counted, and only kubectl's trailer goes", function()
        local klog = "E1127 08:56:18.527967   12345 main.go:42] boom\n" ..
                     "W0102 00:00:00.000001       1 loader.go:223] absl says so\n"
        local shell = ("printf '%%s' %s >&2; echo \"pod echo-sandbox/$HOSTNAME terminated (Error)\" >&2; " ..
                       "echo \"pod echo-sandbox/$HOSTNAME terminated (Completed)\"; exit 3"):format(env.quote(klog))
        local r, code, err = run(fixture.server, { shell = shell })
        assert.are.equal(3, code, err)
        assert.are.equal("exited", r.status, cjson.encode(r))
        assert.are.equal(3, r.exit_code)
        local trailer = ("pod echo-sandbox/%s terminated (Error)\n"):format(r.pod)
        assert.are.equal(klog .. trailer, r.stderr)
        assert.are.equal(#klog + #trailer, r.stderr_bytes)
        assert.are.equal(("pod echo-sandbox/%s terminated (Completed)\n"):format(r.pod), r.stdout)
        nothing_left(fixture.server)
      end)

      -- Checked: without the trailer's rule for a run without an end mark
      -- (kubectl reported the container's own exit code), stderr ends with
      -- kubectl's "pod NS/NAME terminated (Error)".
      it("keeps only its own stderr when it kills the pod's shell, and kubectl's trailer goes", function()
        -- the trailer names the namespace: the engine's (against an API server
        -- the specs did not start, the run's, ECHO_SANDBOX_K8S_NAMESPACE)
        local r, code, err = run(fixture.server, { shell = "echo a >&2; kill -9 $PPID" })
        assert.are.equal(137, code, err)
        assert.are.equal("signaled", r.status, cjson.encode(r))
        assert.are.equal(9, r.signal)
        assert.are.equal("a\n", r.stderr)
        assert.are.equal(2, r.stderr_bytes)
        nothing_left(fixture.server)
      end)

      -- Checked: with stderr passed on live only once stdout came (as it
      -- was held until the pod was seen to run), the line never shows while
      -- the program waits: the interlock fails. With kubectl's words after
      -- the end mark passed on live, its "pod NS/NAME terminated (Error)"
      -- trailer shows on the CLI's stderr.
      it("shows its stderr live in the flag form before any stdout, and no trailer of kubectl's", function()
        local dir = env.temp_dir()
        finally(function() os.execute("rm -rf " .. dir) end)
        local shell = ("echo err >&2; while [ ! -e %s/go ]; do sleep 0.02; done; echo out; echo late >&2; exit 3")
          :format(dir)
        assert(os.execute(("(%s %s %s run --backend k8s --policy %s --shell %s >%s/out 2>%s/err; echo $? >%s/code.tmp;" ..
          " mv %s/code.tmp %s/code) &"):format(fixture.server.env, env.cli_prefix, env.quote(env.cli), policy,
          env.quote(shell), dir, dir, dir, dir, dir)))
        local live = wait_for(function() return text(dir .. "/err"):find("err\n", 1, true) end)
        assert(os.execute("touch " .. dir .. "/go"))
        wait_for(function() return io.open(dir .. "/code") end)
        assert.truthy(live, "the program's stderr did not show while it ran")
        assert.are.equal("3\n", env.read_file(dir .. "/code"))
        assert.are.equal("out\n", env.read_file(dir .. "/out"))
        assert.are.equal("err\nlate\n", env.read_file(dir .. "/err"))
        nothing_left(fixture.server)
      end)

      -- Checked: as above, with stderr passed on only once stdout came, no
      -- stderr event comes before the go.
      it("sends its stderr as events in batch --events before any stdout, and no trailer of kubectl's", function()
        local live, stderr, result = stderr_events_before_go(fixture.server, "echo err >&2")
        assert.truthy(live, "no stderr event while the program ran")
        assert.are.equal("err\n", stderr)
        assert.are.equal(3, result.exit_code, cjson.encode(result))
        nothing_left(fixture.server)
      end)
    end)

    describe("an attach that breaks while the program runs", function()
      -- Checked: without the replay rule (the start mark on kubectl's
      -- stdout), kubectl copies the pod's log and waits for the program's
      -- end: the run lasts its 30 s and ends as exited 0, its output
      -- repeated.
      it("ends at once as AttachLost, retryable, when kubectl falls back to the pod's log", function()
        local nap = env.unique_seconds(30) -- the other minor's task may run this case at once
        local r, code, err, took = run_alone(minor, "--drop-attach-at one",
          { shell = "echo one; echo two >&2; exec sleep " .. nap, timeout_ms = 60000 }, { "sleep", nap })
        assert.are.equal(125, code, err)
        assert.are.equal("AttachLost", r.reason, cjson.encode(r))
        assert.is_true(r.error.retryable)
        assert.truthy(r.error.message:find("incomplete", 1, true), r.error.message)
        assert.are.equal("one\n", r.stdout) -- the log's copy is not output again
        assert.is_nil(r.stderr:find("couldn't attach", 1, true), r.stderr)
        assert.is_true(took < 20, took .. " s") -- not the program's 30 s
      end)

      -- The container runtime reads a pod's stdout and stderr apart (one
      -- reader each), so the pod's log, which kubectl replays after the
      -- break, may hold their bytes in another order than they were written.
      for _, case in ipairs {
        -- the program's first stdout line before the start mark that
        -- preceded it on stderr. Checked: without the stdout mark (the
        -- replay known by the start mark alone), the log's "one" comes
        -- before the mark and is output again: "one\none\n".
        { "outputs nothing twice when the pod's log holds the program's stdout before the start mark",
          "--log-stdout-first" },
        -- dd writes the start mark a byte at a time too, and the stderr
        -- reader may have read its first byte alone when the stdout reader
        -- ran ahead: that piece right before the replayed stdout mark.
        -- Checked: CI's suite step once had stdout "one\n\036" this way
        -- (the piece taken as the program's); so did this case before the
        -- fix (stdout_before_replayed_mark).
        { "outputs no piece of the start mark that the pod's log holds before the stdout mark",
          "--log-stderr-behind" },
      } do
        it(case[1], function()
          local nap = env.unique_seconds(30) -- the other minor's task may run this case at once
          local r, code, err = run_alone(minor, "--drop-attach-at one " .. case[2],
            { shell = "echo one; echo two >&2; exec sleep " .. nap, timeout_ms = 60000 }, { "sleep", nap })
          assert.are.equal(125, code, err)
          assert.are.equal("AttachLost", r.reason, cjson.encode(r))
          assert.are.equal("one\n", r.stdout)
        end)
      end

      -- dd writes the stdout mark a byte at a time: the attach may break
      -- in the middle of it, and the replay brings it whole.
      -- Checked: without dropping the cut piece (stdout_before_live_mark
      -- passing it on), stdout begins with the mark's first bytes.
      it("outputs no piece of a mark when it breaks while the mark is written", function()
        local nap = env.unique_seconds(30) -- the other minor's task may run this case at once
        local r, code, err = run_alone(minor, "--drop-attach --log-stdout-first",
          { shell = "echo one; echo two >&2; exec sleep " .. nap, timeout_ms = 60000 }, { "sleep", nap })
        assert.are.equal(125, code, err)
        assert.are.equal("AttachLost", r.reason, cjson.encode(r))
        assert.truthy(r.stdout == "" or r.stdout == "one\n", r.stdout)
      end)
    end)

    describe("a program run by the files wrapper", function()
      local fixture = fake.per_spec(minor)

      -- The wrapper's tools run between the start mark and its start line:
      -- the program's stderr flows once that line came.
      -- Checked: with the wrapper's program never taken to have begun
      -- (program_began false), no stderr event comes before the go: the
      -- interlock fails.
      it("sends its stderr as events before any stdout once the wrapper's start line came", function()
        local live, stderr, result = stderr_events_before_go(fixture.server, "cat in.txt >&2",
                                                             { ["in.txt"] = "err\n" })
        assert.truthy(live, "no stderr event while the program ran")
        assert.are.equal("err\n", stderr)
        assert.are.equal(3, result.exit_code, cjson.encode(result))
        assert.are.equal("out\n", result.stdout)
        nothing_left(fixture.server)
      end)

      -- Checked: with the program taken to begin at the start mark under
      -- the wrapper too, chmod's words (and kubectl's trailer) came as
      -- stderr events of the program's, though the run ended as
      -- WrapperFailed.
      it("sends no stderr event of a wrapper step that failed before the program", function()
        local dir = env.temp_dir()
        local server = fake.start(minor, "--failing-tool chmod")
        finally(function() os.execute("rm -rf " .. dir) end)
        local stderr, result = batch_events(server, { shell = "echo never", files = { ["a.txt"] = "hi" } }, dir)()
        local left = fake.pods(server)
        fake.stop(server)
        assert.are.same({}, left)
        assert.are.equal("WrapperFailed", result.reason, cjson.encode(result))
        assert.truthy(result.error.message:find("chmod: Read-only file system", 1, true), result.error.message)
        assert.are.equal("", stderr)
        assert.are.equal("", result.stderr)
      end)

      -- The start mark is the first byte of the pod's log, before the
      -- wrapper's start line: kubectl's replay of the log is known before
      -- the replayed start line could reach the program's stdout or the
      -- frames.
      -- Checked: without the replay rule, the run waits for the program's
      -- 30 s and ends exited 0.
      it("ends at once as AttachLost, with files and collect, when kubectl falls back to the pod's log", function()
        local nap = env.unique_seconds(30) -- the other minor's task may run this case at once
        local r, code, err, took = run_alone(minor, "--drop-attach",
          { shell = "echo one; cp in.txt out.txt; exec sleep " .. nap, timeout_ms = 60000,
            files = { ["in.txt"] = "x" }, collect = { "out.txt" } }, { "sleep", nap })
        assert.are.equal(125, code, err)
        assert.are.equal("AttachLost", r.reason, cjson.encode(r))
        assert.is_true(r.error.retryable)
        assert.is_nil(r.stdout:find("[\30\31]"), r.stdout) -- no start line, no mark
        assert.truthy(r.stdout == "" or r.stdout == "one\n", r.stdout) -- the log's copy is not output again
        assert.is_true(took < 20, took .. " s") -- not the program's 30 s
      end)
    end)

    describe("an API server that answers every call slowly", function()
      -- Checked: without decide_deadline (the deadline taken as the
      -- program's once the pod ran), this is timed_out, 124, killed_by_us.
      it("is not the program's timeout when the deadline passes before kubectl attached", function()
        -- the create is quick, every call after it takes 2 s: kubectl's wait
        -- for the pod to run and its attach among them
        local nap = env.unique_seconds(7)
        local r, code, err, took, left = run_alone(minor, "--latency-after-create 2",
          { shell = "echo never; exec sleep " .. nap, timeout_ms = 3000 }, { "sleep", nap })
        assert.are.equal(125, code, err)
        assert.are.equal("error", r.status, cjson.encode(r))
        assert.are.equal("backend_error", r.error.code)
        expect(r, "slow_start")
        assert.is_false(r.timed_out)
        assert.is_false(r.killed_by_us)
        assert.truthy(r.error.message:find("before the program started", 1, true), r.error.message)
        assert.is_true(r.error.retryable)
        assert.are.equal("", r.stdout)
        -- the deadline, then a get and a delete of 2 s each: the fault is
        -- known only at the deadline
        assert.is_true(took <= 15, took .. " s")
        assert.are.equal(1, left.created) -- a pod that ran, unattached
      end)

      -- Checked: without the end mark and the watch's end (ended always
      -- false), this is timed_out, 124, killed_by_us, though the program
      -- had exited 0.
      it("is not the program's timeout when it had printed and exited 0 while kubectl waited", function()
        -- skipped before its run starts, which would be left running
        fake.needs("request log and latency (/_fake/requests, /_fake/latency)")
        local dir = env.temp_dir()
        local server = fake.start(minor)
        finally(function() os.execute("rm -rf " .. dir) end)
        local shell = ("touch %s/started; while [ ! -e %s/go ]; do sleep 0.02; done; echo printed"):format(dir, dir)
        local request = cjson.encode { backend = "k8s", shell = shell, timeout_ms = 8000 }
        env.write_file(dir .. "/in", request)
        assert(os.execute(("(%s %s %s run --json --policy %s <%s/in >%s/out 2>%s/err; mv %s/out %s/done) &")
          :format(server.env, env.cli_prefix, env.quote(env.cli), policy, dir, dir, dir, dir, dir)))
        assert.truthy(wait_for(function() return io.open(dir .. "/started") end), "the program did not start")
        local function waits()
          local n = 0
          for _, line in ipairs(fake.query(server, "/_fake/requests")) do
            if line:find("fieldSelector=metadata.name", 1, true) then n = n + 1 end
          end
          return n
        end
        local before = waits()
        -- every API call from now on takes 30 s: kubectl's wait for the
        -- pod's completion among them
        fake.query(server, "/_fake/latency/30", "{}")
        assert(os.execute("touch " .. dir .. "/go"))
        local waiting = wait_for(function() return waits() > before end)
        fake.query(server, "/_fake/latency/0", "{}") -- the engine's get and delete after the deadline are quick
        wait_for(function() return io.open(dir .. "/done") end)
        local left = fake.pods(server)
        fake.stop(server)
        assert.truthy(waiting, "kubectl never waited for the pod's completion")
        local r = cjson.decode(env.read_file(dir .. "/done"))
        assert.are.equal("error", r.status, cjson.encode(r))
        assert.are.equal("KubectlTimeout", r.reason)
        assert.is_false(r.timed_out)
        assert.is_false(r.killed_by_us)
        assert.truthy(r.error.message:find("had ended (exit status 0", 1, true), r.error.message)
        assert.are.equal("printed\n", r.stdout)
        assert.are.same({}, left)
      end)
    end)
  end)
end
