-- The default echo-sandbox policy, as a module that site policies extend:
--
--   local policy = require "echo_sandbox.policy.default"
--   policy.languages.python.image = "registry.example.com/python:3.12"
--   policy.k8s.namespace = "sandboxes"
--   return policy
--
-- THE CONTRACT. A policy file returns a table; the engine calls its hooks as
-- methods (policy:plan(req)). The engine calls plan for each request,
-- session (below) for each session it is asked to make, and cluster
-- (below) for the operator commands (doctor, cleanup); the
-- default plan is made of the hooks image_for, argv_for, env_for, limits_for,
-- local_for, fallback_for, k8s_for (made of resources_for, namespace_for and pod_for),
-- there to be replaced one by one, and of the data tables below them.
--
-- req, the request as the hooks see it: shell | program + args | language +
-- code, env, labels (maps of strings), limits (memory_bytes, cpu_time_secs,
-- cpu_millicores, max_output_bytes, max_processes, network; each only when
-- the request gave it; the request's `cpu` in cores arrives as millicores), timeout_ms, working_dir, backend ("auto" | "local" | "k8s") and
-- stdin_bytes (the size of stdin, when there is one) instead of stdin.
--
-- plan(req) returns a table, or nil and a message that rejects the request
-- as invalid_request; these fields only (src/policy/plan_fields.def), in it
-- and in its local and k8s: any other is an error that names it:
--   backend        "local" or "k8s"
--   fallback       "local" or nil, with backend "k8s": when the cluster does
--                  not answer, run on the local backend instead (the result's
--                  fallback says why); nil: never, the run fails as the
--                  cluster does
--   argv           array of strings: the program and its arguments
--   env            map NAME -> value: the program's whole environment (the
--                  local backend adds HOME = the working dir unless set)
--   working_dir    string or nil: a path inside the sandbox (local: a tmpfs of
--                  its own there; nil = local.working_dir)
--   timeout_ms     positive integer, the wall-clock deadline
--   kill_grace_ms  time between SIGTERM and SIGKILL at the deadline
--   code_file      a path relative to the working dir, or nil: the backend
--                  writes the request's code there (argv runs it)
--   max_code_bytes the most code a request may give; nil: 8 MiB
--   files          the ceilings of the request's files (written into the
--                  working dir before the program starts): max_count,
--                  max_bytes (all of them together); nil: 256 and 8 MiB
--   collect        the ceilings of the files the request's `collect`
--                  patterns bring back: max_count, max_file_bytes (the rest
--                  of a file is cut), max_bytes (all together); nil: 64,
--                  4 MiB and 16 MiB
--   max_stream_bytes  the most of a run's output (stdout and stderr
--                  together) that live output events carry (batch --events,
--                  POST /v1/run?stream=1); nil: 64 MiB. The result keeps
--                  limits.max_output_bytes per stream apart from it
--   limits         memory_bytes, cpu_time_secs, cpu_millicores (the CPU
--                  rate: 500 is half a core), max_output_bytes,
--                  max_processes (integers) and network (boolean)
--   clamped        array of strings or nil: what of the request was lowered
--                  to the policy's ceilings (policy explain shows it)
--   local          settings of the local sandbox: uid, gid (never 0),
--                  uid_range ({ first, count } of host uids, one per live
--                  run, or false),
--                  isolation ("namespaces" | "best_effort" | "rlimits"),
--                  cgroups (boolean: memory, pids and CPU limits by cgroup
--                  where the host allows), seccomp ("default" | "strict" | "none":
--                  the program's system-call filter, engine/sandbox/seccomp.h),
--                  tmp_size_bytes (/tmp, /dev/shm), workdir_size_bytes,
--                  working_dir (the default working dir's path inside),
--                  mounts (the host paths of the sandbox's root: an array
--                  of paths, or of { host = ..., path = ..., writable =
--                  true }), file_size_bytes, open_files, network_allow
--                  (with the network: address ranges reachable though
--                  private, e.g. { "10.1.0.0/16" }; echo-sandbox-policy(5))
--   k8s            only in a plan bound for Kubernetes (its backend is k8s,
--                  or the request asked for k8s); nil in a local plan, which
--                  has no use for it (building the pod costs more than the
--                  rest of the plan):
--                  image (string), namespace (a DNS-1123 label), handshake
--                  (boolean: the container waits for a line on stdin before
--                  it execs argv; needs a shell in the image), pod (the pod
--                  override table, applied with a strategic merge patch:
--                  spec.containers[1] is the program's container),
--                  pod_running_timeout (kubectl's, lowered to the deadline),
--                  delete_timeout_ms (how long deleting the pod may take),
--                  unschedulable_grace_ms (how long the pod may stay
--                  unschedulable before the run ends), not_ready_grace_ms
--                  (how long a running pod may be not ready, its program
--                  silent, before the run ends), context and kubeconfig
--                  (kubectl's --context/--kubeconfig, when set)
--
-- Whatever plan returns, the engine owns: the pod name (also the container's
-- name), the labels app.kubernetes.io/managed-by, echo-sandbox.io/instance
-- and echo-sandbox.io/network, the annotation echo-sandbox.io/expires-at, and
-- activeDeadlineSeconds, which is lowered to the request's deadline when
-- larger, terminationGracePeriodSeconds (kill_grace_ms rounded up to a
-- second) and restartPolicy (Never). The engine overwrites these; it does
-- not fail the request.
--
-- Hooks run under an instruction budget and a memory cap; the policy VM has
-- the base, string, table, math and utf8 libraries, cjson and the modules in
-- lua/echo_sandbox (quantity, merge, this one). print goes to stderr.

local quantity = require "echo_sandbox.quantity"

local policy = {}

local Mi = 1024 * 1024

-- language -> image (k8s) and how the code runs. Where code_file_for says
-- (a language with `file` and `run`; on k8s only with the handshake, whose
-- shell writes the file in the pod), the code is written
-- to `file` in the working dir and argv is `run`, the file, then the
-- request's args. Elsewhere argv is `command`, the code as one argument
-- (less what the pattern `strip` matches, when given), then the args.
policy.languages = {
  python = { image = "python:3.12-slim", command = { "python3", "-c" }, file = "main.py", run = { "python3" } },
  python3 = { image = "python:3.12-slim", command = { "python3", "-c" }, file = "main.py", run = { "python3" } },
  node = { image = "node:20-slim", command = { "node", "-e" }, file = "main.js", run = { "node" } },
  javascript = { image = "node:20-slim", command = { "node", "-e" }, file = "main.js", run = { "node" } },
  ruby = { image = "ruby:3.3-slim", command = { "ruby", "-e" }, file = "main.rb", run = { "ruby" } },
  perl = { image = "perl:5-slim", command = { "perl", "-e" }, file = "main.pl", run = { "perl" } },
  -- php -r takes code without its opening tag: a leading "<?php" goes.
  php = { image = "php:8.3-cli", command = { "php", "-r" }, strip = "^%s*<%?php%f[^%w]" },
  lua = { image = "nickblah/lua:5.4", command = { "lua5.4", "-e" }, file = "main.lua", run = { "lua5.4" } },
  sh = { image = "debian:12-slim", command = { "sh", "-c" }, file = "main.sh", run = { "sh" } },
  bash = { image = "bash:5", command = { "bash", "-c" }, file = "main.sh", run = { "bash" } },
}

-- Image of a tool named by a shell command's first word or a program's
-- basename, when the language table has no entry of that name.
policy.tool_images = {
  python = "python:3.12-slim", python3 = "python:3.12-slim", pip = "python:3.12-slim",
  node = "node:20-slim", npm = "node:20-slim", npx = "node:20-slim",
  ruby = "ruby:3.3-slim", gem = "ruby:3.3-slim", perl = "perl:5-slim", php = "php:8.3-cli",
  go = "golang:1.22", java = "eclipse-temurin:21", rustc = "rust:1", cargo = "rust:1",
  gcc = "gcc:13", make = "gcc:13", git = "alpine/git:latest",
}

policy.default_image = "debian:12-slim"

-- Used for every limit the request leaves out.
policy.defaults = {
  timeout_ms = 30000,
  kill_grace_ms = 200,
  limits = {
    memory_bytes = 256 * Mi,
    cpu_time_secs = 30,
    cpu_millicores = 1000,
    max_output_bytes = 1 * Mi,
    max_processes = 64,
    network = false,
  },
}

-- The most a request may ask, on either backend: a request that asks more
-- gets the ceiling, and `policy explain` says so. An operator raises or
-- lowers them here; a request never can.
policy.ceilings = {
  timeout_ms = 10 * 60 * 1000,
  limits = {
    memory_bytes = 4 * 1024 * Mi,
    cpu_time_secs = 300,
    cpu_millicores = 4000,
    max_output_bytes = 64 * Mi,
    max_processes = 1024,
  },
}

-- The network by name: a request's limits.network = { allow = { "pypi.org",
-- "*.pythonhosted.org", "api.github.com:443" } } gives the program a network
-- of loopback only, where the engine's egress proxy (HTTP_PROXY and
-- HTTPS_PROXY point there) lets it reach those hosts, by name, at public
-- addresses only (local_sandbox.network_allow names private ranges it may
-- reach all the same); the result's egress lists every attempt.
--   may_ask  what a request's list may name: each of its entries must be
--            within one of these ("*.example.com" holds "a.example.com" and
--            "*.a.example.com"; without a port, any port); nil: any host
--   always   entries added to every run's list (nil: none)
--   deny     hosts refused whatever the lists say (nil: none)
--   inject   credentials the proxy adds outside the sandbox, by host:
--            { ["api.github.com"] = { header = "Authorization",
--            secret = "github" } } (doc/network.md); nil: none
--   secrets  where each secret's value is: { github = "/etc/echo-sandbox/
--            secrets/github" }, a file the engine reads when a run starts
--            (its whole content, less a final newline, is the header's
--            value); the policy never sees the value
--   upstream_ca  the PEM file the proxy verifies an injected host's
--            certificate against (nil: the host's trust store)
--   addresses  whether a request's list may name addresses and ranges
--            ("203.0.113.5", "203.0.113.0/24", "[2001:db8::]/32", any with
--            ":PORT"): they let the program connect by address, without a
--            name (private, loopback, link-local and metadata addresses stay
--            refused); false: names only. may_ask and always may hold them
--            either way, as the operator writes them
--   hosts_file  a hosts(5) file whose names the local proxy resolves from
--            first, reading it itself (no NSS: /etc/nsswitch.conf and
--            /etc/hosts play no part); nil: none (on k8s, the proxy's
--            --hosts-file)
--   k8s      the k8s backend's shared egress proxy (deploy/egress.yaml;
--            nil: a k8s run with a list is refused): { proxy =
--            "http://echo-sandbox-egress.echo-sandbox.svc:3128", key_file =
--            the tokens' key (the Secret both share), ca_file = the proxy's
--            CA certificate (with inject), grace_s = how long a run's token
--            outlives its deadline (60) }. There the proxy holds the
--            secrets (its --secret NAME=FILE): a run's token names them.
-- policy explain shows the list a request gets.
policy.egress = {
  addresses = false,
  may_ask = nil,
  always = nil,
  deny = nil,
  inject = nil,
  secrets = nil,
  upstream_ca = nil,
  hosts_file = nil,
  k8s = nil,
}

-- Sessions (echo-sandbox session create): a request's ttl_ms and
-- idle_timeout_ms, or these defaults, each at most its ceiling (a request
-- that asks more gets the ceiling, and a note says so); the session's
-- limits as a run's (defaults, and ceilings.limits: the runs' own unless
-- set apart here; lower only, as the plan of the session's sandbox keeps
-- to the runs' ceilings as well). tenant_label: the label whose value names a session's
-- tenant, of whom at most max_per_tenant sessions live at once (sessions
-- without the label are one tenant together; nil: no such limit; labels
-- are the requester's word, so this shares a host out fairly among
-- tenants a front end labels, it is no authentication). kernels: the
-- languages whose cells have a kernel in a session.
policy.sessions = {
  ttl_ms = 10 * 60 * 1000,
  idle_timeout_ms = 2 * 60 * 1000,
  ceilings = {
    ttl_ms = 60 * 60 * 1000,
    idle_timeout_ms = 60 * 60 * 1000,
    limits = nil,               -- nil: policy.ceilings.limits
  },
  tenant_label = "tenant",
  max_per_tenant = 8,
  kernels = { "python", "node" },
}

-- The request's code: at most this many bytes. On the local backend it is
-- written to a file of the working dir (languages[...].file), so nothing of
-- it is on a command line; elsewhere it still goes into argv.
policy.code = {
  max_bytes = 8 * Mi,
}

-- The request's files (its `files`, written into the working dir before the
-- program starts): how many, and how many bytes all together, at most.
policy.files = {
  max_count = 256,
  max_bytes = 8 * Mi,
}

-- The files a request's `collect` patterns bring back in the result (its
-- `files`): how many, how many bytes of one (the rest is cut, `truncated`),
-- and how many bytes of all together.
policy.collect = {
  max_count = 64,
  max_file_bytes = 4 * Mi,
  max_bytes = 16 * Mi,
}

-- Live output (batch --events, the daemon's ?stream=1): the most of a run's
-- output, both streams together, that its output events carry. What the
-- result keeps is limits.max_output_bytes per stream, apart from this.
policy.streams = {
  max_bytes = 64 * Mi,
}

-- Kubernetes resources: requests are fixed, limits follow the request's
-- limits (memory_bytes, cpu_millicores; cpu_time_secs is a time, not a
-- rate) when it gives them, else these, and are never below the requests.
-- No hidden multipliers. The defaults match defaults.limits, so a request
-- gets the same on both backends.
policy.resources = {
  cpu_request = "100m", cpu_limit = "1",
  memory_request = "64Mi", memory_limit = "256Mi",
  -- the node's disk: the writable places below count against it
  ephemeral_storage_request = "64Mi", ephemeral_storage_limit = "512Mi",
}

-- The program's environment before the request's env is laid over it.
policy.env = {
  PATH = "/usr/local/bin:/usr/bin:/bin",
  LANG = "C.UTF-8",
  TMPDIR = "/tmp",
}

policy.local_sandbox = {
  uid = 65534,                 -- nobody: what the program runs as when we are root
  gid = 65534,                 --   (inside its user namespace, with uid_range)
  -- When we are root, each live run has a host uid (and gid, the same
  --   number) of its own from this range, as /etc/subuid gives ranges:
  --   its user namespace maps uid/gid to it and is made as it, so what the
  --   program charges to a per-user kernel counter (inotify, message
  --   queues, processes) is charged to its own uid, never to root's or a
  --   neighbour's, and runs cannot signal each other (isolation "rlimits"
  --   too: the program runs as that uid). The default lies in what
  --   systemd leaves unused (1879048192...2147352575: above the container
  --   ranges of systemd-nspawn and the subuid ranges useradd gives): no
  --   user of the host and no other tool's range may hold these uids.
  --   A run that finds every uid held fails at once with an error that
  --   says so. false: every run runs as uid/gid on the host.
  uid_range = { first = 1879048192, count = 65536 },
  -- "namespaces": user, mount, pid, ipc, uts (+ net unless network) and rlimits;
  --   an error where the host refuses namespaces.
  -- "best_effort": the same, or rlimits only where refused (the result says so).
  -- "rlimits": rlimits (and uid/gid when root) only, for hosts that are a
  --   sandbox already, or tools that cannot follow namespaces (valgrind).
  isolation = "namespaces",
  -- true: where the engine may make cgroups (v1 or v2: memory, pids, cpu;
  --   see doc/local-sandbox.md's table), the memory limit is a cgroup's, which counts
  --   what the program uses, an OOM kill is reported as status oom_killed,
  --   cpu_millicores caps the CPU rate and cpu_time_secs the CPU time of
  --   the whole run (all its processes together: reason CpuTimeExceeded);
  --   elsewhere, and with false, the memory limit is RLIMIT_AS, which counts
  --   the address space it reserves (V8 and the JVM reserve far more than
  --   they use: node needs --memory 1Gi then), there is no CPU rate limit,
  --   and cpu_time_secs holds each process on its own (RLIMIT_CPU; the
  --   result's warnings say so).
  cgroups = true,
  -- The system-call filter, installed last before the program starts:
  --   "default": namespaces, the mount API, keyrings, bpf, perf_event_open,
  --     userfaultfd, io_uring, module and kexec loading, clock setting,
  --     TIOCSTI ... fail with EPERM; other ABIs (i386, x32) are killed.
  --   "strict": also ptrace, process_vm_*, and sockets other than unix,
  --     IPv4 and IPv6.
  --   "none": no filter (the namespaces and limits stay).
  seccomp = "default",
  tmp_size_bytes = 64 * Mi,     -- /tmp and /dev/shm, each
  -- The working dir: a tmpfs of its own at this path (or the request's
  -- working_dir, a path inside the sandbox), of this size or the run's
  -- memory limit if smaller; it lives and dies with the sandbox.
  working_dir = "/work",
  workdir_size_bytes = 256 * Mi,
  -- What the program sees of the host: these paths only, read-only (a
  -- table { host = "/srv/data", path = "/data", writable = true } for
  -- another place or writable), plus a generated /etc/passwd, group and
  -- hosts, a fresh /dev, its own /proc, /tmp and working dir. A path the
  -- host lacks is left out. No /home, /root, /var, /run, /srv, /opt, /mnt,
  -- /media, /boot or /sys unless named here.
  mounts = {
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
    "/etc/ssl", "/etc/ca-certificates", "/etc/localtime", "/etc/timezone", "/etc/nsswitch.conf",
    "/etc/mime.types", "/etc/os-release", "/etc/debian_version",
    "/etc/python3", "/etc/python3.11", "/etc/perl", "/etc/php", "/etc/ruby",
  },
  file_size_bytes = 64 * Mi,
  open_files = 256,
  -- With the network on, the program reaches the internet but not the
  -- host's own addresses, nor private, link-local, unique-local or metadata
  -- ranges (10/8, 169.254/16, fc00::/7, ...; policy explain lists them).
  -- Ranges named here are reachable all the same (the host's own addresses
  -- in them are not), e.g. { "10.1.0.0/16", "fd12:3456::/32" }.
  network_allow = nil,
}

policy.k8s = {
  namespace = "echo-sandbox",
  service_account = nil,       -- serviceAccountName, when set
  node_selector = nil,         -- map, when set
  tolerations = nil,           -- array, when set
  handshake = true,
  run_as_user = 65534,
  pod_running_timeout = "2m",  -- kubectl run --pod-running-timeout (lowered to the request's deadline)
  unschedulable_grace_ms = 15000, -- how long a pod may stay unschedulable before the run ends
  not_ready_grace_ms = 15000,  -- how long a running pod may be not ready (its node lost?) with a silent program
  delete_timeout_ms = 10000,   -- how long deleting the pod may take before the run gives up on it
  context = nil,               -- kubectl --context, when set
  kubeconfig = nil,            -- kubectl --kubeconfig, when set (else $KUBECONFIG)
}

-- "auto" requests go to this backend.
policy.backend = "local"

-- With backend "k8s": nil, requests run on the cluster or fail with it;
-- "local", requests that name no backend run on this machine's sandbox
-- when the cluster does not answer (the result's `fallback` says so).
policy.fallback = nil

local function known(t)
  local names = {}
  for name in pairs(t) do names[#names + 1] = name end
  table.sort(names)
  return table.concat(names, ", ")
end

local function basename(path)
  return path:match("([^/\\]+)$") or path
end

-- The image, by the seed's precedence. The name to look up: code -> its
-- language; shell -> its first word, except that a first word with a path
-- in it ("/" or "\") goes straight to default_image; program -> its
-- basename. A name is looked up in the language table, then in tool_images,
-- else default_image.
function policy:image_for(req)
  local name
  if req.code then
    name = req.language
  elseif req.shell then
    name = req.shell:match("^%s*(%S+)")
    if not name or name:find("[/\\]") then return self.default_image end
  else
    name = basename(req.program)
  end
  local lang = self.languages[name]
  return lang and lang.image or self.tool_images[name] or self.default_image
end

-- The file a language's code goes into on this backend, or nil: the code
-- then goes into argv (`command` and the code). The k8s backend writes
-- files through its handshake's shell, so not without it; php keeps
-- `php -r` (its files need an opening tag).
function policy:code_file_for(req, backend)
  local lang = req.code and self.languages[req.language]
  if lang and lang.file and lang.run and (backend == "local" or backend == "k8s" and self.k8s.handshake) then
    return lang.file
  end
end

-- Whether a request planned for backend may run locally instead, when the
-- cluster does not answer: policy.fallback for a request that named no
-- backend; never for one that asked for k8s.
function policy:fallback_for(req, backend)
  if backend == "k8s" and req.backend ~= "k8s" then return self.fallback end
end

-- code_file: where code_file_for put the code (the argv runs it), or nil.
function policy:argv_for(req, code_file)
  local argv
  if req.shell then
    return { "/bin/sh", "-c", req.shell }
  elseif req.program then
    argv = { req.program }
  else
    local lang = self.languages[req.language]
    if not lang then
      return nil, ("unknown language %q (known: %s)"):format(req.language, known(self.languages))
    end
    if code_file then
      argv = table.move(lang.run, 1, #lang.run, 1, {})
      argv[#argv + 1] = code_file
    else
      argv = table.move(lang.command, 1, #lang.command, 1, {})
      argv[#argv + 1] = lang.strip and req.code:gsub(lang.strip, "", 1) or req.code
    end
  end
  local args = req.args or {}
  return table.move(args, 1, #args, #argv + 1, argv)
end

function policy:env_for(req)
  local env = {}
  for k, v in pairs(self.env) do env[k] = v end
  for k, v in pairs(req.env or {}) do env[k] = v end
  return env
end

-- value, or the ceiling when value is above it; and a note saying so.
local function clamp(name, value, ceiling)
  if ceiling and value > ceiling then
    return ceiling, ("%s %d lowered to the policy's ceiling %d"):format(name, value, ceiling)
  end
  return value
end

-- The limits asked within ceilings (a table, or nil), else the defaults;
-- and the notes of what was lowered (an array, maybe empty), sorted.
local function bounded_limits(asked, defaults, ceilings)
  local limits, clamped = {}, {}
  for k, v in pairs(defaults) do limits[k] = v end
  ceilings = ceilings or {}
  for k, v in pairs(asked or {}) do
    local note
    if math.type(v) == "integer" then v, note = clamp(k, v, ceilings[k]) end
    limits[k] = v
    clamped[#clamped + 1] = note
  end
  table.sort(clamped)
  return limits, clamped
end

-- The limits: the request's within self.ceilings, else the defaults. Also
-- returns the notes of what was lowered (an array, maybe empty).
function policy:limits_for(req)
  return bounded_limits(req.limits, self.defaults.limits, self.ceilings and self.ceilings.limits)
end

-- self.resources[name] as a number, or an error that names it.
local function resource(self, name)
  local v, err = quantity.parse(self.resources[name])
  if not v then error(("policy.resources.%s: %s"):format(name, err), 3) end
  return v
end

-- requests/limits as Kubernetes quantities. limits: what limits_for made of
-- the request's limits (so a policy that caps them caps the pod as well).
function policy:resources_for(req, limits)
  local asked = req.limits or {}
  local memory_limit = asked.memory_bytes and limits.memory_bytes or resource(self, "memory_limit")
  local memory_request = math.min(resource(self, "memory_request"), memory_limit)
  local cpu_limit = asked.cpu_millicores and limits.cpu_millicores / 1000 or resource(self, "cpu_limit")
  local cpu_request = math.min(resource(self, "cpu_request"), cpu_limit)
  local storage_limit = resource(self, "ephemeral_storage_limit")
  local storage_request = math.min(resource(self, "ephemeral_storage_request"), storage_limit)
  return {
    requests = { cpu = quantity.format_cpu(cpu_request), memory = quantity.format_memory(memory_request),
                 ["ephemeral-storage"] = quantity.format_memory(storage_request) },
    limits = { cpu = quantity.format_cpu(cpu_limit), memory = quantity.format_memory(memory_limit),
               ["ephemeral-storage"] = quantity.format_memory(storage_limit) },
  }
end

function policy:namespace_for(req)
  return self.k8s.namespace
end

-- The pod override: Pod Security Standards "restricted", a read-only root
-- file system with an emptyDir /tmp and working dir (local_sandbox's sizes;
-- the program starts in the working dir), the resources, and the scheduling
-- settings of self.k8s.
function policy:pod_for(req, resources)
  local k = self.k8s
  local uid = k.run_as_user
  local workdir = req.working_dir or self.local_sandbox.working_dir
  local ls = self.local_sandbox
  local pod = {
    spec = {
      automountServiceAccountToken = false,
      enableServiceLinks = false,
      securityContext = {
        runAsNonRoot = true, runAsUser = uid, runAsGroup = uid, fsGroup = uid,
        seccompProfile = { type = "RuntimeDefault" },
      },
      containers = { {
        resources = resources,
        securityContext = {
          allowPrivilegeEscalation = false,
          capabilities = { drop = { "ALL" } },
          runAsNonRoot = true, runAsUser = uid,
          readOnlyRootFilesystem = true,
        },
        workingDir = workdir,
        volumeMounts = {
          { name = "tmp", mountPath = "/tmp" },
          workdir ~= "/tmp" and { name = "work", mountPath = workdir } or nil,
        },
      } },
      volumes = {
        { name = "tmp", emptyDir = { sizeLimit = quantity.format_memory(ls.tmp_size_bytes) } },
        { name = "work", emptyDir = { sizeLimit = quantity.format_memory(ls.workdir_size_bytes) } },
      },
    },
  }
  pod.spec.serviceAccountName = k.service_account
  pod.spec.nodeSelector = k.node_selector
  pod.spec.tolerations = k.tolerations
  return pod
end

-- The local sandbox's settings for this request: local_sandbox, with the
-- working dir no larger than the memory limit, and the host's resolver
-- configuration when the network is on.
function policy:local_for(req, limits)
  local settings = {}
  for k, v in pairs(self.local_sandbox) do settings[k] = v end
  settings.workdir_size_bytes = math.min(settings.workdir_size_bytes, limits.memory_bytes)
  if limits.network then
    settings.mounts = table.move(settings.mounts, 1, #settings.mounts, 1, {})
    settings.mounts[#settings.mounts + 1] = "/etc/resolv.conf"
  end
  return settings
end

-- An allow-list entry's host (lower case) and port (nil: any).
local function split_entry(entry)
  local host, port = entry:match("^(.-):(%d+)$")
  if host and host:find("^%[") and not host:find("%]") then host = nil end -- "[::1]": no port
  return (host or entry):lower(), tonumber(port)
end

-- An address entry's host ("203.0.113.0/24", "[2001:db8::]/32") as the
-- bits an address within it starts with ("0" and "1", after "4" or "6"
-- for its family); nil for a name. The engine checked the grammar
-- (engine/contract/egress.h); an IPv4 address mapped into IPv6 is the
-- IPv4 one there, and here.
local function address_bits(host)
  local v6, rest = host:match("^%[([^%]]*)%](.*)$")
  local text = v6 or host:match("^([%d%.]+)") or ""
  rest = rest or host:sub(#text + 1)
  if not v6 and not host:match("^[%d%./]+$") then return nil end
  local bytes = {}
  if v6 then
    local head, tail = text:match("^(.-)::(.*)$")
    local function groups(s, into)
      for g in s:gmatch("[^:]+") do
        if g:find("%.") then
          for b in g:gmatch("%d+") do into[#into + 1] = tonumber(b) end
        else
          local n = tonumber(g, 16) or 0
          into[#into + 1], into[#into + 2] = n // 256, n % 256
        end
      end
      return into
    end
    local front, back = groups(head or text, {}), groups(tail or "", {})
    for i = 1, 16 - #front - #back do front[#front + 1] = 0 end
    table.move(back, 1, #back, #front + 1, front)
    bytes = front
  else
    for b in text:gmatch("%d+") do bytes[#bytes + 1] = tonumber(b) end
  end
  local bits = {}
  for _, b in ipairs(bytes) do
    for k = 7, 0, -1 do bits[#bits + 1] = (b >> k) & 1 end
  end
  local prefix = tonumber(rest:match("^/(%d+)$")) or #bits
  local s = table.concat(bits, "", 1, prefix)
  if #bits == 128 and prefix >= 96 and s:sub(1, 96) == ("0"):rep(80) .. ("1"):rep(16) then
    return "4" .. s:sub(97)
  end
  return (#bits == 32 and "4" or "6") .. s
end

-- Whether the entry inner names only hosts (and ports) that outer names.
local function entry_within(inner, outer)
  local ih, ip = split_entry(inner)
  local oh, op = split_entry(outer)
  if op and ip ~= op then return false end
  local ia, oa = address_bits(ih), address_bits(oh)
  if ia or oa then -- an address or a range within a range: its first bits are the range's
    return ia ~= nil and oa ~= nil and ia:sub(1, #oa) == oa
  end
  if oh:sub(1, 2) == "*." then
    local suffix = oh:sub(2) -- ".example.com": below it, "*." entries too
    return #ih > #suffix and ih:sub(-#suffix) == suffix
  end
  return ih == oh
end

-- The plan's egress for a request with limits.network = { allow = ... }:
-- the request's entries, each within self.egress.may_ask (a request
-- narrows the policy's list, never widens it: an entry outside it rejects
-- the request, naming it), then self.egress.always; deny as the policy
-- has it.
function policy:egress_for(req)
  local e = self.egress or {}
  local allow = {}
  for i, entry in ipairs(req.limits.network.allow) do
    if not e.addresses and address_bits(split_entry(entry)) then
      return nil, ("limits.network.allow[%d] (%q) is an address or a range, which this policy does not let a "
        .. "request name (egress.addresses)"):format(i, entry)
    end
    local within = e.may_ask == nil
    for _, outer in ipairs(e.may_ask or {}) do within = within or entry_within(entry, outer) end
    if not within then
      return nil, ("limits.network.allow[%d] (%q) is not within the policy's list (%s)"):format(
        i, entry, table.concat(e.may_ask, ", "))
    end
    allow[#allow + 1] = entry
  end
  for _, entry in ipairs(e.always or {}) do allow[#allow + 1] = entry end
  return { allow = allow, deny = e.deny or {}, inject = e.inject, secrets = e.secrets, upstream_ca = e.upstream_ca,
           hosts_file = e.hosts_file, k8s = e.k8s }
end

-- The cluster the operator commands (doctor, cleanup) talk to, for no
-- request in particular: kubectl's namespace (a DNS-1123 label), context and
-- kubeconfig (each a string or nil).
function policy:cluster()
  return { namespace = self.k8s.namespace, context = self.k8s.context, kubeconfig = self.k8s.kubeconfig }
end

-- The languages a request may name (GET /v1/languages), by name: { name =
-- ..., image = the k8s image, file = where the code goes (nil: argv) }.
function policy:known_languages()
  local list = {}
  for name, lang in pairs(self.languages) do
    list[#list + 1] = { name = name, image = lang.image, file = lang.file and lang.run and lang.file or nil }
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  return list
end

-- session(req, known): called when a session is to be made (echo-sandbox
-- session create). req is the create request: ttl_ms, idle_timeout_ms,
-- limits, labels, env, backend, working_dir, each only when given. known
-- is what the engine knows of the sessions there are: live (how many are
-- alive) and live_by_label (a map: for each of req.labels, how many live
-- sessions carry that label with the same value). Returns the decision,
-- or nil and a message that refuses the request as invalid_request; these
-- fields only (src/policy/session_fields.def), any other is an error that
-- names it:
--   ttl_ms          the session's lifetime (1 ms ... 24 hours)
--   idle_timeout_ms how long it may go without a run (1 ms ... 24 hours)
--   limits          the whole session's limits, as a plan's (each nil: the
--                   plan's default); the plan of the session's sandbox is
--                   made with them as the request's, so the plan's ceilings
--                   (limits_for) hold them too
--   clamped         array of strings or nil: what of the request was
--                   lowered to the policy's ceilings
--   tenant_label    a label's name, or nil: the sessions that carry the
--                   same value of it (or all that lack it) are one tenant's
--   max_per_tenant  with tenant_label: how many of one tenant's sessions
--                   may live at once (nil or 0: any number); the engine counts them and makes the
--                   session under one lock, and refuses one more with the
--                   error too_many_sessions (CLI exit status 75)
--   kernels         array of language names: the languages whose cells
--                   have a kernel in the session
-- A policy without this hook gets the engine's defaults: 10 minutes, 2
-- minutes, the request's limits (the plan's ceilings), no tenant limit,
-- kernels python and node.
function policy:session(req, known)
  local s = self.sessions
  local ceilings = s.ceilings or {}
  local limits, clamped = bounded_limits(req.limits, self.defaults.limits,
                                         ceilings.limits or (self.ceilings and self.ceilings.limits))
  local ttl_ms, ttl_note = clamp("ttl_ms", req.ttl_ms or s.ttl_ms, ceilings.ttl_ms)
  local idle_ms, idle_note = clamp("idle_timeout_ms", req.idle_timeout_ms or s.idle_timeout_ms,
                                   ceilings.idle_timeout_ms)
  clamped[#clamped + 1] = ttl_note
  clamped[#clamped + 1] = idle_note
  return {
    ttl_ms = ttl_ms,
    idle_timeout_ms = idle_ms,
    limits = limits,
    clamped = clamped,
    tenant_label = s.tenant_label,
    max_per_tenant = s.max_per_tenant,
    kernels = table.move(s.kernels, 1, #s.kernels, 1, {}),
  }
end

-- The plan's k8s settings (see the contract above).
function policy:k8s_for(req, limits)
  return {
    image = self:image_for(req),
    namespace = self:namespace_for(req),
    handshake = self.k8s.handshake,
    pod = self:pod_for(req, self:resources_for(req, limits)),
    pod_running_timeout = self.k8s.pod_running_timeout,
    delete_timeout_ms = self.k8s.delete_timeout_ms,
    unschedulable_grace_ms = self.k8s.unschedulable_grace_ms,
    not_ready_grace_ms = self.k8s.not_ready_grace_ms,
    context = self.k8s.context,
    kubeconfig = self.k8s.kubeconfig,
  }
end

-- An entry of k8s.warm_pools (doc/warm-pods.md) whose pods are those this
-- policy makes for a request like `pool.like` (a request table: language,
-- shell, program or language, and limits, labels, working_dir, each as a
-- request gives it; nil: a shell line of the default image with no limits
-- of its own), so that such requests take them:
--   policy.k8s.warm_pools = {
--     policy:warm_pool { name = "python", like = { language = "python" }, size = 4, max_age_s = 900 },
--   }
-- name, size, max_age_s and claim_grace_ms are the pool's own. Call it
-- once the policy is as its requests will find it: the pool's shape is
-- taken then.
function policy:warm_pool(pool)
  local like = pool.like or { shell = ":" }
  if like.language and not like.code then -- its code is the run's: the shape has none of it
    like = setmetatable({ code = "" }, { __index = like })
  end
  local limits = self:limits_for(like)
  local k = self:k8s_for(like, limits)
  return {
    name = pool.name, size = pool.size, max_age_s = pool.max_age_s, claim_grace_ms = pool.claim_grace_ms,
    image = k.image, namespace = k.namespace, pod = k.pod, network = limits.network == true,
  }
end

function policy:plan(req)
  local backend = req.backend
  if backend == nil or backend == "auto" then backend = self.backend end
  local code_file = self:code_file_for(req, backend)
  local argv, err = self:argv_for(req, code_file)
  if not argv then return nil, err end
  local limits, clamped = self:limits_for(req)
  local timeout_ms, note = clamp("timeout_ms", req.timeout_ms or self.defaults.timeout_ms,
                                 self.ceilings and self.ceilings.timeout_ms)
  if clamped then clamped[#clamped + 1] = note end
  local to_k8s = backend == "k8s" or req.backend == "k8s"
  local egress
  if type(limits.network) == "table" then
    if to_k8s and not (self.egress and self.egress.k8s) then
      return nil, "limits.network.allow: on the k8s backend the network by name needs the policy's egress.k8s " ..
        "(the shared egress proxy, doc/network.md)"
    end
    egress, err = self:egress_for(req)
    if not egress then return nil, err end
    limits.network = false -- loopback only: the proxy is the way out
  end
  return {
    backend = backend,
    fallback = self:fallback_for(req, backend),
    argv = argv,
    env = self:env_for(req),
    working_dir = req.working_dir,
    timeout_ms = timeout_ms,
    kill_grace_ms = self.defaults.kill_grace_ms,
    max_stream_bytes = self.streams and self.streams.max_bytes,
    files = self.files,
    collect = self.collect,
    code_file = code_file,
    max_code_bytes = self.code and self.code.max_bytes,
    limits = limits,
    egress = egress,
    clamped = clamped,
    ["local"] = self:local_for(req, limits),
    k8s = to_k8s and self:k8s_for(req, limits) or nil,
  }
end

return policy
