-- Files in, code as a file and files out on the k8s backend: through the
-- stdin handshake's wrapper (src/backend/k8s_payload.sh), against the fake
-- API server, which runs a pod's command on this host in a fresh working
-- dir of its own.
local env = require "spec.support.env"
local fake = require "spec.support.fake_kube"
local cjson = require "cjson"

local png = "\137PNG\r\n\26\n\0\0\0\rIHDR\0\0\0\1\0\0\0\1\8\6\0\0\0\31\21\196\137\255\254"

local base64, unbase64 = env.base64, env.unbase64

local function run_k8s(server, request)
  request.backend = "k8s"
  local out, err, code = env.cli_run({ "run", "--json", "--policy", "spec/support/k8s_policy.lua" },
                                     cjson.encode(request), server.env)
  local ok, r = pcall(cjson.decode, out)
  assert(ok, "stdout is not a JSON result: " .. out .. "\nstderr: " .. err)
  return r, code
end

local function paths(r)
  local list = {}
  for _, f in ipairs(r.files or {}) do list[#list + 1] = f.path end
  return list
end

-- The cases every image must pass, whatever its shell and tools.
local function shared_cases(fixture)
  it("writes the request's files into the pod's working dir: text in a subdir, binary bytes, a mode", function()
    local r, code = run_k8s(fixture.server, {
      shell = "cat notes/today.txt; od -An -tx1 data.bin; ./hello.sh; cat",
      files = {
        ["notes/today.txt"] = "grüße\n",
        ["data.bin"] = { base64 = "AP8Kgw==" },
        ["hello.sh"] = { text = "#!/bin/sh\necho hello from a file\n", mode = "755" },
      },
      stdin = "and stdin after them\n",
    })
    assert.are.equal(0, code, r.stderr)
    assert.are.equal("grüße\n 00 ff 0a 83\nhello from a file\nand stdin after them\n", r.stdout)
  end)

  it("brings a PNG-like file back byte for byte, and no file its patterns do not match nor a symlink", function()
    local r = run_k8s(fixture.server, {
      shell = "mkdir -p out/plots && cp in.png out/plots/fig.png && echo no > out/notes.txt "
           .. "&& ln -s /etc/passwd out/passwd.png && echo hidden > out/.h.png && echo printed",
      files = { ["in.png"] = { base64 = base64(png) } },
      collect = { "out/**/*.png" },
    })
    assert.are.equal(0, r.exit_code, r.stderr)
    assert.are.equal("printed\n", r.stdout)
    assert.are.same({ "out/plots/fig.png" }, paths(r))
    assert.are.equal(png, unbase64(r.files[1].base64))
    assert.are.equal(#png, r.files[1].size)
    assert.is_false(r.files[1].truncated)
    assert.is_false(r.files_truncated)
  end)
end

describe("files on the k8s backend", function()
  env.check_leaks() -- in this outer block, so it runs after the server is stopped
  local minor = env.newest_kubectl()

  describe("on a fake API server", function()
    local fixture = minor and fake.per_spec(minor)
    shared_cases(fixture)

    it("runs 1 MiB of python from main.py, with nothing of it on kubectl's command line", function()
      local code = "import sys\n# " .. ("x"):rep(1 << 20) .. "\nprint('ran', len(open(sys.argv[0]).read()), "
                .. "sys.argv[1:])\n"
      local r = run_k8s(fixture.server, { language = "python", code = code, args = { "an arg" } })
      assert.are.equal(0, r.exit_code, r.stderr)
      assert.are.equal(("ran %d ['an arg']\n"):format(#code), r.stdout)
      local body = cjson.encode(fake.query(fixture.server, "/_fake/received"))
      assert.is_nil(body:find("xxxxxxxxxx", 1, true), "the code is not in the pod")
      assert.truthy(body:find("main.py", 1, true))
    end)

    it("keeps output that looks like the frames in stdout, and takes files from the real ones only", function()
      local r = run_k8s(fixture.server, {
        shell = "printf 'F 3 3 forged.txt\\nabc\\nE 0\\n'; echo real > real.txt",
        collect = { "*.txt" },
      })
      assert.are.equal(0, r.exit_code, r.stderr)
      assert.are.equal("F 3 3 forged.txt\nabc\nE 0\n", r.stdout)
      assert.are.same({ "real.txt" }, paths(r))
    end)

    it("passes the program's exit code on after collecting", function()
      local r = run_k8s(fixture.server, { shell = "echo x > a.txt; exit 3", collect = { "a.txt" } })
      assert.are.equal(3, r.exit_code)
      assert.are.same({ "a.txt" }, paths(r))
    end)

    it("refuses paths and patterns that leave the working dir, naming them, before anything is created", function()
      for _, path in ipairs { "/etc/passwd", "../x", "a/../../x" } do
        local r, code = run_k8s(fixture.server, { shell = "true", files = { [path] = "x" } })
        assert.are.equal(125, code)
        assert.are.equal("invalid_request", r.error.code)
        assert.truthy(r.error.message:find("'files' has the path \"" .. path .. "\"", 1, true), r.error.message)
        r = run_k8s(fixture.server, { shell = "true", collect = { path } })
        assert.truthy(r.error.message:find("'collect[1]' (\"" .. path .. "\")", 1, true), r.error.message)
      end
      assert.are.same({}, fake.query(fixture.server, "/_fake/received"))
    end)

    it("refuses a path or pattern with a newline, which the wrapper cannot read, before anything is created",
       function()
      local r, code = run_k8s(fixture.server, { shell = "true", files = { ["a\nb"] = "x" } })
      assert.are.equal(125, code)
      assert.are.equal("invalid_request", r.error.code)
      assert.truthy(r.error.message:find("has a newline", 1, true), r.error.message)
      r = run_k8s(fixture.server, { shell = "true", collect = { "a\nb" } })
      assert.truthy(r.error.message:find("'collect[1]' has a newline", 1, true), r.error.message)
      assert.are.same({}, fake.query(fixture.server, "/_fake/received"))
    end)
  end)

  local busybox = io.open("/usr/bin/busybox") and "/usr/bin/busybox"
  describe("on an image whose shell and tools are BusyBox's", function()
    -- BusyBox's head reads ahead through stdio: the wrapper reads its whole
    -- block with one head, before anything else is on its stdin.
    local fixture = minor and busybox and fake.per_spec(minor, "--busybox " .. busybox)
    if fixture then
      shared_cases(fixture)

      it("has BusyBox's head, not coreutils', for the pod's tools", function()
        local r = run_k8s(fixture.server, { shell = "head --help 2>&1 | head -n 1", files = { a = "b" } })
        assert.truthy(r.stdout:find("BusyBox", 1, true), r.stdout)
      end)
    end
  end)
end)
