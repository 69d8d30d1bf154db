-- Requests as the CLI reads them from stdin: one JSON document, or NDJSON
-- (one request per line). Run in the front end's JSON state (src/cli).
local M = {}

-- decode: cjson.decode. Returns a list of requests; with NDJSON, a line that
-- is not JSON becomes the string "line N: invalid request JSON: ..." in its
-- place (batch reports it so), and list.lines[i] is the line of list[i].
-- Text that is neither (no line decodes) raises the document's error.
function M.split(decode, text)
  local ok, first = pcall(decode, text)
  if ok then return { first } end
  local list, decoded, n = { lines = {} }, 0, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if line:find("%S") then
      local ok_line, request = pcall(decode, line)
      if ok_line then decoded = decoded + 1 end
      list[#list + 1] = ok_line and request or ("line " .. n .. ": invalid request JSON: " .. request)
      list.lines[#list] = n
    end
  end
  if #list < 2 or decoded == 0 then error(first, 0) end
  return list
end

return M
