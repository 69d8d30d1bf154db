-- Small functions: no C function under src/ is over 80 lines
-- (scripts/function-lengths) unless scripts/function-lengths.allow names it
-- with its reason.
local env = require "spec.support.env"

local sh, quote = env.sh, env.quote

describe("the functions of src/", function()
  env.check_leaks()

  -- Checked: with a function of 81 lines added at the end of
  -- src/cli/run.c, this fails naming src/cli/run.c, the function and
  -- "81 lines, over 80".
  it("are 80 lines or fewer, or allowed with a reason", function()
    local ok, out = sh("scripts/function-lengths")
    assert.is_true(ok, out)
    assert.matches("functions, none over 80 lines outside the allowlist", out, 1, true)
    assert.does_not.match("the entry can go", out, 1, true)
  end)

  -- The check itself, on a copy of src/: a new long function fails it and
  -- is named with its file, line and length; one line shorter it passes;
  -- an allowlist entry without a reason is refused; and a function whose
  -- closing "}" is not where the formatting puts it is named, not measured.
  -- Checked: with the script's brace-balance check taken out, the
  -- misformatted function passes and this fails at its assertion.
  it("fails on a new long function and on an allowlist entry without a reason", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. quote(dir) .. " && cp -r src " .. quote(dir) .. "/src"))
    local path = dir .. "/src/cli/run.c"
    local text = env.read_file(path)
    local function with_function(body_lines)
      local body = {"static int long_function_for_spec(int x) {"}
      for i = 1, body_lines do body[#body + 1] = ("  x += %d;"):format(i) end
      body[#body + 1] = "}"
      env.write_file(path, text .. "\n" .. table.concat(body, "\n") .. "\n")
      local start = select(2, text:gsub("\n", "")) + 2
      return start, sh("scripts/function-lengths --root " .. quote(dir))
    end
    local start, ok, out = with_function(79)
    assert.is_false(ok, out)
    assert.matches(("src/cli/run.c:%d: long_function_for_spec 81 lines, over 80"):format(start), out, 1, true)
    _, ok, out = with_function(78)
    assert.is_true(ok, out)
    assert.does_not.match("long_function_for_spec", out, 1, true)

    env.write_file(path, text .. "\nstatic int misformatted(int x) {\n  if (x) {\n}\n  return x;\n  }\n")
    ok, out = sh("scripts/function-lengths --root " .. quote(dir))
    assert.is_false(ok, out)
    assert.matches("misformatted: braces do not balance", out, 1, true)
    env.write_file(path, text)

    local allow = dir .. "/allow"
    env.write_file(allow, "cli/run.c long_function_for_spec\n")
    ok, out = sh("scripts/function-lengths --root " .. quote(dir) .. " --allow " .. quote(allow))
    assert.is_false(ok, out)
    assert.matches("an entry needs its reason", out, 1, true)
    assert(os.execute("rm -rf " .. quote(dir)))
  end)
end)
