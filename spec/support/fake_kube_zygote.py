#!/usr/bin/env python3
"""Starts fake API servers (fake_kube.py) by fork from one process that has
imported it: a task of spec/run starts one of these when its files use the
fake, and spec/support/fake_kube.lua asks it for each fake through
`esb-spec-helper fake-start` (spec/support/helper.c).

    fake_kube_zygote.py SOCKET

A fake's start by exec paid Python's start and the imports of fake_kube.py
(http.server, ssl, argparse...): some 0.15 s of CPU, which the specs paid
some 1,500 times a CI run; a fork of this process costs a few ms.

Each request on SOCKET (a Unix socket, bound under a temporary name and
renamed there once it listens) is NUL-terminated fields: the directory to
run in, the log file (its stdout and stderr, appended), the number N of
arguments, the N arguments of fake_kube.py, then the environment's entries
to the end. The answer is the fake's pid and a newline, or a line starting
"error: ". The fake is a child of this process (reaped by the kernel: SIGCHLD
is ignored here) with the requester's environment and arguments; it is
this process's environment that /proc shows for it, which is the task's (the
same ESB_SPEC_MARK, so the leak check of its task finds one left), and it
stays in the task's cgroups."""
import os
import signal
import socket
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_kube  # noqa: E402  (after its directory is on the path)


def fields_of(conn):
    data = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    fields = data.split(b"\0")
    if len(fields) < 4 or fields[-1] != b"":
        raise ValueError("a request of fewer than 3 NUL-terminated fields")
    fields.pop()
    n = int(fields[2])
    if len(fields) < 3 + n:
        raise ValueError("a request with fewer arguments than it says")
    return fields[0], fields[1], fields[3:3 + n], fields[3 + n:]


def run_fake(cwd, log, argv, environ):
    """In the forked child: fake_kube.main() as if started with argv; never returns."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # its pods are its children: it waits for them
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(null)
        os.close(out)
        os.chdir(cwd)
        os.environ.clear()
        for entry in environ:
            key, _, value = entry.partition(b"=")
            os.environb[key] = value
        sys.argv = [fake_kube.__file__] + [os.fsdecode(a) for a in argv]
        fake_kube.main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(path):
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".new")
    listener.listen(64)
    os.rename(path + ".new", path)
    while True:
        conn, _ = listener.accept()
        with conn:
            try:
                cwd, log, argv, environ = fields_of(conn)
            except (ValueError, OSError) as e:
                conn.sendall(b"error: %s\n" % str(e).encode())
                continue
            pid = os.fork()
            if pid == 0:
                listener.close()
                conn.close()
                run_fake(cwd, log, argv, environ)
            conn.sendall(b"%d\n" % pid)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: fake_kube_zygote.py SOCKET")
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    serve(sys.argv[1])


if __name__ == "__main__":
    main()
