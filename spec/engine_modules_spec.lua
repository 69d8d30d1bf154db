-- The engine's own Lua modules that the front end runs (src/luaglue,
-- src/cli), tested as Lua: the same files are compiled into the binaries.
package.path = "lua/?.lua;" .. package.path
local cjson = require "cjson"
local requests = require "echo_sandbox.engine.requests"
local kube = require "echo_sandbox.engine.kube"

describe("echo_sandbox.engine.requests", function()
  it("reads one JSON document as one request, whatever its lines", function()
    local list = requests.split(cjson.decode, '{\n"shell": "true"\n}')
    assert.are.equal(1, #list)
    assert.are.equal("true", list[1].shell)
  end)

  it("reads NDJSON line by line, a bad line in its place, with the line numbers", function()
    local list = requests.split(cjson.decode, '{"shell":"a"}\n\n{oops\n{"shell":"b"}\n')
    assert.are.equal(3, #list)
    assert.are.equal("a", list[1].shell)
    assert.truthy(list[2]:find("^line 3: invalid request JSON: "), list[2])
    assert.are.equal("b", list[3].shell)
    assert.are.same({ 1, 3, 4 }, list.lines)
  end)

  it("raises the document's error for text that is neither", function()
    local ok, err = pcall(requests.split, cjson.decode, "{oops")
    assert.is_false(ok)
    assert.truthy(err:find("Expected", 1, true), err)
    ok = pcall(requests.split, cjson.decode, "{oops\n[nope")
    assert.is_false(ok)
  end)
end)

describe("echo_sandbox.engine.kube", function()
  it("picks a watch event's pod status, with nil-safe walking", function()
    local st = kube.pod_status(cjson.decode([[{"type":"MODIFIED","object":{"kind":"Pod",
      "metadata":{"name":"p"},"status":{"phase":"Succeeded","containerStatuses":[
      {"state":{"terminated":{"exitCode":3,"reason":"Completed"}}}]}}}]]))
    assert.are.same({ phase = "Succeeded", terminated = true, exit_code = 3, reason = "Completed",
                      event = "MODIFIED", unschedulable = false, name = "p", deleting = false,
                      restart_count = 0 }, st)
    -- a pod being deleted, restarted, on a node that is not ready
    st = kube.pod_status(cjson.decode([[{"kind":"Pod","metadata":{"name":"q",
      "deletionTimestamp":"2026-01-01T00:00:00Z"},"status":{"phase":"Running","conditions":[
      {"type":"Ready","status":"False","reason":"NodeNotReady"}],"containerStatuses":[{"restartCount":2,
      "state":{"waiting":{"reason":"CrashLoopBackOff"}}}]}}]]))
    assert.is_true(st.deleting)
    assert.are.equal(2, st.restart_count)
    assert.are.equal("NodeNotReady", st.not_ready)
    assert.are.equal("CrashLoopBackOff", st.waiting_reason)
    assert.is_nil(kube.pod_status(cjson.decode('{"kind":"Node"}')))
    assert.is_nil(kube.pod_status("text"))
    assert.are.equal("", kube.pod_status({ kind = "Pod", status = cjson.null }).phase)
  end)

  it("lists pods with their expiry, whether a session's has ended and a ready warm pod's pool, and skips what has "
     .. "no name", function()
    local list = cjson.decode([[{"items":[
      {"metadata":{"name":"a","annotations":{"echo-sandbox.io/expires-at":"2026-01-01T00:00:00Z"}}},
      {"metadata":{"name":"b"}}, {"metadata":{}}, 7,
      {"metadata":{"name":"s","labels":{"echo-sandbox.io/session":"true"}},"status":{"phase":"Succeeded"}},
      {"metadata":{"name":"r"},"status":{"phase":"Succeeded"}},
      {"metadata":{"name":"w","labels":{"echo-sandbox.io/warm-pool":"p","echo-sandbox.io/warm-state":"ready"}}},
      {"metadata":{"name":"c","labels":{"echo-sandbox.io/warm-pool":"p","echo-sandbox.io/warm-state":"claimed"}}}
    ]}]])
    assert.are.same({ { "a", "2026-01-01T00:00:00Z", false, "" }, { "b", "", false, "" }, { "s", "", true, "" },
                      { "r", "", false, "" }, { "w", "", false, "p" }, { "c", "", false, "" } }, kube.pods(list))
    assert.are.same({}, kube.pods(cjson.decode("{}")))
  end)

  -- the lines of the warm list's jsonpath (src/backend/k8s_warm.c), from
  -- the API client's own list
  it("gives a warm pod list's pods as the lines the list's jsonpath prints", function()
    local list = cjson.decode([[{"items":[
      {"metadata":{"name":"w","resourceVersion":"42","creationTimestamp":"2026-12-07T01:02:03Z",
        "deletionTimestamp":"2026-12-07T01:02:04Z","labels":{"echo-sandbox.io/warm-state":"ready",
        "echo-sandbox.io/warm-pool":"p","echo-sandbox.io/warm-hash":"abc","echo-sandbox.io/warm-expires":"99"}},
       "status":{"phase":"Running","reason":"R","conditions":[{"type":"Initialized","status":"True"},
         {"type":"Ready","status":"False"}]}},
      {"metadata":{"name":"tab\there"}}, 7
    ]}]])
    assert.are.equal("w\t42\tRunning\tR\tFalse\t2026-12-07T01:02:04Z\tready\tp\tabc\t99\t2026-12-07T01:02:03Z\n"
                     .. "tab here\t\t\t\t\t\t\t\t\t\t\n" .. ("\t"):rep(10) .. "\n", kube.warm_pod_lines(list))
    assert.are.equal("", kube.warm_pod_lines(cjson.decode("{}")))
  end)

  it("finds a NetworkPolicy for pods without network", function()
    local with = cjson.decode([[{"items":[{"spec":{"podSelector":{}}},
      {"spec":{"podSelector":{"matchLabels":{"echo-sandbox.io/network":"none"}}}}]}]])
    local without = cjson.decode([[{"items":[{"spec":{"podSelector":{"matchLabels":{"app":"x"}}}}]}]])
    assert.is_true(kube.has_network_policy(with))
    assert.is_false(kube.has_network_policy(without))
    assert.is_false(kube.has_network_policy(cjson.decode('{"items":[null]}')))
  end)
end)
