-- Engine-owned, not policy: the engine loads this before any policy and
-- keeps the function it returns. It turns an entry of the policy's
-- k8s.warm_pools (its names are src/policy/warm_pool_fields.def's, checked
-- by the engine before it comes here) into the k8s table of a plan, which
-- the engine's k8s_pod.lua then finishes as it finishes every plan's: a
-- warm pod is rendered, and its shape taken, exactly as a run's pod is.
local type, pairs = type, pairs

local function copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = copy(x) end
  return t
end

-- t[key], a table made where there is none; another value stays where it
-- is, for k8s_pod.lua to refuse by its name (what is set here goes nowhere).
local function at(t, key)
  if t[key] == nil then t[key] = {} end
  return type(t[key]) == "table" and t[key] or {}
end

-- entry: the pool's entry; namespace: the cluster's (the policy's hook
-- `cluster`), for an entry that names none. The entry is left as it was:
-- each pod of the pool is rendered from it anew.
return function(entry, namespace)
  local pod = copy(entry.pod) or {}
  local spec = at(pod, "spec")
  if entry.resources ~= nil then at(at(spec, "containers"), 1).resources = copy(entry.resources) end
  if entry.runtime_class ~= nil then spec.runtimeClassName = entry.runtime_class end
  return { image = entry.image, namespace = entry.namespace or namespace, handshake = true, pod = pod }
end
