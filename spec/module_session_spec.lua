-- Sessions through the Lua module (src/module/echo_sandbox.c:
-- session_create, session_run, session_cell, session_delete). Each case
-- runs a lua5.4 of its own whose directory of sessions
-- (ECHO_SANDBOX_SESSION_DIR, read once per process) is this file's, which
-- must be empty at the end; the holder of each session it made is gone.
local env = require "spec.support.env"
local fake = require "spec.support.fake_kube"

local dir -- the directory of sessions

-- Runs the Lua chunk code in a lua5.4 with the module and this file's
-- directory of sessions (and prefix's variables, if any: a fake API
-- server's kubectl and kubeconfig); what it prints, and whether it exited 0.
local function lua(code, prefix)
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write('package.cpath = ', ("%q"):format(package.cpath), '\nlocal sbx = require "echo_sandbox"\n', code)
  f:close()
  local p = io.popen(("%s ECHO_SANDBOX_SESSION_DIR=%s %s %s 2>&1"):format(prefix or "", env.quote(dir), env.module_lua,
    script))
  local out = p:read("a")
  local ok = p:close()
  os.remove(script)
  return out, ok
end

local function left()
  local p = io.popen("ls -A " .. env.quote(dir))
  local names = p:read("a")
  p:close()
  return names
end

describe("sessions through the Lua module", function()
  env.check_leaks()

  setup(function() dir = assert(io.popen("mktemp -d")):read("l") end) -- mode 0700

  -- What a failed case left is removed (`session rm`), and said.
  teardown(function()
    local names = left()
    for id in names:gmatch("%S+") do env.cli_run({ "session", "rm", id }, nil, "ECHO_SANDBOX_SESSION_DIR=" .. dir) end
    assert(os.execute("rmdir " .. env.quote(dir)))
    assert.are.equal("", names, "sessions left")
  end)

  -- Checked: with the cells that did not go in answered as cells (no nil,
  -- message for busy, failed and session_ended), the cell after the delete
  -- gave a table of status failed instead of nil and why.
  it("keeps files and a kernel's state from call to call, and is gone after session_delete", function()
    local out, ok = lua [[
      local id = assert(sbx.session_create { ttl_ms = 60000, limits = { memory_bytes = 128 * 1024 * 1024 } })
      local c = assert(sbx.session_cell(id, { language = "python", code = "x = 41" }))
      print("first", c.status, c.value, c.error)
      c = assert(sbx.session_cell(id, { language = "python", code = "x + 1", timeout_ms = 10000 }))
      print("second", c.status, c.value, c.session == id, c.language)
      c = assert(sbx.session_cell(id, { language = "python", code = "raise ValueError('no')" }))
      print("raised", c.status, c.error.name, c.error.message)
      local r = assert(sbx.session_run(id, { shell = "echo kept > f" }))
      print("run", r.status, r.session == id)
      r = assert(sbx.session_run(id, { program = "cat", args = { "f" } }))
      io.write("read ", r.stdout)
      print("bad", sbx.session_cell(id, { language = "cobol", code = "1" }))
      print("bad run", sbx.session_run(id, { shell = 5 }))
      local holder = io.open(os.getenv("ECHO_SANDBOX_SESSION_DIR") .. "/" .. id .. "/info"):read("a"):match("pid (%d+)")
      print("deleted", sbx.session_delete(id))
      print("after", sbx.session_cell(id, { language = "python", code = "x" }))
      print("after run", sbx.session_run(id, { shell = "true" }))
      local stat = holder and io.open("/proc/" .. holder .. "/stat")
      local state = stat and stat:read("a"):match("%) (%a)") -- a zombie (Z) is gone but for its parent's wait
      print("holder", holder ~= nil and (state == nil or state == "Z"))
    ]]
    assert(ok, out)
    assert.truthy(out:find("first\tok\tnil\tnil\n", 1, true), out)
    assert.truthy(out:find("second\tok\t42\ttrue\tpython\n", 1, true), out)
    assert.truthy(out:find("raised\terror\tValueError\tno\n", 1, true), out)
    assert.truthy(out:find("run\texited\ttrue\nread kept\n", 1, true), out)
    assert.truthy(out:find("bad\tnil\tno kernel for language 'cobol': the languages with one are python", 1, true), out)
    assert.truthy(out:find("bad run\tnil\tinvalid request: 'shell'", 1, true), out)
    assert.truthy(out:find("deleted\ttrue\n", 1, true), out)
    assert.truthy(out:find("after\tnil\tno session", 1, true), out)
    assert.truthy(out:find("after run\tnil\tno session", 1, true), out)
    assert.truthy(out:find("holder\ttrue\n", 1, true), out)
    assert.are.equal("", left())
  end)

  it("refuses a bad create naming the field, and makes nothing", function()
    local out, ok = lua [[
      print(sbx.session_create { shell = "true" })
      print(sbx.session_create { ttl_ms = 0 })
      print(sbx.session_delete(("0123456789abcdef"):rep(2)))
    ]]
    assert(ok, out)
    assert.truthy(out:find("nil\tinvalid request: 'shell' belongs to a run", 1, true), out)
    assert.truthy(out:find("nil\t[^\n]*'ttl_ms'"), out)
    assert.truthy(out:find("nil\tno session", 1, true), out)
    assert.are.equal("", left())
  end)

  -- A k8s session through the module: a pod on the fake API server, each
  -- call a kubectl of the policy's cluster, as the CLI's. Nothing of it is
  -- kept in the directory of sessions.
  -- Checked: with the module's refusal of a k8s session kept, the create
  -- answered nil and "the Lua module's sessions are local".
  local minor = env.newest_kubectl()
  if minor then
    describe("on the k8s backend, kubectl 1." .. minor, function()
      local fixture = fake.per_spec(minor)
      it("keeps files and a kernel's state in a k8s session, and deletes its pod", function()
        local server = fixture.server
        local out, ok = lua([[
          local options = { policy = "spec/support/k8s_policy.lua" }
          local id = assert(sbx.session_create({ backend = "k8s" }, options))
          print("id", id:match("^echo%-sandbox%-s%-%x+$") ~= nil)
          local r = assert(sbx.session_run(id, { shell = "echo kept > f" }, options))
          print("run", r.status, r.session == id)
          r = assert(sbx.session_run(id, { shell = "cat f" }, options))
          io.write("read ", r.stdout)
          assert(sbx.session_cell(id, { language = "python", code = "x = 41" }, options))
          local c = assert(sbx.session_cell(id, { language = "python", code = "x + 1" }, options))
          print("cell", c.status, c.value)
          print("deleted", sbx.session_delete(id, options))
          print("after", sbx.session_run(id, { shell = "true" }, options))
        ]], server.env)
        assert(ok, out)
        assert.truthy(out:find("id\ttrue\nrun\texited\ttrue\nread kept\ncell\tok\t42\ndeleted\ttrue\n", 1, true), out)
        assert.truthy(out:find("after\tnil\t[^\n]*does not exist"), out)
        assert.are.same({}, fake.pods(server))
        assert.are.same({}, fake.query(server, "/_fake/procs"))
        assert.are.equal("", left())
      end)
    end)
  end
end)
