-- echo-sandbox-kube's exec against an API server that sends what no API
-- server sends (spec/support/hostile_ws.py, on loopback): each is the
-- exec's failure, said in the helper's word, never an exit and never bytes
-- the server did not send as the command's; nothing is allocated by a
-- frame's length (2^64 - 1 passes as a stream would). Under ASan+UBSan in
-- CI (.ci/run), the frame parser's bounds with them.
local env = require "spec.support.env"
local cjson = require "cjson"

local broken = " error error: the exec's connection ended before the API server's status came\n"

-- Each case: the helper's exit code, its stdout, its word (and its stderr
-- before the word where it is not empty).
local expected = {
  plain = { 3, "out", " exit 3\n", "err" },
  masked = { 1, "", broken },
  ["length_2^64-1"] = { 1, "abc", broken },
  ["length_2^63"] = { 1, "abc", broken },
  control_126 = { 1, "", broken },
  control_fragmented = { 1, "", broken },
  continuation_of_none = { 1, "", broken },
  message_within_message = { 1, "a", broken },
  reserved_opcode = { 1, "a", broken },
  status_over_64k = { 1, "", " error error: the exec's status failed\n" },
  status_split = { 42, "", " exit 42\n" },
  status_exit_256 = { 1, "", " error error: 256\n" },
  status_after_close = { 1, "a", broken },
  unknown_channel = { 5, "", " exit 5\n" },
  -- a ping read while stdin's frames were queued, the server waiting for
  -- its pong. Checked: before, the pong waited for a queue that had
  -- emptied, the client waited for the server, and it was "no pong" (the
  -- ping flood's hang in k8s_exec_spec, where stdin's end was queued).
  pong_after_stdin = { 0, "pong last", " exit 0\n" },
  wrong_accept = { 1, "", " error error: the API server's WebSocket upgrade has a wrong Sec-WebSocket-Accept\n" },
  no_connection_upgrade = { 1, "", " error error: the API server switched the exec's protocol without the headers "
                            .. "of a WebSocket upgrade (the command may have started)\n" },
  other_protocol = { 1, "", " error error: the API server upgraded the exec to \"v4.channel.k8s.io\", not the "
                     .. "v5.channel.k8s.io offered (the command may have started)\n" },
  -- a refusal that is not the API's: kubectl for a 4xx (nothing went
  -- further), an error for a proxy's 5xx, which may come after the exec
  -- was passed on. Checked: before, proxy_502 was " kubectl ..." too (the
  -- engine ran the command again through kubectl).
  plain_403 = { 1, "", " kubectl the API server refused the WebSocket upgrade (HTTP 403)\n" },
  proxy_502 = { 1, "", " error error: the exec's upgrade was answered HTTP 502, not by the API server (the command "
                .. "may have started)\n" },
  proxy_504 = { 1, "", " error error: the exec's upgrade was answered HTTP 504, not by the API server (the command "
                .. "may have started)\n" },
}

describe("echo-sandbox-kube's exec on a hostile API server", function()
  env.check_leaks()

  -- Checked: with kube_ws.c as it was before these defences,
  -- status_after_close was exit 0 (the status after the close read);
  -- reserved_opcode exit 0 with stdout "abc" (opcode 3 taken as more of
  -- channel 1); message_within_message exit 0 with "ab";
  -- continuation_of_none exit 0.
  it("says each frame no API server sends is the exec's failure, in its word", function()
    local ok, out = env.sh("python3 spec/support/hostile_ws.py " .. env.quote(env.build ..
                           "/echo-sandbox-kube"))
    assert(ok, out)
    local seen = 0
    for line in out:gmatch("[^\n]+") do
      local r = cjson.decode(line)
      local want = expected[r.name]
      assert.truthy(want, "no case " .. r.name)
      assert.are.same({ r.name, want[1], want[2], want[4] or "", want[3] }, { r.name, r.rc, r.out, r.err, r.word })
      seen = seen + 1
    end
    local cases = 0
    for _ in pairs(expected) do cases = cases + 1 end
    assert.are.equal(cases, seen)
  end)
end)
