#!/usr/bin/env python3
"""An API server that answers echo-sandbox-kube's exec with frames no API
server sends (spec/kube_ws_spec.lua): one loopback connection per case.

    hostile_ws.py KUBE [CASE...]

runs the helper KUBE against each case (all by default) and prints a JSON
line for each: its name, the helper's exit code, its stdout, its stderr up
to its word's mark, and the word (latin-1 text)."""
import base64
import hashlib
import json
import socket
import struct
import subprocess
import sys
import threading

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SECRET = "0123456789abcdef0123456789abcdef"


def frame(op, payload, fin=True, masked=False, length=None):
    """A frame; length: the one its header says, whatever the payload's."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | op])
    bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    return head + (b"\0\0\0\0" if masked else b"") + payload


def status_payload(code):
    if code == 0:
        return b"\3" + b'{"status":"Success"}'
    return b"\3" + json.dumps({"status": "Failure", "reason": "NonZeroExitCode", "details": {
        "causes": [{"reason": "ExitCode", "message": str(code)}]}}).encode()


def status(code):
    return frame(2, status_payload(code))


def upgraded(key, accept=True, protocol="v5.channel.k8s.io", connection="Connection: Upgrade\r\n"):
    answer = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" + connection
    head += "Sec-WebSocket-Accept: %s\r\n" % answer if accept else ""
    head += "Sec-WebSocket-Protocol: %s\r\n" % protocol
    return (head + "\r\n").encode()


def answered(code, reason, body):
    """An answer that is no upgrade and not the API's Status."""
    return b"HTTP/1.1 %d %s\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (
        code, reason.encode(), len(body), body)


CASES = {
    "plain": lambda k: upgraded(k) + frame(2, b"\1out") + frame(2, b"\2err") + status(3) + frame(8, b"\3\xe8"),
    "masked": lambda k: upgraded(k) + frame(2, b"\1abc", masked=True) + status(0),
    "length_2^64-1": lambda k: upgraded(k) + frame(2, b"\1abc", length=(1 << 64) - 1),
    "length_2^63": lambda k: upgraded(k) + frame(2, b"\1abc", length=1 << 63),
    "control_126": lambda k: upgraded(k) + frame(9, b"x" * 126) + status(0),
    "control_fragmented": lambda k: upgraded(k) + frame(9, b"x", fin=False) + status(0),
    "continuation_of_none": lambda k: upgraded(k) + frame(0, b"\1abc") + status(0),
    "message_within_message": lambda k: upgraded(k) + frame(2, b"\1a", fin=False) + frame(2, b"\1b") + status(0),
    "reserved_opcode": lambda k: upgraded(k) + frame(2, b"\1a") + frame(3, b"bc") + status(0),
    "status_over_64k": lambda k: upgraded(k) + frame(2, b"\3" + b"9" * 70000),
    "status_split": lambda k: upgraded(k) + frame(2, status_payload(42)[:20], fin=False) +
    frame(0, status_payload(42)[20:]),
    "status_exit_256": lambda k: upgraded(k) + frame(2, b"\3" + json.dumps({"status": "Failure", "reason":
        "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": "256"}]}}).encode()),
    "status_after_close": lambda k: upgraded(k) + frame(2, b"\1a") + frame(8, b"\3\xe8") + status(0),
    "unknown_channel": lambda k: upgraded(k) + frame(2, b"\7junk") + status(5),
    "wrong_accept": lambda k: upgraded(k, accept=False) + status(0),
    "no_connection_upgrade": lambda k: upgraded(k, connection="") + status(0),
    "other_protocol": lambda k: upgraded(k, protocol="v4.channel.k8s.io") + status(0),
    "plain_403": lambda k: answered(403, "Forbidden", b""),
    "proxy_502": lambda k: answered(502, "Bad Gateway", b"<html><body>502 Bad Gateway</body></html>"),
    "proxy_504": lambda k: answered(504, "Gateway Timeout", b"<html><body>504 Gateway Time-out</body></html>"),
}


def client_frame(conn):
    """The client's next frame: (opcode, payload unmasked)."""
    def exactly(n):
        data = b""
        while len(data) < n:
            got = conn.recv(n - len(data))
            if not got:
                raise EOFError
            data += got
        return data
    head = exactly(2)
    n = head[1] & 0x7F
    n = struct.unpack(">H", exactly(2))[0] if n == 126 else struct.unpack(">Q", exactly(8))[0] if n == 127 else n
    mask = exactly(4) if head[1] & 0x80 else b"\0\0\0\0"
    return head[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(exactly(n)))


def pong_after_stdin(conn, key):
    """A ping with the upgrade, read while the client's stdin is still
    queued (it came with the request), then nothing until the ping's pong:
    the command's stdout says whether it came. 20 s without it is taken as
    never (the case's answer, not a hang)."""
    conn.sendall(upgraded(key) + frame(9, b"last"))
    conn.settimeout(20)
    said = b"no pong"
    try:
        while True:
            op, payload = client_frame(conn)
            if op == 0xA:
                said = b"pong " + payload
                break
    except (OSError, EOFError):
        pass
    conn.settimeout(None)
    return frame(2, b"\1" + said) + status(0) + frame(8, b"\3\xe8")


# Cases that converse: (the answer after the talk, the stdin sent with the request).
CONVERSE = {"pong_after_stdin": (pong_after_stdin, b"queued\n")}


def serve(listener, name):
    conn, _ = listener.accept()
    with conn:
        request = b""
        while b"\r\n\r\n" not in request:
            got = conn.recv(65536)
            if not got:
                return
            request += got
        key = next(line.split(b":", 1)[1].strip().decode() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        try:
            conn.sendall(CONVERSE[name][0](conn, key) if name in CONVERSE else CASES[name](key))
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(65536):  # the client's frames, to its end: no reset
                pass
        except OSError:
            pass


def run(kube, name):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        server = threading.Thread(target=serve, args=(listener, name), daemon=True)
        server.start()
        fields = {"host": "127.0.0.1", "port": str(listener.getsockname()[1]), "tls": "0",
                  "path": "/api/v1/namespaces/ns/pods/p/exec?command=true", "timeout_ms": "10000",
                  "exec_secret": SECRET}
        request = b"".join(b"%s %d\n%s\n" % (k.encode(), len(v), v.encode()) for k, v in fields.items()) + b"end\n"
        request += CONVERSE[name][1] if name in CONVERSE else b""
        done = subprocess.run([kube], input=request, capture_output=True, timeout=60)
        server.join()
    at = done.stderr.rfind(b"\035" + SECRET.encode())
    err, word = (done.stderr[:at], done.stderr[at + 33:]) if at >= 0 else (done.stderr, b"")
    return {"rc": done.returncode, "out": done.stdout.decode("latin-1"), "err": err.decode("latin-1"),
            "word": word.decode("latin-1")}


def main():
    kube = sys.argv[1]
    for name in sys.argv[2:] or list(CASES) + list(CONVERSE):
        print(json.dumps(dict(run(kube, name), name=name)), flush=True)


if __name__ == "__main__":
    main()
