-- The local sandbox against a program that wants out. Each spec names the
-- defence it checks; each was seen to fail with that defence taken out (the
-- comment says how).
local env = require "spec.support.env"
local cjson = require "cjson"

local function run(request, policy)
  local args = { "run", "--json" }
  if policy then args[#args + 1] = "--policy"; args[#args + 1] = policy end
  local out, err = env.cli_run(args, cjson.encode(request))
  local ok, result = pcall(cjson.decode, out)
  assert(ok, "no JSON result: " .. out .. err)
  return result
end

-- Runs the CLI with a pty as its controlling terminal, as under an
-- interactive shell; returns everything the terminal showed.
local function run_on_pty(args)
  local script = [[
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
]]
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = env.quote(a) end
  local p = io.popen(("python3 -c %s %s %s"):format(env.quote(script), env.quote(env.cli), table.concat(quoted, " ")))
  local out = p:read("a")
  p:close()
  return out
end

describe("the local sandbox against hostile code", function()
  env.check_leaks()

  -- Defences: the sandbox starts a new session (sandbox_child.c, setsid), so
  -- it has no controlling terminal; its /dev has no tty; the filter refuses
  -- TIOCSTI. Checked: with setpgid in place of setsid (before the minimal
  -- root), the program opened /dev/tty and the terminal showed the injected
  -- line; with setpgid now, its tty_nr is the pty's.
  it("has no controlling terminal, so it cannot push keystrokes into the caller's (TIOCSTI)", function()
    local code = table.concat({
      "import fcntl, os, termios",
      "print('tty_nr', open('/proc/self/stat').read().rsplit(')', 1)[1].split()[4])",
      "try:",
      "    fd = os.open('/dev/tty', os.O_RDWR)",
      "except OSError as e:",
      "    print('no tty, errno', e.errno)",
      "    raise SystemExit",
      "for c in b'echo INJECTED\\n':",
      "    fcntl.ioctl(fd, termios.TIOCSTI, bytes([c]))",
      "print('pushed')" }, "\n")
    local shown = run_on_pty { "run", "--lang", "python", "--code", code }
    assert.truthy(shown:find("tty_nr 0", 1, true), shown)
    assert.truthy(shown:find("no tty, errno", 1, true), shown)
    assert.is_nil(shown:find("INJECTED", 1, true), shown)
  end)

  -- Defence: the default policy's ceilings (policy.ceilings, limits_for).
  -- Checked: without them the program saw ulimit -t 100000 and -u 1000000,
  -- and the pod asked for 1Ti.
  it("gets the policy's ceilings, not the 1 TiB, day-long run it asks for", function()
    local greedy = { program = "bash", args = { "-c", "ulimit -t; ulimit -u" }, timeout_ms = 24 * 3600 * 1000,
                     limits = { memory_bytes = 1024 ^ 4 // 1, cpu_time_secs = 100000, max_processes = 1000000 } }
    local r = run(greedy)
    assert.are.equal(0, r.exit_code, r.stderr)
    -- a run's cgroup holds all of it to the 300 s; RLIMIT_CPU, a second
    -- later per process, only backs it up
    assert.are.equal((env.cgroups_available() and "301" or "300") .. "\n1024\n", r.stdout)
    greedy.backend = "k8s"
    local out, err, code = env.cli_run({ "policy", "explain", "--json" }, cjson.encode(greedy))
    assert.are.equal(0, code, err)
    local x = cjson.decode(out)
    assert.are.equal(600000, x.timeout_ms)
    assert.are.equal(4 * 1024 ^ 3, x.limits.memory_bytes)
    assert.are.equal("4Gi", x.k8s.overrides.spec.containers[1].resources.limits.memory)
    assert.truthy(table.concat(x.clamped, "\n"):find("memory_bytes 1099511627776 lowered", 1, true))
  end)

  -- Calls through libc's syscall(), so that no runtime stands in the way:
  -- call(name, nr, args...) prints "name ok" or "name ERRNO" (and closes
  -- the fd it made with fd=True); `page` is a page of memory to name.
  local syscalls = [[
import ctypes, errno, mmap, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
mem = mmap.mmap(-1, 4096)
mem[0] = 1  # the page is a NUMA node mask too: node 0
page = ctypes.addressof(ctypes.c_char.from_buffer(mem))
def call(name, nr, *args, fd=False):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    print(name, "ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno()), flush=True)
    if r >= 0 and fd: os.close(r)
]]

  -- Runs the calls in python; returns the result and what each call gave.
  local function calls(code, limits, policy)
    local r = run({ language = "python", code = syscalls .. code, limits = limits }, policy)
    assert.are.equal(0, r.exit_code, r.stderr)
    local got = {}
    for name, outcome in r.stdout:gmatch("([^\n]+) (%S+)\n") do got[name] = outcome end
    return r, got
  end

  -- Makes each call ({ name, "nr, args", outcome }, args in python: `page`
  -- is there) and expects its outcome; then runs the python code after, if
  -- any. Returns the result and the outcomes.
  local function expect_calls(expected, limits, after)
    local lines = {}
    for i, c in ipairs(expected) do lines[i] = ("call(%q, %s)"):format(c[1], c[2]) end
    local r, got = calls(table.concat(lines, "\n") .. "\n" .. (after or ""), limits)
    for _, c in ipairs(expected) do
      local network = limits and (", network " .. tostring(limits.network)) or ""
      assert.are.equal(c[3], got[c[1]], c[1] .. network .. ": " .. r.stdout)
    end
    return r, got
  end

  -- What this kernel does, without any filter, with a program run on the
  -- host: the specs of calls that a kernel may lack or refuse by itself say
  -- what they found.
  local function on_host(code)
    local _, out = env.sh("python3 -c " .. env.quote(code) .. "; echo \"status $?\"")
    return out
  end

  -- Defence: the seccomp filter (engine/sandbox/seccomp_rules.c). Checked: with the
  -- policy's seccomp = "none", io_uring_setup and keyctl succeeded here and
  -- the others failed only for want of privilege (E2BIG, ENODEV, EINVAL).
  it("refuses io_uring, perf_event_open, keyrings, userfaultfd, bpf, namespaces and mounts", function()
    local _, got = calls [[
buf = ctypes.addressof(ctypes.create_string_buffer(256))
def addr(b): return ctypes.addressof(ctypes.create_string_buffer(b))
call("io_uring_setup", 425, 4, buf)
call("perf_event_open", 298, buf, 0, -1, -1, 0)
call("keyctl", 250, 0, -3, 0)
call("add_key", 248, addr(b"user"), addr(b"k"), buf, 1, -3)
call("userfaultfd", 323, 0)
call("bpf", 321, 0, buf, 64)
call("unshare", 272, 0x10000000)
call("mount", 165, addr(b"none"), addr(b"/tmp"), addr(b"tmpfs"), 0, 0)
]]
    for _, name in ipairs { "io_uring_setup", "perf_event_open", "keyctl", "add_key", "userfaultfd", "bpf",
                            "unshare", "mount" } do
      assert.are.equal("EPERM", got[name], name)
    end
  end)

  -- Defence: the filter's allow-list of socket families (unix, inet, inet6,
  -- netlink). vsock knows no network namespace: a run could bind the host's
  -- vsock ports and connect to the hypervisor (only socket() is tried here).
  -- Checked: without the family row, socket(AF_VSOCK) succeeded with the
  -- network off and on (AF_PACKET said EPERM, AF_ALG EAFNOSUPPORT, the
  -- vsock pair EOPNOTSUPP: the kernel's own answers).
  it("cannot open a vsock socket, with the network off or on, nor one of another family", function()
    for _, network in ipairs { false, true } do
      expect_calls({ { "vsock", "41, 40, 1, 0, fd=True", "EAFNOSUPPORT" },
                     { "vsock, high bits set", "41, (1 << 32) | 40, 1, 0, fd=True", "EAFNOSUPPORT" },
                     { "packet", "41, 17, 3, 0, fd=True", "EAFNOSUPPORT" },
                     { "alg", "41, 38, 5, 0, fd=True", "EAFNOSUPPORT" },
                     { "vsock pair", "53, 40, 1, 0, page", "EAFNOSUPPORT" },
                     { "unix", "41, 1, 1, 0, fd=True", "ok" }, { "inet", "41, 2, 2, 0, fd=True", "ok" },
                     { "inet6", "41, 10, 2, 0, fd=True", "ok" }, { "netlink", "41, 16, 3, 0, fd=True", "ok" } },
                   { network = network })
    end
  end)

  -- Defence: the filter's netlink protocols (route and sock_diag only), with
  -- the kernel's answer for a protocol it lacks, which libaudit's callers
  -- take for "no audit here". Checked: without the protocol row, the audit
  -- generic and netfilter netlink sockets were made (the audit pair said
  -- EOPNOTSUPP).
  it("cannot open an audit netlink socket, nor one of another protocol but route and sock_diag", function()
    expect_calls { { "audit", "41, 16, 3, 9, fd=True", "EPROTONOSUPPORT" },
                   { "generic", "41, 16, 3, 16, fd=True", "EPROTONOSUPPORT" },
                   { "netfilter", "41, 16, 3, 12, fd=True", "EPROTONOSUPPORT" },
                   { "audit pair", "53, 16, 3, 9, page", "EPROTONOSUPPORT" },
                   { "route", "41, 16, 3, 0, fd=True", "ok" }, { "sock_diag", "41, 16, 3, 4, fd=True", "ok" } }
  end)

  -- Defence: the filter's personas (PER_LINUX and the query only), over
  -- the whole argument (the kernel reads its low 32 bits). Checked: without
  -- the personality row, every call below succeeded and the persona read
  -- back was 00040000.
  it("cannot turn ASLR off with personality(ADDR_NO_RANDOMIZE), while personality(0xffffffff) answers", function()
    local personas = { { "query", "135, 0xffffffff", "ok" }, { "PER_LINUX", "135, 0", "ok" } }
    for _, refused in ipairs { "ADDR_NO_RANDOMIZE 0x0040000", "READ_IMPLIES_EXEC 0x0400000", "PER_LINUX32 8", "1 1",
                               "0x7fffffff 0x7fffffff", "0x80000000 0x80000000", "0xfffffffe 0xfffffffe",
                               "high-bits (1 << 32) | 0x0040000" } do
      local name, persona = refused:match("^(%S+) (.*)$")
      personas[#personas + 1] = { name, "135, " .. persona, "EPERM" }
    end
    local _, got = expect_calls(personas, nil, "print('persona', open('/proc/self/personality').read().strip())")
    assert.are.equal("00000000", got.persona)
  end)

  -- memfd_secret on this kernel, without the filter: "ok", or ENOSYS where
  -- it has none.
  local secretmem = on_host(syscalls .. "call('memfd_secret', 447, 0, fd=True)"):match("memfd_secret (%S+)")

  -- Defence: the filter refuses memfd_secret, whatever the kernel has.
  -- Checked: without its row, memfd_secret gave a file descriptor.
  it(("refuses memfd_secret (which this kernel %s)"):format(
       secretmem == "ok" and "has" or "lacks: " .. tostring(secretmem) .. " without the filter"), function()
    assert.is_true(secretmem == "ok" or secretmem == "ENOSYS", "without the filter: " .. tostring(secretmem))
    expect_calls { { "memfd_secret", "447, 0, fd=True", "EPERM" } }
  end)

  -- Defence: the filter refuses the NUMA placement calls, but not
  -- get_mempolicy. Checked: without their row, each call below succeeded
  -- (mbind bound the page to node 0, which set_mempolicy_home_node needs).
  it("refuses set_mempolicy, mbind and the other NUMA placement calls", function()
    expect_calls { { "set_mempolicy", "238, 0, 0, 0", "EPERM" },
                   { "mbind", "237, page, 4096, 2, page, 64, 0", "EPERM" }, -- MPOL_BIND
                   { "set_mempolicy_home_node", "450, page, 4096, 0, 0", "EPERM" },
                   { "migrate_pages", "256, 0, 64, page, page", "EPERM" },
                   { "move_pages", "279, 0, 0, 0, 0, 0, 0", "EPERM" }, { "get_mempolicy", "239, 0, 0, 0, 0, 0", "ok" } }
  end)

  -- Defence: policy explain prints the rows the filter is compiled from
  -- (esb_seccomp_rules). Checked: with the rows left out of its output,
  -- the lines below were missing.
  it("is told by policy explain what the filter refuses", function()
    local out, err, code = env.cli_run { "policy", "explain", "--", "true" }
    assert.are.equal(0, code, err)
    for _, row in ipairs {
      "socket, socketpair with family other than AF_UNIX, AF_INET, AF_INET6, AF_NETLINK: EAFNOSUPPORT",
      "socket, socketpair of AF_NETLINK with protocol other than NETLINK_ROUTE, NETLINK_SOCK_DIAG: EPROTONOSUPPORT",
      "personality with persona other than PER_LINUX, 0xffffffff (the query): EPERM",
      "memfd_secret: EPERM",
      "mbind, set_mempolicy, set_mempolicy_home_node, migrate_pages, move_pages: EPERM",
      "a call of another ABI kills the process" } do
      assert.truthy(out:find("\nfilter      " .. row, 1, true), row .. "\n" .. out)
    end
    out, err, code = env.cli_run { "policy", "explain", "--json", "--", "true" }
    assert.are.equal(0, code, err)
    local rules = cjson.decode(out)["local"].seccomp_rules
    local _, rows = env.cli_run({ "policy", "explain", "--", "true" }):gsub("\nfilter      ", "")
    assert.are.equal(rows, #rules)
  end)

  -- Defences: the filter (unshare fails with EPERM) and, beneath it,
  -- user.max_user_namespaces = 0 in the sandbox's user namespace (ENOSPC
  -- with the filter off). Checked: with both off, `unshare -Ur id -u` printed 0.
  it("cannot make a nested user namespace, even with the filter off", function()
    local nested = { shell = "unshare -Ur id -u" }
    local r = run(nested)
    assert.are_not.equal(0, r.exit_code)
    assert.truthy(r.stderr:find("Operation not permitted", 1, true), r.stderr)
    local path = env.policy_file("policy.local_sandbox.seccomp = 'none'")
    r = run(nested, path)
    os.remove(path)
    assert.are_not.equal(0, r.exit_code)
    assert.truthy(r.stderr:find("No space left on device", 1, true), r.stderr)
  end)

  -- A system call by i386's int 0x80. Some kernels run no i386 call at all
  -- (ia32_emulation=0 on the boot line, or built with
  -- CONFIG_IA32_EMULATION_DEFAULT_DISABLED): int 0x80 then ends in SIGSEGV
  -- before any filter sees it.
  local i386 = table.concat({
    "import ctypes, mmap",
    "code = b'\\xb8\\x14\\x00\\x00\\x00\\xcd\\x80\\xc3'  # mov eax, 20 (getpid); int 0x80; ret",
    "m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)",
    "m.write(code)",
    "f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))",
    "print('i386 getpid:', f(), flush=True)" }, "\n")
  -- What this kernel does with it, without the filter: the signal it ends
  -- in, or nil when it runs the call.
  local i386_host = on_host(i386)
  local i386_signal = not i386_host:find("i386 getpid: %d+\nstatus 0\n") and
                      tonumber(i386_host:match("status (%d+)")) - 128 or nil

  -- Defence: the filter's architecture check. Checked: without the filter,
  -- int 0x80 returned the pid (x32 failed with ENOSYS: this machine's kernel
  -- has no x32 ABI, which others may have); with the kernel probe told the
  -- call ends in SIGSEGV, the i386 case failed (SIGSYS is what the run got).
  it(("is killed for a system call of another ABI (x32; i386 int 0x80, which this kernel %s)"):format(
       i386_signal and ("ends in signal " .. i386_signal .. " by itself") or "runs"), function()
    assert.is_true(i386_signal == nil or i386_signal > 0, "the kernel probe: " .. i386_host)
    local x32 = "import ctypes\nprint('x32 getpid:', ctypes.CDLL(None).syscall(0x40000000 | 39), flush=True)"
    for code, signal in pairs { [i386] = i386_signal or 31, [x32] = 31 } do -- 31: SIGSYS
      local r = run { language = "python", code = code }
      assert.are.equal("signaled", r.status, r.stdout .. r.stderr)
      assert.are.equal(signal, r.signal, code)
      assert.are.equal("", r.stdout)
    end
  end)

  -- Defence: the working dir is a tmpfs of the sandbox's own (engine/sandbox/rootfs.c),
  -- bounded by workdir_size_bytes. Checked: with the host dir under $TMPDIR
  -- it was before, 1.9 GB went to the host's disk in 3 s.
  it("fills at most its bounded working dir, which is not on the host's disk", function()
    local fill = "for i in 1 2 3 4 5 6 7 8 9 10; do head -c 60M /dev/zero > f$i || break; done; du -sm . | cut -f1"
    local r = run { shell = fill, limits = { memory_bytes = 1024 ^ 3 // 1 } }
    assert.truthy(r.stderr:find("No space left on device", 1, true), r.stderr)
    assert.are.equal("256\n", r.stdout)
    -- with the default memory limit, the tmpfs's pages count against it
    r = run { shell = fill }
    assert.is_true(r.status == "oom_killed" or (r.stderr:find("No space left on device", 1, true) ~= nil),
                   cjson.encode(r))
  end)

  -- Defence: each tmpfs a run writes to has an inode bound of one per 4 KiB
  -- of its size (engine/sandbox/rootfs.h): empty files meet ENOSPC there,
  -- not the memory limit with their inodes' kernel memory. Checked: without
  -- the bound, each had the kernel's default, 3085473 inodes on this host
  -- (half its RAM's pages), and the session spec's run was OOM-killed.
  it("has as many inodes in each of its tmpfs as pages of its size", function()
    local code = "import os\nfor p in ('.', '/tmp', '/dev/shm'):\n" ..
                 "    v = os.statvfs(p)\n    print(p, v.f_files, max(v.f_blocks * v.f_frsize // 4096, 1024))"
    local r = run { language = "python", code = code }
    assert.are.equal("exited", r.status, cjson.encode(r))
    local seen = 0
    for path, inodes, pages in r.stdout:gmatch("(%S+) (%d+) (%d+)\n") do
      assert.are.equal(pages, inodes, path)
      seen = seen + 1
    end
    assert.are.equal(3, seen, r.stdout)
  end)

  -- Defence: working_dir is a path inside the sandbox, a tmpfs made there.
  -- Checked: before, a request naming the host's /tmp wrote there, and two
  -- runs naming the same dir read each other's files.
  it("cannot name a host directory as its working dir, nor share one with another run", function()
    local name = "esb-spec-" .. os.time() .. "-" .. math.random(1000000)
    local a = run { shell = "echo secret > " .. name .. "; pwd", working_dir = "/tmp" }
    assert.are.equal("/tmp\n", a.stdout, a.stderr)
    assert.is_nil(io.open("/tmp/" .. name), "the run wrote into the host's /tmp")
    local b = run { shell = "cat " .. name .. " 2>/dev/null || echo absent", working_dir = "/tmp" }
    assert.are.equal("absent\n", b.stdout)
  end)

  -- Defence: the minimal root of the policy's mount list. Checked: before,
  -- the program read the file and connected to the socket, and saw /sys.
  it("sees no /home, /run, /var or /sys of the host", function()
    if not env.is_root() then return pending("needs root to plant files in /home and /run") end
    local mark = "esb-spec-" .. os.time() .. "-" .. math.random(1000000)
    local secret, sock = "/home/" .. mark, "/run/" .. mark .. ".sock"
    env.write_file(secret, "host secret\n")
    local listener = io.popen(("python3 -c %s %s & echo $!"):format(env.quote(
      "import os, socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\nos.chmod(sys.argv[1], 0o666)\n" ..
      "s.listen(1)\nc, _ = s.accept()\nc.sendall(b'host socket')\n"), sock))
    local pid = listener:read("l")
    listener:close()
    finally(function()
      os.execute("kill " .. pid .. " 2>/dev/null; while kill -0 " .. pid .. " 2>/dev/null; do sleep 0.01; done")
      os.remove(secret)
      os.remove(sock)
    end)
    for _ = 1, 500 do
      if os.execute("test -S " .. sock) then break end
      env.sleep(0.01)
    end
    local r = run { language = "python", code = table.concat({
      "import os, socket",
      "for path in [" .. ("%q, %q"):format(secret, sock) .. ", '/sys/class/net', '/var/lib', '/root']:",
      "    print(path, os.path.exists(path))",
      "try:",
      "    s = socket.socket(socket.AF_UNIX); s.connect(" .. ("%q"):format(sock) .. "); print(s.recv(64))",
      "except OSError as e:",
      "    print('connect', e.errno)" }, "\n") }
    assert.are.equal(0, r.exit_code, r.stderr)
    for _, path in ipairs { secret, sock, "/sys/class/net", "/var/lib", "/root" } do
      assert.truthy(r.stdout:find(path .. " False\n", 1, true), r.stdout)
    end
    assert.truthy(r.stdout:find("connect 2\n", 1, true), r.stdout) -- ENOENT
    assert.truthy(os.execute("test -S " .. sock), "the host's socket is there")
  end)

  -- Defence: without namespaces (isolation rlimits), the engine removes the
  -- host working dir as the program's own uid, in a child of its own. The
  -- program leaves a directory `real` and a symlink `link` to a root-owned
  -- decoy; a library preloaded into the engine (spec/support/
  -- swap_on_remove.c) swaps the two at the first removal by path under
  -- `real`, as the program's own process could at that moment: the race is
  -- won every time. Checked: with the engine removing as root (remove_tree
  -- by path in remove_workdir), 500 of the 500 decoy files were deleted.
  it("cannot make the removal of its working dir delete host files through a swapped symlink", function()
    if not env.is_root() then return pending("needs root: the removal runs as the program's uid") end
    local decoy = os.tmpname()
    os.remove(decoy)
    assert(os.execute("mkdir " .. decoy .. " && cd " .. decoy .. " && for i in $(seq 1 500); do : > f$i; done"))
    local plant = "mkdir real && (cd real && for i in $(seq 0 999); do : > f$i; done) && ln -s \"$0\" link"
    local path = env.policy_file("policy.local_sandbox.isolation = 'rlimits'\npolicy.local_sandbox.cgroups = false")
    local request = os.tmpname()
    env.write_file(request, cjson.encode { program = "/bin/sh", args = { "-c", plant, decoy } })
    -- an ASan build takes a library preloaded before its runtime
    local script = 'LD_PRELOAD=$1 ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" ' ..
      'exec "$2" run --json --policy "$3"'
    local _, out = env.sh(("%s sh -c %s sh %s %s %s < %s"):format(env.cli_prefix, env.quote(script),
      env.quote(env.build .. "/esb-spec-swap-on-remove.so"), env.quote(env.cli_dynamic), env.quote(path), request))
    os.remove(request)
    os.remove(path)
    local p = io.popen("ls " .. decoy .. " | wc -l")
    local left = p:read("n")
    p:close()
    os.execute("rm -rf " .. decoy)
    local line = out:match("{[^\n]*}")
    assert.truthy(line, out)
    assert.truthy(out:find("swap_on_remove: loaded", 1, true), out) -- else this checks nothing
    assert.are.equal(0, cjson.decode(line).exit_code, out)
    assert.are.equal(500, left, out)
  end)

  -- Defence: echo-sandbox-init (engine/sandbox/init_main.c) builds the same sandbox
  -- as the engine's own clone (ECHO_SANDBOX_INIT=none), making the
  -- namespaces itself, and leaves the program no fd of its own. Checked:
  -- with its unshare left out, the facts below differed (the host's uid,
  -- hostname, processes and network); with the report pipe left without
  -- close-on-exec, the program's fd table did.
  it("is the same sandbox whether echo-sandbox-init or the engine's own clone starts it", function()
    if env.isolation == "rlimits" then
      pending("the policy's isolation is rlimits here: no namespaces, so no init either")
      return
    end
    -- The processes are counted by the shell itself: `ls /proc | grep -c`
    -- counted grep or not as it happened to start before ls read /proc.
    local facts = table.concat({
      "echo comm $(cat /proc/1/comm)", "echo pid $$", "id", "hostname", "set -- /proc/[0-9]*; echo $#",
      "ls / | tr '\\n' ' '", "echo", "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '",
      "echo", "grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status", "cat /proc/sys/user/max_user_namespaces",
      "ip route 2>/dev/null | grep -c 169.254 || true", "ls /proc/self/fd | tr '\\n' ' '",
    }, "; ")
    local function facts_with(init)
      local out, err, code = env.cli_run({ "run", "--json", "--shell", facts }, nil,
                                         init and ("ECHO_SANDBOX_INIT=" .. init) or nil)
      assert.are.equal(0, code, err)
      return cjson.decode(out).stdout
    end
    local with_init, with_clone = facts_with(env.init), facts_with("none")
    assert.truthy(with_init:find("comm echo-sandbox-in\n", 1, true), with_init)
    assert.falsy(with_clone:find("comm echo-sandbox-in\n", 1, true), with_clone)
    assert.truthy(with_init:find("\npid 2\n", 1, true), with_init) -- pid 1 is the init, the shell the next
    assert.are.equal(with_clone:gsub("^comm [^\n]*", ""), (with_init:gsub("^comm [^\n]*", "")))
  end)
end)
