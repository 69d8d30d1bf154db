local env = require "spec.support.env"
local cjson = require "cjson"

local run_json = env.run_json

describe("echo-sandbox run", function()
  env.check_leaks()

  it("runs python code from the policy's language table", function()
    local r, code = run_json { language = "python", code = "print(6*7)" }
    assert.are.equal(0, code)
    assert.are.equal(0, r.exit_code)
    assert.are.equal("42\n", r.stdout)
    assert.are.equal("local", r.sandbox_type)
    assert.are.equal("exited", r.status)
    assert.are.equal("Completed", r.reason)
  end)

  it("prints the program's output and exits with its code in flag form", function()
    local out, err, code = env.cli_run { "run", "--shell", "echo out; echo err >&2; exit 3" }
    assert.are.equal("out\n", out)
    assert.are.equal("err\n", err)
    assert.are.equal(3, code)
  end)

  it("keeps stdout and stderr apart and reports exit codes 0, 3 and 255", function()
    for _, n in ipairs { 0, 3, 255 } do
      local r = run_json { shell = ("echo to-out; echo to-err >&2; exit %d"):format(n) }
      assert.are.equal(n, r.exit_code)
      assert.are.equal("to-out\n", r.stdout)
      assert.are.equal("to-err\n", r.stderr)
      assert.are.equal("exited", r.status)
    end
  end)

  it("reports a program killed by a signal", function()
    local r, code = run_json { shell = "kill -KILL $$" }
    assert.are.equal("signaled", r.status)
    assert.are.equal(9, r.signal)
    assert.are.equal(137, r.exit_code)
    assert.are.equal(137, code)
    assert.is_false(r.killed_by_us)
  end)

  it("passes 20 MB of stdin through cat byte for byte", function()
    local data = {}
    for i = 1, 20 * 1024 do data[i] = string.char(i % 256):rep(1024) end
    data = table.concat(data)
    local path = os.tmpname()
    env.write_file(path, data)
    local out, err, code = env.cli_run { "run", "--max-output", "25Mi", "--stdin-file", path, "--", "cat" }
    os.remove(path)
    assert.are.equal(0, code, err)
    assert.are.equal(#data, #out)
    assert.is_true(out == data)
  end)

  it("gives a program without stdin EOF at once", function()
    local r = run_json { shell = "cat; echo done" , timeout_ms = 5000 }
    assert.are.equal("exited", r.status)
    assert.are.equal("done\n", r.stdout)
  end)

  it("kills a timed-out shell and every process it started", function()
    local r, code = run_json { shell = "sleep 30 & sleep 30; wait", timeout_ms = 500 }
    assert.are.equal("timed_out", r.status)
    assert.is_true(r.timed_out)
    assert.is_true(r.killed_by_us)
    assert.are.equal(124, code)
    -- the run did not wait for the sleeps (30 s) to end; the leak check after
    -- this spec proves none of them is left
    assert.is_true(r.duration_ms < 10000)
  end)

  it("caps the output and counts what was written", function()
    local r = run_json { shell = "head -c 5000000 /dev/zero | tr '\\0' x", limits = { max_output_bytes = 1000 } }
    assert.are.equal(1000, #r.stdout)
    assert.is_true(r.stdout_truncated)
    assert.are.equal(5000000, r.stdout_bytes)
    assert.is_false(r.stderr_truncated)
  end)

  -- Checked: with the flag form's sink left as our own fds whatever
  -- --max-output says (as before), all 5 MB reach our stdout and nothing is
  -- said of a cut.
  it("cuts what passes through to our stdout and stderr at --max-output, each once, the code the program's", function()
    local out, err, code = env.cli_run { "run", "--max-output", "1k", "--shell",
      "head -c 5000000 /dev/zero | tr '\\0' x; printf 'to stderr\\n' >&2; head -c 3000 /dev/zero | tr '\\0' y >&2; exit 3" }
    assert.are.equal(3, code)
    assert.are.equal(("x"):rep(1000), out)
    assert.are.equal("to stderr\n" .. ("y"):rep(990) .. "\n"
      .. "echo-sandbox: stderr cut at 1000 bytes (--max-output)\n", err:gsub("echo%-sandbox: stdout cut[^\n]*\n", ""))
    local _, cuts = err:gsub("echo%-sandbox: stdout cut at 1000 bytes %(%-%-max%-output%)\n", "")
    assert.are.equal(1, cuts)
    -- under the cap, nothing is cut or said
    out, err, code = env.cli_run { "run", "--max-output", "1k", "--shell", "echo small; echo small >&2" }
    assert.are.equal(0, code, err)
    assert.are.equal("small\n", out)
    assert.are.equal("small\n", err)
  end)

  it("returns output that is not UTF-8 as base64", function()
    local r = run_json { shell = "printf '\\377\\376\\000A'" }
    assert.is_nil(r.stdout)
    assert.are.equal("//4AQQ==", r.stdout_base64)
    assert.are.equal(4, r.stdout_bytes)
  end)

  it("does not pass its own environment on, but the request's env", function()
    local out = env.cli_run({ "run", "--env", "GIVEN=yes", "--shell", "echo given=$GIVEN secret=$ESB_SECRET" },
                            nil, "ESB_SECRET=leaked")
    assert.are.equal("given=yes secret=\n", out)
  end)

  local hog = { language = "python", code = "x = bytearray(512 * 1024 * 1024)\nprint('allocated')",
                limits = { memory_bytes = 64 * 1024 * 1024 } }

  -- The cgroup limits are spec/cgroup_spec.lua's.
  it("enforces the memory limit as an address-space limit when the policy turns cgroups off", function()
    local path = env.policy_file("policy.local_sandbox.cgroups = false")
    local r = run_json(hog, { "--policy", path })
    os.remove(path)
    assert.are.equal("exited", r.status)
    assert.are.equal(1, r.exit_code)
    assert.truthy(r.stderr:find("MemoryError"))
  end)

  it("bounds the number of processes", function()
    local r = run_json { shell = "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 5 & done; wait",
                         limits = { max_processes = 6 }, timeout_ms = 3000 }
    assert.truthy(r.stderr:find("fork", 1, true) or r.stderr:find("resource", 1, true), r.stderr)
  end)

  it("exits 127 and names a program that is not there", function()
    local out, err, code = env.cli_run { "run", "--", "no-such-program-here" }
    assert.are.equal(127, code)
    assert.truthy(err:find("no-such-program-here", 1, true))
    local r = run_json { program = "no-such-program-here" }
    assert.are.equal("error", r.status)
    assert.are.equal("exec_not_found", r.error.code)
    assert.truthy(r.error.message:find("no-such-program-here", 1, true))
    assert.are.equal("", out)
  end)

  it("exits 126 for a file that cannot be executed", function()
    local r, code = run_json { program = "/etc/passwd" }
    assert.are.equal(126, code)
    assert.are.equal("exec_denied", r.error.code)
  end)

  it("rejects malformed JSON with exit 125 and says where", function()
    local out, err, code = env.cli_run({ "run", "--json" }, "{\"shell\": ")
    assert.are.equal(125, code)
    assert.truthy(err:find("invalid request JSON", 1, true))
    local r = cjson.decode(out)
    assert.are.equal("invalid_request", r.error.code)
  end)

  it("names the field of an invalid request", function()
    for request, field in pairs {
      ['{"shell": 5}'] = "'shell'",
      ['{"shell": "true", "timeout_ms": -1}'] = "'timeout_ms'",
      ['{"shell": "true", "limits": {"memroy_bytes": 5}}'] = "limits.memroy_bytes",
      ['{"shell": "true", "program": "ls"}'] = "exactly one",
      ['{"language": "cobol", "code": "x"}'] = "cobol",
      ['[1, 2]'] = "must be an object",
    } do
      local out, err, code = env.cli_run({ "run", "--json" }, request)
      assert.are.equal(125, code)
      assert.truthy(err:find(field, 1, true), request .. " -> " .. err)
      assert.are.equal("invalid_request", cjson.decode(out).error.code)
    end
  end)

  -- Checked: with the value described by its type alone (as before), each
  -- message said "(got string)" or "(got number)" instead.
  it("quotes the value it refuses: escaped, and only its first bytes", function()
    for request, says in pairs {
      ['{"shell": 5}'] = "'shell' must be a string (got 5)",
      ['{"shell": "true", "timeout_ms": "5s"}'] = [['timeout_ms' must be a positive integer (got "5s")]],
      ['{"shell": "true", "timeout_ms": -1.5}'] = "(got -1.5)",
      ['{"shell": "true", "limits": {"network": "yes"}}'] = [['limits.network' must be true, false or {"allow": [host names]} (got "yes")]],
      ['{"shell": "true", "timeout_ms": "a\\u001b[2J\\"\\\\\\n"}'] = [[(got "a\x1b[2J\"\\\n")]],
      ['{"shell": "true", "timeout_ms": "' .. ("x"):rep(5000) .. '"}'] = '(got "' .. ("x"):rep(40) .. '"... (5000 bytes))',
    } do
      local out, err, code = env.cli_run({ "run", "--json" }, request)
      assert.are.equal(125, code)
      assert.truthy(err:find(says, 1, true), says .. " -> " .. err)
      assert.truthy(cjson.decode(out).error.message:find(says, 1, true))
    end
  end)

  -- The leak check after each spec fails if the program, its sandbox, its
  -- cgroups or (without namespaces) its working dir is left.
  for _, case in ipairs { { "TERM", 143 }, { "INT", 130 } } do
    it(("kills the program and cleans up when it gets SIG%s"):format(case[1]), function()
      local seconds = env.unique_seconds(30)
      local pid, wait = env.cli_background { "run", "--", "sleep", seconds }
      assert.is_true(env.wait_running { "sleep", seconds }, "the program did not start")
      os.execute("kill -" .. case[1] .. " " .. pid)
      assert.are.equal(case[2], wait())
    end)
  end

  it("names the file that --code-file or --stdin-file cannot read", function()
    local _, err, code = env.cli_run { "run", "--lang", "python", "--code-file", "/nonexistent/job.py" }
    assert.are.equal(125, code)
    assert.truthy(err:find("--code-file /nonexistent/job.py: No such file or directory", 1, true), err)
    _, err, code = env.cli_run { "run", "--stdin-file", "/nonexistent/in.txt", "--", "cat" }
    assert.are.equal(125, code)
    assert.truthy(err:find("--stdin-file /nonexistent/in.txt: No such file or directory", 1, true), err)
  end)

  it("refuses unknown flags with exit 125", function()
    local _, err, code = env.cli_run { "run", "--bogus" }
    assert.are.equal(125, code)
    assert.truthy(err:find("--bogus", 1, true))
  end)
end)
