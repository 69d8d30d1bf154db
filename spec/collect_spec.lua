-- Files out: a request's `collect` patterns bring the matching files of the
-- working dir back in the result, on the local backend (the k8s backend's
-- are in spec/k8s_files_spec.lua). Every defence named in
-- src/engine/contract/collect.h has its case here.
local env = require "spec.support.env"
local cjson = require "cjson"

local run_json = env.run_json

-- The bytes of a PNG's signature and header chunk, NUL and high bytes in it.
local png = "\137PNG\r\n\26\n\0\0\0\rIHDR\0\0\0\1\0\0\0\1\8\6\0\0\0\31\21\196\137\255\254"

local b64decode = env.unbase64

-- The arguments that run with a policy of these lines (removed after the spec).
local function with_policy(lines)
  local path = env.policy_file(lines)
  finally(function() os.remove(path) end)
  return { "--policy", path }
end

local function by_path(r)
  local t = {}
  for _, f in ipairs(r.files or {}) do t[f.path] = f end
  return t
end

describe("a request's collect", function()
  env.check_leaks()

  it("brings back the files its patterns match, a directory down or more, and no other", function()
    local r, code = run_json {
      shell = "mkdir -p out/plots/2026 && printf '\\211PNG' > out/plots/2026/fig.png && echo 'a,b' > out/table.csv "
           .. "&& echo scratch > out/notes.txt && echo top > top.png && echo hidden > out/.fig.png",
      collect = { "out/**/*.png", "out/*.csv" },
    }
    assert.are.equal(0, code, r.stderr)
    local files = by_path(r)
    assert.are.equal("\137PNG", b64decode(files["out/plots/2026/fig.png"].base64))
    assert.truthy(files["out/table.csv"], cjson.encode(r.files))
    assert.are.equal("a,b\n", b64decode(files["out/table.csv"].base64))
    assert.is_nil(files["out/notes.txt"])
    assert.is_nil(files["top.png"])
    assert.is_nil(files["out/.fig.png"])
    assert.is_false(r.files_truncated)
  end)

  it("is byte-exact for a PNG-like file the request brought in and the program copied", function()
    local encoded = env.base64(png)
    local r = run_json {
      shell = "mkdir out && cp in.png out/copy.png",
      files = { ["in.png"] = { base64 = encoded } },
      collect = { "out/*.png" },
    }
    assert.are.equal(0, r.exit_code, r.stderr)
    assert.are.equal(1, #r.files)
    local f = r.files[1]
    assert.are.equal("out/copy.png", f.path)
    assert.are.equal(#png, f.size)
    assert.are.equal(encoded, f.base64)
    assert.are.equal(png, b64decode(f.base64))
    assert.is_false(f.truncated)
  end)

  it("follows no symlink, reads no fifo and takes no file with a second link", function()
    local r = run_json {
      shell = "mkdir out && ln -s /etc/passwd out/passwd.txt && ln -s /etc out/etc && mkfifo out/fifo.txt "
           .. "&& echo mine > out/mine.txt && ln out/mine.txt out/again.txt && echo ok > out/ok.txt",
      collect = { "out/*.txt", "out/etc/*", "**/passwd" },
    }
    assert.are.equal(0, r.exit_code, r.stderr)
    assert.are.same({ "out/ok.txt" }, (function()
      local paths = {}
      for _, f in ipairs(r.files) do paths[#paths + 1] = f.path end
      return paths
    end)())
  end)

  it("reads the files once every process of the run is gone", function()
    -- A process the program leaves behind would go on writing: it is killed
    -- first, so what comes back is what was there when it stopped.
    local r = run_json {
      shell = "(while :; do echo more >> grows.txt; done) & "
           .. "while [ ! -s grows.txt ]; do :; done; echo started",
      collect = { "grows.txt" },
      timeout_ms = 20000,
    }
    assert.are.equal(0, r.exit_code, r.stderr)
    assert.are.equal("started\n", r.stdout)
    local f = r.files[1]
    assert.truthy(f, cjson.encode(r))
    local text = b64decode(f.base64)
    assert.are.equal(f.size, #text)
    assert.truthy(#text > 0 and text:gsub("more\n", "") == "", "whole lines only: " .. text:sub(1, 100))
  end)

  it("keeps to the policy's ceilings: a file cut to max_file_bytes, its size told; at most max_count files", function()
    local policy = with_policy("policy.collect.max_file_bytes = 4\npolicy.collect.max_count = 2")
    local r = run_json({ shell = "echo 0123456789 > a.txt; echo b > b.txt; echo c > c.txt", collect = { "*.txt" } },
                       policy)
    assert.are.equal(0, r.exit_code, r.stderr)
    assert.are.equal(2, #r.files)
    assert.is_true(r.files_truncated)
    local a = by_path(r)["a.txt"]
    if a then
      assert.are.equal(11, a.size)
      assert.is_true(a.truncated)
      assert.are.equal("0123", b64decode(a.base64))
    end
    r = run_json({ shell = "echo 0123456789 > a.txt", collect = { "*.txt" } }, policy)
    assert.are.same({ path = "a.txt", size = 11, truncated = true, base64 = "MDEyMw==" }, r.files[1])
  end)

  it("collects from the host working dir with isolation rlimits, following no symlink there either", function()
    local r = run_json({ shell = "ln -s /etc/passwd p.txt; echo here > h.txt", collect = { "*.txt" } },
                       with_policy('policy.local_sandbox.isolation = "rlimits"'))
    assert.are.equal("rlimits", r.isolation)
    assert.are.equal(1, #r.files)
    assert.are.equal("h.txt", r.files[1].path)
    assert.are.equal("here\n", b64decode(r.files[1].base64))
  end)

  -- Defence: no failure dropped (backend/local.c, read_collected): files
  -- that cannot be read back are said in a warning. Checked: without it,
  -- the result of a program that removed its host working dir listed no
  -- files and said nothing.
  it("says in a warning when the files cannot be read back: the program removed its host working dir", function()
    -- A $TMPDIR like /tmp (sticky, anyone's to write in): the working dir,
    -- once the program's, is the program's to remove.
    local base = os.tmpname()
    os.remove(base)
    assert.is_true(os.execute("mkdir -m 1777 " .. env.quote(base)))
    -- one finally a spec (busted keeps the last): the policy's and base's
    local path = env.policy_file('policy.local_sandbox.isolation = "rlimits"')
    finally(function()
      os.remove(path)
      os.execute("rm -rf " .. env.quote(base))
    end)
    local policy = { "--policy", path }
    local out, err = env.cli_run({ "run", "--json", policy[1], policy[2] },
                                 cjson.encode { shell = 'd=$PWD; cd / && rmdir "$d"', collect = { "*.txt" } },
                                 "TMPDIR=" .. env.quote(base))
    local r = cjson.decode(out)
    assert.are.equal(0, r.exit_code, out .. err)
    assert.is_nil(r.files)
    local said = r.warnings and r.warnings[#r.warnings] or ""
    assert.truthy(said:find("^the run's files %(collect%) could not be read back %(No such file or directory%): " ..
                            "none are listed$"), out)
  end)

  it("says files_truncated false and lists no files when nothing matches; no collect, no such fields", function()
    local r = run_json { shell = "true", collect = { "*.png" } }
    assert.is_nil(r.files)
    assert.is_false(r.files_truncated)
    r = run_json { shell = "echo x > a.png" }
    assert.is_nil(r.files)
    assert.is_nil(r.files_truncated)
  end)

  it("refuses patterns that leave the working dir, naming them", function()
    for _, pattern in ipairs { "/etc/passwd", "../x", "a/../../x", "./a", "a//b", "a/", "" } do
      local r, code = run_json { shell = "true", collect = { "ok.txt", pattern } }
      assert.are.equal(125, code)
      assert.are.equal("invalid_request", r.error.code)
      assert.truthy(r.error.message:find("'collect[2]' (\"" .. pattern .. "\")", 1, true), r.error.message)
    end
    local many = {}
    for i = 1, 65 do many[i] = "f" .. i end
    local r = run_json { shell = "true", collect = many }
    assert.truthy(r.error.message:find("65 patterns, more than 64", 1, true), r.error.message)
    r = run_json { shell = "true", collect = "*.txt" }
    assert.truthy(r.error.message:find("'collect'", 1, true), r.error.message)
  end)

  it("is refused on the k8s backend when the policy turned its handshake off, before anything is created",
     function()
    local policy = env.policy_file("policy.k8s.handshake = false")
    finally(function() os.remove(policy) end)
    local r, code = run_json({ shell = "true", backend = "k8s", collect = { "*" } }, { "--policy", policy })
    assert.are.equal(125, code)
    assert.are.equal("invalid_request", r.error.code)
    assert.truthy(r.error.message:find("need the handshake on the k8s backend", 1, true), r.error.message)
  end)

  it("comes back through the Lua module, whose sandbox starts in the host's process", function()
    local sbx = require "echo_sandbox"
    local r = assert(sbx.run { shell = "echo lua > m.txt", collect = { "*.txt" } })
    assert.are.equal("m.txt", r.files[1].path)
    assert.are.equal("bHVhCg==", r.files[1].base64)
  end)
end)
