-- The MCP server (clients/mcp), driven by the MCP SDK's own client over
-- stdio (clients/mcp/test/*.test.js, node --test): its one-shot calls
-- (server.test.js) through the CLI and through a daemon of this build, its
-- session per connection (session.test.js) through both; then by a
-- client of another make, the MCP Inspector's CLI (a devDependency pinned
-- in clients/mcp/package-lock.json).
local env = require "spec.support.env"
local daemon = require "spec.support.daemon"
local cjson = require "cjson"

local function node_test(prefix, tests, passed)
  local ok, out = env.sh(prefix .. " node --test " .. tests)
  assert(ok, out)
  assert.truthy(out:find("\n# fail 0\n", 1, true), out)
  assert.truthy(out:find("\n# pass " .. passed .. "\n", 1, true), out)
end

describe("the MCP server", function()
  env.check_leaks()

  it("is a node package whose bin is echo-sandbox-mcp, its dependencies locked", function()
    local package = cjson.decode(env.read_file("clients/mcp/package.json"))
    assert.are.equal("./server.js", package.bin["echo-sandbox-mcp"])
    assert.truthy(package.dependencies["@modelcontextprotocol/sdk"])
    local lock = cjson.decode(env.read_file("clients/mcp/package-lock.json"))
    assert.truthy(lock.packages["node_modules/@modelcontextprotocol/sdk"])
    assert.is_true(os.execute("test -x clients/mcp/server.js") == true)
  end)

  it("lists its tools, runs code, keeps a session per connection, and answers an invalid request with a tool " ..
     "error, through the CLI", function()
    node_test("ECHO_SANDBOX_BIN=" .. env.quote(env.cli), "clients/mcp/test/", 22)
  end)

  it("does the same through a daemon", function()
    local d = daemon.start()
    finally(function() daemon.stop(d) end)
    local port = d.addr:match("(%d+)$")
    node_test("ECHO_SANDBOX_BIN=/nonexistent ECHO_SANDBOX_URL=http://127.0.0.1:" .. port,
              "clients/mcp/test/server.test.js", 10)
  end)

  -- The session per connection through a daemon whose directory of
  -- sessions the tests read (`session ls`): run_code's cells go to POST
  -- /v1/sessions/{id}/cell. Checked: against a daemon without the cell
  -- route, the first run_code was a tool error (no such endpoint).
  it("keeps a session per connection through a daemon: run_code twice sees the first's variable", function()
    local dir = assert(io.popen("mktemp -d")):read("l")
    local d = daemon.start(nil, nil, "ECHO_SANDBOX_SESSION_DIR=" .. dir)
    finally(function()
      daemon.stop(d)
      os.execute("rm -rf " .. env.quote(dir))
    end)
    local port = d.addr:match("(%d+)$")
    node_test("ECHO_SANDBOX_BIN=" .. env.quote(env.cli) .. " ECHO_SANDBOX_URL=http://127.0.0.1:" .. port ..
              " ECHO_SANDBOX_SESSION_DIR=" .. dir, "clients/mcp/test/session.test.js", 12)
  end)

  -- The Inspector's CLI: one call, its JSON answer decoded (what comes
  -- before it is the Inspector's notices on stderr). The server's session
  -- goes in a directory of this case's, left empty when the Inspector is
  -- done with the server.
  local function inspector(args)
    local dir = assert(io.popen("mktemp -d")):read("l")
    local ok, out = env.sh("clients/mcp/node_modules/.bin/mcp-inspector --cli -e ECHO_SANDBOX_BIN="
      .. env.quote(env.cli) .. " -e ECHO_SANDBOX_SESSION_DIR=" .. dir .. " node clients/mcp/server.js " .. args)
    local left = env.cli_run({ "session", "ls" }, nil, "ECHO_SANDBOX_SESSION_DIR=" .. dir)
    for id in left:gmatch("(%x+)  ") do env.cli_run({ "session", "rm", id }, nil, "ECHO_SANDBOX_SESSION_DIR=" .. dir) end
    os.remove(dir)
    assert.are.equal("", left, "sessions left: " .. left)
    assert(ok, out)
    local answer = out:match("^{.*") or out:match("\n({.*)")
    assert(answer, out)
    return cjson.decode(answer)
  end

  it("is listed by the MCP Inspector's CLI, its tools with input and output schemas", function()
    local tools = {}
    for _, t in ipairs(inspector("--method tools/list").tools) do tools[t.name] = t end
    for _, name in ipairs({ "run_code", "run_shell", "list_languages" }) do
      assert.truthy(tools[name], name)
      assert.are.equal("object", tools[name].outputSchema.type)
    end
    assert.truthy(tools.run_shell.description:find("What persists from call to call: the files of its working dir",
                                                   1, true))
    assert.truthy(tools.reset_session)
  end)

  -- Checked: with the server as it was (the engine's 1 MiB per stream, the
  -- text cut at its end), the last line is not in the text. (The run goes
  -- in the connection's session, made and deleted around it.)
  it("answers the Inspector's call whose 2 MiB of output ends in an error with that error in the text", function()
    local r = inspector("--method tools/call --tool-name run_shell --tool-arg " .. env.quote(
      "command=head -c 2097152 /dev/zero | tr '\\0' x; echo; echo 'error: the last line'"))
    assert.is_not_true(r.isError)
    local text = r.content[1].text
    assert.truthy(#text <= 32 * 1024, #text)
    assert.truthy(text:find("\nerror: the last line\n", 1, true), text:sub(-300))
    assert.truthy(text:find("\n%[%.%.%. %d+ bytes left out %.%.%.%]\n"), text:sub(1, 300))
    assert.are.equal(2097174, r.structuredContent.stdout_bytes)
  end)
end)
