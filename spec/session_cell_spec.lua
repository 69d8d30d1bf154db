-- Cells in local sessions (src/backend/local_session_cell.c, the holder's
-- side src/engine/sandbox/session_kernel.c): code into the session's kernel
-- of a language (kernels/), whose interpreter state persists from cell to
-- cell and ends with the session. Every case checks that nothing of what
-- it started is left: the holder and its kernels, the session's directory,
-- its cgroups (the leak check finds processes and cgroups of the suite's).
local env = require "spec.support.env"
local cjson = require "cjson"

-- The suite's own directory of sessions (as spec/session_spec.lua does).
local dir

local function cli(args)
  return env.cli_run(args, nil, "ECHO_SANDBOX_SESSION_DIR=" .. env.quote(dir))
end

-- The CLI with --json: the object it printed, its exit status.
local function json_cli(args)
  local out, err, status = cli(args)
  local ok, result = pcall(cjson.decode, out)
  assert(ok, "stdout is not JSON: " .. out .. "\nstderr: " .. err)
  return result, status, err
end

local function create(...)
  local s, status, err = json_cli { "session", "create", "--json", ... }
  assert.are.equal(0, status, err)
  s.pid = math.tointeger(s.pid)
  return s
end

-- A cell: its result and the exit status.
local function cell(id, lang, code, extra)
  local args = { "session", "cell", id, "--lang", lang, "--json", "--code", code }
  table.move(extra or {}, 1, #(extra or {}), #args + 1, args)
  return json_cli(args)
end

local function run(id, shell)
  local out, err, code = cli { "session", "run", id, "--shell", shell }
  assert.are.equal(0, code, err)
  return out
end

local function read(path)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

-- The host pids below pid, children first: the kernels' pid 1s below the
-- holder, the kernels below those.
local function descendants(pid, into)
  into = into or {}
  for child in (read(("/proc/%d/task/%d/children"):format(pid, pid)) or ""):gmatch("%d+") do
    into[#into + 1] = math.tointeger(tonumber(child))
    descendants(child, into)
  end
  return into
end

-- The session's kernel processes: the holder's descendants whose command
-- is the interpreter (runs' processes have ended with their runs).
local function kernels(s, program)
  local found = {}
  for _, pid in ipairs(descendants(s.pid)) do
    local cmd = read("/proc/" .. pid .. "/cmdline") or ""
    if cmd:match("^[^%z]*") == program then found[#found + 1] = pid end
  end
  return found
end


-- Polls for a file of the session's working dir, through a run (30 s cap).
local function wait_file(id, name)
  for _ = 1, 3000 do
    if run(id, "test -e " .. name .. " && echo yes || true") == "yes\n" then return true end
    env.sleep(0.01)
  end
  return false
end

-- rm, and nothing of the session left: its holder, its kernels, its
-- directory and cgroups.
local function remove(s)
  local cgroups = {}
  for path in (read(dir .. "/" .. s.id .. "/info") or ""):gmatch("cgroup %d ([^\n]+)") do
    cgroups[#cgroups + 1] = path
  end
  local below = descendants(s.pid)
  local _, err, code = cli { "session", "rm", s.id }
  assert.are.equal(0, code, err)
  assert.is_true(env.wait_ended(s.pid), "the holder is still there")
  for _, pid in ipairs(below) do assert.is_true(env.wait_ended(pid), "process " .. pid .. " is left") end
  assert.is_nil(io.open(dir .. "/" .. s.id), "the session's directory is left")
  for _, path in ipairs(cgroups) do
    assert.is_nil(io.open(path .. "/tasks") or io.open(path .. "/cgroup.procs"), path .. " is left")
  end
end

local languages = {
  python = { program = "python3", define = "x = 41", use = "x + 1", raise = "def f():\n    return 1 / 0\nf()",
             raised = "ZeroDivisionError", own = "<string>", block = "open('started', 'w').close()\nimport time\nwhile True: time.sleep(0.01)",
             unknown = "NameError", print = "print('out')\nimport sys\nprint('err', file=sys.stderr)\n'v'",
             value = "'v'" },
  node = { program = "node", define = "var x = 41", use = "x + 1", raise = "function f() { return null.g }\nf()",
           raised = "TypeError", own = "[eval]", block = "require('fs').writeFileSync('started', ''); while (true) {}",
           unknown = "ReferenceError", print = "console.log('out'); console.error('err'); 'v'", value = "'v'" },
}

describe("echo-sandbox session cell", function()
  env.check_leaks()

  -- A case that failed may have left its session: removed here, and said.
  setup(function()
    dir = assert(io.popen("mktemp -d")):read("l")
  end)
  teardown(function()
    local left = cli { "session", "ls" }
    for id in left:gmatch("(%x+)  ") do cli { "session", "rm", id } end
    os.remove(dir)
    assert.are.equal("", left, "sessions left: " .. left)
  end)

  for lang, k in pairs(languages) do
    -- Checked: with the holder killing the kernel at each cell's DONE (as
    -- at a connection that ends without it), `x + 1` raised NameError /
    -- ReferenceError, and its result said state_lost.
    it("keeps a " .. lang .. " kernel's variables from cell to cell", function()
      local s = create()
      local r, code = cell(s.id, lang, k.define)
      assert.are.equal(0, code, cjson.encode(r))
      assert.are.equal("ok", r.status)
      assert.are.equal(s.id, r.session)
      assert.is_false(r.state_lost)
      r, code = cell(s.id, lang, k.use)
      assert.are.equal(0, code, cjson.encode(r))
      assert.are.equal("42", r.value)
      assert.are.equal(cjson.null, r.error)
      r = cell(s.id, lang, k.print)
      assert.are.equal("out\n", r.stdout)
      assert.are.equal("err\n", r.stderr)
      assert.are.equal(k.value, r.value)
      -- the kernel runs inside the session: the same working dir as its runs
      assert.are.equal(1, #kernels(s, k.program))
      remove(s)
    end)

    it("returns what a " .. lang .. " cell raised, with its traceback, and keeps the state", function()
      local s = create()
      cell(s.id, lang, k.define)
      local r, code = cell(s.id, lang, k.raise)
      assert.are.equal(1, code)
      assert.are.equal("error", r.status)
      assert.are.equal(k.raised, r.error.name)
      assert.truthy(r.error.traceback:find("<cell 2>", 1, true), r.error.traceback)
      -- the kernel's own frames (its source is `-c`'s, `-e`'s) are not the cell's
      assert.falsy(r.error.traceback:find(k.own, 1, true), r.error.traceback)
      assert.is_false(r.state_lost)
      assert.are.equal("42", cell(s.id, lang, k.use).value)
      -- people's output: the traceback on stderr, exit status 1
      local _, err, status = cli { "session", "cell", s.id, "--lang", lang, "--code", k.raise }
      assert.are.equal(1, status)
      assert.truthy(err:find(k.raised, 1, true), err)
      remove(s)
    end)

    -- The cell writes a file, then blocks for ever: only the interrupt
    -- ends it. Checked: with the client's INTERRUPT left out (straight to
    -- the kill at the deadline), the result said state_lost (both kernels).
    it("interrupts a " .. lang .. " cell past its deadline and keeps the kernel's state", function()
      local s = create()
      cell(s.id, lang, k.define)
      local r, code = cell(s.id, lang, k.block, { "--timeout", "0.3" })
      assert.are.equal(124, code, cjson.encode(r))
      assert.are.equal("timed_out", r.status)
      assert.is_false(r.state_lost)
      assert.are.equal("", run(s.id, "ls started"):gsub("started\n", ""))
      r = cell(s.id, lang, k.use)
      assert.are.equal("42", r.value, cjson.encode(r))
      assert.is_false(r.state_lost)
      remove(s)
    end)
  end

  -- What the kernel is, against what a run's program is in the same
  -- session. Checked: with the plan's seccomp filter dropped in the
  -- kernel's clone, the kernel said Seccomp 0 where the run said 2.
  it("runs the kernel as a run's program: its ids, working dir, seccomp, no capabilities", function()
    local s = create()
    local fields = { "Uid", "Gid", "NoNewPrivs", "Seccomp", "CapEff", "CapPrm" }
    local from_run = run(s.id, "pwd; grep -E '^(" .. table.concat(fields, "|") .. "):' /proc/self/status")
    local r = cell(s.id, "python", "import os\nprint(os.getcwd())\n" ..
                   "print(''.join(l for l in open('/proc/self/status') if l.split(':')[0] in " ..
                   cjson.encode(fields):gsub("%[", "("):gsub("%]", ")") .. "), end='')")
    assert.are.equal(from_run, r.stdout)
    assert.truthy(from_run:find("Seccomp:%s+2"), from_run)
    assert.truthy(from_run:find("CapEff:%s+0+\n"), from_run)
    remove(s)
  end)

  -- Checked: without the holder's note of a kernel that ended (k->lost),
  -- the cell after the kill said state_lost false.
  it("starts a killed kernel anew at the next cell, and says its state was lost", function()
    local s = create()
    cell(s.id, "python", "x = 41")
    local pids = kernels(s, "python3")
    assert.are.equal(1, #pids)
    -- Its pid 1 reports the end and ends after it; the holder's SIGCHLD may
    -- come after the next cell asks. Checked: with a 300 ms sleep after the
    -- pid 1's report and the holder's reap_if_ended taken out, this cell
    -- went to the ended kernel and said died (125).
    assert(os.execute("kill -KILL " .. pids[1]))
    assert.is_true(env.wait_ended(pids[1]))
    local r, code = cell(s.id, "python", "x")
    assert.are.equal(1, code)
    assert.is_true(r.state_lost)
    assert.are.equal("NameError", r.error.name)
    assert.truthy(r.message:find("had ended (exit status 137)", 1, true), r.message)
    r = cell(s.id, "python", "y = 1\ny + 1")
    assert.are.equal("2", r.value)
    assert.is_false(r.state_lost)
    -- a kernel that ends during a cell: died, and the next cell works
    r, code = cell(s.id, "python", "import os\nos.kill(os.getpid(), 9)")
    assert.are.equal(125, code)
    assert.are.equal("died", r.status)
    assert.is_true(r.state_lost)
    assert.truthy(r.message:find("killed by signal 9", 1, true), r.message)
    assert.are.equal("3", cell(s.id, "python", "1 + 2").value)
    remove(s)
  end)

  -- The cell ignores SIGINT: at its deadline it is interrupted, does not
  -- answer within the grace, and is killed. Checked: with the kill at the
  -- grace's end taken out, the cell's CLI waited on until killed (40 s).
  it("kills a kernel that does not answer the interrupt, and says the state was lost", function()
    local s = create()
    local r, code = cell(s.id, "python", "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n" ..
                                         "x = 1\nwhile True: pass", { "--timeout", "0.3" })
    assert.are.equal(124, code)
    assert.are.equal("timed_out", r.status)
    assert.is_true(r.state_lost)
    assert.truthy(r.message:find("did not answer", 1, true), r.message)
    assert.are.equal(0, #kernels(s, "python3"))
    r = cell(s.id, "python", "'x' in globals()")
    assert.are.equal("False", r.value)
    assert.is_true(r.state_lost)
    remove(s)
  end)

  -- Checked: with every cell sent to one session's socket (the first in
  -- the directory's order), b's `x` raised nothing: it saw a's.
  it("keeps two sessions' kernels apart", function()
    local a, b = create(), create()
    cell(a.id, "python", "x = 'secret of a'")
    local r = cell(b.id, "python", "x")
    assert.are.equal("NameError", r.error.name)
    r = cell(b.id, "python", "import os\n[p for p in os.listdir('/proc') if p.isdigit()]")
    assert.are.equal("['1', '2']", r.value) -- its pid 1 and itself: nothing of a
    assert.are.equal("'secret of a'", cell(a.id, "python", "x").value)
    remove(a)
    remove(b)
  end)

  it("names the languages that have a kernel when one has none", function()
    local s = create()
    local r, code = cell(s.id, "ruby", "1")
    assert.are.equal(125, code)
    assert.are.equal("failed", r.status)
    assert.are.equal("invalid_request", r.code)
    assert.truthy(r.message:find("no kernel for language 'ruby': the languages with one are python, node", 1, true),
                  r.message)
    remove(s)
  end)

  -- The policy's session hook decides which languages have kernels; the
  -- session's record keeps its answer (backend/local_session_cell.c,
  -- policy_gave). Checked: without policy_gave, the python cell ran.
  it("takes cells only in the languages the policy's session hook gave kernels", function()
    local policy = env.policy_file 'policy.sessions.kernels = { "node" }'
    finally(function() os.remove(policy) end)
    local s = create("--policy", policy)
    local r, code = cell(s.id, "python", "1")
    assert.are.equal(125, code)
    assert.are.equal("invalid_request", r.code)
    assert.truthy(r.message:find("no kernel for language 'python' in this session (the policy's session hook "
                                 .. "decides): the languages with one are node", 1, true), r.message)
    assert.are.equal("2", cell(s.id, "node", "1 + 1").value)
    remove(s)
  end)

  -- A's cell makes a file and blocks until another appears; B's comes while
  -- it does. Checked: without the holder's BUSY, B was handed the kernel
  -- while A's cell went on, and did not say busy.
  it("refuses a second cell while one goes on in the kernel: they never interleave", function()
    local s = create()
    local out = os.tmpname()
    local parts = { "ECHO_SANDBOX_SESSION_DIR=" .. env.quote(dir), env.cli_prefix, env.quote(env.cli), "session",
                    "cell", s.id, "--lang", "python", "--json", "--timeout", "30", "--code",
                    env.quote("print('a-before')\nimport os, time\nopen('a-started', 'w').close()\n" ..
                              "while not os.path.exists('release'): time.sleep(0.01)\nprint('a-after')\n'a'") }
    local wait = env.in_background(table.concat(parts, " ") .. " >" .. out)
    assert.is_true(wait_file(s.id, "a-started"))
    local r, code = cell(s.id, "python", "print('b')\n'b'")
    assert.are.equal(125, code)
    assert.are.equal("busy", r.status)
    assert.are.equal("", r.stdout)
    run(s.id, "touch release")
    assert.are.equal(0, wait())
    local a = cjson.decode(read(out))
    os.remove(out)
    assert.are.equal("a-before\na-after\n", a.stdout)
    assert.are.equal("'a'", a.value)
    assert.are.equal("'c'", cell(s.id, "python", "'c'").value)
    remove(s)
  end)

  -- A thread of the first cell prints once the cell has ended (an
  -- interlock on files of the working dir). Checked: without the drain of
  -- the kernel's pipes before a request, the second cell's stdout held
  -- the thread's "late" too.
  it("gives a cell only its own output, not what the kernel wrote between cells", function()
    local s = create()
    local r = cell(s.id, "python", "import os, threading, time\n" ..
                   "def late():\n    while not os.path.exists('go'): time.sleep(0.01)\n" ..
                   "    print('late', flush=True)\n    open('printed', 'w').close()\n" ..
                   "threading.Thread(target=late, daemon=True).start()\nprint('first')")
    assert.are.equal("first\n", r.stdout)
    run(s.id, "touch go")
    assert.is_true(wait_file(s.id, "printed"))
    r = cell(s.id, "python", "print('second')")
    assert.are.equal("second\n", r.stdout)
    remove(s)
  end)

  -- Checked: with the idle clock left to runs alone (busy() without the
  -- kernels), the session ended during the cell (session_ended, idle).
  -- The idle timeout is longer than the create-to-cell gap may be on a
  -- loaded machine (the sanitizers' build, the CI's parallel steps: 200 ms
  -- ended the session before its first cell), the cell twice as long.
  it("counts a cell as activity: the session does not go idle during one", function()
    local s = create("--idle-timeout", "1500")
    local r = cell(s.id, "python", "import time\ntime.sleep(3)\n'done'")
    assert.are.equal("'done'", r.value, cjson.encode(r))
    remove(s)
  end)

  -- The kernels are in the session's pid namespace, below its pid 1: rm
  -- ends them with it (no defence of their own to take out).
  it("ends the kernels with the session", function()
    local s = create()
    cell(s.id, "python", "x = 1")
    cell(s.id, "node", "1")
    local pids = {}
    for _, p in ipairs(kernels(s, "python3")) do pids[#pids + 1] = p end
    for _, p in ipairs(kernels(s, "node")) do pids[#pids + 1] = p end
    assert.are.equal(2, #pids)
    remove(s) -- which waits for every process below the holder to end
    local r, code = cell(s.id, "python", "x")
    assert.are.equal(125, code)
    assert.are.equal("failed", r.status)
    assert.truthy(r.message:find("no session", 1, true), r.message)
  end)
end)
