"""echo-sandbox's Python kernel: one namespace kept across the cells of a session.

It runs inside the session's sandbox as the program, so everything it says is
the program's word (like its stdout): who ended a cell and why is the engine's
to say, from what it saw (its deadline, the kernel's exit).

Protocol (one kernel, one client, cells one after another):
  fd 3  requests, one JSON object a line: {"id": N, "code": "..."}
  fd 4  one reply a request, in order: {"id": N, "status": S, ...} where S is
        "ok" (with "value": the repr of the last expression, or null when the
        cell ends in a statement or the value is None), "error" (with
        "error": {"name", "message", "traceback"}) or "interrupted" (a SIGINT
        reached the cell: the namespace is kept).
  fd 1, 2  the cell's output, as it is written (subprocesses too); flushed
        before the reply, so a client that drains them after the reply has
        all the cell wrote itself.
A SIGINT while no cell runs is ignored, and so is one that comes as a cell
ends: a client that sent one and gets no reply within its grace ends the
kernel (its state is lost, and the client says so). The kernel ends when fd 3
ends.
Standard library only, Python 3.7 and later.
"""
import ast
import builtins
import json
import linecache
import os
import signal
import sys
import traceback

REQUESTS, REPLIES = 3, 4

namespace = {"__name__": "__main__", "__builtins__": builtins}
# The kernel's own frames, to leave out of a cell's traceback: this file's,
# or "<string>" where the kernel runs as `python3 -c SOURCE` (a session's).
KERNEL_FILE = globals().get("__file__", "<string>")
in_cell = False


def on_sigint(signum, frame):
    if in_cell:
        raise KeyboardInterrupt


def compile_cell(code, filename):
    """The cell as (statements, last expression or None), compiled."""
    tree = ast.parse(code, filename, "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
        last = compile(last, filename, "eval")
    return compile(tree, filename, "exec"), last


def remember_source(code, filename):
    """Tracebacks quote the cell's lines, as they do a file's."""
    lines = code.splitlines(True)
    linecache.cache[filename] = (len(code), None, lines, filename)


def error_of(exc):
    """The exception as the reply's error, without the kernel's own frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == KERNEL_FILE:
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return {"name": type(exc).__name__, "message": str(exc), "traceback": text}


def run_cell(cell_id, code):
    global in_cell
    filename = "<cell %d>" % cell_id
    remember_source(code, filename)
    reply = {"id": cell_id}
    try:
        in_cell = True
        statements, last = compile_cell(code, filename)
        exec(statements, namespace)
        value = eval(last, namespace) if last is not None else None
        in_cell = False
        reply["status"] = "ok"
        reply["value"] = None if value is None else repr(value)
    except KeyboardInterrupt:
        in_cell = False
        reply["status"] = "interrupted"
    except BaseException as exc:  # SystemExit too: the kernel lives on
        in_cell = False
        reply["status"] = "error"
        reply["error"] = error_of(exc)
    return reply


def flush_output():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # the cell closed or broke it
            pass


def main():
    signal.signal(signal.SIGINT, on_sigint)
    requests = os.fdopen(REQUESTS, "r", encoding="utf-8", errors="replace")
    for line in requests:
        try:
            request = json.loads(line)
            cell_id, code = request["id"], request["code"]
            if type(cell_id) is not int or type(code) is not str:
                raise TypeError('a request is {"id": integer, "code": string}')
        except (ValueError, KeyError, TypeError) as exc:
            reply = {"id": None, "status": "error",
                     "error": {"name": "ProtocolError", "message": str(exc), "traceback": ""}}
        else:
            reply = run_cell(cell_id, code)
        flush_output()
        data = (json.dumps(reply) + "\n").encode("utf-8", "backslashreplace")
        while data:
            data = data[os.write(REPLIES, data):]


if __name__ == "__main__":
    main()
