-- The deployment files: the systemd unit (deploy/echo-sandbox.service).
-- No systemd runs the unit here, so what it promises is checked piece by
-- piece: systemd's own analysis of it, and the engine run under the unit's
-- capability bounding set and no_new_privs (setpriv), umask 0077 included.
local env = require "spec.support.env"

local unit = "deploy/echo-sandbox.service"

-- The unit in a directory of its own, its ExecStart on this build's CLI
-- (verify wants the program to exist).
local function unit_copy()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  local path = dir .. "/echo-sandbox.service"
  -- systemd takes absolute paths only; the CLI may be named relative to here
  local cli = env.cli:sub(1, 1) == "/" and env.cli or (os.getenv("PWD") .. "/" .. env.cli)
  env.write_file(path, (env.read_file(unit):gsub("/usr/local/bin/echo%-sandbox", cli)))
  return dir, path
end

local run = env.sh

-- The unit's CapabilityBoundingSet as setpriv's --bounding-set.
local function bounding_set()
  local caps = env.read_file(unit):match("\nCapabilityBoundingSet=([^\n]*)")
  local list = { "-all" }
  for cap in caps:gmatch("CAP_(%S+)") do list[#list + 1] = "+" .. cap:lower() end
  return table.concat(list, ",")
end

describe("the systemd unit", function()
  env.check_leaks()

  it("passes systemd-analyze verify", function()
    local dir, path = unit_copy()
    finally(function() os.execute("rm -rf " .. dir) end)
    local ok, out = run("systemd-analyze verify " .. env.quote(path))
    assert.is_true(ok, out)
    assert.are.equal("", out)
  end)

  it("scores 4.5 or less in systemd-analyze security --offline=true", function()
    local dir, path = unit_copy()
    finally(function() os.execute("rm -rf " .. dir) end)
    local _, out = run("systemd-analyze security --offline=true " .. env.quote(path))
    local score = tonumber(out:match("Overall exposure level for [^:]*: (%d+%.%d+)"))
    assert.truthy(score, out)
    assert.is_true(score <= 4.5, out:match("Overall[^\n]*"))
  end)

  it("keeps what the engine needs in its capability bounding set, with no_new_privs and umask 0077", function()
    if not env.is_root() then
      pending("as root only: the unit runs the daemon as root")
      return
    end
    local prefix = ("umask 077; setpriv --bounding-set %s --no-new-privs"):format(bounding_set())
    -- a network namespace with the user-mode stack (pasta, /dev/net/tun)
    -- attached, on a host whose /dev/net/tun is 0666 as Debian's udev makes
    -- it (pasta then runs as the run's uid, with no capability; as root it
    -- would need CAP_SYS_ADMIN, which the unit leaves out, to enter the
    -- namespaces the run's uid owns, and doctor says so)
    local debian_tun = "unshare -m sh -c 'd=$(mktemp -d) && mknod -m 666 $d/tun c 10 200 && " ..
                       "mount --bind $d/tun /dev/net/tun && rm -r $d && exec \"$@\"' sh "
    local out, err, code = env.cli_run({ "run", "--json", "--network", "--", "id", "-u" }, nil,
                                       "umask 077; " .. debian_tun .. prefix:gsub("^umask 077; ", ""))
    assert.are.equal(0, code, err)
    assert.are.equal("65534\n", require("cjson").decode(out).stdout)
    -- files in and out, and the host working dir of isolation rlimits (sticky /tmp: CAP_FOWNER)
    local policy = env.policy_file('policy.local_sandbox.isolation = "rlimits"')
    finally(function() os.remove(policy) end)
    for _, extra in ipairs { {}, { "--policy", policy } } do
      local args = { "run", "--json" }
      for _, a in ipairs(extra) do args[#args + 1] = a end
      out, err, code = env.cli_run(args, require("cjson").encode {
        shell = "cat in.txt && echo made > out.txt", files = { ["in.txt"] = "given\n" }, collect = { "out.txt" },
      }, prefix)
      local r = require("cjson").decode(out)
      assert.are.equal(0, code, err .. out)
      assert.are.equal("given\n", r.stdout)
      assert.are.equal("out.txt", r.files[1].path)
    end
  end)
end)
