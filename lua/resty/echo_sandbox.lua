-- A non-blocking client of `echo-sandbox serve` for OpenResty and nginx with
-- lua-nginx-module (LuaJIT: this file is Lua 5.1 as well as 5.4).
--
--   local client = require("resty.echo_sandbox").new{ socket = "unix:/run/echo-sandbox.sock" }
--   -- or new{ host = "127.0.0.1", port = 7878 }; optional timeout (ms), token
--   local res, err = client:run{ language = "python", code = "print(6*7)" }
--
-- run returns the result table of the request contract, or nil and a message
-- (a refused request: the daemon's error message; a transport failure: what
-- failed). Connections go back to the cosocket pool (keep-alive).
local cjson = require "cjson"

local _M = { _VERSION = "0.1.0" }
local mt = { __index = _M }

function _M.new(opts)
  opts = opts or {}
  local socket = opts.socket
  if socket and not socket:find("^unix:") then socket = "unix:" .. socket end
  return setmetatable({
    socket = socket,
    host = opts.host or "127.0.0.1",
    port = opts.port or 7878,
    timeout = opts.timeout or 60000,
    token = opts.token,
    keepalive_timeout = opts.keepalive_timeout or 60000,
    pool_size = opts.pool_size,
  }, mt)
end

-- Status, headers (lower-case names) and body of one response.
local function read_response(sock)
  local line, err = sock:receive("*l")
  if not line then return nil, "reading the status line: " .. err end
  local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
  if not status then return nil, "not an HTTP response: " .. line end
  local headers = {}
  while true do
    line, err = sock:receive("*l")
    if not line then return nil, "reading headers: " .. err end
    if line == "" then break end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then headers[name:lower()] = value end
  end
  local length = tonumber(headers["content-length"])
  if not length then return nil, "the response has no Content-Length" end
  local body = ""
  if length > 0 then
    body, err = sock:receive(length)
    if not body then return nil, "reading the body: " .. err end
  end
  return status, headers, body
end

function _M:run(request)
  if type(request) ~= "table" then return nil, "the request must be a table" end
  local ok, body = pcall(cjson.encode, request)
  if not ok then return nil, "cannot encode the request: " .. tostring(body) end
  local sock = ngx.socket.tcp()
  sock:settimeout(self.timeout)
  local connected, err
  if self.socket then
    connected, err = sock:connect(self.socket)
  else
    connected, err = sock:connect(self.host, self.port)
  end
  if not connected then return nil, "connecting to echo-sandbox: " .. err end
  local head = {
    "POST /v1/run HTTP/1.1\r\n",
    "Host: echo-sandbox\r\n",
    "Content-Type: application/json\r\n",
    "Content-Length: ", #body, "\r\n",
  }
  if self.token then head[#head + 1] = "Authorization: Bearer " .. self.token .. "\r\n" end
  head[#head + 1] = "\r\n"
  head[#head + 1] = body
  local sent
  sent, err = sock:send(head)
  if not sent then
    sock:close()
    return nil, "sending the request: " .. err
  end
  local status, headers, text = read_response(sock)
  if not status then
    sock:close()
    return nil, headers
  end
  if (headers.connection or ""):lower() == "close" then
    sock:close()
  else
    sock:setkeepalive(self.keepalive_timeout, self.pool_size)
  end
  local decoded_ok, result = pcall(cjson.decode, text)
  if not decoded_ok or type(result) ~= "table" then
    return nil, ("echo-sandbox answered HTTP %d: %s"):format(status, text)
  end
  if status ~= 200 then
    local message = type(result.error) == "table" and result.error.message or text
    return nil, ("echo-sandbox answered HTTP %d: %s"):format(status, tostring(message))
  end
  return result
end

return _M
