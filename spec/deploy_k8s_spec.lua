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
      assert.are.equal(10, created, out)
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
    end)
  end)

  it("serves the policy it ships: every request goes to the k8s backend", function()
    local ok, out = env.sh(env.quote(env.cli) .. " policy explain --json --policy deploy/policy.lua -- true")
    assert(ok, out)
    assert.are.equal("k8s", cjson.decode(out).backend)
  end)
end)
