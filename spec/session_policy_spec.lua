-- The policy's `session` hook (src/policy/session.h): what a session gets
-- is the operator's to decide in the policy file, without recompiling: its
-- lifetime within ceilings (a request that asks more gets the ceiling and a
-- note), its limits, how many sessions one tenant (a label the policy
-- names) may hold at once, the languages that have kernels. The decision
-- is read into C and checked before anything of the session is made.
-- Every case checks that nothing it started is left: the suite's own
-- directory of sessions is empty at the end and removed, and the leak
-- check finds no process or cgroup of its.
local env = require "spec.support.env"
local cjson = require "cjson"

local dir

local function cli(args, stdin)
  return env.cli_run(args, stdin, "ECHO_SANDBOX_SESSION_DIR=" .. env.quote(dir))
end

-- session create --json [--policy path] args...: the decoded object (a
-- session, or {error = ...}), the exit code and stderr.
local function create(path, ...)
  local args = { "session", "create", "--json" }
  if path then
    args[#args + 1] = "--policy"
    args[#args + 1] = path
  end
  for _, a in ipairs { ... } do args[#args + 1] = a end
  local out, err, code = cli(args)
  local ok, s = pcall(cjson.decode, out)
  assert(ok, "stdout is not JSON: " .. out .. "\nstderr: " .. err)
  return s, code, err
end

local function remove(id)
  local _, err, code = cli { "session", "rm", id }
  assert.are.equal(0, code, err)
end

-- The ids of the sessions there are.
local function ids()
  local list = {}
  for line in (cli { "session", "ls" }):gmatch("[^\n]+") do list[#list + 1] = line:match("^%x+") end
  return list
end

describe("the policy's session hook", function()
  env.check_leaks()

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -m 700 " .. dir))
  end)

  -- Each case removes what it made; a case that failed may have left a
  -- session: removed here, and said.
  after_each(function()
    local left = ids()
    for _, id in ipairs(left) do cli { "session", "rm", id } end
    assert.are.same({}, left, "sessions left")
  end)

  teardown(function()
    assert(os.execute("rmdir " .. dir), "the session directory is not empty")
  end)

  -- Checked: with the default hook's clamp of ttl_ms taken out, the
  -- session got the 7200000 ms it asked for and no note.
  it("gives the default policy's values, and lowers what is above its ceilings with a note", function()
    local s, code, err = create(nil)
    assert.are.equal(0, code, err)
    assert.are.equal(600000, s.ttl_ms)
    assert.are.equal(120000, s.idle_timeout_ms)
    assert.are.same({ "python", "node" }, s.kernels)
    assert.are.equal(256 * 1024 * 1024, s.limits.memory_bytes)
    assert.are.same({}, s.clamped)
    remove(s.id)
    s, code, err = create(nil, "--ttl", "7200000", "--idle-timeout", "5000", "--memory", "9Gi")
    assert.are.equal(0, code, err)
    assert.are.equal(3600000, s.ttl_ms)
    assert.are.equal(5000, s.idle_timeout_ms)
    assert.are.equal(4 * 1024 * 1024 * 1024, s.limits.memory_bytes)
    assert.are.same({ "memory_bytes 9663676416 lowered to the policy's ceiling 4294967296",
                      "ttl_ms 7200000 lowered to the policy's ceiling 3600000" }, s.clamped)
    remove(s.id)
    -- without --json the notes go to stderr, the id alone to stdout
    local out
    out, err, code = cli { "session", "create", "--ttl", "99999999" }
    assert.are.equal(0, code, err)
    assert.truthy(out:match("^%x+\n$"), out)
    assert.truthy(err:find("ttl_ms 99999999 lowered to the policy's ceiling 3600000", 1, true), err)
    remove(out:match("%x+"))
  end)

  -- Checked: with the request's limits left as they were asked
  -- (esb_session_make's copy of the decision's limits into the request
  -- taken out), the session's memory was the 200Mi asked, over the hook's
  -- 64Mi ceiling.
  it("takes a site policy's ceilings and defaults: lifetime and limits", function()
    local path = env.policy_file [[
      policy.sessions.ttl_ms = 4000
      policy.sessions.ceilings = { ttl_ms = 5000, idle_timeout_ms = 3000,
                                   limits = { memory_bytes = 64 * 1024 * 1024 } }
      policy.sessions.kernels = { "python" }]]
    local s, code, err = create(path)
    assert.are.equal(0, code, err)
    assert.are.equal(4000, s.ttl_ms)
    assert.are.same({ "python" }, s.kernels)
    remove(s.id)
    s, code, err = create(path, "--ttl", "10000", "--idle-timeout", "9000", "--memory", "200Mi")
    assert.are.equal(0, code, err)
    assert.are.equal(5000, s.ttl_ms)
    assert.are.equal(3000, s.idle_timeout_ms)
    assert.are.equal(64 * 1024 * 1024, s.limits.memory_bytes)
    assert.are.same({ "memory_bytes 209715200 lowered to the policy's ceiling 67108864",
                      "ttl_ms 10000 lowered to the policy's ceiling 5000",
                      "idle_timeout_ms 9000 lowered to the policy's ceiling 3000" }, s.clamped)
    remove(s.id)
    os.remove(path)
  end)

  -- Checked: without the count under the lock (check_room returning 0),
  -- the third session of tenant a was made.
  it("refuses one session more than a tenant may hold, naming the tenant and the limit, until one ends", function()
    local path = env.policy_file "policy.sessions.max_per_tenant = 2"
    local a1 = create(path, "--label", "tenant=a")
    local a2 = create(path, "--label", "tenant=a", "--label", "team=x")
    assert.truthy(a1.id and a2.id)
    local refused, code, err = create(path, "--label", "tenant=a")
    assert.are.equal(75, code, err)
    assert.are.equal("too_many_sessions", refused.error.code)
    assert.truthy(err:find("tenant 'a' (label tenant): 2 live, the policy's limit is 2", 1, true), err)
    -- another tenant, and the sessions without the label, count apart
    local b = create(path, "--label", "tenant=b")
    local none = create(path)
    assert.truthy(b.id and none.id)
    remove(a1.id)
    local a3, code3, err3 = create(path, "--label", "tenant=a")
    assert.are.equal(0, code3, err3)
    for _, id in ipairs { a2.id, a3.id, b.id, none.id } do remove(id) end
    os.remove(path)
  end)

  -- Six creates of one tenant allowed one session, held at a gate (a
  -- file) until all six are started, then let go at once.
  -- Checked: with lock_creates' flock taken out, 3 and then 2 of the six
  -- were made in two of three tries (a race: not every time).
  it("makes only as many as allowed when creates of one tenant come at once", function()
    local path = env.policy_file "policy.sessions.max_per_tenant = 1"
    local gate = os.tmpname()
    os.remove(gate)
    local waits = {}
    for i = 1, 6 do
      waits[i] = env.in_background(("while [ ! -e %s ]; do sleep 0.01; done; ECHO_SANDBOX_SESSION_DIR=%s %s %s "
        .. "session create --policy %s --label tenant=a >/dev/null 2>&1"):format(gate, env.quote(dir), env.cli_prefix,
        env.quote(env.cli), env.quote(path)))
    end
    assert(io.open(gate, "w")):close()
    local codes = {}
    for i = 1, 6 do
      local c = waits[i]()
      codes[c] = (codes[c] or 0) + 1
    end
    os.remove(gate)
    os.remove(path)
    assert.are.same({ [0] = 1, [75] = 5 }, codes)
    local made = ids()
    assert.are.equal(1, #made)
    remove(made[1])
  end)

  -- Checked: with esb_session_census's count taken out (by_label left 0),
  -- the second create was made.
  it("tells the hook how many live sessions carry the request's labels", function()
    local path = env.policy_file [[
      local session = policy.session
      function policy:session(req, known)
        local n = known.live_by_label.team or 0
        if n >= 1 then return nil, ("team %s has %d of %d live"):format(req.labels.team, n, known.live) end
        return session(self, req, known)
      end]]
    local other = create(path, "--label", "team=y")
    local first = create(path, "--label", "team=x")
    assert.truthy(other.id and first.id)
    local refused, code, err = create(path, "--label", "team=x")
    assert.are.equal(125, code, err)
    assert.are.equal("invalid_request", refused.error.code)
    assert.are.equal("team x has 1 of 2 live", refused.error.message)
    remove(other.id)
    remove(first.id)
    os.remove(path)
  end)

  -- Checked: without the decision reader's esb_fields_only, the misspelt
  -- 'ttl' was dropped and the session made with the default lifetime;
  -- without policy check's call of the hook, the check passed the hook
  -- that raises (exit 0).
  it("refuses a decision with a field it does not know, or a bad one, as policy_error naming it", function()
    for change, named in pairs {
      ["d.ttl = 5000"] = "unknown field 'ttl'",
      ["d.limits.memory = 1"] = "unknown field 'limits.memory'",
      ["d.kernels = 'python'"] = "'kernels'",
      ["d.ttl_ms = 0"] = "'ttl_ms'",
      ["d.ttl_ms = 90000000"] = "'ttl_ms'",
      ["d.tenant_label = 'a b'"] = "'tenant_label'",
      ["d.tenant_label = nil"] = "max_per_tenant without tenant_label",
    } do
      local path = env.policy_file(("local session = policy.session\nfunction policy:session(req, known) "
                           .. "local d = session(self, req, known); %s; return d end"):format(change))
      local r, code, err = create(path)
      os.remove(path)
      assert.are.equal(125, code, change .. ": " .. err)
      assert.are.equal("policy_error", r.error and r.error.code, change)
      assert.truthy(r.error.message:find("policy hook 'session'", 1, true), r.error.message)
      assert.truthy(r.error.message:find(named, 1, true), change .. ": " .. r.error.message)
    end
    local path = env.policy_file "function policy:session() error('no sessions today') end"
    local r, code = create(path)
    assert.are.equal(125, code)
    assert.are.equal("policy_error", r.error.code)
    assert.truthy(r.error.message:find("no sessions today", 1, true), r.error.message)
    -- policy check finds it before any session is asked for
    local out, err
    out, err, code = cli { "policy", "check", path }
    os.remove(path)
    assert.are.equal(1, code, out .. err)
    assert.truthy(out:find("problem  session", 1, true) and out:find("no sessions today", 1, true), out)
    out, err, code = cli { "policy", "check", "policies/default.lua" }
    assert.are.equal(0, code, out .. err)
    assert.truthy(out:find("ok       session", 1, true), out)
  end)

  -- Checked: with the hook's absence taken as a policy error, the create
  -- failed.
  it("gives a policy without the hook the engine's defaults", function()
    local path = env.policy_file "policy.session = nil"
    local s, code, err = create(path, "--ttl", "99999999999")
    os.remove(path)
    assert.are.equal(0, code, err)
    assert.are.equal(86400000, s.ttl_ms)
    assert.are.equal(120000, s.idle_timeout_ms)
    assert.are.same({ "python", "node" }, s.kernels)
    assert.are.same({ "ttl_ms 99999999999 lowered to the engine's ceiling 86400000" }, s.clamped)
    remove(s.id)
  end)

  -- Checked: without esb_session_labels_check, the first of them, 'a b=c',
  -- was taken and the session made with it.
  it("takes labels as Kubernetes does, refusing a bad one by name, and keeps them in the session", function()
    local long = ("x"):rep(64)
    for _, case in ipairs {
      { "a b=c", "label 'a b': a key's name" },
      { "tenant=a b", "label tenant='a b': a value" },
      { "tenant=-a", "label tenant='-a': a value" },
      { long .. "=1", "label '" .. long .. "': a key's name" },
      { "x=" .. long, "a value is empty or 1 to 63" },
      { "Bad.Prefix/x=1", "a key's prefix (before '/') is a DNS-1123 subdomain" },
      { "kubernetes.io/x=1", "the engine's and Kubernetes' own" },
      { "app.kubernetes.io/managed-by=me", "the engine's and Kubernetes' own" },
      { "echo-sandbox.io/instance=x", "the engine's and Kubernetes' own" },
    } do
      local r, code, err = create(nil, "--label", case[1])
      assert.are.equal(125, code, err)
      assert.are.equal("invalid_request", r.error.code)
      assert.truthy(r.error.message:find(case[2], 1, true), case[1] .. ": " .. r.error.message)
    end
    local _, err, code = cli { "session", "create", "--label", "tenant" }
    assert.are.equal(125, code)
    assert.truthy(err:find("--label takes KEY=VALUE, not tenant", 1, true), err)
    local r
    r, code = create(nil, "--label", "tenant=a", "--label", "tenant=b")
    assert.are.equal(125, code)
    assert.truthy(r.error.message:find("label 'tenant' is given twice", 1, true), r.error.message)
    assert.are.same({}, ids())
    local s
    s, code, err = create(nil, "--label", "tenant=a", "--label", "example.com/team=", "--label", "x.y_z=A-1")
    assert.are.equal(0, code, err)
    assert.are.same({ tenant = "a", ["example.com/team"] = "", ["x.y_z"] = "A-1" }, s.labels)
    local info = env.read_file(dir .. "/" .. s.id .. "/info")
    assert.truthy(info:find("\nlabel tenant=a\n", 1, true), info)
    remove(s.id)
  end)
end)
