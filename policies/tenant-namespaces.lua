-- Example: one Kubernetes namespace per tenant. A request's labels.tenant
-- picks the namespace "sandbox-<tenant>"; a request without a tenant goes to
-- the default namespace, and one whose tenant is not a valid name is refused.
local policy = require "echo_sandbox.policy.default"

local default_namespace = policy.k8s.namespace

function policy:namespace_for(req)
  local tenant = req.labels and req.labels.tenant
  if tenant == nil then return default_namespace end
  return "sandbox-" .. tenant
end

local plan = policy.plan
function policy:plan(req)
  local tenant = req.labels and req.labels.tenant
  if tenant ~= nil and not (tenant:find("^[a-z0-9][-a-z0-9]*$") and #tenant <= 55) then
    return nil, ("labels.tenant %q is not a valid tenant name (lower-case letters, digits, '-')"):format(tenant)
  end
  return plan(self, req)
end

return policy
