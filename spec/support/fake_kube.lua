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
