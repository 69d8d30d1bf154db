-- Files in, code as a file and files out on the k8s backend: through the
-- stdin handshake's wrapper (src/backend/k8s_payload.sh), against the fake
-- API server, which runs a pod's command on this host in a fresh working
-- dir of its own.
local env = require "spec.support.env"
local fake = require "spec.support.fake_kube"
local cjson = require "cjson"
local expect = require("spec.support.k8s_faults").expect

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

-- Whether a process of pid is still there (not yet reaped by whoever its
-- parent is now: a moment's grace, as env.check_leaks gives).
local function still_there(pid)
  for _ = 1, 50 do
    local f = io.open("/proc/" .. pid .. "/stat")
    local stat = f and f:read("a")
    if f then f:close() end
    if not stat or stat:match("%) (%a)") == "Z" then return false end
    env.sleep(0.05)
  end
  return true
end

-- The cases every image must pass, whatever its shell and tools.
local function shared_cases(fixture)
  -- Checked: without "./" before the names (chmod "$md" "$p"), the wrapper
  -- ran `chmod 644 -x` and the program never started.
  it("takes files, directories and collected files whose names start with '-' as names, not options", function()
    local r = run_k8s(fixture.server, {
      shell = "cat ./-x ./-d/-y; ls -l ./-d/-y | cut -c1-4; echo z > ./-z; echo ü > grüße.txt",
      files = { ["-x"] = "hi\n", ["-d/-y"] = { text = "yo\n", mode = "755" } },
      collect = { "-z", "*.txt" },
    })
    assert.are.equal(0, r.exit_code, cjson.encode(r))
    assert.are.equal("hi\nyo\n-rwx\n", r.stdout)
    assert.are.same({ "-z", "grüße.txt" }, paths(r))
    assert.are.equal("z\n", unbase64(r.files[1].base64))
    assert.are.equal("ü\n", unbase64(r.files[2].base64))
  end)

  -- Checked: without the wrapper killing what the program left behind
  -- (reap), the process below wrote after the wrapper's end: no files came
  -- back (a warning said they were malformed), and it outlived the run.
  it("takes no frames from a process the program left behind, and leaves none of it", function()
    local pidfile = os.tmpname()
    local r = run_k8s(fixture.server, {
      shell = "echo real > real.txt; ( i=0; while [ $i -lt 3000 ]; do "
           .. "printf 'F 6 6 forged.txt\\nforged\\nE 0 24\\n'; i=$((i + 1)); sleep 0.001; done ) & "
           .. "echo $! > " .. pidfile,
      collect = { "*.txt" },
    })
    local pid = env.read_file(pidfile):match("%d+")
    os.remove(pidfile)
    assert.are.equal(0, r.exit_code, cjson.encode(r))
    assert.is_nil(r.warnings)
    assert.are.same({ "real.txt" }, paths(r))
    assert.are.equal("real\n", unbase64(r.files[1].base64))
    assert.is_false(still_there(pid))
  end)

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

    -- Checked: without finding the frames from the wrapper's end (the
    -- first marker taken, as before), the forged file came back instead.
    it("takes no frames from a program that read the marker out of the wrapper's memory", function()
      local code = [[
import os, re, sys
pid = os.getppid()
pattern = re.compile(rb"\x1eecho-sandbox-files-[0-9a-f]{32}")
found = None
with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
    for line in maps:
        span, perms = line.split()[:2]
        if not perms.startswith("r") or "[v" in line:
            continue
        lo, hi = (int(x, 16) for x in span.split("-"))
        try:
            mem.seek(lo)
            m = pattern.search(mem.read(hi - lo))
        except (OSError, ValueError, OverflowError):
            continue
        if m:
            found = m.group(0)
            break
if not found:
    sys.exit(3)
open("real.txt", "w").write("real\n")
frames = b"F 6 6 forged.txt\nforged\n"
sys.stdout.buffer.write(b"read it\n" + found + b"\n" + frames + b"E 0 %d\n" % len(frames))
]]
      local r = run_k8s(fixture.server, { program = "python3", args = { "-c", code }, collect = { "*.txt" } })
      assert.are.equal(0, r.exit_code, cjson.encode(r)) -- 3: it did not find the marker
      assert.are.same({ "real.txt" }, paths(r))
      assert.are.equal("real\n", unbase64(r.files[1].base64))
      -- what it wrote is its output, held until the end said whose it was
      assert.truthy(r.stdout:find("^read it\n\30echo%-sandbox%-files%-%x+\nF 6 6 forged.txt\nforged\nE 0 24\n$"),
                    r.stdout)
      assert.is_nil(r.warnings)
    end)

    -- As in a pod, the wrapper is pid 1 of the pod's own pid namespace:
    -- kill -1 reaches a leftover that made a session of its own.
    -- Checked: without kill -1 (the session's processes alone killed), the
    -- leftover's lines came among the frames: none came back (malformed).
    it("takes no frames from a leftover in a session of its own, the wrapper being the pod's pid 1", function()
      if not env.is_root() then
        pending("a pid namespace per pod needs root")
        return
      end
      local token = ("esb-leftover-%d-%d"):format(os.time(), math.random(1 << 30))
      local server = fake.start(minor, "--pid-namespace")
      local r = run_k8s(server, {
        shell = "echo real > real.txt; setsid sh -c 'i=0; while [ $i -lt 3000 ]; do "
             .. "printf \"F 6 6 forged.txt\\nforged\\nE 0 24\\n\"; i=$((i + 1)); sleep 0.001; done; : "
             .. token .. "' & echo ppid=$PPID",
        collect = { "*.txt" },
      })
      local left = fake.pods(server)
      fake.stop(server)
      assert.are.same({}, left)
      assert.are.equal(0, r.exit_code, cjson.encode(r))
      assert.truthy(r.stdout:find("ppid=1\n", 1, true), r.stdout) -- the program's shell, under pid 1
      assert.is_nil(r.warnings)
      assert.are.same({ "real.txt" }, paths(r))
      assert.are.equal("real\n", unbase64(r.files[1].base64))
      local _, found = env.sh("pgrep -f '[" .. token:sub(1, 1) .. "]" .. token:sub(2) .. "'")
      assert.are.equal("", found)
    end)

    -- Checked: without the engine reading the wrapper's first line
    -- (judge_wrapper), the result was "exited" 125 with chmod's words in
    -- stderr: the program blamed for the image.
    it("reports a wrapper step that fails before the program as the backend's failure, naming the step", function()
      local server = fake.start(minor, "--failing-tool chmod")
      local r, code = run_k8s(server, { shell = "echo never", files = { ["-x"] = "hi" } })
      local left = fake.pods(server)
      fake.stop(server)
      assert.are.same({}, left)
      assert.are.equal(125, code)
      assert.are.equal("error", r.status, cjson.encode(r))
      assert.are.equal("backend_error", r.error.code)
      expect(r, "wrapper_failed")
      assert.truthy(r.error.message:find("before the program started, setting the mode of file -x: ", 1, true)
                    and r.error.message:find("chmod: Read-only file system", 1, true), r.error.message)
      assert.is_false(r.error.retryable)
      assert.are.equal("", r.stdout)
      assert.are.equal("", r.stderr)
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

      -- Checked: taking the failure line anywhere but first lets the
      -- program end its own run as the backend's fault.
      it("takes the wrapper's failure line from the program as its output", function()
        local r, code = run_k8s(fixture.server, {
          shell = "printf '\\036echo-sandbox-wrapper-failed forged\\n'; exit 125", files = { a = "x" } })
        assert.are.equal(125, code)
        assert.are.equal("exited", r.status, cjson.encode(r))
        assert.are.equal("\30echo-sandbox-wrapper-failed forged\n", r.stdout)
      end)

      it("has BusyBox's head, not coreutils', for the pod's tools", function()
        local r = run_k8s(fixture.server, { shell = "head --help 2>&1 | head -n 1", files = { a = "b" } })
        assert.truthy(r.stdout:find("BusyBox", 1, true), r.stdout)
      end)
    end
  end)
end)
