-- echo-sandbox serve against clients that send what a well-behaved one
-- would not: an empty or wrong token of any length.
local env = require "spec.support.env"
local daemon = require "spec.support.daemon"
local cjson = require "cjson"

local function token_file(text)
  local file = os.tmpname()
  env.write_file(file, text)
  return file
end

describe("echo-sandbox serve against hostile clients", function()
  env.check_leaks()

  -- Checked: without the check of the token file's first line, the daemon
  -- started with the empty token (this spec then met the timeout, 124):
  -- "Authorization: Bearer " ran code and any other token killed the daemon
  -- (SIGFPE in the comparison). The comparison's own guard of an empty
  -- secret is tests/token_test.c's.
  it("refuses to start with a token file whose first line is empty, naming the file", function()
    local empty, blank = "its first line is empty", "its first line holds a blank"
    -- "s3cret ": a token no client could send as written (HTTP trims blanks)
    for text, why in pairs { [""] = empty, ["\n"] = empty, ["\r\n"] = empty, ["\nsecond-line\n"] = empty,
                             ["s3cret \n"] = blank } do
      local file = token_file(text)
      local _, err, code = env.cli_run({ "serve", "--token-file", file, "--listen", "127.0.0.1:0" }, nil,
                                       "timeout 30")
      os.remove(file)
      assert.are.equal(125, code, err)
      assert.truthy(err:find("--token-file " .. file .. ": " .. why, 1, true), err)
    end
  end)

  -- Checked: with the comparison over the length of what was sent (strncmp,
  -- a prefix test), "", "s" and "s3c" ran code.
  it("answers 401 to a wrong token of any length, and lives", function()
    local file = token_file("s3cret\n")
    local d = daemon.start("--token-file " .. file)
    local request = cjson.encode { shell = "echo in" }
    local statuses = {}
    for _, token in ipairs { "", "s", "s3c", "s3cre", "s3cretX", "s3crets3cret", "S3cret", ("s"):rep(4096) } do
      statuses[#statuses + 1] = daemon.request(d, "POST", "/v1/run", request, token)
    end
    local status, r = daemon.request(d, "POST", "/v1/run", request, "s3cret")
    daemon.stop(d)
    os.remove(file)
    assert.are.same({ 401, 401, 401, 401, 401, 401, 401, 401 }, statuses)
    assert.are.equal(200, status)
    assert.are.equal("in\n", r.stdout)
  end)
end)
