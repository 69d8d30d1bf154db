-- The default policy, with knobs for the k8s specs: labels.image picks the
-- image (the fake API server plays OOMKilled or Pending by image name),
-- labels.namespace the namespace, labels.deadline the pod's
-- activeDeadlineSeconds.
local policy = require "echo_sandbox.policy.default"

local image_for = policy.image_for
function policy:image_for(req)
  return req.labels and req.labels.image or image_for(self, req)
end

local namespace_for = policy.namespace_for
function policy:namespace_for(req)
  return req.labels and req.labels.namespace or namespace_for(self, req)
end

local pod_for = policy.pod_for
function policy:pod_for(req, resources)
  local pod = pod_for(self, req, resources)
  pod.spec.activeDeadlineSeconds = req.labels and math.tointeger(tonumber(req.labels.deadline))
  return pod
end

return policy
