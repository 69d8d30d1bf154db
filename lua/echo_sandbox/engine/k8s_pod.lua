-- Engine-owned, not policy: the engine loads this before any policy and
-- keeps the function it returns, so a policy cannot change it. It checks the
-- k8s part of a plan and builds the pod override JSON, with the engine's
-- invariants laid over whatever the policy put there (README "Policies").
local type, pairs, ipairs, tostring, error, pcall = type, pairs, ipairs, tostring, error, pcall
local find, format, tointeger = string.find, string.format, math.tointeger
local encode = require("cjson").encode
local parse_quantity = require("echo_sandbox.quantity").parse

local function bad(field, expected, got)
  error(format("policy hook 'plan' returned a bad field 'k8s.%s': expected %s, got %s",
               field, expected, type(got) == "string" and format("%q", got) or type(got)), 0)
end

local function table_at(t, key, path)
  local v = t[key]
  if v == nil then
    v = {}
    t[key] = v
  elseif type(v) ~= "table" then
    bad(path, "a table", v)
  end
  return v
end

local function check_resources(resources)
  for _, kind in ipairs { "requests", "limits" } do
    local r = resources[kind]
    if r ~= nil then
      if type(r) ~= "table" then bad("pod.spec.containers[1].resources." .. kind, "a table", r) end
      for name, q in pairs(r) do
        local field = format("pod.spec.containers[1].resources.%s.%s", kind, tostring(name))
        if type(q) ~= "string" and type(q) ~= "number" or not parse_quantity(q) then
          bad(field, "a Kubernetes quantity (e.g. 500m, 256Mi)", q)
        end
      end
    end
  end
end

-- k8s: the plan's k8s table. ctx: pod_name, instance, expires_at (RFC 3339),
-- deadline_seconds, network (boolean). Returns image, namespace, handshake,
-- pod_running_timeout, context, kubeconfig, delete_timeout_ms, override JSON.
return function(k8s, ctx)
  if type(k8s) ~= "table" then bad("", "a table", k8s) end
  local image, namespace = k8s.image, k8s.namespace
  if type(image) ~= "string" or image == "" or find(image, "%s") then
    bad("image", "an image reference (a string without spaces)", image)
  end
  if type(namespace) ~= "string" or #namespace > 63 or not find(namespace, "^[a-z0-9]$")
     and not find(namespace, "^[a-z0-9][-a-z0-9]*[a-z0-9]$") then
    bad("namespace", "a DNS-1123 label (lower-case letters, digits and '-', at most 63)", namespace)
  end
  local handshake = k8s.handshake
  if handshake == nil then handshake = true end
  if type(handshake) ~= "boolean" then bad("handshake", "a boolean", handshake) end
  for _, key in ipairs { "pod_running_timeout", "context", "kubeconfig" } do
    local v = k8s[key]
    if v ~= nil and (type(v) ~= "string" or v == "") then bad(key, "a non-empty string", v) end
  end
  local delete_timeout_ms = k8s.delete_timeout_ms or 10000
  if not tointeger(delete_timeout_ms) or delete_timeout_ms < 1 then
    bad("delete_timeout_ms", "a positive integer", delete_timeout_ms)
  end

  local pod = k8s.pod
  if pod == nil then pod = {} elseif type(pod) ~= "table" then bad("pod", "a table", pod) end
  local metadata = table_at(pod, "metadata", "pod.metadata")
  local labels = table_at(metadata, "labels", "pod.metadata.labels")
  local annotations = table_at(metadata, "annotations", "pod.metadata.annotations")
  local spec = table_at(pod, "spec", "pod.spec")
  local containers = table_at(spec, "containers", "pod.spec.containers")
  local container = containers[1]
  if container == nil then
    container = {}
    containers[1] = container
  elseif type(container) ~= "table" then
    bad("pod.spec.containers[1]", "a table", container)
  end
  if container.resources ~= nil then
    if type(container.resources) ~= "table" then
      bad("pod.spec.containers[1].resources", "a table", container.resources)
    end
    check_resources(container.resources)
  end

  -- The engine's invariants.
  metadata.name = nil
  metadata.namespace = nil
  labels["app.kubernetes.io/managed-by"] = "echo-sandbox"
  labels["echo-sandbox.io/instance"] = ctx.instance
  labels["echo-sandbox.io/network"] = (not ctx.network) and "none" or nil
  annotations["echo-sandbox.io/expires-at"] = ctx.expires_at
  container.name = ctx.pod_name
  local deadline = spec.activeDeadlineSeconds
  if deadline ~= nil and (not tointeger(deadline) or deadline < 1) then
    bad("pod.spec.activeDeadlineSeconds", "a positive integer", deadline)
  end
  if deadline == nil or deadline > ctx.deadline_seconds then
    spec.activeDeadlineSeconds = ctx.deadline_seconds
  end

  local ok, json = pcall(encode, pod)
  if not ok then
    error("policy hook 'plan' returned a pod override that is not JSON: " .. tostring(json), 0)
  end
  return image, namespace, handshake, k8s.pod_running_timeout or "2m", k8s.context, k8s.kubeconfig,
         tointeger(delete_timeout_ms), json
end
