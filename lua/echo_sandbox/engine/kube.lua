-- What the engine reads out of the Kubernetes API's JSON documents (as
-- cjson decoded them): nil-safe walking is what Lua is good at. Run in the
-- front end's small states (src/luaglue), never in the policy VM; the C side
-- copies the fields out.
local tointeger = math.tointeger

local M = {}

local function table_or_empty(v)
  return type(v) == "table" and v or {}
end

local function string_or_nil(v)
  return type(v) == "string" and v or nil
end

-- doc: a Pod, or a watch event { type, object = Pod }. Returns nil when it is
-- neither, else a table: phase, terminated, exit_code, reason (the
-- container's), pod_reason, message, event (the watch event's type or ""),
-- waiting_reason, unschedulable, image (the first container's), name,
-- instance (its echo-sandbox.io/instance label), deleting (a
-- deletionTimestamp is set), restart_count (the first
-- container's), not_ready (the reason of a Ready condition that is False,
-- "" when it has none; nil when Ready is not False).
function M.pod_status(doc)
  local pod, event = doc, ""
  if type(doc) == "table" and type(doc.type) == "string" and type(doc.object) == "table" then
    event, pod = doc.type, doc.object
  end
  if type(pod) ~= "table" or pod.kind ~= "Pod" then return nil end
  local status = table_or_empty(pod.status)
  local cs = table_or_empty(table_or_empty(status.containerStatuses)[1])
  local state = table_or_empty(cs.state)
  local terminated = type(state.terminated) == "table" and state.terminated or nil
  local waiting = type(state.waiting) == "table" and state.waiting or nil
  local message = string_or_nil(status.message)
  if not message and waiting and waiting.reason and waiting.reason ~= "ContainerCreating"
     and waiting.reason ~= "PodInitializing" then
    message = tostring(waiting.reason) .. (waiting.message and (": " .. tostring(waiting.message)) or "")
  end
  local unschedulable, not_ready = false, nil
  for _, c in ipairs(table_or_empty(status.conditions)) do
    if type(c) == "table" and c.status == "False" then
      unschedulable = unschedulable or (c.type == "PodScheduled" and c.reason == "Unschedulable")
      if c.type == "Ready" then not_ready = string_or_nil(c.reason) or "" end
      if not message then message = string_or_nil(c.message) end
    end
  end
  local first = table_or_empty(table_or_empty(table_or_empty(pod.spec).containers)[1])
  return {
    phase = string_or_nil(status.phase) or "",
    terminated = terminated ~= nil,
    exit_code = terminated and tointeger(terminated.exitCode) or nil,
    reason = terminated and string_or_nil(terminated.reason) or nil,
    pod_reason = string_or_nil(status.reason),
    message = message,
    event = event,
    waiting_reason = waiting and string_or_nil(waiting.reason) or nil,
    unschedulable = unschedulable,
    image = string_or_nil(first.image),
    name = string_or_nil(table_or_empty(pod.metadata).name),
    deleting = table_or_empty(pod.metadata).deletionTimestamp ~= nil,
    instance = string_or_nil(table_or_empty(table_or_empty(pod.metadata).labels)["echo-sandbox.io/instance"]),
    restart_count = tointeger(cs.restartCount) or 0,
    not_ready = not_ready,
  }
end

-- list: a PodList. Returns an array of { name, expires_at, ended, warm_pool }
-- (expires_at "" where the pod has no echo-sandbox.io/expires-at annotation;
-- ended: the pod is a session's whose first process has ended, phase
-- Succeeded or Failed, which nothing can use again; warm_pool: a ready warm
-- pod's pool, its echo-sandbox.io/warm-pool label, else "": a claimed one is
-- its run's).
function M.pods(list)
  local out = {}
  for _, pod in ipairs(table_or_empty(table_or_empty(list).items)) do
    local metadata = table_or_empty(table_or_empty(pod).metadata)
    local annotations = table_or_empty(metadata.annotations)
    local name = string_or_nil(metadata.name)
    local phase = table_or_empty(table_or_empty(pod).status).phase
    local labels = table_or_empty(metadata.labels)
    local session = labels["echo-sandbox.io/session"] == "true"
    local ready = labels["echo-sandbox.io/warm-state"] == "ready"
    if name then
      out[#out + 1] = { name, string_or_nil(annotations["echo-sandbox.io/expires-at"]) or "",
                        session and (phase == "Succeeded" or phase == "Failed"),
                        ready and string_or_nil(labels["echo-sandbox.io/warm-pool"]) or "" }
    end
  end
  return out
end

-- doc: a PodList or one Pod; encode: cjson's. The pods of k8s sessions
-- (label echo-sandbox.io/session=true) as an array of { name, expires (the
-- echo-sandbox.io/session-expires label: seconds since the epoch, 0 where
-- it has none), idle_timeout_ms (its annotation, 0 where none), pod (the pod
-- as JSON, for pod_status) }.
function M.session_pods(doc, encode)
  local items = type(doc) == "table" and doc.kind == "Pod" and { doc } or table_or_empty(table_or_empty(doc).items)
  local out = {}
  for _, pod in ipairs(items) do
    local metadata = table_or_empty(table_or_empty(pod).metadata)
    local labels = table_or_empty(metadata.labels)
    local name = string_or_nil(metadata.name)
    if name and labels["echo-sandbox.io/session"] == "true" then
      out[#out + 1] = {
        name = name,
        expires = tointeger(tonumber(labels["echo-sandbox.io/session-expires"])) or 0,
        idle_timeout_ms = tointeger(tonumber(table_or_empty(metadata.annotations)["echo-sandbox.io/idle-timeout-ms"])) or 0,
        pod = encode(pod),
      }
    end
  end
  return out
end

-- list: a NetworkPolicyList. Whether some policy's podSelector picks the
-- pods of runs without network (label echo-sandbox.io/network=none).
function M.has_network_policy(list)
  for _, np in ipairs(table_or_empty(table_or_empty(list).items)) do
    local selector = table_or_empty(table_or_empty(table_or_empty(np).spec).podSelector)
    if table_or_empty(selector.matchLabels)["echo-sandbox.io/network"] == "none" then return true end
  end
  return false
end

-- list: a PodList of warm pods. Their lines as the warm list's jsonpath
-- prints them (src/backend/k8s_warm.c), for a list the engine asked the API
-- server for itself (src/backend/kube_api.h): name, resourceVersion, phase,
-- reason, the Ready condition's status, deletionTimestamp, the labels
-- warm-state, warm-pool, warm-hash and warm-expires, creationTimestamp;
-- apart by tabs, a tab or newline in a value made a space.
function M.warm_pod_lines(list)
  local out = {}
  local function field(v) return ((type(v) == "string" and v or ""):gsub("[\t\n]", " ")) end
  for _, pod in ipairs(table_or_empty(table_or_empty(list).items)) do
    local metadata = table_or_empty(table_or_empty(pod).metadata)
    local status = table_or_empty(table_or_empty(pod).status)
    local labels = table_or_empty(metadata.labels)
    local ready = ""
    for _, c in ipairs(table_or_empty(status.conditions)) do
      if table_or_empty(c).type == "Ready" then ready = c.status end
    end
    out[#out + 1] = table.concat({ field(metadata.name), field(metadata.resourceVersion), field(status.phase),
      field(status.reason), field(ready), field(metadata.deletionTimestamp),
      field(labels["echo-sandbox.io/warm-state"]), field(labels["echo-sandbox.io/warm-pool"]),
      field(labels["echo-sandbox.io/warm-hash"]), field(labels["echo-sandbox.io/warm-expires"]),
      field(metadata.creationTimestamp) }, "\t") .. "\n"
  end
  return table.concat(out)
end

return M
