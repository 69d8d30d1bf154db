-- The policy of the in-cluster server (server.yaml, as the ConfigMap
-- echo-sandbox-policy): every request becomes a pod of its own. No
-- fallback: when the cluster does not answer, requests fail (retry them);
-- none runs in the server's own container.
local policy = require "echo_sandbox.policy.default"
policy.backend = "k8s"
return policy
