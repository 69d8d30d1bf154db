local env = require "spec.support.env"
local daemon = require "spec.support.daemon"
local fake = require "spec.support.fake_kube"
local cjson = require "cjson"

-- Sends request to the daemon, stops it (SIGTERM) once `running` says the
-- run is in flight, and returns the HTTP status, the decoded result and the
-- answer's headers.
local function stop_during(d, request, running)
  local p = io.popen(("python3 spec/support/http_client.py request %s POST /v1/run %s")
    :format(env.quote(d.addr), env.quote(cjson.encode(request))))
  for _ = 1, 1000 do
    if running() then break end
    env.sleep(0.01)
  end
  daemon.stop(d)
  local r = cjson.decode(p:read("a"))
  p:close()
  return r.status, cjson.decode(r.body), r.headers
end

-- Sends request to the daemon in the background; returns a function that
-- waits for its answer (status, decoded result, headers).
local function send_later(d, request)
  local p = io.popen(("python3 spec/support/http_client.py request %s POST /v1/run %s")
    :format(env.quote(d.addr), env.quote(cjson.encode(request))))
  return function()
    local r = cjson.decode(p:read("a"))
    p:close()
    return r.status, cjson.decode(r.body), r.headers
  end
end

-- A poll of /metrics until it shows what: the interlock that proves a run
-- in flight (or a request waiting) before the next step.
local function until_metrics(d, what)
  for _ = 1, 2000 do
    local _, m = daemon.request(d, "GET", "/metrics")
    if m:find(what, 1, true) then return end
    env.sleep(0.01)
  end
  error("the daemon never showed " .. what)
end

describe("echo-sandbox serve", function()
  env.check_leaks()

  it("hands over to the echo-sandbox-serve program, and says so when it is missing", function()
    local out, _, code = env.cli_run { "serve", "--help" }
    assert.are.equal(0, code)
    assert.truthy(out:find("usage: echo-sandbox serve", 1, true), out)
    -- The CLI alone in a directory: no sibling daemon to start.
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir .. " && cp " .. env.quote(env.cli) .. " " .. dir .. "/"))
    local p = io.popen(dir .. "/echo-sandbox serve --help 2>&1")
    local text = p:read("a")
    local _, _, alone_code = p:close()
    os.execute("rm -rf " .. dir)
    if os.execute("test -x /usr/local/libexec/echo-sandbox/echo-sandbox-serve") then
      pending("an installed echo-sandbox-serve answers instead")
      return
    end
    assert.are.equal(125, alone_code)
    assert.truthy(text:find("echo-sandbox-serve is not installed", 1, true), text)
  end)

  it("refuses a --grace with a size's suffix, and sizes that are not whole", function()
    for _, args in ipairs { { "--grace", "1Ki" }, { "--grace", "0" }, { "--max-body", "1.5" }, { "--max-running", "x" } } do
      local out, err, code = env.cli_run { "serve", args[1], args[2], "--listen", "127.0.0.1:0" }
      assert.are.equal(125, code, args[1] .. " " .. args[2] .. ": " .. out)
      assert.truthy(err:find(args[1] .. " " .. args[2] .. ": expected", 1, true), err)
    end
  end)

  it("runs requests, answers healthz, and counts the runs in metrics", function()
    local d = daemon.start()
    local status, r = daemon.request(d, "POST", "/v1/run", cjson.encode { language = "python", code = "print(6*7)" })
    assert.are.equal(200, status)
    assert.are.equal("42\n", r.stdout)
    status, r = daemon.request(d, "POST", "/v1/run", cjson.encode { shell = "exit 3" })
    assert.are.equal(200, status)
    assert.are.equal(3, r.exit_code)
    local health
    status, health = daemon.request(d, "GET", "/healthz")
    assert.are.equal(200, status)
    assert.are.same({ status = "ok" }, health)
    local _, metrics = daemon.request(d, "GET", "/metrics")
    daemon.stop(d)
    assert.truthy(metrics:find('echo_sandbox_runs_total{backend="local",status="exited"} 2', 1, true), metrics)
    assert.truthy(metrics:find("echo_sandbox_run_duration_seconds_count 2", 1, true), metrics)
    assert.truthy(metrics:find("echo_sandbox_in_flight 0", 1, true), metrics)
  end)

  it("describes itself at GET /openapi.json, the document every exchange of these specs is checked against", function()
    local status, served = daemon.exchange(nil, "GET", "/openapi.json")
    assert.are.equal(200, status)
    assert.are.same(cjson.decode(env.read_file("doc/openapi.json")), served)
    assert.are.equal("3.1.0", served.openapi)
    -- its schemas are JSON Schema 2020-12 (spec/support/http_client.py validates with them)
    local ok, out = env.sh("python3 -c 'import json, jsonschema; d = json.load(open(\"doc/openapi.json\")); "
                           .. "[jsonschema.Draft202012Validator.check_schema(s) for s in d[\"components\"][\"schemas\"].values()]'")
    assert(ok, out)
  end)

  it("lists the policy's languages, and where each one's code goes", function()
    local path = env.policy_file('policy.languages.cobol = { image = "cobol:3", command = { "cobc", "-x" } }')
    local d = daemon.start("--policy " .. path)
    local status, body = daemon.request(d, "GET", "/v1/languages")
    daemon.stop(d)
    os.remove(path)
    assert.are.equal(200, status)
    local by_name = {}
    for i, lang in ipairs(body.languages) do
      by_name[lang.name] = lang
      if i > 1 then assert.is_true(body.languages[i - 1].name < lang.name, "sorted by name") end
    end
    assert.are.same({ name = "python", image = "python:3.12-slim", file = "main.py" }, by_name.python)
    assert.are.same({ name = "cobol", image = "cobol:3" }, by_name.cobol) -- no file: the code goes into argv
  end)

  it("is ready when its policy's default backend can run, and says why not otherwise", function()
    local status, body = daemon.exchange(nil, "GET", "/readyz")
    assert.are.equal(200, status)
    assert.are.equal("ready", body.status)
    assert.are.equal("local", body.backend)
    -- a k8s policy without a kubectl to run
    local path = env.policy_file('policy.backend = "k8s"')
    local d = daemon.start("--policy " .. path, nil, "ECHO_SANDBOX_KUBECTL=/nonexistent/kubectl")
    status, body = daemon.request(d, "GET", "/readyz")
    local log = daemon.log(d)
    daemon.stop(d)
    os.remove(path)
    assert.are.equal(503, status)
    assert.are.equal("not_ready", body.status)
    assert.are.equal("k8s", body.backend)
    assert.truthy(body.reason:find("no /nonexistent/kubectl to run", 1, true), body.reason)
    assert.truthy(log:find("not ready", 1, true), log)
    -- a policy whose plan hook fails: not ready, and healthz still answers
    path = env.policy_file('function policy:plan() error("broken on purpose") end')
    d = daemon.start("--policy " .. path)
    status, body = daemon.request(d, "GET", "/readyz")
    local health = daemon.request(d, "GET", "/healthz")
    daemon.stop(d)
    os.remove(path)
    assert.are.equal(503, status)
    assert.truthy(body.reason:find("broken on purpose", 1, true), body.reason)
    assert.are.equal(200, health)
  end)

  it("writes metrics that promtool accepts, with its build's version", function()
    local promtool = env.promtool()
    assert.truthy(promtool, "no promtool: spec/support/fetch_promtool.sh (bootstrap.sh test) fetches it")
    local d = daemon.start()
    daemon.request(d, "POST", "/v1/run", cjson.encode { shell = "true" })
    local _, metrics = daemon.request(d, "GET", "/metrics")
    daemon.stop(d)
    local file = os.tmpname()
    env.write_file(file, metrics)
    local p = io.popen(env.quote(promtool) .. " check metrics < " .. file .. " 2>&1")
    local said = p:read("a")
    local ok = p:close()
    os.remove(file)
    assert.is_true(ok, said)
    assert.truthy(metrics:find('echo_sandbox_build_info{version="%d+%.%d+%.%d+"} 1'), metrics)
  end)

  it("answers 400 to malformed JSON and invalid requests, with the error object", function()
    local d = daemon.start()
    local status, r = daemon.request(d, "POST", "/v1/run", "{not json")
    assert.are.equal(400, status)
    assert.are.equal("invalid_request", r.error.code)
    status, r = daemon.request(d, "POST", "/v1/run", cjson.encode { shell = "true", timeout_ms = "soon" })
    assert.are.equal(400, status)
    assert.truthy(r.error.message:find("timeout_ms", 1, true))
    status = daemon.request(d, "GET", "/nowhere")
    assert.are.equal(404, status)
    daemon.stop(d)
  end)

  it("answers 413 to a body over the limit", function()
    local d = daemon.start("--max-body 1Ki")
    local status, r = daemon.request(d, "POST", "/v1/run", cjson.encode { shell = "true", stdin = ("x"):rep(4096) })
    daemon.stop(d)
    assert.are.equal(413, status)
    assert.are.equal("invalid_request", r.error.code)
  end)

  -- Checked: with the body read before the check (as before this spec),
  -- no answer came before the body was sent (status 0).
  it("refuses a body over the limit from its Content-Length, before reading it", function()
    local d = daemon.start("--max-body 1Ki")
    local status = daemon.headers_only(d, 8 * 1024 * 1024)
    daemon.stop(d)
    assert.are.equal(413, status)
  end)

  -- Checked: with MHD's timeout back at 600 s, the connection stayed open.
  it("closes a connection that sends no request within --header-timeout", function()
    local d = daemon.start("--header-timeout 1")
    local closed = daemon.closes_idle(d)
    local status = daemon.request(d, "GET", "/healthz")
    daemon.stop(d)
    assert.is_true(closed)
    assert.are.equal(200, status)
  end)

  -- Checked: without Retry-After and retryable on a busy answer (as
  -- before), the 429s had no retry-after header and retryable false.
  it("answers 429 under a flood beyond its queue of 1, retryable, with Retry-After", function()
    local d = daemon.start("--max-running 1 --max-queue 1")
    local statuses, bodies, headers = daemon.flood(d, 6, { shell = "sleep 0.5" })
    local _, metrics = daemon.request(d, "GET", "/metrics")
    daemon.stop(d)
    local count = {}
    for i, s in ipairs(statuses) do
      count[s] = (count[s] or 0) + 1
      if s == 429 then
        local r = cjson.decode(bodies[i])
        assert.are.equal("backend_unavailable", r.error.code)
        assert.is_true(r.error.retryable, bodies[i])
        assert.are.equal("1", headers[i]["retry-after"], cjson.encode(headers[i]))
      end
    end
    assert.are.equal(2, count[200])
    assert.are.equal(4, count[429])
    assert.truthy(metrics:find('echo_sandbox_rejected_total{reason="busy"} 4', 1, true), metrics)
  end)

  -- Checked: with the queue's least back at 1 (as before), the daemon did
  -- not start ("--max-queue 0: expected a positive whole number").
  it("with --max-queue 0 has no queue: a request that finds every slot busy is answered 429 at once", function()
    local d = daemon.start("--max-running 1 --max-queue 0 --grace 0.1")
    local first = send_later(d, { shell = "sleep 30" })
    until_metrics(d, "echo_sandbox_in_flight 1")
    local status, r, headers = daemon.request(d, "POST", "/v1/run", cjson.encode { shell = "echo second" })
    local _, metrics = daemon.request(d, "GET", "/metrics")
    daemon.stop(d)
    local first_status, first_r = first()
    assert.are.equal(429, status, cjson.encode(r))
    assert.is_true(r.error.retryable)
    assert.truthy(r.error.message:find("1 runs in flight and 0 waiting", 1, true), r.error.message)
    assert.are.equal("1", headers["retry-after"])
    assert.truthy(metrics:find("echo_sandbox_queued 0", 1, true), metrics)
    assert.are.equal(200, first_status)
    assert.are.equal("timed_out", first_r.status)
  end)

  -- Checked: without Retry-After on the shutdown's 503 (as before), the
  -- header was missing and retryable false.
  it("answers 503, retryable, with Retry-After, to a request still waiting when the grace ends", function()
    local d = daemon.start("--max-running 1 --max-queue 1 --grace 0.5")
    local first = send_later(d, { shell = "sleep 30" })
    until_metrics(d, "echo_sandbox_in_flight 1")
    local second = send_later(d, { shell = "echo never" })
    until_metrics(d, "echo_sandbox_queued 1")
    daemon.stop(d)
    local status, r, headers = second()
    first()
    assert.are.equal(503, status, cjson.encode(r))
    assert.are.equal("backend_unavailable", r.error.code)
    assert.is_true(r.error.retryable)
    assert.are.equal("1", headers["retry-after"])
  end)

  it("refuses a --max-queue that is not a whole number, naming it", function()
    local _, err, code = env.cli_run { "serve", "--max-queue", "-1", "--listen", "127.0.0.1:0" }
    assert.are.equal(125, code)
    assert.truthy(err:find("--max-queue -1: expected a non-negative whole number", 1, true), err)
  end)

  it("refuses requests without the token and accepts them with it", function()
    local tokenfile = os.tmpname()
    env.write_file(tokenfile, "s3cret\n")
    local d = daemon.start("--token-file " .. tokenfile)
    local denied, denied_r, denied_h = daemon.request(d, "POST", "/v1/run", cjson.encode { shell = "true" })
    local wrong, wrong_r, wrong_h = daemon.request(d, "POST", "/v1/run", cjson.encode { shell = "true" }, "guess")
    local status, r = daemon.request(d, "POST", "/v1/run", cjson.encode { shell = "echo in" }, "s3cret")
    daemon.stop(d)
    os.remove(tokenfile)
    assert.are.equal(401, denied)
    assert.are.equal(401, wrong)
    -- RFC 6750 3: the challenge, and invalid_token for a token that is not the one.
    -- Checked: as before (invalid_request, no challenge), these failed.
    assert.are.equal("unauthorized", denied_r.error.code)
    assert.are.equal("unauthorized", wrong_r.error.code)
    assert.is_false(denied_r.error.retryable)
    assert.are.equal('Bearer realm="echo-sandbox"', denied_h["www-authenticate"])
    assert.are.equal('Bearer realm="echo-sandbox", error="invalid_token"', wrong_h["www-authenticate"])
    assert.are.equal(200, status)
    assert.are.equal("in\n", r.stdout)
  end)

  -- Checked: without the Allow header (as before), both were nil.
  it("answers 405 with Allow naming the endpoint's method", function()
    local d = daemon.start()
    local status, r, headers = daemon.request(d, "GET", "/v1/run")
    local health_status, _, health_headers = daemon.request(d, "POST", "/healthz", "{}")
    daemon.stop(d)
    assert.are.equal(405, status)
    assert.are.equal("invalid_request", r.error.code)
    assert.truthy(r.error.message:find("POST /v1/run", 1, true), r.error.message)
    assert.are.equal("POST", headers["allow"])
    assert.are.equal(405, health_status)
    assert.are.equal("GET", health_headers["allow"])
  end)

  it("leaves the probes open with --public-probes, and only them", function()
    local tokenfile = os.tmpname()
    env.write_file(tokenfile, "s3cret\n")
    local closed = daemon.start("--token-file " .. tokenfile)
    local closed_health = daemon.request(closed, "GET", "/healthz")
    daemon.stop(closed)
    local d = daemon.start("--token-file " .. tokenfile .. " --public-probes")
    local statuses = {}
    for _, path in ipairs { "/healthz", "/readyz", "/metrics", "/v1/languages" } do
      statuses[#statuses + 1] = daemon.request(d, "GET", path)
    end
    local run = daemon.request(d, "POST", "/v1/run", cjson.encode { shell = "true" })
    local ran = daemon.request(d, "POST", "/v1/run", cjson.encode { shell = "true" }, "s3cret")
    daemon.stop(d)
    os.remove(tokenfile)
    assert.are.equal(401, closed_health)
    assert.are.same({ 200, 200, 200, 401 }, statuses)
    assert.are.equal(401, run)
    assert.are.equal(200, ran)
  end)

  -- Checked: with the token checked after the body was read (as before this
  -- spec), no answer came before the body was sent (status 0), and 20
  -- unauthenticated 8 MiB bodies grew the daemon by 160 MB.
  it("refuses a request without the token from its headers, before reading a large body", function()
    local tokenfile = os.tmpname()
    env.write_file(tokenfile, "s3cret\n")
    local d = daemon.start("--token-file " .. tokenfile)
    local statuses = {}
    for _, token in ipairs { false, "guess", "s3cre", "s3cretX", "S3cret" } do
      statuses[#statuses + 1] = daemon.headers_only(d, 8 * 1024 * 1024, token or nil)
    end
    local _, metrics = daemon.request(d, "GET", "/metrics", nil, "s3cret")
    daemon.stop(d)
    os.remove(tokenfile)
    assert.are.same({ 401, 401, 401, 401, 401 }, statuses)
    assert.truthy(metrics:find('echo_sandbox_rejected_total{reason="unauthorized"} 5', 1, true), metrics)
  end)

  it("reloads the policy on SIGHUP, and keeps the old one when the new one is broken", function()
    local path = os.tmpname()
    local function write_policy(value)
      env.write_policy(path, "policy.env.WHICH = '" .. value .. "'")
    end
    write_policy("first")
    local d = daemon.start("--policy " .. path)
    finally(function()
      daemon.stop(d)
      os.remove(path)
    end)
    local request = cjson.encode { shell = "echo $WHICH" }
    local _, r = daemon.request(d, "POST", "/v1/run", request)
    assert.are.equal("first\n", r.stdout)
    write_policy("second")
    daemon.signal(d, "HUP")
    daemon.await_log(d, "policy reloaded")
    _, r = daemon.request(d, "POST", "/v1/run", request)
    assert.are.equal("second\n", r.stdout)
    env.write_file(path, "return {")
    daemon.signal(d, "HUP")
    daemon.await_log(d, "reload failed")
    _, r = daemon.request(d, "POST", "/v1/run", request)
    local _, metrics = daemon.request(d, "GET", "/metrics")
    assert.are.equal("second\n", r.stdout)
    assert.truthy(metrics:find("echo_sandbox_policy_reloads_total 2", 1, true), metrics)
    assert.truthy(metrics:find("echo_sandbox_policy_reload_failures_total 1", 1, true), metrics)
  end)

  local function in_flight(d)
    return function()
      local _, m = daemon.request(d, "GET", "/metrics")
      return m:find("echo_sandbox_in_flight 1", 1, true) ~= nil
    end
  end

  -- The run lasts long enough (3 s of the 10 s grace) for the first look at
  -- /metrics to find it in flight even under the sanitizers: with 0.5 s it
  -- could end before that look, and the spec then polled a thousand times.
  it("lets a run in flight finish on SIGTERM, then exits", function()
    local d = daemon.start("--grace 10")
    local status, r = stop_during(d, { shell = "sleep 3; echo finished" }, in_flight(d))
    assert.are.equal(200, status)
    assert.are.equal("finished\n", r.stdout)
  end)

  it("kills a run that outlasts the grace period on SIGTERM", function()
    local d = daemon.start("--grace 1")
    local status, r = stop_during(d, { shell = "sleep 30" }, in_flight(d))
    assert.are.equal(200, status)
    assert.are.equal("timed_out", r.status)
  end)

  it("makes the directory of its unix socket, which gets --socket-mode", function()
    local d = daemon.start("--socket-mode 0600", "unix")
    local path = d.addr:gsub("^unix:", "")
    local p = io.popen(("stat -c %%a %s %s"):format(env.quote(path:match("^(.*)/")), env.quote(path)))
    local dir_mode, socket_mode = p:read("l"), p:read("l")
    p:close()
    local status, body = daemon.request(d, "GET", "/healthz")
    daemon.stop(d)
    assert.are.equal(200, status, body)
    assert.are.equal("755", dir_mode)
    assert.are.equal("600", socket_mode)
  end)

  -- Checked: without the chown (as before), the socket's group was root's.
  it("gives its unix socket --socket-group, by name or number, and refuses a group that is not there", function()
    for _, group in ipairs { "www-data", "33" } do
      local d = daemon.start("--socket-group " .. group, "unix")
      local p = io.popen("stat -c '%G %a' " .. env.quote((d.addr:gsub("^unix:", ""))))
      local said = p:read("l")
      p:close()
      daemon.stop(d)
      assert.are.equal("www-data 660", said)
    end
    local _, err, code = env.cli_run { "serve", "--socket-group", "no-such-group", "--listen", "unix:/nonexistent/x" }
    assert.are.equal(125, code)
    assert.truthy(err:find("--socket-group no-such-group: no such group", 1, true), err)
  end)

  -- An interlock, not a clock: each run leaves a file in a directory all
  -- of them share, then waits until it holds 200, so that every run is
  -- proved started while all the others were (a daemon that ran fewer at
  -- once would leave them all waiting to their deadline). Checked: with
  -- the count at 201, every run timed out.
  it("runs 200 requests side by side, each waiting on all the others, on a unix socket", function()
    local gate, policy = env.shared_dir_policy("/gate", "1777")
    finally(function()
      os.execute("rm -rf " .. gate)
      os.remove(policy)
    end)
    local d = daemon.start("--policy " .. policy, "unix")
    local statuses, bodies = daemon.flood(d, 200, {
      shell = "mktemp /gate/run.XXXXXX > /dev/null; until set -- /gate/run.*; [ $# -ge 200 ]; do sleep 1; done; " ..
              "echo all $#", timeout_ms = 120000 })
    daemon.stop(d)
    for i, status in ipairs(statuses) do
      assert.are.equal(200, status, bodies[i])
      local r = cjson.decode(bodies[i])
      assert.are.same({ "exited", 0, "all 200\n" }, { r.status, r.exit_code, r.stdout }, bodies[i])
    end
    assert.are.equal(200, #statuses)
  end)

  describe("on the k8s backend", function()
    local minor = env.newest_kubectl()
    if not minor then return end
    local fixture = fake.per_spec(minor)

    it("deletes the pod of a run that outlasts the grace period on SIGTERM", function()
      local d = daemon.start("--grace 1", nil, fixture.server.env)
      local status, result = stop_during(d, { backend = "k8s", shell = "sleep 30" }, function()
        local pods = fake.pods(fixture.server)
        return pods[1] ~= nil and pods[1].status ~= nil and pods[1].status.phase == "Running"
      end)
      assert.are.equal(200, status)
      assert.are.equal("k8s", result.sandbox_type)
      assert.are.equal("timed_out", result.status)
      assert.is_nil(result.cleanup_error)
      -- the fixture checks that the fake API server holds no pod
    end)
  end)

  -- Checked: with the silent switch to local (as before), the daemon
  -- answered 200 with the canary's output from its own machine.
  it("never runs a request of the shipped in-cluster policy locally when the cluster does not answer", function()
    local minor = env.newest_kubectl()
    if not minor then return end
    local d = daemon.start("--policy deploy/policy.lua", nil, fake.kubectl_env(minor, "/nonexistent/kubeconfig"))
    local _, r = daemon.request(d, "POST", "/v1/run", cjson.encode { shell = "echo ran-here", timeout_ms = 5000 })
    local log = daemon.log(d)
    daemon.stop(d)
    assert.are.equal("error", r.status, cjson.encode(r))
    assert.are.equal("k8s", r.sandbox_type)
    assert.are.equal("", r.stdout)
    assert.is_nil(r.fallback)
    assert.is_nil(log:find("ran locally", 1, true), log)
  end)
end)
