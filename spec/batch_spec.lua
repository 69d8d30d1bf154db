local env = require "spec.support.env"
local cjson = require "cjson"

describe("echo-sandbox batch", function()
  env.check_leaks()

  -- Cgroups handed on from run to run: spec/cgroup_spec.lua.

  it("runs 200 mixed requests, 8 at once, and answers each by id", function()
    local lines, expect = {}, {}
    for i = 1, 200 do
      local id = "req-" .. i
      local request
      if i == 100 then
        lines[i] = "{this is not json"
        expect[i] = "malformed"
      else
        local kind = i % 5
        if kind == 0 then
          request = { id = id, shell = "sleep 0.3; echo slept" }
          expect[i] = "sleep"
        elseif kind == 1 then
          request = { id = id, shell = "exit 3" }
          expect[i] = "fail"
        elseif kind == 2 then
          request = { id = id, shell = "sleep 5", timeout_ms = 200 }
          expect[i] = "timeout"
        elseif kind == 3 then
          request = { id = id, program = "cat", stdin = id }
          expect[i] = "echo"
        else
          request = { id = id, program = "no-such-program" }
          expect[i] = "notfound"
        end
        lines[i] = cjson.encode(request)
      end
    end
    local out, err, code = env.cli_run({ "batch", "-j", "8" }, table.concat(lines, "\n") .. "\n")
    assert.are.equal(0, code, err)

    local seen, spans = {}, {}
    for text in out:gmatch("[^\n]+") do
      local r = cjson.decode(text)
      local line = math.tointeger(r.line)
      assert.is_nil(seen[line], "two results for line " .. tostring(line))
      seen[line] = true
      local want = expect[line]
      if want == "malformed" then
        assert.are.equal(cjson.null, r.id)
        assert.are.equal("invalid_request", r.error.code)
      else
        assert.are.equal("req-" .. line, r.id)
        if want == "sleep" then
          assert.are.equal(0, r.exit_code)
          spans[#spans + 1] = r.stdout
        elseif want == "fail" then
          assert.are.equal(3, r.exit_code)
        elseif want == "timeout" then
          assert.are.equal("timed_out", r.status)
        elseif want == "echo" then
          assert.are.equal(r.id, r.stdout)
        else
          assert.are.equal("exec_not_found", r.error.code)
        end
      end
    end
    for i = 1, 200 do assert.is_true(seen[i], "no result for line " .. i) end

    assert.are.equal(39, #spans)
  end)

  it("keeps exactly -j programs in flight", function()
    local lines = {}
    for i = 1, 16 do
      lines[i] = cjson.encode { id = i, shell = "date +%s%N; sleep 0.3; date +%s%N" }
    end
    local out, err, code = env.cli_run({ "batch", "-j", "8" }, table.concat(lines, "\n"))
    assert.are.equal(0, code, err)
    local spans = {}
    for text in out:gmatch("[^\n]+") do
      local from, to = cjson.decode(text).stdout:match("^(%d+)\n(%d+)\n$")
      spans[#spans + 1] = { tonumber(from), tonumber(to) }
    end
    assert.are.equal(16, #spans)
    -- the most that ran at the same moment (ns since the epoch, as they said)
    assert.are.equal(8, env.most_at_once(spans))
  end)

  it("refuses a bad -j", function()
    local _, err, code = env.cli_run({ "batch", "-j", "0" }, "")
    assert.are.equal(125, code)
    assert.truthy(err:find("-j 0", 1, true))
  end)
  -- Checked: with the FILE argument ignored (stdin read instead, as before),
  -- the file's requests do not run and a missing file exits 0.
  it("reads the requests from FILE, '-' being stdin", function()
    local dir = assert(io.popen("mktemp -d")):read("l")
    local path = dir .. "/requests.ndjson"
    env.write_file(path, cjson.encode { id = "from-file", shell = "echo file" } .. "\n")
    local stdin = cjson.encode { id = "from-stdin", shell = "echo stdin" } .. "\n"
    local out, err, code = env.cli_run({ "batch", path }, stdin)
    assert.are.equal(0, code, err)
    local r = cjson.decode(out)
    assert.are.equal("from-file", r.id)
    assert.are.equal("file\n", r.stdout)
    out, err, code = env.cli_run({ "batch", "-" }, stdin)
    assert.are.equal(0, code, err)
    assert.are.equal("from-stdin", cjson.decode(out).id)
    os.execute("rm -rf " .. env.quote(dir))
  end)

  it("names a FILE it cannot read, reads no stdin instead, runs nothing", function()
    local dir = assert(io.popen("mktemp -d")):read("l")
    local stdin = cjson.encode { id = "from-stdin", shell = "echo stdin" } .. "\n"
    for _, path in ipairs { dir .. "/missing.ndjson", dir } do
      local out, err, code = env.cli_run({ "batch", path }, stdin)
      assert.are.equal(125, code)
      assert.are.equal("", out)
      assert.truthy(err:find("echo-sandbox batch: " .. path .. ": ", 1, true), err)
    end
    local out, err, code = env.cli_run({ "batch", dir .. "/a", dir .. "/b" }, stdin)
    assert.are.equal(125, code)
    assert.are.equal("", out)
    assert.truthy(err:find("at most one FILE", 1, true), err)
    os.execute("rm -rf " .. env.quote(dir))
  end)
end)
