-- Starts and stops spec/support/fake_kube.py for the k8s specs, and asks it
-- what it holds. kubectl reaches it through a kubeconfig written here.
local env = require "spec.support.env"

local M = {}
M.script = "spec/support/fake_kube.py"

-- What to put before a command so that it (the CLI, or a kubectl found on
-- PATH) runs the matrix's kubectl of minor with kubeconfig.
function M.kubectl_env(minor, kubeconfig)
  local kubectl = assert(env.kubectl(minor))
  return ("KUBECONFIG=%s ECHO_SANDBOX_KUBECTL=%s PATH=%s:\"$PATH\""):format(
    env.quote(kubeconfig), env.quote(kubectl), env.quote(kubectl:match("^(.*)/")))
end

-- Starts a server reporting version 1.<minor>; extra: more options. Its env
-- makes the CLI (and a kubectl on PATH) use the matrix's kubectl of that minor.
function M.start(minor, extra)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  local portfile = dir .. "/port"
  local cmd = ("python3 %s --port-file %s --minor %d %s >%s/log 2>&1 & echo $!")
    :format(M.script, portfile, minor, extra or "", dir)
  local p = io.popen(cmd)
  local server = { dir = dir, pid = p:read("l"), minor = minor }
  p:close()
  for _ = 1, 500 do
    local f = io.open(portfile)
    if f then server.port = f:read("n"); f:close(); break end
    os.execute("sleep 0.01")
  end
  assert(server.port, "the fake API server did not start: " .. (env.read_file(dir .. "/log") or ""))
  server.kubeconfig = dir .. "/kubeconfig"
  env.write_file(server.kubeconfig, ([[
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster: {server: "http://127.0.0.1:%d"}
contexts:
- name: fake
  context: {cluster: fake, user: fake, namespace: echo-sandbox}
current-context: fake
users:
- name: fake
  user: {token: fake}
]]):format(server.port))
  -- what to put before a command so that its kubectl finds this server
  server.env = M.kubectl_env(minor, server.kubeconfig)
  return server
end

function M.query(server, path, body)
  local p = io.popen(("python3 %s query %d %s %s"):format(M.script, server.port, env.quote(path),
                                                           body and env.quote(body) or ""))
  local text = p:read("a")
  p:close()
  return require("cjson").decode(text)
end

-- Any request in plain HTTP, where kubectl cannot make it (a DELETE's
-- preconditions, a body kubectl would not send): the answer's code and its
-- body, decoded where it is JSON.
function M.request(server, method, path, body, content_type)
  local p = io.popen(("python3 %s request %d %s %s %s %s"):format(M.script, server.port, method, env.quote(path),
    env.quote(body or ""), env.quote(content_type or "application/json")))
  local code, text = tonumber(p:read("l")), p:read("a")
  p:close()
  local ok, obj = pcall(require("cjson").decode, text)
  return code, ok and obj or text
end

-- A mark in the request log (a server started with --request-log): the
-- spec's own point in the order of the requests.
function M.mark(server, text)
  return M.query(server, "/_fake/mark/" .. text, "{}")
end

-- The request log of a server started with --request-log (no path): its
-- requests in the order they arrived ({seq, t, method, path, query, code},
-- code nil while unanswered) and its marks ({seq, t, mark}).
function M.request_log(server)
  local cjson = require "cjson"
  local entries, by_seq = {}, {}
  local f = io.open(server.dir .. "/requests.jsonl")
  for line in f and f:lines() or function() end do
    local ok, e = pcall(cjson.decode, line) -- the last line may be half written
    if ok and e.method == nil and e.mark == nil then
      if by_seq[e.seq] then by_seq[e.seq].code = e.code end
    elseif ok then
      entries[#entries + 1], by_seq[e.seq] = e, e
    end
  end
  if f then f:close() end
  return entries
end

-- The requests of the log between its marks first and last.
function M.between(log, first, last)
  local out, inside = {}, false
  for _, e in ipairs(log) do
    if e.mark == first then inside = true
    elseif e.mark == last then break
    elseif inside and e.method then out[#out + 1] = e end
  end
  return out
end

function M.pods(server)
  return M.query(server, "/_fake/pods")
end

function M.stop(server)
  os.execute("kill " .. server.pid .. "; " .. env.wait_ended_sh(server.pid))
  os.execute("rm -rf " .. server.dir)
end

-- In a describe block: a fresh server for each spec (hooks.server), stopped
-- after it, and a failure if it still holds a pod then. Put env.check_leaks()
-- in an enclosing block, so that the leak check runs after the stop.
function M.per_spec(minor, extra)
  local busted = require "busted"
  local assert = require "luassert"
  local hooks = {}
  busted.before_each(function() hooks.server = M.start(minor, extra) end)
  busted.after_each(function()
    local left = M.pods(hooks.server)
    M.stop(hooks.server)
    assert.are.same({}, left)
  end)
  return hooks
end

return M
