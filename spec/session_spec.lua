-- Local sessions (src/backend/local_session.h): a sandbox with an id and a
-- lifetime whose pid 1 (the holder, src/engine/sandbox/session_holder.h)
-- keeps its working dir from run to run, ends each run's processes with
-- the run, and ends itself at its TTL or idle timeout with nobody watching.
-- Every case checks that nothing of what it started is left: the holder
-- (gone, or a zombie that init has yet to reap), the session's directory,
-- its cgroups (the leak check finds processes and cgroups of the suite's).
local env = require "spec.support.env"
local cjson = require "cjson"

-- The suite's own directory of sessions, so that `ls` and `cleanup` here
-- see only the sessions this file makes.
local dir

local function cli(args, stdin)
  return env.cli_run(args, stdin, "ECHO_SANDBOX_SESSION_DIR=" .. env.quote(dir))
end

local function create(...)
  local args = { "session", "create", "--json", ... }
  local out, err, code = cli(args)
  assert.are.equal(0, code, err)
  local s = cjson.decode(out)
  s.pid = math.tointeger(s.pid)
  return s
end

local function run(id, shell, extra)
  local args = { "session", "run", id, "--json" }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  args[#args + 1] = "--shell"
  args[#args + 1] = shell
  local out, err, code = cli(args)
  local ok, result = pcall(cjson.decode, out)
  assert(ok, "stdout is not a JSON result: " .. out .. "\nstderr: " .. err)
  return result, code, err
end

local function show(id)
  local out, err, code = cli { "session", "show", id, "--json" }
  assert.are.equal(0, code, err)
  return cjson.decode(out)
end

-- A file's text, or nil where there is none.
local function read(path)
  local ok, text = pcall(function()
    local f <close> = assert(io.open(path))
    return f:read("a")
  end)
  return ok and text or nil
end

-- Starts `session run ID [extra] --shell SHELL` in the background (30 s
-- deadline); returns a function that waits for it and returns its exit
-- status and its output (stdout and stderr), the file removed.
local function run_in_background(id, shell, extra)
  local out = os.tmpname()
  local parts = { "ECHO_SANDBOX_SESSION_DIR=" .. env.quote(dir), env.cli_prefix, env.quote(env.cli), "session",
                  "run", id, "--timeout", "30" }
  for _, a in ipairs(extra or {}) do parts[#parts + 1] = env.quote(a) end
  parts[#parts + 1] = "--shell"
  parts[#parts + 1] = env.quote(shell)
  local wait = env.in_background(table.concat(parts, " ") .. " >" .. out .. " 2>&1")
  return function()
    local status = wait()
    local text = read(out)
    os.remove(out)
    return status, text
  end
end

-- Alive: there, and not a zombie (the holder's parent, the CLI that made
-- it, is gone; init reaps it in its own time).
local function alive(pid)
  local stat = read("/proc/" .. pid .. "/stat")
  return stat ~= nil and stat:match("%) (%a)") ~= "Z"
end

-- Waits for the holder's end by polling it: an interlock on the process,
-- with a generous cap (30 s), not a sleep of the expected length.
local function wait_ended(pid)
  for _ = 1, 3000 do
    if not alive(pid) then return true end
    env.sleep(0.01)
  end
  return false
end

-- The session's cgroups, from the engine's record of it.
local function cgroups_of(id)
  local list = {}
  for path in (read(dir .. "/" .. id .. "/info") or ""):gmatch("cgroup %d ([^\n]+)") do
    list[#list + 1] = path
  end
  return list
end

-- The room left in a session's memory cgroup (v1 or v2), taken away: its
-- limit set to its usage, after the kernel has reclaimed what it could (v1
-- refuses a limit below the usage, EBUSY, once it has reclaimed; v2 takes
-- memory.reclaim).
local function no_room_left(memory)
  local v1 = read(memory .. "/memory.limit_in_bytes") ~= nil
  local limit = memory .. (v1 and "/memory.limit_in_bytes" or "/memory.max")
  os.execute((v1 and "echo 1 > " .. env.quote(limit) or "echo 64M > " .. env.quote(memory .. "/memory.reclaim")) ..
             " 2>/dev/null")
  local usage = assert(read(memory .. (v1 and "/memory.usage_in_bytes" or "/memory.current")))
  assert(os.execute("echo " .. usage:match("%d+") .. " > " .. env.quote(limit)))
end

local function assert_gone(id, pid, cgroups)
  assert.is_true(wait_ended(pid), "the holder " .. pid .. " is still there")
  assert.is_nil(read(dir .. "/" .. id .. "/info"), "the session's directory is left")
  local f = io.open(dir .. "/" .. id)
  assert.is_nil(f, "the session's directory is left")
  for _, path in ipairs(cgroups) do
    assert.is_nil(io.open(path .. "/tasks") or io.open(path .. "/cgroup.procs"), path .. " is left")
  end
end

-- rm, and nothing of the session left.
local function remove(s)
  local cgroups = cgroups_of(s.id)
  local _, err, code = cli { "session", "rm", s.id }
  assert.are.equal(0, code, err)
  assert_gone(s.id, s.pid, cgroups)
end

describe("echo-sandbox session", function()
  env.check_leaks()

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -m 700 " .. dir))
  end)

  -- A case that failed may have left its session: removed here, and said.
  teardown(function()
    local out = cli { "session", "ls" }
    for id in out:gmatch("(%x+)  ") do cli { "session", "rm", id } end
    assert(os.execute("rmdir " .. dir))
    assert.are.equal("", out, "sessions left: " .. out)
  end)

  -- Checked: with each run given a fresh working dir (a tmpfs of its own
  -- mounted over the session's in a mount namespace of the run's), the
  -- second run's cat found no file.
  it("keeps the working dir: a file one run writes the next one reads", function()
    local s = create()
    assert.are.equal("alive", s.state)
    local r, code, err = run(s.id, "echo forty-two > kept.txt")
    assert.are.equal(0, code, err)
    assert.are.equal(s.id, r.session)
    r = run(s.id, "cat kept.txt")
    assert.are.equal("forty-two\n", r.stdout)
    assert.are.equal("exited", r.status)
    assert.are.equal(2, show(s.id).runs)
    remove(s)
  end)

  -- Checked: with the holder's clone of a run without CLONE_NEWPID, the
  -- background sleep lived on after its run (env.running found it); with
  -- the run's pid 1 saying its status without ending the rest first
  -- (run_init's end_the_rest taken out, a 300 ms pause before its exit),
  -- under a policy without cgroups (local_sandbox.cgroups = false), the
  -- same; with cgroups, the engine's removal of the run's slot (a process
  -- was left in it) killed the sleep.
  it("ends the processes a run starts with that run", function()
    local s = create()
    local sleep = env.unique_seconds(300)
    local r = run(s.id, "sleep " .. sleep .. " </dev/null >/dev/null 2>&1 & echo started")
    assert.are.equal("started\n", r.stdout)
    -- The result comes after the run's pid 1 killed and reaped every other
    -- process of its pid namespace, and said so with its status; else
    -- after the holder reaped that pid 1, which the kernel lets go only
    -- once every process of its pid namespace is gone.
    assert.is_false(env.running { "sleep", sleep })
    r = run(s.id, "ps -eo args")
    assert.is_nil(r.stdout:find(sleep, 1, true), r.stdout)
    remove(s)
  end)

  -- Checked: with the deadline's shutdown of the connection taken out, the
  -- run went on to its program's own end (a `sleep 2` under --timeout 0.3
  -- took its 2 s; this case then waits out its sleep's 300 s).
  it("ends a run at its deadline and keeps the session", function()
    local s = create()
    local sleep = env.unique_seconds(300)
    local r, code = run(s.id, "sleep " .. sleep, { "--timeout", "0.3" })
    assert.are.equal(124, code)
    assert.are.equal("timed_out", r.status)
    assert.is_true(r.killed_by_us)
    assert.is_false(env.running { "sleep", sleep })
    r = run(s.id, "echo still here")
    assert.are.equal("still here\n", r.stdout)
    remove(s)
  end)

  -- Two runs side by side, interlocked (the first waits for a file the
  -- second makes): they share the working dir and overlap in time.
  -- Checked: with the holder's state written by ftruncate and then a write
  -- (as first), a run that read the file between the two was refused with
  -- "has ended (died)" (seen with two at once; a race, so not every time).
  it("takes runs side by side", function()
    local s = create()
    local wait = run_in_background(s.id, "while [ ! -e second-was-here ]; do sleep 0.01; done; echo first")
    local r, code, err = run(s.id, "touch second-was-here; echo second")
    assert.are.equal(0, code, err)
    assert.are.equal("second\n", r.stdout)
    local status, out = wait()
    assert.are.equal(0, status)
    assert.are.equal("first\n", out)
    remove(s)
  end)

  -- A run waits, holding a secret in its environment, until the other has
  -- looked (an interlock on a file in the working dir they share). Checked:
  -- without the run's own mount namespace and /proc (the session's /proc,
  -- as before), the second run read SECRET=hunter2 from /proc/PID/environ of
  -- the first and saw its pids.
  it("gives each run a /proc of its own: no run sees another's processes", function()
    local s = create()
    local wait = run_in_background(s.id, "touch first-is-up; while [ ! -e second-looked ]; do sleep 0.01; done; echo first",
                                   { "--env", "SECRET=hunter2" })
    local r, code, err = run(s.id, "while [ ! -e first-is-up ]; do sleep 0.01; done; " ..
                                   "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c SECRET; " ..
                                   "ls -d /proc/[0-9]* | wc -l; touch second-looked", { "--timeout", "30" })
    local status, out = wait()
    assert.are.equal(0, status)
    assert.are.equal("first\n", out)
    assert.are.equal(0, code, err)
    local secrets, pids = r.stdout:match("^(%d+)\n%s*(%d+)\n$")
    assert.are.equal("0", secrets, r.stdout)
    -- its shell, cat or ls, tr or wc, grep: the first run's are not there
    assert.truthy(tonumber(pids) and tonumber(pids) <= 4, r.stdout)
    remove(s)
  end)

  -- Checked: without the refusal, the run with --memory 16M was taken and
  -- held to nothing of its own (by hand: it allocated 100 MB).
  it("refuses a run's own memory limit or CPU rate: the session's hold its runs", function()
    local s = create()
    local r, code = run(s.id, "true", { "--memory", "16M" })
    assert.are.equal(125, code)
    assert.are.equal("invalid_request", r.error.code)
    assert.truthy(r.error.message:find("memory limit", 1, true), r.error.message)
    r, code = run(s.id, "true", { "--cpu", "0.5" })
    assert.are.equal(125, code)
    assert.truthy(r.error.message:find("CPU rate", 1, true), r.error.message)
    remove(s)
  end)

  -- Checked: with every run sent to one session's socket (the lowest id),
  -- the other session's run read the secret.
  it("keeps two sessions' files apart", function()
    local a, b = create(), create()
    run(a.id, "echo secret-of-a > secret.txt")
    local r = run(b.id, "cat secret.txt; ls -a; ls /proc/*/cwd/ 2>/dev/null")
    assert.is_nil(r.stdout:find("secret", 1, true), r.stdout)
    assert.are.equal("secret-of-a\n", run(a.id, "cat secret.txt").stdout)
    remove(a)
    remove(b)
  end)

  -- Checked: without the holder's prctl(PR_SET_PDEATHSIG, 0) (it keeps the
  -- sandbox child's SIGKILL on its parent's death), the holder died with
  -- the create command and the next run said the session had died.
  it("outlives the command that made it", function()
    local s = create()
    -- cli_run returned: the create command has exited.
    assert.is_true(alive(s.pid))
    local r, code, err = run(s.id, "echo after")
    assert.are.equal(0, code, err)
    assert.are.equal("after\n", r.stdout)
    remove(s)
  end)

  -- Checked: with the holder's timer armed for the TTL only, the holder was
  -- still there when the 30 s cap ran out.
  it("ends by itself once idle, with nothing watching it, and says so", function()
    local s = create("--idle-timeout", "200")
    local cgroups = cgroups_of(s.id)
    assert.is_true(wait_ended(s.pid), "the idle session's holder is still there")
    local now = show(s.id)
    assert.are.equal("ended", now.state)
    assert.are.equal("idle", now.ended)
    local _, err, code = cli { "session", "run", s.id, "--shell", "true" }
    assert.are.equal(125, code)
    assert.truthy(err:find(s.id .. " has ended (idle)", 1, true), err)
    _, err, code = cli { "session", "rm", s.id }
    assert.are.equal(0, code, err)
    assert.truthy(err:find("had ended (idle)", 1, true), err)
    assert_gone(s.id, s.pid, cgroups)
  end)

  -- Checked: with rm's removal of the cgroups taken out, the memory
  -- cgroup's directory was still there.
  it("rm ends the session and leaves no process, cgroup or directory", function()
    local s = create("--memory", "128Mi")
    local cgroups = cgroups_of(s.id)
    if env.cgroups_available() then assert.is_true(#cgroups > 0) end
    run(s.id, "echo x > f")
    remove(s)
  end)

  it("names an unknown session id, and one that is no id, with exit code 125", function()
    local unknown = ("0123456789abcdef"):rep(2)
    for _, args in ipairs {
      { "session", "run", unknown, "--shell", "true" }, { "session", "show", unknown }, { "session", "rm", unknown },
      { "session", "run", "../etc", "--shell", "true" },
    } do
      local _, err, code = cli(args)
      assert.are.equal(125, code, err)
      assert.truthy(err:find("no session '" .. args[3] .. "'", 1, true), err)
    end
  end)

  it("refuses a create it cannot honour, naming why, and leaves nothing", function()
    for _, case in ipairs {
      { { "--ttl", "0" }, "--ttl takes a whole number of milliseconds" },
      { { "--idle-timeout", "soon" }, "--idle-timeout takes a whole number of milliseconds" },
      { { "--network" }, "network: true is not available in sessions yet" },
    } do
      local args = { "session", "create" }
      for _, a in ipairs(case[1]) do args[#args + 1] = a end
      local out, err, code = cli(args)
      assert.are.equal(125, code, err)
      assert.are.equal("", out)
      assert.truthy(err:find(case[2], 1, true), err)
    end
    assert.are.equal("", (cli { "session", "ls" }))
  end)

  -- Its files fill the session's memory: the writer is OOM-killed, and its
  -- pages stay with the files. The room the ended processes left, which a
  -- later run would take (and then which process the OOM killer takes, the
  -- run's or the holder, is chance), is taken away too: the memory limit
  -- is set to what the session holds, once the kernel has reclaimed what
  -- it could. The holder's next fork, for a run, finds no room, and the
  -- OOM killer takes the holder, the last process of the session: the
  -- session has ended, its status says by its memory limit, and so does
  -- every later call.
  -- Checked: without the record's reading of the session's OOM kills
  -- (backend/local_session.c), the run said "ended during the run (died)".
  -- With the holder's exit not told from its life (its PF_EXITING: a run
  -- learns of the end when its connection closes, before the killed holder
  -- is a zombie), the run said "session ... ended the run without its
  -- status (more than 64 runs at once, or the run's pid 1 was killed)" in 2
  -- tries of 6 by hand, and in none of 8 here: a race, which
  -- tests/session_files_test.c makes certain.
  it("says that its memory limit ended it, in its status and at each call after", function()
    if not env.cgroups_available() then return pending("needs a memory cgroup") end
    local s = create("--memory", "32Mi")
    local cgroups = cgroups_of(s.id)
    -- The OOM killer takes the largest process: the writer, or where the
    -- holder is larger (a build with AddressSanitizer, whose holder holds
    -- some 11 MB), the holder, and the session ends here already.
    local r = run(s.id, "cat /dev/zero > /tmp/f; cat /dev/zero > f")
    local said = r.error and r.error.message or r.status
    if show(s.id).state ~= "ended" then
      assert.are.equal("oom_killed", r.status, cjson.encode(r))
      no_room_left(cgroups[1])
      -- A bound: in 10 tries of 11, the first run ended the session; in
      -- one, the OOM killer took that run's process (forked already) and
      -- the holder then or at the next run.
      for _ = 1, 10 do
        r = run(s.id, "true")
        said = r.error and r.error.message or r.status
        if r.status == "error" or show(s.id).state == "ended" then break end
      end
    end
    assert.truthy(said:find(s.id .. " ended during the run (memory)", 1, true) or
                  said:find(s.id .. " has ended (memory)", 1, true) or said == "oom_killed", said)
    assert.is_true(wait_ended(s.pid), "the holder " .. s.pid .. " is still there")
    local now = show(s.id)
    assert.are.equal("ended", now.state)
    assert.are.equal("memory", now.ended)
    for _, args in ipairs {
      { "session", "run", s.id, "--shell", "true" },
      { "session", "cell", s.id, "--lang", "python", "--code", "1" },
      { "session", "cp", s.id .. ":f", "-" },
    } do
      local _, err, code = cli(args)
      assert.are.equal(125, code, err)
      assert.truthy(err:find("session " .. s.id .. " has ended (memory)", 1, true), err)
    end
    local _, err, code = cli { "session", "rm", s.id }
    assert.are.equal(0, code, err)
    assert.truthy(err:find("had ended (memory)", 1, true), err)
    assert_gone(s.id, s.pid, cgroups)
  end)

  -- Checked: without cleanup's sweep of sessions, the killed session's
  -- directory and cgroups were left.
  it("cleanup removes a session whose holder was killed", function()
    local s = create()
    local cgroups = cgroups_of(s.id)
    assert(os.execute("kill -KILL " .. s.pid))
    assert.is_true(wait_ended(s.pid))
    assert.are.equal("died", show(s.id).ended)
    local out, err, code = cli { "cleanup", "--local-only" }
    assert.are.equal(0, code, err)
    assert.truthy(out:find("removed session " .. s.id .. " (died)", 1, true), out)
    assert_gone(s.id, s.pid, cgroups)
  end)
end)
