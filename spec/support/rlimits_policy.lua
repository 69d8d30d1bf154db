-- The default policy with isolation "rlimits", for the valgrind run of the
-- specs: valgrind cannot follow the mount API calls of the namespace sandbox,
-- and it refuses to let a program lower its fd hard limit.
local policy = require "echo_sandbox.policy.default"
policy.local_sandbox.isolation = "rlimits"
policy.local_sandbox.open_files = nil
return policy
