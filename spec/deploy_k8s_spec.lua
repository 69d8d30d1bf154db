-- The Kubernetes base (deploy/kustomization.yaml): built offline with
-- kubectl kustomize, applied with --dry-run=client against the fake API
-- server, and what it holds.
local env = require "spec.support.env"
local fake = require "spec.support.fake_kube"
local cjson = require "cjson"

-- the newest kubectl of the matrix, against a server of its minor
local minor = env.newest_kubectl()

local function find(objects, kind, name)
  for _, o in ipairs(objects) do
    if o.kind == kind and o.metadata.name == name then return o end
  end
end

-- The network by name: the pods of a run with an allow list carry the
-- label the plan sets, which one NetworkPolicy selects to let them reach
-- the egress proxy's pods on its port and nothing else (no DNS); the
-- proxy's Deployment has the labels that policy names.
-- Checked: with k8s_pod.lua labelling such pods "none", the labels
-- differed; with a DNS rule added to egress.yaml's policy, the rule count
-- and the port check failed.
local function check_egress(objects)
  local key = os.tmpname()
  local file = env.policy_file(('policy.egress.k8s = { proxy = "http://10.96.0.10:3128", key_file = %q }')
                               :format(key))
  local ok, out = env.sh(("%s policy explain --json --policy %s --backend k8s --allow-host pypi.org -- true")
                         :format(env.quote(env.cli), file))
  os.remove(file)
  os.remove(key)
  assert(ok, out)
  local label = cjson.decode(out).k8s.overrides.metadata.labels["echo-sandbox.io/network"]
  assert.are.equal("egress", label)
  local only = find(objects, "NetworkPolicy", "echo-sandbox-egress-only-proxy")
  assert.are.equal(label, only.spec.podSelector.matchLabels["echo-sandbox.io/network"])
  assert.are.same({ "Egress" }, only.spec.policyTypes)
  assert.are.equal(1, #only.spec.egress)
  local rule = only.spec.egress[1]
  assert.are.same({ { protocol = "TCP", port = 3128 } }, rule.ports)
  assert.are.equal(1, #rule.to)
  assert.is_nil(rule.to[1].ipBlock)
  assert.is_nil(rule.to[1].namespaceSelector)
  local proxy = find(objects, "Deployment", "echo-sandbox-egress")
  local labels = proxy.spec.template.metadata.labels
  for k, v in pairs(rule.to[1].podSelector.matchLabels) do assert.are.equal(v, labels[k], k) end
  local c = proxy.spec.template.spec.containers[1]
  assert.are.same({ "echo-sandbox-egress", "serve", "--listen", "0.0.0.0:3128" }, { table.unpack(c.args, 1, 4) })
  assert.are.equal(3128, c.ports[1].containerPort)
  local svc = find(objects, "Service", "echo-sandbox-egress")
  assert.are.same(proxy.spec.selector.matchLabels, svc.spec.selector)
  -- the default deny keeps their ingress shut: it selects them too
  local deny = find(objects, "NetworkPolicy", "echo-sandbox-default-deny")
  for k, v in pairs(deny.spec.podSelector.matchLabels) do
    assert.are.equal(v, only.spec.podSelector.matchLabels[k], k)
  end
end

describe("the Kubernetes base", function()
  env.check_leaks() -- in this outer block, so it runs after the server is stopped

  describe("on a fake API server", function()
    local fixture = minor and fake.per_spec(minor)

    it("builds with kubectl kustomize and applies (dry run) against an API server", function()
      local kubectl = assert(env.kubectl(minor))
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir " .. dir))
      finally(function() os.execute("rm -rf " .. dir) end)
      local ok, out = env.sh(("%s kustomize deploy/ > %s/base.yaml"):format(env.quote(kubectl), dir))
      assert(ok, out)
      ok, out = env.sh(("%s %s apply --dry-run=client --validate=false -f %s/base.yaml")
                       :format(fixture.server.env, env.quote(kubectl), dir))
      assert(ok, out)
      local created = select(2, out:gsub("created %(dry run%)", ""))
      assert.are.equal(14, created, out)
      ok, out = env.sh(("%s %s apply --dry-run=client --validate=false -o json -f %s/base.yaml")
                       :format(fixture.server.env, env.quote(kubectl), dir))
      assert(ok, out)
      local objects = cjson.decode(out).items
      for _, o in ipairs(objects) do
        assert.are.equal("echo-sandbox", o.metadata.labels["app.kubernetes.io/name"], o.kind .. " " .. o.metadata.name)
      end

      local ns = find(objects, "Namespace", "echo-sandbox")
      assert.are.equal("restricted", ns.metadata.labels["pod-security.kubernetes.io/enforce"])

      local deny = find(objects, "NetworkPolicy", "echo-sandbox-default-deny")
      assert.are.same({ ["app.kubernetes.io/managed-by"] = "echo-sandbox" }, deny.spec.podSelector.matchLabels)
      assert.are.same({ "Ingress", "Egress" }, deny.spec.policyTypes)
      assert.is_nil(next(deny.spec.egress or {}))
      local egress = find(objects, "NetworkPolicy", "echo-sandbox-network-egress")
      assert.are.equal("DoesNotExist", egress.spec.podSelector.matchExpressions[1].operator)
      local except = table.concat(egress.spec.egress[2].to[1].ipBlock.except, " ")
      for _, range in ipairs { "169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16" } do
        assert.truthy(except:find(range, 1, true), range)
      end
      assert.are.equal(53, egress.spec.egress[1].ports[1].port)

      local server = find(objects, "Deployment", "echo-sandbox-server")
      local c = server.spec.template.spec.containers[1]
      assert.are.equal("/readyz", c.readinessProbe.httpGet.path)
      assert.are.equal("/healthz", c.livenessProbe.httpGet.path)
      assert.truthy(table.concat(c.args, " "):find("--public-probes", 1, true))
      assert.is_true(c.securityContext.readOnlyRootFilesystem)
      assert.is_true(server.spec.template.spec.securityContext.runAsNonRoot)
      -- the server's pods are not sandbox pods: cleanup and the policies leave them alone
      assert.is_nil(server.spec.template.metadata.labels["app.kubernetes.io/managed-by"])
      local svc = find(objects, "Service", "echo-sandbox")
      assert.are.same(server.spec.selector.matchLabels, svc.spec.selector)
      local policy = nil
      for _, o in ipairs(objects) do
        if o.kind == "ConfigMap" and o.metadata.name:find("^echo%-sandbox%-policy") then policy = o end
      end
      assert.truthy(policy and policy.data["policy.lua"]:find('policy.backend = "k8s"', 1, true))
      check_egress(objects)
    end)
  end)

  it("serves the policy it ships: every request goes to the k8s backend", function()
    local ok, out = env.sh(env.quote(env.cli) .. " policy explain --json --policy deploy/policy.lua -- true")
    assert(ok, out)
    assert.are.equal("k8s", cjson.decode(out).backend)
  end)
end)
