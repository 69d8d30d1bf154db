-- A collected file's name is the program's choice of bytes, UTF-8 or not.
-- The result stays JSON whatever they are: a name that is not UTF-8 comes
-- back as path_base64 (as output that is not comes back as stdout_base64),
-- through every face and on both backends; a message that quotes such a
-- name keeps it readable. A strict client (RFC 8259: JSON is UTF-8) reads
-- each answer here; cjson alone would take any bytes.
--
-- Checked: without esb_lua_set_bytes for a file's path in push_files
-- (src/codec/convert.c; the path pushed raw, as before), every case here
-- fails: `run --json` and `batch` print lines that are not UTF-8, serve's
-- answer is "not UTF-8" in http_client.py's check, on both backends, and
-- the Lua module's table has the raw path, no path_base64.
local env = require "spec.support.env"
local daemon = require "spec.support.daemon"
local fake = require "spec.support.fake_kube"
local cjson = require "cjson"

local unbase64 = env.unbase64

-- The program makes "caf\xe9.txt" (Latin-1, not UTF-8), "sub/\xff\xfe.txt"
-- and "grüße.txt" (UTF-8, which stays text).
local make = "mkdir sub && printf x > \"$(printf 'caf\\351').txt\" && printf yz > \"sub/$(printf '\\377\\376').txt\" "
          .. "&& printf u > grüße.txt"
local request = { shell = make, collect = { "*.txt", "sub/*.txt" } }
local latin1, high, utf8_name = "caf\xe9.txt", "sub/\xff\xfe.txt", "grüße.txt"

-- A line of the CLI's, as a strict client reads it.
local function strict_decode(line, err)
  assert(utf8.len(line), "not UTF-8, so not JSON: " .. line .. "\nstderr: " .. (err or ""))
  local ok, r = pcall(cjson.decode, line)
  assert(ok, "not JSON: " .. line)
  return r
end

-- The three files by their bytes; a name is path or path_base64, never both.
local function check_files(r)
  assert.truthy(r.files, cjson.encode(r))
  local got = {}
  for _, f in ipairs(r.files) do
    assert.is_true((f.path == nil) ~= (f.path_base64 == nil), cjson.encode(f))
    got[f.path or unbase64(f.path_base64)] = unbase64(f.base64)
  end
  assert.are.same({ [latin1] = "x", [high] = "yz", [utf8_name] = "u" }, got)
  for _, f in ipairs(r.files) do
    if f.path then assert.are.equal(utf8_name, f.path) end
  end
  assert.is_false(r.files_truncated)
end

-- run --json, batch (two requests, so two lines) and serve, with args for
-- the CLI, prefix() the environment of its process and req the request.
local function through_every_face(args, prefix, req)
  it("run --json", function()
    local run = { "run", "--json" }
    for _, a in ipairs(args) do run[#run + 1] = a end
    local out, err, code = env.cli_run(run, cjson.encode(req), prefix())
    assert.are.equal(0, code, err)
    check_files(strict_decode(out, err))
  end)

  it("batch", function()
    local batch = { "batch", "-j", "2" }
    for _, a in ipairs(args) do batch[#batch + 1] = a end
    local line = cjson.encode(req)
    local out, err, code = env.cli_run(batch, line .. "\n" .. line .. "\n", prefix())
    assert.are.equal(0, code, err)
    local n = 0
    for l in out:gmatch("[^\n]+") do
      check_files(strict_decode(l, err))
      n = n + 1
    end
    assert.are.equal(2, n, out)
  end)

  it("serve (its answer checked against doc/openapi.json)", function()
    local status, r = daemon.exchange(table.concat(args, " "), "POST", "/v1/run", cjson.encode(req), prefix())
    assert.are.equal(200, status, type(r) == "string" and r or cjson.encode(r))
    check_files(r)
  end)
end

-- Words for people quote names too: a message keeps them readable, with
-- U+FFFD for each byte that is not UTF-8, and the answer stays JSON. Here
-- the name is a policy's (Lua strings hold any bytes); on the k8s backend
-- kubectl's stderr, quoted where the pod never ran, carries the program's.
--
-- Checked: without push_words for error.message in esb_lua_push_result
-- (src/codec/convert.c; lua_pushstring, as before), the three faces here
-- fail: run --json and batch print lines that are not UTF-8, serve's answer
-- is "not UTF-8" in http_client.py's check.
describe("a message that quotes a name that is not UTF-8", function()
  env.check_leaks()
  local policy
  setup(function() policy = env.policy_file('policy.languages.cafe = { command = { "./caf\\xe9", "-c" } }') end)
  teardown(function() os.remove(policy) end)
  local req = cjson.encode { language = "cafe", code = "true" }
  local function check_message(r)
    assert.are.equal("exec_not_found", r.error.code, cjson.encode(r))
    assert.truthy(r.error.message:find("./caf\u{FFFD}", 1, true), r.error.message)
  end

  it("run --json", function()
    local out, err, code = env.cli_run({ "run", "--json", "--policy", policy }, req)
    assert.are.equal(127, code, err)
    check_message(strict_decode(out, err))
  end)

  it("batch", function()
    local out, err = env.cli_run({ "batch", "--policy", policy }, req .. "\n")
    check_message(strict_decode(out:match("[^\n]+"), err))
  end)

  it("serve", function()
    local _, r = daemon.exchange("--policy " .. policy, "POST", "/v1/run", req)
    check_message(r)
  end)
end)

-- A request is JSON, so UTF-8 (RFC 8259): cjson alone takes any bytes in a
-- string, and what a request names comes back in its result (batch's id,
-- a program name in a message). Such a request is refused, naming the byte.
--
-- Checked: without strict_decode (src/codec/json.c; cjson's decode as it
-- is), these fail: batch echoes the id's bytes (a line that is not UTF-8),
-- run --json and serve run the program and quote its name.
describe("a request that is not UTF-8", function()
  env.check_leaks()
  local function check_refused(r, at)
    assert.are.equal("invalid_request", r.error.code, cjson.encode(r))
    assert.truthy(r.error.message:find("not UTF-8 at byte " .. at, 1, true), r.error.message)
  end

  it("run --json", function()
    local out, err, code = env.cli_run({ "run", "--json" }, '{"program": "./caf\xe9"}')
    assert.are.equal(125, code, err)
    check_refused(strict_decode(out, err), 19)
  end)

  it("batch, whose result would carry the request's id", function()
    local out, err = env.cli_run({ "batch" }, '{"id": "caf\xe9", "shell": "true"}\n')
    check_refused(strict_decode(out:match("[^\n]+"), err), 12)
  end)

  it("serve", function()
    local status, r = daemon.exchange("", "POST", "/v1/run", '{"program": "./caf\xe9"}')
    assert.are.equal(400, status)
    check_refused(r, 19)
  end)
end)

describe("a collected file whose name is not UTF-8", function()
  env.check_leaks() -- in this outer block, so it runs after the fake server is stopped

  describe("on the local backend", function()
    through_every_face({}, function() return nil end, request)

    it("the Lua module, whose table has the JSON's fields", function()
      local sbx = require "echo_sandbox"
      local r = assert(sbx.run(request))
      check_files(r)
    end)
  end)

  local minor = env.newest_kubectl()
  describe("on the k8s backend, through the wrapper's frames", function()
    local k8s = { backend = "k8s" }
    for k, v in pairs(request) do k8s[k] = v end
    local fixture = minor and fake.per_spec(minor)
    if fixture then
      through_every_face({ "--policy", "spec/support/k8s_policy.lua" }, function() return fixture.server.env end, k8s)
    end
  end)

  local busybox = os.execute("test -x /usr/bin/busybox") and "/usr/bin/busybox"
  describe("on the k8s backend, on an image whose shell and tools are BusyBox's", function()
    local k8s = { backend = "k8s" }
    for k, v in pairs(request) do k8s[k] = v end
    local fixture = minor and busybox and fake.per_spec(minor, "--busybox " .. busybox)
    if fixture then
      it("run --json", function()
        local out, err, code = env.cli_run({ "run", "--json", "--policy", "spec/support/k8s_policy.lua" },
                                           cjson.encode(k8s), fixture.server.env)
        assert.are.equal(0, code, err)
        check_files(strict_decode(out, err))
      end)
    end
  end)
end)
