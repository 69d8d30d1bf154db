-- Sessions on the k8s backend (src/backend/k8s_session.h), against the fake
-- API server: a session is a pod whose first process waits, a run in it is
-- an exec into that pod (the engine's API client's, or `kubectl exec -i`:
-- spec/k8s_exec_spec.lua tells the two apart), and the fake runs an exec'd
-- command as a local process in the pod's working dir
-- (spec/support/fake_kube.py).
--
-- Which kubectl: every minor of the matrix (env.each_kubectl: 1.30, 1.33
-- and 1.35), each against a fake reporting its minor. All of them ask for
-- exec over WebSocket first (v5.channel.k8s.io, client-go's
-- KUBECTL_REMOTE_COMMAND_WEBSOCKETS, on by default since 1.30), which is
-- what the fake serves; 1.29 and older speak SPDY there unless that
-- variable is set, and are not in the matrix. The cases whose requests are
-- the same from every kubectl (the pod's life, cleanup) run on one minor.
local env = require "spec.support.env"
local fake = require "spec.support.fake_kube"
local cjson = require "cjson"

local sessions = require "spec.support.k8s_session"
local cli, create, run, show, rm = sessions.cli, sessions.create, sessions.run, sessions.show, sessions.rm
local policy = sessions.policy

local function pod_of(server, id)
  for _, p in ipairs(fake.pods(server)) do
    if p.metadata.name == id then return p end
  end
end

-- Waits (at most 20 s, polling the fake) until the pod of id is no longer
-- Running: the order is the pod's own end, not a time.
local function wait_pod_ended(server, id)
  for _ = 1, 400 do
    local p = pod_of(server, id)
    if not p or p.status.phase ~= "Running" then return p end
    env.sleep(0.05)
  end
  error("the pod of session " .. id .. " still runs")
end

env.each_kubectl(function(minor)
  describe(("k8s sessions, kubectl 1.%d"):format(minor), function()
    env.check_leaks() -- outer: after the server has stopped
    describe("on a fake API server", function()
      local server
      after_each(function() -- before the fixture's, which stops the server
        -- nothing of a session's runs lives on once its pod is gone, and
        -- nothing of a k8s session is kept by the engine on this machine
        assert.are.same({}, fake.query(server, "/_fake/procs"))
        local p = io.popen("ls -A " .. env.quote(server.dir .. "/sessions") .. " 2>/dev/null")
        assert.are.equal("", p:read("a"))
        p:close()
      end)
      local fixture = fake.per_spec(minor)
      before_each(function() server = fixture.server end)

      it("keeps the working dir from run to run, each run a separate CLI process", function()
        local id = create(server)
        local pod = pod_of(server, id)
        assert.are.equal("true", pod.metadata.labels["echo-sandbox.io/session"])
        assert.truthy(tonumber(pod.metadata.labels["echo-sandbox.io/session-expires"]))
        assert.are.equal("echo-sandbox", pod.metadata.labels["app.kubernetes.io/managed-by"])
        assert.are.equal(600, pod.spec.activeDeadlineSeconds) -- the default TTL, 10 minutes
        assert.are.equal(id, pod.spec.containers[1].name)
        local r = run(server, id, { shell = "cat in.txt; echo kept > out.txt; echo err >&2; exit 3",
                                    files = { ["in.txt"] = "given\n" } })
        assert.are.equal("exited", r.status, cjson.encode(r))
        assert.are.equal(3, r.exit_code)
        assert.are.equal("given\n", r.stdout)
        assert.are.equal("err\n", r.stderr)
        assert.are.equal(id, r.session)
        r = run(server, id, { shell = "cat out.txt in.txt; cat", stdin = "from stdin\n", collect = { "*.txt" } })
        assert.are.equal(0, r.exit_code, cjson.encode(r))
        assert.are.equal("kept\ngiven\nfrom stdin\n", r.stdout)
        assert.are.equal(2, #r.files)
        local s = show(server, id)
        assert.are.equal("alive", s.state)
        assert.are.equal("k8s", s.backend)
        rm(server, id)
        assert.is_nil(pod_of(server, id))
      end)

      -- Checked: without the timer of the exec'd wrapper (its sleep and
      -- kill), the second run waited for the first's sleep until its own
      -- timeout (15 s); without the reap after a run, the fourth's wait for
      -- the process the third left timed out.
      it("ends a run's processes at its deadline and when it ends, not the session", function()
        local id = create(server)
        local r, code = run(server, id, { shell = "sleep 300 & echo $! > bg.pid; echo started; sleep 300",
                                          timeout_ms = 3000 })
        assert.are.equal(124, code, cjson.encode(r))
        assert.are.equal("timed_out", r.status)
        assert.are.equal("started\n", r.stdout)
        local wait_gone = "while kill -0 $(cat bg.pid) 2>/dev/null; do sleep 0.05; done; echo gone"
        r = run(server, id, { shell = wait_gone, timeout_ms = 15000 })
        assert.are.equal("gone\n", r.stdout, cjson.encode(r))
        r = run(server, id, { shell = "sleep 300 & echo $! > bg.pid; echo left" })
        assert.are.equal("left\n", r.stdout, cjson.encode(r))
        r = run(server, id, { shell = wait_gone, timeout_ms = 15000 })
        assert.are.equal("gone\n", r.stdout, cjson.encode(r))
        rm(server, id)
      end)

      -- session cp and session files of a k8s session: each a run in its
      -- pod (dispatch/session_k8s_files.h). The bytes come back as they went
      -- in (a NUL, no newline at the end), and a name with a newline in it is
      -- one entry of the listing, not two.
      it("puts, gets and lists a session's files through runs in its pod", function()
        local id = create(server)
        local src, back = os.tmpname(), os.tmpname()
        local bytes = "a\0b\nc\255"
        local f = assert(io.open(src, "wb"))
        f:write(bytes)
        f:close()
        assert(os.execute("chmod 750 " .. env.quote(src)))
        local _, err, code = cli(server, { "cp", src, id .. ":sub/dir/a.bin" })
        assert.are.equal(0, code, err)
        _, err, code = cli(server, { "cp", id .. ":sub/dir/a.bin", back })
        assert.are.equal(0, code, err)
        f = assert(io.open(back, "rb"))
        assert.are.equal(bytes, f:read("a"))
        f:close()
        os.remove(src)
        os.remove(back)
        local r = run(server, id, { shell = "mkdir d && ln -s sub/dir/a.bin link && printf x > 'new\nline'" })
        assert.are.equal(0, r.exit_code, cjson.encode(r))
        local out
        out, err, code = cli(server, { "files", id, "--json" })
        assert.are.equal(0, code, err)
        local entries, names = {}, {} -- one JSON object a line: the lines as an array
        for _, e in ipairs(cjson.decode("[" .. out:gsub("\n(.)", ",%1") .. "]")) do
          entries[e.name] = e
          names[#names + 1] = e.name
        end
        table.sort(names)
        assert.are.same({ "d", "link", "new\nline", "sub" }, names) -- no run's mark among them
        assert.are.equal("dir", entries.d.type)
        assert.are.equal("link", entries.link.type)
        assert.are.equal("dir", entries.sub.type)
        assert.are.equal("file", entries["new\nline"].type)
        assert.are.equal(1, entries["new\nline"].size)
        out, err, code = cli(server, { "files", id, "sub/dir", "--json" })
        assert.are.equal(0, code, err)
        local e = cjson.decode(out)
        assert.are.same({ name = "a.bin", type = "file", mode = tonumber("750", 8), size = #bytes }, e)
        _, err, code = cli(server, { "cp", id .. ":nothing", "-" })
        assert.are.equal(125, code)
        assert.truthy(err:find("no such regular file", 1, true), err)
        _, err, code = cli(server, { "cp", id .. ":a*", "-" })
        assert.are.equal(125, code)
        assert.truthy(err:find("cannot be", 1, true), err)
        _, err, code = cli(server, { "files", id, "nowhere" })
        assert.are.equal(125, code)
        assert.truthy(err:find("no such directory", 1, true), err)
        rm(server, id)
      end)

      it("says a deleted session is gone, and a run in it is an error naming it", function()
        local id = create(server)
        rm(server, id)
        assert.are.same({}, fake.pods(server))
        local r, code = run(server, id, { shell = "true" })
        assert.are.equal("error", r.status)
        assert.are.equal("invalid_request", r.error.code)
        assert.truthy(r.error.message:find(id, 1, true) and r.error.message:find("does not exist"), r.error.message)
        assert.are.equal(125, code)
        local _, err, show_code = show(server, id)
        assert.are_not.equal(0, show_code)
        assert.truthy(err:find("does not exist"), err)
      end)
    end)

    env.kubectl_once(minor)("the session's own end, on a fake API server", function()
      local fixture = fake.per_spec(minor)
      local server
      before_each(function() server = fixture.server end)

      -- A session of idle timeout T and in it a run of 2T, then a second
      -- run; where the session had ended before a run came (its create, or
      -- the first run's answer, took longer than T on a loaded machine),
      -- again with 2T. Returns its id.
      local function idle_session_runs()
        for _, idle in ipairs { 1, 2, 4, 8 } do
          local id = create(server, "--idle-timeout", tostring(idle * 1000))
          local r = run(server, id, { shell = ("sleep %d; echo done"):format(2 * idle),
                                      timeout_ms = (4 * idle + 10) * 1000 })
          local ended = r.reason == "SessionEnded"
          if not ended then
            assert.are.equal("done\n", r.stdout, cjson.encode(r))
            r = run(server, id, { shell = "echo still" })
            ended = r.reason == "SessionEnded"
            if not ended then
              assert.are.equal("still\n", r.stdout, cjson.encode(r))
              return id
            end
          end
          rm(server, id)
        end
        error("every session ended before its runs came: the machine is too busy for this case")
      end

      -- Checked: with the wait script's count never growing (c=0 each
      -- tick), the pod still ran after 20 s; without a run's mark, the
      -- session ended under the run of 2 s (AttachLost).
      it("ends at its idle timeout with nobody watching, but not while a run goes on", function()
        local id = idle_session_runs()
        local pod = wait_pod_ended(server, id)
        assert.are.equal("Succeeded", pod.status.phase)
        local s = show(server, id)
        assert.are.equal("ended", s.state)
        assert.are.equal("idle", s.ended)
        assert.are.equal("Succeeded", s.phase)
        local r = run(server, id, { shell = "true" })
        assert.are.equal("error", r.status)
        assert.are.equal("SessionEnded", r.reason)
        assert.truthy(r.error.message:find("has ended (idle)", 1, true), r.error.message)
        rm(server, id)
      end)

      -- A session whose idle end comes before its create's wait saw the pod
      -- Ready (an idle timeout shorter than the create's own round trips):
      -- made, and ended idle. The engine's kubectl is a wrapper whose `wait`
      -- answers only once the pod has ended (an interlock on the pod's own
      -- end), as a wait that timed out does.
      -- Checked: without ran_and_ended (backend/k8s_session.c), the create
      -- failed, saying the pod "did not come to run".
      it("makes a session that ended idle before its create saw it Ready, and says so", function()
        fake.needs("namespace: the engine's kubectl here is the spec's wrapper, which rewrites none")
        local wrapper = os.tmpname()
        env.write_file(wrapper, ([[#!/bin/sh
for a in "$@"; do
  if [ "$a" = wait ]; then
    for w in "$@"; do case $w in pod/*) pod=$w ;; esac; done
    n=0 # bounded: a pod that never ends (or is not found) fails the wait as a timeout does
    while [ "$(%s get "$pod" -o 'jsonpath={.status.phase}')" != Succeeded ] && [ $n -lt 600 ]; do
      n=$((n + 1)); sleep 0.05
    done
    echo "error: timed out waiting for the condition on pods/${pod#pod/}" >&2
    exit 1
  fi
done
exec %s "$@"
]]):format(env.quote(env.kubectl(minor)), env.quote(env.kubectl(minor))))
        finally(function() os.remove(wrapper) end)
        assert(os.execute("chmod +x " .. wrapper))
        local out, err, code = env.cli_run({ "session", "create", "--backend", "k8s", "--idle-timeout", "300",
                                             "--policy", policy },
                                           nil, server.env .. " ECHO_SANDBOX_KUBECTL=" .. env.quote(wrapper))
        assert.are.equal(0, code, err)
        local id = out:match("^(%S+)\n$")
        local s = show(server, id)
        assert.are.same({ "ended", "idle" }, { s.state, s.ended })
        rm(server, id)
      end)

      -- Checked: without the delete after a wait that failed
      -- (esb_k8s_session_create), the pod stayed.
      it("refuses a session whose pod does not come to run, naming why, and deletes its pod", function()
        local pull_error = env.policy_file('policy.default_image = "x-fake-pull-error"\n' ..
                                           'policy.k8s.pod_running_timeout = "2s"\n')
        local out, err, code = env.cli_run({ "session", "create", "--backend", "k8s", "--policy", pull_error }, nil,
                                           server.env)
        os.remove(pull_error)
        assert.are.equal(125, code, out .. err)
        assert.truthy(err:find("did not come to run within 2s", 1, true), err)
        assert.truthy(err:find("x-fake-pull-error", 1, true), err)
        assert.are.same({}, fake.pods(server))
      end)

      -- Checked: without the ended sessions in cleanup's pick (kube.pods'
      -- third field), the idle session's pod was kept until its expiry.
      it("`cleanup` removes the pods of sessions that ended, at their TTL or idle, and keeps live ones", function()
        local ttl = create(server, "--ttl", "1000")
        local idle = create(server, "--idle-timeout", "500")
        local live = create(server)
        assert.are.equal(1, pod_of(server, ttl).spec.activeDeadlineSeconds)
        assert.are.equal("DeadlineExceeded", wait_pod_ended(server, ttl).status.reason)
        wait_pod_ended(server, idle)
        assert.are.equal("ttl", show(server, ttl).ended)
        local out, err, code = env.cli_run({ "cleanup", "--policy", policy }, nil, server.env)
        assert.are.equal(0, code, out .. err)
        assert.is_nil(pod_of(server, ttl))
        assert.is_nil(pod_of(server, idle))
        assert.truthy(pod_of(server, live))
        assert.truthy(out:find("keeping " .. live, 1, true), out)
        local listed = cli(server, { "ls", "--backend", "k8s" })
        assert.truthy(listed:find(live .. "  alive", 1, true), listed)
        rm(server, live)
      end)
    end)

    env.kubectl_once(minor)("faults of the exec, on a fake API server", function()
      -- Checked: without session_exec_failed's words for a refused exec,
      -- the result said only kubectl's line, not the permission it needs.
      describe("where pods/exec is denied", function()
        local fixture = fake.per_spec(minor, "--deny-exec")
        it("says that the account may not exec, naming the permission", function()
          local id = create(fixture.server)
          local r, code = run(fixture.server, id, { shell = "echo never" })
          assert.are.equal("error", r.status)
          assert.are.equal("ExecForbidden", r.reason)
          assert.truthy(r.error.message:find('"create" on "pods/exec"', 1, true), r.error.message)
          assert.are.equal("", r.stdout)
          assert.are_not.equal(0, code)
          rm(fixture.server, id)
        end)
      end)

      -- kubectl exec's break (ECHO_SANDBOX_K8S_API=kubectl: the engine's
      -- own exec, which writes no report among the program's stderr, has
      -- its case in spec/k8s_exec_spec.lua). Checked: without
      -- cut_exec_report, kubectl's klog lines of the break were the
      -- program's stderr.
      describe("where the exec connection is cut", function()
        local fixture = fake.per_spec(minor, "--drop-exec-at one")
        it("says the output is incomplete, never the program's exit", function()
          local id = create(fixture.server)
          local r = run(fixture.server, id, { shell = "echo one; sleep 1; echo two" }, " ECHO_SANDBOX_K8S_API=kubectl")
          assert.are.equal("error", r.status, cjson.encode(r))
          assert.are.equal("AttachLost", r.reason, cjson.encode(r))
          assert.is_true(r.error.retryable)
          -- kubectl's report of the break is no output of the program's
          assert.is_nil(r.stderr:find("websocket", 1, true), r.stderr)
          assert.truthy(r.error.message:find("websocket", 1, true), r.error.message)
          rm(fixture.server, id)
        end)
      end)
    end)
  end)
end)
