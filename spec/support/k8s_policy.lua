-- The default policy, with knobs for the k8s specs: labels.image picks the
-- image (the fake API server plays OOMKilled, Pending or a failed image pull
-- by image name), labels.namespace the namespace, labels.deadline the pod's
-- activeDeadlineSeconds, labels.unschedulable_grace_ms and
-- labels.not_ready_grace_ms the k8s settings.
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

local plan = policy.plan
function policy:plan(req)
  local p, err = plan(self, req)
  local grace = req.labels and math.tointeger(tonumber(req.labels.unschedulable_grace_ms))
  if p and p.k8s and grace then p.k8s.unschedulable_grace_ms = grace end
  local not_ready = req.labels and math.tointeger(tonumber(req.labels.not_ready_grace_ms))
  if p and p.k8s and not_ready then p.k8s.not_ready_grace_ms = not_ready end
  return p, err
end

return policy
