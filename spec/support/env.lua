-- Shared by the specs: where the build is, how to run the CLI, and the leak
-- check every spec that starts a process runs after itself.
local assert = require "luassert"
local M = {}

M.build = os.getenv("ESB_BUILD_DIR") or "build"
-- $ESB_CLI: another build of the CLI, in that build dir (the CI's valgrind
-- step takes echo-sandbox-dynamic: valgrind cannot follow a static one's
-- malloc).
M.cli = os.getenv("ESB_CLI") or M.build .. "/echo-sandbox"
-- The CLI a library can be preloaded into: a static CLI takes none, so its
-- twin of the same objects linked dynamically, where the build has one.
M.cli_dynamic = M.build .. "/echo-sandbox-dynamic"
do
  local f = io.open(M.cli_dynamic)
  if f then f:close() else M.cli_dynamic = M.cli end
end
M.helper = M.build .. "/esb-spec-helper"
-- The build's init program: named in ECHO_SANDBOX_INIT, `run` starts its one
-- sandbox in it too (else the engine clones it itself: src/cli/run.c).
M.init = M.build .. "/echo-sandbox-init"
-- Put before the CLI in every spec that runs it: the CI's ASan and valgrind
-- steps wrap the CLI this way.
M.cli_prefix = os.getenv("ESB_CLI_PREFIX") or ""
-- Under a wrapper (valgrind) the CLI runs many times slower.
M.wrapped = M.cli_prefix:find("%S") ~= nil
-- The kubectl builds the k8s specs run, one per minor, each against a fake
-- API server reporting that minor: spec/support/fetch_kubectl.py puts them in
-- this cache (`bootstrap.sh test` runs it), from spec/support/kubectl-builds.txt.
-- They come first, whatever kubectl is on PATH.
local function kubectl_cache()
  local dir = os.getenv("ESB_KUBECTL_CACHE")
  if dir and dir ~= "" then return dir end
  local base = os.getenv("XDG_CACHE_HOME")
  if not base or base == "" then base = (os.getenv("HOME") or "/root") .. "/.cache" end
  return base .. "/echo-sandbox/kubectl"
end
M.kubectl_cache = kubectl_cache()

-- promtool (spec/support/fetch_promtool.sh puts it in the cache beside the
-- kubectl builds; `bootstrap.sh test` runs it), or nil.
function M.promtool()
  local base = os.getenv("XDG_CACHE_HOME")
  if not base or base == "" then base = (os.getenv("HOME") or "/root") .. "/.cache" end
  local path = base .. "/echo-sandbox/promtool/promtool"
  if os.execute("test -x " .. M.quote(path)) then return path end
end

-- Sleeps that long (seconds) in this process: the specs' waits poll, and
-- an os.execute("sleep ...") was a shell and a sleep each time (a quarter
-- of CI's CPU). lua-system comes with busted.
M.sleep = require("system").sleep

-- The minors of the matrix: $ESB_SPEC_MINORS, else the builds file's lines
-- marked for it (one minor of each way kubectl waits for a pod).
M.kubectl_minors = {}
local minors = os.getenv("ESB_SPEC_MINORS")
if not minors then
  local lines = {}
  for line in io.lines("spec/support/kubectl-builds.txt") do
    lines[#lines + 1] = line:match("^(%d+)%s+%S+%s+yes%s")
  end
  minors = table.concat(lines, " ")
end
for minor in minors:gmatch("%d+") do
  M.kubectl_minors[#M.kubectl_minors + 1] = tonumber(minor)
end

-- The kubectl of a minor, or nil and why it cannot be had.
function M.kubectl(minor)
  local dir = ("%s/1.%d"):format(M.kubectl_cache, minor)
  if os.execute("test -x " .. M.quote(dir .. "/kubectl")) then return dir .. "/kubectl" end
  local f = io.open(dir .. "/error")
  local why = f and f:read("l") or "not fetched: run spec/support/fetch_kubectl.py (bootstrap.sh test does)"
  if f then f:close() end
  return nil, ("kubectl 1.%d: %s"):format(minor, why)
end

-- In a describe block: body(minor) for each minor of the matrix whose kubectl
-- is here; for each that is not, one pending spec that says why.
local function each_minor(minors, body)
  local busted = require "busted"
  for _, minor in ipairs(minors) do
    local _, why = M.kubectl(minor)
    if why then
      busted.describe(("kubectl 1.%d"):format(minor), function() busted.pending(why) end)
    else
      body(minor)
    end
  end
end

function M.each_kubectl(body)
  each_minor(M.kubectl_minors, body)
end

-- The same for the oldest and the newest minor of the matrix alone (1.30
-- and 1.35; $ESB_SPEC_MINORS narrows it), in a file that says so for
-- spec/run ("-- spec/run: one task per minor, the oldest and the newest").
function M.oldest_and_newest_kubectl(body)
  local all = M.kubectl_minors
  each_minor({ all[1], all[#all] ~= all[1] and all[#all] or nil }, body)
end

-- Which minor runs the cases of a matrix file that do not depend on
-- kubectl's version (M.kubectl_once): $ESB_SPEC_ONCE_MINOR (spec/run names
-- the matrix's newest when it splits the file into one task per minor),
-- else the newest of the minors above.
M.kubectl_once_minor = tonumber(os.getenv("ESB_SPEC_ONCE_MINOR") or "") or M.kubectl_minors[#M.kubectl_minors]

-- In the body of env.each_kubectl, in place of describe for a block whose
-- cases kubectl's version does not change (the requests kubectl makes in
-- them are the same on every minor): describe for one minor of the matrix,
-- nothing for the others.
function M.kubectl_once(minor)
  if minor == M.kubectl_once_minor then return require("busted").describe end
  return function() end
end

-- In a describe block: body(minor) for the oldest and the newest minor of
-- the matrix (1.30 and 1.35; $ESB_SPEC_MINORS narrows it) whose kubectl is
-- here; for one that is not, a pending spec that says why.
function M.each_oldest_newest_kubectl(body)
  local all = M.kubectl_minors
  for _, minor in ipairs { all[1], all[#all] ~= all[1] and all[#all] or nil } do
    local _, why = M.kubectl(minor)
    if why then
      require("busted").describe(("kubectl 1.%d"):format(minor), function() require("busted").pending(why) end)
    else
      body(minor)
    end
  end
end

-- The newest minor of the matrix whose kubectl is here; else nil, and one
-- pending spec that says why.
function M.newest_kubectl()
  local whys = {}
  for i = #M.kubectl_minors, 1, -1 do
    local path, why = M.kubectl(M.kubectl_minors[i])
    if path then return M.kubectl_minors[i] end
    whys[#whys + 1] = why
  end
  require("busted").pending(#whys > 0 and table.concat(whys, "; ") or "no kubectl minor in ESB_SPEC_MINORS")
end

-- body(minor) with the newest minor of the matrix whose kubectl is here:
-- for a file whose requests are the same from every kubectl of the
-- matrix (it says so). Where none is here, one pending spec says why.
function M.with_newest_kubectl(body)
  local minor = M.newest_kubectl()
  if minor then body(minor) end
end

-- Policies that specs write use this isolation (the valgrind step: "rlimits").
M.isolation = os.getenv("ESB_SPEC_ISOLATION") or "namespaces"

-- Lua lines for a policy a spec writes, after `local policy = require
-- "echo_sandbox.policy.default"`: the isolation above, as
-- spec/support/rlimits_policy.lua has it.
function M.policy_isolation()
  if M.isolation ~= "rlimits" then return "" end
  return "policy.local_sandbox.isolation = 'rlimits'\npolicy.local_sandbox.open_files = nil\n" ..
    "do local limits_for = policy.limits_for\n" ..
    "function policy:limits_for(req) local l, c = limits_for(self, req); l.max_open_files = 0; return l, c end end\n"
end
package.cpath = M.build .. "/?.so;" .. package.cpath

function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
M.read_file = read_file

function M.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- Runs the CLI with args (an array), feeding stdin (a string) when given.
-- Returns stdout, stderr, exit code.
function M.cli_run(args, stdin, env_prefix)
  local parts = { env_prefix or "", M.cli_prefix, M.quote(M.cli) }
  for _, a in ipairs(args) do parts[#parts + 1] = M.quote(a) end
  local errfile, infile = os.tmpname(), os.tmpname()
  M.write_file(infile, stdin or "")
  local cmd = table.concat(parts, " ") .. " <" .. infile .. " 2>" .. errfile
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local _, _, code = p:close()
  local err = read_file(errfile)
  os.remove(errfile)
  os.remove(infile)
  return out, err, code
end

-- What cgroups the engine would make its runs' in here, as `policy explain`
-- says: { version = 1 | 2, parent = the directory of the runs' memory
-- cgroups, text = its words }, or nil and its reason where it can make
-- none (it then falls back to RLIMIT_AS). Asked once.
local cgroup_host
function M.cgroup_host()
  if cgroup_host == nil then
    local out = M.cli_run { "policy", "explain", "--json", "--", "true" }
    local text = require("cjson").decode(out)["local"].cgroup or "no cgroup: the policy turned cgroups off"
    local version, parent = text:match("^cgroup v(%d): .- below ([^%s,]+)")
    cgroup_host = version and { version = tonumber(version), parent = parent, text = text } or { text = text }
  end
  if not cgroup_host.version then return nil, cgroup_host.text end
  return cgroup_host
end

-- Whether the engine can make cgroups here: then the memory limit is a
-- cgroup's.
function M.cgroups_available()
  return M.cgroup_host() ~= nil
end

-- The cgroup hierarchy the suite expects the engine to use: 2 where the
-- runner says so (the cgroup v2 VM: $ESB_SPEC_CGROUP_VERSION), 1 as root
-- where a writable v1 memory hierarchy is mounted, else nil (no telling).
function M.expected_cgroup_version()
  local v = tonumber(os.getenv("ESB_SPEC_CGROUP_VERSION") or "")
  if v then return v end
  if M.is_root() and os.execute("test -w /sys/fs/cgroup/memory/cgroup.procs") == true then return 1 end
  return nil
end

-- A new empty directory in the task's temp dir; returns its path (the
-- caller removes it).
function M.temp_dir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. M.quote(dir)))
  return dir
end

-- Writes a policy file at path: the default policy as `policy`, the
-- isolation above, then body (Lua lines that change `policy`).
function M.write_policy(path, body)
  M.write_file(path, "local policy = require 'echo_sandbox.policy.default'\n" .. M.policy_isolation() ..
    (body or "") .. "\nreturn policy\n")
end

-- The same in a new temp file; returns its path (the caller removes it).
function M.policy_file(body)
  local path = os.tmpname()
  M.write_policy(path, body)
  return path
end

-- A directory of the host that every sandbox shares (an interlock, what a
-- run leaves): made with mode, and a policy file that mounts it writable
-- at path, after body. The caller removes both (busted keeps one finally
-- a case).
function M.shared_dir_policy(path, mode, body)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute(("mkdir -m %s %s"):format(mode, M.quote(dir))))
  return dir, M.policy_file(("%s\npolicy.local_sandbox.mounts[#policy.local_sandbox.mounts + 1] = " ..
                             "{ host = %q, path = %q, writable = true }\n"):format(body or "", dir, path))
end

-- Runs a shell command line: whether it succeeded, and its output (stderr
-- with stdout).
function M.sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return ok == true, out
end

-- Standard base64 of bytes, and the bytes of such text (base64(1)).
function M.base64(bytes)
  local path = os.tmpname()
  M.write_file(path, bytes)
  local p = assert(io.popen("base64 -w0 " .. path, "r"))
  local text = p:read("a")
  p:close()
  os.remove(path)
  return text
end

function M.unbase64(text)
  local p = assert(io.popen("printf %s " .. M.quote(text) .. " | base64 -d", "r"))
  local bytes = p:read("a")
  p:close()
  return bytes
end

-- Runs `run --json` with request (a table) on stdin and extra arguments
-- after it. Returns the decoded result, the exit code and stderr.
function M.run_json(request, extra)
  local args = { "run", "--json" }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  local out, err, code = M.cli_run(args, require("cjson").encode(request))
  local ok, result = pcall(require("cjson").decode, out)
  assert(ok, "stdout is not a JSON result: " .. out .. "\nstderr: " .. err)
  return result, code, err
end

-- Whether a process runs whose command line is exactly argv (its arguments
-- joined with NUL bytes, as /proc has it).
function M.running(argv)
  local cmdline = table.concat(argv, "\0") .. "\0"
  local ls = io.popen("ls /proc")
  for name in ls:lines() do
    local f = name:match("^%d+$") and io.open("/proc/" .. name .. "/cmdline", "rb")
    if f then
      local text = f:read("a")
      f:close()
      if text == cmdline then ls:close(); return true end
    end
  end
  ls:close()
  return false
end

-- Waits until such a process runs (an interlock on the process itself, not a
-- clock); false if none came within about ten seconds.
function M.wait_running(argv)
  for _ = 1, 1000 do
    if M.running(argv) then return true end
    M.sleep(0.01)
  end
  return false
end

-- Waits until process pid has ended: until it is gone, or a zombie. A
-- process whose parent went first (a server a shell started in the
-- background) is reaped by init, which on these machines reaps in rounds:
-- waiting for the zombie to go took 1-2 s a server. Reads /proc in this
-- process: a poll of a shell loop was three processes. True once it has
-- ended; false where it still runs after about a minute.
function M.wait_ended(pid)
  for _ = 1, 6000 do
    local f = io.open(("/proc/%s/stat"):format(pid))
    if not f then return true end
    local state = (f:read("a") or ""):match("%) (%S)")
    f:close()
    if not state or state == "Z" then return true end
    M.sleep(0.01)
  end
  return false
end

-- A unique argument for `sleep` (seconds, with a fraction), so that a spec
-- can find its own sleeping program.
function M.unique_seconds(whole)
  return ("%d.%06d"):format(whole, math.random(0, 999999))
end

-- The number in the file path once it holds one (a pid, a port its
-- writer put there whole); nil after some 5 s without.
function M.await_number(path)
  for _ = 1, 500 do
    local f = io.open(path)
    local n = f and f:read("n")
    if f then f:close() end
    if n then return n end
    M.sleep(0.01)
  end
end

-- Starts esb-spec-helper's `listen` or `closed-port` in the background
-- (args after its port file; prefix before the command, "ip netns exec
-- NS "); returns its pid and the port it holds.
function M.helper_port(what, args, prefix)
  local file = os.tmpname()
  os.remove(file)
  local p = io.popen(("%s %s %s %s %s >/dev/null 2>&1 & echo $!"):format(prefix or "", M.quote(M.helper), what,
    M.quote(file), args or ""))
  local pid = p:read("n")
  p:close()
  local port = M.await_number(file)
  os.remove(file)
  assert(port, "esb-spec-helper " .. what .. " did not start")
  return pid, port
end

-- The command of a lua5.4 that loads the build's module. On a sanitized
-- build the sanitizers' runtimes must come first there, and only there:
-- $ESB_SANITIZER_PRELOAD names them (spec/run; spec/support/preload_here.c).
M.module_lua = 'env LD_PRELOAD="${ESB_SANITIZER_PRELOAD:-}" lua5.4'

-- Waits for dir/code (an exit code the background shell wrote), removes
-- dir and returns the code.
local function wait_code(dir)
  local code
  while not code do
    local f = io.open(dir .. "/code")
    code = f and f:read("n")
    if f then f:close() else M.sleep(0.01) end
  end
  os.execute("rm -rf " .. dir)
  return code
end

-- Runs the shell command line cmd (with its own redirections) in the
-- background. Returns a function that waits for it to end and returns its
-- exit code, and a dir of its own (removed by that function).
function M.in_background(cmd)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  assert(os.execute(("(%s; echo $? > %s/code.tmp; mv %s/code.tmp %s/code) &"):format(cmd, dir, dir, dir)))
  return function() return wait_code(dir) end, dir
end

-- Starts the CLI with args in the background, its stdin from the file
-- stdin_path (default /dev/null). Returns its pid and a function that waits
-- for it to end and returns its exit code.
function M.cli_background(args, stdin_path)
  local parts = { M.cli_prefix, M.quote(M.cli) }
  for _, a in ipairs(args) do parts[#parts + 1] = M.quote(a) end
  local pidfile = os.tmpname()
  local wait = M.in_background(("%s <%s >/dev/null 2>&1 & echo $! > %s; wait $!"):format(table.concat(parts, " "),
    M.quote(stdin_path or "/dev/null"), pidfile))
  local pid = M.await_number(pidfile)
  os.remove(pidfile)
  return pid, wait
end

-- A loopback TCP port that was free a moment ago, for a program that must
-- be given its port up front.
function M.free_port()
  local p = io.popen([[python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])']])
  local port = p:read("n")
  p:close()
  return port
end

function M.is_root()
  local p = assert(io.popen("id -u"))
  local uid = p:read("n")
  p:close()
  return uid == 0
end

local function own_pid()
  return read_file("/proc/self/stat"):match("^(%d+)")
end

-- spans: {from, to} pairs of times; the most that overlap at one moment.
function M.most_at_once(spans)
  local most = 0
  for _, a in ipairs(spans) do
    local together = 0
    for _, b in ipairs(spans) do
      if b[1] <= a[1] and a[1] < b[2] then together = together + 1 end
    end
    most = math.max(most, together)
  end
  return most
end

-- What could leak from this process: fds, children, sandbox-uid processes,
-- temp dirs. Compared before and after each spec.
function M.leak_snapshot()
  -- file handles nothing refers to any more are closed by the collector
  collectgarbage()
  collectgarbage()
  local p = assert(io.popen(M.quote(M.helper) .. " leaks " .. own_pid(), "r"))
  local lines = {}
  for line in p:lines() do lines[#lines + 1] = line end
  p:close()
  table.sort(lines)
  return lines
end

-- What `after` has that `before` had not: what leaked.
local function added(before, after)
  local had, new = {}, {}
  for _, line in ipairs(before) do had[line] = true end
  for _, line in ipairs(after) do
    if not had[line] then new[#new + 1] = line end
  end
  return new
end

-- Installs before_each/after_each hooks in the current describe block.
function M.check_leaks()
  local busted = require "busted"
  local before_each, after_each = busted.before_each, busted.after_each
  local before
  before_each(function() before = M.leak_snapshot() end)
  after_each(function()
    local leaked = added(before, M.leak_snapshot())
    -- processes that are exiting may take a moment to be reaped by init
    for _ = 1, 50 do
      if #leaked == 0 then break end
      M.sleep(0.05)
      leaked = added(before, M.leak_snapshot())
    end
    assert.are.same({}, leaked)
  end)
end

return M
