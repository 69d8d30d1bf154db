# Sourced by the bench scripts: package set-up and reading hyperfine's JSON.

# Installs the Debian packages named that are missing.
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Writes the policy file $1: the default policy as p, then the Lua lines $2...
policy_file() {
  local file=$1
  shift
  { echo 'local p = require "echo_sandbox.policy.default"'; printf '%s\n' "$@"; echo 'return p'; } > "$file"
}

# Runs the Lua expression $2 with `mean`, a table of each command's mean time
# in seconds by name, read from hyperfine's --export-json file $1.
with_means() {
  lua5.4 - "$1" "$2" <<'LUA'
local cjson = require "cjson"
local f = assert(io.open(arg[1]))
local report = cjson.decode(f:read("a"))
f:close()
local mean = {}
for _, r in ipairs(report.results) do mean[r.command] = r.mean end
assert(load(arg[2], "=expression", "t", setmetatable({ mean = mean }, { __index = _G })))()
LUA
}
