-- Deep merge for policy tables such as pod overrides.
--
--   local merge = require "echo_sandbox.merge"
--   local pod = merge(base.pod, { spec = { nodeSelector = { gpu = "true" } } })
--
-- Returns a new table: tables are merged key by key, recursively; arrays
-- (tables whose keys are exactly 1..n, e.g. tolerations, args) and every
-- other value from `override` replace what `base` has, as a list in a
-- Kubernetes object is replaced by a JSON merge, not spliced. merge.DELETE as
-- a value removes the key. Neither argument is modified.
--
-- Debian's lua-cjson 2.1.0 has no cjson.empty_array: an empty table encodes
-- as {} (an object). Leave a list out rather than send it empty.
local M = {}

M.DELETE = setmetatable({}, { __tostring = function() return "merge.DELETE" end })

local function is_array(t)
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return setmetatable(out, getmetatable(v))
end

local function merge(base, override)
  if type(base) ~= "table" or type(override) ~= "table" or is_array(override) or is_array(base) then
    return copy(override)
  end
  local out = copy(base)
  for k, v in pairs(override) do
    if v == M.DELETE then
      out[k] = nil
    elseif type(v) == "table" and type(out[k]) == "table" then
      out[k] = merge(out[k], v)
    else
      out[k] = copy(v)
    end
  end
  return out
end

M.merge = merge
M.copy = copy
return setmetatable(M, { __call = function(_, base, override) return merge(base, override) end })
