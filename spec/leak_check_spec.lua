-- The leak check every spec runs looks only at what the suite started (its
-- own cgroups, temp root and marked processes), so the suite passes beside
-- other sandboxes on the machine: a deployed `serve`, another checkout.
local env = require "spec.support.env"

-- Starts `echo-sandbox run -- sleep TOKEN` detached from
-- the suite (a new session, reparented, without the suite's mark). foreign:
-- also out of the suite's cgroups and temp root, as another user of the
-- machine would be. Returns once the sandboxed program runs (an interlock:
-- its process is there, not a clock); stop() stops it.
local function start_detached(foreign, stop)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  local token = env.unique_seconds(3700)
  local leave = ""
  if foreign then
    for cgroup in os.getenv("ESB_SPEC_CGROUPS"):gmatch("%S+") do
      leave = leave .. ("echo $$ > %s/cgroup.procs; "):format(env.quote(cgroup:match("^(.*)/")))
    end
    leave = leave .. "export TMPDIR=/tmp; "
  end
  local script = leave .. ("echo $$ > %s/pid; exec env -u ESB_SPEC_MARK %s run -- sleep %s")
    :format(dir, env.quote(env.cli), token)
  assert(os.execute(("(setsid sh -c %s >%s/out 2>&1 </dev/null &)"):format(env.quote(script), dir)))
  stop.fn = function()
    local pid = env.read_file(dir .. "/pid"):match("%d+")
    os.execute(("kill -TERM %s; while kill -0 %s 2>/dev/null; do sleep 0.01; done"):format(pid, pid))
    os.execute("rm -rf " .. dir)
  end
  if not env.wait_running { "sleep", token } then
    error("the sandbox did not start: " .. env.read_file(dir .. "/out"))
  end
end

describe("the suite's leak check", function()
  env.check_leaks()
  if (os.getenv("ESB_SPEC_CGROUPS") or "") == "" then
    pending("the suite has no cgroups of its own here (not root, or no cgroup hierarchy it may write)")
    return
  end

  -- What a sandbox beside the suite could show as: processes, cgroups, temp
  -- dirs. The fds of the suite's own process are no part of it: a pipe of
  -- its own that closed in between (a collected popen) failed this once.
  local function not_fds(snapshot)
    local lines = {}
    for _, line in ipairs(snapshot) do
      if not line:find("^fd ") then lines[#lines + 1] = line end
    end
    return lines
  end

  it("does not see a sandbox started beside the suite", function()
    local before, stop = env.leak_snapshot(), {}
    finally(function() if stop.fn then stop.fn() end end)
    start_detached(true, stop)
    local during = env.leak_snapshot()
    assert.are.same(not_fds(before), not_fds(during))
  end)

  -- The check above must be able to fail: the same sandbox, reparented and
  -- without the mark, but inside the suite's cgroups and temp root, is seen
  -- (its processes and its run's cgroups; a run in the namespace sandbox
  -- has no working dir on the host).
  it("sees a sandbox the suite started, even reparented and unmarked", function()
    local before, stop = env.leak_snapshot(), {}
    finally(function() if stop.fn then stop.fn() end end)
    start_detached(false, stop)
    local during = env.leak_snapshot()
    local had = {}
    for _, line in ipairs(before) do had[line] = true end
    local new = {}
    for _, line in ipairs(during) do
      if not had[line] then new[#new + 1] = line end
    end
    local seen = table.concat(new, "\n") .. "\n"
    assert.truthy(seen:find("in the suite's cgroup: sleep", 1, true), seen)
    assert.is_nil(seen:find("started by the specs", 1, true), seen) -- found by its cgroup alone
    -- the run's cgroup: a slot of the engines' shared pool, held (an idle
    -- one is the engine's, not a leak)
    if env.cgroups_available() then
      assert.truthy(seen:find("/echo%-sandbox%-pool%-%d+\n"), seen)
    end
  end)
end)
