-- Build step: a text file as a C string: the pod's wrapper script
-- (backend/k8s_payload.sh), the daemon's doc/openapi.json. With
-- --strip-comments, lines that are only a shell comment are left out (the
-- script goes on a command line).
-- usage: lua5.4 embed_text.lua OUT.c NAME IN [--strip-comments]
local out_path, name, in_path, option = ...
local strip = option == "--strip-comments"
local text = assert(io.open(in_path, "rb")):read("a")
local lines = {}
for line in text:gmatch("[^\n]*\n?") do
  if line ~= "" and not (strip and line:find("^%s*#")) then
    lines[#lines + 1] = '  "' .. line:gsub(".", function(c)
      local b = c:byte()
      if b < 32 or b > 126 or c == '"' or c == "\\" or c == "?" then return ("\\%03o"):format(b) end
    end) .. '"'
  end
end
local out = assert(io.open(out_path, "wb"))
out:write(("/* Generated from %s by embed_text.lua: edit that file. */\n"):format(in_path:match("[^/]*$")))
out:write(("const char %s[] =\n%s;\n"):format(name, table.concat(lines, "\n")))
out:close()
