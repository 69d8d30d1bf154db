-- echo-sandbox-init's fork server (src/engine/fork_server.h): a daemon's
-- sandboxes are forked by one server of the daemon's own instead of an
-- exec each; a server that is killed is replaced at the next run, and none
-- outlives the daemon.
local env = require "spec.support.env"
local daemon = require "spec.support.daemon"
local cjson = require "cjson"

local SERVER_CMDLINE = "echo-sandbox-init\0--fork-server\0"

-- A file of /proc, or nil once its process is gone.
local function proc_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

-- The pids of parent's children that are fork servers.
local function servers_of(parent)
  local found = {}
  local ls = io.popen("ls /proc")
  for name in ls:lines() do
    local stat = name:match("^%d+$") and proc_file("/proc/" .. name .. "/stat")
    local ppid = stat and stat:match("^%d+ %(.*%) %a (%d+)")
    if ppid == tostring(parent) and proc_file("/proc/" .. name .. "/cmdline") == SERVER_CMDLINE then
      found[#found + 1] = name
    end
  end
  ls:close()
  return found
end

-- Waits until pid is gone (an interlock on the process, not a clock);
-- whether it went within about ten seconds.
local function gone(pid)
  for _ = 1, 1000 do
    local stat = proc_file("/proc/" .. pid .. "/stat")
    if not stat or stat:match("^%d+ %(.*%) Z") then return true end
    os.execute("sleep 0.01")
  end
  return false
end

local function run_true(d)
  local status, result = daemon.request(d, "POST", "/v1/run", cjson.encode { program = "/bin/echo",
    args = { "ran" } })
  assert.are.equal(200, status)
  assert.are.equal("ran\n", result.stdout)
  assert.are.equal(0, math.tointeger(result.exit_code))
end

describe("the init's fork server", function()
  env.check_leaks()
  if env.isolation ~= "namespaces" then
    pending("the specs run with isolation " .. env.isolation .. ": no init program is used")
    return
  end

  it("forks a daemon's sandboxes from one server; a killed one is replaced at the next run; none outlives the daemon", function()
    local d = daemon.start()
    local ok, err = pcall(function()
      run_true(d)
      run_true(d)
      local first = servers_of(d.pid)
      assert.are.equal(1, #first, "one server after two runs")
      os.execute("kill -KILL " .. first[1])
      assert.is_true(gone(first[1]))
      run_true(d)
      local second = servers_of(d.pid)
      assert.are.equal(1, #second, "a server again after the next run")
      assert.are_not.equal(first[1], second[1])
      d.server = second[1]
    end)
    daemon.stop(d)
    assert(ok, err)
    assert.is_true(gone(d.server), "the server ended with the daemon")
  end)

  it("is not started with ECHO_SANDBOX_FORK_SERVER=0: every run execs the init program", function()
    local d = daemon.start(nil, nil, "ECHO_SANDBOX_FORK_SERVER=0")
    local ok, err = pcall(function()
      run_true(d)
      assert.are.same({}, servers_of(d.pid))
    end)
    daemon.stop(d)
    assert(ok, err)
  end)
end)
