-- Loaded by busted before every spec file (spec/run's --helper).
--
-- Lua's os.tmpname makes its files as /tmp/lua_XXXXXX whatever $TMPDIR
-- says (the template is compiled into the interpreter), so a temp file a
-- spec forgot would stay on the machine after the suite. Here it is made
-- in the task's own $TMPDIR instead, which spec/run lists for leftovers
-- (each one a failure) and then removes.
local dir = os.getenv("TMPDIR")
if not dir or dir == "" then return end

-- A name no file or directory there has, made there empty, as mktemp
-- would, but without starting a shell and a mktemp each time (some eight
-- thousand of them a CI run). Between the look and the make nothing else
-- writes there: the dir is this task's own (spec/run makes it, mode 755),
-- and its one busted process makes names one at a time.
local letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

function os.tmpname()
  for _ = 1, 100 do
    local name = dir .. "/lua_"
    for _ = 1, 6 do
      local i = math.random(#letters)
      name = name .. letters:sub(i, i)
    end
    local there = io.open(name) -- a directory opens too
    if there then
      there:close()
    else
      local f = assert(io.open(name, "w"))
      f:close()
      return name
    end
  end
  error("os.tmpname: no free name in " .. dir)
end
