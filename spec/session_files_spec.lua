-- A live session's files from outside (esb_session_put/get/files in
-- src/backend/local_session.h; `session cp` and `session files`): the engine
-- works in a tree the session's runs control, so every path is resolved
-- beneath the working dir's fd (src/backend/local_session_files.c): what a
-- run planted there (a link to the host, to /proc, a fifo, a sparse file of
-- a terabyte) is never followed nor waited on. Every case checks that
-- nothing it started is left: the holder, the session's directory, its
-- cgroups.
local env = require "spec.support.env"
local session = require "spec.support.session"
local cjson = require "cjson"

local create, run, remove, cli = session.create, session.run, session.remove, session.cli

local function entries(id, dir)
  local args = { "session", "files", id, "--json" }
  if dir then args[#args + 1] = dir end
  local out, err, code = cli(args)
  assert.are.equal(0, code, err)
  local list = {}
  for line in out:gmatch("[^\n]+") do
    local e = cjson.decode(line)
    list[e.name] = e
  end
  return list
end

describe("a session's files", function()
  env.check_leaks()
  setup(session.setup)
  teardown(session.teardown)

  it("go in and out with cp (any bytes, the mode kept) and are listed", function()
    local s = create()
    local bytes = "a\0b\255\n" .. ("x"):rep(100000)
    local local_file = os.tmpname()
    finally(function() os.remove(local_file) end)
    env.write_file(local_file, bytes)
    assert(os.execute("chmod 750 " .. local_file))
    local _, err, code = cli { "session", "cp", local_file, s.id .. ":in/tool" }
    assert.are.equal(0, code, err)
    _, err, code = cli({ "session", "cp", "-", s.id .. ":in/note.txt" }, "from stdin\n")
    assert.are.equal(0, code, err)
    local r = run(s.id, "cmp in/tool " .. "in/tool && stat -c '%a %u' in/tool in/note.txt && id -u && " ..
                        "head -c 5 in/tool | od -An -c | tr -s ' '; echo made > out.txt")
    local mode, owner, note_mode, note_owner, uid = r.stdout:match("^(%d+) (%d+)\n(%d+) (%d+)\n(%d+)\n")
    assert.are.equal("750", mode, r.stdout)
    assert.are.equal("644", note_mode)
    assert.are.equal(uid, owner, "the file is the program's")
    assert.are.equal(uid, note_owner)
    local out
    out, err, code = cli { "session", "cp", s.id .. ":in/tool", "-" }
    assert.are.equal(0, code, err)
    assert.are.equal(bytes, out)
    out = cli { "session", "cp", s.id .. ":out.txt", "-" }
    assert.are.equal("made\n", out)
    local list = entries(s.id, "in")
    assert.are.same({ name = "tool", type = "file", mode = 488, size = #bytes }, list.tool)
    assert.are.equal("file", list["note.txt"].type)
    list = entries(s.id)
    assert.are.equal("dir", list["in"].type)
    assert.are.equal("file", list["out.txt"].type)
    remove(s)
  end)

  it("name what is wrong: a missing file, a directory, a path outside, a session that is none", function()
    local s = create()
    run(s.id, "mkdir d; mkfifo fifo")
    for _, case in ipairs {
      { { "session", "cp", s.id .. ":nope", "-" }, "'nope': no such file in the session's working dir" },
      { { "session", "cp", s.id .. ":d", "-" }, "'d': it is a directory" },
      { { "session", "cp", s.id .. ":../etc/passwd", "-" }, "a path in the session's working dir is relative" },
      { { "session", "cp", s.id .. ":/etc/passwd", "-" }, "a path in the session's working dir is relative" },
      { { "session", "cp", "-", s.id .. ":d" }, "'d': it is a directory" },
      { { "session", "files", s.id, "nope" }, "'nope': no such file" },
      { { "session", "cp", "-", "-" }, "one of SRC and DST is ID:PATH" },
      { { "session", "cp", ("0"):rep(32) .. ":x", "-" }, "no session '" .. ("0"):rep(32) .. "'" },
    } do
      local out, err, code = cli(case[1], "data\n")
      assert.are.equal(125, code, err)
      assert.are.equal("", out)
      assert.truthy(err:find(case[2], 1, true), err)
    end
    remove(s)
    local _, err, code = cli { "session", "cp", s.id .. ":x", "-" }
    assert.are.equal(125, code)
    assert.truthy(err:find("no session '" .. s.id .. "'", 1, true), err)
  end)

  -- Checked: with open_beneath's resolve flags taken out (0), cp of
  -- d/secret printed the host's "host-secret".
  it("never follow a link a run planted, to the host or through /proc", function()
    local s = create()
    local host, cleanup = session.host_target()
    finally(cleanup)
    run(s.id, ("ln -s %s d; ln -s %s/secret leaf; ln -s /proc/self/root%s p; ln -s ../../../../.. up; " ..
               "mkdir sub; ln -s ../../.. sub/up"):format(host, host, host))
    for _, path in ipairs { "d/secret", "leaf", "p/secret", "up" .. host .. "/secret", "sub/up" .. host .. "/secret" } do
      local out, err, code = cli { "session", "cp", s.id .. ":" .. path, "-" }
      assert.are.equal(125, code, path .. ": " .. out)
      assert.truthy(err:find("it leads outside the session's working dir", 1, true), err)
    end
    for _, path in ipairs { "d/x", "p/x", "sub/up/x" } do
      local _, err, code = cli({ "session", "cp", "-", s.id .. ":" .. path }, "planted\n")
      assert.are.equal(125, code, path)
      assert.truthy(err:find("it leads outside the session's working dir", 1, true), err)
    end
    local _, err, code = cli({ "session", "cp", "-", s.id .. ":leaf" }, "planted\n")
    assert.are.equal(0, code, err)
    assert.are.equal("host-secret\n", session.read(host .. "/secret"))
    assert.are.equal("secret\n", session.ls(host), "the host's directory is as it was")
    assert.are.equal("planted\n", run(s.id, "[ -L leaf ] || cat leaf").stdout, "the link itself was replaced")
    local list = entries(s.id)
    assert.are.equal("link", list.d.type)
    _, err, code = cli { "session", "files", s.id, "d" }
    assert.are.equal(125, code)
    assert.truthy(err:find("it leads outside", 1, true), err)
    remove(s)
  end)

  -- A fifo with no writer, a sparse file larger than the working dir (its
  -- tmpfs is the session's memory limit, 32 MiB; a run may write files of
  -- 64 MiB): refused at once, nothing waits.
  -- Checked: with O_NONBLOCK taken out of the read's open, cp of the fifo
  -- hung (the spec's 30 s deadline on the command ended it).
  it("are read only when regular, without waiting, and only as large as the working dir holds", function()
    local s = create("--memory", "32Mi")
    local r = run(s.id, "mkfifo fifo && truncate -s 60M sparse")
    assert.are.equal(0, r.exit_code, r.stderr)
    for _, case in ipairs {
      { "fifo", "not a regular file" },
      { "sparse", "larger than the session's working dir holds" },
    } do
      local _, err, code = env.cli_run({ "session", "cp", s.id .. ":" .. case[1], "-" }, nil,
                                       "timeout 30 env " .. session.env_prefix())
      assert.are.equal(125, code, err)
      assert.truthy(err:find(case[2], 1, true), err)
    end
    local big = os.tmpname()
    finally(function() os.remove(big) end)
    assert(os.execute("truncate -s 40M " .. big))
    local _, err, code = cli { "session", "cp", big, s.id .. ":big" }
    assert.are.equal(125, code)
    assert.truthy(err:find("more than the session's working dir holds", 1, true), err)
    assert.is_nil(entries(s.id).big)
    remove(s)
  end)
end)
