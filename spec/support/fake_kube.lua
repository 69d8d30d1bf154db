-- Starts and stops spec/support/fake_kube.py for the k8s specs, and asks it
-- what it holds. kubectl reaches it through a kubeconfig written here.
local env = require "spec.support.env"

local M = {}
M.script = "spec/support/fake_kube_start.py" -- fake_kube.py, from its bytecode

-- The API server of `spec/run --kubeconfig FILE` ($ESB_TEST_KUBECONFIG):
-- one the specs did not start (a real cluster, or a fake run apart). Then
-- no fake is started: M.start and M.per_spec hand out a server object for
-- it, whose env points the CLI and kubectl at that server and at the
-- namespace spec/run made for its run ($ESB_TEST_NAMESPACE), and what needs
-- the fake's switches (its options, its /_fake/ endpoints, its request log)
-- makes the case calling it skip, naming what it needed.
M.external = os.getenv("ESB_TEST_KUBECONFIG")
if M.external == "" then M.external = nil end

-- The options of the fake that change nothing for the cases that do not
-- use them, and how many words each is: a namespace it refuses (a case
-- that runs there says so with M.needs).
local harmless = { ["--forbid"] = 2 }

-- The options of extra that a server the specs did not start cannot have.
local function switches(extra)
  local words, needed = {}, {}
  for w in (extra or ""):gmatch("%S+") do words[#words + 1] = w end
  local i = 1
  while i <= #words do
    if harmless[words[i]] then i = i + harmless[words[i]]
    else needed[#needed + 1] = words[i]; i = i + 1 end
  end
  return table.concat(needed, " ")
end

-- Ends the running case as skipped (busted's pending, as the case's own
-- `pending` does), saying why: the case is the busted element "it" whose
-- run is on the stack. In a hook (an after_each's check of what the fake
-- holds), nothing: false. Outside a case (in a describe block, a spec
-- file's top), a pending spec that says why, and true.
function M.skip(why)
  why = why .. " (spec/run --kubeconfig: an API server the specs did not start)"
  for level = 2, 60 do
    if not debug.getinfo(level, "f") then break end
    for i = 1, 60 do
      local name, value = debug.getlocal(level, i)
      if not name then break end
      -- busted.safe(descriptor, run, element) runs each block and hook
      if name == "descriptor" and type(value) == "string" and value:find("_each$") then return false end
      if name == "element" and type(value) == "table" and value.descriptor == "it" and value.env then
        value.env.pending(("%s: %s"):format(value.name, why)) -- TAP's SKIP line has no name of its own
      end
    end
  end
  require("busted").pending(why)
  return true
end

-- At the top of a case that needs the fake API server (what) beyond a
-- server's usual answers: skipped against an API server the specs did not
-- start, nothing otherwise. At the top of a spec file (`if fake.needs(what)
-- then return end`): the file is one pending spec then.
function M.needs(what)
  return M.external and M.skip("needs the fake API server's " .. what) or false
end

-- A server object for the external server; where needed is not empty (the
-- fake's options a spec asked for), one on which any use skips the case.
local function external_server(minor, needed)
  if needed ~= "" then
    -- in a case, skipped now; in a hook (M.per_spec's), at the first use
    M.skip("needs the fake API server started with " .. needed)
    return setmetatable({}, { __index = function() M.skip("needs the fake API server started with " .. needed) end,
                              skip = true })
  end
  local kubectl = assert(env.kubectl(minor))
  -- a dir of its own, as a fake's (specs keep their files there), removed by M.stop
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  local server = { external = true, minor = minor, kubeconfig = M.external, namespace = os.getenv("ESB_TEST_NAMESPACE"),
                   kubectl = kubectl, dir = dir }
  -- the engine's every kubectl call in the run's namespace, whatever the policy names (a policy cannot
  -- read the environment: the engine pins it, ECHO_SANDBOX_K8S_NAMESPACE); kubectl for every request
  -- (ECHO_SANDBOX_K8S_API=kubectl: a real cluster's credentials are kubectl's to use)
  server.env = M.kubectl_env(minor, M.external) .. " ECHO_SANDBOX_K8S_NAMESPACE=" .. env.quote(server.namespace) ..
               " ECHO_SANDBOX_K8S_API=kubectl"
  -- what only the fake has: its port, its process
  return setmetatable(server, { __index = function(_, key) M.skip("needs the fake API server's " .. key) end })
end

-- What to put before a command so that it (the CLI, or a kubectl found on
-- PATH) runs the matrix's kubectl of minor with kubeconfig.
function M.kubectl_env(minor, kubeconfig)
  local kubectl = assert(env.kubectl(minor))
  return ("KUBECONFIG=%s ECHO_SANDBOX_KUBECTL=%s PATH=%s:\"$PATH\""):format(
    env.quote(kubeconfig), env.quote(kubectl), env.quote(kubectl:match("^(.*)/")))
end

-- Starts a server reporting version 1.<minor>; extra: more options. Its env
-- makes the CLI (and a kubectl on PATH) use the matrix's kubectl of that minor.
-- prefix: put before its command ("ip netns exec NS ": it, and the pods it
-- runs, in a network namespace a spec made; the same command must be the
-- process the stop ends, as ip netns exec's is).
function M.start(minor, extra, prefix)
  if M.external then return external_server(minor, switches(extra)) end
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  local portfile = dir .. "/port"
  -- Forked by its task's zygote (spec/run starts one where a file uses
  -- the fake: spec/support/fake_kube_zygote.py), else started by exec; by
  -- exec too where a prefix (a network namespace) must be its command.
  local zygote = os.getenv("ESB_FAKE_ZYGOTE")
  local cmd = zygote and not prefix
    and ("%s fake-start %s %s/log --port-file %s --minor %d %s 2>>%s/log")
      :format(env.quote(env.helper), env.quote(zygote), dir, portfile, minor, extra or "", dir)
    or ("%spython3 %s --port-file %s --minor %d %s >%s/log 2>&1 & echo $!")
      :format(prefix or "", M.script, portfile, minor, extra or "", dir)
  local p = io.popen(cmd)
  local server = { dir = dir, pid = p:read("l"), minor = minor, prefix = prefix }
  p:close()
  server.port = env.await_number(portfile)
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
  -- what to put before a command so that its kubectl finds this server;
  -- the engine's API client keeps what kubectl said of the kubeconfig in
  -- the server's dir (src/backend/kube_api.c), gone with it
  server.env = M.kubectl_env(minor, server.kubeconfig) .. " XDG_RUNTIME_DIR=" .. env.quote(dir)
  return server
end

-- Whether server is one the specs did not start (or stands for one).
local function not_started(server)
  local mt = getmetatable(server)
  return rawget(server, "external") or (mt and mt.skip)
end

-- The shell words that print the fake's answer to a GET of path (a POST of
-- body), failing where it is not 2xx: esb-spec-helper's http, not a Python
-- of the fake's nor curl (a spec asks hundreds of times, some in a loop;
-- Python's start is ten times curl's, and curl's some 25 ms of CPU). It
-- waits 30 s: CI's busiest minutes slow the fake's every answer.
function M.query_sh(server, path, body)
  return ("%s%s http %d %s%s"):format(server.prefix or "", env.quote(env.helper), server.port, env.quote(path),
                                      body and " " .. env.quote(body) or "")
end

function M.query(server, path, body)
  if not_started(server) then
    M.skip("needs the fake API server's " .. path)
    return {} -- in a hook: what the fake holds cannot be known, the run's namespace is checked instead
  end
  local p = io.popen(M.query_sh(server, path, body) .. " 2>&1")
  local text = p:read("a")
  local answered = p:close()
  local ok, answer = pcall(require("cjson").decode, text)
  assert(answered and ok, ("the fake API server's answer to %s: %s"):format(path, text))
  return answer
end

-- Any request in plain HTTP, where kubectl cannot make it (a DELETE's
-- preconditions, a body kubectl would not send): the answer's code and its
-- body, decoded where it is JSON.
function M.request(server, method, path, body, content_type)
  if not_started(server) then M.skip("needs the fake API server's answer to " .. method .. " " .. path) end
  local p = io.popen(("%spython3 %s request %d %s %s %s %s"):format(server.prefix or "", M.script, server.port, method,
    env.quote(path), env.quote(body or ""), env.quote(content_type or "application/json")))
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
  if not_started(server) then M.skip("needs the fake API server's request log") end
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

-- The pods the server holds now (an external server: those of the run's
-- namespace, through kubectl; none for one that stands for a fake's switch).
function M.pods(server)
  if rawget(server, "external") then
    local p = io.popen(("%s --kubeconfig=%s --namespace=%s get pods -o json 2>&1"):format(env.quote(server.kubectl),
      env.quote(server.kubeconfig), env.quote(server.namespace)))
    local text = p:read("a")
    local ok = p:close()
    assert(ok, "kubectl get pods: " .. text)
    return require("cjson").decode(text).items
  end
  if not_started(server) then return {} end
  return M.query(server, "/_fake/pods")
end

-- The pods left in the run's namespace once those being deleted are gone
-- (a real kubelet takes a while to stop a container, and the fake's, on a
-- loaded machine): its pods when none is being deleted, or after about a
-- minute.
local function left_after_deletes(server)
  local pods
  for _ = 1, 300 do
    pods = M.pods(server)
    local deleting = false
    for _, pod in ipairs(pods) do deleting = deleting or pod.metadata.deletionTimestamp ~= nil end
    if not deleting then break end
    env.sleep(0.2)
  end
  return pods
end

function M.stop(server)
  if rawget(server, "external") then os.execute("rm -rf " .. server.dir) end
  if not_started(server) then return end
  os.execute("kill " .. server.pid)
  env.wait_ended(server.pid)
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
    local left = left_after_deletes(hooks.server)
    M.stop(hooks.server)
    assert.are.same({}, left)
  end)
  return hooks
end

return M
