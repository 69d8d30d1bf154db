-- The fault table of the docs (what each Kubernetes fault ends as) is
-- spec/support/k8s_faults.lua's rows, and every row is a case of the k8s
-- specs, which check their results against it (k8s_faults.expect).
local env = require "spec.support.env"
local faults = require "spec.support.k8s_faults"

-- The k8s spec files but this one, and their text.
local function k8s_specs()
  local files = {}
  local p = io.popen("ls spec/k8s*_spec.lua")
  for path in p:lines() do
    if path ~= "spec/k8s_faults_spec.lua" then files[path] = env.read_file(path) end
  end
  p:close()
  return files
end

describe("the docs' k8s fault table", function()
  -- Checked: with a row's reason changed in the table (then README, now doc/kubernetes.md), this fails.
  it("is spec/support/k8s_faults.lua's rows, in one of the files that may hold it", function()
    local found = {}
    for _, path in ipairs(faults.homes) do
      local ok, text = pcall(env.read_file, path)
      local block = ok and text and text:match(faults.pattern)
      if block then found[#found + 1] = { path, block } end
    end
    assert.are.equal(1, #found, "the k8s-faults markers in " .. table.concat(faults.homes, " or ") .. ": " ..
                     #found .. " tables")
    assert.are.equal(faults.markdown(), found[1][2], found[1][1])
  end)

  it("has one row for each id", function()
    local seen = {}
    for _, row in ipairs(faults.rows) do
      assert.is_nil(seen[row[1]], row[1])
      seen[row[1]] = true
    end
  end)

  -- Checked: with the unreachable cases' `fault` taken out of
  -- spec/k8s_spec.lua, this names "unreachable" (and a case whose result
  -- is not its row's fails at its expect).
  it("has a k8s spec case for each row, and a row for each case", function()
    local expected = {}
    for path, text in pairs(k8s_specs()) do
      for id in pairs(faults.expected_ids(text)) do expected[id] = path end
    end
    local missing, unknown = {}, {}
    for _, row in ipairs(faults.rows) do
      if not expected[row[1]] then missing[#missing + 1] = row[1] end
    end
    for id, path in pairs(expected) do
      if not faults.by_id[id] then unknown[#unknown + 1] = id .. " (" .. path .. ")" end
    end
    table.sort(unknown)
    assert.are.same({}, missing, "rows without a case")
    assert.are.same({}, unknown, "cases without a row")
  end)

  -- The finder itself: the two forms it reads.
  it("finds the ids of literal expects and of loops over cases", function()
    assert.are.same({ a = true }, faults.expected_ids('expect(r, "a")\nlocal x = { fault = "b" }'))
    assert.are.same({ a = true, b = true },
                    faults.expected_ids('faults.expect(r, "a")\n{ fault = "b" }\nexpect(r, case.fault)'))
  end)
end)
