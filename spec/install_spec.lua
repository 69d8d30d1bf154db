-- The installation: `cmake --install --prefix P` for a P other than the
-- configured prefix, used with the source copy and the build removed, so
-- that nothing can come from either; its man pages and bash completion; and
-- its uninstall. All of it from a tree that is no git checkout, on a machine
-- without git (a tarball's user has neither).
local env = require "spec.support.env"
local daemon = require "spec.support.daemon"
local cjson = require "cjson"

local sh = env.sh

-- Every path below dir, relative to it, sorted, one a line.
local function tree(dir)
  local _, out = sh(("cd %s && find . -mindepth 1 | sort"):format(env.quote(dir)))
  return out
end

describe("an installation", function()
  env.check_leaks()
  local root, prefix, uninstalled = nil, nil, {}

  -- One installation for the specs below: configured for root/configured,
  -- installed to root/installed, its source and build removed. Before that,
  -- the same build installed and uninstalled three times: to a prefix that
  -- was not there; to one where a directory was already, with a file of
  -- someone else's put in a directory the install made; with a DESTDIR.
  setup(function()
    root = os.tmpname()
    os.remove(root)
    assert(os.execute("mkdir -p " .. root .. "/src " .. root .. "/nogit"))
    -- A git that is not there: nothing below may need one (a tarball's
    -- user has none; Debian's minbase has none). Checked: with the tree
    -- copied by `git ls-files` (as before), the setup fails here.
    env.write_file(root .. "/nogit/git", "#!/bin/sh\necho 'git: command not found' >&2\nexit 127\n")
    assert(os.execute("chmod +x " .. root .. "/nogit/git"))
    local path = ("PATH=%s/nogit:$PATH "):format(root)
    -- The tree as a clean clone or a tarball has it, with what is not
    -- committed yet: everything but what .gitignore names (builds,
    -- node_modules) and .git itself.
    local excludes = {}
    for line in env.read_file(".gitignore"):gmatch("[^\n]+") do
      if not line:match("^#") then excludes[#excludes + 1] = "--exclude=" .. env.quote(line:gsub("/$", "")) end
    end
    local ok, out = sh(("%s tar -cf - --exclude-vcs %s . | tar -xf - -C %s/src")
                       :format(path, table.concat(excludes, " "), root))
    assert(ok, out)
    -- Debug: what is installed, and where, does not depend on the build
    -- type, and the optimiser's passes cost this build some 13 s of CPU.
    ok, out = sh(("%s cmake -S %s/src -B %s/build -DCMAKE_BUILD_TYPE=Debug "
                  .. "-DCMAKE_INSTALL_PREFIX=%s/configured "
                  .. "&& cmake --build %s/build -j2 --target echo-sandbox echo-sandbox-serve echo-sandbox-init echo_sandbox")
                  :format(path, root, root, root, root))
    assert(ok, out)
    local function install_and_uninstall(to, before, after)
      local ok2, out2 = sh(("%s %s cmake --install %s/build --prefix %s"):format(before, path, root, to))
      assert(ok2, out2)
      ok2, out2 = sh(("%s %s cmake --build %s/build --target uninstall"):format(after, path, root))
      assert(ok2, out2)
    end
    install_and_uninstall(root .. "/fresh", "", "")
    uninstalled.fresh = os.execute("test -e " .. root .. "/fresh") == true
    install_and_uninstall(root .. "/shared", ("mkdir -p %s/shared/share/man &&"):format(root),
                          ("echo mine > %s/shared/share/echo-sandbox/policies/mine.lua &&"):format(root))
    uninstalled.shared = tree(root .. "/shared")
    -- as a package build stages it: DESTDIR at install, not at uninstall
    -- (the prefix in root too, should the uninstall look there instead)
    install_and_uninstall(root .. "/prefix", ("DESTDIR=%s/staged"):format(root), "")
    uninstalled.staged = os.execute("test -e " .. root .. "/staged") == true
    ok, out = sh(("%s cmake --install %s/build --prefix %s/installed"):format(path, root, root))
    assert(ok, out)
    assert(os.execute(("rm -rf %s/src %s/build %s/fresh %s/shared %s/staged"):format(root, root, root, root, root)))
    prefix = root .. "/installed"
  end)

  teardown(function()
    if root then os.execute("rm -rf " .. root) end
  end)

  -- Checked: without the uninstall target, the build has none; with the
  -- manifest's files removed but not the directories noted at install
  -- time, the fresh prefix was left with its empty directories; without
  -- the install's DESTDIR put back, the staged files were left.
  it("uninstalls: every file and every directory it made, nothing else", function()
    assert.is_false(uninstalled.fresh, "the fresh prefix is left")
    assert.is_false(uninstalled.staged, "the DESTDIR is left")
    assert.are.equal("./share\n./share/echo-sandbox\n./share/echo-sandbox/policies\n"
                     .. "./share/echo-sandbox/policies/mine.lua\n./share/man\n", uninstalled.shared)
  end)

  it("runs from the prefix it was installed to, not the one it was configured with", function()
    local ok, out = sh(prefix .. "/bin/echo-sandbox run -- sh -c 'echo hi from $(pwd)'")
    assert(ok, out)
    assert.are.equal("hi from /work\n", out)
    assert.is_false(os.execute("test -e " .. root .. "/configured") == true)
    ok, out = sh(prefix .. "/bin/echo-sandbox policy explain --json --lang python --code 'print(1)'")
    assert(ok, out)
    local x = cjson.decode(out)
    assert.are.equal(prefix .. "/share/echo-sandbox/policies/default.lua", x.policy)
    assert.are.same({ "python3", "main.py" }, x.argv)
  end)

  it("serves from there, ready, its daemon found beside the installed CLI", function()
    local saved = env.cli
    env.cli = prefix .. "/bin/echo-sandbox"
    local d = daemon.start()
    env.cli = saved
    local status, ready = daemon.request(d, "GET", "/readyz")
    local ran, r = daemon.request(d, "POST", "/v1/run", cjson.encode { language = "python", code = "print(6*7)" })
    daemon.stop(d)
    assert.are.equal(200, status)
    assert.are.equal(prefix .. "/share/echo-sandbox/policies/default.lua", ready.policy)
    assert.are.equal(200, ran)
    assert.are.equal("42\n", r.stdout)
  end)

  it("loads as a Lua module from its lib dir, and finds the rest from there", function()
    local ok, out = sh(("LUA_CPATH='%s/lib/lua/5.4/?.so;%s/lib/*/lua/5.4/?.so' lua5.4 -e "
                        .. "'local r = require(\"echo_sandbox\").run { shell = \"echo from the module\" } "
                        .. "io.write(r.stdout, r.isolation)'"):format(prefix, prefix))
    assert(ok, out)
    assert.are.equal("from the module\nnamespaces", out)
  end)

  it("has man pages that render without a warning, echo-sandbox(1) naming every command", function()
    for _, page in ipairs { "man1/echo-sandbox.1", "man5/echo-sandbox-policy.5" } do
      local ok, out = sh(("groff -man -ww -z %s/share/man/%s"):format(prefix, page))
      assert(ok, out)
      assert.are.equal("", out, page)
    end
    local page = env.read_file(prefix .. "/share/man/man1/echo-sandbox.1")
    local _, help = sh(prefix .. "/bin/echo-sandbox --help")
    local commands = 0
    for command in help:gmatch("\n  (%l+)  ") do
      commands = commands + 1
      assert.truthy(page:find("\n.SS " .. command .. "\n", 1, true), command)
    end
    assert.are.equal(8, commands)
    local policy = env.read_file(prefix .. "/share/man/man5/echo-sandbox-policy.5")
    for _, hook in ipairs { "plan(", "cluster()", "known_languages()" } do
      assert.truthy(policy:find(hook, 1, true), hook)
    end
  end)

  it("has a bash completion for the commands, their options and values", function()
    local script = prefix .. "/share/bash-completion/completions/echo-sandbox"
    local function complete(...)
      local words = { "echo-sandbox", ... }
      local quoted = {}
      for i, w in ipairs(words) do quoted[i] = env.quote(w) end
      -- the completion reads the options from the installed program's --help
      local body = ("source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _echo_sandbox; echo \"${COMPREPLY[*]}\"")
        :format(script, table.concat(quoted, " "), #words - 1)
      local ok, out = sh(("PATH=%s/bin:$PATH bash -c %s"):format(prefix, env.quote(body)))
      assert(ok, out)
      return out
    end
    assert.are.equal("run batch serve session policy pool cleanup doctor --help --version\n", complete(""))
    assert.are.equal("--public-probes\n", complete("serve", "--pub"))
    assert.are.equal("explain check languages\n", complete("policy", ""))
    assert.are.equal("auto local k8s\n", complete("run", "--backend", ""))
    assert.are.equal("\n", complete("serve", "--listen", ""))
  end)
end)
