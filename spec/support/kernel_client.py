"""A client of a session kernel (kernels/*), for spec/kernel_spec.lua.

    kernel_client.py CELLS_JSON COMMAND...

starts COMMAND with requests on fd 3 and replies on fd 4, sends the cells one
after another, and prints one JSON array: per cell, the reply with the
cell's "stdout" and "stderr" added. A cell {"code": ..., "interrupt_on": T}
is sent SIGINT once its stdout holds T (an interlock, not a clock); one
{"raw": LINE} sends LINE as it is, to see how a kernel takes what is not a
request. At the
end the requests are closed and the kernel's exit status is "exit"."""
import fcntl
import json
import os
import select
import signal
import subprocess
import sys


def high(fd):
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


def main():
    cells = json.loads(sys.argv[1])
    # The pipes above fd 10 first, so that putting them on 3 and 4
    # overwrites none of them.
    req_r, req_w, rep_r, rep_w = (high(fd) for fd in os.pipe() + os.pipe())
    os.dup2(req_r, 3)
    os.dup2(rep_w, 4)
    kernel = subprocess.Popen(sys.argv[2:], pass_fds=(3, 4), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for fd in (3, 4, req_r, rep_w):
        os.close(fd)
    out_fd, err_fd = kernel.stdout.fileno(), kernel.stderr.fileno()
    for fd in (out_fd, err_fd):
        os.set_blocking(fd, False)
    results, pending = [], b""
    for n, cell in enumerate(cells, 1):
        line = cell["raw"] if "raw" in cell else json.dumps({"id": n, "code": cell["code"]})
        os.write(req_w, (line + "\n").encode())
        got = {out_fd: b"", err_fd: b""}
        trigger, reply = cell.get("interrupt_on"), None
        while reply is None:
            ready, _, _ = select.select([rep_r, out_fd, err_fd], [], [])
            for fd in ready:
                if fd == rep_r:
                    chunk = os.read(rep_r, 65536)
                    if not chunk:
                        reply = {"status": "kernel_ended"}
                    pending += chunk
                    if b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        reply = json.loads(line)
                else:
                    try:
                        got[fd] += os.read(fd, 65536)
                    except BlockingIOError:
                        pass
            if trigger and trigger.encode() in got[out_fd]:
                kernel.send_signal(signal.SIGINT)
                trigger = None
        for fd in (out_fd, err_fd):  # what the cell wrote before its reply
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if not chunk:
                    break
                got[fd] += chunk
        reply["stdout"] = got[out_fd].decode(errors="replace")
        reply["stderr"] = got[err_fd].decode(errors="replace")
        results.append(reply)
    os.close(req_w)
    results.append({"exit": kernel.wait()})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
