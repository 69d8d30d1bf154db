-- The README and the pages of doc/ as a reader meets them: every command
-- block runs, every relative link leads somewhere, the README stays a front
-- door, and the flags that --help prints are the man page's (the
-- architecture picture is spec/layers_spec.lua's).
--
-- How a page's blocks run: in order, in one bash (`set -e`), in a copy of
-- the source tree of its own (no build, no node_modules, no .git; `build`
-- there is a link to the build under test, which is also first on PATH),
-- so that a block may use what an earlier one made or started. A block
-- fenced as sh runs as shell lines; lua runs with `lua5.4 -`, python with
-- `python3 -` (the build's module on the cpath, the Python client on the
-- path); other fences (json, nginx, mermaid, none) are data, not run.
-- What the spec changes in the text, and why:
--   - the port 7878 becomes a free one and /run/echo-sandbox/ a dir of the
--     spec's own: other runs of the suite listen too;
--   - ./bootstrap.sh is the checkout's (it builds there, with the build's
--     own CMake flags, into the build under test);
--   - `cmake --install` gets a DESTDIR of the spec's own;
--   - after a line that starts `echo-sandbox serve --listen ADDR ... &`, it
--     waits until ADDR answers /healthz (as a reader does before typing the
--     next line);
--   - a line whose comment says `# exits N` must exit N (the other lines 0);
--   - a background job (a line ending in `&`) must still run when the page
--     ends; it is then stopped with SIGTERM.
-- Markers, HTML comments right before a block:
--   <!-- needs: WHAT -->               not run (a cluster, say); listed as pending
--   <!-- docs: skip-line PREFIX: WHY --> its lines starting with PREFIX are not run
--   <!-- docs: file NAME -->           the block is the content of NAME
--   <!-- docs: run with CMD -->        the block is CMD's stdin
local env = require "spec.support.env"

local checkout = (function()
  local p = io.popen("pwd")
  local dir = p:read("l")
  p:close()
  return dir
end)()
local build = env.build:sub(1, 1) == "/" and env.build or checkout .. "/" .. env.build

local function lines_of(text)
  local out = {}
  for line in (text .. "\n"):gmatch("(.-)\n") do out[#out + 1] = line end
  if out[#out] == "" then out[#out] = nil end
  return out
end

-- README.md, then doc/*.md in order.
local function pages()
  local list = { "README.md" }
  local p = io.popen("ls doc/*.md")
  for name in p:lines() do list[#list + 1] = name end
  p:close()
  return list
end

-- A page's fenced blocks: { lang, text, line (of the opening fence), marks
-- = { needs = WHAT, skip = { {prefix, why} }, file = NAME, run = CMD } },
-- and its headings' lines outside the blocks. A marker before anything but
-- a block is an error.
local function parse(page)
  local blocks, headings, marks, open = {}, {}, nil, nil
  for n, line in ipairs(lines_of(env.read_file(page))) do
    if open then
      if line:match("^```%s*$") then
        blocks[#blocks + 1] = open
        open = nil
      else
        open.text = open.text .. line .. "\n"
      end
    elseif line:match("^```") then
      open = { lang = line:match("^```%s*(%S*)"), text = "", line = n, marks = marks or { skip = {} } }
      marks = nil
    elseif line:match("^<!%-%- needs: ") or line:match("^<!%-%- docs: ") then
      marks = marks or { skip = {}, at = n }
      local needs = line:match("^<!%-%- needs: (.-) %-%->$")
      local key, rest = line:match("^<!%-%- docs: (%S+) (.-) %-%->$")
      if needs then
        marks.needs = needs
      elseif key == "skip-line" then
        local prefix, why = rest:match("^(.-): (.+)$")
        marks.skip[#marks.skip + 1] = { assert(prefix, page .. ":" .. n .. ": skip-line PREFIX: WHY"), why }
      elseif key == "file" or (key == "run" and rest:match("^with ")) then
        marks[key] = key == "run" and rest:gsub("^with ", "") or rest
      else
        error(("%s:%d: an unknown marker: %s"):format(page, n, line))
      end
    elseif line:match("%S") and marks then
      error(("%s:%d: the marker of line %d is not right before a block"):format(page, n, marks.at))
    else
      local level, title = line:match("^(#+)%s+(.+)$")
      if level then headings[#headings + 1] = title end
    end
  end
  assert(not open, page .. ": a block is not closed")
  assert(not marks, page .. ": a marker at its end")
  return blocks, headings
end

-- GitHub's anchor of a heading.
local function slug(title)
  return (title:lower():gsub("[^%w%- _]", ""):gsub(" ", "-"))
end

-- The shell text of one block (a string), or nil and why it is not run.
local function substituted(text, subst)
  for from, to in pairs(subst) do text = text:gsub(from:gsub("%p", "%%%0"), (to:gsub("%%", "%%%%"))) end
  return text
end

local function block_shell(b, subst)
  if b.marks.needs then return nil, "needs: " .. b.marks.needs end
  local text = substituted(b.text, subst)
  if b.marks.file then
    return ("cat > %s <<'ESB_DOCS_EOF'\n%sESB_DOCS_EOF\n"):format(env.quote(b.marks.file), text)
  end
  local runner = b.marks.run
    or (b.lang == "lua" and env.module_lua .. ' -')
    or (b.lang == "python" and "python3 -")
  if runner then return ("%s <<'ESB_DOCS_EOF'\n%sESB_DOCS_EOF\n"):format(runner, text) end
  if b.lang ~= "sh" then return nil end
  local out, previous = {}, ""
  for _, line in ipairs(lines_of(b.text)) do
    local skipped
    for _, s in ipairs(b.marks.skip) do
      if line:sub(1, #s[1]) == s[1] then skipped = s end
    end
    local command, code = line:match("^(.-)%s+#%s*exits (%d+)")
    line = substituted(line, subst)
    command = command and substituted(command, subst)
    if skipped then
      line = ": skipped: " .. env.quote(line)
    elseif command then
      assert(not previous:match("[|\\&]%s*$"), "`# exits N` on a line that continues another: " .. line)
      line = ("esb_docs_rc=0; %s || esb_docs_rc=$?; esb_docs_exits %s \"$esb_docs_rc\""):format(command, code)
    end
    local before_comment = line:gsub("%s+#[^'\"]*$", "")
    if before_comment:match("[^&]&$") then
      line = before_comment .. ' esb_docs_bg+=("$!")'
      local addr = before_comment:match("^echo%-sandbox serve %-%-listen (%S+)")
      if addr then line = line .. "; esb_docs_wait_listening " .. addr end
    end
    out[#out + 1] = line
    previous = line
  end
  return table.concat(out, "\n") .. "\n"
end

-- Functions of every page's script.
local prologue = [[
set -eE
esb_docs_bg=()
# On any way out the page's background jobs go too: they hold our output
# open, and nothing of a page may be left.
esb_docs_stop() {
  local p
  for p in "${esb_docs_bg[@]}"; do
    if kill -TERM "$p" 2>/dev/null; then wait "$p" 2>/dev/null || true; fi
  done
}
trap esb_docs_stop EXIT
trap 'echo "docs_spec: block at line $esb_docs_line failed (status $?)" >&2; exit 1' ERR
esb_docs_exits() {
  [ "$2" = "$1" ] || { echo "docs_spec: exited $2, not $1 as the page says" >&2; return 1; }
}
esb_docs_wait_listening() {
  local i
  for i in $(seq 1000); do
    case $1 in
      unix:*) curl -sf --unix-socket "${1#unix:}" -o /dev/null localhost/healthz && return 0 ;;
      *) curl -sf -o /dev/null "http://$1/healthz" && return 0 ;;
    esac
    sleep 0.01
  done
  echo "docs_spec: nothing answers on $1" >&2
  return 1
}
# Every background job must still run when the page ends.
esb_docs_end() {
  local p status
  trap - ERR
  for p in "${esb_docs_bg[@]}"; do
    kill -0 "$p" 2>/dev/null && continue
    wait "$p" && status=0 || status=$?
    echo "docs_spec: the background job $p ended (status $status) before the page did" >&2
    exit 1
  done
}
]]

-- The build's CMake flags, for ./bootstrap.sh to configure it as it is.
local function cmake_flags()
  local cache = env.read_file(build .. "/CMakeCache.txt")
  local flags = {}
  for _, name in ipairs { "CMAKE_BUILD_TYPE", "ECHO_SANDBOX_SANITIZE" } do
    local value = cache:match("\n" .. name .. ":%w+=([^\n]*)")
    if value then flags[#flags + 1] = ("-D%s=%s"):format(name, value) end
  end
  return table.concat(flags, " ")
end

-- Runs the page's blocks: whether all passed, and their output.
local function run_page(page, blocks)
  local dir = os.tmpname()
  os.remove(dir)
  local tree = dir .. "/tree"
  assert(os.execute(("mkdir -p %s/run %s/destdir %s && tar -C %s --exclude=./.git --exclude='./build*' "
    .. "--exclude=node_modules --exclude=./venv -cf - . | tar -C %s -xf - && ln -s %s %s/build")
    :format(dir, dir, tree, env.quote(checkout), tree, env.quote(build), tree)))
  local subst = {
    ["7878"] = tostring(env.free_port()),
    ["/run/echo-sandbox/"] = dir .. "/run/",
    ["./bootstrap.sh"] = checkout .. "/bootstrap.sh",
  }
  local script = { prologue }
  for _, b in ipairs(blocks) do
    local text = block_shell(b, subst)
    if text then script[#script + 1] = ("esb_docs_line=%d\n%s"):format(b.line, text) end
  end
  script[#script + 1] = "esb_docs_end\n"
  env.write_file(dir .. "/page.sh", table.concat(script))
  local ok, out = env.sh(("cd %s && env PATH=%s:\"$PATH\" DESTDIR=%s/destdir "
    .. "ESB_BUILD_DIR=%s ESB_CMAKE_FLAGS=%s LUA_CPATH=%s bash %s/page.sh")
    :format(tree, env.quote(build), dir, env.quote(build),
      env.quote(cmake_flags()), env.quote(build .. "/?.so;;"), dir))
  os.execute("rm -rf " .. env.quote(dir))
  return ok, out
end

-- The long options a help text or a man page names, as a set.
local function flags_in(text, into, where)
  for flag in text:gmatch("%-%-(%a[%w%-]*)") do
    into[flag] = into[flag] or where
  end
  return into
end

describe("the docs", function()
  env.check_leaks()

  -- Checked: with 80 blank lines added to the README (304 lines), this fails.
  it("README.md is a front door: at most 300 lines", function()
    local n = #lines_of(env.read_file("README.md"))
    assert(n <= 300, ("README.md has %d lines"):format(n))
  end)

  -- Checked: with a link to doc/kubernetes.md#no-such-heading, and with
  -- one to doc/nothing.md, this fails naming each.
  it("has no relative link that leads nowhere", function()
    local anchors, broken = {}, {}
    for _, page in ipairs(pages()) do
      local _, headings = parse(page)
      anchors[page] = {}
      for _, h in ipairs(headings) do anchors[page][slug(h)] = true end
    end
    for _, page in ipairs(pages()) do
      local base = page:match("^(.*/)") or ""
      local text = env.read_file(page):gsub("\n```.-\n```", "")
      for target in text:gmatch("%]%(([^)%s]+)%)") do
        if not target:match("^%a[%w+.-]*:") then
          local path, anchor = target:match("^([^#]*)#?(.*)$")
          local file = path == "" and page or (base .. path):gsub("[^/]+/%.%./", "")
          if not os.execute("test -e " .. env.quote(file)) then
            broken[#broken + 1] = page .. ": " .. target
          elseif anchor ~= "" and file:match("%.md$") and not (anchors[file] or {})[anchor] then
            broken[#broken + 1] = page .. ": " .. target .. " (no such heading)"
          end
        end
      end
    end
    assert.are.same({}, broken)
  end)

  -- Checked: with the man page's --socket-mode misspelt --sockt-mode, this
  -- fails naming both: one only in serve --help, one only in the man page;
  -- with a --bogus-flag in echo-sandbox-policy(5), it fails naming that.
  it("names each flag of --help in echo-sandbox(1), and each flag of the man pages is in some --help", function()
    local help = {}
    local top = env.cli_run { "--help" }
    flags_in(top, help, "echo-sandbox --help")
    local commands, seen = {}, {}
    for line in top:match("commands:\n(.-)\n\n"):gmatch("[^\n]+") do
      commands[#commands + 1] = line:match("^%s+(%a+)%s")
    end
    local policy = env.cli_run { "policy", "--help" }
    for sub in policy:gmatch("echo%-sandbox policy (%a+)") do
      if not seen[sub] then commands[#commands + 1] = "policy " .. sub end
      seen[sub] = true
    end
    assert.is_true(#commands >= 8, table.concat(commands, ", "))
    for _, command in ipairs(commands) do
      local args = {}
      for word in command:gmatch("%S+") do args[#args + 1] = word end
      args[#args + 1] = "--help"
      local out, err = env.cli_run(args)
      flags_in(out .. err, help, "echo-sandbox " .. command .. " --help")
    end
    -- roff: \- is a hyphen, \fB... a font; another program's flags are in
    -- quotes after its name ("kubectl run \-\-attach")
    local function man_text(page)
      return (env.read_file(page):gsub("\\%-", "-"):gsub("\\f[BIRP]", ""):gsub('"kubectl[^"\n]*"', ""))
    end
    local in_man = flags_in(man_text("doc/echo-sandbox.1"), {}, "doc/echo-sandbox.1")
    local missing = {}
    for flag, where in pairs(help) do
      if not in_man[flag] then missing[#missing + 1] = ("--%s (%s) is not in doc/echo-sandbox.1"):format(flag, where) end
    end
    -- echo-sandbox-policy(5) names the flags it speaks of too
    for flag, page in pairs(flags_in(man_text("doc/echo-sandbox-policy.5"), in_man, "doc/echo-sandbox-policy.5")) do
      if not help[flag] then missing[#missing + 1] = ("--%s of %s is in no --help"):format(flag, page) end
    end
    table.sort(missing)
    assert.are.same({}, missing)
  end)

  for _, page in ipairs(pages()) do
    local blocks = parse(page)
    -- Checked: with a block's command misspelt, with `# exits 3` changed to
    -- `# exits 4`, and with the daemon's `&` line given a port in use (the
    -- job ended early), the page's spec fails naming the block's line.
    it(page .. ": every command block runs", function()
      local ok, out = run_page(page, blocks)
      assert(ok, page .. ":\n" .. out)
    end)
    for _, b in ipairs(blocks) do
      if b.marks.needs then
        pending(("%s:%d: not run, it needs %s"):format(page, b.line, b.marks.needs:gsub("^%s+", "")))
      end
      for _, s in ipairs(b.marks.skip) do
        pending(("%s:%d: `%s` not run: %s"):format(page, b.line, s[1], s[2]))
      end
    end
  end
end)
