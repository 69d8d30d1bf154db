-- Sessions on the k8s backend through the daemon (POST /v1/sessions with
-- the k8s backend, and GET|DELETE /v1/sessions/ID, POST
-- /v1/sessions/ID/run for a k8s session's id), against the fake API server
-- (spec/support/fake_kube.py runs an exec'd command as a local process in
-- the pod's working dir). A k8s session is its pod: two daemons, each with
-- a directory of sessions of its own, serve the same session, and neither
-- keeps anything of it. Every answer is checked against doc/openapi.json
-- (spec/support/daemon.lua).
--
-- One minor of kubectl's matrix: the daemon's helpers run the same kubectl
-- commands as the CLI, whose matrix spec/k8s_session_spec.lua covers.
local env = require "spec.support.env"
local fake = require "spec.support.fake_kube"
local daemon = require "spec.support.daemon"
local cjson = require "cjson"

local policy = "spec/support/k8s_policy.lua"

local function ls(dir)
  local p = io.popen("ls -A " .. env.quote(dir) .. " 2>/dev/null")
  local text = p:read("a")
  p:close()
  return text
end

-- Polls until done() holds (at most 30 s): an interlock on what is
-- awaited, not a sleep of its expected length.
local function until_true(done)
  for _ = 1, 3000 do
    if done() then return true end
    env.sleep(0.01)
  end
  return false
end

local minor = env.newest_kubectl()
if minor then
  describe("k8s sessions through the daemon, kubectl 1." .. minor, function()
    env.check_leaks() -- outer: after the server has stopped
    describe("on a fake API server", function()
      local server, dirs, daemons

      -- A daemon of server's cluster, with a directory of sessions of its own
      -- (which must stay empty: nothing of a k8s session is kept here).
      local function start(policy_path)
        local dir = os.tmpname()
        os.remove(dir)
        dirs[#dirs + 1] = dir
        local d = daemon.start("--policy " .. env.quote(policy_path or policy), nil,
                               server.env .. " ECHO_SANDBOX_SESSION_DIR=" .. env.quote(dir))
        daemons[#daemons + 1] = d
        return d
      end

      after_each(function() -- before the fixture's, which stops the server
        for _, d in ipairs(daemons) do daemon.stop(d) end
        for _, dir in ipairs(dirs) do
          assert.are.equal("", ls(dir))
          os.execute("rm -rf " .. env.quote(dir))
        end
        assert.are.same({}, fake.query(server, "/_fake/procs"))
      end)
      local fixture = fake.per_spec(minor)
      before_each(function()
        server = fixture.server
        dirs, daemons = {}, {}
      end)

      local function create(d, body)
        local status, s = daemon.request(d, "POST", "/v1/sessions", cjson.encode(body))
        assert.are.equal(201, status, cjson.encode(s))
        assert.truthy(s.id:find("^echo%-sandbox%-s%-%x+$"), s.id)
        return s
      end

      local function run(d, id, request, query)
        return daemon.request(d, "POST", "/v1/sessions/" .. id .. "/run" .. (query or ""), cjson.encode(request))
      end

      -- Checked: without the k8s branch of the run's helper (the local
      -- session's run for every id), the first run answered 400 "a session
      -- id is 32 hex digits"; without the object the create's helper sends
      -- ('J'), the create answered 500.
      it("serves a session made through one daemon through a second one on the same cluster", function()
        local one = start()
        local k8s_policy = env.policy_file('policy.backend = "k8s"\n')
        finally(function() os.remove(k8s_policy) end)
        local two = start(k8s_policy)
        local s = create(one, { backend = "k8s", idle_timeout_ms = 60000 })
        assert.are.same({ "k8s", "alive", "Running", 60000 }, { s.backend, s.state, s.phase, s.idle_timeout_ms })
        local pods = fake.pods(server)
        assert.are.equal(1, #pods)
        assert.are.equal(s.id, pods[1].metadata.name)
        local status, r = run(one, s.id, { shell = "echo kept > note.txt; echo one" })
        assert.are.equal(200, status, cjson.encode(r))
        assert.are.same({ "exited", 0, "one\n", s.id }, { r.status, r.exit_code, r.stdout, r.session })
        status, r = run(two, s.id, { shell = "cat note.txt" })
        assert.are.equal(200, status, cjson.encode(r))
        assert.are.same({ "kept\n", s.id }, { r.stdout, r.session })
        local shown
        status, shown = daemon.request(two, "GET", "/v1/sessions/" .. s.id)
        assert.are.equal(200, status, cjson.encode(shown))
        assert.are.same({ s.id, "k8s", "alive" }, { shown.id, shown.backend, shown.state })
        -- the list: the k8s daemon's by default, the local one's when asked
        local listed
        status, listed = daemon.request(two, "GET", "/v1/sessions")
        assert.are.equal(200, status)
        assert.are.same({ s.id }, { listed.sessions[1] and listed.sessions[1].id })
        status, listed = daemon.request(one, "GET", "/v1/sessions")
        assert.are.same({}, listed.sessions)
        status, listed = daemon.request(one, "GET", "/v1/sessions?backend=k8s")
        assert.are.same({ s.id }, { listed.sessions[1] and listed.sessions[1].id })
        -- deleted through the second, gone for both, and said so
        local deleted
        status, deleted = daemon.request(two, "DELETE", "/v1/sessions/" .. s.id)
        assert.are.equal(200, status, cjson.encode(deleted))
        assert.are.same({ "ended", "deleted" }, { deleted.state, deleted.ended })
        assert.are.same({}, fake.pods(server))
        local gone
        status, gone = daemon.request(one, "GET", "/v1/sessions/" .. s.id)
        assert.are.equal(404, status, cjson.encode(gone))
        assert.are.equal(s.id, gone.session)
        assert.truthy(gone.error.message:find("does not exist", 1, true), gone.error.message)
        status, gone = run(one, s.id, { shell = "echo never" })
        assert.are.equal(404, status, cjson.encode(gone))
        assert.truthy(gone.error.message:find("does not exist", 1, true), gone.error.message)
        status = daemon.request(two, "DELETE", "/v1/sessions/" .. s.id)
        assert.are.equal(404, status)
      end)

      -- A k8s session's files through the daemon: each op a run in the pod
      -- (dispatch/session_k8s_files.h), off the loop as a run is.
      -- Checked: with the route's 501 for a k8s id kept, the put answered 501.
      it("puts, gets and lists a k8s session's files through the daemon", function()
        local d = start()
        local s = create(d, { backend = "k8s" })
        local files = "/v1/sessions/" .. s.id .. "/files/"
        local status, put = daemon.request(d, "PUT", files .. "in/hello.txt?mode=0640", "from the client\n")
        assert.are.equal(200, status, cjson.encode(put))
        assert.are.same({ "in/hello.txt", 16 }, { put.path, math.tointeger(put.size) })
        local r
        status, r = run(d, s.id, { shell = "cat in/hello.txt; echo made-by-a-run > out.txt" })
        assert.are.same({ 200, "from the client\n" }, { status, r.stdout })
        local got, headers
        status, got, headers = daemon.send(d, "GET", files .. "out.txt", {})
        assert.are.same({ 200, "made-by-a-run\n", "application/octet-stream" },
                        { status, got, headers["content-type"] })
        local list
        status, list = daemon.request(d, "GET", "/v1/sessions/" .. s.id .. "/files")
        assert.are.equal(200, status, cjson.encode(list))
        local names = {}
        for _, e in ipairs(list.entries) do names[e.name] = e.type end
        assert.are.same({ ["in"] = "dir", ["out.txt"] = "file" }, names)
        status, list = daemon.request(d, "GET", files .. "in")
        assert.are.same({ 200, "in", "hello.txt", tonumber("640", 8) },
                        { status, list.path, list.entries[1].name, math.tointeger(list.entries[1].mode) })
        local refused
        status, refused = daemon.request(d, "GET", files .. "missing")
        assert.are.equal(400, status, cjson.encode(refused))
        assert.truthy(refused.error.message:find("no such regular file", 1, true), refused.error.message)
        assert.are.equal(200, (daemon.request(d, "DELETE", "/v1/sessions/" .. s.id)))
        status, refused = daemon.request(d, "GET", files .. "out.txt")
        assert.are.equal(404, status, cjson.encode(refused))
        assert.are.equal(s.id, refused.session)
      end)

      -- The kernel is a process in the pod: a cell through one daemon, the
      -- next through a second, the state kept.
      -- Checked: with the cell's plan made for the local backend (no k8s
      -- branch in esb_session_plan_cell), the first cell failed; with the
      -- route's 501 for a k8s id kept, it answered 501.
      it("runs cells of a k8s session through two daemons, the kernel's state kept", function()
        local one, two = start(), start()
        local s = create(one, { backend = "k8s" })
        local function cell(d, code)
          return daemon.request(d, "POST", "/v1/sessions/" .. s.id .. "/cell",
                                cjson.encode { language = "python", code = code })
        end
        local status, r = cell(one, "x = 41")
        assert.are.equal(200, status, cjson.encode(r))
        assert.are.same({ "ok", s.id }, { r.status, r.session })
        status, r = cell(two, "x + 1")
        assert.are.equal(200, status, cjson.encode(r))
        assert.are.equal("42", r.value)
        status, r = daemon.request(one, "POST", "/v1/sessions/" .. s.id .. "/cell",
                                   cjson.encode { language = "cobol", code = "1" })
        assert.are.equal(400, status, cjson.encode(r))
        assert.are.equal(200, (daemon.request(two, "DELETE", "/v1/sessions/" .. s.id)))
        status, r = cell(one, "x")
        assert.are.equal(404, status, cjson.encode(r))
        assert.are.equal(s.id, r.session)
      end)

      -- The run waits on a fifo that the client writes only once it has
      -- read the first event; meanwhile the same daemon answers a show of
      -- the session, which asks the cluster too.
      -- Checked: with the helper given no output callback, no event came
      -- before the result and the client waited out its 60 s.
      it("streams a run in a k8s session while the daemon answers others", function()
        local d = start()
        local s = create(d, { backend = "k8s" })
        local fifo_dir = os.tmpname()
        os.remove(fifo_dir)
        assert(os.execute("mkdir " .. fifo_dir .. " && mkfifo " .. fifo_dir .. "/go " .. fifo_dir .. "/wait"))
        finally(function() os.execute("rm -rf " .. fifo_dir) end)
        -- a run in the background that waits on a fifo: the show must
        -- answer while it waits
        local out = fifo_dir .. "/out"
        os.execute(("python3 spec/support/http_client.py request %s POST %s %s > %s 2>&1 &"):format(
          env.quote(d.addr), env.quote("/v1/sessions/" .. s.id .. "/run"),
          env.quote(cjson.encode { shell = "echo waiting; read x < " .. fifo_dir .. "/wait; echo \"$x\"" }),
          env.quote(out)))
        local status, shown = daemon.request(d, "GET", "/v1/sessions/" .. s.id)
        assert.are.equal(200, status, cjson.encode(shown))
        assert.are.equal("", env.read_file(out) or "")
        assert(os.execute("echo released > " .. fifo_dir .. "/wait"))
        assert.is_true(until_true(function() return (env.read_file(out) or ""):find("}%s*$") ~= nil end))
        local answer = cjson.decode(env.read_file(out))
        assert.are.equal(200, answer.status)
        assert.are.equal("waiting\nreleased\n", cjson.decode(answer.body).stdout)
        local request = cjson.encode { shell = "echo first; read x < " .. fifo_dir .. "/go; echo \"got $x\"" }
        answer = daemon.stream_interlocked(d, "/v1/sessions/" .. s.id .. "/run?stream=1", fifo_dir .. "/go", request)
        assert.are.equal(200, answer.status)
        local lines = answer.lines
        assert.are.same({ event = "output", stream = "stdout", data = "first\n" }, lines[1])
        assert.are.same({ event = "output", stream = "stdout", data = "got hello\n" }, lines[2])
        assert.are.equal("result", lines[3].event)
        assert.are.equal(s.id, lines[3].result.session)
        assert.are.equal(200, (daemon.request(d, "DELETE", "/v1/sessions/" .. s.id)))
      end)

      -- Checked: without k8s_ended_in (src/daemon/server.c), the run's 404
      -- said no "ended".
      it("says a k8s session that ended by itself is gone and why, and its run is a 404", function()
        local d = start()
        local s = create(d, { backend = "k8s", idle_timeout_ms = 300 })
        assert.is_true(until_true(function()
          local p = fake.pods(server)[1]
          return p and p.status.phase ~= "Running"
        end), "the idle session's pod still runs")
        local status, gone = daemon.request(d, "GET", "/v1/sessions/" .. s.id)
        assert.are.equal(404, status, cjson.encode(gone))
        assert.are.same({ s.id, "idle" }, { gone.session, gone.ended })
        status, gone = run(d, s.id, { shell = "true" })
        assert.are.equal(404, status, cjson.encode(gone))
        assert.are.same({ s.id, "idle" }, { gone.session, gone.ended })
        -- its DELETE removes its pod, and says how it had ended
        status, gone = daemon.request(d, "DELETE", "/v1/sessions/" .. s.id)
        assert.are.equal(404, status, cjson.encode(gone))
        assert.are.equal("idle", gone.ended)
        assert.are.same({}, fake.pods(server))
      end)
    end)
  end)
end
