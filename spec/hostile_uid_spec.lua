-- Runs against the host's per-user kernel counters and against each other:
-- each live run has a host uid of its own (engine/runtime/uid_slot.h), its user
-- namespace is made as that uid (engine/sandbox/clone.h: esb_owner_enter), and the
-- namespace's own limits hold it below the host's (sandbox_child.c:
-- limit_namespace). Each spec names the defence it checks; each was seen
-- to fail with that defence taken out (the comment says how).
local env = require "spec.support.env"
local cjson = require "cjson"

-- The default policy's range (policies/default.lua).
local first, count = 1879048192, 65536

-- Takes what it can of inotify instances (up to 1000) and POSIX message
-- queues (up to 64), says so in /interlock/NAME, and holds them until
-- /interlock/go is there; then prints what it took and why it stopped.
local hog = [[
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
fds, queues, why = [], 0, {}
for i in range(1000):
    fd = libc.inotify_init()
    if fd < 0:
        why['inotify'] = ctypes.get_errno(); break
    fds.append(fd)
for i in range(64):
    q = libc.mq_open(b'/hog%d' % i, os.O_CREAT | os.O_RDWR, 0o600, None)
    if q < 0:
        why['mq'] = ctypes.get_errno(); break
    queues += 1
name = sys.argv[1]
with open('/interlock/%s.tmp' % name, 'w') as f:
    f.write('%d %d\n' % (len(fds), queues))
os.rename('/interlock/%s.tmp' % name, '/interlock/%s' % name)
while not os.path.exists('/interlock/go'):
    time.sleep(0.01)
print(len(fds), queues, why.get('inotify'), why.get('mq'))
]]

-- One inotify instance and one message queue, as anyone would take them.
local probe = [[
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init()
print('inotify', 'ok' if fd >= 0 else ctypes.get_errno())
name = b'/esb-probe-%d' % os.getpid()
q = libc.mq_open(name, os.O_CREAT | os.O_RDWR, 0o600, None)
print('mq', 'ok' if q >= 0 else ctypes.get_errno())
if q >= 0:
    libc.mq_unlink(name)
]]

local function probe_on_host()
  local ok, out = env.sh("python3 -c " .. env.quote(probe))
  assert(ok, out)
  return out
end

-- The host's view of the process whose command line ends with token:
-- its pid and its real uid there.
local function find(token)
  for _ = 1, 1000 do
    local p = io.popen("grep -l -a -- " .. env.quote(token) .. " /proc/[0-9]*/cmdline 2>/dev/null")
    for path in p:lines() do
      local pid = path:match("^/proc/(%d+)/")
      local f = pid and io.open("/proc/" .. pid .. "/status")
      local status = f and f:read("a")
      if f then f:close() end
      local uid = status and status:match("\nUid:%s+(%d+)")
      if uid and status:match("^Name:%s+python3") then
        p:close()
        return tonumber(pid), tonumber(uid)
      end
    end
    p:close()
    env.sleep(0.01)
  end
  error("no process of " .. token)
end

-- Whether the engine is root with namespaces here (else the spec is
-- pending: an engine that is not root runs every run as itself).
local function root_with_namespaces()
  if env.is_root() and env.isolation ~= "rlimits" then return true end
  pending("needs root and namespaces")
  return false
end

describe("a run against the host's per-user counters and the other runs", function()
  env.check_leaks()
  local dir, policy

  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -m 1777 " .. dir))
    policy = env.policy_file(([[
policy.local_sandbox.mounts[#policy.local_sandbox.mounts + 1] = { host = %q, path = "/interlock", writable = true }]]):format(dir))
  end)

  -- Runs still held when a spec failed are let go and waited for here.
  local waiting = {}

  after_each(function()
    env.write_file(dir .. "/go", "")
    for _, wait in ipairs(waiting) do pcall(wait) end
    waiting = {}
    os.execute("rm -rf " .. dir)
    os.remove(policy)
  end)

  -- Starts a run of request in the background; returns a function that
  -- waits for it and returns its result.
  local function start(request, policy_path)
    local req, out = os.tmpname(), os.tmpname()
    env.write_file(req, cjson.encode(request))
    local wait = env.in_background(("%s %s run --json --policy %s <%s >%s 2>&1"):format(
      env.cli_prefix, env.quote(env.cli), env.quote(policy_path or policy), req, out))
    local result, done
    local function finish()
      if done then return result end
      done = true
      local code = wait()
      local text = env.read_file(out)
      os.remove(req)
      os.remove(out)
      local ok, decoded = pcall(cjson.decode, text)
      assert(ok and code == 0, text)
      result = decoded
      return result
    end
    waiting[#waiting + 1] = finish
    return finish
  end

  local function held(name)
    local path = dir .. "/" .. name
    for _ = 1, 3000 do
      local f = io.open(path)
      if f then
        local text = f:read("a")
        f:close()
        return text
      end
      env.sleep(0.01)
    end
    error("the run never held what it took")
  end

  local function hog_run(name)
    local token = ("esb-hog-%s-%d"):format(name, math.random(1, 1e9))
    local wait = start { program = "python3", args = { "-c", hog, name, token }, timeout_ms = 60000 }
    return wait, token
  end

  -- Defences: each run's user namespace is made as its own host uid
  -- (esb_owner_enter in the fork server, the init's unshare and the
  -- engine's clone), so its inotify instances and queue bytes are counted
  -- against that uid, not root's; and its namespace's own
  -- max_inotify_instances (64). Checked: with the namespace made as root
  -- (esb_owner_enter a no-op), the two runs took root's 128 instances and
  -- root's inotify_init on the host failed with EMFILE (24), and the
  -- second run got no message queue at all (the first had taken root's
  -- RLIMIT_MSGQUEUE); without the namespace's limit each run took 128.
  it("leaves inotify and message queues to root and to a third run while two runs hold all they can", function()
    if not root_with_namespaces() then return end
    local wait_a, token_a = hog_run("a")
    local wait_b, token_b = hog_run("b")
    local took_a, took_b = held("a"), held("b")
    local _, uid_a = find(token_a)
    local _, uid_b = find(token_b)
    local on_host = probe_on_host()
    local r = env.run_json { program = "python3", args = { "-c", probe } }
    env.write_file(dir .. "/go", "")
    local a, b = wait_a(), wait_b()
    assert.are.equal("inotify ok\nmq ok\n", on_host)
    assert.are.equal(0, r.exit_code, r.stderr)
    assert.are.equal("inotify ok\nmq ok\n", r.stdout)
    -- each took its namespace's 64 instances and the queues its
    -- RLIMIT_MSGQUEUE allows (nine of the default size under the default
    -- 800 KiB), each refused past that with EMFILE (24)
    for _, took in ipairs { took_a, took_b } do
      assert.truthy(took:match("^64 [1-9]%d*\n$"), took)
    end
    assert.are.equal((took_a:gsub("\n", " 24 24\n")), a.stdout, a.stderr)
    assert.are.equal((took_b:gsub("\n", " 24 24\n")), b.stdout, b.stderr)
    -- two live runs, two host uids, both of the policy's range
    assert.are_not.equal(uid_a, uid_b)
    for _, uid in ipairs { uid_a, uid_b } do
      assert.is_true(uid >= first and uid < first + count, tostring(uid))
    end
  end)

  -- Defence: an "rlimits" run runs as a host uid of its own too
  -- (backend/local.c: own_host_ids). Checked: with the policy's one uid
  -- for every run (uid_range = false), the rlimits run's kill(pid, 0)
  -- reached the namespaced run's program.
  it("cannot signal a namespaced run's program from an rlimits run", function()
    if not root_with_namespaces() then return end
    local wait, token = hog_run("c")
    held("c")
    local pid = find(token)
    local rlimits = env.policy_file("policy.local_sandbox.isolation = 'rlimits'")
    local kill = "import os, sys\ntry:\n    os.kill(int(sys.argv[1]), 0); print('signalled')\n" ..
                 "except PermissionError:\n    print('EPERM')"
    local r = env.run_json({ program = "python3", args = { "-c", kill, tostring(pid) } }, { "--policy", rlimits })
    os.remove(rlimits)
    env.write_file(dir .. "/go", "")
    wait()
    assert.are.equal(0, r.exit_code, r.stderr)
    assert.are.equal("EPERM\n", r.stdout)
  end)

  -- Defence: each run holds its uid until its end; a range with none free
  -- fails the run at once, saying so. Checked: without the lock, the
  -- second run of a one-uid range ran (as the first's uid) instead.
  it("refuses a run when every uid of the range is held, and says why", function()
    if not root_with_namespaces() then return end
    local one = os.tmpname()
    env.write_policy(one, ([[
policy.local_sandbox.mounts[#policy.local_sandbox.mounts + 1] = { host = %q, path = "/interlock", writable = true }
policy.local_sandbox.uid_range = { first = %d, count = 1 }]]):format(dir, first + count))
    local token = ("esb-hog-d-%d"):format(math.random(1, 1e9))
    local wait = start({ program = "python3", args = { "-c", hog, "d", token } }, one)
    held("d")
    local _, uid = find(token)
    local r, code = env.run_json({ shell = "true" }, { "--policy", one })
    env.write_file(dir .. "/go", "")
    wait()
    local again = env.run_json({ shell = "true" }, { "--policy", one })
    os.remove(one)
    assert.are.equal(first + count, uid)
    assert.are.equal("error", r.status)
    assert.are.equal(125, code)
    assert.truthy(r.error.message:find("every uid of the policy's uid_range (1 from " .. (first + count), 1, true),
                  r.error.message)
    assert.are.equal(0, again.exit_code, again.stderr) -- given back at the run's end
  end)

  -- Defence: esb_uid_slot_end_processes (engine/runtime/uid_slot.h), for a run
  -- without a pid namespace. Checked: without it, the process an rlimits
  -- run without cgroups left behind lived on as the uid the next run was
  -- given, and could signal that run or read its environment.
  it("ends what a run without a pid namespace left behind before its uid is given again", function()
    if not root_with_namespaces() then return end
    local token = ("esb-left-%d"):format(math.random(1, 1e9))
    local path = env.policy_file(([[
policy.local_sandbox.isolation = "rlimits"
policy.local_sandbox.cgroups = false
policy.local_sandbox.uid_range = { first = %d, count = 1 }]]):format(first + count + 1))
    local left = ("setsid python3 -c 'import time; time.sleep(60)' %s </dev/null >/dev/null 2>&1 & echo started")
    local r = env.run_json({ shell = left:format(token) }, { "--policy", path })
    os.remove(path)
    assert.are.equal("started\n", r.stdout, r.stderr)
    local found
    for _ = 1, 500 do -- SIGKILL was sent before the CLI ended; its death may take a moment
      -- "[e]sb-left": the pattern does not match the shell that runs grep
      local p = io.popen("grep -l -a -e " .. env.quote("[e]" .. token:sub(2)) ..
                         " /proc/[0-9]*/cmdline 2>/dev/null")
      found = p:read("a")
      p:close()
      if found == "" then break end
      env.sleep(0.01)
    end
    assert.are.equal("", found)
  end)

  -- Defence: the engine takes the run's uid on its cloning thread only
  -- and gives it back after the clone, with the securebits, and the
  -- dumpable flag and parent-death signal the kernel reset
  -- (engine/sandbox/clone.h: esb_owner_leave). The Lua module clones in the
  -- process that loaded it (this one). Checked: without esb_owner_leave,
  -- this process's effective uid was the run's after the run.
  it("leaves the process that embeds the engine its own ids and capabilities", function()
    if not root_with_namespaces() then return end
    local sbx = require "echo_sandbox"
    local function ids()
      local status = env.read_file("/proc/self/status")
      return table.concat({ status:match("\n(Uid:[^\n]*)"), status:match("\n(Gid:[^\n]*)"),
                            status:match("\n(CapEff:[^\n]*)") }, "\n")
    end
    local before = ids()
    local r = assert(sbx.run { shell = "cat /proc/self/uid_map" })
    assert.are.equal(0, r.exit_code, r.stderr)
    local outer = tonumber(r.stdout:match("^%s*%d+%s+(%d+)"))
    assert.is_true(outer >= first and outer < first + count, r.stdout)
    assert.are.equal(before, ids())
  end)

  -- Defence: a cgroup namespace for every namespaced run, made once it is
  -- in its cgroups (sandbox_child.c: enter_cgroup_namespace). Checked:
  -- without it, /proc/self/cgroup named the host's paths of the run's
  -- cgroups (with the engine's pid).
  it("sees its cgroups as /, not the host's paths", function()
    if env.isolation == "rlimits" then
      pending("needs namespaces")
      return
    end
    local r = env.run_json { shell = "cat /proc/self/cgroup" }
    assert.are.equal(0, r.exit_code, r.stderr)
    assert.truthy(r.stdout:find("\n", 1, true), r.stdout)
    for line in r.stdout:gmatch("[^\n]+") do
      assert.truthy(line:match(":/$"), r.stdout)
    end
  end)
end)
