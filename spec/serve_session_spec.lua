-- Sessions through the daemon (POST /v1/sessions and the rest,
-- src/daemon/server.c; the blocking work in forked helpers, a local
-- session's runs and cells on threads, src/dispatch/session_task.h). The
-- daemons here keep their sessions in a directory of this file's own
-- (ECHO_SANDBOX_SESSION_DIR), which must be empty at the end; each case
-- checks that its session's holder, directory and cgroups are gone (the
-- leak check finds processes of the suite's).
local env = require "spec.support.env"
local daemon = require "spec.support.daemon"
local cjson = require "cjson"

local dir -- the directory of sessions

local function start(options)
  return daemon.start(options, nil, "ECHO_SANDBOX_SESSION_DIR=" .. env.quote(dir))
end

-- A file's text, or nil where there is none.
local function read(path)
  local f = io.open(path)
  local text = f and f:read("a")
  if f then f:close() end
  return text
end

-- There, and not a zombie (init reaps a holder whose maker has gone in its
-- own time).
local function alive(pid)
  return ((read("/proc/" .. pid .. "/stat") or ""):match("%) (%a)") or "Z") ~= "Z"
end

-- Polls until done() holds: an interlock on what is awaited, with a
-- generous cap (30 s), not a sleep of the expected length.
local function until_true(done)
  for _ = 1, 3000 do
    if done() then return true end
    env.sleep(0.01)
  end
  return false
end

-- Stops the daemon, and removes what sessions are left (`session rm`, as
-- the CLI does): a case that failed halfway leaves nothing for the next (the
-- leak check then names what it found; teardown's check sees no remains).
local function stop(d)
  daemon.stop(d)
  local p = io.popen("ls -A " .. env.quote(dir))
  for id in p:lines() do
    env.cli_run({ "session", "rm", id }, nil, "ECHO_SANDBOX_SESSION_DIR=" .. env.quote(dir))
  end
  p:close()
end

local function create(d, body)
  local status, s = daemon.request(d, "POST", "/v1/sessions", cjson.encode(body or {}))
  assert.are.equal(201, status, cjson.encode(s))
  assert.are.equal("alive", s.state)
  s.pid = math.tointeger(s.pid)
  s.cgroups_paths = {}
  for path in (read(dir .. "/" .. s.id .. "/info") or ""):gmatch("cgroup %d ([^\n]+)") do
    s.cgroups_paths[#s.cgroups_paths + 1] = path
  end
  return s
end

local function run(d, s, request, query)
  return daemon.request(d, "POST", "/v1/sessions/" .. s.id .. "/run" .. (query or ""), cjson.encode(request))
end

-- Nothing of session s left: its holder, its directory, its cgroups.
local function assert_gone(s)
  assert.is_true(until_true(function() return not alive(s.pid) end), "the holder " .. s.pid .. " is still there")
  assert.is_true(until_true(function() return read(dir .. "/" .. s.id .. "/info") == nil end),
                 "the session's directory is left")
  for _, path in ipairs(s.cgroups_paths) do
    assert.is_nil(io.open(path .. "/tasks") or io.open(path .. "/cgroup.procs"), path .. " is left")
  end
end

local function metric(d, line)
  local _, text = daemon.request(d, "GET", "/metrics")
  return text:find("\n" .. line .. "\n", 1, true) ~= nil, text
end

describe("sessions through echo-sandbox serve", function()
  env.check_leaks()

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -m 700 " .. dir))
  end)

  teardown(function()
    local p = io.popen("ls -A " .. env.quote(dir))
    local left = p:read("a")
    p:close()
    os.execute("rm -rf " .. env.quote(dir))
    assert.are.equal("", left, "sessions left")
  end)

  -- Checked: with DELETE's end noted nowhere (no gone_note), the GET after
  -- it answered "no session" without "ended"; with the helper's result
  -- taken as a struct only (the owned bytes not sent after it), the second
  -- run's stdout was empty.
  it("keeps a session's files from run to run, lists it, counts it, and says why it is gone after DELETE",
    function()
      local d = start()
      finally(function() stop(d) end)
      local s = create(d, { ttl_ms = 60000, limits = { memory_bytes = 128 * 1024 * 1024 } })
      local status, r = run(d, s, { shell = "echo forty-two > kept.txt" })
      assert.are.equal(200, status)
      assert.are.equal("exited", r.status)
      assert.are.equal(s.id, r.session)
      status, r = run(d, s, { program = "cat", args = { "kept.txt" } })
      assert.are.equal(200, status)
      assert.are.equal("forty-two\n", r.stdout)
      local _, shown = daemon.request(d, "GET", "/v1/sessions/" .. s.id)
      assert.are.equal(2, math.tointeger(shown.runs))
      local _, list = daemon.request(d, "GET", "/v1/sessions")
      assert.are.same({ s.id }, { list.sessions[1].id })
      assert.is_true(metric(d, "echo_sandbox_sessions_alive 1"))
      local gone
      status, gone = daemon.request(d, "DELETE", "/v1/sessions/" .. s.id)
      assert.are.equal(200, status)
      assert.are.same({ "ended", "deleted" }, { gone.state, gone.ended })
      assert_gone(s)
      for _, ask in ipairs { { "GET", "" }, { "DELETE", "" }, { "POST", "/run" } } do
        status, gone = daemon.request(d, ask[1], "/v1/sessions/" .. s.id .. ask[2], cjson.encode { shell = "true" })
        assert.are.equal(404, status, ask[1] .. ask[2])
        assert.are.same({ s.id, "deleted" }, { gone.session, gone.ended })
        assert.truthy(gone.error.message:find("has ended (deleted)", 1, true), gone.error.message)
      end
      local ok, text = metric(d, "echo_sandbox_sessions_created_total 1")
      assert.is_true(ok, text)
      for _, line in ipairs { 'echo_sandbox_sessions_ended_total{reason="deleted"} 1', "echo_sandbox_session_runs_total 2",
                              "echo_sandbox_sessions_alive 0",
                              'echo_sandbox_runs_total{backend="local",status="exited"} 2' } do
        assert.truthy(text:find("\n" .. line .. "\n", 1, true), line .. " in\n" .. text)
      end
    end)

  -- The run waits on a fifo (the policy mounts its directory) that the
  -- client writes only once it has read the first event.
  -- Checked: with the helper given no output callback (the run's output in
  -- its result only), no event came before the result and the client
  -- waited out its 60 s.
  it("streams a run in a session: the output events as they come, then the result", function()
    local fifo_dir = os.tmpname()
    os.remove(fifo_dir)
    assert(os.execute("mkdir " .. fifo_dir .. " && mkfifo " .. fifo_dir .. "/go && chmod -R a+rwx " .. fifo_dir))
    local policy = env.policy_file(([[
policy.local_sandbox.mounts[#policy.local_sandbox.mounts + 1] = { host = %q, path = "/interlock", writable = true }]])
      :format(fifo_dir))
    local d = start("--policy " .. env.quote(policy))
    finally(function()
      stop(d)
      os.execute("rm -rf " .. fifo_dir)
      os.remove(policy)
    end)
    local s = create(d)
    local request = cjson.encode { shell = "echo first; read x < /interlock/go; echo \"got $x\"" }
    local answer = daemon.stream_interlocked(d, "/v1/sessions/" .. s.id .. "/run?stream=1", fifo_dir .. "/go", request)
    assert.are.equal(200, answer.status)
    assert.are.equal("application/x-ndjson", answer.type)
    local lines = answer.lines
    assert.are.same({ event = "output", stream = "stdout", data = "first\n" }, lines[1])
    assert.are.same({ event = "output", stream = "stdout", data = "got hello\n" }, lines[2])
    assert.are.equal("result", lines[3].event)
    assert.are.equal(s.id, lines[3].result.session)
    assert.are.equal("first\ngot hello\n", lines[3].result.stdout)
    assert.are.equal(200, (daemon.request(d, "DELETE", "/v1/sessions/" .. s.id)))
    assert_gone(s)
  end)

  -- A run in a local session goes on a thread of the daemon
  -- (dispatch/session_task.c), which keeps its plan, and the request's
  -- bytes that the plan borrows, until it ends. The first run waits in the
  -- session's working dir for the file the second makes: both go on at
  -- once, each answered with its own request's stdin, files and collected
  -- files. Checked: with a new run queued for a busy thread (none started
  -- while one is busy), the first run waited out its 20 s and timed out;
  -- with the plan not moved into the task (the caller's released once the
  -- run started, as a helper's is), the runs were not answered as asked.
  it("runs in a session at once, each with its request's stdin, files and collected files", function()
    local d = start()
    finally(function() stop(d) end)
    local s = create(d)
    local sleep = env.unique_seconds(300)
    local first = io.popen(("python3 spec/support/http_client.py request %s POST %s %s"):format(env.quote(d.addr),
      "/v1/sessions/" .. s.id .. "/run", env.quote(cjson.encode {
        shell = "sleep " .. sleep .. " & while [ ! -e go ]; do sleep 0.01; done; kill $!; cat - a.txt; " ..
                "mkdir -p out; cp a.txt out/a.txt",
        stdin = "from-stdin\n", files = { ["a.txt"] = "from-files\n" }, collect = { "out/*.txt" },
        timeout_ms = 20000 })))
    assert.is_true(env.wait_running { "sleep", sleep })
    local status, r = run(d, s, { shell = "touch go; cat b.txt", stdin = "", files = { ["b.txt"] = "second\n" } })
    assert.are.equal(200, status)
    assert.are.same({ "exited", 0, "second\n" }, { r.status, math.tointeger(r.exit_code), r.stdout })
    local answer = cjson.decode(first:read("a"))
    first:close()
    r = cjson.decode(answer.body)
    assert.are.equal(200, answer.status)
    assert.are.same({ "exited", 0 }, { r.status, math.tointeger(r.exit_code) }, answer.body)
    assert.are.equal("from-stdin\nfrom-files\n", r.stdout)
    assert.are.same({ { "out/a.txt", "from-files\n" } }, { { r.files[1].path, env.unbase64(r.files[1].base64) } })
    assert.are.equal(200, (daemon.request(d, "DELETE", "/v1/sessions/" .. s.id)))
    assert_gone(s)
  end)

  -- Checked: without the removal of what an ended session left when it is
  -- asked for (no reap), its directory and cgroups were left; without the
  -- note of why it ended, the GET once they were gone said nothing of idle.
  it("says a session that ended by itself once idle is gone and why, and removes what it left", function()
    local d = start()
    finally(function() stop(d) end)
    local s = create(d, { idle_timeout_ms = 300, limits = { memory_bytes = 64 * 1024 * 1024 } })
    assert.is_true(until_true(function() return not alive(s.pid) end), "the idle session's holder is still there")
    local status, gone = daemon.request(d, "GET", "/v1/sessions/" .. s.id)
    assert.are.equal(404, status)
    assert.are.same({ s.id, "idle" }, { gone.session, gone.ended })
    assert_gone(s)
    status, gone = daemon.request(d, "GET", "/v1/sessions/" .. s.id)
    assert.are.equal(404, status)
    assert.are.same({ s.id, "idle" }, { gone.session, gone.ended })
    status, gone = run(d, s, { shell = "true" })
    assert.are.equal(404, status)
    assert.are.equal("idle", gone.ended)
    local ok, text = metric(d, 'echo_sandbox_sessions_ended_total{reason="idle"} 1')
    assert.is_true(ok, text)
    assert.truthy(text:find("\necho_sandbox_session_runs_total 0\n", 1, true), text)
  end)

  -- A run in flight when the daemon is killed: it ends with it (the
  -- helper's interrupt pipe), the session lives on, and a second daemon
  -- lists it and runs in it.
  -- Checked: with the helper given no interrupt pipe, the run's sleep
  -- lived on after its daemon was killed (to its deadline: 300 s here, past
  -- the 30 s this case waits).
  it("outlives the daemon that made it: a second daemon lists it and runs in it", function()
    local first, second = start(), nil
    finally(function()
      if not second then -- the first, killed or not, gives way to one that deletes what is left
        daemon.signal(first, "KILL", true)
        os.execute("rm -rf " .. first.dir)
        second = start()
      end
      stop(second)
    end)
    local s = create(first)
    assert.are.equal(200, (run(first, s, { shell = "echo from-the-first > note" })))
    local sleep = env.unique_seconds(300)
    local client = io.popen(("python3 spec/support/http_client.py request %s POST %s %s 2>&1"):format(
      env.quote(first.addr), "/v1/sessions/" .. s.id .. "/run", env.quote(cjson.encode { shell = "sleep " .. sleep, timeout_ms = 300000 })))
    assert.is_true(env.wait_running { "sleep", sleep })
    daemon.signal(first, "KILL", true)
    os.execute("rm -rf " .. first.dir)
    client:read("a")
    client:close()
    assert.is_true(until_true(function() return not env.running { "sleep", sleep } end), "the run outlived its daemon")
    assert.is_true(alive(s.pid))
    second = start()
    local status, list = daemon.request(second, "GET", "/v1/sessions")
    assert.are.equal(200, status)
    assert.are.equal(1, #list.sessions)
    assert.are.equal(s.id, list.sessions[1].id)
    local r
    status, r = run(second, s, { shell = "cat note" })
    assert.are.equal(200, status)
    assert.are.equal("from-the-first\n", r.stdout)
    assert.are.equal(200, (daemon.request(second, "DELETE", "/v1/sessions/" .. s.id)))
    assert_gone(s)
  end)

  -- Checked: without the interrupt of the sessions' runs at the grace's
  -- end, the daemon waited for the run's own deadline (20 s), which then
  -- answered timed_out.
  it("ends a session's run at the end of a stopping daemon's grace, and keeps the session", function()
    local d = start("--grace 1")
    local s = create(d)
    local sleep = env.unique_seconds(300)
    local client = io.popen(("python3 spec/support/http_client.py request %s POST %s %s"):format(env.quote(d.addr),
      "/v1/sessions/" .. s.id .. "/run", env.quote(cjson.encode { shell = "sleep " .. sleep, timeout_ms = 20000 })))
    local second
    finally(function() stop(second or d) end)
    assert.is_true(env.wait_running { "sleep", sleep })
    daemon.signal(d, "TERM", true)
    os.execute("rm -rf " .. d.dir)
    local answer = cjson.decode(client:read("a"))
    client:close()
    local r = cjson.decode(answer.body)
    assert.are.equal(200, answer.status)
    assert.are.same({ "error", "interrupted", s.id }, { r.status, r.error.code, r.session })
    assert.is_false(env.running { "sleep", sleep })
    second = start()
    local _, shown = daemon.request(second, "GET", "/v1/sessions/" .. s.id)
    assert.are.same({ "alive", 1 }, { shown.state, math.tointeger(shown.runs) })
    assert.are.equal(200, (daemon.request(second, "DELETE", "/v1/sessions/" .. s.id)))
    assert_gone(s)
  end)

  -- The policy's hook decides a create through the daemon as through the
  -- CLI (dispatch/session_create.h). Checked: with the helper's notes of
  -- what the policy lowered not sent back, "clamped" was missing.
  it("makes a session as the policy decides: lowered with notes, one too many for a tenant is 429", function()
    local policy = env.policy_file [[
      policy.sessions.max_per_tenant = 1
      policy.sessions.ttl_ms = 30000
      policy.sessions.ceilings = { ttl_ms = 60000, idle_timeout_ms = 600000 }]]
    local d = start("--policy " .. env.quote(policy))
    finally(function()
      stop(d)
      os.remove(policy)
    end)
    local status, a = daemon.request(d, "POST", "/v1/sessions", cjson.encode { ttl_ms = 100000, labels = { tenant = "a" } })
    assert.are.equal(201, status, cjson.encode(a))
    assert.are.same({ 60000, { "ttl_ms 100000 lowered to the policy's ceiling 60000" } },
                    { math.tointeger(a.ttl_ms), a.clamped })
    local refused, headers
    status, refused, headers = daemon.send(d, "POST", "/v1/sessions", { body = cjson.encode { labels = { tenant = "a" } } })
    assert.are.equal(429, status)
    assert.are.same({ "too_many_sessions", true }, { refused.error.code, refused.error.retryable })
    assert.truthy(headers["retry-after"])
    local b
    status, b = daemon.request(d, "POST", "/v1/sessions", cjson.encode { labels = { tenant = "b" } })
    assert.are.equal(201, status)
    assert.is_nil(b.clamped)
    for _, id in ipairs { a.id, b.id } do
      assert.are.equal(200, (daemon.request(d, "DELETE", "/v1/sessions/" .. id)))
    end
  end)

  local function cell(d, s, code, extra)
    local body = { language = "python", code = code }
    for k, v in pairs(extra or {}) do body[k] = v end
    return daemon.request(d, "POST", "/v1/sessions/" .. s.id .. "/cell", cjson.encode(body))
  end

  -- A cell sent by a client in the background, once it has begun: its code
  -- makes the file `started` of the working dir first. Returns the
  -- client's pipe (its answer, as http_client.py prints it).
  local function cell_begun(d, s, code, timeout_ms)
    local client = io.popen(("python3 spec/support/http_client.py request %s POST %s %s"):format(env.quote(d.addr),
      "/v1/sessions/" .. s.id .. "/cell", env.quote(cjson.encode { language = "python", timeout_ms = timeout_ms,
        code = "open('started', 'w').close()\n" .. code })))
    assert.is_true(until_true(function()
      return (daemon.request(d, "GET", "/v1/sessions/" .. s.id .. "/files/started")) == 200
    end), "the cell did not begin")
    return client
  end

  -- A's cell blocks on a fifo of the working dir (made by a run) that a
  -- run writes once B's cell has been answered: B's answer, 409, came while
  -- A went on, so A's cell is off the daemon's loop.
  -- Checked: with the BUSY status answered as any cell (200), B's answer
  -- was 200 with status busy; with the cell's helper waited for on the
  -- daemon's loop (in start_session_cell), nothing else was answered until
  -- A's cell reached its deadline, and B then ran (200).
  it("keeps a kernel's state from cell to cell, and refuses a second cell while one goes on (409)", function()
    local d = start()
    finally(function() stop(d) end)
    local s = create(d)
    local status, r = cell(d, s, "x = 41")
    assert.are.equal(200, status, cjson.encode(r))
    assert.are.same({ "ok", s.id, "python" }, { r.status, r.session, r.language })
    status, r = cell(d, s, "x + 1")
    assert.are.equal(200, status)
    assert.are.equal("42", r.value)
    status, r = cell(d, s, "raise ValueError('no')")
    assert.are.equal(200, status)
    assert.are.same({ "error", "ValueError", "no" }, { r.status, r.error.name, r.error.message })
    assert.truthy(r.error.traceback:find("ValueError", 1, true))
    assert.are.equal(200, (run(d, s, { shell = "mkfifo go" })))
    local a = cell_begun(d, s, "print(open('go').read(), end='')\nx + 2", 60000)
    local b
    status, b = daemon.send(d, "POST", "/v1/sessions/" .. s.id .. "/cell",
                            { body = cjson.encode { language = "python", code = "'b'" }, deadline = 30 })
    assert.are.equal(409, status, cjson.encode(b))
    assert.are.same({ "error", "backend_unavailable", true, s.id },
                    { b.status, b.error.code, b.error.retryable, b.session })
    assert.are.equal(200, (run(d, s, { shell = "echo released > go" })))
    local answer = cjson.decode(a:read("a"))
    a:close()
    assert.are.equal(200, answer.status, answer.body)
    r = cjson.decode(answer.body)
    assert.are.same({ "ok", "released\n", "43" }, { r.status, r.stdout, r.value })
    assert.are.equal(200, (daemon.request(d, "DELETE", "/v1/sessions/" .. s.id)))
    assert_gone(s)
    status, r = cell(d, s, "x")
    assert.are.equal(404, status)
    assert.are.same({ s.id, "deleted" }, { r.session, r.ended })
    local ok, text = metric(d, "echo_sandbox_session_cells_total 4") -- the busy one did not go in
    assert.is_true(ok, text)
  end)

  -- A cell in a local session goes on a thread of the daemon, as a run
  -- does; the daemon's stop interrupts it at the grace's end as it does a
  -- run. The cell waits on a fifo nobody writes. Checked: with the cell's
  -- thread given no interrupt fd, the daemon waited for the cell's own
  -- deadline (20 s), which it answered timed_out.
  it("interrupts a session's cell at the end of a stopping daemon's grace, and keeps the kernel's state", function()
    local d = start("--grace 1")
    local second
    finally(function() stop(second or d) end)
    local s = create(d)
    assert.are.equal(200, (cell(d, s, "x = 7")))
    assert.are.equal(200, (run(d, s, { shell = "mkfifo go" })))
    local client = cell_begun(d, s, "open('go').read()", 20000)
    daemon.signal(d, "TERM", true)
    os.execute("rm -rf " .. d.dir)
    local answer = cjson.decode(client:read("a"))
    client:close()
    assert.are.equal(200, answer.status, answer.body)
    assert.are.same({ "interrupted", s.id }, { cjson.decode(answer.body).status, cjson.decode(answer.body).session })
    second = start()
    local status, r = cell(second, s, "x")
    assert.are.equal(200, status, cjson.encode(r))
    assert.are.same({ "ok", "7" }, { r.status, r.value })
    assert.are.equal(200, (daemon.request(second, "DELETE", "/v1/sessions/" .. s.id)))
    assert_gone(s)
  end)

  -- The host's file and directory the links point at are this case's own.
  -- Checked: with the working dir's paths resolved without RESOLVE_BENEATH
  -- and the rest (backend/local_session_files.c), the GET through the
  -- planted link answered the host file's bytes.
  it("puts files a run reads and gets files a run wrote, never through a link a run planted", function()
    local outside = os.tmpname()
    os.remove(outside)
    assert(os.execute("mkdir -m 777 " .. outside .. " && echo host-secret > " .. outside .. "/secret"))
    local d = start("--max-body 4096")
    finally(function()
      stop(d)
      os.execute("rm -rf " .. env.quote(outside))
    end)
    local s = create(d)
    local files = "/v1/sessions/" .. s.id .. "/files/"
    local status, put = daemon.request(d, "PUT", files .. "in/hello.txt", "from the client\n")
    assert.are.equal(200, status, cjson.encode(put))
    assert.are.same({ "in/hello.txt", 16 }, { put.path, math.tointeger(put.size) })
    local _, r = run(d, s, { shell = "cat in/hello.txt; echo made-by-a-run > out.txt; " ..
                                     "ln -s " .. outside .. "/secret planted; ln -s " .. outside .. " dir" })
    assert.are.equal("from the client\n", r.stdout)
    local got, headers
    status, got, headers = daemon.send(d, "GET", files .. "out.txt", {})
    assert.are.same({ 200, "made-by-a-run\n", "application/octet-stream" }, { status, got, headers["content-type"] })
    local list
    status, list = daemon.request(d, "GET", "/v1/sessions/" .. s.id .. "/files")
    assert.are.equal(200, status)
    local names = {}
    for _, e in ipairs(list.entries) do names[e.name] = e.type end
    assert.are.same({ ["in"] = "dir", ["out.txt"] = "file", planted = "link", dir = "link" }, names)
    status, list = daemon.request(d, "GET", files .. "in")
    assert.are.same({ 200, "in", "hello.txt" }, { status, list.path, list.entries[1].name })
    local refused
    status, refused = daemon.request(d, "GET", files .. "planted")
    assert.are.equal(400, status, cjson.encode(refused))
    assert.truthy(refused.error.message:find("leads outside", 1, true), refused.error.message)
    status, refused = daemon.request(d, "PUT", files .. "dir/new", "from the client")
    assert.are.equal(400, status, cjson.encode(refused))
    assert.truthy(refused.error.message:find("leads outside", 1, true), refused.error.message)
    assert.is_nil(io.open(outside .. "/new"))
    status, refused = daemon.request(d, "PUT", files .. "big", ("x"):rep(5000))
    assert.are.equal(413, status)
    status, refused = daemon.request(d, "GET", files .. "missing")
    assert.are.equal(400, status)
    assert.truthy(refused.error.message:find("no such file", 1, true), refused.error.message)
    assert.are.equal(200, (daemon.request(d, "DELETE", "/v1/sessions/" .. s.id)))
    assert_gone(s)
    status, refused = daemon.request(d, "GET", files .. "out.txt")
    assert.are.same({ 404, "deleted" }, { status, refused.ended })
    status, refused = daemon.request(d, "PUT", files .. "x", "x")
    assert.are.same({ 404, "deleted" }, { status, refused.ended })
  end)

  it("refuses a bad cell with 400 (a language without a kernel named); a k8s session's files need its cluster",
     function()
    local d = start()
    finally(function() stop(d) end)
    local s = create(d)
    for _, case in ipairs {
      { { language = "ruby", code = "1" }, "the languages with one are python" },
      { { language = "python" }, "'code' must be a string" },
      { { language = "python", code = "1", timeout_ms = 0 }, "'timeout_ms'" },
      { { language = "python", code = "1", shell = "true" }, "unknown field 'shell'" },
    } do
      local status, body = daemon.request(d, "POST", "/v1/sessions/" .. s.id .. "/cell", cjson.encode(case[1]))
      assert.are.equal(400, status, cjson.encode(case[1]))
      assert.truthy(body.error.message:find(case[2], 1, true), body.error.message)
    end
    local k8s = "echo-sandbox-s-" .. ("0123456789ab"):rep(2)
    -- this daemon's policy names no cluster: kubectl's own failure, named
    local status, body = daemon.request(d, "GET", "/v1/sessions/" .. k8s .. "/files/a")
    assert.are.equal(500, status, cjson.encode(body))
    assert.truthy(body.error.message:find("kubectl", 1, true), body.error.message) -- its failure, or its absence
    assert.are.equal(200, (daemon.request(d, "DELETE", "/v1/sessions/" .. s.id)))
    assert_gone(s)
  end)

  it("refuses bad bodies with 400 naming the field, and unknown sessions with 404; makes nothing", function()
    local d = start()
    finally(function() stop(d) end)
    for _, case in ipairs {
      { "{", "invalid request JSON" },
      { '"a session"', "expected an object" },
      { cjson.encode { shell = "true" }, "'shell' belongs to a run" },
      { cjson.encode { env = { A = "1" } }, "'env' is not taken at create" },
      { cjson.encode { ttl_ms = 0 }, "'ttl_ms'" },
      { cjson.encode { idle_timeout_ms = "soon" }, "'idle_timeout_ms'" },
      { cjson.encode { ttl_ms = 999999999999 }, "'ttl_ms' is above the ceiling" },
      { cjson.encode { bogus = 1 }, "unknown field 'bogus'" },
      { cjson.encode { limits = { memory_bytes = "lots" } }, "'limits.memory_bytes'" },
    } do
      local status, body = daemon.request(d, "POST", "/v1/sessions", case[1])
      assert.are.equal(400, status, case[1])
      assert.are.equal("invalid_request", body.error.code)
      assert.truthy(body.error.message:find(case[2], 1, true), case[1] .. ": " .. body.error.message)
    end
    local unknown = ("0123456789abcdef"):rep(2)
    local status, body = daemon.request(d, "GET", "/v1/sessions/" .. unknown)
    assert.are.equal(404, status)
    assert.are.same({ unknown, "no session " .. unknown }, { body.session, body.error.message })
    assert.is_nil(body.ended)
    status, body = daemon.request(d, "POST", "/v1/sessions/not-an-id/run", cjson.encode { shell = "true" })
    assert.are.equal(404, status)
    assert.is_nil(body.session)
    local _, list = daemon.request(d, "GET", "/v1/sessions")
    assert.are.same({}, list.sessions)
    assert.is_true(metric(d, "echo_sandbox_sessions_created_total 0"))
    -- a run's own refusals, in a live session
    local s = create(d)
    for _, case in ipairs {
      { { shell = 5 }, "'shell'" },
      { { shell = "true", limits = { memory_bytes = 1048576 } }, "takes no memory limit of its own" },
      { { shell = "true", limits = { network = true } }, "has the session's network" },
    } do
      local answer
      status, answer = run(d, s, case[1])
      assert.are.equal(400, status, cjson.encode(case[1]))
      assert.truthy(answer.error.message:find(case[2], 1, true), answer.error.message)
    end
    local headers
    status, body, headers = daemon.send(d, "PUT", "/v1/sessions/" .. s.id, {})
    assert.are.equal(405, status)
    assert.are.equal("GET, DELETE", headers.allow)
    assert.are.equal(200, (daemon.request(d, "DELETE", "/v1/sessions/" .. s.id)))
    assert_gone(s)
  end)
end)
