-- Example: the language "cuda-python" runs on GPU nodes: an image with CUDA,
-- a node selector and a toleration for the GPU nodes' taint, and one GPU in
-- the container's resource limits. Every other request is as in the default.
local policy = require "echo_sandbox.policy.default"

policy.languages["cuda-python"] = {
  image = "nvcr.io/nvidia/pytorch:24.05-py3",
  command = { "python3", "-c" },
}

local pod_for = policy.pod_for
function policy:pod_for(req, resources)
  local pod = pod_for(self, req, resources)
  if req.language == "cuda-python" then
    pod.spec.nodeSelector = { ["nvidia.com/gpu.present"] = "true" }
    pod.spec.tolerations = { { key = "nvidia.com/gpu", operator = "Exists", effect = "NoSchedule" } }
    local limits = pod.spec.containers[1].resources.limits
    limits["nvidia.com/gpu"] = "1"
  end
  return pod
end

return policy
