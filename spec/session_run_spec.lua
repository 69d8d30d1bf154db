-- A run in a local session gets what a one-shot run gets (src/backend/local_session_run.c):
-- the request's files and code written into the session's working dir, --stdin-file,
-- collect, the deadline's SIGTERM and grace, its CPU time and peak memory, a pids budget
-- and OOM kills of its own (cgroups of the run's below the session's). The working dir
-- is the runs' to change: what one run planted there (a link to the host, to /proc) is
-- never followed by the engine for the next one. Every case checks that nothing it
-- started is left: the holder, the session's directory, its cgroups and the runs'
-- below them.
local env = require "spec.support.env"
local session = require "spec.support.session"
local cjson = require "cjson"

local create, run, run_request, remove = session.create, session.run, session.run_request, session.remove

-- Starts `session run ID [args] --shell SHELL` (stdout to out) in the
-- background, its shell to touch `up` first; once it has, returns the
-- command's pid and a function that waits for its end (its exit code).
local function start_until_up(id, shell, args, out)
  local pidfile, script = os.tmpname(), os.tmpname()
  env.write_file(script, ("echo $$ > %s\nexec env %s %s %s session run %s %s --shell %s > %s\n")
    :format(pidfile, session.env_prefix(), env.cli_prefix, env.quote(env.cli), id, args or "",
            env.quote("touch up; " .. shell), out or "/dev/null"))
  local wait = env.in_background("sh " .. script .. " 2>/dev/null")
  local up
  for _ = 1, 3000 do
    up = select(3, session.cli { "session", "cp", id .. ":up", "-" }) == 0
    if up then break end
    env.sleep(0.01)
  end
  local pid = session.read(pidfile):match("%d+")
  os.remove(pidfile)
  os.remove(script)
  assert(up, "the run did not start")
  return pid, wait
end

-- A session whose runs take slots of its cgroups (cgroup v1's), and its
-- memory cgroup's directory; nil, the case pending, where there are none.
local function slot_session()
  if not env.cgroups_available() or env.cgroup_host().version ~= 1 then
    pending("slots are cgroup v1's: " .. (select(2, env.cgroup_host()) or "v2 here"))
    return nil
  end
  local s = create("--memory", "128Mi")
  return s, session.cgroups_of(s.id)[1]
end

describe("a run in a session", function()
  env.check_leaks()
  setup(session.setup)
  teardown(session.teardown)

  -- Checked: with put_files taken out of the run's path, cat printed the
  -- earlier run's "old".
  it("gets the request's files and the code's file, replacing what an earlier run left", function()
    local s = create()
    run(s.id, "echo old > data.txt; mkdir sub")
    local r, code, err = run_request(s.id, { files = { ["data.txt"] = "new\n", ["sub/deeper/f"] = "x\n" },
                                             shell = "cat data.txt sub/deeper/f; stat -c %u data.txt; id -u" })
    assert.are.equal(0, code, err)
    local data, f, owner, uid = r.stdout:match("^(.-\n)(.-\n)(%d+)\n(%d+)\n$")
    assert.are.equal("new\n", data, r.stdout)
    assert.are.equal("x\n", f)
    assert.are.equal(uid, owner, "the file is the program's")
    local out, err2, code2 = session.cli { "session", "run", s.id, "--lang", "python", "--code",
                                           "print(open('data.txt').read().strip() * 2)" }
    assert.are.equal(0, code2, err2)
    assert.are.equal("newnew\n", out)
    remove(s)
  end)

  -- A run plants links to the host (a directory, a file) and through /proc;
  -- the next request's files must land beneath the working dir or be refused.
  -- Checked: with open_beneath's resolve flags taken out (0), the
  -- request's d/x was taken (exit 0: through the link, on the host); with
  -- the file opened O_WRONLY|O_TRUNC where it is (no new name renamed over
  -- it), the host's file said "planted".
  it("never follows a link a run planted when it writes the next request's files", function()
    local s = create()
    local host, cleanup = session.host_target()
    finally(cleanup)
    run(s.id, ("ln -s %s d; ln -s %s/secret leaf; ln -s /proc/self/root/tmp p; ln -s ../../.. up")
      :format(host, host))
    for _, path in ipairs { "d/x", "p/x", "up/x" } do
      local r, code = run_request(s.id, { files = { [path] = "planted\n" }, shell = "true" })
      assert.are.equal(125, code, path)
      assert.are.equal("invalid_request", r.error.code)
      assert.truthy(r.error.message:find("'" .. path .. "': it leads outside the session's working dir", 1, true),
                    r.error.message)
    end
    local r, code, err = run_request(s.id, { files = { leaf = "planted\n" }, shell = "[ -L leaf ] || cat leaf" })
    assert.are.equal(0, code, err)
    assert.are.equal("secret\n", session.ls(host), "the host's directory is as it was")
    assert.are.equal("host-secret\n", session.read(host .. "/secret"))
    assert.are.equal("planted\n", r.stdout, "the link itself was replaced")
    local _, err2, code2 = session.cli({ "session", "run", s.id, "--json" },
                                       cjson.encode { files = { ["../x"] = "planted\n" }, shell = "true" })
    assert.are.equal(125, code2)
    assert.truthy(err2:find("'..'", 1, true), err2)
    remove(s)
  end)

  it("takes stdin from a file (--stdin-file)", function()
    local s = create()
    local input = os.tmpname()
    finally(function() os.remove(input) end)
    env.write_file(input, "one\ntwo\nthree\n")
    local r, code, err = run(s.id, "wc -l; cat", { "--stdin-file", input })
    assert.are.equal(0, code, err)
    assert.are.equal("3\n", r.stdout)
    remove(s)
  end)

  -- The same frames and limits as a one-shot run (its pid 1 walks the
  -- working dir): a link the program made is not followed.
  it("collects the files its request names", function()
    local s = create()
    run(s.id, "mkdir out; echo earlier > out/0.txt")
    local r, code, err = run_request(s.id, { collect = { "out/*.txt" },
                                             shell = "echo one > out/1.txt; echo x > out/2.bin; " ..
                                                     "ln -s /etc/passwd out/evil.txt" })
    assert.are.equal(0, code, err)
    local got = {}
    for _, f in ipairs(r.files) do got[#got + 1] = f.path .. "=" .. env.unbase64(f.base64) end
    table.sort(got)
    assert.are.same({ "out/0.txt=earlier\n", "out/1.txt=one\n" }, got)
    remove(s)
  end)

  it("refuses network: a session's network is the session's", function()
    local s = create()
    local r, code = run(s.id, "true", { "--network" })
    assert.are.equal(125, code)
    assert.are.equal("invalid_request", r.error.code)
    assert.truthy(r.error.message:find("the session's network", 1, true), r.error.message)
    remove(s)
  end)

  -- Checked: with deadline_reached going straight to kill_run (no TERM to
  -- the holder), the trap never ran: stdout was empty.
  it("gives the program SIGTERM at its deadline, then SIGKILL after the grace", function()
    local s = create()
    local r, code = run(s.id, "trap 'echo got-term; exit 3' TERM; sleep 300 & wait", { "--timeout", "0.3" })
    assert.are.equal(124, code)
    assert.are.equal("timed_out", r.status)
    assert.is_true(r.killed_by_us)
    assert.are.equal("got-term\n", r.stdout)
    local sleep = env.unique_seconds(300)
    r, code = run(s.id, "trap '' TERM; sleep " .. sleep, { "--timeout", "0.3" })
    assert.are.equal(124, code)
    assert.are.equal("timed_out", r.status)
    assert.are.equal(9, r.signal)
    assert.is_false(env.running { "sleep", sleep })
    remove(s)
  end)

  -- SIGINT to the command that runs it: as at the deadline, the program
  -- gets SIGTERM and its grace (its trap leaves a file), and the result
  -- says the run was interrupted. Checked: with the interrupt going
  -- straight to kill_run (as before), the trap never ran: no file.
  it("gives the program SIGTERM and its grace when the command running it is interrupted", function()
    local s = create()
    local out = os.tmpname()
    finally(function() os.remove(out) end)
    local pid, wait = start_until_up(s.id, "trap 'echo got-term > termed; exit 3' TERM; sleep 300 & wait",
                                     "--json", out)
    assert(os.execute("kill -INT " .. pid))
    wait()
    local r = cjson.decode(session.read(out))
    assert.are.equal("interrupted", r.error.code, cjson.encode(r))
    assert.are.equal("got-term\n", (session.cli { "session", "cp", s.id .. ":termed", "-" }))
    remove(s)
  end)

  -- The holder makes each run's pid 1 ahead with a seccomp filter
  -- installed already, the one the session's runs had last (at first the
  -- session's own); a run whose plan has another gets a pid 1 of its own,
  -- with the plan's. Checked: with start_warm handing every run to the
  -- waiting pid 1 whatever its filter, the strict runs failed in their
  -- setup (that pid 1 refused the plan's other filter: EPROTO); with that
  -- check taken out too (esb_child_run_prepared's same_filter), the first
  -- strict run's ptrace(PTRACE_TRACEME) was let through (0); with the
  -- filter not installed ahead (esb_child_session_prepare's prctl taken
  -- out), the third run, strict, was let through too.
  it("runs each run under its own plan's seccomp filter, the one made ahead or another", function()
    local strict = env.policy_file 'policy.local_sandbox.seccomp = "strict"'
    local s = create()
    local traceme = "python3 -c 'import ctypes; print(ctypes.CDLL(None).ptrace(0, 0, 0, 0))'"
    for i, policy in ipairs { false, strict, strict, false, false } do
      local r, code, err = run(s.id, traceme, policy and { "--policy", policy } or nil)
      assert.are.equal(0, code, err)
      assert.are.equal(policy and "-1\n" or "0\n", r.stdout, ("run %d, %s"):format(i, policy and "strict" or "default"))
    end
    remove(s)
    os.remove(strict)
  end)

  -- On cgroup v1 a run's cgroups are a slot of the session's (run-K below
  -- its cgroups), which the next run takes again, readied for it.
  -- Checked: with make_run_cgroups taken out, memory_peak_bytes was null;
  -- on cgroup v2 (spec/support/cgroup_v2_vm.sh) the same with the holder
  -- left in the session's cgroup (esb_cgroup_v2_nest taken out: a cgroup
  -- with a process has no child with controllers); with the slot's
  -- high-water mark not reset (reuse's write to memory.max_usage_in_bytes
  -- taken out), the second run's peak was the first's 48 MiB and more.
  it("says its own CPU time and peak memory, in a slot of the session's that the next run takes again", function()
    if not env.cgroups_available() then
      pending("no cgroups here: " .. select(2, env.cgroup_host()))
      return
    end
    local v1 = env.cgroup_host().version == 1
    local s = create("--memory", "256Mi")
    local where = "; grep -E '^[0-9]+:memory:' /proc/self/cgroup || true"
    local r, code, err = run(s.id, "python3 -c 'b = b\"x\" * (48 << 20); print(len(b) >> 20)'" .. where)
    assert.are.equal(0, code, err)
    local first_slot = r.stdout:match("^48\n(.*)$")
    assert.truthy(first_slot, r.stdout)
    assert.truthy(r.memory_peak_bytes >= 48 * 1024 * 1024, r.memory_peak_bytes)
    assert.is_number(r.cpu_time_ms)
    assert.truthy(r.cpu_time_ms >= 0)
    r = run(s.id, "true" .. where)
    if v1 then
      assert.truthy(first_slot:match(":/run%-%d+\n$"), first_slot)
      assert.are.equal(first_slot, r.stdout, "the second run takes the first one's slot again")
    end
    assert.truthy(r.memory_peak_bytes < 48 * 1024 * 1024, "the peak is the run's own: " .. r.memory_peak_bytes)
    for _, below in ipairs(session.cgroups_below(s.id)) do
      -- v2's leaf of the holder, v1's idle slots: no process left in them
      assert.truthy(below:match("/holder$") or (v1 and below:match("/run%-%d+$")), below .. " is left")
      assert.truthy(below:match("/holder$") or session.read(below .. "/cgroup.procs") == "", below .. " has a process")
    end
    remove(s)
  end)

  -- Two runs side by side take two slots: each its own counts and pids
  -- budget. Checked: with the slot's lock (flock of its tasks files) taken
  -- out, the second run, taking its slot before the first's pid 1 had
  -- joined run-0, took run-0 too, and its end killed the first run (one
  -- time of two: the case below shows the lock alone).
  it("takes a cgroup of its own beside another run of the session", function()
    if not env.cgroups_available() then
      pending("no cgroups here: " .. select(2, env.cgroup_host()))
      return
    end
    local s = create("--memory", "256Mi")
    local where = env.cgroup_host().version == 1 and "grep -E '^[0-9]+:(memory|pids):' /proc/self/cgroup"
                  or "grep '^0::' /proc/self/cgroup"
    local wait = session.run_in_background(s.id, where .. " > a-cgroup; : > a-up; " ..
                                           "while [ ! -e b-done ]; do sleep 0.01; done")
    local r, code, err = run(s.id, "while [ ! -e a-up ]; do sleep 0.01; done; " .. where .. "; : > b-done",
                             { "--timeout", "30" })
    assert.are.equal(0, code, err)
    assert.are.equal(0, (wait()))
    local a = session.cli { "session", "cp", s.id .. ":a-cgroup", "-" }
    assert.truthy(a:match("memory:/.") or a:match("^0::/."), a)
    for line in r.stdout:gmatch("[^\n]+") do
      assert.is_nil(a:find(line, 1, true), "both runs in " .. line)
    end
    remove(s)
  end)

  -- The engine that took a slot is killed while the holder cannot end its
  -- run yet (stopped): the slot stays locked, by the holder's copy of its
  -- files, until the run's pid 1 is reaped. Checked: with the holder
  -- closing the run's cgroup fds once the run started (as it did before
  -- slots), `flock -n` took the slot while the run's sleep lived.
  it("keeps its slot from other runs while it lives, though its engine was killed", function()
    local s, memory = slot_session()
    if not s then return end
    local sleep = env.unique_seconds(300)
    local pid, wait = start_until_up(s.id, "sleep " .. sleep)
    local tasks = memory .. "/run-0/tasks"
    assert.truthy(session.read(memory .. "/run-0/cgroup.procs") ~= "", "the run is in run-0")
    assert(os.execute("kill -STOP " .. s.pid))
    local stopped = true
    finally(function() if stopped then os.execute("kill -CONT " .. s.pid) end end)
    assert(os.execute("kill -KILL " .. pid))
    assert.are.equal(137, wait())
    assert.is_true(env.running { "sleep", sleep })
    assert.are_not.equal(true, os.execute("flock -n " .. env.quote(tasks) .. " true"), "the slot was free")
    assert(os.execute("kill -CONT " .. s.pid))
    stopped = false
    local free = false -- the holder ends the run (its engine is gone), then lets the slot go
    for _ = 1, 3000 do
      free = not env.running { "sleep", sleep } and os.execute("flock -n " .. env.quote(tasks) .. " true") == true
      if free then break end
      env.sleep(0.01)
    end
    assert.is_true(free)
    remove(s)
  end)

  -- A slot another engine holds (its lock taken, its run's pid 1 not in
  -- it yet) is not taken, though nothing is in it. Checked: without the
  -- flock in lock_run_slot, the run took run-0.
  it("takes no slot another engine holds, though no process is in it yet", function()
    local s, memory = slot_session()
    if not s then return end
    local where = "grep -E '^[0-9]+:memory:' /proc/self/cgroup"
    assert.truthy(run(s.id, where).stdout:match(":/run%-0\n$"))
    local held, release = os.tmpname(), os.tmpname()
    os.remove(release)
    os.remove(held)
    local wait = env.in_background("flock -x " .. env.quote(memory .. "/run-0/tasks") .. " sh -c ': > " .. held ..
                                   "; while [ ! -e " .. release .. " ]; do sleep 0.01; done'")
    for _ = 1, 3000 do
      if session.read(held) then break end
      env.sleep(0.01)
    end
    local r = run(s.id, where)
    env.write_file(release, "")
    assert.are.equal(0, wait())
    os.remove(held)
    os.remove(release)
    assert.truthy(r.stdout:match(":/run%-1\n$"), r.stdout)
    remove(s)
  end)

  -- A process in a slot (one put there from outside the session) keeps
  -- the slot from runs: the run takes the next. Checked: without the
  -- check of the slot's cgroup.procs (idle_at) in lock_run_slot, the run
  -- took run-0, and its end killed the process found there.
  it("takes no slot that holds a process", function()
    local s, memory = slot_session()
    if not s then return end
    local where = "grep -E '^[0-9]+:memory:' /proc/self/cgroup"
    assert.truthy(run(s.id, where).stdout:match(":/run%-0\n$"))
    local sleep, pidfile = env.unique_seconds(300), os.tmpname()
    local wait = env.in_background("sh -c 'echo $$ > " .. env.quote(memory .. "/run-0/cgroup.procs") ..
                                   " && echo $$ > " .. pidfile .. " && exec sleep " .. sleep .. "'")
    local pid
    for _ = 1, 3000 do
      pid = env.running { "sleep", sleep } and (session.read(pidfile) or ""):match("%d+")
      if pid then break end
      env.sleep(0.01)
    end
    os.remove(pidfile)
    local r = run(s.id, where)
    local stranger = session.read(memory .. "/run-0/cgroup.procs")
    assert(os.execute("kill -KILL " .. pid))
    wait()
    assert.truthy(r.stdout:match(":/run%-1\n$"), r.stdout)
    assert.truthy(stranger ~= "", "the process stayed in run-0")
    remove(s)
  end)

  -- The holder makes the next run's pid 1 ahead (its pid namespace, its
  -- mount namespace and /proc) once the run that took the last has ended; it waits
  -- with nothing of the holder's open but its socket: not the control
  -- socket, the state file, a run's connection or its slot's lock (which
  -- would keep that run's engine waiting, or its slot taken, for as long as
  -- it waits). Checked: without esb_child_close_all_but in warm_child, it
  -- held 12 fds: the control socket, the state file, the session's cgroups'
  -- and uid slot's locks, the signalfd; and made while a run went on, that
  -- run's connection too: its engine never saw its end (the case hung).
  it("is started by a pid 1 made ahead, which holds nothing of the holder's but its socket", function()
    local s = create()
    local _, code, err = run(s.id, "true")
    assert.are.equal(0, code, err)
    -- Made once the run has ended, and the run's own pid 1, which ends
    -- after its word (its fds closed first), reaped: polled until the one
    -- child left holds an fd (an interlock on the processes, capped at 30 s).
    local children
    local function fds_of(pid)
      local p = io.popen("for f in /proc/" .. pid .. "/fd/*; do readlink \"$f\"; done 2>/dev/null")
      local fds = p:read("a")
      p:close()
      return fds
    end
    for _ = 1, 3000 do
      children = {}
      for pid in (session.read(("/proc/%d/task/%d/children"):format(s.pid, s.pid)) or ""):gmatch("%d+") do
        children[#children + 1] = pid
      end
      if #children == 1 and fds_of(children[1]) ~= "" then break end
      env.sleep(0.01)
    end
    assert.are.equal(1, #children, "the holder's children: " .. table.concat(children, " "))
    local warm = children[1]
    local status = session.read("/proc/" .. warm .. "/status")
    assert.truthy(status:match("\nNSpid:[^\n]*\t1\n"), "pid 1 of a namespace of its own: " .. status)
    local holder_mnt, warm_mnt -- its own once it made it (after it closed the holder's fds): polled
    for _ = 1, 3000 do
      local ns = io.popen("readlink /proc/" .. s.pid .. "/ns/mnt /proc/" .. warm .. "/ns/mnt")
      holder_mnt, warm_mnt = ns:read("l"), ns:read("l")
      ns:close()
      if holder_mnt ~= warm_mnt then break end
      env.sleep(0.01)
    end
    assert.are_not.equal(holder_mnt, warm_mnt, "a mount namespace of its own")
    local fds = fds_of(warm)
    assert.truthy(fds:match("^socket:%[%d+%]\n$"), "its fds: " .. fds)
    remove(s)
  end)

  -- The pid 1 made ahead is a process of the session's budget: it is made
  -- only while nothing goes on, so a run has all it had before (the holder,
  -- its pid 1, then the program's: four here). Checked: with the next one
  -- made as soon as a run took the last (while the run goes on), the shell
  -- could not fork ("Cannot fork"), each of three times.
  it("has the session's process budget as before, the pid 1 made ahead its own", function()
    local s = create("--memory", "128Mi", "--max-processes", "4")
    for _ = 1, 3 do
      local r, code, err = run(s.id, "true & wait; echo ok")
      assert.are.equal(0, code, err .. cjson.encode(r))
      assert.are.equal("ok\n", r.stdout)
    end
    remove(s)
  end)

  -- The engine of a run is killed during it: the holder ends the run (its
  -- connection closed), and the run's cgroups, which that engine would
  -- have removed, go with the session's at rm. Checked: with rm removing
  -- only the session's own cgroups (not what is below them), the session's
  -- memory cgroup was left (busy with the run's below it).
  it("leaves no cgroup of a run whose engine was killed during it", function()
    if not env.cgroups_available() then
      pending("no cgroups here: " .. select(2, env.cgroup_host()))
      return
    end
    local s = create("--memory", "128Mi")
    local sleep = env.unique_seconds(300)
    local pid, wait = start_until_up(s.id, "sleep " .. sleep)
    assert(os.execute("kill -KILL " .. pid))
    assert.are.equal(137, wait())
    assert.is_true(#session.cgroups_below(s.id) > 0, "the killed engine's run left its cgroups")
    for _ = 1, 3000 do
      if not env.running { "sleep", sleep } then break end
      env.sleep(0.01)
    end
    assert.is_false(env.running { "sleep", sleep })
    remove(s)
  end)

  -- Run a fills its pids budget and waits (no fork left: builtins only);
  -- b, side by side, starts processes of its own all the same.
  -- Checked: with RLIMIT_NPROC left on the runs beside their pids cgroups
  -- (it counts per uid, so the whole session's), b's shell could not fork
  -- ("Cannot fork", exit 2).
  it("has a pids budget of its own: a run that holds all of its processes leaves the next its own", function()
    local s = create("--memory", "256Mi", "--max-processes", "64")
    local wait = session.run_in_background(s.id, "sh -c 'while :; do sleep 300 & done' 2>/dev/null; " ..
                                           ": > a-full; while [ ! -e b-done ]; do :; done; echo a",
                                           { "--max-processes", "6" })
    -- b's shell and a pipeline of four at once: 6 of b's own 8, and more
    -- than the 8 that a's and b's would be together
    local r, code, err = run(s.id, "while [ ! -e a-full ]; do sleep 0.01; done; " ..
                                   "for i in 1 2 3; do echo x | cat | cat | cat >/dev/null || exit 1; done; " ..
                                   "echo b; : > b-done", { "--max-processes", "8", "--timeout", "30" })
    assert.are.equal(0, code, err .. cjson.encode(r))
    assert.are.equal("b\n", r.stdout)
    local status, a = wait()
    assert.are.equal(0, status)
    assert.are.equal("a\n", a.stdout)
    remove(s)
  end)

  -- Run a is OOM-killed (the session's memory limit); run b, beside it,
  -- dies of its own SIGKILL once a's allocation is over. Checked: with the
  -- OOM count read from the session's cgroup (make_run_cgroups taken out),
  -- b was said oom_killed too.
  it("says oom_killed of the run the OOM killer took, not of a run beside it", function()
    if not env.cgroups_available() then
      pending("no cgroups here: " .. select(2, env.cgroup_host()))
      return
    end
    local s = create("--memory", "96Mi")
    local wait = session.run_in_background(s.id, "while [ ! -e b-up ]; do sleep 0.01; done; " ..
                                           "python3 -c 'b = b\"x\" * (400 << 20)'; s=$?; : > a-done; exit $s")
    local r = run(s.id, ": > b-up; while [ ! -e a-done ]; do sleep 0.01; done; kill -KILL $$",
                  { "--timeout", "30" })
    local _, a = wait()
    assert.are.equal("oom_killed", a.status, cjson.encode(a))
    assert.are.equal("signaled", r.status, cjson.encode(r))
    assert.are.equal(9, r.signal)
    r = run(s.id, "kill -KILL $$")
    assert.are.equal("signaled", r.status)
    assert.are.equal("alive", cjson.decode((session.cli { "session", "show", s.id, "--json" })).state)
    remove(s)
  end)

  -- The holder's /proc files (mem, environ) are root's, not its uid's,
  -- whose the runs' processes are too: a second layer (they cannot see it,
  -- and it holds capabilities they lack). As root with a uid of the
  -- session's own, the change of ids makes it so already; an engine of
  -- another uid is where the prctl is the one to: the case runs as nobody.
  -- Checked: without PR_SET_DUMPABLE 0, /proc/PID/environ was 65534's.
  it("keeps its holder undumpable", function()
    if not env.is_root() then
      pending("needs root, to make a session as nobody")
      return
    end
    -- A checkout under a home of mode 0700 (/root, as in .ci/pristine)
    -- is out of nobody's reach: its CLI cannot be started as nobody.
    if not os.execute("setpriv --reuid=65534 --regid=65534 --clear-groups test -x " .. env.quote(env.cli)) then
      pending("uid 65534 cannot reach the CLI at " .. env.cli .. " (a parent directory it cannot enter)")
      return
    end
    local home = os.tmpname()
    os.remove(home)
    assert(os.execute("mkdir -m 700 " .. home .. " && chown 65534:65534 " .. home))
    finally(function() assert(os.execute("rm -rf " .. env.quote(home))) end)
    local as_nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups env ECHO_SANDBOX_SESSION_DIR=" ..
                      env.quote(home .. "/sessions")
    local out, err, code = env.cli_run({ "session", "create", "--json" }, nil, as_nobody)
    assert.are.equal(0, code, err)
    local s = cjson.decode(out)
    local p = assert(io.popen("stat -c %u /proc/" .. math.tointeger(s.pid) .. "/environ"))
    local owner = p:read("l")
    p:close()
    _, err, code = env.cli_run({ "session", "rm", s.id }, nil, as_nobody)
    assert.are.equal(0, code, err)
    assert.are.equal("0", owner)
  end)
end)
