-- Kubernetes resource quantities: "500m", "2", "1.5", "64Mi", "1G", "1e3".
--
--   local quantity = require "echo_sandbox.quantity"
--   quantity.parse("64Mi")            --> 67108864
--   quantity.parse("250m")            --> 0.25
--   quantity.parse("1.5x")            --> nil, "invalid quantity \"1.5x\": ..."
--   quantity.format_memory(268435456) --> "256Mi"
--   quantity.format_cpu(0.5)          --> "500m"
--
-- parse accepts a non-negative decimal number with one suffix: a binary SI
-- suffix (Ki Mi Gi Ti Pi Ei), a decimal SI suffix (m k M G T P E) or a decimal
-- exponent (e3, E-2). Results are Lua numbers: integers where the value is a
-- whole number, floats otherwise.
local M = {}

local binary = { Ki = 2^10, Mi = 2^20, Gi = 2^30, Ti = 2^40, Pi = 2^50, Ei = 2^60 }
local decimal = { m = 1e-3, [""] = 1, k = 1e3, M = 1e6, G = 1e9, T = 1e12, P = 1e15, E = 1e18 }

local function as_number(v)
  return math.tointeger(v) or v
end

function M.parse(q)
  if math.type(q) == "integer" or (math.type(q) == "float" and q == q and q >= 0 and q ~= math.huge) then
    if q < 0 then return nil, ("invalid quantity %s: negative"):format(q) end
    return q
  end
  if type(q) ~= "string" then
    return nil, ("invalid quantity: expected a string or a number, got %s"):format(type(q))
  end
  local number, suffix = q:match("^(%d*%.?%d+)(.*)$")
  if not number or number:find("^%.") and #number == 1 then
    return nil, ("invalid quantity %q: expected a number with an optional suffix"):format(q)
  end
  local n = tonumber(number)
  local factor = binary[suffix] or decimal[suffix]
  if not factor then
    local exponent = suffix:match("^[eE]([+-]?%d+)$")
    if not exponent then
      return nil, ("invalid quantity %q: unknown suffix %q (use m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or eN)")
        :format(q, suffix)
    end
    factor = 10.0 ^ tonumber(exponent)
  end
  local v = n * factor
  if v ~= v or v == math.huge then
    return nil, ("invalid quantity %q: out of range"):format(q)
  end
  if v == math.floor(v) and v < 2^63 then return as_number(math.floor(v)) end
  return v
end

-- The quantity or an error raised at the caller's caller: for policy code
-- whose quantities are constants.
function M.check(q)
  local v, err = M.parse(q)
  if not v then error(err, 2) end
  return v
end

-- Bytes as the largest binary suffix that divides them, else plain bytes.
function M.format_memory(bytes)
  bytes = math.tointeger(bytes)
  assert(bytes and bytes >= 0, "format_memory: expected a non-negative whole number of bytes")
  for _, s in ipairs { "Ei", "Pi", "Ti", "Gi", "Mi", "Ki" } do
    local f = math.tointeger(binary[s])
    if bytes ~= 0 and bytes % f == 0 then return ("%d%s"):format(bytes // f, s) end
  end
  return ("%d"):format(bytes)
end

-- Cores as whole cores when whole, else millicores (rounded up: a limit never
-- shrinks by formatting).
function M.format_cpu(cores)
  assert(type(cores) == "number" and cores >= 0, "format_cpu: expected a non-negative number of cores")
  if cores == math.floor(cores) then return ("%d"):format(math.tointeger(cores) or math.floor(cores)) end
  return ("%dm"):format(math.ceil(cores * 1000 - 1e-9))
end

return M
