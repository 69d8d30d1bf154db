-- The Python client (clients/python): its own unittest suite against a real
-- daemon of this build, and `pip install` of it into a venv, offline.
local env = require "spec.support.env"

describe("the Python client", function()
  env.check_leaks()

  it("passes its tests against a daemon of this build", function()
    local ok, out = env.sh(("ECHO_SANDBOX_BIN=%s python3 -m unittest discover -s clients/python/tests -v")
                           :format(env.quote(env.cli)))
    assert(ok, out)
    assert.truthy(out:find("\nOK\n", 1, true) or out:find("\nOK$"), out)
    local ran = tonumber(out:match("Ran (%d+) tests"))
    -- test_client.py and test_surface.py (exceptions, retries, with, the
    -- typed result and events, AsyncClient); checked: the surface's tests
    -- fail on the client before them (no Unavailable, Busy, AsyncClient)
    assert.is_true(ran >= 26, out)
  end)

  it("installs with pip into a venv, offline, and imports from there", function()
    local dir = os.tmpname()
    os.remove(dir)
    finally(function() os.execute("rm -rf " .. dir) end)
    local ok, out = env.sh(("python3 -m venv %s && %s/bin/pip install --no-index ./clients/python")
                           :format(dir, dir))
    assert(ok, out)
    ok, out = env.sh(("cd / && %s/bin/python -c 'import echo_sandbox; print(echo_sandbox.__version__, "
                      .. "echo_sandbox.__file__)'"):format(dir))
    assert(ok, out)
    assert.truthy(out:find("^0%.2%.0 " .. dir:gsub("%p", "%%%0") .. "/lib/python3[.%d]*/site%-packages/echo_sandbox/"),
                  out)
  end)
end)
