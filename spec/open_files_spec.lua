-- limits.max_open_files (src/engine/contract/limits.def): how many files
-- each process of a run may hold open. Locally RLIMIT_NOFILE, set in the
-- child before exec (engine/sandbox/sandbox_child.c), at most the policy's
-- local_sandbox.open_files (policy/plan_reader.c); on k8s, where no pod
-- field sets it, the pod's echo-sandbox.io/max-open-files annotation
-- (lua/echo_sandbox/engine/k8s_pod.lua), which records it and enforces
-- nothing by itself.
local env = require "spec.support.env"
local cjson = require "cjson"

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
