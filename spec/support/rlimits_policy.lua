-- The default policy with isolation "rlimits", for the valgrind run of the
-- specs: valgrind cannot follow the mount API calls of the namespace sandbox,
-- and it refuses to let a program lower its fd hard limit: neither the
-- sandbox's open_files nor a run's max_open_files (0: none, where the
-- engine's table would give 1024) is set.
local policy = require "echo_sandbox.policy.default"
policy.local_sandbox.isolation = "rlimits"
policy.local_sandbox.open_files = nil
local limits_for = policy.limits_for
function policy:limits_for(req)
  local limits, clamped = limits_for(self, req)
  limits.max_open_files = 0
  return limits, clamped
end
return policy
