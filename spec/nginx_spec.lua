local env = require "spec.support.env"
local daemon = require "spec.support.daemon"
local cjson = require "cjson"

local free_port = env.free_port

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

-- Starts nginx with dir/nginx.conf; in an `it`, stops it and the daemon d
-- when the spec ends, then calls after (when given: busted keeps one
-- finally an `it`). Returns nginx's pid.
local function start_nginx(dir, d, after)
  local p = io.popen(("nginx -p %s -c %s/nginx.conf -e %s/error.log >%s/out.log 2>&1 & echo $!")
    :format(dir, dir, dir, dir))
  local nginx_pid = p:read("l")
  p:close()
  finally(function()
    os.execute("kill -QUIT " .. nginx_pid .. " 2>/dev/null; while kill -0 " .. nginx_pid ..
               " 2>/dev/null; do sleep 0.01; done")
    daemon.stop(d)
    if after then after() end
  end)
  return nginx_pid
end

-- The first answer to GET path once nginx listens: status and body.
local function first_answer(port, path)
  local status, body
  for _ = 1, 500 do
    status, body = get(port, path)
    if status then break end
    env.sleep(0.02)
  end
  return status, body
end

describe("nginx with lua-nginx-module and resty.echo_sandbox", function()
  env.check_leaks()

  it("runs code through the daemon on a unix socket, in a session too", function()
    local sessions = assert(io.popen("mktemp -d")):read("l")
    local function no_session_left()
      local left = assert(io.popen("ls -A " .. sessions)):read("a")
      os.execute("rm -rf " .. env.quote(sessions))
      assert.are.equal("", left, "sessions left")
    end
    local d = daemon.start(nil, "unix", "ECHO_SANDBOX_SESSION_DIR=" .. sessions)
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
    local nginx_pid = start_nginx(dir, d, no_session_left)
    local status, body = first_answer(port, "/run")
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
    -- sessions: create, run, cell, delete
    status, body = get(port, "/session")
    assert.are.equal(200, status, body)
    seen = cjson.decode(body)
    local id = seen[1].id
    assert.truthy(id, body)
    assert.are.same({ id, "kept\n" }, { seen[2].session, seen[3].stdout })
    assert.are.same({ "ok", "42" }, { seen[4].status, seen[5].value })
    assert.truthy(seen[6]:find("HTTP 400: no kernel for language 'cobol'", 1, true), seen[6])
    assert.are.same({ "ended", "deleted" }, { seen[7].state, seen[7].ended })
    assert.truthy(seen[8]:find("HTTP 404: session " .. id .. " has ended (deleted)", 1, true), seen[8])
  end)
end)

-- The nginx section of doc/http-daemon.md, as written: the daemon's command line (as
-- root, --socket-group www-data) and its nginx block, in an nginx whose
-- workers run as www-data, as Debian's do. Only where things are changes:
-- the socket's path (the spec's own), where the resty module is installed
-- (a copy in the spec's dir, as `cmake --install` would put it), and the
-- port nginx listens on.
describe("the docs' nginx set-up", function()
  env.check_leaks()

  local function doc_section()
    local page = env.read_file("doc/http-daemon.md") .. "\n## "
    local section = page:match("\n## nginx / OpenResty\n(.-)\n## ")
    local command = section:match("```sh\n(.-)\n```")
    local block = section:match("```nginx\n(.-)\n```")
    return command, block
  end

  -- Checked: with the README's earlier command (no --socket-group), the
  -- worker got "Permission denied" on the socket and answered 502; with
  -- its earlier ngx.var.arg_code (not decoded), Python got the code still
  -- URL-encoded and failed with a SyntaxError.
  it("runs URL-encoded code through nginx workers running as www-data", function()
    if not env.is_root() then
      pending("as root only: nginx's workers become www-data")
      return
    end
    local command, block = doc_section()
    local socket = "/run/echo-sandbox/echo-sandbox.sock"
    local flags = command:match("^echo%-sandbox serve %-%-listen unix:" .. socket:gsub("%p", "%%%0") .. " (.-) &$")
    assert.truthy(flags, command)
    -- the systemd unit gives its socket the same group and mode
    local unit = env.read_file("deploy/echo-sandbox.service")
    assert.truthy(unit:find("ExecStart=[^\n]*" .. flags:gsub("%p", "%%%0")), flags)
    local d = daemon.start(flags, "unix")
    local dir = d.dir .. "/nginx"
    assert(os.execute(("mkdir -p %s/lua && cp -r lua/resty %s/lua/ && chmod -R a+rX %s"):format(dir, dir, d.dir)))
    local port = free_port()
    local server = block:gsub(socket:gsub("%p", "%%%0"), (d.addr:gsub("^unix:", "")))
      :gsub('lua_package_path "[^"]*"', ('lua_package_path "%s/lua/?.lua;;"'):format(dir))
      :gsub("server {\n", ("server {\n  listen 127.0.0.1:%d;\n"):format(port), 1)
    env.write_file(dir .. "/nginx.conf", table.concat({
      "load_module /usr/lib/nginx/modules/ndk_http_module.so;",
      "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;",
      "daemon off;", "user www-data;", "master_process on;", "worker_processes 1;",
      ("pid %s/nginx.pid;"):format(dir), ("error_log %s/error.log info;"):format(dir),
      "events { worker_connections 64; }",
      ("http {\naccess_log off;\nclient_body_temp_path %s/body;\nproxy_temp_path %s/proxy;\n" ..
       "fastcgi_temp_path %s/fastcgi;\nuwsgi_temp_path %s/uwsgi;\nscgi_temp_path %s/scgi;\n")
        :format(dir, dir, dir, dir, dir),
      server, "}" }, "\n"))
    local nginx_pid = start_nginx(dir, d)
    -- print('a b', 6*7), URL-encoded as a browser sends it
    local path = "/run-python?code=print%28%27a%20b%27%2C%206%2A7%29"
    local status, body = first_answer(port, path)
    local log = env.read_file(dir .. "/error.log") or ""
    -- who the workers are, from /proc
    local ps = io.popen(("for w in $(cat /proc/%s/task/%s/children); do stat -c %%U /proc/$w; done")
      :format(nginx_pid, nginx_pid))
    local workers = ps:read("a")
    ps:close()
    assert.are.equal("www-data\n", workers)
    assert.are.equal(200, status, body .. log)
    local r = cjson.decode(body)
    assert.are.equal("a b 42\n", r.stdout, body)
    assert.are.equal(0, r.exit_code)
  end)
end)
