-- The MCP server (clients/mcp), driven by the MCP SDK's own client over
-- stdio (clients/mcp/test/server.test.js, node --test): once running each
-- call through the CLI, once through a daemon of this build.
local env = require "spec.support.env"
local daemon = require "spec.support.daemon"
local cjson = require "cjson"

local function node_test(prefix)
  local ok, out = env.sh(prefix .. " node --test clients/mcp/test/")
  assert(ok, out)
  assert.truthy(out:find("\n# fail 0\n", 1, true), out)
  assert.truthy(out:find("\n# pass 5\n", 1, true), out)
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

  it("lists its tools, runs code, and answers an invalid request with a tool error, through the CLI", function()
    node_test("ECHO_SANDBOX_BIN=" .. env.quote(env.cli))
  end)

  it("does the same through a daemon", function()
    local d = daemon.start()
    finally(function() daemon.stop(d) end)
    local port = d.addr:match("(%d+)$")
    node_test("ECHO_SANDBOX_BIN=/nonexistent ECHO_SANDBOX_URL=http://127.0.0.1:" .. port)
  end)
end)
