-- The bash completion (completions/echo-sandbox.bash), driven as bash
-- drives it (COMP_WORDS, COMP_CWORD, then _echo_sandbox) with this build's
-- echo-sandbox, for every command and every option its --help lists.
local env = require "spec.support.env"

local sh = env.sh

local function realpath(path)
  local ok, out = sh("realpath " .. env.quote(path))
  assert(ok, out)
  return (out:gsub("\n$", ""))
end

local script, bin = realpath("completions/echo-sandbox.bash"), realpath(env.build)

-- What the completion offers for `echo-sandbox WORDS...` (the last word the
-- one being completed), in dir: a sorted list.
local function complete(words, dir)
  local quoted = { "echo-sandbox" }
  for _, w in ipairs(words) do quoted[#quoted + 1] = env.quote(w) end
  local body = ("source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _echo_sandbox; "
    .. "for w in \"${COMPREPLY[@]}\"; do printf '%%s\\n' \"$w\"; done")
    :format(env.quote(script), table.concat(quoted, " "), #words)
  local ok, out = sh(("cd %s && PATH=%s:$PATH bash -c %s"):format(env.quote(dir or "."), env.quote(bin),
                                                               env.quote(body)))
  assert(ok, out)
  local list = {}
  for w in out:gmatch("[^\n]+") do list[#list + 1] = w end
  table.sort(list)
  return list
end

-- A command's options as its --help lists them: { name, metavar or nil }.
local function options(command)
  local ok, help = sh(env.quote(env.cli) .. " " .. table.concat(command, " ") .. " --help")
  assert(ok, help)
  local list = {}
  for spec in help:gmatch("\n  (%-[^\n]-)  ") do  -- "-j, --jobs N", "--listen ADDR", "--network"
    local names, metavar = spec:match("^(.-) ([^ ,]+)$")
    if not names or metavar:find("^%-") then names, metavar = spec, nil end
    for name in names:gmatch("[^, ]+") do list[#list + 1] = { name, metavar } end
  end
  assert.is_true(#list > 0 or command[2] == "check", table.concat(command, " "))
  return list
end

-- Every command, policy's subcommands each on its own.
local commands = {
  { "run" }, { "batch" }, { "serve" }, { "policy", "explain" }, { "policy", "check" }, { "policy", "languages" },
  { "cleanup" }, { "doctor" }, { "session", "create" }, { "session", "run" }, { "session", "ls" },
  { "session", "show" }, { "session", "rm" }, { "pool", "run" }, { "pool", "status" },
}

-- A value each option's metavariable takes, to show the command accepts it.
local sample = {
  FILE = "/dev/null", DIR = "/tmp", N = "1", SECONDS = "1", BYTES = "1", QUANTITY = "1", CORES = "1",
  MODE = "0600", MS = "1000", ADDR = "127.0.0.1:0", ["NAME=VALUE"] = "A=b", LANGUAGE = "python", CMD = "true", CODE = "true",
  NS = "x", GROUP = "0",
}

describe("the bash completion", function()
  env.check_leaks()

  it("offers the commands of --help, and policy's and session's subcommands", function()
    local ok, help = sh(env.quote(env.cli) .. " --help")
    assert(ok, help)
    local want = { "--help", "--version" }
    for name in help:gmatch("\n  (%l+)  ") do want[#want + 1] = name end
    table.sort(want)
    assert.are.same(want, complete { "" })
    assert.are.equal(10, #want)
    assert.are.same({ "check", "explain", "languages" }, complete { "policy", "" })
    assert.are.same({ "cell", "cp", "create", "files", "ls", "rm", "run", "show" }, complete { "session", "" })
    assert.are.same({ "run", "status" }, complete { "pool", "" })
  end)

  -- Checked: with the lists written out in the script (as before), they
  -- drifted: serve's offered a --help its --help does not list, policy
  -- explain's lacked --stdin-file, --working-dir, --cpu-time, --cpu,
  -- --max-processes, --max-output and --network.
  it("offers every option each command's --help lists, each one the command takes", function()
    for _, command in ipairs(commands) do
      local want, seen = {}, {}
      for _, o in ipairs(options(command)) do
        local name, metavar = o[1], o[2]
        if name:find("^%-%-") and not seen[name] then want[#want + 1] = name end
        seen[name] = true
        local args = { env.quote(env.cli) }
        for _, w in ipairs(command) do args[#args + 1] = w end
        args[#args + 1] = name
        if metavar then
          args[#args + 1] = env.quote(sample[metavar] or metavar:match("^([^|]+)|") or "x")
        end
        local ok, out = sh(table.concat(args, " ") .. " --help")
        assert(ok, table.concat(command, " ") .. " " .. name .. ": " .. out)
        assert.truthy(out:find("^usage: "), out)
      end
      table.sort(want)
      local args = {}
      for _, w in ipairs(command) do args[#args + 1] = w end
      args[#args + 1] = "--"
      assert.are.same(want, complete(args), table.concat(command, " "))
    end
  end)

  -- Checked: with the lists written out in the script (as before), `serve
  -- --listen -` offered serve's options, and --max-body, --grace, --cpu and
  -- the like the same.
  it("completes a value after every option that takes one, never an option", function()
    local ok, dir = sh("mktemp -d")
    assert(ok, dir)
    dir = dir:gsub("\n$", "")
    assert(os.execute(("mkdir %s/a-dir && touch %s/a-file"):format(dir, dir)))
    local _, languages = sh(env.quote(env.cli) .. " policy languages")
    local checked = 0
    for _, command in ipairs(commands) do
      for _, o in ipairs(options(command)) do
        local name, metavar = o[1], o[2]
        if metavar then
          local words = {}
          for _, w in ipairs(command) do words[#words + 1] = w end
          words[#words + 1] = name
          words[#words + 1] = ""
          local got = complete(words, dir)
          local what = table.concat(words, " ") .. " -> " .. table.concat(got, " ")
          for _, w in ipairs(got) do assert.is_nil(w:find("^%-"), what) end
          if metavar:find("FILE$") then
            assert.are.same({ "a-dir", "a-file" }, got, what)
          elseif metavar == "DIR" then
            assert.are.same({ "a-dir" }, got, what)
          elseif metavar:find("|", 1, true) then
            local want = {}
            for v in metavar:gmatch("[^|]+") do want[#want + 1] = v end
            table.sort(want)
            assert.are.same(want, got, what)
          elseif metavar == "LANGUAGE" then
            assert.is_true(#got > 1, what)
            for _, lang in ipairs(got) do assert.truthy(languages:find('"name":"' .. lang .. '"', 1, true), lang) end
          else
            assert.are.same({}, got, what)
          end
          words[#words] = "-"
          assert.are.same({}, complete(words, dir), table.concat(words, " "))
          checked = checked + 1
        end
      end
    end
    assert(os.execute("rm -rf " .. env.quote(dir)))
    assert.is_true(checked >= 40, checked)
  end)

  it("leaves the program's words after -- to the shell", function()
    assert.are.same({}, complete { "run", "--", "-" })
    assert.are.same({}, complete { "run", "--", "--shell", "" })
  end)
end)
