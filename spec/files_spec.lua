-- Files in: a request's `files`, and a language's code written to a file of
-- the working dir instead of argv, on the local backend (the k8s backend's
-- are in spec/k8s_files_spec.lua).
local env = require "spec.support.env"
local cjson = require "cjson"

local run_json = env.run_json

describe("a request's files", function()
  env.check_leaks()

  it("are in the working dir before the program starts: text in a subdir, binary bytes, a mode", function()
    local r, code = run_json {
      shell = "cat notes/today.txt; od -An -tx1 data.bin; ./hello.sh; stat -c '%a %U' hello.sh notes/today.txt",
      files = {
        ["notes/today.txt"] = "grüße\n",
        ["data.bin"] = { base64 = "AP8Kgw==" },
        ["hello.sh"] = { text = "#!/bin/sh\necho hello from a file\n", mode = "755" },
      },
    }
    assert.are.equal(0, code, r.stderr)
    assert.are.equal("grüße\n 00 ff 0a 83\nhello from a file\n755 nobody\n644 nobody\n", r.stdout)
  end)

  it("belong to the program, which may change and remove them", function()
    local r = run_json { shell = "echo new > a && cat a && rm -r d && ls", files = { a = "old", ["d/e/f"] = "x" } }
    assert.are.equal(0, r.exit_code, r.stderr)
    assert.are.equal("new\na\n", r.stdout)
  end)

  it("are written on a host working dir too, with isolation rlimits", function()
    local policy = env.policy_file('policy.local_sandbox.isolation = "rlimits"')
    finally(function() os.remove(policy) end)
    local r = run_json({ shell = "cat sub/x; pwd", files = { ["sub/x"] = "on the host\n" } }, { "--policy", policy })
    assert.are.equal(0, r.exit_code, r.stderr)
    assert.truthy(r.stdout:find("^on the host\n/.*echo%-sandbox%-"), r.stdout)
  end)

  -- Checked: with the path's message built as a field's (as before), it
  -- named 'files.PATH' as a field and said "(got string)", not the path.
  it("are refused, naming the path, when it is no clean path below the working dir", function()
    for _, path in ipairs { "/etc/passwd", "../x", "a/../../x", "./a", "a//b", "a/", "", "a/./b" } do
      local r, code = run_json { shell = "true", files = { [path] = "x" } }
      assert.are.equal(125, code)
      assert.are.equal("invalid_request", r.error.code)
      assert.truthy(r.error.message:find("'files' has the path \"" .. path .. "\": a path must be relative", 1, true),
                    r.error.message)
    end
  end)

  it("are refused when a value is not content, or one path is another's directory", function()
    for files, says in pairs {
      [cjson.encode { a = { text = "x", base64 = "eA==" } }] = "'files.a' must have one of 'text' and 'base64' (got both)",
      [cjson.encode { a = { mode = 420 } }] = "(got neither)",
      [cjson.encode { a = { base64 = "not base64" } }] = "'files.a.base64' must be standard base64",
      [cjson.encode { a = { text = "x", mode = 4095 } }] = "'files.a.mode'",
      [cjson.encode { a = { text = "x", size = 1 } }] = "unknown field 'files.a.size'",
      [cjson.encode { a = 42 }] = "'files.a' must be",
      [cjson.encode { a = "x", ["a/b"] = "y" }] = "'files.a' is a file, and the directory of 'a/b'",
      ['["x"]'] = "'files' must be an object",
    } do
      local out, _, code = env.cli_run({ "run", "--json" }, '{"shell":"true","files":' .. files .. '}')
      local r = cjson.decode(out)
      assert.are.equal(125, code)
      assert.truthy(r.error.message:find(says, 1, true), r.error.message .. " / " .. says)
    end
  end)

  it("are held to the policy's ceilings, naming the file that goes over", function()
    local policy = env.policy_file("policy.files.max_count = 2\npolicy.files.max_bytes = 10")
    finally(function() os.remove(policy) end)
    local r = run_json({ shell = "true", files = { a = "1", b = "2", c = "3" } }, { "--policy", policy })
    assert.are.equal("invalid_request", r.error.code)
    assert.truthy(r.error.message:find("3 files, more than the policy's 2 (at 'c')", 1, true), r.error.message)
    r = run_json({ shell = "true", files = { a = "123456", b = "123456" } }, { "--policy", policy })
    assert.truthy(r.error.message:find("more than the policy's 10 bytes together (at 'b'", 1, true), r.error.message)
    r = run_json({ shell = "true", files = { a = "123456" } }, { "--policy", policy })
    assert.are.equal(0, r.exit_code)
  end)

  it("are refused on the k8s backend when the policy turned its handshake off, before anything is created",
     function()
    -- The pod's wrapper that writes them is a shell script (spec/k8s_files_spec.lua runs it).
    local policy = env.policy_file("policy.k8s.handshake = false")
    finally(function() os.remove(policy) end)
    local r, code = run_json({ shell = "true", backend = "k8s", files = { a = "x" } }, { "--policy", policy })
    assert.are.equal(125, code)
    assert.are.equal("invalid_request", r.error.code)
    assert.truthy(r.error.message:find("need the handshake on the k8s backend", 1, true), r.error.message)
  end)
end)

describe("code as a file", function()
  env.check_leaks()

  it("runs 1 MiB of python from main.py in the working dir, with nothing of it in argv", function()
    local code = ('data = "%s"\nimport sys\nprint(len(data), sys.argv, open("/proc/self/cmdline").read().split("\\0"))')
      :format(("x"):rep(1 << 20))
    local r, exit = run_json { language = "python", code = code, args = { "one" } }
    assert.are.equal(0, exit, r.stderr)
    assert.are.equal("1048576 ['main.py', 'one'] ['python3', 'main.py', 'one', '']\n", r.stdout)
  end)

  it("is what policy explain shows as argv, and code over the policy's ceiling is refused", function()
    local out = env.cli_run { "policy", "explain", "--json", "--lang", "python", "--code", "print(1)" }
    assert.are.same({ "python3", "main.py" }, cjson.decode(out).argv)
    local policy = env.policy_file("policy.code.max_bytes = 10")
    finally(function() os.remove(policy) end)
    local r = run_json({ language = "python", code = "print(123456789)" }, { "--policy", policy })
    assert.are.equal("invalid_request", r.error.code)
    assert.truthy(r.error.message:find("'code' is 16 bytes, more than the policy's 10", 1, true), r.error.message)
  end)

  it("is refused where a request's file would take its place", function()
    local r = run_json { language = "python", code = "print(1)", files = { ["main.py"] = "print(2)" } }
    assert.are.equal("invalid_request", r.error.code)
    assert.truthy(r.error.message:find("'files.main.py': the policy writes the code to 'main.py'", 1, true),
                  r.error.message)
  end)
end)
