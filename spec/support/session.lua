-- Local sessions from a spec: a directory of sessions of the spec's own
-- (ECHO_SANDBOX_SESSION_DIR), the CLI's session commands, and the check
-- that nothing of a session is left once it is removed.
local env = require "spec.support.env"
local cjson = require "cjson"
local assert = require "luassert"

local M = {}

local dir

-- The spec's own directory of sessions, made in its setup.
function M.setup()
  dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -m 700 " .. dir))
end

-- Removes what a failed case left, then the directory: said, as a failure.
function M.teardown()
  local out = M.cli { "session", "ls" }
  for id in out:gmatch("(%x+)  ") do M.cli { "session", "rm", id } end
  assert(os.execute("rmdir " .. dir))
  assert.are.equal("", out, "sessions left: " .. out)
end

function M.env_prefix()
  return "ECHO_SANDBOX_SESSION_DIR=" .. env.quote(dir)
end

function M.cli(args, stdin)
  return env.cli_run(args, stdin, M.env_prefix())
end

function M.create(...)
  local out, err, code = M.cli { "session", "create", "--json", ... }
  assert.are.equal(0, code, err)
  local s = cjson.decode(out)
  s.pid = math.tointeger(s.pid)
  return s
end

-- session run ID --json [extra] --shell SHELL; the result, the exit code, stderr.
function M.run(id, shell, extra, stdin)
  local args = { "session", "run", id, "--json" }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  args[#args + 1] = "--shell"
  args[#args + 1] = shell
  local out, err, code = M.cli(args, stdin)
  local ok, result = pcall(cjson.decode, out)
  assert(ok, "stdout is not a JSON result: " .. out .. "\nstderr: " .. err)
  return result, code, err
end

-- session run ID --json with the request object on stdin.
function M.run_request(id, request)
  local out, err, code = M.cli({ "session", "run", id, "--json" }, cjson.encode(request))
  local ok, result = pcall(cjson.decode, out)
  assert(ok, "stdout is not a JSON result: " .. out .. "\nstderr: " .. err)
  return result, code, err
end

function M.read(path)
  local ok, text = pcall(function()
    local f <close> = assert(io.open(path))
    return f:read("a")
  end)
  return ok and text or nil
end

-- Starts `session run ID --json --timeout 30 [extra] --shell SHELL` in the
-- background; returns a function that waits for it and returns its exit
-- status and its result (decoded stdout), the files removed.
function M.run_in_background(id, shell, extra)
  local out = os.tmpname()
  local parts = { M.env_prefix(), env.cli_prefix, env.quote(env.cli), "session", "run", id, "--json",
                  "--timeout", "30" }
  for _, a in ipairs(extra or {}) do parts[#parts + 1] = env.quote(a) end
  parts[#parts + 1] = "--shell"
  parts[#parts + 1] = env.quote(shell)
  local wait = env.in_background(table.concat(parts, " ") .. " >" .. out .. " 2>/dev/null")
  return function()
    local status = wait()
    local text = M.read(out)
    os.remove(out)
    local ok, result = pcall(cjson.decode, text or "")
    assert(ok, "not a JSON result: " .. tostring(text))
    return status, result
  end
end

local function alive(pid)
  local stat = M.read("/proc/" .. pid .. "/stat")
  return stat ~= nil and stat:match("%) (%a)") ~= "Z"
end

-- The holder's end, polled (an interlock on the process, capped at 30 s).
local function wait_ended(pid)
  for _ = 1, 3000 do
    if not alive(pid) then return true end
    env.sleep(0.01)
  end
  return false
end

-- The session's cgroups, from the engine's record of it, and what is below
-- them (the runs' own, v2's leaf of the holder).
function M.cgroups_of(id)
  local list = {}
  for path in (M.read(dir .. "/" .. id .. "/info") or ""):gmatch("cgroup %d ([^\n]+)") do
    list[#list + 1] = path
  end
  return list
end

-- The directories below a session's cgroups: the runs' own cgroups while
-- they run, v2's leaf of the holder.
function M.cgroups_below(id)
  local list = {}
  for _, path in ipairs(M.cgroups_of(id)) do
    local p = assert(io.popen("find " .. env.quote(path) .. " -mindepth 1 -maxdepth 1 -type d 2>/dev/null"))
    for line in p:lines() do list[#list + 1] = line end
    p:close()
  end
  return list
end

-- A host directory with a file "secret" in it, for a run to point links
-- at: anyone may write them (as /tmp and what is in it often are), so that
-- only the engine's refusal to follow a link keeps them as they are.
-- Returns the directory and a function that removes it.
function M.host_target()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -m 1777 " .. dir))
  env.write_file(dir .. "/secret", "host-secret\n")
  assert(os.execute("chmod 666 " .. dir .. "/secret"))
  return dir, function() assert(os.execute("rm -rf " .. env.quote(dir))) end
end

-- What ls -A says of a directory of ours.
function M.ls(dir)
  local p = assert(io.popen("ls -A " .. env.quote(dir)))
  local text = p:read("a")
  p:close()
  return text
end

-- rm, and nothing of the session left: its holder, directory, cgroups.
function M.remove(s)
  local cgroups = M.cgroups_of(s.id)
  local _, err, code = M.cli { "session", "rm", s.id }
  assert.are.equal(0, code, err)
  assert.is_true(wait_ended(s.pid), "the holder " .. s.pid .. " is still there")
  assert.is_nil(io.open(dir .. "/" .. s.id), "the session's directory is left")
  for _, path in ipairs(cgroups) do
    assert.is_nil(io.open(path .. "/tasks") or io.open(path .. "/cgroup.procs"), path .. " is left")
  end
end

return M
