local env = require "spec.support.env"
local cjson = require "cjson"

local function run(request)
  local out, err = env.cli_run({ "run", "--json" }, cjson.encode(request))
  local ok, result = pcall(cjson.decode, out)
  assert(ok, "no JSON result: " .. out .. err)
  return result
end

describe("the local sandbox", function()
  env.check_leaks()

  describe("network", function()
    local listener_pid, port, portfile

    before_each(function()
      portfile = os.tmpname()
      os.remove(portfile)
      local p = io.popen(env.quote(env.helper) .. " listen " .. env.quote(portfile) .. " >/dev/null 2>&1 & echo $!")
      listener_pid = p:read("l")
      p:close()
      for _ = 1, 100 do
        local f = io.open(portfile)
        if f then port = f:read("n"); f:close(); break end
        os.execute("sleep 0.02")
      end
      assert.is_number(port)
    end)

    after_each(function()
      os.execute("kill " .. listener_pid .. "; while kill -0 " .. listener_pid .. " 2>/dev/null; do sleep 0.01; done")
      os.remove(portfile)
    end)

    local connect = "exec 3<>/dev/tcp/127.0.0.1/%d && head -c 6 <&3"

    it("cannot reach a listener on the host's loopback by default", function()
      local r = run { program = "bash", args = { "-c", connect:format(port) } }
      assert.are_not.equal(0, r.exit_code)
      assert.are.equal("", r.stdout)
    end)

    it("reaches it with network: true", function()
      local r = run { program = "bash", args = { "-c", connect:format(port) }, limits = { network = true } }
      assert.are.equal(0, r.exit_code, r.stderr)
      assert.are.equal("hello\n", r.stdout)
    end)

    it("still has a loopback of its own without network", function()
      local r = run { language = "python", code = table.concat({
        "import socket",
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)",
        "c = socket.create_connection(s.getsockname()); print('ok')" }, "\n") }
      assert.are.equal("ok\n", r.stdout, r.stderr)
    end)
  end)

  describe("filesystem and identity", function()
    local root = env.is_root()

    it("runs the program as an unprivileged user when started as root", function()
      if not root then return pending("needs root") end
      local r = run { shell = "id -u; id -g; id -G" }
      assert.are.equal("65534\n65534\n65534\n", r.stdout)
    end)

    it("cannot write under /etc or read /etc/shadow", function()
      local r = run { shell = "touch /etc/esb-probe 2>&1; echo touch=$?; cat /etc/shadow >/dev/null 2>&1; echo read=$?" }
      assert.are.equal("touch=1\nread=1\n", r.stdout:gsub("touch:[^\n]*\n", ""))
      assert.is_nil(io.open("/etc/esb-probe"))
    end)

    it("writes in its working dir and its /tmp", function()
      local r = run { shell = "echo a > here && echo b > /tmp/there && cat here /tmp/there && pwd" }
      assert.are.equal(0, r.exit_code, r.stderr)
      assert.are.equal("a\nb\n/work\n", r.stdout)
    end)

    it("has a /tmp of its own", function()
      local marker = os.tmpname() -- on the host's /tmp
      local r = run { shell = "test -e " .. env.quote(marker) .. " && echo visible; echo x > /tmp/esb-from-sandbox; echo done" }
      os.remove(marker)
      assert.are.equal("done\n", r.stdout)
      assert.is_nil(io.open("/tmp/esb-from-sandbox"))
    end)

    it("sees only its own processes", function()
      local r = run { shell = "ls /proc | grep -c '^[0-9]'" }
      assert.is_true(tonumber(r.stdout) <= 4, r.stdout)
    end)

    it("makes a given working dir inside the sandbox, and nothing on the host", function()
      for _, dir in ipairs { "/home/agent/project", "/tmp/job/1" } do
        local r = run { shell = "pwd; echo hi > out.txt; cat out.txt; echo $HOME", working_dir = dir }
        assert.are.equal(dir .. "\nhi\n" .. dir .. "\n", r.stdout, r.stderr)
      end
      assert.is_nil(io.open("/home/agent/project"))
      assert.is_nil(io.open("/tmp/job"))
    end)

    it("rejects a working dir that is not one clean path inside the sandbox", function()
      for _, dir in ipairs { "work", "/work/../etc", "/", "/proc/1", "/etc", "/usr/lib", "/a//b" } do
        local r = run { shell = "true", working_dir = dir }
        assert.are.equal("invalid_request", r.error and r.error.code, dir .. ": " .. cjson.encode(r))
        assert.truthy(r.error.message:find(dir, 1, true))
      end
    end)
  end)
end)
