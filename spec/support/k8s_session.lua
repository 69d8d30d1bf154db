-- The CLI's k8s sessions for the specs, against a fake API server (its
-- kubectl and env: spec/support/fake_kube.lua) with the k8s specs' policy,
-- and a session dir of the spec's own, in the server's dir: a k8s session
-- must leave nothing there.
local env = require "spec.support.env"
local cjson = require "cjson"
local assert = require "luassert"

local M = {}

M.policy = "spec/support/k8s_policy.lua"

-- `session ARGS... --policy POLICY` (before a "--" of ARGS: the program's
-- words follow it); prefix goes on the env.
function M.cli(server, args, stdin, prefix)
  local all, at = { "session" }, nil
  for _, a in ipairs(args) do
    if a == "--" and not at then at = #all + 1 end
    all[#all + 1] = a
  end
  table.insert(all, at or #all + 1, "--policy")
  table.insert(all, at and at + 1 or #all + 1, M.policy)
  return env.cli_run(all, stdin, server.env .. " ECHO_SANDBOX_SESSION_DIR=" .. env.quote(server.dir .. "/sessions")
                     .. (prefix or ""))
end

-- A new session on the k8s backend (create's further flags given): its id.
function M.create(server, ...)
  local out, err, code = M.cli(server, { "create", "--backend", "k8s", ... })
  assert.are.equal(0, code, err)
  local id = out:match("^(%S+)\n$")
  assert.truthy(id and id:find("^echo%-sandbox%-s%-%x+$"), out .. err)
  return id
end

-- A run in session id: the request JSON in; the result, the exit code, stderr.
function M.run(server, id, request, prefix)
  local out, err, code = M.cli(server, { "run", id, "--json" }, cjson.encode(request), prefix)
  local ok, r = pcall(cjson.decode, out)
  assert(ok, "no JSON result: " .. out .. err)
  return r, code, err
end

-- `show --json`: the session, or nil; stderr and the exit code.
function M.show(server, id)
  local out, err, code = M.cli(server, { "show", id, "--json" })
  local ok, s = pcall(cjson.decode, out)
  return ok and s or nil, err, code
end

function M.rm(server, id)
  local _, err, code = M.cli(server, { "rm", id })
  assert.are.equal(0, code, err)
end

return M
