-- echo-sandbox serve against clients that send what a well-behaved one
-- would not: an empty or wrong token of any length, large and chunked
-- bodies, a header larger than the daemon's memory for one connection.
local env = require "spec.support.env"
local daemon = require "spec.support.daemon"
local cjson = require "cjson"

-- A hang detector, not a timing: each exchange below takes well under a
-- second (loopback, under ASan too), while a daemon that sleeps past the
-- HTTP library's own list of connections with more to do moves one read
-- buffer per wake-up of its one-second tick: 16-24 KiB a second, minutes
-- for these bodies and answers.
local HANG = 60

local MiB = 1024 * 1024

-- A request file: `wc -c` of stdin bytes.
local function wc_request(bytes)
  local file = os.tmpname()
  env.write_file(file, cjson.encode { shell = "wc -c", stdin = ("x"):rep(bytes) })
  return file
end

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

  -- Checked: with the loop sleeping past MHD_get_timeout (until one of its
  -- fds or its one-second tick woke it), no answer came within 60 s: MHD
  -- reads one buffer of a connection per MHD_run and keeps the rest on a
  -- ready list of its own that no fd announces.
  it("reads a 4 MiB body as it comes, with no other request to wake it", function()
    local file = wc_request(4 * MiB)
    local d = daemon.start()
    local status, r = daemon.send(d, "POST", "/v1/run", { body_file = file, deadline = HANG })
    daemon.stop(d)
    os.remove(file)
    assert.are.equal(200, status, r)
    assert.are.equal(("%d\n"):format(4 * MiB), r.stdout)
  end)

  -- Checked: as above, without MHD_get_timeout heeded, no answer within
  -- 60 s (MHD wrote one chunk per wake-up).
  it("streams 4 MiB of output as the client takes it", function()
    local d = daemon.start()
    local status, body = daemon.send(d, "POST", "/v1/run?stream=1",
                                     { body = cjson.encode { shell = "yes | head -c " .. 4 * MiB }, deadline = HANG })
    daemon.stop(d)
    assert.are.equal(200, status, body)
    local bytes, last = 0, nil
    for line in body:gmatch("[^\n]+") do
      last = cjson.decode(line)
      if last.event == "output" then bytes = bytes + #last.data end
    end
    assert.are.equal(4 * MiB, bytes)
    assert.are.equal("result", last.event)
    assert.are.equal(4 * MiB, last.result.stdout_bytes)
  end)

  -- The size of a chunked body is known once it ends: MHD (0.9.75) takes an
  -- answer only then, so the daemon reads the rest and keeps none of it.
  -- Checked: as above, without MHD_get_timeout heeded, no answer within
  -- 60 s.
  it("answers 413 to a chunked body over --max-body, and runs one under it", function()
    local file = wc_request(4 * MiB)
    local d = daemon.start("--max-body 1Ki")
    local status, r = daemon.send(d, "POST", "/v1/run", { body_file = file, chunked = true, deadline = HANG })
    local small, ran = daemon.send(d, "POST", "/v1/run", { body = cjson.encode { shell = "echo chunked" },
                                                            chunked = true, deadline = HANG })
    daemon.stop(d)
    os.remove(file)
    assert.are.equal(413, status, r)
    assert.are.equal("invalid_request", r.error.code)
    assert.truthy(r.error.message:find("larger than 1024 bytes", 1, true), r.error.message)
    assert.are.equal(200, small, ran)
    assert.are.equal("chunked\n", ran.stdout)
  end)

  -- Checked: as above, without MHD_get_timeout heeded, no answer within
  -- 60 s.
  it("answers 431 at once to a 200 KB header, and serves the next request", function()
    local d = daemon.start()
    local status, answer = daemon.send(d, "GET", "/healthz", { pad_header = 200 * 1000, deadline = HANG })
    local health = daemon.request(d, "GET", "/healthz")
    daemon.stop(d)
    assert.are.equal(431, status, answer)
    assert.are.equal(200, health)
  end)
end)
