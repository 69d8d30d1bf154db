-- The session kernels (kernels/*): one interpreter state kept across cells,
-- driven through their protocol (requests on fd 3, replies on fd 4, the
-- cell's output on 1 and 2) by spec/support/kernel_client.py, on the host.
-- What a session makes of them (the sandbox, the deadline, a kernel that
-- died) is the session's spec; here is what each kernel promises.
local env = require "spec.support.env"
local cjson = require "cjson"

local kernels = {
  python = { command = { "python3", "kernels/python.py" },
             define = "x = 41", use = "x + 1",
             raise = "def f():\n    return 1 / 0\nf()", raised = "ZeroDivisionError",
             busy = "import time\nprint('ready', flush=True)\nwhile True: time.sleep(0.001)",
             print = "print('out'); import sys; print('err', file=sys.stderr); 'v'", value = "'v'" },
  node = { command = { "node", "kernels/node.js" },
           define = "let x = 41", use = "x + 1",
           raise = "function f() { return null.g }\nf()", raised = "TypeError",
           busy = "console.log('ready'); while (true) {}",
           print = "console.log('out'); console.error('err'); 'v'", value = "'v'" },
}

-- Runs cells in a fresh kernel; returns the replies and the kernel's exit.
local function cells(kernel, list)
  local words = { "python3", "spec/support/kernel_client.py", cjson.encode(list) }
  for _, word in ipairs(kernel.command) do words[#words + 1] = word end
  for i, word in ipairs(words) do words[i] = env.quote(word) end
  local p = assert(io.popen(table.concat(words, " ")))
  local out = p:read("a")
  p:close()
  local ok, replies = pcall(cjson.decode, out)
  assert(ok and type(replies) == "table", "no replies: " .. out)
  local last = table.remove(replies)
  return replies, last.exit
end

for name, k in pairs(kernels) do
  describe("the " .. name .. " kernel", function()
    env.check_leaks()

    it("keeps a variable from one cell for the next, and gives the last expression's value", function()
      local r, exit = cells(k, { { code = k.define }, { code = k.use } })
      assert.are.equal("ok", r[1].status)
      assert.are.equal(cjson.null, r[1].value)
      assert.are.equal("ok", r[2].status, cjson.encode(r[2]))
      assert.are.equal("42", r[2].value)
      assert.are.equal(0, exit)
    end)

    it("returns a raised error with the cell's traceback, and keeps the state for the next cell", function()
      local r = cells(k, { { code = k.define }, { code = k.raise }, { code = k.use } })
      assert.are.equal("error", r[2].status, cjson.encode(r[2]))
      assert.are.equal(k.raised, r[2].error.name)
      assert.truthy(r[2].error.traceback:find("<cell 2>", 1, true), r[2].error.traceback)
      -- the kernel's own frames are not the program's
      assert.falsy(r[2].error.traceback:find("kernels/", 1, true), r[2].error.traceback)
      assert.are.equal("42", r[3].value)
    end)

    it("is interrupted in a cell by SIGINT and keeps the state", function()
      local r = cells(k, { { code = k.define }, { code = k.busy, interrupt_on = "ready" }, { code = k.use } })
      assert.are.equal("interrupted", r[2].status, cjson.encode(r[2]))
      assert.truthy(r[2].stdout:find("ready", 1, true))
      assert.are.equal("42", r[3].value)
    end)

    it("writes a cell's output to its stdout and stderr before the reply", function()
      local r = cells(k, { { code = k.print } })
      assert.are.equal("out\n", r[1].stdout)
      assert.are.equal("err\n", r[1].stderr)
      assert.are.equal(k.value, r[1].value)
    end)

    it("answers a request that is not one with an error, and goes on", function()
      local r, exit = cells(k, { { raw = "not json" }, { raw = '{"id": "1", "code": 1}' }, { code = "1 + 1" } })
      for i = 1, 2 do
        assert.are.equal("error", r[i].status, cjson.encode(r[i]))
        assert.are.equal(cjson.null, r[i].id)
      end
      assert.are.equal("2", r[3].value)
      assert.are.equal(0, exit)
    end)
  end)
end
