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

# Starts the loopback fake API server (spec/support/fake_kube.py) in
# directory $1, reporting version 1.$2: its pid in $server, its kubeconfig
# in $1/kubeconfig, exported as KUBECONFIG. The caller stops it.
start_fake_kube() {
  python3 "$here/spec/support/fake_kube.py" --port-file "$1/port" --minor "$2" &
  server=$!
  for _ in $(seq 100); do [ -s "$1/port" ] && break; sleep 0.05; done
  cat > "$1/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: "http://127.0.0.1:$(cat "$1/port")"}}]
contexts: [{name: fake, context: {cluster: fake, user: fake, namespace: echo-sandbox}}]
current-context: fake
users: [{name: fake, user: {token: fake}}]
KC
  export KUBECONFIG=$1/kubeconfig
}

# Runs the Lua expression $2 with `mean` and `median`, tables of each
# command's mean and median time in seconds by name, read from hyperfine's
# --export-json file $1 (median: where the file has one, as
# hyperfine_rounds writes it).
with_means() {
  lua5.4 - "$1" "$2" <<'LUA'
local cjson = require "cjson"
local f = assert(io.open(arg[1]))
local report = cjson.decode(f:read("a"))
f:close()
local mean, median = {}, {}
for _, r in ipairs(report.results) do mean[r.command], median[r.command] = r.mean, r.median end
assert(load(arg[2], "=expression", "t", setmetatable({ mean = mean, median = median }, { __index = _G })))()
LUA
}

# Runs hyperfine ROUNDS times (default 5) with the same arguments, each
# round with RUNS/ROUNDS runs of every command, and merges the rounds into
# one --export-json file $1 and one Markdown table $2 (mean ± σ, median,
# min, max, relative to the last command). On a shared machine load drifts
# over a run of minutes; rounds spread every command over the whole time, so
# the ratios of the same run compare like with like.
#   hyperfine_rounds OUT.json OUT.md RUNS [hyperfine arguments...]
hyperfine_rounds() {
  local json=$1 md=$2 runs=$3 rounds=${ROUNDS:-5} parts=() i
  shift 3
  for ((i = 1; i <= rounds; i++)); do
    parts+=("$json.$i")
    hyperfine -N --style basic --runs "$(((runs + rounds - 1) / rounds))" --export-json "$json.$i" "$@" >/dev/null
  done
  lua5.4 - "$json" "$md" "${parts[@]}" <<'LUA'
local cjson = require "cjson"
local out_json, out_md = arg[1], arg[2]
local order, times = {}, {}
for i = 3, #arg do
  local f = assert(io.open(arg[i]))
  local report = cjson.decode(f:read("a"))
  f:close()
  os.remove(arg[i])
  for _, r in ipairs(report.results) do
    if not times[r.command] then order[#order + 1] = r.command; times[r.command] = {} end
    table.move(r.times, 1, #r.times, #times[r.command] + 1, times[r.command])
  end
end
local results = {}
for _, name in ipairs(order) do
  local t = times[name]
  table.sort(t)
  local sum = 0
  for _, v in ipairs(t) do sum = sum + v end
  local mean = sum / #t
  local var = 0
  for _, v in ipairs(t) do var = var + (v - mean) ^ 2 end
  results[#results + 1] = { command = name, mean = mean, stddev = math.sqrt(var / math.max(#t - 1, 1)),
                            median = t[(#t + 1) // 2], min = t[1], max = t[#t], times = t }
end
local f = assert(io.open(out_json, "w"))
f:write(cjson.encode { results = results })
f:close()
local base = results[#results].mean
f = assert(io.open(out_md, "w"))
f:write("| Command | Mean [ms] | Median [ms] | Min [ms] | Max [ms] | Relative |\n|:---|---:|---:|---:|---:|---:|\n")
for _, r in ipairs(results) do
  f:write(("| `%s` | %.1f ± %.1f | %.1f | %.1f | %.1f | %.2f |\n"):format(r.command, r.mean * 1e3, r.stddev * 1e3,
    r.median * 1e3, r.min * 1e3, r.max * 1e3, r.mean / base))
end
f:close()
LUA
}
