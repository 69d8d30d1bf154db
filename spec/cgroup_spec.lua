-- The limits a run's cgroup enforces, and what it reports, on whichever
-- hierarchy this host has: cgroup v1 here, cgroup v2 in the VM of
-- spec/support/cgroup_v2_vm.sh (which .ci/run boots). Each spec that needs a
-- cgroup is pending where the engine can make none (not root).
local env = require "spec.support.env"
local daemon = require "spec.support.daemon"
local cjson = require "cjson"

local Mi = 1024 * 1024

local run_json = env.run_json

-- The cgroups this host gives runs, or nil (and the spec pending).
local function host()
  local h, why = env.cgroup_host()
  if not h then pending(why) end
  return h
end

-- Whether a CLI run takes a slot of the pool engines share (engine/cgroup.h):
-- on v1; with the reason, for a spec that needs one.
local function pooled(h)
  return h.version == 1, "cgroup v2: each run makes a cgroup of its own"
end

-- The names of the entries of dir that match pattern.
local function entries(dir, pattern)
  local names = {}
  local p = io.popen("ls -a " .. env.quote(dir) .. " 2>/dev/null")
  for name in p:lines() do
    if name:match(pattern) then names[#names + 1] = name end
  end
  p:close()
  table.sort(names)
  return names
end

-- A run sees its own cgroup as "/" (a cgroup namespace of its own): where
-- it is, the host says. A request that runs `sleep SECONDS` (unique), and
-- what the host names the cgroup of that process (the memory one on v1)
-- once it runs; the process is then killed (SIGKILL), which ends the run.
local function sleeper()
  local seconds = env.unique_seconds(300)
  return { program = "sleep", args = { seconds } }, function()
    assert.is_true(env.wait_running { "sleep", seconds }, "the program did not start")
    local p = io.popen("pgrep -x -f " .. env.quote("sleep " .. seconds))
    local pid = p:read("n")
    p:close()
    local text = env.read_file("/proc/" .. pid .. "/cgroup")
    os.execute("kill -9 " .. pid)
    return text:match("%d+:memory:([^\n]*)") or text:match("0::([^\n]*)")
  end
end

-- Runs the CLI with args in the background, stdin from the file infile;
-- returns a function that waits for it and returns its stdout.
local function cli_output(args, infile, prefix)
  local parts = { prefix or "", env.cli_prefix, env.quote(env.cli) }
  for _, a in ipairs(args) do parts[#parts + 1] = env.quote(a) end
  local out = os.tmpname()
  local wait = env.in_background(("%s <%s >%s 2>/dev/null"):format(table.concat(parts, " "), infile, out))
  return function()
    wait()
    local text = env.read_file(out)
    os.remove(out)
    return text
  end
end

-- h where a CLI run takes a slot of the shared pool; else nil, the spec
-- pending.
local function pool_host()
  local h = host()
  if not h then return nil end
  local ok, why = pooled(h)
  if not ok then
    pending(why)
    return nil
  end
  return h
end

-- Starts `run --json` of a sleeper: returns its request, its `where` (the
-- sleeper's cgroup once it runs; it is killed then) and a function that
-- waits for the run to end and returns its result.
local function run_sleeper()
  local request, where = sleeper()
  local infile = os.tmpname()
  env.write_file(infile, cjson.encode(request))
  local wait = cli_output({ "run", "--json" }, infile)
  return request, where, function()
    local out = wait()
    os.remove(infile)
    return cjson.decode(out)
  end
end

local hog = { language = "python", code = "x = bytearray(512 * 1024 * 1024)\nprint('allocated')",
              limits = { memory_bytes = 64 * Mi } }

describe("cgroups", function()
  env.check_leaks()

  it("are the hierarchy this host has, and policy explain and doctor say so", function()
    local expected = env.expected_cgroup_version()
    if not expected then
      pending("no telling which hierarchy the engine should use here")
      return
    end
    local h, why = env.cgroup_host()
    assert.truthy(h, why)
    assert.are.equal(expected, h.version, h.text)
    local out = env.cli_run { "doctor" }
    assert.truthy(out:find("ok    limits         cgroup v" .. expected .. ": memory, pids, cpu", 1, true), out)
    out = env.cli_run { "policy", "explain", "--", "true" }
    assert.truthy(out:find("cgroups     cgroup v" .. expected .. ": memory, pids, cpu", 1, true), out)
  end)

  it("end a memory bomb with the kernel's OOM killer, and the result says so", function()
    if not host() then return end
    local r = run_json(hog)
    assert.is_nil(r.stdout:find("allocated"))
    assert.are.equal("oom_killed", r.status)
    assert.are.equal("OOMKilled", r.reason)
    assert.are.equal(137, r.exit_code)
    assert.are.equal(9, r.signal)
  end)

  it("say on stderr when the flag form's program was OOM-killed", function()
    if not host() then return end
    local _, err, code = env.cli_run { "run", "--memory", "64Mi", "--lang", "python", "--code", hog.code }
    assert.are.equal(137, code)
    assert.truthy(err:find("echo%-sandbox: killed after %d+ ms: out of memory"), err)
  end)

  -- Defence: a run whose cgroups cannot be made falls back to rlimits, and
  -- its result says so, one warning per limit held less strictly
  -- (local.c, warn_degraded). Checked: without the warnings, the result of
  -- a run on read-only cgroup mounts said nothing; with the old single
  -- warning, the CPU rate limit that was dropped was not said.
  it("that cannot be made leave the run to rlimits, and its result says so", function()
    if not host() then return end
    local run = " run --json --cpu 1 --cpu-time 5 -- true"
    local script = "findmnt -rn -t cgroup,cgroup2 -o TARGET | while read -r m; do mount -o remount,bind,ro \"$m\"; done" ..
                   " && " .. env.cli_prefix .. " " .. env.quote(env.cli) .. run .. " && " ..
                   env.cli_prefix .. " " .. env.quote(env.cli) .. " run --cpu 1 -- true"
    local ok, out = env.sh("unshare -m --propagation private sh -c " .. env.quote(script) .. " 2>&1")
    assert.is_true(ok, out)
    local r = cjson.decode(out:match("{[^\n]*}"))
    assert.are.equal("exited", r.status, out)
    local w = r.warnings
    assert.are.equal(3, w and #w, out)
    assert.truthy(w[1]:find("^no cgroup for the run %(making .*: Read%-only file system%): its " ..
                  "memory limit was the address space's %(RLIMIT_AS%)$"), out)
    assert.truthy(w[2]:find("^cpu_millicores was not held"), out)
    assert.truthy(w[3]:find("^cpu_time_secs was a limit per process"), out)
    -- The flag form says each on stderr.
    assert.truthy(out:find("\necho%-sandbox: warning: no cgroup for the run [^\n]*\necho%-sandbox: warning: " ..
                           "cpu_millicores was not held[^\n]*\n"), out)
  end)

  it("count what a program uses, not what it reserves", function()
    if not host() then return end
    -- 1 GiB of address space reserved, 8 MiB touched, under a 64 MiB limit
    local r = run_json { language = "python", limits = { memory_bytes = 64 * Mi },
      code = "import mmap\nm = mmap.mmap(-1, 1 << 30)\nm[:8 << 20] = b'x' * (8 << 20)\nprint('ok')" }
    assert.are.equal("ok\n", r.stdout, r.stderr)
    assert.are.equal("exited", r.status)
  end)

  it("let node start under the default memory limit", function()
    if not host() then return end
    local r = run_json { language = "node", code = "console.log('hello world')" }
    assert.are.equal("hello world\n", r.stdout, r.stderr)
    assert.are.equal(0, r.exit_code)
  end)

  -- A run of its own host uid (the default policy's uid_range) is bounded
  -- by RLIMIT_NPROC, which the kernel counts per uid: on v1 it gets no pids
  -- cgroup. Checked: without RLIMIT_NPROC, 200 started.
  it("bound 200 background processes to max_processes and leave none behind", function()
    if not host() then return end
    -- each child sleeps; the program counts the forks that worked and exits
    local r = run_json { language = "python", limits = { max_processes = 32 }, code = [[
import os, time
started = 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        continue
    if pid == 0:
        time.sleep(300)
        os._exit(0)
    started += 1
print(started)]] }
    assert.are.equal("exited", r.status)
    local running = tonumber(r.stdout:match("%d+"))
    assert.truthy(running, r.stdout .. r.stderr)
    assert.is_true(running <= 32, r.stdout)
    assert.is_true(running >= 16, r.stdout) -- many did start
    -- the leak check after this spec finds no sleep left
  end)

  it("hold two busy processes to the cpu limit, as the run's CPU time against its wall time shows", function()
    if not host() then return end
    -- each burns one second of CPU time: 2 s in all, at most 0.5 s a second
    local burn = "python3 -c 'import time\nwhile time.process_time() < 1: pass'"
    local r = run_json { shell = burn .. " & " .. burn .. " & wait", limits = { cpu = "500m" },
                         timeout_ms = 60000 }
    assert.are.equal(0, r.exit_code, r.stderr)
    assert.is_true(r.cpu_time_ms >= 2000, tostring(r.cpu_time_ms))
    local cores = r.cpu_time_ms / r.duration_ms
    assert.is_true(cores < 0.75, ("%.2f cores"):format(cores))
    -- and as a number of cores: 2 busy processes under 1.5 cores
    r = run_json { shell = burn .. " & " .. burn .. " & wait", limits = { cpu = 1.5 }, timeout_ms = 60000 }
    assert.are.equal(0, r.exit_code, r.stderr)
    cores = r.cpu_time_ms / r.duration_ms
    assert.is_true(cores < 1.75, ("%.2f cores"):format(cores))
  end)

  it("report the run's CPU time and memory peak", function()
    if not host() then return end
    local r = run_json { language = "python", code = "import time\nwhile time.process_time() < 1: pass" }
    assert.are.equal(0, r.exit_code, r.stderr)
    assert.is_true(r.cpu_time_ms >= 800, tostring(r.cpu_time_ms))
    r = run_json { language = "python", code = "x = bytearray(100 << 20)\nfor i in range(0, len(x), 4096): x[i] = 1" }
    assert.are.equal(0, r.exit_code, r.stderr)
    assert.is_true(r.memory_peak_bytes >= 100 * Mi, tostring(r.memory_peak_bytes))
  end)

  -- Six busy loops, each its own process, under a shell that ignores
  -- SIGTERM: what a program that forks workers does to a CPU-time limit
  -- per process.
  local spinners = "trap '' TERM; for i in 1 2 3 4 5 6; do (while :; do :; done) & done; wait"
  local six = { shell = spinners, limits = { cpu_time_secs = 2, cpu = 2 }, timeout_ms = 60000 }

  local function out_of_cpu(r)
    assert.are.equal("timed_out", r.status, cjson.encode(r))
    assert.are.equal("CpuTimeExceeded", r.reason)
    assert.are.equal(124, r.exit_code)
    assert.is_true(r.timed_out)
    assert.is_true(r.cpu_time_ms >= 2000, tostring(r.cpu_time_ms))
    assert.is_true(r.cpu_time_ms <= 3000, tostring(r.cpu_time_ms))
    assert.is_nil(r.warnings)
  end

  it("hold the whole run to cpu_time_secs, six busy processes together, and say it was the CPU", function()
    if not host() then return end
    -- Checked: without the engine's watch of the cgroup's count (RLIMIT_CPU
    -- per process only), the six used 15.8 s of CPU and the run ended
    -- "exited".
    out_of_cpu(run_json(six))
  end)

  it("give a run out of CPU time no grace to spend more", function()
    if not host() then return end
    -- Outside a pid namespace the shell that ignores SIGTERM would keep
    -- the six spinning through the policy's grace. Checked: with the grace
    -- (10 s here) instead of none, they used 10.8 s of CPU.
    local path = env.policy_file("policy.local_sandbox.isolation = 'rlimits'\npolicy.defaults.kill_grace_ms = 10000")
    local r = run_json(six, { "--policy", path })
    os.remove(path)
    out_of_cpu(r)
  end)

  it("let a run under its CPU time end by itself", function()
    if not host() then return end
    -- A budget well above the 1.5 s it spends: under the CI's TCG machine a
    -- busy host makes the guest count more CPU time for Python's start.
    local r = run_json { language = "python", limits = { cpu_time_secs = 10 }, timeout_ms = 60000,
                         code = "import time\nwhile time.process_time() < 1.5: pass\nprint('done')" }
    assert.are.equal("done\n", r.stdout, r.stderr)
    assert.are.equal("exited", r.status)
    assert.are.equal("Completed", r.reason)
    assert.is_true(r.cpu_time_ms >= 1500 and r.cpu_time_ms < 10000, tostring(r.cpu_time_ms))
    assert.is_nil(r.warnings)
  end)

  it("without cgroups hold each process to cpu_time_secs, and the result says so", function()
    -- Checked: without the warning, nothing told the caller that six
    -- processes may each use the whole budget.
    local path = env.policy_file("policy.local_sandbox.cgroups = false")
    local r = run_json({ shell = "true", limits = { cpu_time_secs = 2 } }, { "--policy", path })
    os.remove(path)
    assert.are.equal("exited", r.status, cjson.encode(r))
    -- One warning per limit held less strictly: the CPU rate (the policy's
    -- default cpu_millicores) and the CPU time.
    assert.are.equal(2, r.warnings and #r.warnings, cjson.encode(r))
    assert.truthy(r.warnings[1]:find("^cpu_millicores was not held: no cgroup for the run"), cjson.encode(r))
    assert.truthy(r.warnings[2]:find("per process", 1, true), cjson.encode(r))
  end)

  -- Defence: a cgroup namespace of its own, made once the run is in its
  -- cgroups (sandbox_child.c: enter_cgroup_namespace). Checked: without
  -- it, the run read the host's path of its cgroup, with the engine's pid.
  it("are the run's root: it sees its own as /, not the host's path", function()
    if not host() then return end
    local r = run_json { shell = "cat /proc/self/cgroup" }
    assert.are.equal(0, r.exit_code, r.stderr)
    assert.truthy(r.stdout:match("memory:/\n") or r.stdout:match("^0::/\n$"), r.stdout)
    for line in r.stdout:gmatch("[^\n]+") do
      assert.truthy(line:match(":/$"), r.stdout)
    end
  end)

  it("start the program inside its cgroup, below the parent the engine reports", function()
    local h = host()
    if not h then return end
    local _, where, wait = run_sleeper()
    local path = where()
    local r = wait()
    assert.are.equal("signaled", r.status, r.stderr)
    assert.truthy(path, r.stderr)
    local dir = path:match("([^/]+)$")
    -- run: a slot of the shared pool, where there is one
    assert.truthy(dir:match(pooled(h) and "^echo%-sandbox%-pool%-%d+$" or "^echo%-sandbox%-%d+%-%d+$"), path)
    -- /proc/self/cgroup names it from the hierarchy's root
    assert.are.equal(path, (h.parent .. "/" .. dir):sub(-#path))
  end)

  it("are handed on from run to run in a batch with nothing of the last run in them", function()
    if not host() then return end
    local report, where3 = sleeper()
    local last, where5 = sleeper()
    local hog_run, big = "x = bytearray(512 << 20)", "x = bytearray(100 << 20)"
    report.id, report.limits = 3, { memory_bytes = 32 * Mi }
    last.id, last.limits = 5, { memory_bytes = 48 * Mi }
    local requests = {
      { id = 1, language = "python", code = hog_run, limits = { memory_bytes = 64 * Mi } },
      { id = 2, language = "python", code = big, limits = { memory_bytes = 256 * Mi } },
      report,
      { id = 4, language = "python", code = hog_run, limits = { memory_bytes = 64 * Mi } },
      last,
    }
    local lines = {}
    for i, r in ipairs(requests) do lines[i] = cjson.encode(r) end
    -- one at a time: each run gets the cgroup the run before it gave back
    local infile = os.tmpname()
    env.write_file(infile, table.concat(lines, "\n") .. "\n")
    local wait = cli_output({ "batch", "-j", "1" }, infile)
    local path3, path5 = where3(), where5()
    local out = wait()
    os.remove(infile)
    local results = {}
    for text in out:gmatch("[^\n]+") do
      local r = cjson.decode(text)
      results[r.id] = r
    end
    assert.are.equal("oom_killed", results[1].status)
    assert.are.equal("exited", results[2].status, results[2].stderr)
    -- OOM kills are counted from this run's start: a SIGKILL after the hog
    -- two runs before is the program's own
    assert.are.equal("signaled", results[3].status)
    assert.are.equal(9, results[3].signal)
    assert.are.equal("oom_killed", results[4].status)
    assert.are.equal("signaled", results[5].status)
    assert.truthy(path3:match("echo%-sandbox%-"), path3)
    assert.are.equal(path3, path5) -- the same cgroup, reused
    -- the peak is this run's (a shell: a few MiB), not the 100 MiB before it
    assert.is_true(results[3].memory_peak_bytes < 32 * Mi, tostring(results[3].memory_peak_bytes))
    assert.is_true(results[5].memory_peak_bytes < 48 * Mi, tostring(results[5].memory_peak_bytes))
  end)

  -- A CLI run takes a slot of the pool engines share (engine/cgroup.h),
  -- which the run before it held: nothing of that run is in it. Each run
  -- here is a process of its own, one after the other, in the suite's own
  -- parent: the same slot. Checked: without dropping the last holder's
  -- charges (drop_charges), the third run's peak was 64 MiB (the file the
  -- second wrote, in its page cache); without reading the OOM-kill count
  -- and the CPU time as the run's start, it had used a second of CPU and
  -- the fifth was oom_killed; with the last holder's limits (none
  -- written), the memory bombs were not OOM-killed.
  it("of CLI runs are slots of a shared pool, with nothing of the slot's last holder in them", function()
    local h = pool_host()
    if not h then return end
    local dir, policy = env.shared_dir_policy("/data", "777")
    finally(function()
      os.execute("rm -rf " .. dir)
      os.remove(policy)
    end)
    -- the OOM killer; then 64 MiB of page cache charged to the slot and
    -- left there (the file outlives the run), and a second of CPU
    local a = run_json(hog, { "--policy", policy })
    assert.are.equal("oom_killed", a.status, a.stderr)
    a = run_json({ language = "python", limits = { memory_bytes = 512 * Mi }, code = [[
import os, time
with open("/data/f", "wb") as f:
    for _ in range(64):
        f.write(b"x" * (1 << 20))
    f.flush()
    os.fsync(f.fileno())
while time.process_time() < 1: pass]] }, { "--policy", policy })
    assert.are.equal("exited", a.status, a.stderr)
    local slots = entries(h.parent, "^echo%-sandbox%-pool%-%d+$")
    assert.are_not.same({}, slots)
    local b = run_json({ shell = "true" }, { "--policy", policy })
    assert.are.equal("exited", b.status, b.stderr)
    assert.is_true(b.memory_peak_bytes < 32 * Mi, tostring(b.memory_peak_bytes))
    assert.is_true(b.cpu_time_ms < 500, tostring(b.cpu_time_ms))
    -- its limit is its own: 64 MiB, not the 512 MiB nor the 256 MiB before
    local c = run_json({ language = "python", code = "x = bytearray(128 * 1024 * 1024)\nprint('allocated')",
                         limits = { memory_bytes = 64 * Mi } }, { "--policy", policy })
    assert.are.equal("oom_killed", c.status, c.stderr)
    -- the OOM kill is counted from its run's start: a SIGKILL after it is
    -- the program's own
    local d = run_json({ shell = "kill -9 $$" }, { "--policy", policy })
    assert.are.equal("signaled", d.status, d.stderr)
    assert.are.equal(9, d.signal)
    -- the slots stay for the next run (more may be there: other specs'
    -- CLI runs beside this one take slots of the same pool)
    local now = {}
    for _, name in ipairs(entries(h.parent, "^echo%-sandbox%-pool%-%d+$")) do now[name] = true end
    for _, name in ipairs(slots) do assert.is_true(now[name], name .. " was removed") end
    assert.are.same({}, entries(h.parent, "^echo%-sandbox%-%d+%-%d+$"))
  end)

  -- Checked: taking a slot without looking for processes in it, the run
  -- went into the one that held the sleeper.
  it("are no slot of the shared pool that still holds a process", function()
    local h = pool_host()
    if not h then return end
    local slot = h.parent .. "/echo-sandbox-pool-0"
    os.execute("mkdir " .. slot .. " 2>/dev/null")
    local seconds = env.unique_seconds(300)
    local p = io.popen(("sh -c 'echo $$ > %s/cgroup.procs && exec sleep %s' >/dev/null 2>&1 & echo $!")
      :format(slot, seconds))
    local pid = p:read("n")
    p:close()
    finally(function()
      os.execute(("kill -9 %d; while kill -0 %d 2>/dev/null; do sleep 0.01; done"):format(pid, pid))
      env.cli_run { "cleanup", "--local-only" }
    end)
    assert.is_true(env.wait_running { "sleep", seconds })
    local _, where, wait = run_sleeper()
    local path = where()
    wait()
    assert.truthy(path:match("/echo%-sandbox%-pool%-%d+$"), path)
    assert.is_nil(path:match("/echo%-sandbox%-pool%-0$"), path)
  end)

  it("of the shared pool are removed by echo-sandbox cleanup when idle, and kept while a run holds them", function()
    local h = pool_host()
    if not h then return end
    local r = run_json { shell = "true" }
    assert.are.equal(0, r.exit_code)
    assert.are_not.same({}, entries(h.parent, "^echo%-sandbox%-pool%-%d+$"))
    local request, where, wait = run_sleeper()
    assert.is_true(env.wait_running { "sleep", request.args[1] })
    local out = env.cli_run { "cleanup", "--local-only" }
    local kept = out:match("keeping (%S+/echo%-sandbox%-pool%-%d+) %(in use%)")
    where()
    wait()
    assert.truthy(kept and kept:find(h.parent, 1, true), out)
    out = env.cli_run { "cleanup", "--local-only" }
    assert.truthy(out:find("removed " .. kept, 1, true), out)
    assert.are.same({}, entries(h.parent, "^echo%-sandbox%-pool%-%d+$"))
  end)

  it("left by an engine that was killed are removed by the next run", function()
    local h = host()
    if not h then return end
    local seconds = env.unique_seconds(300)
    local input = os.tmpname()
    local lines = {}
    for i = 1, 2 do lines[i] = cjson.encode { id = i, program = "sleep", args = { seconds } } end
    env.write_file(input, table.concat(lines, "\n") .. "\n")
    local pid, wait = env.cli_background({ "batch", "-j", "2" }, input)
    assert.is_true(env.wait_running { "sleep", seconds }, "the programs did not start")
    local mine = "^echo%-sandbox%-" .. pid .. "%-%d+$"
    assert.are_not.same({}, entries(h.parent, mine))
    os.execute("kill -9 " .. pid)
    wait()
    os.remove(input)
    -- the sandboxes die with their engine (their parent-death signal); the
    -- next engine's first cgroup sweeps the empty ones away
    for _ = 1, 100 do
      if not env.running { "sleep", seconds } then break end
      env.sleep(0.05)
    end
    local r = run_json { shell = "true" }
    assert.are.equal(0, r.exit_code)
    assert.are.same({}, entries(h.parent, mine))
  end)

  it("of an engine that is gone are removed, and only those", function()
    local h = host()
    if not h then return end
    local p = io.popen("sh -c 'echo $$'")
    local gone = p:read("n")
    p:close()
    local stale = ("%s/echo-sandbox-%d-3"):format(h.parent, gone)
    local alive = h.parent .. "/echo-sandbox-1-3"
    assert(os.execute("mkdir " .. stale .. " " .. alive))
    local r = run_json { shell = "true" }
    local stale_left = os.execute("test -d " .. stale)
    local alive_left = os.execute("test -d " .. alive)
    os.execute("rmdir " .. alive .. " " .. stale .. " 2>/dev/null")
    assert.are.equal(0, r.exit_code)
    assert.is_falsy(stale_left)
    assert.is_true(alive_left) -- pid 1 is there: not ours to remove
  end)

  -- A policy whose runs have no CPU rate or budget: their cgroups are all
  -- below the suite's own (where this host mounts cpu and cpuacct apart,
  -- their roots are every engine's, an older one's too, whose sweep goes
  -- by the pid alone). The caller removes the file.
  local function own_cgroups_policy()
    return env.policy_file("policy.defaults.limits.cpu_millicores = nil\n" ..
      "policy.defaults.limits.cpu_time_secs = nil\n")
  end

  -- A cgroup of a live engine is empty between its making and the run's
  -- join, and while it waits in the engine's pool; an engine in another pid
  -- namespace (a suite under unshare --pid, a container on the same
  -- cgroupfs) finds no process of its pid. The pool's idle cgroup makes
  -- the order certain: made, swept by that engine, taken by the next run.
  -- Checked: without the lock the sweep tests (a pid that is no process,
  -- as before), the daemon's idle cgroups were removed and its second run
  -- failed: "sandbox setup failed (join the run's cgroups): No such device".
  it("of an engine in another pid namespace are left alone, idle in its pool too", function()
    local h = host()
    if not h then return end
    local runs = "^echo%-sandbox%-%d+%-%d+$"
    local policy = own_cgroups_policy()
    local d = daemon.start("--policy " .. env.quote(policy))
    local request = cjson.encode { shell = "true" }
    local asked, first_status, first, idle, said, kept, second_status, second = pcall(function()
      local status, answer = daemon.request(d, "POST", "/v1/run", request)
      -- answered: the run's cgroup is back in the daemon's pool
      local listed = entries(h.parent, runs)
      -- doctor's exit says what else it finds wanting here: not this spec's matter
      local _, out = env.sh(("unshare --pid --fork %s %s doctor"):format(env.cli_prefix, env.quote(env.cli)))
      return status, answer, listed, out, entries(h.parent, runs), daemon.request(d, "POST", "/v1/run", request)
    end)
    daemon.stop(d)
    os.remove(policy)
    assert(asked, first_status)
    assert.are.equal(200, first_status)
    assert.are.equal(0, first.exit_code, cjson.encode(first))
    assert.are_not.same({}, idle)
    assert.truthy(said:find("ok%s+limits"), said) -- it made a cgroup: it swept
    assert.are.equal(200, second_status)
    assert.are.equal(0, second.exit_code, cjson.encode(second))
    assert.are.same(idle, kept)
    assert.are.same({}, entries(h.parent, runs))
  end)

  -- The engine locks a cgroup it made right after its mkdir; a sweep can
  -- come between the two. The preloaded library (spec/support/
  -- sweep_on_lock.c) removes the cgroup at the engine's first lock, as such
  -- a sweep would. Checked: without the check that the file locked is still
  -- the one its path names, the run went without a cgroup ("no cgroup for
  -- the run (setting up .../echo-sandbox-PID-0: No such file or
  -- directory)").
  it("removed by a sweep between their making and their lock are made again, under the next name", function()
    local h = host()
    if not h then return end
    local infile = os.tmpname()
    env.write_file(infile, cjson.encode { id = 1, shell = "true" } .. "\n")
    -- an ASan build takes a library preloaded before its runtime
    local script = 'LD_PRELOAD=$1 ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" ' ..
      'exec "$2" batch --policy "$3"'
    local policy = own_cgroups_policy()
    local _, out = env.sh(("%s sh -c %s sh %s %s %s < %s"):format(env.cli_prefix, env.quote(script),
      env.quote(env.build .. "/esb-spec-sweep-on-lock.so"), env.quote(env.cli_dynamic), env.quote(policy), infile))
    os.remove(infile)
    os.remove(policy)
    local swept = out:match("sweep_on_lock: removed [^\n]*/(echo%-sandbox%-%d+%-%d+)\n")
    local line = out:match("{[^\n]*}")
    assert.truthy(swept and line, out)
    local r = cjson.decode(line)
    assert.are.equal(0, r.exit_code, out)
    assert.is_nil(r.warnings, out)
    assert.are.same({}, entries(h.parent, "^echo%-sandbox%-%d+%-%d+$"))
  end)

  it("take the next name when one of the engine's own pid is left from an engine before it", function()
    local h = host()
    if not h then return end
    -- the shell makes echo-sandbox-<its pid>-0, then becomes the CLI (same
    -- pid): batch, which makes its runs' cgroups (run takes a slot of the
    -- shared pool)
    local pidfile, infile = os.tmpname(), os.tmpname()
    env.write_file(infile, cjson.encode(hog) .. "\n")
    local script = ("mkdir %s/echo-sandbox-$$-0 && echo $$ > %s && exec %s %s batch < %s"):format(
      h.parent, pidfile, env.cli_prefix, env.quote(env.cli), infile)
    local f = io.popen("sh -c " .. env.quote(script))
    local out = f:read("a")
    f:close()
    local pid = env.read_file(pidfile):match("%d+")
    os.remove(pidfile)
    os.remove(infile)
    os.execute(("rmdir %s/echo-sandbox-%s-0"):format(h.parent, pid))
    local r = cjson.decode(out)
    assert.are.equal("oom_killed", r.status) -- a cgroup, not the address-space fallback
  end)

  it("are delegated to the daemon by the shipped systemd unit", function()
    local unit = env.read_file("deploy/echo-sandbox.service")
    assert.truthy(unit:find("\nDelegate=yes\n", 1, true), unit)
  end)

  it("v2: an engine alone in its cgroup (a service with Delegate=yes) moves into a leaf and runs below it", function()
    local h = host()
    if not h then return end
    if h.version ~= 2 then
      pending("cgroup v1 here: the engine makes its runs' cgroups beside its own")
      return
    end
    local service = h.parent .. "/esb-spec-service-" .. math.random(1, 999999)
    assert(os.execute("mkdir " .. service))
    local infile = os.tmpname()
    local request, where = sleeper()
    env.write_file(infile, cjson.encode(request))
    local function alone() -- as systemd starts a service: alone in its cgroup
      local out = os.tmpname()
      local script = ("echo $$ > %s/cgroup.procs && exec %s %s run --json < %s > %s"):format(
        service, env.cli_prefix, env.quote(env.cli), infile, out)
      local wait = env.in_background("sh -c " .. env.quote(script))
      local path = where()
      wait()
      local r = cjson.decode(env.read_file(out))
      os.remove(out)
      return r, path
    end
    local r, path = alone()
    local left = entries(service, "^echo%-sandbox%-")
    local slots = entries(service, "^echo%-sandbox%-pool%-%d+$")
    os.remove(infile)
    -- what systemd does when the service stops: remove its cgroup, leaf and all
    local removed = true
    for _, name in ipairs(left) do removed = os.execute("rmdir " .. service .. "/" .. name) and removed end
    removed = os.execute("rmdir " .. service) and removed
    local rel = service:match("^/sys/fs/cgroup(/.*)$")
    path = path or ""
    assert.are.equal(rel .. "/", path:sub(1, #rel + 1), r.stderr)
    assert.truthy(path:sub(#rel + 2):match(pooled(h) and "^echo%-sandbox%-pool%-0$" or "^echo%-sandbox%-%d+%-0$"), path)
    assert.are.equal("signaled", r.status)
    -- the engine's own leaf, which it cannot remove while it is in it; the
    -- run's cgroup is gone (or, a slot of the shared pool, idle)
    assert.are.equal(1 + #slots, #left, table.concat(left, " "))
    assert.are.equal(pooled(h) and 1 or 0, #slots, table.concat(left, " "))
    assert.truthy(left[1]:match("^echo%-sandbox%-engine%-%d+$"), left[1])
    assert.is_true(removed)
  end)
end)
