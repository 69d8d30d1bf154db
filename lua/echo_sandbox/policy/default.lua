-- The default echo-sandbox policy, as a module that site policies extend:
--
--   local policy = require "echo_sandbox.policy.default"
--   policy.languages.python.command = { "python3", "-I", "-c" }
--   return policy
--
-- A policy is a table with data and one hook the engine calls for every
-- request, policy:plan(request). The request table has the fields of the
-- request contract (shell | program + args | language + code, env, limits,
-- labels, timeout_ms, working_dir, backend) and stdin_bytes instead of stdin.
-- plan returns a table, or nil and a message that rejects the request:
--
--   argv           array of strings, the program and its arguments
--   env            map NAME -> value, the program's whole environment (the
--                  local backend adds HOME = the working dir unless set)
--   working_dir    string or nil (nil: a fresh temp dir, removed afterwards)
--   timeout_ms     positive integer, wall-clock deadline
--   kill_grace_ms  time between SIGTERM and SIGKILL at the deadline
--   limits         memory_bytes, cpu_time_secs, max_output_bytes,
--                  max_processes (integers, 0 = none) and network (boolean)
--   local          settings of the local sandbox: uid, gid (never 0),
--                  isolation, tmp_size_bytes, file_size_bytes,
--                  open_files
--   backend        "local" (the only one so far)

local policy = {}

local Mi = 1024 * 1024

-- language -> image (k8s) and the interpreter argv; the code follows it as
-- one argument, then the request's args.
policy.languages = {
  python = { image = "python:3.12-slim", command = { "python3", "-c" } },
  python3 = { image = "python:3.12-slim", command = { "python3", "-c" } },
  node = { image = "node:20-slim", command = { "node", "-e" } },
  javascript = { image = "node:20-slim", command = { "node", "-e" } },
  ruby = { image = "ruby:3.3-slim", command = { "ruby", "-e" } },
  perl = { image = "perl:5-slim", command = { "perl", "-e" } },
  php = { image = "php:8.3-cli", command = { "php", "-r" } },
  lua = { image = "nickblah/lua:5.4", command = { "lua5.4", "-e" } },
  sh = { image = "debian:12-slim", command = { "sh", "-c" } },
  bash = { image = "debian:12-slim", command = { "bash", "-c" } },
}

policy.default_image = "debian:12-slim"

-- Used for every limit the request leaves out.
policy.defaults = {
  timeout_ms = 30000,
  kill_grace_ms = 200,
  limits = {
    memory_bytes = 512 * Mi,
    cpu_time_secs = 30,
    max_output_bytes = 1 * Mi,
    max_processes = 64,
    network = false,
  },
}

-- The program's environment before the request's env is laid over it.
policy.env = {
  PATH = "/usr/local/bin:/usr/bin:/bin",
  LANG = "C.UTF-8",
  TMPDIR = "/tmp",
}

policy.local_sandbox = {
  uid = 65534,                 -- nobody: what the program runs as when we are root
  gid = 65534,
  -- "namespaces": user, mount, pid, ipc, uts (+ net unless network) and rlimits;
  --   an error where the host refuses namespaces.
  -- "best_effort": the same, or rlimits only (with a warning) where refused.
  -- "rlimits": rlimits (and uid/gid when root) only, for hosts that are a
  --   sandbox already, or tools that cannot follow namespaces (valgrind).
  isolation = "namespaces",
  tmp_size_bytes = 256 * Mi,
  file_size_bytes = 64 * Mi,
  open_files = 256,
}

local function known_languages(languages)
  local names = {}
  for name in pairs(languages) do names[#names + 1] = name end
  table.sort(names)
  return table.concat(names, ", ")
end

function policy:argv(req)
  local argv
  if req.shell then
    return { "/bin/sh", "-c", req.shell }
  elseif req.program then
    argv = { req.program }
  else
    local lang = self.languages[req.language]
    if not lang then
      return nil, ("unknown language %q (known: %s)"):format(req.language, known_languages(self.languages))
    end
    argv = table.move(lang.command, 1, #lang.command, 1, {})
    argv[#argv + 1] = req.code
  end
  return table.move(req.args or {}, 1, #(req.args or {}), #argv + 1, argv)
end

function policy:plan(req)
  local argv, err = self:argv(req)
  if not argv then return nil, err end
  local env = {}
  for k, v in pairs(self.env) do env[k] = v end
  for k, v in pairs(req.env or {}) do env[k] = v end
  local limits = {}
  for k, v in pairs(self.defaults.limits) do limits[k] = v end
  for k, v in pairs(req.limits or {}) do limits[k] = v end
  return {
    backend = "local",
    argv = argv,
    env = env,
    working_dir = req.working_dir,
    timeout_ms = req.timeout_ms or self.defaults.timeout_ms,
    kill_grace_ms = self.defaults.kill_grace_ms,
    limits = limits,
    ["local"] = self.local_sandbox,
  }
end

return policy
