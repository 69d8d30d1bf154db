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
    os.execute("sleep 0.01")
  end
  return false
end

-- A spec's own id and the names of its two namespaces: "esb-<tag>h-ID",
-- the engine's, and "esb-<tag>p-ID", the test host's.
function M.names(tag)
  local id = ("%d"):format(os.time() % 10000 * 10 + math.random(0, 9))
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
  assert(not list:find(id, 1, true), "left behind: " .. list)
  assert(os.execute("test -e /etc/netns/" .. host) ~= true, "left behind: /etc/netns/" .. host)
end

return M
