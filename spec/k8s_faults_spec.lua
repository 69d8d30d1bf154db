-- The table of what each Kubernetes fault ends as (doc/kubernetes.md, where
-- the README's reference moved) is the fault table that
-- spec/k8s_life_spec.lua checks its cases against.
local env = require "spec.support.env"
local faults = require "spec.support.k8s_faults"

describe("the docs' k8s fault table", function()
  -- Checked: with a row's reason changed in doc/kubernetes.md, this fails.
  it("is spec/support/k8s_faults.lua's rows", function()
    local page = env.read_file("doc/kubernetes.md")
    local block = page:match("<!%-%- k8s%-faults %-%->\n(.-)<!%-%- /k8s%-faults %-%->")
    assert.truthy(block, "doc/kubernetes.md has no k8s-faults block")
    assert.are.equal(faults.markdown(), block)
  end)

  it("has one row for each id", function()
    local seen = {}
    for _, row in ipairs(faults.rows) do
      assert.is_nil(seen[row[1]], row[1])
      seen[row[1]] = true
    end
  end)
end)
