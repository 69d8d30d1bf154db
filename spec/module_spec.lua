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
