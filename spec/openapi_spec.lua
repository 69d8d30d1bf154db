-- doc/openapi.json as tools read it: Redocly's linter with its recommended
-- rules (@redocly/cli, pinned in spec/support/openapi-lint/package-lock.json;
-- `bootstrap.sh test` installs it with npm ci), and what code generators and
-- clients rely on: an operationId for each operation, servers, an example
-- for each shape of request, the headers of the answers that carry one.
-- spec/serve_spec.lua checks that the daemon serves this document and that
-- its answers match its schemas.
local env = require "spec.support.env"
local cjson = require "cjson"

local redocly = "spec/support/openapi-lint/node_modules/.bin/redocly"

-- Redocly's problems with a document, as "rule: message" lines, or nil and
-- what went wrong. No telemetry, no update check: the linter works offline.
local function lint(path)
  -- (its report on stdout; on stderr, a summary and notices)
  local ok, out = env.sh("(REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true " .. redocly ..
    " lint --extends recommended --format json " .. env.quote(path) .. " 2>/dev/null)")
  local decoded_ok, report = pcall(cjson.decode, out)
  if not decoded_ok then return nil, ("redocly lint (exit %s): %s"):format(tostring(ok), out) end
  local problems = {}
  for _, p in ipairs(report.problems) do
    problems[#problems + 1] = ("%s: %s at %s"):format(p.ruleId, p.message, p.location[1].pointer)
  end
  return problems
end

local function document()
  return cjson.decode(env.read_file("doc/openapi.json"))
end

-- Each operation of the document: fn(path, method, operation).
local function each_operation(doc, fn)
  for path, item in pairs(doc.paths) do
    for method, op in pairs(item) do fn(path, method, op) end
  end
end

describe("doc/openapi.json", function()
  env.check_leaks()

  it("is a lint of Redocly's from a lock file", function()
    local lock = cjson.decode(env.read_file("spec/support/openapi-lint/package-lock.json"))
    assert.truthy(lock.packages["node_modules/@redocly/cli"], "@redocly/cli is not in the lock file")
    assert.is_true(os.execute("test -x " .. redocly) == true, redocly .. ": run npm ci in spec/support/openapi-lint")
  end)

  -- Checked: on the document as it was (no servers, no operationId), this
  -- fails with 1 error and 12 warnings.
  it("passes Redocly's lint with the recommended rules, warnings included", function()
    local problems = assert(lint("doc/openapi.json"))
    assert.are.same({}, problems)
  end)

  it("fails the lint when an operation loses its operationId, a server list goes, or an example goes wrong",
    function()
      -- the lint of this spec can fail: the same document, worse
      local made, out = env.sh("mktemp -d")
      assert(made, out)
      local dir = out:gsub("%s+$", "")
      finally(function() os.execute("rm -rf " .. env.quote(dir)) end)
      -- (python3's json, which keeps [] and {} apart, as cjson does not)
      local ok, out = env.sh("python3 -c " .. env.quote(table.concat({
        "import json, sys",
        "d = json.load(open('doc/openapi.json'))",
        "del d['paths']['/healthz']['get']['operationId'], d['servers']",
        "d['paths']['/v1/run']['post']['requestBody']['content']['application/json']['examples']['shell']"
          .. "['value']['shell'] = 7",
        "json.dump(d, open(sys.argv[1], 'w'))" }, "\n")) .. " " .. env.quote(dir .. "/openapi.json"))
      assert(ok, out)
      local rules = {}
      for _, p in ipairs(assert(lint(dir .. "/openapi.json"))) do rules[p:match("^[^:]+")] = true end
      assert.are.same({ ["operation-operationId"] = true, ["no-empty-servers"] = true,
                        ["no-invalid-media-type-examples"] = true }, rules)
    end)

  -- Checked: without the operationIds, this fails.
  it("names every operation with an operationId of its own, and says where the daemon listens", function()
    local doc, seen = document(), {}
    each_operation(doc, function(path, method, op)
      assert.is_string(op.operationId, method .. " " .. path)
      assert.is_nil(seen[op.operationId], op.operationId)
      seen[op.operationId] = true
    end)
    assert.are.equal("run", doc.paths["/v1/run"].post.operationId)
    assert.are.equal("http://{host}:{port}", doc.servers[1].url)
    assert.are.equal("7878", doc.servers[1].variables.port.default)
  end)

  -- Checked: with code "written to a file of the working dir, never into
  -- argv", this fails.
  it("says that php's code goes into argv", function()
    local code = document().components.schemas.Request.properties.code.description
    assert.is_nil(code:find("never"), code)
    assert.truthy(code:find("php -r", 1, true), code)
  end)

  -- The examples are checked against the schemas by the lint
  -- (no-invalid-media-type-examples); here, that there is one of each shape.
  it("has an example of each shape of request: shell, argv, code with files, collect", function()
    local examples = document().paths["/v1/run"].post.requestBody.content["application/json"].examples
    assert.is_string(examples.shell.value.shell)
    assert.is_string(examples.argv.value.program)
    assert.is_table(examples.argv.value.args)
    assert.is_string(examples.code.value.code)
    assert.is_table(examples.code.value.files)
    assert.is_table(examples.collect.value.collect)
  end)

  -- What the daemon answers (or is to answer) beyond a body: the headers
  -- of 401, 405, 429 and 503, the code unauthorized, a result's fallback.
  it("lists the headers of 401, 405, 429 and 503, the code unauthorized, and a result's fallback", function()
    local doc = document()
    local run = doc.paths["/v1/run"].post.responses
    local function header(answer, name)
      return answer.headers and answer.headers[name] and answer.headers[name]["$ref"]
    end
    each_operation(doc, function(path, method, op)
      if op.responses["401"] then
        assert.are.equal("#/components/headers/WWW-Authenticate", header(op.responses["401"], "WWW-Authenticate"),
                         method .. " " .. path)
      end
    end)
    assert.are.equal("#/components/headers/Allow", header(run["405"], "Allow"))
    assert.are.equal("#/components/headers/Retry-After", header(run["429"], "Retry-After"))
    assert.are.equal("#/components/headers/Retry-After", header(run["503"], "Retry-After"))
    local schemas = doc.components.schemas
    local codes = {}
    for _, c in ipairs(schemas.Error.properties.code.enum) do codes[c] = true end
    assert.is_true(codes.unauthorized)
    assert.are.equal("string", schemas.Result.properties.fallback.type) -- why, in words (result.h)
  end)
end)
