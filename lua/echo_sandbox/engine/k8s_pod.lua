-- Engine-owned, not policy: the engine loads this before any policy and
-- keeps the function it returns, so a policy cannot change it. It checks the
-- k8s part of a plan and builds the pod override JSON, with the engine's
-- invariants laid over whatever the policy put there (doc/policies.md).
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

-- Label keys and values as the API server checks them (a bad one would
-- only fail the create, after everything else was done).
local function label_word(w) -- a name part or a value: letters, digits, -_. inside
  return #w <= 63 and (find(w, "^%w$") or find(w, "^%w[-_.%w]*%w$")) ~= nil
end

local function dns_subdomain(s)
  if #s == 0 or #s > 253 then return false end
  for part in (s .. "."):gmatch("([^.]*)%.") do
    if not (find(part, "^[a-z0-9]$") or find(part, "^[a-z0-9][-a-z0-9]*[a-z0-9]$")) then return false end
  end
  return true
end

-- Returns why a label is one the API server refuses, or nil: a request's
-- fault as much as the policy's (labels often come from the request), so
-- the engine refuses it as invalid_request.
local function label_problem(labels)
  for k, v in pairs(labels) do
    if type(k) ~= "string" then return "pod label keys must be strings" end
    local prefix, name = k:match("^(.*)/(.*)$")
    if not prefix then name = k end
    if prefix and not dns_subdomain(prefix) then
      return format("pod label %q: its prefix is no DNS-1123 subdomain", k)
    end
    if not label_word(name) then
      return format("pod label %q: a key's name is at most 63 letters, digits, '-', '_' or '.', "
                    .. "starting and ending with a letter or digit", k)
    end
    if type(v) ~= "string" or (v ~= "" and not label_word(v)) then
      return format("pod label %s=%s: a value is at most 63 letters, digits, '-', '_' or '.', "
                    .. "starting and ending with a letter or digit", k, type(v) == "string" and format("%q", v) or type(v))
    end
  end
end

-- Environment variable names of a container, as the API server checks them.
local function check_env(c, path)
  if c.env == nil then return end
  if type(c.env) ~= "table" then bad(path .. ".env", "an array", c.env) end
  for i, e in ipairs(c.env) do
    if type(e) ~= "table" or type(e.name) ~= "string" or not find(e.name, "^[-._%a][-._%w]*$") then
      bad(("%s.env[%d].name"):format(path, i), "a name of letters, digits, '_', '-' or '.', not starting with a digit",
          type(e) == "table" and e.name or e)
    end
  end
end

-- Every container the policy adds (sidecars, init containers) gets what of
-- the program's container's securityContext it does not set itself.
local function apply_security_to_all(spec, main)
  local sc = main.securityContext
  if type(sc) ~= "table" then return end
  for _, list in ipairs { "containers", "initContainers" } do
    local cs = spec[list]
    if type(cs) == "table" then
      for _, c in ipairs(cs) do
        if type(c) == "table" and c ~= main then
          local own = table_at(c, "securityContext", "pod.spec." .. list .. "[].securityContext")
          for k, v in pairs(sc) do
            if own[k] == nil then own[k] = v end
          end
        end
      end
    end
  end
end

-- A Go duration ("2m", "1m30s", "500ms") in milliseconds, or nil.
local duration_units = { h = 3600000, m = 60000, s = 1000, ms = 1, us = 0.001, ["µs"] = 0.001, ns = 0.000001 }
local function duration_ms(text)
  if type(text) ~= "string" or text == "" then return nil end
  local total, rest = 0, text
  while rest ~= "" do
    local number, unit, tail = rest:match("^(%d+%.?%d*)(%a+)(.*)$")
    if not number or not duration_units[unit] then return nil end
    total = total + tonumber(number) * duration_units[unit]
    rest = tail
  end
  return total
end

-- JSON with every object's keys in order: the same pod is the same text,
-- whatever order its tables were filled in (a shape is compared as text).
local sort, concat = table.sort, table.concat
local function canonical(v)
  if type(v) ~= "table" then return encode(v) end
  local n = #v
  local keys, count = {}, 0
  for k in pairs(v) do
    count = count + 1
    keys[count] = k
  end
  if count == 0 then return "{}" end
  local parts = {}
  if count == n then
    for i = 1, n do parts[i] = canonical(v[i]) end
    return "[" .. concat(parts, ",") .. "]"
  end
  local names = {}
  for i, k in ipairs(keys) do
    names[i] = tostring(k)
    parts[names[i]] = k
  end
  sort(names)
  for i, name in ipairs(names) do names[i] = encode(name) .. ":" .. canonical(v[parts[name]]) end
  parts = names
  return "{" .. concat(parts, ",") .. "}"
end

-- The pod's shape: everything of it that a warm pod made ahead of the run
-- has as well (doc/warm-pods.md), as canonical JSON. Left out: what is the
-- run's own and reaches a warm pod through the run's exec instead (its
-- name, its engine's instance, the expiry, the deadline, which the run's
-- exec keeps, the kubelet's grace, the open-files annotation, which the
-- wrapper sets), and nothing else: a request matches a pool only where its
-- pod would be the pool's.
local function shape(image, namespace, handshake, pod, metadata, spec, container)
  local saved = {
    instance = metadata.labels["echo-sandbox.io/instance"],
    expires = metadata.annotations["echo-sandbox.io/expires-at"],
    nofile = metadata.annotations["echo-sandbox.io/max-open-files"],
    name = container.name, deadline = spec.activeDeadlineSeconds, grace = spec.terminationGracePeriodSeconds,
  }
  metadata.labels["echo-sandbox.io/instance"] = nil
  metadata.annotations["echo-sandbox.io/expires-at"] = nil
  metadata.annotations["echo-sandbox.io/max-open-files"] = nil
  container.name, spec.activeDeadlineSeconds, spec.terminationGracePeriodSeconds = nil, nil, nil
  local text = canonical { image = image, namespace = namespace, handshake = handshake, pod = pod }
  metadata.labels["echo-sandbox.io/instance"] = saved.instance
  metadata.annotations["echo-sandbox.io/expires-at"] = saved.expires
  metadata.annotations["echo-sandbox.io/max-open-files"] = saved.nofile
  container.name, spec.activeDeadlineSeconds, spec.terminationGracePeriodSeconds =
    saved.name, saved.deadline, saved.grace
  return text
end

-- k8s: the plan's k8s table. ctx: pod_name, instance, expires_at (RFC 3339),
-- deadline_seconds, grace_seconds (the plan's kill_grace_ms, rounded up to a
-- second), network (boolean), egress (boolean: the network by name, through the
-- shared egress proxy), max_open_files (0: none). Returns the settings the engine runs
-- the pod with (src/policy/policy.c reads them): image, namespace, handshake,
-- pod_running_timeout (the policy's, lowered to the deadline), context,
-- kubeconfig, delete_timeout_ms, unschedulable_grace_ms, not_ready_grace_ms, overrides_json and
-- shape (the pod's shape, which warm pools are matched by);
-- or nil and why a label is one the API server would refuse.
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
  local running_timeout = k8s.pod_running_timeout or "2m"
  local running_ms = duration_ms(running_timeout)
  if not running_ms or running_ms <= 0 then
    bad("pod_running_timeout", "a duration like \"2m\", \"90s\" or \"1m30s\"", running_timeout)
  end
  -- waiting longer for the pod than the run may take is pointless
  if running_ms > ctx.deadline_seconds * 1000 then running_timeout = ctx.deadline_seconds .. "s" end
  for _, key in ipairs { "delete_timeout_ms", "unschedulable_grace_ms", "not_ready_grace_ms" } do
    local v = k8s[key]
    if v ~= nil and (not tointeger(v) or v < 1) then bad(key, "a positive integer", v) end
  end
  local delete_timeout_ms = k8s.delete_timeout_ms or 10000
  local unschedulable_grace_ms = k8s.unschedulable_grace_ms or 15000
  local not_ready_grace_ms = k8s.not_ready_grace_ms or 15000

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

  local label_error = label_problem(labels)
  for i, c in ipairs(containers) do check_env(c, ("pod.spec.containers[%d]"):format(i)) end
  apply_security_to_all(spec, container)

  -- The engine's invariants.
  metadata.name = nil
  metadata.namespace = nil
  labels["app.kubernetes.io/managed-by"] = "echo-sandbox"
  labels["echo-sandbox.io/instance"] = ctx.instance
  -- egress: the NetworkPolicy of deploy/egress.yaml lets these pods reach
  -- the egress proxy and nothing else (no DNS either).
  labels["echo-sandbox.io/network"] = ctx.egress and "egress" or (not ctx.network) and "none" or nil
  annotations["echo-sandbox.io/expires-at"] = ctx.expires_at
  -- Kubernetes has no field for RLIMIT_NOFILE (a container gets its
  -- runtime's): the pod's wrapper shell sets it (backend/k8s_command.h);
  -- the annotation records it on the pod, also where no wrapper runs
  -- (k8s.handshake = false), for what on the node reads it.
  annotations["echo-sandbox.io/max-open-files"] = (ctx.max_open_files or 0) > 0 and
    ("%d"):format(ctx.max_open_files) or nil
  container.name = ctx.pod_name
  local deadline = spec.activeDeadlineSeconds
  if deadline ~= nil and (not tointeger(deadline) or deadline < 1) then
    bad("pod.spec.activeDeadlineSeconds", "a positive integer", deadline)
  end
  if deadline == nil or deadline > ctx.deadline_seconds then
    spec.activeDeadlineSeconds = ctx.deadline_seconds
  end
  -- The kubelet's grace between SIGTERM and SIGKILL is the policy's
  -- kill_grace_ms, as the local backend's is: left at its default (30 s) a
  -- program that ignores SIGTERM would outlive its result by that long.
  spec.terminationGracePeriodSeconds = ctx.grace_seconds
  -- A container the kubelet restarts runs the program again, with a stdin
  -- already spent and its output split over two lives: never.
  spec.restartPolicy = "Never"

  local ok, json = pcall(encode, pod)
  if not ok then
    error("policy hook 'plan' returned a pod override that is not JSON: " .. tostring(json), 0)
  end
  local pod_shape = shape(image, namespace, handshake, pod, metadata, spec, container)
  if label_error then return nil, label_error end
  return {
    image = image, namespace = namespace, handshake = handshake, pod_running_timeout = running_timeout,
    context = k8s.context, kubeconfig = k8s.kubeconfig, delete_timeout_ms = tointeger(delete_timeout_ms),
    unschedulable_grace_ms = tointeger(unschedulable_grace_ms), not_ready_grace_ms = tointeger(not_ready_grace_ms),
    overrides_json = json, shape = pod_shape,
  }
end
