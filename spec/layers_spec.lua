-- The layers of src/ (src/layers.lua) as the includes draw them: no folder
-- includes one above it or beside it, the folders' graph has no cycle, and
-- the README's architecture picture is the one scripts/layers prints.
local env = require "spec.support.env"

local sh, quote = env.sh, env.quote

describe("the layers of src/", function()
  env.check_leaks()

  -- Checked: with #include "dispatch/job.h" put at the top of
  -- src/backend/local.c, this fails naming that line, the UPWARD edge
  -- backend -> dispatch and the cycle dispatch -> codec -> backend -> dispatch.
  it("hold: no include goes up or sideways, and the folders' graph has no cycle", function()
    local ok, out = sh("scripts/layers")
    assert.is_true(ok, out)
    assert.matches("no upward or sideways include, no cycle", out, 1, true)
    -- every layer of the table is in the graph, so none was skipped
    for _, layer in ipairs(dofile("src/layers.lua")) do
      for _, folder in ipairs(layer.folders) do
        assert.matches("\n  %d+  [^\n]*" .. folder, out)
      end
    end
  end)

  -- The check itself, on a copy of src/: an include added that goes up a
  -- layer, then one that closes a cycle through a neighbour, then a folder
  -- the table does not know. Each one fails the script and names its file.
  -- Checked: with the UPWARD mark's problem left out of scripts/layers,
  -- the first case passes the script and this spec fails.
  it("fails on an upward include, a sideways one, and an unknown folder", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. quote(dir) .. " && cp -r src " .. quote(dir) .. "/src"))
    local function with(file, line)
      local path = dir .. "/src/" .. file
      local text = env.read_file(path)
      env.write_file(path, line .. "\n" .. text)
      local ok, out = sh("scripts/layers --root " .. quote(dir))
      env.write_file(path, text)
      return ok, out
    end
    local ok, out = with("backend/local.c", '#include "dispatch/job.h"')
    assert.is_false(ok, out)
    assert.matches("src/backend/local.c:1: backend includes dispatch, a layer above it", out, 1, true)
    assert.matches("UPWARD", out, 1, true)
    assert.matches("cycle: [^\n]*backend", out)
    ok, out = with("luaglue/call.c", '#include "backend/local.h"')
    assert.is_false(ok, out)
    assert.matches("src/luaglue/call.c:1: luaglue includes backend, a layer beside it", out, 1, true)
    assert(os.execute("mkdir " .. quote(dir) .. "/src/extra"))
    env.write_file(dir .. "/src/extra/x.c", '#include "engine/text.h"\n')
    ok, out = sh("scripts/layers --root " .. quote(dir))
    assert.is_false(ok, out)
    assert.matches("src/extra/x.c: folder extra is not in src/layers.lua", out, 1, true)
    assert(os.execute("rm -rf " .. quote(dir)))
  end)

  -- The README draws the layers between two markers, in a text block; what
  -- it draws is what the script prints from the includes.
  it("are drawn in the README as the includes draw them", function()
    local readme = env.read_file("README.md")
    local block = readme:match("<!%-%- layers:begin %-%->\n(.-)<!%-%- layers:end %-%->")
    if not readme:find("<!-- layers:begin -->", 1, true) then
      pending("README.md has no layers markers yet")
      return
    end
    assert.is_truthy(block, "README.md: <!-- layers:begin --> without <!-- layers:end -->")
    local ok, picture = sh("scripts/layers --picture")
    assert.is_true(ok, picture)
    assert.are.equal("```text\n" .. picture .. "```\n", block)
  end)
end)
