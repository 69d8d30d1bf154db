-- Starts and stops `echo-sandbox serve` for the specs, and talks HTTP to it
-- through spec/support/http_client.py.
local env = require "spec.support.env"
local cjson = require "cjson"

local M = {}
local client = "spec/support/http_client.py"

-- options: extra serve flags (a string); listen: "tcp" (default) or "unix";
-- prefix: environment assignments for the daemon.
function M.start(options, listen, prefix)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  local d = { dir = dir }
  -- the socket's directory does not exist yet: serve makes it
  local addr = listen == "unix" and ("unix:" .. dir .. "/run/echo-sandbox.sock") or "127.0.0.1:0"
  local cmd = ("%s %s %s serve --listen %s --port-file %s/port %s >%s/log 2>&1 & echo $!")
    :format(prefix or "", env.cli_prefix, env.quote(env.cli), addr, dir, options or "", dir)
  local p = io.popen(cmd)
  d.pid = p:read("l")
  p:close()
  for _ = 1, 1000 do
    local f = io.open(dir .. "/port")
    if f then
      local where = f:read("l")
      f:close()
      d.addr = listen == "unix" and ("unix:" .. where) or where
      break
    end
    env.sleep(0.01)
  end
  assert(d.addr, "the daemon did not start: " .. (env.read_file(dir .. "/log") or ""))
  return d
end

function M.log(d)
  return env.read_file(d.dir .. "/log")
end

-- Waits until the daemon's log holds text: the interlock after a signal
-- whose effect the log reports (a reload under ASan on a loaded machine
-- takes seconds). Fails, naming text, only past the spec file's own
-- timeout's order of magnitude (5 minutes), where a daemon that never
-- logs it is broken.
function M.await_log(d, text)
  for _ = 1, 30000 do
    if (M.log(d) or ""):find(text, 1, true) then return end
    env.sleep(0.01)
  end
  error("the daemon never logged " .. text .. ": " .. (M.log(d) or ""))
end

-- Sends a signal; waits for the daemon to end when wait is set; returns its
-- exit code then.
function M.signal(d, sig, wait)
  if not wait then
    os.execute("kill -" .. sig .. " " .. d.pid)
    return
  end
  -- the daemon is not our child: its exit code comes from a wrapper below
  os.execute(("kill -%s %s"):format(sig, d.pid))
  env.wait_ended(d.pid)
end

function M.stop(d)
  M.signal(d, "TERM", true)
  os.execute("rm -rf " .. d.dir)
end

-- One exchange; opts (all optional): body, token, body_file, chunked,
-- pad_header (bytes of one more header), deadline (seconds for the whole
-- exchange: status 0 past it). Returns the status, the decoded answer and
-- the answer's headers (names in lower case).
function M.send(d, method, path, opts)
  local flags = {}
  for _, f in ipairs { "token", "body_file", "pad_header", "deadline" } do
    if opts[f] then flags[#flags + 1] = ("--%s %s"):format((f:gsub("_", "-")), env.quote(tostring(opts[f]))) end
  end
  if opts.chunked then flags[#flags + 1] = "--chunked" end
  local cmd = ("python3 %s request %s %s %s %s %s"):format(client, env.quote(d.addr), method, path,
    opts.body and env.quote(opts.body) or "", table.concat(flags, " "))
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  local r = cjson.decode(out)
  -- every exchange must be what doc/openapi.json says (http_client.py checks)
  if r.schema_errors and #r.schema_errors > 0 then
    error(("%s %s does not match doc/openapi.json:\n  %s\nanswer %d: %s"):format(method, path,
      table.concat(r.schema_errors, "\n  "), r.status, r.body), 2)
  end
  local ok, decoded = pcall(cjson.decode, r.body)
  return r.status, ok and decoded or r.body, r.headers
end

function M.request(d, method, path, body, token)
  return M.send(d, method, path, { body = body, token = token })
end

-- One exchange with a daemon of its own: started with options (and
-- prefix), asked, stopped. Returns the status and the decoded answer.
function M.exchange(options, method, path, body, prefix)
  local d = M.start(options, nil, prefix)
  local ok, status, answer = pcall(M.request, d, method, path, body)
  M.stop(d)
  assert(ok, status)
  return status, answer
end

-- Sends only the headers of a POST with a body of length bytes; the status
-- answered before any of the body was sent (0: none).
function M.headers_only(d, length, token)
  local p = io.popen(("python3 %s headers-only %s %d %s"):format(client, env.quote(d.addr), length,
    token and ("--token " .. env.quote(token)) or ""))
  local out = cjson.decode(p:read("a"))
  p:close()
  return math.tointeger(out.status)
end

-- Whether the daemon closes a connection that sends nothing (within 20 s).
function M.closes_idle(d)
  local p = io.popen(("python3 %s idle %s"):format(client, env.quote(d.addr)))
  local out = cjson.decode(p:read("a"))
  p:close()
  return out.closed
end

-- POST path (a streamed run's: ?stream=1) with body; reads the first line
-- of the answer, only then writes "hello" into the fifo go, and reads the
-- rest: the interlock that proves an event came before the run's end (a
-- run that waits on go). A 60 s watchdog turns an answer held back into a
-- failure, not a hang. Returns {status, type, lines (decoded)}.
local interlock = [[
import http.client, json, sys
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=60)
conn.request("POST", sys.argv[2], body=sys.argv[4])
resp = conn.getresponse()
lines = [json.loads(resp.readline())]
with open(sys.argv[3], "w") as go:
    go.write("hello\n")
for line in resp.read().splitlines():
    lines.append(json.loads(line))
print(json.dumps({"status": resp.status, "type": resp.getheader("Content-Type"), "lines": lines}))
]]

function M.stream_interlocked(d, path, go, body)
  local p = io.popen(("timeout 60 python3 -c %s %s %s %s %s"):format(env.quote(interlock), env.quote(d.addr),
    env.quote(path), env.quote(go), env.quote(body)))
  local answer = cjson.decode(p:read("a"))
  p:close()
  return answer
end

function M.flood(d, n, request)
  local p = io.popen(("python3 %s flood %s %d %s"):format(client, env.quote(d.addr), n, env.quote(cjson.encode(request))))
  local out = cjson.decode(p:read("a"))
  p:close()
  return out.statuses, out.bodies, out.headers
end

return M
