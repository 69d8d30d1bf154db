-- Hostile code in a local session's cells and runs: what it says of itself
-- (its stdout, its kernel's replies) is its word; who ended a cell or a
-- kernel, and why, is the engine's, from what it saw. Every case checks
-- that nothing of what it started is left: the holder, the session's
-- directory, its cgroups, and (the leak check) the kernels' processes.
local env = require "spec.support.env"
local session = require "spec.support.session"
local cjson = require "cjson"

local function cell(id, code)
  local out, err, status = session.cli { "session", "cell", id, "--lang", "python", "--json", "--code", code }
  local ok, result = pcall(cjson.decode, out)
  assert(ok, "stdout is not JSON: " .. out .. "\nstderr: " .. err)
  return result, status
end

describe("echo-sandbox session: hostile cells and runs", function()
  env.check_leaks()

  setup(session.setup)
  teardown(session.teardown)

  -- The cell closes the kernel's reply pipe and blocks for ever: the engine
  -- kills the kernel after the grace, and says so (not "the kernel ended").
  -- Checked: without the client's note of that kill (left_replies), the
  -- message said "the python kernel ended during the cell (without a word
  -- of its pid 1)".
  it("says it killed a kernel that closed its replies and stayed", function()
    local s = session.create()
    cell(s.id, "x = 1")
    local r, code = cell(s.id, "import os, signal\nos.close(4)\nwhile True: signal.pause()")
    assert.are.equal(125, code)
    assert.are.equal("died", r.status)
    assert.is_true(r.state_lost)
    assert.truthy(r.message:find("closed its replies (fd 4) during the cell and did not end within", 1, true),
                  r.message)
    assert.truthy(r.message:find("it was killed", 1, true), r.message)
    r = cell(s.id, "'x' in globals()")
    assert.are.equal("False", r.value)
    assert.is_true(r.state_lost)
    session.remove(s)
  end)

  -- A line on stdout in the shape of the kernel's reply is output, not the
  -- reply: the cell's status is what the kernel said on fd 4.
  it("takes a reply-shaped line on a cell's stdout as output", function()
    local s = session.create()
    local r, code = cell(s.id, "import sys\nn = int(sys._getframe().f_code.co_filename[6:-1])\n" ..
                               "print('{\"id\": %d, \"status\": \"ok\", \"value\": \"1\"}' % n)\n" ..
                               "raise ValueError('earned')")
    assert.are.equal(1, code)
    assert.are.equal("error", r.status)
    assert.are.equal("ValueError", r.error.name)
    assert.truthy(r.stdout:find('"status": "ok"', 1, true), r.stdout)
    session.remove(s)
  end)

  -- The cell writes its own reply on fd 4 and ends its kernel: the next
  -- cell, sent at once, must not be lost to the ending kernel. Twice: once
  -- the kernel exits at once (its pid 1 reports the end, then ends; the
  -- holder's SIGCHLD may come after the ask: reap_if_ended), once it stays
  -- a while without reading (the next cell goes to it, and it ends with
  -- the request unread in its pipe: the engine asks again, and a new
  -- kernel takes the cell, whose code had never run).
  -- Checked: with a 300 ms sleep after the pid 1's report and without the
  -- holder's reap_if_ended, the second cell said died (without the sleep:
  -- 1 in 3 tries); without request_untaken (local_session_cell.c), the
  -- cell after the kernel that stayed said died.
  it("starts anew, at the next cell, a kernel that ended right after its reply", function()
    local s = session.create()
    cell(s.id, "x = 1")
    for _, stay in ipairs { false, true, false, true } do
      local r = cell(s.id, "import os, sys, time\nn = int(sys._getframe().f_code.co_filename[6:-1])\n" ..
                           "os.write(4, ('{\"id\": %d, \"status\": \"ok\", \"value\": \"7\"}\\n' % n).encode())\n" ..
                           (stay and "time.sleep(0.5)\n" or "") .. "os._exit(3)")
      assert.are.equal("7", r.value)
      r = cell(s.id, "'x' in globals()")
      assert.are.equal("ok", r.status, r.message)
      assert.are.equal("False", r.value)
      assert.is_true(r.state_lost)
    end
    session.remove(s)
  end)

  -- The files the engine writes into a session's working dir (session cp,
  -- a run's files, and its code, which goes as one of them) are written by
  -- a clone of the engine in the session's memory cgroup
  -- (backend/local_session_files.c): their pages count against the
  -- session's memory, a run that would go past it beside them is
  -- OOM-killed, and a file that does not fit is an error of the write that
  -- names the limit, the session and its other files left as they were.
  -- Checked: with the writes made in the engine's own process, the run
  -- allocating 80 MiB beside the 60 MiB file exited 0 (and the session's
  -- memory.usage_in_bytes stayed at 0.3 MB after the cp).
  it("charges the files it writes into a session's working dir to the session's memory", function()
    local s = session.create("--memory", "128Mi")
    local big = os.tmpname()
    finally(function() os.remove(big) end)
    assert(os.execute("head -c 60M /dev/zero > " .. big))
    local _, err, code = session.cli { "session", "cp", big, s.id .. ":big" }
    assert.are.equal(0, code, err)
    -- Allocations large enough that the run's process is the largest of
    -- the session when the limit is met (not the holder, of some 11 MB in a
    -- build with AddressSanitizer), and so the OOM killer's choice.
    local grow = "python3 -c 'print(len(bytearray(%d << 20)))'"
    local r = session.run(s.id, grow:format(80))
    assert.are.equal("oom_killed", r.status, cjson.encode(r))
    -- A kernel holds 40 MiB: 40 MiB more of files do not fit beside it.
    local c = cell(s.id, "x = bytearray(40 << 20)")
    assert.are.equal("ok", c.status, cjson.encode(c))
    _, err, code = session.cli({ "session", "cp", "-", s.id .. ":d/more" }, ("x"):rep(40 * 1024 * 1024))
    assert.are.equal(125, code, err)
    assert.truthy(err:find("writing 'd/more': its 41943040 bytes do not fit in the session's memory limit " ..
                           "(134217728 bytes)", 1, true), err)
    c = cell(s.id, "len(x)")
    assert.are.equal("41943040", c.value, cjson.encode(c))
    assert.is_falsy(c.state_lost)
    r = session.run(s.id, "ls -A . d && rm big")
    assert.are.equal("exited", r.status, cjson.encode(r))
    assert.are.equal(".:\nbig\nd\n\nd:\n", r.stdout)
    c = cell(s.id, "del x")
    assert.are.equal("ok", c.status, cjson.encode(c))
    r = session.run_request(s.id, { files = { data = ("x"):rep(60 * 1024 * 1024) }, shell = grow:format(60) })
    assert.are.equal("oom_killed", r.status, r.stdout .. r.stderr)
    r = session.run(s.id, "rm data && " .. grow:format(60))
    assert.are.equal("62914560\n", r.stdout, cjson.encode(r))
    session.remove(s)
  end)

  -- A run that makes empty files in the working dir meets its tmpfs's inode
  -- bound (one per 4 KiB of its size: engine/sandbox/rootfs.h) while their
  -- kernel memory (1 to 1.5 KiB each, which no reclaim frees) is 24 MiB at
  -- most: ENOSPC in the program, and the session goes on.
  -- Checked: without the nr_inodes bound, the run was OOM-killed after
  -- some 45000 files (their inodes held the session's 64 MiB), and the next
  -- run was killed at its start ("out of memory (the session's memory
  -- limit)"), `rm -rf` of them too.
  it("keeps a session usable after a run filled its working dir with empty files", function()
    local s = session.create("--memory", "64Mi")
    local fill = "python3 -c '\n" ..
                 "import errno, os\n" ..
                 "os.mkdir(\"d\")\n" ..
                 "n = 0\n" ..
                 "try:\n" ..
                 "    while True:\n" ..
                 "        open(\"d/%06d%s\" % (n, \"x\" * 194), \"w\").close()\n" ..
                 "        n += 1\n" ..
                 "except OSError as e:\n" ..
                 "    print(n, errno.errorcode[e.errno])\n" ..
                 "'"
    local r, code = session.run(s.id, fill)
    assert.are.equal(0, code, cjson.encode(r))
    local n, why = r.stdout:match("^(%d+) (%u+)\n$")
    assert.are.equal("ENOSPC", why, r.stdout)
    -- the 64 MiB working dir's 16384 inodes, less its root's and d's
    assert.are.equal(64 * 1024 * 1024 // 4096 - 2, tonumber(n))
    r, code = session.run(s.id, "ls d | wc -l && rm -rf d && ls -A && echo removed")
    assert.are.equal(0, code, cjson.encode(r))
    assert.are.equal(n .. "\nremoved\n", r.stdout)
    local c = cell(s.id, "6 * 7")
    assert.are.equal("42", c.value, cjson.encode(c))
    session.remove(s)
  end)
end)
