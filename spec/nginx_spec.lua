local env = require "spec.support.env"
local daemon = require "spec.support.daemon"
local cjson = require "cjson"

local function free_port()
  local p = io.popen([[python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])']])
  local port = p:read("n")
  p:close()
  return port
end

local function get(port, path)
  local p = io.popen(("python3 -c 'import sys, urllib.request, urllib.error\n" ..
    "try:\n  r = urllib.request.urlopen(sys.argv[1], timeout=30); print(r.status); print(r.read().decode())\n" ..
    "except urllib.error.HTTPError as e:\n  print(e.code); print(e.read().decode())' %s")
    :format(env.quote(("http://127.0.0.1:%d%s"):format(port, path))))
  local status = p:read("n")
  local body = p:read("a")
  p:close()
  return status, body
end

describe("nginx with lua-nginx-module and resty.echo_sandbox", function()
  env.check_leaks()

  it("runs code through the daemon on a unix socket", function()
    local d = daemon.start(nil, "unix")
    local dir = d.dir .. "/nginx"
    assert(os.execute("mkdir " .. dir))
    local port = free_port()
    local pwd = io.popen("pwd; id -un")
    local root, user = pwd:read("l"), pwd:read("l")
    pwd:close()
    local conf = env.read_file("spec/support/nginx.conf")
      :gsub("@DIR@", dir):gsub("@PORT@", tostring(port)):gsub("@ROOT@", root):gsub("@USER@", user)
      :gsub("@SOCKET@", (d.addr:gsub("^unix:", "")))
    env.write_file(dir .. "/nginx.conf", conf)
    local p = io.popen(("nginx -p %s -c %s/nginx.conf -e %s/error.log >%s/out.log 2>&1 & echo $!")
      :format(dir, dir, dir, dir))
    local nginx_pid = p:read("l")
    p:close()
    finally(function()
      os.execute("kill -QUIT " .. nginx_pid .. " 2>/dev/null; while kill -0 " .. nginx_pid ..
                 " 2>/dev/null; do sleep 0.01; done")
      daemon.stop(d)
    end)
    local status, body
    for _ = 1, 500 do
      status, body = get(port, "/run")
      if status then break end
      os.execute("sleep 0.02")
    end
    assert.are.equal(200, status, body .. (env.read_file(dir .. "/error.log") or ""))
    local r = cjson.decode(body)
    assert.are.equal("42\n", r.stdout)
    assert.are.equal(0, r.exit_code)
    assert.are.equal("local", r.sandbox_type)
    status, body = get(port, "/invalid")
    assert.are.equal(200, status)
    assert.truthy(body:find("HTTP 400", 1, true), body)
    assert.truthy(body:find("'shell'", 1, true), body)
    -- client:stream: the output events as they came, then the result
    status, body = get(port, "/stream")
    assert.are.equal(200, status, body)
    local seen = cjson.decode(body)
    local text = { stdout = "", stderr = "" }
    for i = 1, #seen - 1 do
      assert.are.equal("output", seen[i].event)
      text[seen[i].stream] = text[seen[i].stream] .. seen[i].data
    end
    assert.are.same({ stdout = "one\nthree\n", stderr = "two\n" }, text)
    assert.are.equal("result", seen[#seen].event)
    assert.are.equal("one\nthree\n", seen[#seen].result.stdout)
    status, body = get(port, "/invalid-stream")
    assert.truthy(body:find("HTTP 400", 1, true), body)
  end)
end)
