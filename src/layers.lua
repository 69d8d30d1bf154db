-- The layers of src/, top to bottom: the one place their order is written.
-- A folder may include its own headers and those of the layers below it;
-- never a layer above, nor a neighbour in its own layer. scripts/layers
-- checks every #include "..." under src/ against this table and draws the
-- README's architecture picture from it.
return {
  { folders = { "cli", "daemon", "module" },
    holds = "the faces: the CLI, the HTTP daemon, the Lua module" },
  { folders = { "dispatch" },
    holds = "a request through its policy to a backend; output events" },
  { folders = { "codec" },
    holds = "requests and results as Lua tables and JSON; kubectl's pod status" },
  { folders = { "policy" },
    holds = "the policy VM: a request and its policy make a plan" },
  { folders = { "luaglue", "backend" },
    holds = "Lua helpers (protected calls, fields, embedded modules); the local and k8s backends" },
  { folders = { "engine/runtime" },
    holds = "the parent's side: the loop, spawning, the pools, timers, signals" },
  { folders = { "engine/sandbox" },
    holds = "what runs in the child and the init, and the plan it carries out" },
  { folders = { "engine/contract" },
    holds = "the contract types: request, result (its output and collected files), quantity" },
  { folders = { "engine" },
    holds = "helpers all the engine uses: text, strv, files, cgroups, install paths" },
}
