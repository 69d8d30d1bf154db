package.path = "lua/?.lua;" .. package.path
local quantity = require "echo_sandbox.quantity"
local merge = require "echo_sandbox.merge"

-- The cases the C parser (src/engine/contract/quantity.c) is tested against too.
local function shared_cases()
  local cases = {}
  for line in io.lines("spec/support/quantities.txt") do
    local text, value = line:match("^([^#%s]%S*)%s+(%S+)$")
    if text then cases[#cases + 1] = { text = text, value = value ~= "invalid" and tonumber(value) or nil } end
  end
  return cases
end

describe("echo_sandbox.quantity", function()
  it("keeps to the grammar the C parser keeps to (spec/support/quantities.txt)", function()
    local cases = shared_cases()
    assert.is_true(#cases > 30)
    for _, case in ipairs(cases) do
      assert.are.equal(case.value, (quantity.parse(case.text)), case.text)
    end
  end)

  it("parses every suffix", function()
    local cases = {
      ["0"] = 0, ["2"] = 2, ["1.5"] = 1.5, ["500m"] = 0.5, ["100m"] = 0.1, ["1k"] = 1000,
      ["64Mi"] = 64 * 1024 * 1024, ["1Gi"] = 2^30, ["1.5Gi"] = 1.5 * 2^30, ["2Ki"] = 2048,
      ["3M"] = 3000000, ["1G"] = 1e9, ["1T"] = 1e12, ["1e3"] = 1000, ["5E-1"] = 0.5, ["1Ti"] = 2^40,
    }
    for text, value in pairs(cases) do
      assert.are.equal(value, quantity.parse(text), text)
    end
    assert.are.equal("integer", math.type(quantity.parse("64Mi")))
  end)

  it("rejects what is not a quantity, naming it", function()
    for _, bad in ipairs { "", "abc", "1.5x", "-1", "1 Gi", "Mi", "1..5", "1e", "1mi", "0x10" } do
      local v, err = quantity.parse(bad)
      assert.is_nil(v, bad)
      assert.truthy(err:find(("%q"):format(bad), 1, true), err)
    end
    assert.is_nil((quantity.parse({})))
    assert.has_error(function() quantity.check("12 apples") end)
  end)

  it("round-trips memory and CPU through format and parse", function()
    for _, q in ipairs { "64Mi", "256Mi", "1Gi", "3Ki", "1000", "7Ti", "1" } do
      assert.are.equal(q, quantity.format_memory(quantity.parse(q)))
    end
    for _, q in ipairs { "100m", "500m", "1", "2", "1500m", "250m" } do
      assert.are.equal(q, quantity.format_cpu(quantity.parse(q)))
    end
    assert.are.equal("1536Mi", quantity.format_memory(quantity.parse("1.5Gi")))
  end)
end)

describe("echo_sandbox.merge", function()
  it("merges tables deeply without touching its arguments", function()
    local base = { spec = { a = 1, nested = { x = 1, y = 2 } }, keep = true }
    local out = merge(base, { spec = { nested = { y = 3, z = 4 }, b = 2 } })
    assert.are.same({ spec = { a = 1, b = 2, nested = { x = 1, y = 3, z = 4 } }, keep = true }, out)
    assert.are.same({ spec = { a = 1, nested = { x = 1, y = 2 } }, keep = true }, base)
  end)

  it("replaces arrays instead of splicing them, and deletes with DELETE", function()
    local out = merge({ list = { "a", "b", "c" }, gone = 1 }, { list = { "z" }, gone = merge.DELETE })
    assert.are.same({ list = { "z" } }, out)
  end)
end)
