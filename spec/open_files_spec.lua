-- limits.max_open_files (src/engine/contract/limits.def): how many files
-- each process of a run may hold open. Locally RLIMIT_NOFILE, set in the
-- child before exec (engine/sandbox/sandbox_child.c), at most the policy's
-- local_sandbox.open_files (policy/plan_reader.c); on k8s, where no pod
-- field sets it, the pod's first process, our wrapper shell
-- (backend/k8s_command.c, backend/k8s_payload.sh), sets it for the program
-- before exec, and the pod's echo-sandbox.io/max-open-files annotation
-- (lua/echo_sandbox/engine/k8s_pod.lua) records it.
local env = require "spec.support.env"
local fake = require "spec.support.fake_kube"
local cjson = require "cjson"
local expect = require("spec.support.k8s_faults").expect

-- Opens /dev/null until it cannot, then tries to raise its own limit.
local hog = [[
import errno, os, resource
last = None
try:
    while True:
        last = os.open("/dev/null", os.O_RDONLY)
except OSError as e:
    print("stopped", errno.errorcode[e.errno], "last fd", last)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard + 1000, hard + 1000))
    print("raised")
except (OSError, ValueError):
    print("cannot raise", soft, hard)
]]

local function run(request, policy)
  local args = { "run", "--json" }
  if policy then args[#args + 1], args[#args + 2] = "--policy", policy end
  local out, err = env.cli_run(args, cjson.encode(request))
  local ok, result = pcall(cjson.decode, out)
  assert(ok, "no JSON result: " .. out .. err)
  assert.are.equal(0, result.exit_code, result.stderr or err)
  return result
end

-- RLIMIT_NOFILE of a run of `sh -c 'ulimit -n'` with these limits.
local function ulimit_n(limits, policy)
  return tonumber(run({ shell = "ulimit -n", limits = limits }, policy).stdout)
end

describe("limits.max_open_files", function()
  env.check_leaks()

  -- Defence: the run's max_open_files becomes its RLIMIT_NOFILE, soft and
  -- hard, before exec. Checked: without the lines of esb_read_plan that
  -- lower local.limits.open_files to it, the program went on to fd 255
  -- (the policy's open_files, 256) and this and the next failed; without
  -- apply_rlimits' RLIMIT_NOFILE, to fd 19999 (the engine's own limit).
  it("holds a run to that many open files, which it cannot raise", function()
    local r = run { language = "python", code = hog, limits = { max_open_files = 20 } }
    -- os.open takes the lowest free fd: EMFILE with fd 19 last means 0-19,
    -- twenty, were all open and a twenty-first was refused
    assert.truthy(r.stdout:find("stopped EMFILE last fd 19\n", 1, true), r.stdout)
    assert.truthy(r.stdout:find("cannot raise 20 20\n", 1, true), r.stdout)
  end)

  it("is at most the local sandbox's open_files; without a request, the table's default 1024", function()
    local capped = env.policy_file "policy.local_sandbox.open_files = 50"
    local open = env.policy_file "policy.local_sandbox.open_files = nil"
    local ok, hard = env.sh("ulimit -Hn")
    assert(ok, hard)
    hard = tonumber(hard) or math.huge -- "unlimited"
    local results = { ulimit_n({ max_open_files = 100000 }, capped), ulimit_n({ max_open_files = 30 }, capped),
                      ulimit_n(nil, capped), ulimit_n(nil, open) }
    os.remove(capped)
    os.remove(open)
    -- a limit is only ever lowered: ours (the engine's) bounds the last
    assert.are.same({ 50, 30, 50, math.min(1024, hard) }, results)
  end)

  -- Checked: without the annotation's line in k8s_pod.lua, this failed.
  it("is the k8s pod's echo-sandbox.io/max-open-files annotation, which the policy cannot change", function()
    local path = env.policy_file [[
local pod_for = policy.pod_for
function policy:pod_for(req, resources)
  local pod = pod_for(self, req, resources)
  pod.metadata = pod.metadata or {}
  pod.metadata.annotations = { ["echo-sandbox.io/max-open-files"] = "1" }
  return pod
end
]]
    local function annotation(limits, policy)
      local args = { "policy", "explain", "--json" }
      if policy then args[#args + 1], args[#args + 2] = "--policy", policy end
      local out, err, code = env.cli_run(args, cjson.encode { shell = "true", backend = "k8s", limits = limits })
      assert.are.equal(0, code, err)
      return cjson.decode(out).k8s.overrides.metadata.annotations["echo-sandbox.io/max-open-files"]
    end
    local got = { annotation { max_open_files = 20 }, annotation(nil), annotation(nil, path) }
    os.remove(path)
    assert.are.same({ "20", "1024", "1024" }, got)
  end)
end)

-- The pods of the fake API server run their command on this host (spec/
-- support/fake_kube.py), with the spec's own RLIMIT_NOFILE: what the
-- program sees is what the wrapper set. With the newest kubectl of the
-- matrix alone: the limit is the wrapper's, in the pod's command, whatever
-- kubectl sent it; how each kubectl waits for the pod is spec/k8s_spec.lua's.
env.with_newest_kubectl(function(minor)
  describe(("limits.max_open_files on the k8s backend, kubectl 1.%d"):format(minor), function()
    env.check_leaks() -- in this outer block, so it runs after the server is stopped
    describe("on a fake API server", function()
      local fixture = fake.per_spec(minor)

      -- The program's shell says its limits, then starts the hog: a child
      -- of the program holds to the limit too.
      local function run_k8s(limits, files)
        local request = { backend = "k8s", program = "sh", limits = limits, files = files,
                          args = { "-c", 'ulimit -Sn; ulimit -Hn; python3 -c "$1"', "sh", hog } }
        local out, err = env.cli_run({ "run", "--json", "--policy", "spec/support/k8s_policy.lua" },
                                     cjson.encode(request), fixture.server.env)
        local ok, r = pcall(cjson.decode, out)
        assert(ok, "no JSON result: " .. out .. err)
        assert.are.equal(0, r.exit_code, cjson.encode(r))
        return r.stdout
      end

      -- Defence: the wrapper sets the run's max_open_files, soft and hard,
      -- in the program's process before exec, on both of its paths.
      -- Checked: without `ulimit -n "$n"` in the handshake script's child
      -- (k8s_command.c), the plain run saw 20000 (the spec's own limit) and
      -- opened up to fd 19999; without `ulimit -n "$nf"` in k8s_payload.sh's,
      -- the run with a file alike.
      for _, case in ipairs { { "the handshake alone", nil }, { "through the files wrapper", { ["in.txt"] = "x" } } } do
        it(("holds the pod's program to it, %s: it and its children cannot open fd 20 nor raise it"):format(case[1]),
           function()
          assert.are.equal("20\n20\nstopped EMFILE last fd 19\ncannot raise 20 20\n",
                           run_k8s({ max_open_files = 20 }, case[2]))
        end)
      end

      -- Checked: without the hard limit's bound in the scripts, the pods
      -- (root here) raised theirs to 100000 and the program saw that.
      it("never raises the pod's limit: a hard limit below the request's stays", function()
        local ok, hard = env.sh("ulimit -Hn")
        assert(ok, hard)
        hard = tonumber(hard)
        if not hard or hard >= 100000 then
          pending("the spec's hard limit is not below 100000: " .. tostring(hard))
          return
        end
        local want = ("%d\n%d\n"):format(hard, hard)
        for _, files in ipairs { false, { ["in.txt"] = "x" } } do
          local out = run_k8s({ max_open_files = 100000 }, files or nil)
          assert.are.equal(want, out:sub(1, #want))
        end
      end)
    end)

    describe("on a node where setting a limit fails", function()
      -- Defence: a limit the pod cannot set ends the run before the
      -- program starts, as the pod's failure. Checked: without the trial
      -- in a subshell before the start mark (k8s_command.c), the program
      -- never ran (its process's ulimit failed), yet the run ended "exited"
      -- 125 with ulimit's words as its stderr, the program blamed for the
      -- node; without the trial before the start line (k8s_payload.sh),
      -- alike.
      it("fails the run before the program, as the pod's error, where the limit cannot be set, on both paths",
         function()
        local server = fake.start(minor, "--no-setrlimit " .. env.quote(env.helper))
        local results = {}
        for _, files in ipairs { false, { ["in.txt"] = "x" } } do
          local request = { backend = "k8s", shell = "echo ran", files = files or nil,
                            limits = { max_open_files = 20 } }
          local out, err, code = env.cli_run({ "run", "--json", "--policy", "spec/support/k8s_policy.lua" },
                                             cjson.encode(request), server.env)
          local ok, r = pcall(cjson.decode, out)
          results[#results + 1] = { code = code, r = ok and r or { stdout = out .. err } }
        end
        local left = fake.pods(server)
        fake.stop(server)
        assert.are.same({}, left)
        for _, x in ipairs(results) do
          local r = x.r
          assert.are.equal("error", r.status, cjson.encode(r))
          assert.are.equal(125, x.code)
          assert.are.equal("backend_error", r.error.code)
          assert.is_false(r.error.retryable)
          assert.truthy(r.error.message:find("before the program started", 1, true), r.error.message)
          assert.truthy(r.error.message:find("lowering the open-file limit to 20", 1, true), r.error.message)
          assert.are.equal("", r.stdout)
        end
        assert.are.equal("backend_error", results[1].r.reason)
        expect(results[2].r, "wrapper_failed")
      end)
    end)
  end)
end)
