-- echo-sandbox-init's fork server (src/engine/sandbox/fork_server.h): a daemon's
-- sandboxes are forked by one server of the daemon's own instead of an
-- exec each; a server that is killed is replaced at the next run, and none
-- outlives the daemon. The server keeps templates of the runs' roots
-- (src/engine/sandbox/rootfs.h): each run gets a read-only copy and writable
-- mounts of its own; the policy's small read-only mounts are copied into
-- the template (src/engine/sandbox/rootfs_copy.h), which the server drops
-- when the host's tree changes, and the others are bound by each run, so a
-- host file replaced is seen by the next run either way.
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
    env.sleep(0.01)
  end
  return false
end

-- The templates a server holds: the mounts of its hub (on /sys in its
-- own mount namespace) named t<N>.
local function templates_of(server)
  local found = {}
  for line in (proc_file("/proc/" .. server .. "/mountinfo") or ""):gmatch("[^\n]+") do
    local point = line:match("^%S+ %S+ %S+ %S+ (%S+)")
    if point and point:match("^/sys/t%d+$") then found[#found + 1] = point end
  end
  return found
end

local function run_shell(d, script)
  local status, result = daemon.request(d, "POST", "/v1/run", cjson.encode { shell = script })
  assert.are.equal(200, status)
  return result
end

local function run_true(d)
  local status, result = daemon.request(d, "POST", "/v1/run", cjson.encode { program = "/bin/echo",
    args = { "ran" } })
  assert.are.equal(200, status)
  assert.are.equal("ran\n", result.stdout)
  assert.are.equal(0, math.tointeger(result.exit_code))
end

-- Runs body(d, dir) against a daemon of its own: with the policy lines
-- given (formatted with dir, a temp dir of the spec's own, made by setup
-- when given) and the environment prefix; then stops the daemon and
-- removes the policy and dir, whatever body did.
local function with_daemon(o, body)
  local dir = os.tmpname()
  os.remove(dir)
  if o.dir_in then dir = o.dir_in .. "/" .. dir:match("[^/]+$") end
  assert(os.execute("mkdir " .. dir))
  if o.setup then o.setup(dir) end
  local policy = o.policy and env.policy_file(o.policy:gsub("DIR", dir))
  local d = daemon.start(policy and ("--policy " .. env.quote(policy)), nil, o.prefix)
  local ok, err = pcall(body, d, dir)
  daemon.stop(d)
  if policy then os.remove(policy) end
  os.execute("rm -rf " .. dir)
  assert(ok, err)
  return d
end

describe("the init's fork server", function()
  env.check_leaks()
  if env.isolation ~= "namespaces" then
    pending("the specs run with isolation " .. env.isolation .. ": no init program is used")
    return
  end

  it("forks a daemon's sandboxes from one server; a killed one is replaced at the next run; none outlives the daemon", function()
    local server
    with_daemon({}, function(d)
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
      server = second[1]
    end)
    assert.is_true(gone(server), "the server ended with the daemon")
  end)

  it("gives each run a read-only copy of one template: what a run writes is not in the next", function()
    with_daemon({}, function(d)
      local first = run_shell(d, "touch /tmp/left /dev/shm/left /work/left && echo wrote; " ..
        "for f in /x /dev/x /etc/x /usr/x; do touch $f 2>/dev/null && echo wrote $f; done; true")
      assert.are.equal("wrote\n", first.stdout, first.stderr)
      local server = servers_of(d.pid)[1]
      assert.are.equal(1, #templates_of(server), "the server holds the run's template")
      local second = run_shell(d, "ls -A /tmp /dev/shm /work; ls /dev")
      assert.are.equal("/dev/shm:\n\n/tmp:\n\n/work:\n" ..
        "fd\nfull\nnull\nptmx\npts\nrandom\nshm\nstderr\nstdin\nstdout\nurandom\nzero\n", second.stdout)
      assert.are.equal(1, #templates_of(server), "the next run of the policy used the same template")
    end)
  end)

  -- A writable mount of the policy is no part of a template: each run
  -- binds it. A read-only one is copied into the template, which the
  -- server drops at the replacement and builds anew for the next run.
  it("sees a host file the policy mounts replaced in the next run, copied or bound", function()
    with_daemon({
      setup = function(dir)
        env.write_file(dir .. "/probe", "one\n")
        env.write_file(dir .. "/rw", "one\n")
      end,
      policy = [[
local mounts = policy.local_sandbox.mounts
mounts[#mounts + 1] = { host = "DIR/probe", path = "/etc/esb-probe" }
mounts[#mounts + 1] = { host = "DIR/rw", path = "/etc/esb-rw", writable = true }]],
    }, function(d, dir)
      assert.are.equal("one\none\n", run_shell(d, "cat /etc/esb-probe /etc/esb-rw").stdout)
      -- replaced as package managers and ldconfig do: a new file renamed over
      for _, name in ipairs { "probe", "rw" } do
        env.write_file(dir .. "/" .. name .. ".new", "two\n")
        assert(os.rename(dir .. "/" .. name .. ".new", dir .. "/" .. name))
      end
      assert.are.equal("two\ntwo\n", run_shell(d, "cat /etc/esb-probe /etc/esb-rw").stdout)
      assert.are.equal(1, #templates_of(servers_of(d.pid)[1]))
    end)
  end)

  -- Where a run's root is copied rather than bound, whether it was shows
  -- in the run's mount table.
  local function mounted(d, path)
    return run_shell(d, "grep -c ' " .. path .. " ' /proc/self/mountinfo; true").stdout ~= "0\n"
  end

  -- Defence: the server watches a copy's host tree from before the copy
  -- and drops the template at a change (fork_server.c, drop_changed).
  -- Checked: without drop_changed, the runs after the append and after the
  -- new file saw "one" and "f" only.
  it("copies a small read-only mount into the template, and a change of the host's tree reaches the next run", function()
    with_daemon({
      setup = function(dir)
        assert(os.execute(("mkdir -p %s/tree/sub"):format(dir)))
        env.write_file(dir .. "/tree/sub/f", "one\n")
      end,
      policy = [[
local mounts = policy.local_sandbox.mounts
mounts[#mounts + 1] = { host = "DIR/tree", path = "/etc/esb-tree" }]],
    }, function(d, dir)
      assert.are.equal("one\n", run_shell(d, "cat /etc/esb-tree/sub/f").stdout)
      assert.is_false(mounted(d, "/etc/esb-tree"), "copied, not bound")
      local f = assert(io.open(dir .. "/tree/sub/f", "a"))
      f:write("two\n")
      f:close()
      assert.are.equal("one\ntwo\n", run_shell(d, "cat /etc/esb-tree/sub/f").stdout)
      env.write_file(dir .. "/tree/sub/new", "three\n")
      assert.are.equal("f\nnew\n", run_shell(d, "ls /etc/esb-tree/sub").stdout)
      assert.are.equal(1, #templates_of(servers_of(d.pid)[1]), "the changed template was dropped")
    end)
  end)

  -- A copy is owned by the ids the template is made for: a run's own
  -- where the policy gives runs no host uid of their own (uid_range =
  -- false), so the modes of what others may not read must not become the
  -- owner's (rootfs_copy.c, mode_shown: others' bits for all three, and no
  -- content). Checked: with mode_shown keeping every mode, the run without
  -- a uid of its own read secret (empty) and listed private.
  for _, ids in ipairs { { "a host uid of its own", "" },
                         { "the policy's uid", "policy.local_sandbox.uid_range = false" } } do
  it("gives a copy the access the host's files give a run with " .. ids[1] .. ": what others may not read stays unreadable", function()
    with_daemon({
      setup = function(dir)
        assert(os.execute(("mkdir -p %s/tree/private && chmod 0700 %s/tree/private"):format(dir, dir)))
        env.write_file(dir .. "/tree/open", "open\n")
        env.write_file(dir .. "/tree/secret", "secret\n")
        env.write_file(dir .. "/tree/private/key", "key\n")
        assert(os.execute(("chmod 0600 %s/tree/secret"):format(dir)))
      end,
      policy = ids[2] .. [[

local mounts = policy.local_sandbox.mounts
mounts[#mounts + 1] = { host = "DIR/tree", path = "/etc/esb-tree" }]],
    }, function(d)
      local result = run_shell(d, "cd /etc/esb-tree && cat open; cat secret; ls private; cat private/key; true")
      assert.are.equal("open\n", result.stdout)
      assert.are.equal("cat: secret: Permission denied\nls: cannot open directory 'private': Permission denied\n" ..
        "cat: private/key: Permission denied\n", result.stderr)
      assert.is_false(mounted(d, "/etc/esb-tree"), "copied, not bound")
    end)
  end)
  end

  it("binds a read-only mount it cannot copy (a fifo in it) in each run", function()
    with_daemon({
      setup = function(dir)
        assert(os.execute(("mkdir -p %s/tree && mkfifo %s/tree/fifo"):format(dir, dir)))
        env.write_file(dir .. "/tree/f", "one\n")
      end,
      policy = [[
local mounts = policy.local_sandbox.mounts
mounts[#mounts + 1] = { host = "DIR/tree", path = "/etc/esb-tree" }]],
    }, function(d)
      assert.are.equal("one\n", run_shell(d, "cat /etc/esb-tree/f").stdout)
      assert.is_true(mounted(d, "/etc/esb-tree"), "bound")
    end)
  end)

  it("builds no template through a symlink of the root, which would lead its builder to the host's paths", function()
    -- /link is the policy's absolute symlink to a host directory anyone may
    -- write; a mount below it must not be made there
    with_daemon({
      setup = function(dir)
        assert(os.execute(("mkdir -p %s/target %s/data && chmod 0777 %s/target && ln -s %s/target %s/link")
          :format(dir, dir, dir, dir, dir)))
      end,
      policy = [[
local mounts = policy.local_sandbox.mounts
mounts[#mounts + 1] = { host = "DIR/link", path = "/link" }
mounts[#mounts + 1] = { host = "DIR/data", path = "/link/sub" }]],
    }, function(d, dir)
      local result = run_shell(d, "true")
      assert.are.equal("error", result.status, cjson.encode(result))
      assert.are.same({}, templates_of(servers_of(d.pid)[1]))
      assert.is_nil(io.open(dir .. "/target/sub"), "a directory was made on the host")
    end)
  end)

  -- With isolation best_effort too: the refusal is the policy's error, not
  -- a host that refuses namespaces. Checked: when a start's errno alone
  -- (EINVAL) said so, isolation namespaces answered sandbox_setup, "this
  -- host refuses the namespaces", and best_effort ran the program with
  -- isolation "rlimits", without the mount, saying nothing.
  it("refuses a policy that mounts the host's /proc or /sys, naming it", function()
    for _, host in ipairs { "/proc/1", "/sys", "/sys/fs/cgroup" } do
      for _, isolation in ipairs { "namespaces", "best_effort" } do
        local policy = env.policy_file(([[
policy.local_sandbox.isolation = %q
policy.local_sandbox.mounts[#policy.local_sandbox.mounts + 1] = { host = %q, path = "/mnt/host" }]]):format(isolation,
          host))
        local out, err, code = env.cli_run({ "run", "--json", "--policy", policy, "--", "/bin/true" })
        os.remove(policy)
        local result = cjson.decode(out)
        assert.are_not.equal(0, code)
        assert.are.equal("error", result.status, out)
        assert.are.equal("policy_error", result.error.code, out)
        assert.are.equal("mount " .. host .. ": the host's /proc and /sys are no part of a sandbox",
                         result.error.message, result.error.message .. (err or ""))
      end
    end
  end)

  it("says why when the init program cannot be executed, the server's start or each run's exec", function()
    local program = os.tmpname()
    env.write_file(program, "not a program\n")
    os.execute("chmod +x " .. program)
    for _, prefix in ipairs { "", "ECHO_SANDBOX_FORK_SERVER=0 " } do
      local out = env.cli_run({ "run", "--json", "--", "/bin/true" }, nil, prefix .. "ECHO_SANDBOX_INIT=" .. program)
      local result = cjson.decode(out)
      assert.are.equal("sandbox setup failed (start echo-sandbox-init): Exec format error",
        result.error and result.error.message, out)
    end
    os.remove(program)
  end)

  -- A setup: dir/secret/f, which no policy mounts, and dir/NAME/f ("one").
  local function secret_beside(name)
    return function(dir)
      assert(os.execute(("mkdir -p %s/secret %s/%s"):format(dir, dir, name)))
      env.write_file(dir .. "/secret/f", "the secret\n")
      env.write_file(dir .. "/" .. name .. "/f", "one\n")
    end
  end

  -- The engine keeps what lstat says of the policy's host paths from one
  -- plan to the next (src/engine/sandbox/host_paths.h), and drops it when
  -- the host tells of a change. A kept "directory" or "file" for what is a
  -- symlink now would bind the symlink's target (a bind follows it): here
  -- a secret outside the policy's paths. Checked: with esb_host_paths_begin
  -- never dropping what it kept, the second run read "the secret", and the
  -- path made since was not there.
  it("sees a host path of the policy turned into a symlink in the next run as that symlink, not its target", function()
    with_daemon({
      dir_in = "/var/tmp", -- where no other process's files drop what was kept
      setup = secret_beside("probe"),
      policy = [[
local mounts = policy.local_sandbox.mounts
mounts[#mounts + 1] = { host = "DIR/probe", path = "/etc/esb-probe", writable = true }
mounts[#mounts + 1] = { host = "DIR/later", path = "/etc/esb-later" }]],
    }, function(d, dir)
      local script = "readlink /etc/esb-probe; cat /etc/esb-probe/f /etc/esb-later 2>/dev/null; true"
      assert.are.equal("one\n", run_shell(d, script).stdout)
      assert(os.rename(dir .. "/probe", dir .. "/probe.old"))
      -- relative: under the host's root the bind would find the target
      assert(os.execute(("ln -s secret %s/probe"):format(dir)))
      env.write_file(dir .. "/later", "later\n")
      assert.are.equal("secret\nlater\n", run_shell(d, script).stdout)
    end)
  end)

  -- A mount on a path's directory changes what the path is without a
  -- word to inotify: the mount table's change drops what was kept. (In
  -- /var/tmp, as above: what others make in /tmp, a watched directory
  -- above, would drop it anyway.) Checked: without the poll of
  -- /proc/self/mountinfo, the second run read "one" (the file under the
  -- mount, as the fork server's namespace sees it here; where it sees the
  -- mount, a bind of the symlink follows it).
  it("sees a host path below a directory mounted over since the last run as what the mount holds", function()
    local mounted_at
    with_daemon({
      dir_in = "/var/tmp",
      setup = secret_beside("m"),
      policy = [[
local mounts = policy.local_sandbox.mounts
mounts[#mounts + 1] = { host = "DIR/m/f", path = "/etc/esb-m", writable = true }]],
    }, function(d, dir)
      local script = "readlink /etc/esb-m; cat /etc/esb-m 2>/dev/null; true"
      assert.are.equal("one\n", run_shell(d, script).stdout)
      assert(os.execute(("mount -t tmpfs -o size=64k esb-spec %s/m"):format(dir)))
      mounted_at = dir .. "/m"
      local ok, err = pcall(function()
        assert(os.execute(("ln -s ../secret/f %s/m/f"):format(dir)))
        assert.are.equal("../secret/f\n", run_shell(d, script).stdout)
      end)
      assert(os.execute("umount " .. mounted_at))
      assert(ok, err)
    end)
  end)

  -- An ignored signal stays ignored across exec: the server, exec'd by an
  -- engine that ignores some (the CLI ignores SIGPIPE), sets them all to
  -- SIG_DFL once at its start, and each run it forks leaves them so
  -- (sandbox_child.c, esb_child_reset_dispositions_once). Checked: with the
  -- server only saying it had (no reset), the program's SigIgn had HUP, INT
  -- and PIPE. (glibc's own signals, 32 and 33, are not ours to reset.)
  it("starts each run's program with none of the engine's ignored signals ignored", function()
    local request = cjson.encode { program = "/bin/grep", args = { "^SigIgn", "/proc/self/status" } }
    local out, err, code = env.cli_run({ "batch", "-j", "1" }, request .. "\n" .. request .. "\n",
                                       "trap '' HUP INT PIPE;")
    assert.are.equal(0, code, err)
    local n = 0
    for line in out:gmatch("[^\n]+") do
      local ignored = assert(tonumber(cjson.decode(line).stdout:match("^SigIgn:%s*(%x+)\n$"), 16), line)
      assert.are.equal(0, ignored & 0xffffffff & ~(3 << 31), line) -- 1 to 31 (HUP 0x1, INT 0x2, PIPE 0x1000)
      n = n + 1
    end
    assert.are.equal(2, n, out)
  end)

  it("is not started with ECHO_SANDBOX_FORK_SERVER=0: every run execs the init program", function()
    with_daemon({ prefix = "ECHO_SANDBOX_FORK_SERVER=0" }, function(d)
      run_true(d)
      assert.are.same({}, servers_of(d.pid))
    end)
  end)
end)
