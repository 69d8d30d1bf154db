-- Loaded by busted before every spec file (spec/run's --helper).
--
-- Lua's os.tmpname makes its files as /tmp/lua_XXXXXX whatever $TMPDIR
-- says (the template is compiled into the interpreter), so a temp file a
-- spec forgot would stay on the machine after the suite. Here it is made
-- in the task's own $TMPDIR instead, which spec/run lists for leftovers
-- (each one a failure) and then removes.
local dir = os.getenv("TMPDIR")
if not dir or dir == "" then return end

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

function os.tmpname()
  local p = assert(io.popen("mktemp " .. quote(dir .. "/lua_XXXXXX")))
  local name = p:read("l")
  local ok = p:close()
  assert(ok and name, "os.tmpname: mktemp in " .. dir .. " failed")
  return name
end
