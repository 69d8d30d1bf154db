-- Example: a stricter policy. Smaller limits and deadline, less output, and
-- on Kubernetes a read-only root filesystem with a small in-memory /tmp.
local policy = require "echo_sandbox.policy.default"
local merge = require "echo_sandbox.merge"

local Mi = 1024 * 1024

policy.defaults.timeout_ms = 10000
policy.defaults.limits = {
  memory_bytes = 128 * Mi,
  cpu_time_secs = 5,
  max_output_bytes = 64 * 1024,
  max_processes = 16,
  network = false,
}
policy.resources.memory_limit = "128Mi"
policy.resources.cpu_limit = "250m"
policy.local_sandbox.tmp_size_bytes = 16 * Mi
policy.local_sandbox.file_size_bytes = 8 * Mi
policy.local_sandbox.open_files = 64

-- Requests may ask for less than these, never more.
local ceilings = { memory_bytes = 128 * Mi, cpu_time_secs = 5, max_output_bytes = 64 * 1024,
                   max_processes = 16 }

local limits_for = policy.limits_for
function policy:limits_for(req)
  local limits = limits_for(self, req)
  for name, ceiling in pairs(ceilings) do
    limits[name] = math.min(limits[name], ceiling)
  end
  limits.network = false
  return limits
end

local pod_for = policy.pod_for
function policy:pod_for(req, resources)
  return merge(pod_for(self, req, resources), {
    spec = {
      containers = { {
        resources = resources,
        securityContext = {
          readOnlyRootFilesystem = true,
          allowPrivilegeEscalation = false,
          capabilities = { drop = { "ALL" } },
          runAsNonRoot = true, runAsUser = self.k8s.run_as_user,
        },
        volumeMounts = { { name = "tmp", mountPath = "/tmp" } },
      } },
      volumes = { { name = "tmp", emptyDir = { medium = "Memory", sizeLimit = "16Mi" } } },
    },
  })
end

local timeout_ceiling = 10000
local plan = policy.plan
function policy:plan(req)
  local p, err = plan(self, req)
  if p then p.timeout_ms = math.min(p.timeout_ms, timeout_ceiling) end
  return p, err
end

return policy
