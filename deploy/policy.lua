-- The policy of the in-cluster server (server.yaml, as the ConfigMap
-- echo-sandbox-policy): every request becomes a pod of its own. No
-- fallback: when the cluster does not answer, requests fail (retry them);
-- none runs in the server's own container.
local policy = require "echo_sandbox.policy.default"
policy.backend = "k8s"
-- The network by name (limits.network = { allow = ... }) through the shared
-- egress proxy of egress.yaml, once its Secret is made:
-- policy.egress.k8s = { proxy = "http://echo-sandbox-egress.echo-sandbox.svc:3128",
--                       key_file = "/var/run/secrets/echo-sandbox-egress/key" }
return policy
