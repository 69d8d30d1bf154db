-- The policy echo-sandbox loads when no other is named (--policy FILE,
-- $ECHO_SANDBOX_POLICY, /etc/echo-sandbox/policy.lua come first). The contract
-- of a policy is described in lua/echo_sandbox/policy/default.lua; a site
-- policy starts from the same module and changes single fields.
return require "echo_sandbox.policy.default"
