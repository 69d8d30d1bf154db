-- The exec into a session's pod or a warm pod where the engine's API client
-- is in use (src/backend/kube_exec.h): echo-sandbox-kube speaks pods/exec
-- over WebSocket (v5.channel.k8s.io) in place of `kubectl exec -i`, and
-- says how the exec ended in a word after a secret mark, so that the
-- result tells the program's exit from the exec's failure by what the
-- engine saw, never by bytes the program wrote. kubectl stays the exec
-- where the client is not used (ECHO_SANDBOX_K8S_API=kubectl, a kubeconfig
-- it leaves to kubectl), where the exec's credentials are refused (401) and
-- where the server has no v5. The fake tells the two apart by the
-- User-Agent it logs for each request (echo-sandbox, kubectl/1.x).
-- spec/run: one task per minor, the oldest and the newest of the matrix.
local env = require "spec.support.env"
local fake = require "spec.support.fake_kube"
local cjson = require "cjson"

local sessions = require "spec.support.k8s_session"
local create, run, rm = sessions.create, sessions.run, sessions.rm

-- The pods/exec requests after the mark: "AGENT CODE" each (AGENT the
-- User-Agent's first word).
local function execs_since(server, mark)
  local out, after = {}, false
  for _, e in ipairs(fake.request_log(server)) do
    if e.mark == mark then
      after = true
    elseif after and e.method and e.path:find("/exec$") then
      out[#out + 1] = ("%s %s"):format(e.agent:match("^[%w-]+"), e.code and ("%d"):format(e.code) or "-")
    end
  end
  return out
end

local function random_bytes(n)
  local f = assert(io.open("/dev/urandom", "rb"))
  local data = f:read(n)
  f:close()
  return data
end

env.each_oldest_newest_kubectl(function(minor)
  describe(("k8s exec by the API client, kubectl 1.%d"):format(minor), function()
    env.check_leaks() -- outer: after the server has stopped

    describe("on a fake API server", function()
      local server
      after_each(function() -- before the fixture's, which stops the server
        assert.are.same({}, fake.query(server, "/_fake/procs"))
      end)
      local fixture = fake.per_spec(minor, "--request-log --drop-exec-at CUT-HERE")
      before_each(function() server = fixture.server end)

      -- Checked: with the exec left to kubectl (exec_argv never taking the
      -- client), the first three agents were kubectl's.
      it("gives the program's exit code (0, 3, 255) by the client's exec, with no kubectl; kubectl's where the "
         .. "client is not used", function()
        local id = create(server)
        for _, client in ipairs { { prefix = "", agent = "echo-sandbox" },
                                  { prefix = " ECHO_SANDBOX_K8S_API=kubectl", agent = "kubectl" } } do
          fake.mark(server, "runs-" .. client.agent)
          for _, code in ipairs { 0, 3, 255 } do
            local r = run(server, id, { shell = ("echo out; echo err >&2; exit %d"):format(code) }, client.prefix)
            assert.are.equal("exited", r.status, cjson.encode(r))
            assert.are.equal(code, r.exit_code)
            assert.are.equal("out\n", r.stdout)
            assert.are.equal("err\n", r.stderr)
          end
          local agents = {}
          for _, e in ipairs(execs_since(server, "runs-" .. client.agent)) do agents[#agents + 1] = e:match("^%S+") end
          assert.are.same({ client.agent, client.agent, client.agent }, agents)
        end
        rm(server, id)
      end)

      -- More than a frame, a pipe and the server's relay hold, both ways at
      -- once: a client that stopped reading while it sent would wait for
      -- ever (the run's deadline ends it). Checked: with stdin's end not
      -- sent (no close of channel 0), tee never ended and the run timed out
      -- (124).
      it("passes more than 1 MiB of binary stdout and stderr exactly, with more than 1 MiB of stdin to its end",
         function()
        local id = create(server)
        local data = random_bytes(1536 * 1024 + 7)
        local file = server.dir .. "/stdin.bin"
        env.write_file(file, data)
        local out, err, code = sessions.cli(server, { "run", id, "--max-output", "8000000", "--stdin-file", file,
                                                      "--timeout", "60", "--", "sh", "-c", "tee /dev/stderr; echo EOF-SEEN" })
        assert.are.equal(0, code, ("stderr: %d bytes"):format(#err))
        assert.is_true(out == data .. "EOF-SEEN\n", ("stdout: %d bytes, not %d"):format(#out, #data + 9))
        assert.is_true(err == data, ("stderr: %d bytes, not %d"):format(#err, #data))
        rm(server, id)
      end)

      -- Checked: with the helper's word not read and a missing end mark not
      -- taken for a broken exec (decide_in_session), this was exited (1,
      -- the helper's own exit code).
      it("says the exec broke, not that the program exited, when its connection is cut while it runs", function()
        local id = create(server)
        fake.mark(server, "cut")
        local r = run(server, id, { shell = "echo CUT-HERE; sleep 5; exit 0" })
        assert.are.equal("error", r.status, cjson.encode(r))
        assert.are.equal("AttachLost", r.reason)
        assert.matches("the exec %(echo%-sandbox%-kube%) into session " .. id:gsub("%-", "%%-")
                       .. " ended while the program ran on %(error: the exec's connection ended before the API "
                       .. "server's status came", r.error.message)
        assert.are.same({ "echo-sandbox 101" }, execs_since(server, "cut"))
        rm(server, id) -- the exec'd process runs on after its client went (as on a node): the pod's end ends it
      end)
    end)

    -- The program ended (the end mark came), and the connection was cut
    -- before the API server's status: the helper says so in its word, and
    -- the exit stays unknown to the engine: an error, not the exit 1 that
    -- kubectl's exit code (or the helper's) would read as. Checked: with
    -- the helper's word not read (its exit code taken), this was exited 1,
    -- as it is through kubectl exec (the exec left to kubectl).
    describe("on a fake API server that cuts the exec where its status would go", function()
      local fixture = fake.per_spec(minor, "--drop-exec-status")
      it("says the exec broke after the program ended, never the helper's exit code", function()
        local server = fixture.server
        local id = create(server)
        local r = run(server, id, { shell = "echo done" })
        assert.are.equal("error", r.status, cjson.encode(r))
        assert.are.equal("AttachLost", r.reason)
        assert.is_false(r.error.retryable)
        assert.matches("ended after the program did %(exit status 0, as its end mark says%) but before the API "
                       .. "server's status came", r.error.message)
        assert.are.equal("done\n", r.stdout)
        rm(server, id)
      end)
    end)

    -- A server that upgrades to no protocol (it ignored the one offered)
    -- may have started the command: kubectl would start it again (here the
    -- first start found no handshake on its stdin and never ran the
    -- program; a command without the handshake would have). Checked: with
    -- such an upgrade handed to kubectl, the run was exec'd a second time,
    -- by kubectl, and this failed on its status (exited).
    describe("on a fake API server that upgrades the client's exec to no protocol", function()
      local fixture = fake.per_spec(minor, "--request-log --ignore-protocol-agent echo-sandbox")
      it("fails the run, and never runs the exec again by kubectl", function()
        local server = fixture.server
        local id = create(server)
        fake.mark(server, "run")
        local r = run(server, id, { shell = "echo once >> ran.txt; cat ran.txt" })
        assert.are.equal("error", r.status, cjson.encode(r))
        assert.matches("not the v5.channel.k8s.io offered", r.error.message, 1, true)
        assert.are.same({ "echo-sandbox 101" }, execs_since(server, "run"))
        rm(server, id)
      end)
    end)

    -- A server may split a message into frames anywhere, put a ping or a
    -- pong between them (RFC 6455 5.4) and give a short frame's length in
    -- 8 bytes. Checked: with a control frame taken for the end of the
    -- message it came within, the continuation after the ping was no frame
    -- of a server's, and the run failed (AttachLost).
    describe("on a fake API server that fragments the exec's messages, control frames between their frames",
             function()
      local fixture = fake.per_spec(minor, "--fragment-exec-frames")
      it("passes stdout and stderr exactly, and the program's exit code", function()
        local server = fixture.server
        local id = create(server)
        -- stderr ends with the first byte of the helper's mark, its word's
        -- mark right after it
        local r = run(server, id, { shell = "printf 'out\\035put'; printf 'err\\000or\\035' >&2; exit 7" })
        assert.are.equal("exited", r.status, cjson.encode(r))
        assert.are.equal(7, r.exit_code)
        assert.are.equal("out\029put", r.stdout)
        assert.are.equal("err\0or\029", r.stderr)
        rm(server, id)
      end)
    end)

    -- Nothing follows a close frame (RFC 6455 5.5.1): a status after it is
    -- no word of the server's on the exec. Checked: with the frames after a
    -- close read on, this was exited 0.
    describe("on a fake API server that closes the exec before its status", function()
      local fixture = fake.per_spec(minor, "--exec-close-before-status")
      it("says the exec broke after the program ended, never the status after the close", function()
        local server = fixture.server
        local id = create(server)
        local r = run(server, id, { shell = "echo done" })
        assert.are.equal("error", r.status, cjson.encode(r))
        assert.are.equal("AttachLost", r.reason)
        assert.matches("before the API server's status came", r.error.message, 1, true)
        assert.are.equal("done\n", r.stdout)
        rm(server, id)
      end)
    end)

    -- A server that pings and does not read: the client answers the last
    -- ping once what it queued before has gone (RFC 6455 5.5.3), not every
    -- ping, which it would hold in memory until the server reads (52 MiB
    -- for 400000 pings). Checked: with a pong queued for each ping, all
    -- 400000 came before the last's. 200000 pings (25 MiB of pongs) are
    -- still more than the loopback's socket buffers both ways hold, and the
    -- run has 300 s: under ASan on a busy machine, 400000 took longer than
    -- the default 30 s to pass before the program started, and 200000
    -- once longer than 120 s (the ASan step beside the cgroup v2 VM).
    describe("on a fake API server that floods the exec with pings and reads none", function()
      local pings = 200000
      local fixture = fake.per_spec(minor, "--exec-ping-flood " .. pings)
      it("holds no pong for each ping, and the run goes on", function()
        local server = fixture.server
        -- It hung now and then (the run's deadline ended it): where the
        -- last ping came as stdin's end was queued, its pong waited for
        -- the queue and was never sent (kube_ws_spec's pong_after_stdin
        -- makes that order certain). flood.log, in a failure, says how far
        -- the flood came.
        local id = create(server)
        local r = run(server, id, { shell = "echo done; exit 4", timeout_ms = 300000 })
        local ok, flood = pcall(env.read_file, server.dir .. "/flood.log") -- how far the fake's flood came
        assert.are.equal("exited", r.status, cjson.encode(r) .. "\nthe fake's flood:\n" .. (ok and flood or "no log"))
        assert.are.equal(4, r.exit_code)
        assert.are.equal("done\n", r.stdout)
        local pongs = tonumber(env.read_file(server.dir .. "/pongs.txt"))
        assert.is_true(pongs < pings, ("%d pongs for %d pings"):format(pongs, pings))
        rm(server, id)
      end)
    end)

    -- The deadline passes while the exec is upgraded and its command not
    -- started (a kubelet that does not answer): the cluster's failure, said
    -- as the engine saw it. Checked: before, the result said "kubectl had
    -- not attached to pod ..." (no kubectl ran: the engine's client had the
    -- exec upgraded), and, where no watch had seen the pod yet (a flood of
    -- pings in place of the hang), "kubectl did not answer ...: the API
    -- server is unreachable", with signal 15 (the engine's, to the exec).
    describe("on a fake API server whose exec never starts the command", function()
      local fixture = fake.per_spec(minor, "--hang-exec")
      it("says the deadline passed before the program started, at the exec, with no signal of the program's",
         function()
        local server = fixture.server
        local id = create(server)
        local r = run(server, id, { shell = "echo ran", timeout_ms = 1500 })
        assert.are.equal("error", r.status, cjson.encode(r))
        assert.are.equal("KubectlTimeout", r.reason)
        assert.truthy(r.error.message:find("the run's deadline (1500 ms) passed before the program started: the exec "
                                           .. "(echo-sandbox-kube) into pod " .. id .. " had not started it", 1, true),
                      r.error.message)
        assert.are.equal(cjson.null, r.signal)
        assert.are.equal("", r.stdout)
        rm(server, id)
      end)
    end)

    -- Checked: with the refusals taken as the exec's failure (no kubectl
    -- after them), each run failed before the program began.
    for _, case in ipairs {
      { name = "a server without v5 (an older API server's WebSocket)", options = "--no-v5-agent echo-sandbox",
        code = "403" },
      { name = "a server that refuses the client's credentials at the exec", code = "401",
        options = "--unauthorized-exec-agent echo-sandbox" },
    } do
      describe("on " .. case.name, function()
        local fixture = fake.per_spec(minor, "--request-log " .. case.options)
        it("runs the exec by kubectl instead, the program run once", function()
          local server = fixture.server
          local id = create(server)
          fake.mark(server, "run")
          local r = run(server, id, { shell = "echo once >> ran.txt; cat ran.txt; exit 3" })
          assert.are.equal("exited", r.status, cjson.encode(r))
          assert.are.equal(3, r.exit_code)
          assert.are.equal("once\n", r.stdout)
          assert.are.same({ "echo-sandbox " .. case.code, "kubectl 101" }, execs_since(server, "run"))
          rm(server, id)
        end)
      end)
    end
  end)
end)
