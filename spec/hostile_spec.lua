-- The local sandbox against a program that wants out. Each spec names the
-- defence it checks; each was seen to fail with that defence taken out (the
-- comment says how).
local env = require "spec.support.env"
local cjson = require "cjson"

local function run(request, policy)
  local args = { "run", "--json" }
  if policy then args[#args + 1] = "--policy"; args[#args + 1] = policy end
  local out, err = env.cli_run(args, cjson.encode(request))
  local ok, result = pcall(cjson.decode, out)
  assert(ok, "no JSON result: " .. out .. err)
  return result
end

-- Runs the CLI with a pty as its controlling terminal, as under an
-- interactive shell; returns everything the terminal showed.
local function run_on_pty(args)
  local script = [[
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
]]
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = env.quote(a) end
  local p = io.popen(("python3 -c %s %s %s"):format(env.quote(script), env.quote(env.cli), table.concat(quoted, " ")))
  local out = p:read("a")
  p:close()
  return out
end

describe("the local sandbox against hostile code", function()
  env.check_leaks()

  -- Defence: the sandbox starts a new session (sandbox_child.c, setsid).
  -- Checked: with setpgid in its place, the program opened /dev/tty and the
  -- terminal showed the injected line.
  it("has no controlling terminal, so it cannot push keystrokes into the caller's (TIOCSTI)", function()
    local code = table.concat({
      "import fcntl, os, termios",
      "try:",
      "    fd = os.open('/dev/tty', os.O_RDWR)",
      "except OSError as e:",
      "    print('no tty, errno', e.errno)",
      "    raise SystemExit",
      "for c in b'echo INJECTED\\n':",
      "    fcntl.ioctl(fd, termios.TIOCSTI, bytes([c]))",
      "print('pushed')" }, "\n")
    local shown = run_on_pty { "run", "--lang", "python", "--code", code }
    assert.truthy(shown:find("no tty, errno 6", 1, true), shown) -- ENXIO
    assert.is_nil(shown:find("INJECTED", 1, true), shown)
  end)

  -- Defence: the default policy's ceilings (policy.ceilings, limits_for).
  -- Checked: without them the program saw ulimit -t 100000 and -u 1000000,
  -- and the pod asked for 1Ti.
  it("gets the policy's ceilings, not the 1 TiB, day-long run it asks for", function()
    local greedy = { program = "bash", args = { "-c", "ulimit -t; ulimit -u" }, timeout_ms = 24 * 3600 * 1000,
                     limits = { memory_bytes = 1024 ^ 4 // 1, cpu_time_secs = 100000, max_processes = 1000000 } }
    local r = run(greedy)
    assert.are.equal(0, r.exit_code, r.stderr)
    assert.are.equal("300\n1024\n", r.stdout)
    greedy.backend = "k8s"
    local out, err, code = env.cli_run({ "policy", "explain", "--json" }, cjson.encode(greedy))
    assert.are.equal(0, code, err)
    local x = cjson.decode(out)
    assert.are.equal(600000, x.timeout_ms)
    assert.are.equal(4 * 1024 ^ 3, x.limits.memory_bytes)
    assert.are.equal("4Gi", x.k8s.overrides.spec.containers[1].resources.limits.memory)
    assert.truthy(table.concat(x.clamped, "\n"):find("memory_bytes 1099511627776 lowered", 1, true))
  end)
end)
