-- The flag form of `run` streams: the program's output reaches ours as it
-- comes, and --stdin-file is read as the program takes it. Order is proven
-- by an interlock, not a clock: the spec writes the program's input only
-- after it has read the program's first line.
local env = require "spec.support.env"

-- A fifo in a fresh dir of the suite's temp root.
local function fifo_dir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir .. " && mkfifo " .. dir .. "/in " .. dir .. "/out"))
  return dir
end

-- Starts `run ARGS` with stdin from dir/in and stdout to dir/out; the
-- watchdog turns a CLI that waits for all of its input before running into
-- a failure instead of a hang. Returns the ends of the fifos and a function
-- that waits for the exit code.
local function start(dir, args)
  local parts = { "timeout", "60", env.cli_prefix, env.quote(env.cli), "run", "--stdin-file", dir .. "/in" }
  for _, a in ipairs(args) do parts[#parts + 1] = env.quote(a) end
  local wait = env.in_background(("%s >%s/out 2>%s/err"):format(table.concat(parts, " "), dir, dir))
  local out = assert(io.open(dir .. "/out", "r")) -- the shell opened it: the CLI starts
  local input = assert(io.open(dir .. "/in", "w")) -- the CLI opened its --stdin-file
  return out, input, wait
end

describe("run in flag form streams", function()
  env.check_leaks()

  it("shows the program's first line before the program has its input", function()
    local dir = fifo_dir()
    finally(function() os.execute("rm -rf " .. dir) end)
    local out, input, wait = start(dir, { "--", "sh", "-c", "echo first; read line; echo \"got $line\"" })
    -- Nothing is written to the program yet: this line can only come from a
    -- program that runs while its stdin is still open and empty.
    assert.are.equal("first", out:read("l"))
    input:write("hello\n")
    input:flush()
    assert.are.equal("got hello", out:read("l"))
    input:close()
    assert.is_nil(out:read("l"))
    out:close()
    assert.are.equal(0, wait())
    assert.are.equal("", env.read_file(dir .. "/err"))
  end)

  it("never hands the program a named fifo of the host, given as stdin", function()
    local dir = fifo_dir()
    finally(function() os.execute("rm -rf " .. dir) end)
    -- A fifo is a path of the host's: with its fd the program could change
    -- it (fchmod, where it owns it). It gets a pipe of ours instead.
    local out, input, wait = start(dir, { "--", "sh", "-c", "readlink /proc/self/fd/0; cat" })
    local link = out:read("l")
    input:write("through\n")
    input:close()
    assert.are.equal("through", out:read("l"))
    out:close()
    assert.are.equal(0, wait())
    assert.truthy(link:find("^pipe:%[%d+%]$"), link)
    assert.is_nil(link:find(dir, 1, true))
  end)

  it("does not let a reader that stops reading keep the program past its deadline", function()
    -- stdout is a socket, so the engine moves the bytes (spliced) and waits
    -- for a reader that never reads: only until the deadline. A wait without
    -- end shows as "hang".
    local script = [[
import socket, subprocess, sys
ours, theirs = socket.socketpair()
p = subprocess.Popen(sys.argv[1:], stdout=theirs, stderr=subprocess.DEVNULL)
theirs.close()
try:
    print(p.wait(timeout=60))
except subprocess.TimeoutExpired:
    p.kill()
    p.wait()
    print("hang")
]]
    local p = io.popen(("python3 -c %s %s %s run --timeout 1 -- yes"):format(env.quote(script), env.cli_prefix,
      env.quote(env.cli)))
    local got = p:read("a")
    p:close()
    assert.are.equal("124\n", got)
  end)

  it("passes input on line by line, each answered before the next is sent", function()
    local dir = fifo_dir()
    finally(function() os.execute("rm -rf " .. dir) end)
    local out, input, wait = start(dir, { "--", "sh", "-c", "while read x; do echo \"<$x>\"; done; echo end" })
    for i = 1, 5 do
      input:write(i, "\n")
      input:flush()
      assert.are.equal(("<%d>"):format(i), out:read("l"))
    end
    input:close()
    assert.are.equal("end", out:read("l"))
    out:close()
    assert.are.equal(0, wait())
  end)

  it("reads a socket given as stdin as it becomes readable, without handing it over", function()
    -- A socket (like a terminal) is read by the engine and written to the
    -- program's pipe, never given to the program itself.
    local script = [[
import socket, subprocess, sys
ours, theirs = socket.socketpair()
p = subprocess.Popen(sys.argv[1:], stdin=theirs, stdout=subprocess.PIPE)
theirs.close()
first = p.stdout.readline()
ours.sendall(b"hello\n")
ours.shutdown(socket.SHUT_WR)
rest = p.stdout.read()
print(repr((first, rest, p.wait())))
]]
    local cmd = ("python3 -c %s %s %s run --stdin-file - -- sh -c %s"):format(env.quote(script), env.cli_prefix,
      env.quote(env.cli), env.quote("echo first; ls -l /proc/self/fd/0 | grep -c socket; read x; echo \"got $x\""))
    local p = io.popen("timeout 60 " .. cmd)
    local got = p:read("a")
    p:close()
    assert.are.equal("(b'first\\n', b'0\\ngot hello\\n', 0)\n", got)
  end)

  it("streams a file as stdin byte for byte, beyond the capture's cap, NUL bytes and all", function()
    local path = os.tmpname()
    finally(function() os.remove(path) end)
    local chunk = {}
    for i = 0, 255 do chunk[#chunk + 1] = string.char(i) end
    local data = table.concat(chunk):rep(16 * 1024) -- 4 MiB, above the 1 MiB cap of a result
    env.write_file(path, data)
    local out, err, code = env.cli_run { "run", "--stdin-file", path, "--", "cat" }
    assert.are.equal(0, code, err)
    assert.are.equal(#data, #out)
    assert.is_true(out == data)
  end)

  it("reads a file given as stdin from its offset, and leaves that offset alone", function()
    local path = os.tmpname()
    finally(function() os.remove(path) end)
    env.write_file(path, "skip\nkeep\n")
    -- `read` in the shell takes the first line from the fd; the CLI then
    -- gets the rest, and the shell's next read still sees it after the CLI.
    local p = io.popen(("{ read first; %s %s run --stdin-file - -- cat; cat; } < %s"):format(
      env.cli_prefix, env.quote(env.cli), env.quote(path)))
    local got = p:read("a")
    p:close()
    assert.are.equal("keep\nkeep\n", got)
  end)

  it("keeps the capped capture for the result with --json", function()
    local path = os.tmpname()
    finally(function() os.remove(path) end)
    env.write_file(path, ("x"):rep(2 * 1024 * 1024))
    local out, err, code = env.cli_run { "run", "--json", "--max-output", "1Ki", "--stdin-file", path, "--", "cat" }
    assert.are.equal(0, code, err)
    local r = require("cjson").decode(out)
    assert.are.equal(1024, #r.stdout)
    assert.is_true(r.stdout_truncated)
    assert.are.equal(2 * 1024 * 1024, r.stdout_bytes)
  end)
end)
