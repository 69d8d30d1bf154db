-- The local sandbox against a program that watches what others do: the
-- host's files it sees (the policy's mount list) are inodes of overlays of
-- its own run (engine/sandbox/rootfs.h), so neither an inotify watch nor a lock on
-- them reaches another run or the host. Order is proven by interlocks: a
-- run says it is watching (or holds its locks) and waits on its stdin; the
-- spec acts, then releases it.
local env = require "spec.support.env"
local cjson = require "cjson"

-- Runs the Python driver script on the host with the CLI's command line
-- (its prefix and path, for the shell; with env_prefix), the code to run
-- sandboxed and the rest as its arguments; returns what it prints, decoded.
local function drive(env_prefix, script, code, ...)
  local cli = env_prefix .. " " .. env.cli_prefix .. " " .. env.quote(env.cli)
  local args = { env.quote(cli), env.quote(code) }
  for _, a in ipairs { ... } do args[#args + 1] = env.quote(a) end
  local p = assert(io.popen(("timeout 120 python3 -c %s %s"):format(env.quote(script), table.concat(args, " "))))
  local out = p:read("a")
  p:close()
  local ok, result = pcall(cjson.decode, out)
  assert(ok, "the driver printed no JSON: " .. out)
  return result
end

-- Shared by the drivers: a sandboxed python3 with its stdin from ours,
-- started, and a run to its end.
local common = [[
import fcntl, json, shlex, subprocess, sys
cli, code = sys.argv[1], sys.argv[2]
def start(code, *args):
    words = ' '.join(shlex.quote(w) for w in ('python3', '-c', code) + args)
    return subprocess.Popen(cli + ' run --stdin-file - -- ' + words, shell=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
def line(p):
    return json.loads(p.stdout.readline())
]]

-- Sandboxed: watch(dirs) puts an inotify watch (opens and reads) on each
-- of dirs; seen() is what the watches saw since, as "dir:name" strings.
local inotify = [[
import ctypes, os, struct
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(os.O_NONBLOCK)
wds = {}
def watch(dirs):
    for d in dirs:
        wd = libc.inotify_add_watch(fd, d.encode(), 0x21)  # IN_OPEN | IN_ACCESS
        assert wd >= 0, ctypes.get_errno()
        wds[wd] = d
def seen():
    names = set()
    while True:
        try:
            b = os.read(fd, 65536)
        except BlockingIOError:
            return sorted(names)
        i = 0
        while i < len(b):
            wd, n = struct.unpack_from('iIII', b, i)[0::3]
            names.add(wds[wd] + ':' + b[i + 16:i + 16 + n].rstrip(b'\0').decode())
            i += 16 + n
]]

-- Both ways a root is built: from the fork server's template (echo-sandbox-init)
-- and step by step (the engine's own clone).
for _, start in ipairs { { "from a template", "ECHO_SANDBOX_INIT=" .. env.quote(env.init) },
                         { "step by step", "ECHO_SANDBOX_INIT=none" } } do
  describe("the local sandbox against a program that watches others, its root built " .. start[1], function()
    env.check_leaks()

    -- Defence: the host's directories are read through per-run overlays
    -- (rootfs.c, add_overlay), so the inodes a run watches are its own.
    -- Checked: without the overlays (add_overlay returning 0 at once), the
    -- watcher saw dash, env, ld-linux-x86-64.so.2 and libc.so.6 of run B and
    -- of the host (and the compilers other host processes were running).
    it("sees nothing of another run's or the host's exec in /usr/bin or a library dir, only its own", function()
      local watcher = inotify .. [[
import json, subprocess, sys
libdir = next(l.split()[-1] for l in open('/proc/self/maps') if '/libc.so' in l).rsplit('/', 1)[0]
watch(('/usr/bin', libdir))
print(json.dumps('watching'), flush=True)
sys.stdin.readline()
print(json.dumps(seen()), flush=True)
subprocess.run(['/usr/bin/env', 'true'])
print(json.dumps(seen()), flush=True)
]]
      local got = drive(start[2], common .. [[
a = start(code)
assert line(a) == 'watching'
b = subprocess.run(cli + ' run -- /usr/bin/env echo ran', shell=True, stdout=subprocess.PIPE, text=True)
host = subprocess.run(['/usr/bin/env', 'echo', 'ran'], stdout=subprocess.PIPE, text=True)
a.stdin.write('go\n')
a.stdin.close()
others, own = line(a), line(a)
print(json.dumps({'b': b.stdout, 'host': host.stdout, 'others': others, 'own': own, 'code': a.wait()}))
]], watcher)
      assert.are.equal("ran\n", got.b)
      assert.are.equal("ran\n", got.host)
      assert.are.equal(0, got.code)
      assert.are.same({}, got.others)
      -- The watch works: the run's own exec of the same program is seen.
      local own = {}
      for _, name in ipairs(got.own) do own[name:match(":(.*)$")] = true end
      assert.is_true(own.env and own["libc.so.6"], table.concat(got.own, " "))
    end)

    -- Defence: as above, a lock is taken on the run's own overlay inode.
    -- Checked: without the overlays, the host's locks were refused while run
    -- A held its own, and run B's while run A and the host held theirs.
    it("takes a flock on a shared host file without blocking the host or another run, nor being blocked", function()
      -- A flock of path's own open, or None where another holds one.
      local lock = [[
import fcntl, json, sys
def lock(path):
    f = open(path, 'rb')
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return f
    except BlockingIOError:
        return None
]]
      local locker = lock .. [[
paths = sys.argv[1:]
held = [lock(p) for p in paths]
print(json.dumps([f is not None for f in held]), flush=True)
# The locks work: a second open of the same file, in this run, is refused.
print(json.dumps([lock(p) is not None for p in paths]), flush=True)
sys.stdin.readline()
]]
      local got = drive(start[2], common .. lock .. [[
paths = ['/etc/ld.so.cache', '/usr/bin/env']
a = start(code, *paths)
a_granted, a_second = line(a), line(a)
host = [lock(p) for p in paths]  # while run A holds its locks
b = start(code, *paths)          # while run A and the host hold theirs
b_granted = line(b)
b.stdin.close()
b.wait()
a.stdin.write('go\n')
a.stdin.close()
print(json.dumps({'a': a_granted, 'a_second': a_second, 'host': [f is not None for f in host], 'b': b_granted,
                  'code': a.wait()}))
]], locker)
      assert.are.same({ true, true }, got.a)
      assert.are.same({ false, false }, got.a_second) -- the run's locks hold, in the run
      assert.are.same({ true, true }, got.host)       -- the host is not blocked by them
      assert.are.same({ true, true }, got.b)          -- another run by neither
      assert.are.equal(0, got.code)
    end)

    -- Runs of one engine (a batch, a daemon) are forked from one template of
    -- their root (engine/sandbox/rootfs.h): its /etc/passwd, /etc/hosts and / would be
    -- every run's inodes, and so would the copies it holds of the policy's
    -- small read-only mounts (/etc/nsswitch.conf: engine/sandbox/rootfs_copy.h).
    -- The runs' interlocks are fifos of a writable mount.
    -- Defence: a run's root is an overlay of the template's (rootfs.c,
    -- esb_rootfs_apply_template). Checked: with the template's root bound
    -- instead, run A saw "/:", "/etc:hosts" and "/etc:passwd" of run B, and
    -- B's flock of /etc/passwd was refused while A held one.
    it("sees nothing of another run of the same engine in its generated /etc and /, nor meets its lock", function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute(("mkdir -m 0777 %s && cd %s && mkfifo -m 0666 ready go_b b_done go_a"):format(dir, dir)))
      local policy = env.policy_file(([[
local mounts = policy.local_sandbox.mounts
mounts[#mounts + 1] = { host = %q, path = "/sync", writable = true }]]):format(dir))
      finally(function()
        os.execute("rm -rf " .. env.quote(dir))
        os.remove(policy)
      end)
      local watcher = inotify .. [[
import fcntl, json
held = [open(name, 'rb') for name in ('/etc/passwd', '/etc/nsswitch.conf')]
for f in held:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
watch(('/', '/etc'))
open('/sync/ready', 'w').write('watching\n')
open('/sync/go_a').read()
others = seen()
open('/etc/hosts').read()
print(json.dumps({'others': others, 'own': seen()}))
]]
      local prober = [[
import fcntl, json, os
open('/sync/go_b').read()
open('/etc/hosts').read()
os.listdir('/')
granted = []
for name in ('/etc/passwd', '/etc/nsswitch.conf'):
    f = open(name, 'rb')
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        granted.append(True)
    except BlockingIOError:
        granted.append(False)
open('/sync/b_done', 'w').write('done\n')
print(json.dumps({'granted': granted}))
]]
      local got = drive(start[2], common .. [[
d, policy = sys.argv[3], sys.argv[4]
p = subprocess.Popen(cli + ' batch -j 2 --policy ' + shlex.quote(policy), shell=True,
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
for name, program in (('a', code), ('b', sys.argv[5])):
    p.stdin.write(json.dumps({'id': name, 'program': 'python3', 'args': ['-c', program], 'timeout_ms': 60000}) + '\n')
p.stdin.close()
ready = open(d + '/ready').read()
open(d + '/go_b', 'w').write('go\n')
done = open(d + '/b_done').read()
open(d + '/go_a', 'w').write('go\n')
results = {r['id']: r for r in map(json.loads, p.stdout)}
p.wait()
print(json.dumps({'ready': ready, 'done': done, 'a': json.loads(results['a']['stdout'] or 'null'),
                  'b': json.loads(results['b']['stdout'] or 'null'), 'errors': [r['stderr'] for r in results.values()]}))
]], watcher, dir, policy, prober)
      assert.are.equal("watching\n", got.ready)
      assert.are.equal("done\n", got.done)
      assert.is_table(got.a, table.concat(got.errors, "\n"))
      assert.are.same({}, got.a.others)
      assert.are.same({ "/etc:hosts" }, got.a.own) -- the watch works: the run's own read is seen
      assert.are.same({ true, true }, got.b.granted)
    end)
  end)
end

-- Where the kernel refuses a run's overlay, the run binds the host's
-- directory and shares its inodes with every other run: doctor says so,
-- as nothing else would. Overlays stack two deep at most, so a read-only
-- mount below an overlay of an overlay is one the kernel refuses. Checked:
-- without doctor's overlay probe (check_overlays), no "overlays" line.
describe("echo-sandbox doctor on a host whose kernel refuses a run's overlay", function()
  env.check_leaks()

  it("warns that the runs share that directory's inodes, and a run still binds it", function()
    if env.isolation == "rlimits" then
      pending("the policy's isolation is rlimits here: no root of the sandbox's own, no overlays")
      return
    end
    local mktemp = assert(io.popen("mktemp -d"))
    local d = mktemp:read("l")
    mktemp:close()
    assert(os.execute("chmod 755 " .. d .. " && mkdir -p " .. d .. "/a/sub " .. d .. "/e1 " .. d .. "/e2 " ..
                      d .. "/x " .. d .. "/y && echo hello > " .. d .. "/a/sub/f"))
    local policy = env.policy_file(("policy.local_sandbox.mounts[#policy.local_sandbox.mounts + 1] = " ..
                                    "{ host = %q, path = '/data' }"):format(d .. "/y/sub"))
    local cli = env.cli_prefix .. " " .. env.quote(env.cli)
    local script = ("mount -t overlay o -o lowerdir=%s/a:%s/e1 %s/x && mount -t overlay o -o lowerdir=%s/x:%s/e2 %s/y" ..
                    " && %s doctor --local-only --policy %s; echo ===; %s run --policy %s -- cat /data/f")
                   :format(d, d, d, d, d, d, cli, env.quote(policy), cli, env.quote(policy))
    local ok, out = env.sh("unshare -m --propagation private sh -c " .. env.quote(script))
    os.remove(policy)
    os.execute("rm -rf " .. d)
    local doctor, ran = out:match("^(.*)===\n(.*)$")
    assert.truthy(doctor, out)
    if doctor:find("ok    overlays", 1, true) then
      pending("this kernel stacks overlays three deep: no refusal to show")
      return
    end
    assert.truthy(doctor:find("warn  overlays       the kernel refuses a read-only overlay of " .. d .. "/y (", 1, true),
                  doctor)
    assert.are.equal("hello\n", ran, out)
    assert.is_true(ok, out)
  end)
end)
