-- What the network specs share: their test hosts live in network namespaces
-- each spec makes and removes itself (named with a spec's own id, so specs
-- beside it are left alone).
local env = require "spec.support.env"

local M = {}

-- Runs a shell command line that must succeed; its output.
function M.sh(cmd)
  local ok, out = env.sh(cmd)
  assert(ok, cmd .. ": " .. out)
  return out
end

-- Waits until path exists (a server's "ready" file): whether it did, within
-- some 10 s.
function M.wait_for(path)
  for _ = 1, 1000 do
    local f = io.open(path)
    if f then f:close() return true end
    env.sleep(0.01)
  end
  return false
end

-- A spec's own id and the names of its two namespaces: "esb-<tag>h-ID",
-- the engine's, and "esb-<tag>p-ID", the test host's.
function M.names(tag)
  local id = ("%d"):format(os.time() % 10000 * 1000 + math.random(0, 999)) -- specs beside it differ
  return id, "esb-" .. tag .. "h-" .. id, "esb-" .. tag .. "p-" .. id
end

-- Makes the two namespaces, joined by a veth: host 203.0.113.1/24 ("ehID"),
-- peer 203.0.113.2/24 ("epID", TEST-NET-3: a public address here), the
-- host's default route through the peer; then the commands of extra (ip
-- arguments after "ip -n HOST " or "ip -n PEER ": { host = {...}, peer =
-- {...} }), the host's first.
function M.make_pair(id, host, peer, extra)
  local H, P = "ip -n " .. host .. " ", "ip -n " .. peer .. " "
  local cmds = {
    "ip netns add " .. host, "ip netns add " .. peer,
    H .. "link set lo up", P .. "link set lo up",
    H .. "link add eh" .. id .. " type veth peer name ep" .. id .. " netns " .. peer,
    H .. "addr add 203.0.113.1/24 dev eh" .. id, H .. "link set eh" .. id .. " up",
    P .. "addr add 203.0.113.2/24 dev ep" .. id, P .. "link set ep" .. id .. " up",
    H .. "route add default via 203.0.113.2",
  }
  for _, c in ipairs(extra and extra.peer or {}) do cmds[#cmds + 1] = P .. c end
  for _, c in ipairs(extra and extra.host or {}) do cmds[#cmds + 1] = H .. c end
  M.sh(table.concat(cmds, " && "))
end

-- The test hosts' names (lines of a hosts(5) file) in dir/hosts, which the
-- proxy reads itself (the policy's egress.hosts_file, serve's --hosts-file):
-- not through NSS, so that they resolve where /etc/hosts or
-- /etc/nsswitch.conf is missing (a minimal root filesystem has neither,
-- and `ip netns exec` binds /etc/netns/HOST/hosts only over an /etc/hosts
-- that exists). The host namespace's resolver is 127.0.0.1, where nothing
-- answers: a name not in the file goes nowhere. Returns the policy's line.
function M.hosts(host, dir, lines)
  M.sh("mkdir -p /etc/netns/" .. host)
  env.write_file("/etc/netns/" .. host .. "/resolv.conf", "nameserver 127.0.0.1\n")
  env.write_file(dir .. "/hosts", table.concat(lines, "\n") .. "\n")
  return ("policy.egress.hosts_file = %q\n"):format(dir .. "/hosts")
end

-- Makes a CA of the spec's own in dir (ca.pem, ca.key) and the test host's
-- certificate (cert.pem, key.pem) for names (an array, the first its CN);
-- returns the CA's certificate, PEM.
function M.test_ca(dir, names)
  local san = "DNS:" .. table.concat(names, ",DNS:")
  M.sh(("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=esb-test-ca" ..
        " 2>/dev/null && openssl req -newkey rsa:2048 -nodes -keyout key.pem -out req.pem -subj /CN=%s" ..
        " 2>/dev/null && printf 'subjectAltName=%s\\n' > san && openssl x509 -req -in req.pem -CA ca.pem" ..
        " -CAkey ca.key -CAcreateserial -out cert.pem -days 2 -extfile san 2>/dev/null"):format(dir, names[1], san))
  local f = assert(io.open(dir .. "/ca.pem"))
  local pem = f:read("a")
  f:close()
  return pem
end

-- A secret's value for the injection specs ("Bearer " and prefix and eight
-- random letters: letters only, so that a sandbox can look for it by its
-- ROT13 form without carrying it), and that form.
function M.secret(prefix)
  local secret = "Bearer " .. prefix .. ("%08d"):format(math.random(0, 99999999)):gsub("%d", function(d)
    return string.char(97 + tonumber(d)) end)
  local rot13 = secret:gsub("%a", function(c)
    local base = c:match("%l") and 97 or 65
    return string.char((c:byte() - base + 13) % 26 + base)
  end)
  return secret, rot13
end

-- A result's egress ledger as "host:port reason" lines, in order.
function M.ledger(r)
  local lines = {}
  for _, e in ipairs(r.egress or {}) do
    lines[#lines + 1] = ("%s:%d %s%s"):format(e.host, e.port, e.reason, e.allowed and "" or " (refused)")
  end
  return table.concat(lines, "\n")
end

-- Ends a process this spec started, and waits until it is gone.
function M.stop(pid)
  os.execute("kill " .. pid .. " 2>/dev/null; while kill -0 " .. pid .. " 2>/dev/null; do sleep 0.01; done")
end

-- Removes the namespaces, the files of /etc/netns/HOST and dir, then checks
-- that nothing named with id is left.
function M.remove(id, names, host, dir)
  for _, name in ipairs(names) do os.execute("ip netns del " .. name .. " 2>/dev/null") end
  os.execute("rm -rf " .. dir .. " /etc/netns/" .. host)
  local _, list = env.sh("ip netns list")
  for _, name in ipairs(names) do -- its own: another spec's may share the id
    assert(not (" " .. list .. " "):find("%s" .. name:gsub("%-", "%%-") .. "%s"), "left behind: " .. list)
  end
  assert(os.execute("test -e /etc/netns/" .. host) ~= true, "left behind: /etc/netns/" .. host)
end

return M
