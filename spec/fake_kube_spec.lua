-- The fake API server (spec/support/fake_kube.py) as pools of warm pods meet
-- a cluster (its warm_* block): pods that take time to start, changes under a
-- resourceVersion (409 Conflict on a stale one), label selectors, a request
-- log, evictions and a quota of pods. Driven through real kubectl (the
-- oldest and the newest minor of the matrix), and plain HTTP where kubectl
-- cannot (a DELETE's preconditions).
-- spec/run: one task per minor, the oldest and the newest of the matrix.
local env = require "spec.support.env"
local fake = require "spec.support.fake_kube"
local cjson = require "cjson"
if fake.needs("switches and endpoints: this file is the fake's own spec") then return end

local policy = "spec/support/k8s_policy.lua"

-- fn runs however the case ends, after those given later (a case has one
-- busted finally).
local cleanups = {}
local function later(fn)
  if #cleanups == 0 then
    finally(function()
      for i = #cleanups, 1, -1 do cleanups[i]() end
      cleanups = {}
    end)
  end
  cleanups[#cleanups + 1] = fn
end

-- A server of the case's own, stopped however the case ends (its pods'
-- processes with it).
local function server_of(minor, options)
  local server = fake.start(minor, options)
  later(function() fake.stop(server) end)
  return server
end

-- JSON as kubectl's -p takes it (YAML: no escaped slashes).
local function json(value)
  return (cjson.encode(value):gsub("\\/", "/"))
end

-- kubectl of the server's minor with args (shell words): whether it
-- succeeded, and its output (stderr with stdout).
local function kubectl(server, args)
  return env.sh(("KUBECONFIG=%s %s %s"):format(env.quote(server.kubeconfig),
                                               env.quote(env.kubectl(server.minor)), args))
end

local function must(server, args)
  local ok, out = kubectl(server, args)
  assert(ok, args .. ": " .. out)
  return out
end

-- A pod whose container sleeps, labelled with labels ("k=v,k2=v2") where given.
local function create(server, name, labels)
  return kubectl(server, ("run %s --image=busybox --restart=Never%s -- sleep 300")
    :format(name, labels and " --labels=" .. labels or ""))
end

local function get(server, name)
  return cjson.decode(must(server, "get pod " .. name .. " -o json"))
end

local function ready(server, name)
  must(server, "wait --for=condition=Ready --timeout=60s pod/" .. name)
end

-- The names of the pods a label selector picks, sorted, space-separated.
local function selected(server, selector)
  local names = {}
  for name in must(server, "get pods -o name -l " .. env.quote(selector)):gmatch("pod/(%S+)") do
    names[#names + 1] = name
  end
  table.sort(names)
  return table.concat(names, " ")
end

-- The pods whose container processes are alive.
local function procs(server)
  return fake.query(server, "/_fake/procs")
end

local function clock()
  local p = io.popen("date +%s.%N")
  local t = tonumber(p:read("l"))
  p:close()
  return t
end

env.oldest_and_newest_kubectl(function(minor)
  describe(("the fake API server, kubectl 1.%d,"):format(minor), function()
    env.check_leaks() -- in this outer block, so it runs after each case's server is stopped

    describe("with a start delay", function()
      -- Checked: without warm_start_refused, the exec of a pod not started
      -- answers "container not found (p)", the words of a container gone.
      it("keeps a created pod Pending, unscheduled then scheduled, exec and attach refused, until it starts",
        function()
        local server = server_of(minor, "--start-delay 600")
        assert(create(server, "p"))
        local p = get(server, "p")
        assert.are.equal("Pending", p.status.phase)
        assert.is_nil(p.spec.nodeName)
        assert.is_nil(p.status.containerStatuses)
        for _, args in ipairs { "exec p -- echo hi", "attach p </dev/null" } do
          local ok, out = kubectl(server, args)
          assert.is_false(ok, out)
          assert.truthy(out:find("pod p does not have a host assigned", 1, true), out)
        end
        assert.are.equal("", must(server, "logs p")) -- no node to ask
        assert.are.same({ found = 1 }, fake.query(server, "/_fake/schedule/p", "{}"))
        p = get(server, "p")
        assert.are.equal("Pending", p.status.phase)
        assert.are.equal("fake-node", p.spec.nodeName)
        assert.are.equal("ContainerCreating", p.status.containerStatuses[1].state.waiting.reason)
        local ok, out = kubectl(server, "exec p -- echo hi")
        assert.is_false(ok, out)
        assert.truthy(out:find('container not found ("p")', 1, true), out)
        ok, out = kubectl(server, "logs p")
        assert.is_false(ok, out)
        assert.truthy(out:find('container "p" in pod "p" is waiting to start: ContainerCreating', 1, true), out)
        assert.are.same({}, procs(server))
        fake.query(server, "/_fake/start/p", "{}")
        ready(server, "p")
        assert.are.equal("hi\n", must(server, "exec p -- echo hi"))
        -- the delay set while the server runs: for the pods created from then on
        fake.query(server, "/_fake/start-delay/0", "{}")
        assert(create(server, "q"))
        ready(server, "q")
      end)

      it("starts a pod once its delay has passed, never before", function()
        local server = server_of(minor, "--start-delay 1")
        local t0 = clock()
        assert(create(server, "p"))
        ready(server, "p")
        assert.is_true(clock() - t0 >= 1.0)
        assert.are.equal("hi\n", must(server, "exec p -- echo hi"))
      end)

      -- Checked: without the pod's phase checked in warm_pending and
      -- Pod.start, the evicted pod goes Running.
      it("never starts a pod evicted or deleted while it waits", function()
        local server = server_of(minor, "--start-delay 600")
        assert(create(server, "a"))
        assert(create(server, "b"))
        fake.query(server, "/_fake/evict/a", "{}")
        must(server, "delete pod b --wait=false")
        assert.are.same({ found = 1 }, fake.query(server, "/_fake/start/a", "{}"))
        local code = fake.request(server, "POST", "/_fake/start/b", "{}")
        assert.are.equal(404, code)
        local a = get(server, "a")
        assert.are.equal("Failed", a.status.phase)
        assert.are.equal("Evicted", a.status.reason)
        assert.are.same({}, procs(server))
      end)

      it("lets a cold run of the engine wait out the delay", function()
        local server = server_of(minor, "--start-delay 1")
        local out, err, code = env.cli_run({ "run", "--json", "--policy", policy },
                                           cjson.encode { backend = "k8s", shell = "echo hi" }, server.env)
        local r = cjson.decode(out)
        assert.are.equal(0, code, out .. err)
        assert.are.equal("hi\n", r.stdout)
        assert.is_true(r.duration_ms >= 1000, out)
        assert.are.same({}, fake.pods(server))
      end)
    end)

    describe("with pods that change", function()
      -- Checked: without the resourceVersion compared in
      -- warm_update_refused, the stale label lands (and every stale patch
      -- of the next case).
      it("gives a pod a new resourceVersion at each change and refuses a label under a stale one", function()
        local server = server_of(minor)
        assert(create(server, "p", "pool=a,state=ready"))
        ready(server, "p")
        local rv0 = get(server, "p").metadata.resourceVersion
        must(server, "annotate pod p seen=yes")
        local rv1 = get(server, "p").metadata.resourceVersion
        assert.are_not.equal(rv0, rv1)
        local ok, out = kubectl(server, "label pod p state=claimed --overwrite --resource-version=" .. rv0)
        assert.is_false(ok, out)
        assert.truthy(out:find("Conflict", 1, true), out)
        assert.truthy(out:find('Operation cannot be fulfilled on pods "p": the object has been modified; please '
          .. "apply your changes to the latest version and try again", 1, true), out)
        local p = get(server, "p")
        assert.are.equal("ready", p.metadata.labels.state)
        assert.are.equal(rv1, p.metadata.resourceVersion)
        must(server, "label pod p state=claimed --overwrite --resource-version=" .. rv1)
        p = get(server, "p")
        assert.are.equal("claimed", p.metadata.labels.state)
        assert.are_not.equal(rv1, p.metadata.resourceVersion)
      end)

      it("refuses a stale resourceVersion in a strategic, merge or JSON patch and in a replace", function()
        local server = server_of(minor)
        assert(create(server, "p", "state=ready"))
        ready(server, "p")
        local file = os.tmpname()
        later(function() os.remove(file) end)
        env.write_file(file, must(server, "get pod p -o json"))
        local stale = get(server, "p").metadata.resourceVersion
        must(server, "annotate pod p seen=yes")
        local merge = json { metadata = { resourceVersion = stale, labels = { state = "x" } } }
        local stale_patch = json { { op = "replace", path = "/metadata/resourceVersion", value = stale },
                                    { op = "replace", path = "/metadata/labels/state", value = "x" } }
        for _, args in ipairs { "patch pod p -p " .. env.quote(merge),
                                "patch pod p --type merge -p " .. env.quote(merge),
                                "patch pod p --type json -p " .. env.quote(stale_patch),
                                "replace --validate=false -f " .. file } do
          local ok, out = kubectl(server, args)
          assert.is_false(ok, args .. ": " .. out)
          assert.truthy(out:find("the object has been modified", 1, true), args .. ": " .. out)
        end
        -- a JSON patch's own test of the version: 422, as the API server says
        local test = json { { op = "test", path = "/metadata/resourceVersion", value = stale },
                                    { op = "replace", path = "/metadata/labels/state", value = "x" } }
        local ok, out = kubectl(server, "patch pod p --type json -p " .. env.quote(test))
        assert.is_false(ok, out)
        assert.truthy(out:find("testing value /metadata/resourceVersion failed", 1, true), out)
        assert.are.equal("ready", get(server, "p").metadata.labels.state)
        -- under the current version each passes
        env.write_file(file, must(server, "get pod p -o json"))
        must(server, "replace --validate=false -f " .. file)
        local current = get(server, "p").metadata.resourceVersion
        local claim = json { { op = "test", path = "/metadata/resourceVersion", value = current },
                             { op = "replace", path = "/metadata/labels/state", value = "claimed" } }
        must(server, "patch pod p --type json -p " .. env.quote(claim))
        assert.are.equal("claimed", get(server, "p").metadata.labels.state)
      end)

      -- Checked: without the resourceVersion compared in
      -- warm_update_refused, more than one claim passes.
      it("lets exactly one of six claims at once under the same resourceVersion through", function()
        local server = server_of(minor)
        assert(create(server, "p", "pool=a,state=ready"))
        ready(server, "p")
        local rv = get(server, "p").metadata.resourceVersion
        local dir = os.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir " .. dir))
        later(function() os.execute("rm -rf " .. dir) end)
        local cmd = ("KUBECONFIG=%s %s label pod p state=claimed-$i --overwrite --resource-version=%s")
          :format(env.quote(server.kubeconfig), env.quote(env.kubectl(minor)), rv)
        must(server, "version --client >/dev/null") -- (kubectl is warm in the page cache)
        assert(os.execute(("for i in 1 2 3 4 5 6; do (%s >%s/out.$i 2>&1; echo $? >%s/rc.$i) & done; wait")
          :format(cmd, dir, dir)))
        local winners, conflicts = {}, 0
        for i = 1, 6 do
          if env.read_file(("%s/rc.%d"):format(dir, i)) == "0\n" then winners[#winners + 1] = i end
          if env.read_file(("%s/out.%d"):format(dir, i)):find("Conflict", 1, true) then conflicts = conflicts + 1 end
        end
        assert.are.equal(1, #winners)
        assert.are.equal(5, conflicts)
        assert.are.equal("claimed-" .. winners[1], get(server, "p").metadata.labels.state)
      end)

      it("refuses a change of the spec but a lower activeDeadlineSeconds, which it enforces", function()
        local server = server_of(minor)
        assert(create(server, "p"))
        ready(server, "p")
        local image = json { spec = { containers = { { name = "p", image = "other" } } } }
        local ok, out = kubectl(server, "patch pod p -p " .. env.quote(image))
        assert.is_false(ok, out)
        assert.truthy(out:find("Forbidden: pod updates may not change fields", 1, true), out)
        must(server, [[patch pod p -p '{"spec":{"activeDeadlineSeconds":600}}']])
        ok, out = kubectl(server, [[patch pod p -p '{"spec":{"activeDeadlineSeconds":900}}']])
        assert.is_false(ok, out)
        assert.truthy(out:find("must be less than or equal to the previous value 600", 1, true), out)
        must(server, [[patch pod p -p '{"spec":{"activeDeadlineSeconds":1}}']])
        must(server, [[wait --for=jsonpath='{.status.reason}'=DeadlineExceeded --timeout=60s pod/p]])
        assert.are.equal("Failed", get(server, "p").status.phase)
        assert.are.same({}, procs(server))
      end)

      -- Checked: without warm_delete_refused, the stale delete removes the pod.
      it("refuses a delete whose preconditions do not hold (plain HTTP: kubectl sends none)", function()
        local server = server_of(minor)
        assert(create(server, "p"))
        local p = get(server, "p")
        local path = "/api/v1/namespaces/echo-sandbox/pods/p"
        for _, pre in ipairs { { resourceVersion = "1" }, { uid = "not-" .. p.metadata.uid } } do
          local code, body = fake.request(server, "DELETE", path, cjson.encode { preconditions = pre })
          assert.are.equal(409, code)
          assert.are.equal("Conflict", body.reason, cjson.encode(body))
        end
        assert.are.equal(1, #fake.pods(server))
        local rv = get(server, "p").metadata.resourceVersion
        local code = fake.request(server, "DELETE", path, cjson.encode { preconditions = { resourceVersion = rv } })
        assert.are.equal(200, code)
        assert.are.same({}, fake.pods(server))
      end)

      -- Checked: without warm_named's generateName, the create is refused.
      it("names a pod created with a generateName alone; refuses one with neither (422)", function()
        local server = server_of(minor)
        local file = os.tmpname()
        later(function() os.remove(file) end)
        local body = { apiVersion = "v1", kind = "Pod",
                       metadata = { generateName = "warm-a-", labels = { pool = "a" } },
                       spec = { containers = { { name = "c", image = "busybox", command = { "sleep", "300" } } } } }
        env.write_file(file, json(body))
        local out = must(server, "create --validate=false -f " .. file)
        local name = out:match("^pod/(warm%-a%-" .. ("[bcdfghjklmnpqrstvwxz2456789]"):rep(5) .. ") created\n$")
        assert.truthy(name, out)
        assert.are.equal(name, selected(server, "pool=a"))
        body.metadata.generateName = nil
        local code, answer = fake.request(server, "POST", "/api/v1/namespaces/echo-sandbox/pods", json(body))
        assert.are.equal(422, code)
        assert.truthy(answer.message:find("name or generateName is required", 1, true), answer.message)
      end)

      it("evicts a running pod as the kubelet does: Failed, Evicted, its container gone", function()
        local server = server_of(minor)
        assert(create(server, "p"))
        ready(server, "p")
        fake.query(server, "/_fake/evict/p", "{}")
        local p = get(server, "p")
        assert.are.equal("Failed", p.status.phase)
        assert.are.equal("Evicted", p.status.reason)
        assert.are.same({}, procs(server))
        must(server, "delete pod p")
        assert.are.same({}, fake.pods(server))
      end)
    end)

    describe("with label selectors", function()
      -- Checked: without the set terms (in, notin) parsed, 400 on them.
      it("selects as the API server does: =, ==, !=, key, !key, in, notin; a bad one is 400", function()
        local server = server_of(minor)
        assert(create(server, "a", "pool=a,state=ready"))
        assert(create(server, "b", "pool=a,state=claimed"))
        assert(create(server, "c", "pool=b,state=ready"))
        assert(create(server, "d", "pool=a"))
        assert.are.equal("a", selected(server, "pool=a,state=ready"))
        assert.are.equal("a", selected(server, "pool==a,state==ready"))
        assert.are.equal("c", selected(server, "pool!=a"))
        assert.are.equal("a b c", selected(server, "state"))
        assert.are.equal("d", selected(server, "!state"))
        assert.are.equal("a b c", selected(server, "state in (ready, claimed)"))
        assert.are.equal("b d", selected(server, "pool=a,state notin (ready)"))
        local ok, out = kubectl(server, "get pods -l 'pool in (a'")
        assert.is_false(ok, out)
        assert.truthy(out:find("unable to parse requirement", 1, true), out)
        must(server, "wait --for=condition=Ready --timeout=60s pod --all")
        assert.are.equal("pod/a\npod/b\npod/c\npod/d\n",
                         must(server, "get pods -o name --field-selector status.phase=Running --sort-by=.metadata.name"))
        ok, out = kubectl(server, "get pods --field-selector no.such=field")
        assert.is_false(ok, out)
        assert.truthy(out:find("field label not supported: no.such", 1, true), out)
      end)

      -- Checked: without the DELETED event for a pod still there, the
      -- watch never hears that the claimed pod left it.
      it("tells a watch that a pod left its selector (DELETED) when its label changes", function()
        local server = server_of(minor)
        assert(create(server, "a", "state=ready"))
        assert(create(server, "b", "state=ready"))
        local file = os.tmpname()
        later(function() os.remove(file) end)
        local p = io.popen(("KUBECONFIG=%s %s get pods -l state=ready --watch --output-watch-events " ..
          "-o jsonpath='{.type} {.object.metadata.name}{\"\\n\"}' >%s 2>&1 & echo $!")
          :format(env.quote(server.kubeconfig), env.quote(env.kubectl(minor)), file))
        local pid = p:read("l")
        p:close()
        later(function()
          os.execute("kill " .. pid .. " 2>/dev/null")
          env.wait_ended(pid)
        end)
        local function seen(line)
          for _ = 1, 1000 do
            if env.read_file(file):find(line, 1, true) then return true end
            env.sleep(0.02)
          end
          return env.read_file(file)
        end
        assert.is_true(seen("ADDED a\n"))
        assert.is_true(seen("ADDED b\n"))
        must(server, "label pod a state=claimed --overwrite")
        assert.is_true(seen("DELETED a\n"))
        assert.is_nil(env.read_file(file):find("DELETED b", 1, true))
      end)
    end)

    describe("with a request log", function()
      -- Checked: without the answers' lines, no codes.
      it("logs each API request in the order it arrived, with its answer's code, between the spec's marks",
        function()
        local server = server_of(minor, "--request-log")
        fake.mark(server, "start")
        assert(create(server, "p", "state=ready"))
        fake.mark(server, "created")
        must(server, "get pods -l state=ready")
        kubectl(server, "label pod p state=x --overwrite --resource-version=1")
        fake.mark(server, "end")
        local log = fake.request_log(server)
        local function creates(entries)
          local n = 0
          for _, e in ipairs(entries) do
            if e.method == "POST" and e.path == "/api/v1/namespaces/echo-sandbox/pods" then
              n = n + 1
              assert.are.equal(201, e.code)
              assert.truthy(e.query:find("fieldManager=kubectl-run", 1, true), e.query)
            end
          end
          return n
        end
        assert.are.equal(1, creates(fake.between(log, "start", "created")))
        local after = fake.between(log, "created", "end")
        assert.are.equal(0, creates(after))
        local list, patch
        for _, e in ipairs(after) do
          if e.method == "GET" and e.path == "/api/v1/namespaces/echo-sandbox/pods" then list = e end
          if e.method == "PATCH" then patch = e end
        end
        assert.are.equal("labelSelector=state%3Dready", list.query:match("labelSelector=[^&]*"))
        assert.are.equal(200, list.code)
        assert.are.equal(409, patch.code)
        for i, e in ipairs(log) do
          assert.is_nil(e.path and e.path:find("^/_fake/"), e.path)
          if i > 1 then assert.is_true(e.seq > log[i - 1].seq and e.t >= log[i - 1].t) end
        end
      end)
    end)

    describe("with a quota of pods", function()
      -- Checked: without warm_quota_refused, the third create passes.
      it("refuses a create past --quota-pods (403 exceeded quota) and counts the pods that have not ended",
        function()
        local server = server_of(minor, "--quota-pods 2")
        assert(create(server, "a"))
        assert(create(server, "b"))
        local ok, out = create(server, "c")
        assert.is_false(ok, out)
        assert.truthy(out:find('pods "c" is forbidden: exceeded quota: echo-sandbox-pods, requested: pods=1, '
          .. "used: pods=2, limited: pods=2", 1, true), out)
        local quota = cjson.decode(must(server, "get resourcequota -o json")).items[1]
        assert.are.same({ hard = { pods = "2" }, used = { pods = "2" } }, quota.status)
        fake.query(server, "/_fake/evict/a", "{}")
        assert(create(server, "c"))
        fake.query(server, "/_fake/quota-pods/-1", "{}")
        assert(create(server, "d"))
        assert.are.same({}, cjson.decode(must(server, "get resourcequota -o json")).items)
      end)
    end)
  end)
end)
