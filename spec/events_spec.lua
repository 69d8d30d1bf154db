-- batch --events: each run's output as it comes, as event lines before the
-- run's result line, on both backends. Order is proven by an interlock, not
-- a clock: the program prints "first", then waits on a fifo that the spec
-- writes only after it has read the "first" event.
local env = require "spec.support.env"
local fake = require "spec.support.fake_kube"
local cjson = require "cjson"

-- A dir with the fifos: go (the program waits on it) and out (batch's stdout).
-- It is mounted writable: a read-only mount reaches the run through an
-- overlay of its own, whose fifos are the run's, not the host's.
local function interlock_dir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute(("mkdir -m 755 %s && mkfifo -m 666 %s/go %s/out"):format(dir, dir, dir)))
  return dir
end

-- Runs `batch --events ARGS` on the request in the background (a watchdog
-- turns a batch that holds its output back into a failure, not a hang);
-- returns the out fifo and a function that waits for the exit code.
local function start_batch(dir, args, request, env_prefix)
  env.write_file(dir .. "/requests", cjson.encode(request) .. "\n")
  local parts = { env_prefix or "", "timeout", "60", env.cli_prefix, env.quote(env.cli), "batch", "--events" }
  for _, a in ipairs(args) do parts[#parts + 1] = env.quote(a) end
  local wait = env.in_background(("%s < %s/requests > %s/out 2>%s/err"):format(table.concat(parts, " "), dir, dir,
    dir))
  local out = assert(io.open(dir .. "/out", "r"))
  return out, wait
end

-- The interlock itself; fifo: the go fifo's path as the program sees it.
local function check_order(dir, args, fifo, env_prefix, extra)
  local request = { id = "r1", shell = ("echo first; read x < %s; echo \"got $x\"; echo oops >&2"):format(fifo) }
  for k, v in pairs(extra or {}) do request[k] = v end
  local out, wait = start_batch(dir, args, request, env_prefix)
  local first = cjson.decode((assert(out:read("l"), "no event before the program got its line")))
  assert.are.same({ id = "r1", line = 1, event = "output", stream = "stdout", data = "first\n" }, first)
  -- Only now does the program get its line.
  local go = assert(io.open(dir .. "/go", "w"))
  go:write("hello\n")
  go:close()
  local events, result = {}, nil
  for line in out:lines() do
    local doc = cjson.decode(line)
    if doc.event then events[#events + 1] = doc else result = doc end
  end
  out:close()
  assert.are.equal(0, wait(), env.read_file(dir .. "/err"))
  local text = { stdout = "first\n", stderr = "" }
  for _, e in ipairs(events) do
    assert.are.equal("r1", e.id)
    text[e.stream] = text[e.stream] .. e.data
  end
  assert.are.same({ stdout = "first\ngot hello\n", stderr = "oops\n" }, text)
  assert.truthy(result, "a result line after the events")
  assert.are.equal("r1", result.id)
  assert.are.equal("first\ngot hello\n", result.stdout)
  return result
end

describe("batch --events", function()
  env.check_leaks()

  it("on the local backend: the program's first line comes before it gets its input, then the result", function()
    local dir = interlock_dir()
    local policy = env.policy_file(([[
policy.local_sandbox.mounts[#policy.local_sandbox.mounts + 1] = { host = %q, path = "/interlock",
  writable = true }]]):format(dir))
    -- one finally: busted keeps only the last one a spec registers
    finally(function()
      os.execute("rm -rf " .. dir)
      os.remove(policy)
    end)
    local r = check_order(dir, { "--policy", policy }, "/interlock/go")
    assert.are.equal("local", r.sandbox_type)
  end)

  it("marks bytes that are not UTF-8 as base64 and keeps text cut between reads whole", function()
    local out, err, code = env.cli_run({ "batch", "--events" },
      cjson.encode { id = 7, shell = "printf 'caf\\303'; sleep 0.1; printf '\\251\\n'; printf '\\377' >&2" } .. "\n")
    assert.are.equal(0, code, err)
    local stdout, stderr_b64 = "", ""
    for line in out:gmatch("[^\n]+") do
      local e = cjson.decode(line)
      if e.event == "output" and e.stream == "stdout" then stdout = stdout .. e.data end
      if e.event == "output" and e.stream == "stderr" then stderr_b64 = stderr_b64 .. e.data_base64 end
    end
    assert.are.equal("café\n", stdout)
    assert.are.equal("/w==", stderr_b64)
  end)

  it("stops the events at the policy's ceiling and says so; the result keeps its own capture", function()
    local policy = env.policy_file("policy.streams.max_bytes = 10")
    finally(function() os.remove(policy) end)
    local out, err, code = env.cli_run({ "batch", "--events", "--policy", policy },
      cjson.encode { shell = "head -c 5000 /dev/zero | tr '\\0' x" } .. "\n")
    assert.are.equal(0, code, err)
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = cjson.decode(line) end
    assert.are.equal(3, #lines, out)
    assert.are.equal(("x"):rep(10), lines[1].data)
    assert.are.same({ id = cjson.null, line = 1, event = "truncated", max_stream_bytes = 10 }, lines[2])
    assert.are.equal(5000, #lines[3].stdout)
  end)

  it("without --events prints the results only", function()
    local out, err, code = env.cli_run({ "batch" }, cjson.encode { shell = "echo hi" } .. "\n")
    assert.are.equal(0, code, err)
    local r = cjson.decode(out)
    assert.is_nil(r.event)
    assert.are.equal("hi\n", r.stdout)
  end)
end)

describe("POST /v1/run?stream=1", function()
  local daemon = require "spec.support.daemon"
  env.check_leaks()

  it("answers with the output events as they come, then the result, as NDJSON in chunks", function()
    local dir = interlock_dir()
    local policy = env.policy_file(([[
policy.local_sandbox.mounts[#policy.local_sandbox.mounts + 1] = { host = %q, path = "/interlock",
  writable = true }]]):format(dir))
    local d = daemon.start("--policy " .. env.quote(policy))
    finally(function()
      daemon.stop(d)
      os.execute("rm -rf " .. dir)
      os.remove(policy)
    end)
    local request = cjson.encode { shell = "echo first; read x < /interlock/go; echo \"got $x\"" }
    local answer = daemon.stream_interlocked(d, "/v1/run?stream=1", dir .. "/go", request)
    assert.are.equal(200, answer.status)
    assert.are.equal("application/x-ndjson", answer.type)
    local lines = answer.lines
    assert.are.same({ event = "output", stream = "stdout", data = "first\n" }, lines[1])
    assert.are.same({ event = "output", stream = "stdout", data = "got hello\n" }, lines[2])
    assert.are.equal("result", lines[3].event)
    assert.are.equal("first\ngot hello\n", lines[3].result.stdout)
    assert.are.equal(3, #lines)
  end)

  it("answers an invalid request as without ?stream=1: 400 and the error", function()
    local d = daemon.start()
    finally(function() daemon.stop(d) end)
    local status, body = daemon.request(d, "POST", "/v1/run?stream=1", cjson.encode { shell = 5 })
    assert.are.equal(400, status)
    assert.are.equal("invalid_request", body.error.code)
  end)
end)

describe("batch --events on the k8s backend", function()
  env.check_leaks() -- in this outer block, so it runs after the server is stopped
  describe("on a fake API server", function()
    local minor = env.newest_kubectl()
    local fixture = minor and fake.per_spec(minor)

    it("passes the pod's output on as it comes, before the result", function()
      local dir = interlock_dir()
      finally(function() os.execute("rm -rf " .. dir) end)
      -- The fake API server runs a pod's command on this host: it sees the fifo.
      local r = check_order(dir, { "--policy", "spec/support/k8s_policy.lua" }, dir .. "/go", fixture.server.env,
                            { backend = "k8s" })
      assert.are.equal("k8s", r.sandbox_type)
    end)
  end)
end)
