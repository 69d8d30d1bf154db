local env = require "spec.support.env"
local cjson = require "cjson"

-- Every language of the default policy runs its interpreter in the local
-- sandbox under the default limits (node's V8 reserves far more address
-- space than it uses: this is where an address-space limit would bite).
local programs = {
  python = "print(6*7)",
  python3 = "print(6*7)",
  node = "console.log(6*7)",
  javascript = "console.log(6*7)",
  ruby = "puts 6*7",
  perl = "print 6*7, qq(\\n)",
  php = 'echo 6*7, "\\n";',
  lua = "print(6*7)",
  sh = "echo $((6*7))",
  bash = "echo $((6*7))",
}

describe("the default policy's languages", function()
  env.check_leaks()

  local names = {}
  for name in pairs(programs) do names[#names + 1] = name end
  table.sort(names)
  for _, language in ipairs(names) do
    it(language .. " prints 42", function()
      local out, err = env.cli_run({ "run", "--json" }, cjson.encode { language = language, code = programs[language] })
      local r = cjson.decode(out)
      assert.are.equal("42\n", r.stdout, err .. (r.stderr or ""))
      assert.are.equal(0, r.exit_code)
    end)
  end

  it("takes PHP code with its opening tag, as snippets usually come", function()
    local out = env.cli_run({ "run", "--json" }, cjson.encode { language = "php", code = '<?php\necho 6*7, "\\n";' })
    assert.are.equal("42\n", cjson.decode(out).stdout)
    out = env.cli_run({ "run", "--json" }, cjson.encode { language = "php", code = '<?php echo 6*7, "\\n"; ?>' })
    assert.are.equal("42\n", cjson.decode(out).stdout)
  end)

  it("knows every language it is asked for, or names the ones it knows", function()
    local out = env.cli_run({ "run", "--json" }, cjson.encode { language = "cobol", code = "x" })
    local r = cjson.decode(out)
    assert.are.equal("invalid_request", r.error.code)
    for name in pairs(programs) do
      assert.truthy(r.error.message:find(name, 1, true), r.error.message)
    end
  end)
end)
