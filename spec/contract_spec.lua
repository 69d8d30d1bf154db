-- The contract in one place: src/engine/contract/limits.def defines each of
-- a request's limits once (the C readers, the CLI's flags and `policy
-- explain` are driven from it), request_fields.def and result_fields.def
-- the request's and the result's top-level fields, src/policy/
-- plan_fields.def a plan's (the plan's own, its local's and its k8s's) and
-- session_fields.def a session's decision (the policy's hook `session`).
-- Here the rest is checked against them: the default policy, doc/openapi.json,
-- doc/request-and-result.md and the man pages; and end to end, that every
-- limit goes from a flag through the policy into the plan and that the
-- policy is handed the request's fields the table says. The spec reads the
-- .def files as text (limits.def's header says why and what shape they keep).
local env = require "spec.support.env"
local cjson = require "cjson"
package.path = "lua/?.lua;" .. package.path

-- The arguments of one ESB_LIMIT(...) row: strings (adjacent literals
-- joined, escapes \n \" \\ undone) and bare words, in order.
local function arguments(text)
  local args, i, current = {}, 1, nil
  local escapes = { n = "\n", ['"'] = '"', ["\\"] = "\\" }
  while i <= #text do
    local c = text:sub(i, i)
    if c == '"' then
      local j, s = i + 1, {}
      while text:sub(j, j) ~= '"' do
        local d = text:sub(j, j)
        assert(d ~= "", "an unterminated string in limits.def")
        if d == "\\" then
          j = j + 1
          d = assert(escapes[text:sub(j, j)], "an escape limits.def should not have")
        end
        s[#s + 1] = d
        j = j + 1
      end
      current = (current or "") .. table.concat(s)
      i = j + 1
    elseif c == "," then
      args[#args + 1] = current
      current, i = nil, i + 1
    elseif c:match("%s") then
      i = i + 1
    else
      local word = text:match("^[%w_.]+", i)
      assert(word, "limits.def: unexpected '" .. c .. "'")
      current, i = word, i + #word
    end
  end
  args[#args + 1] = current
  return args
end

-- The rows of the X-macro table `macro` in file, each a table of its
-- arguments under the names of `columns`, in order.
local function rows_of(file, macro, columns)
  local text = env.read_file(file)
  local rows = {}
  for body in text:gmatch("\n" .. macro .. "(%b())") do
    local a = arguments(body:sub(2, -2))
    assert(#a == #columns, ("a row of %s with %d columns: %s"):format(file, #a, body))
    local row = {}
    for i, name in ipairs(columns) do row[name] = a[i] end
    rows[#rows + 1] = row
  end
  local _, starts = text:gsub("\n" .. macro .. "%(", "")
  assert(#rows == starts and #rows > 0, file .. ": some rows do not parse")
  return rows
end

-- The rows of limits.def, of request_fields.def and of result_fields.def.
local function limits()
  local rows = rows_of("src/engine/contract/limits.def", "ESB_LIMIT", { "id", "kind", "key", "plan_key",
    "request_member", "plan_member", "flag", "minimum", "default", "doc", "help" })
  for _, row in ipairs(rows) do row.minimum, row.default = tonumber(row.minimum), tonumber(row.default) end
  return rows
end

local function request_fields()
  return rows_of("src/engine/contract/request_fields.def", "ESB_REQUEST_FIELD", { "name", "policy_name", "doc" })
end

local function result_fields()
  local rows = rows_of("src/engine/contract/result_fields.def", "ESB_RESULT_FIELD", { "name", "always", "doc" })
  for _, row in ipairs(rows) do row.always = row.always == "1" end
  return rows
end

local function plan_fields()
  return rows_of("src/policy/plan_fields.def", "ESB_PLAN_FIELD", { "name", "table", "kind", "doc" })
end

local function session_fields()
  return rows_of("src/policy/session_fields.def", "ESB_SESSION_FIELD", { "name", "kind", "doc" })
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local function column(rows, name)
  local values = {}
  for _, row in ipairs(rows) do values[#values + 1] = row[name] end
  table.sort(values)
  return values
end

-- The backquoted or roff-bold names in a stretch of text.
local function names_in(text, pattern)
  local names, seen = {}, {}
  for name in text:gmatch(pattern) do
    if not seen[name] then names[#names + 1] = name end
    seen[name] = true
  end
  table.sort(names)
  return names
end

describe("the contract's limits (src/engine/contract/limits.def)", function()
  env.check_leaks()
  local rows = limits()

  it("parses, and each row is whole", function()
    for _, row in ipairs(rows) do
      assert.truthy(({ UINT = true, CPU = true, BOOL = true })[row.kind], row.id)
      assert.truthy(row.key:match("^[a-z_]+$") and row.plan_key:match("^[a-z_]+$"), row.id)
      assert.truthy(row.flag:match("^%-%-[a-z-]+$"), row.id)
      assert.truthy(row.help:find(row.flag, 1, true), row.id .. ": its help does not name " .. row.flag)
      assert.truthy(#row.doc > 0 and not row.doc:find("\n"), row.id .. ": its doc is not one line")
    end
  end)

  -- Checked: with max_processes renamed in doc/openapi.json, this fails
  -- naming both spellings; with its minimum made 0, naming max_processes.
  it("is the Request schema's limits in doc/openapi.json: names, types, minimums, descriptions", function()
    local schema = cjson.decode(env.read_file("doc/openapi.json")).components.schemas.Request
    local properties = schema.properties.limits.properties
    assert.are.same(column(rows, "key"), sorted_keys(properties))
    local types = { UINT = { "integer", "null" }, CPU = { "number", "string", "null" }, BOOL = { "boolean", "null" } }
    for _, row in ipairs(rows) do
      local p = properties[row.key]
      -- network is a switch, or the network by name: {"allow": [hosts]}
      local want = row.key == "network" and { "boolean", "object", "null" } or types[row.kind]
      assert.are.same(want, p.type, row.key)
      if row.kind == "UINT" then assert.are.equal(row.minimum, p.minimum, row.key .. ": minimum") end
      assert.are.equal(row.doc, p.description, row.key .. ": description")
    end
  end)

  it("is the limits that doc/request-and-result.md lists", function()
    local text = env.read_file("doc/request-and-result.md")
    local list = assert(text:match("and `limits`:%s(.-)An unknown field"), "the request's limits sentence")
    assert.are.same(column(rows, "key"), names_in(list, "`([%w_]+)`"))
  end)

  -- Checked: with cpu_millicores dropped from the plan's list, this fails.
  it("is the limits echo-sandbox-policy(5) lists, in the request the policy sees and in the plan", function()
    local page = env.read_file("doc/echo-sandbox-policy.5")
    local request = assert(page:match("\n%.B limits\n%.RB %((.-)each only when the request gave it"),
                           "the request's limits in THE REQUEST")
    assert.are.same(column(rows, "plan_key"), names_in(request, "([%w_]+) [,;]"))
    local plan = assert(page:match("\n%.B limits\n(%.BR [^\n]*\n.-)%.TP"), "the plan's limits in THE PLAN")
    assert.are.same(column(rows, "plan_key"), names_in(plan, "%.BR ([%w_]+)"))
  end)

  it("has each flag in echo-sandbox(1)", function()
    local page = env.read_file("doc/echo-sandbox.1"):gsub("\\%-", "-")
    for _, row in ipairs(rows) do
      assert.truthy(page:find("\n.BI? " .. row.flag:gsub("%-", "%%-") .. "[ \n]"), row.flag)
    end
  end)

  -- Checked: with max_processes dropped from the default policy's
  -- defaults, this fails naming it.
  it("is what the default policy knows: a default for each, ceilings only of limits, each carried to the plan",
    function()
      local policy = require "echo_sandbox.policy.default"
      local known = {}
      for _, row in ipairs(rows) do known[row.plan_key] = row end
      local unknown = {}
      for _, where in ipairs { "defaults", "ceilings" } do
        for key in pairs(policy[where].limits) do
          if not known[key] then unknown[#unknown + 1] = where .. ".limits." .. key end
        end
      end
      assert.are.same({}, unknown)
      local asked = {}
      for _, row in ipairs(rows) do
        assert.truthy(policy.defaults.limits[row.plan_key] ~= nil or row.default > 0,
                      row.plan_key .. ": neither the default policy nor the table gives a default")
        asked[row.plan_key] = row.kind == "BOOL" or 1
      end
      local limits = policy:limits_for { limits = asked }
      assert.are.same(column(rows, "plan_key"), sorted_keys(limits))
    end)

  -- Checked: with max_processes's row given the plan member
  -- local.limits.cpu_secs, this fails naming cpu_time_secs (which then
  -- holds max_processes's value).
  it("goes from each flag through the policy into the plan (policy explain)", function()
    local args, want = { "policy", "explain", "--json" }, {}
    for i, row in ipairs(rows) do
      if row.kind == "BOOL" then
        args[#args + 1] = row.flag
        want[row.plan_key] = true
      elseif row.kind == "CPU" then
        args[#args + 1], args[#args + 2] = row.flag, "0.25"
        want[row.plan_key] = 250
      else
        args[#args + 1], args[#args + 2] = row.flag, tostring(10 + i)
        want[row.plan_key] = 10 + i
      end
    end
    args[#args + 1], args[#args + 2] = "--shell", "true"
    local out, err, code = env.cli_run(args)
    assert.are.equal(0, code, err)
    local got = cjson.decode(out).limits
    for key, value in pairs(want) do assert.are.equal(value, got[key], key) end
    assert.are.same(column(rows, "plan_key"), sorted_keys(got))
  end)
end)

-- The arguments of a roff request line ('.BR a ", " b'): quoted ones whole.
local function roff_arguments(text)
  local args, i = {}, 1
  while true do
    i = text:match("^%s*()", i)
    if i > #text then return args end
    local word, j = text:match('^"([^"]*)"()', i)
    if not word then word, j = text:match("^(%S+)()", i) end
    args[#args + 1], i = word, j
  end
end

-- The names a stretch of a man page sets in bold: of its .B lines every
-- argument, of its .BR lines every other one (they alternate bold and
-- roman), each a lower-case word (k8s too); not a page's name before its
-- section ('.BR useradd (8)').
local function bold_names(text)
  local found = {}
  for macro, line in ("\n" .. text):gmatch("\n%.(BR?) ([^\n]*)") do
    local args = roff_arguments(line)
    for i = 1, #args, macro == "B" and 1 or 2 do
      local reference = macro == "BR" and (args[i + 1] or ""):match("^%(%d%)")
      if args[i]:match("^[%l_][%l%d_]*$") and not reference then found[args[i]] = true end
    end
  end
  return sorted_keys(found)
end

describe("the contract's plan fields (src/policy/plan_fields.def)", function()
  env.check_leaks()
  local rows = plan_fields()
  local function names(table_name)
    local list = {}
    for _, row in ipairs(rows) do
      if row.table == table_name then list[#list + 1] = row.name end
    end
    table.sort(list)
    return list
  end
  local page = env.read_file("doc/echo-sandbox-policy.5")
  local section = assert(page:match("\n%.SH THE PLAN\n(.-)\n%.SH "), "THE PLAN in echo-sandbox-policy(5)")

  it("parses, and each row is whole", function()
    local kinds = { STRING = true, UINT = true, BOOL = true, ARRAY = true, MAP = true, TABLE = true }
    local tables = { [""] = true, ["local"] = true, k8s = true }
    for _, row in ipairs(rows) do
      assert.truthy(row.name:match("^[%l_][%l%d_]*$") and tables[row.table] and kinds[row.kind], row.name)
      assert.truthy(#row.doc > 0 and not row.doc:find("\n"), row.name .. ": its doc is not one line")
    end
  end)

  -- Checked: with kill_grace_ms dropped from its item's first line in the
  -- page, this fails naming it; with a row "timeout" added to the table,
  -- naming that.
  it("is the plan's own fields that echo-sandbox-policy(5) has an item of", function()
    local heads = {}
    for head in section:gmatch("%.TP\n([^\n]*)") do heads[#heads + 1] = head end
    assert.are.same(names(""), bold_names(table.concat(heads, "\n")))
  end)

  -- Checked: with tmp_size_bytes dropped from the local item, this fails
  -- naming it; with not_ready_grace_ms's row named not_ready_ms, naming
  -- both spellings.
  it("is the local and the k8s fields that echo-sandbox-policy(5) lists in their items", function()
    local in_local = assert(section:match("\n%.TP\n%.B local\n(.-)\n%.TP\n"), "the item of local")
    local in_k8s = assert(section:match("\n%.TP\n%.B k8s\n(.*)$"), "the item of k8s")
    -- what the local item names in passing: a value of uid_range, one of
    -- isolation, and the command that says which uids a run has
    local passing = { ["false"] = true, rlimits = true, doctor = true }
    local listed = {}
    for _, name in ipairs(bold_names(in_local)) do
      if not passing[name] then listed[#listed + 1] = name end
    end
    assert.are.same(names("local"), listed)
    assert.are.same(names("k8s"), bold_names(in_k8s))
  end)

  -- Checked: without the plan reader's check of local's names, the
  -- misspelt field is taken and the run goes on without it.
  it("is all a plan may have: a field outside it is a policy error naming it and its table", function()
    for change, name in pairs { ["p.timeout = 1"] = "'timeout'", ["p['local'].isolaton = 'rlimits'"] = "'local.isolaton'",
                                ["p.k8s = p.k8s or {}; p.k8s.memory = '1Gi'"] = "'k8s.memory'" } do
      local path = env.policy_file(("local plan = policy.plan\nfunction policy:plan(req) local p = plan(self, req); "
                                    .. "%s; return p end"):format(change))
      local _, err, code = env.cli_run({ "policy", "explain", "--json", "--policy", path, "--shell", "true" })
      os.remove(path)
      assert.are_not.equal(0, code, change)
      assert.truthy(err:find("unknown field " .. name, 1, true), err)
    end
  end)
end)

describe("the contract's session decision (src/policy/session_fields.def)", function()
  env.check_leaks()
  local rows = session_fields()
  local page = env.read_file("doc/echo-sandbox-policy.5")
  local section = assert(page:match("\n%.SH THE SESSION\n(.-)\n%.SH "), "THE SESSION in echo-sandbox-policy(5)")

  it("parses, and each row is whole", function()
    local kinds = { STRING = true, UINT = true, ARRAY = true, TABLE = true }
    for _, row in ipairs(rows) do
      assert.truthy(row.name:match("^[%l_][%l%d_]*$") and kinds[row.kind], row.name)
      assert.truthy(#row.doc > 0 and not row.doc:find("\n"), row.name .. ": its doc is not one line")
    end
  end)

  -- Checked: with kernels dropped from its item's first line in the page,
  -- this fails naming it.
  it("is the decision's fields that echo-sandbox-policy(5) has an item of", function()
    local heads = {}
    for head in section:gmatch("%.TP\n([^\n]*)") do heads[#heads + 1] = head end
    assert.are.same(column(rows, "name"), bold_names(table.concat(heads, "\n")))
  end)

  -- Checked: with the default hook's tenant_label renamed tenant, this
  -- fails naming both; with a limit `memory` in its limits, naming it.
  it("is what the default policy's hook decides, every field of it, limits under their plan names", function()
    local policy = require "echo_sandbox.policy.default"
    local d = policy:session({ ttl_ms = 1, limits = { memory_bytes = 1 } }, { live = 0, live_by_label = {} })
    assert.are.same(column(rows, "name"), sorted_keys(d))
    -- each limit the table gives no default of, and no other
    local want = {}
    for _, row in ipairs(limits()) do
      if row.default == 0 or d.limits[row.plan_key] ~= nil then want[#want + 1] = row.plan_key end
    end
    table.sort(want)
    assert.are.same(want, sorted_keys(d.limits))
  end)
end)

describe("the contract's request fields (src/engine/contract/request_fields.def)", function()
  env.check_leaks()
  local rows = request_fields()
  local limit_keys, limit_plan_keys = {}, {}
  for _, row in ipairs(limits()) do
    limit_keys[row.key] = true
    limit_plan_keys[row.plan_key] = true
  end

  -- Checked: with "labels" dropped from the table, this fails, as do the
  -- three below (and a request with labels is refused: an unknown field).
  it("is the Request schema's fields in doc/openapi.json", function()
    local schema = cjson.decode(env.read_file("doc/openapi.json")).components.schemas.Request
    assert.are.same(column(rows, "name"), sorted_keys(schema.properties))
  end)

  it("is what doc/request-and-result.md names of the request", function()
    local text = env.read_file("doc/request-and-result.md")
    local missing, known = {}, { auto = true, ["local"] = true, k8s = true }
    for _, row in ipairs(rows) do
      known[row.name] = true
      if not text:find("`" .. row.name .. "`", 1, true) then missing[#missing + 1] = row.name end
    end
    assert.are.same({}, missing)
    local section = assert(text:match("\n## The request\n(.-)\n## "))
    local strangers = {}
    for _, name in ipairs(names_in(section, "`([%l_]+)`")) do
      if not known[name] and not limit_keys[name] then strangers[#strangers + 1] = name end
    end
    assert.are.same({}, strangers)
  end)

  it("is the request as echo-sandbox-policy(5) says the hooks see it", function()
    local page = env.read_file("doc/echo-sandbox-policy.5")
    local section = assert(page:match("\n%.SH THE REQUEST\n(.-)\n%.SH "))
    local values = { auto = true, ["local"] = true, k8s = true }
    local listed = {}
    for _, name in ipairs(names_in(section, "\n%.B[RI]? %(?%s*([%l_]+)")) do
      if not values[name] and not limit_plan_keys[name] then listed[#listed + 1] = name end
    end
    local want = {}
    for _, row in ipairs(rows) do
      if row.policy_name ~= "" then want[#want + 1] = row.policy_name end
    end
    table.sort(want)
    assert.are.same(want, listed)
  end)

  -- Checked: with stdin_bytes dropped from policy/policy.c's hand-over,
  -- this fails naming it.
  it("is handed to the policy under its policy names, and only those", function()
    local path = env.policy_file [[
local plan = policy.plan
function policy:plan(req)
  local p, err = plan(self, req)
  local keys = {}
  for k in pairs(req) do keys[#keys + 1] = k end
  table.sort(keys)
  p.env.REQ_KEYS = table.concat(keys, ",")
  return p, err
end
]]
    local request = { language = "python", code = "x", args = { "a" }, stdin = "x", env = { A = "1" },
                      working_dir = "/w", timeout_ms = 1000, backend = "local", limits = { network = false },
                      labels = { a = "b" }, id = 1, files = { f = "x" }, collect = { "*" } }
    local out, err, code = env.cli_run({ "policy", "explain", "--json", "--policy", path }, cjson.encode(request))
    os.remove(path)
    assert.are.equal(0, code, err)
    local want = {}
    for _, row in ipairs(rows) do
      assert.truthy(request[row.name] ~= nil or row.name == "shell" or row.name == "program", row.name)
      if row.policy_name ~= "" then want[#want + 1] = row.policy_name end
    end
    local seen = {}
    for key in cjson.decode(out).env.REQ_KEYS:gmatch("[^,]+") do seen[#seen + 1] = key end
    local without = {}
    for _, key in ipairs(want) do
      if key ~= "shell" and key ~= "program" then without[#without + 1] = key end
    end
    table.sort(without)
    assert.are.same(without, seen)
  end)
end)

-- What esb_lua_push_result writes is checked against the table by
-- tests/convert_test.c; here the docs are.
describe("the contract's result fields (src/engine/contract/result_fields.def)", function()
  env.check_leaks()
  local rows = result_fields()

  -- Checked: with killed_by_us dropped from the schema's required list,
  -- this fails naming it.
  it("is the Result schema's fields in doc/openapi.json, and its required ones those of every result", function()
    local schema = cjson.decode(env.read_file("doc/openapi.json")).components.schemas.Result
    assert.are.same(column(rows, "name"), sorted_keys(schema.properties))
    local always = {}
    for _, row in ipairs(rows) do
      if row.always then always[#always + 1] = row.name end
    end
    table.sort(always)
    local required = { table.unpack(schema.required) }
    table.sort(required)
    assert.are.same(always, required)
  end)

  it("is named in doc/request-and-result.md, each field", function()
    local text = env.read_file("doc/request-and-result.md")
    local missing = {}
    for _, row in ipairs(rows) do
      if not (text:find("`" .. row.name .. "`", 1, true) or text:find('"' .. row.name .. '"', 1, true)) then
        missing[#missing + 1] = row.name
      end
    end
    assert.are.same({}, missing)
  end)
end)
