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
