-- A non-blocking client of `echo-sandbox serve` for OpenResty and nginx with
-- lua-nginx-module (LuaJIT: this file is Lua 5.1 as well as 5.4).
--
--   local client = require("resty.echo_sandbox").new{ socket = "unix:/run/echo-sandbox.sock" }
--   -- or new{ host = "127.0.0.1", port = 7878 }; optional timeout (ms), token
--   local res, err = client:run{ language = "python", code = "print(6*7)" }
--   local res, err = client:stream(request, function(event) ... end)
--
-- run returns the result table of the request contract, or nil and a message
-- (a refused request: the daemon's error message; a transport failure: what
-- failed). stream does the same through POST /v1/run?stream=1, calling
-- on_event with each output event ({event = "output", stream = "stdout" |
-- "stderr", data | data_base64}, or {event = "truncated", ...}) as it comes,
-- before it returns the result. Connections go back to the cosocket pool
-- (keep-alive).
--
-- Sessions (the daemon's /v1/sessions): a sandbox that lives, whose working
-- dir (files) and kernels (a language's variables, imports, definitions)
-- persist from call to call; the processes a run starts end with that run.
--
--   local s, err = client:session_create{ ttl_ms = 600000 }      -- s.id
--   local res, err = client:session_run(s.id, { shell = "echo 42 > answer" })
--   local cell, err = client:session_cell(s.id, { language = "python", code = "x = 41" })
--   local gone, err = client:session_delete(s.id)
--
-- Each returns the daemon's object, or nil and a message (an unknown or
-- ended session: the daemon's 404 says why; another cell of the kernel
-- going on: 409).
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

-- Status and headers (lower-case names) of one response.
local function read_head(sock)
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
  return status, headers
end

-- A body of Content-Length bytes.
local function read_body(sock, headers)
  local length = tonumber(headers["content-length"])
  if not length then return nil, "the response has no Content-Length" end
  if length == 0 then return "" end
  local body, err = sock:receive(length)
  if not body then return nil, "reading the body: " .. err end
  return body
end

-- Calls on_line with each line of a chunked body, as the chunks come.
local function read_chunked_lines(sock, on_line)
  local pending = ""
  while true do
    local size_line, err = sock:receive("*l")
    if not size_line then return nil, "reading a chunk: " .. err end
    local size = tonumber(size_line:match("^%x+"), 16)
    if not size then return nil, "a bad chunk size: " .. size_line end
    if size == 0 then
      repeat -- trailers, up to the empty line
        size_line, err = sock:receive("*l")
        if not size_line then return nil, "reading the end of the body: " .. err end
      until size_line == ""
      if pending ~= "" then on_line(pending) end
      return true
    end
    local data
    data, err = sock:receive(size)
    if not data then return nil, "reading a chunk: " .. err end
    local crlf
    crlf, err = sock:receive("*l")
    if not crlf then return nil, "reading a chunk: " .. err end
    pending = pending .. data
    while true do
      local nl = pending:find("\n", 1, true)
      if not nl then break end
      on_line(pending:sub(1, nl - 1))
      pending = pending:sub(nl + 1)
    end
  end
end

-- Connects and sends METHOD path with the request (nil: no body); returns
-- the socket.
local function send(self, path, request, method)
  local ok, body = true, ""
  if request ~= nil or method == nil then
    if type(request) ~= "table" then return nil, "the request must be a table" end
    ok, body = pcall(cjson.encode, request)
    if not ok then return nil, "cannot encode the request: " .. tostring(body) end
  end
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
    method or "POST", " ", path, " HTTP/1.1\r\n",
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
  return sock
end

-- Gives the connection back to the pool, or closes it when the server will.
local function release(self, sock, headers)
  if (headers.connection or ""):lower() == "close" then
    sock:close()
  else
    sock:setkeepalive(self.keepalive_timeout, self.pool_size)
  end
end

-- The result of an answer that is no stream: nil and a message unless 200
-- (or want).
local function result_of(status, text, want)
  local decoded_ok, result = pcall(cjson.decode, text)
  if not decoded_ok or type(result) ~= "table" then
    return nil, ("echo-sandbox answered HTTP %d: %s"):format(status, text)
  end
  if status ~= (want or 200) then
    local message = type(result.error) == "table" and result.error.message or text
    return nil, ("echo-sandbox answered HTTP %d: %s"):format(status, tostring(message))
  end
  return result
end

-- One exchange whose answer is an object: it, or nil and a message.
local function call(self, path, request, method, want)
  local sock, err = send(self, path, request, method)
  if not sock then return nil, err end
  local status, headers = read_head(sock)
  local text
  if status then text, err = read_body(sock, headers) end
  if not status or not text then
    sock:close()
    return nil, status and err or headers
  end
  release(self, sock, headers)
  return result_of(status, text, want)
end

function _M:run(request)
  return call(self, "/v1/run", request)
end

function _M:session_create(options)
  return call(self, "/v1/sessions", options or {}, "POST", 201)
end

-- A session's path; nil where id is no string.
local function session_path(id, rest)
  if type(id) ~= "string" then return nil end
  return "/v1/sessions/" .. id .. (rest or "")
end

function _M:session_run(id, request)
  local path = session_path(id, "/run")
  if not path then return nil, "the session's id must be a string" end
  return call(self, path, request)
end

function _M:session_cell(id, cell)
  local path = session_path(id, "/cell")
  if not path then return nil, "the session's id must be a string" end
  return call(self, path, cell)
end

function _M:session_delete(id)
  local path = session_path(id)
  if not path then return nil, "the session's id must be a string" end
  return call(self, path, nil, "DELETE")
end

function _M:stream(request, on_event)
  if type(on_event) ~= "function" then return nil, "on_event must be a function" end
  local sock, err = send(self, "/v1/run?stream=1", request)
  if not sock then return nil, err end
  local status, headers = read_head(sock)
  if not status then
    sock:close()
    return nil, headers
  end
  if status ~= 200 or not (headers["content-type"] or ""):find("ndjson", 1, true) then
    local text
    text, err = read_body(sock, headers)
    if not text then
      sock:close()
      return nil, err
    end
    release(self, sock, headers)
    return result_of(status, text)
  end
  local result, callback_error
  local ok
  ok, err = read_chunked_lines(sock, function(line)
    local decoded, event = pcall(cjson.decode, line)
    if not decoded or type(event) ~= "table" then return end
    if event.event == "result" then
      result = event.result
    elseif not callback_error then
      local called, why = pcall(on_event, event)
      if not called then callback_error = why end
    end
  end)
  if not ok then
    sock:close()
    return nil, err
  end
  release(self, sock, headers)
  if callback_error then error(callback_error, 0) end
  if type(result) ~= "table" then return nil, "the stream ended without a result" end
  return result
end

return _M
