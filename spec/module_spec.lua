local env = require "spec.support.env"
local sbx = require "echo_sandbox"

local function vm_hwm_kib()
  return tonumber(env.read_file("/proc/self/status"):match("VmHWM:%s*(%d+)"))
end

describe("require 'echo_sandbox'", function()
  env.check_leaks()

  it("runs a request table and returns the result table", function()
    local r = assert(sbx.run { language = "python", code = "print(6*7)" })
    assert.are.equal(0, r.exit_code)
    assert.are.equal("42\n", r.stdout)
    assert.are.equal("", r.stderr)
    assert.are.equal("local", r.sandbox_type)
    assert.are.equal("exited", r.status)
    assert.is_false(r.timed_out)
    assert.is_nil(r.signal)
    assert.is_number(r.duration_ms)
  end)

  it("calls on_output with each piece of output as it comes, before it returns", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute(("mkdir -m 755 %s && mkfifo -m 666 %s/go"):format(dir, dir)))
    local policy = env.policy_file(([[
policy.local_sandbox.mounts[#policy.local_sandbox.mounts + 1] = { host = %q, path = "/interlock",
  writable = true }]]):format(dir))
    -- one finally: busted keeps only the last one a spec registers
    finally(function()
      os.execute("rm -rf " .. dir)
      os.remove(policy)
    end)
    local events = {}
    -- The program waits on the fifo; on_output writes it once "first" came:
    -- the run could not end otherwise. (Isolation rlimits, the valgrind
    -- step's, has no mount namespace: the program sees the host's path.)
    local fifo = env.isolation == "rlimits" and dir .. "/go" or "/interlock/go"
    local r = assert(sbx.run({ shell = ("echo first; read x < %s; echo \"got $x\" >&2"):format(fifo) },
      { policy = policy, on_output = function(event)
          events[#events + 1] = event
          if event.data == "first\n" then
            local go = assert(io.open(dir .. "/go", "w"))
            go:write("hello\n")
            go:close()
          end
        end }))
    assert.are.same({ { event = "output", stream = "stdout", data = "first\n" },
                      { event = "output", stream = "stderr", data = "got hello\n" } }, events)
    assert.are.equal("got hello\n", r.stderr)
  end)

  it("raises what on_output raised once the run is over, and calls it no more", function()
    local calls = 0
    local ok, err = pcall(sbx.run, { shell = "echo a; sleep 0.1; echo b" }, { on_output = function()
      calls = calls + 1
      error("stop here")
    end })
    assert.is_false(ok)
    assert.truthy(err:find("on_output: .*stop here"), err)
    assert.are.equal(1, calls)
    assert.has_error(function() sbx.run({ shell = "true" }, { on_output = 42 }) end)
  end)

  it("returns nil and a message for an invalid request", function()
    for request, field in pairs {
      [{}] = "exactly one",
      [{ shell = "true", timeout_ms = "soon" }] = "timeout_ms",
      [{ shell = "true", env = { ["A=B"] = "x" } }] = "env",
      [{ shell = "true", stdin = 42 }] = "stdin",
      [{ program = "ls", args = { 1, {} } }] = "args",
      [{ language = "klingon", code = "x" }] = "klingon",
    } do
      local r, err = sbx.run(request)
      assert.is_nil(r)
      assert.truthy(err:find(field, 1, true), err)
    end
  end)

  it("raises for a request that is not a table", function()
    assert.has_error(function() sbx.run("echo hi") end)
  end)

  it("round-trips stdin through cat", function()
    local parts = {}
    for i = 1, 20 * 1024 do parts[i] = ("%07d "):format(i):rep(128) end
    local data = table.concat(parts)
    local r = assert(sbx.run { program = "cat", stdin = data, limits = { max_output_bytes = #data } })
    assert.are.equal(#data, r.stdout_bytes)
    assert.is_true(r.stdout == data)
    assert.is_false(r.stdout_truncated)
  end)

  it("does not grow with a flood of output", function()
    local before = vm_hwm_kib()
    local r = assert(sbx.run { shell = "head -c 200000000 /dev/zero", limits = { max_output_bytes = 1000 } })
    assert.are.equal(200000000, r.stdout_bytes)
    assert.are.equal(("\0"):rep(1000), r.stdout)
    assert.is_true(r.stdout_truncated)
    -- 200 MB went through; the process may keep a few pipe buffers, no more
    assert.is_true(vm_hwm_kib() - before < 16 * 1024)
  end)

  it("uses the policy named in the options", function()
    local path = env.policy_file('policy.env.GREETING = "from the site policy"')
    local r = assert(sbx.run({ shell = "echo $GREETING" }, { policy = path }))
    os.remove(path)
    assert.are.equal("from the site policy\n", r.stdout)
  end)

  it("returns nil and the reason when the policy cannot be loaded", function()
    local path = os.tmpname()
    env.write_file(path, "return {")
    local r, err = sbx.run({ shell = "true" }, { policy = path })
    os.remove(path)
    assert.is_nil(r)
    assert.truthy(err:find(path, 1, true), err)
  end)
end)
