"""A client for the echo-sandbox daemon (`echo-sandbox serve`).

Standard library only: http.client over TCP, or over a unix socket.

    client = Client(url="http://127.0.0.1:7878", token=None, timeout=60)
    result = client.run(language="python", code="print(6*7)")
    result = client.run({"shell": "echo hi", "timeout_ms": 5000})
    for event in client.stream(shell="echo one; sleep 1; echo two"):
        ...

An error of the engine (the result's status "error": an invalid request, a
policy error, a backend that is not there) is raised as EchoSandboxError
with the engine's error code; a program that fails is a Result.
"""
import base64
import http.client
import json
import socket as _socket
from urllib.parse import urlsplit

__all__ = ["Client", "Result", "EchoSandboxError"]
__version__ = "0.1.0"


class EchoSandboxError(Exception):
    """The engine could not run the request: code is its error code
    (invalid_request, policy_error, backend_unavailable, backend_error,
    exec_not_found, exec_denied, sandbox_setup, system_error, interrupted),
    http_status the daemon's answer (400, 401, 429, ...; 200 for an error
    found after the run started), retryable whether the same request may
    succeed later, result the whole result object when there is one."""

    def __init__(self, code, message, http_status=None, retryable=False, result=None):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
        self.http_status = http_status
        self.retryable = retryable
        self.result = result


def _field_bytes(obj, name):
    """The bytes of a field the daemon sends as text, or as name_base64
    where they are not UTF-8 (a stream, an event's data, a file's path)."""
    if name + "_base64" in obj:
        return base64.b64decode(obj[name + "_base64"])
    return obj.get(name, "").encode("utf-8")


def _collected_file(f):
    path_raw = _field_bytes(f, "path")
    f = {k: v for k, v in f.items() if k != "path_base64"}
    return dict(f, path=path_raw.decode("utf-8", "replace"), path_raw=path_raw, data=base64.b64decode(f["base64"]))


class Result:
    """One run's result. stdout and stderr are text (bytes that are not
    UTF-8 decoded with replacement characters); stdout_raw and stderr_raw
    are the bytes. files: the collected files, each a dict with path (text,
    as stdout), path_raw (its bytes), size, truncated and data (bytes). raw:
    the result object as the daemon sent it."""

    def __init__(self, obj):
        self.raw = obj
        self.exit_code = obj.get("exit_code")
        self.status = obj.get("status")
        self.reason = obj.get("reason")
        self.signal = obj.get("signal")
        self.timed_out = obj.get("timed_out", False)
        self.duration_ms = obj.get("duration_ms")
        self.sandbox_type = obj.get("sandbox_type")
        self.isolation = obj.get("isolation")
        self.pod = obj.get("pod")
        self.warning = obj.get("warning")
        self.cpu_time_ms = obj.get("cpu_time_ms")
        self.memory_peak_bytes = obj.get("memory_peak_bytes")
        self.stdout_raw = _field_bytes(obj, "stdout")
        self.stderr_raw = _field_bytes(obj, "stderr")
        self.stdout = self.stdout_raw.decode("utf-8", "replace")
        self.stderr = self.stderr_raw.decode("utf-8", "replace")
        self.stdout_truncated = obj.get("stdout_truncated", False)
        self.stderr_truncated = obj.get("stderr_truncated", False)
        self.files = [_collected_file(f) for f in obj.get("files", [])]
        self.files_truncated = obj.get("files_truncated", False)
        self.error = obj.get("error")

    @property
    def ok(self):
        """The program ran and exited 0."""
        return self.status == "exited" and self.exit_code == 0

    def __repr__(self):
        return "Result(status=%r, exit_code=%r, stdout=%r, stderr=%r)" % (
            self.status, self.exit_code, self.stdout[:60], self.stderr[:60])


def _raise_for(obj, http_status):
    err = obj.get("error") or {}
    raise EchoSandboxError(err.get("code", "system_error"), err.get("message", "the daemon gave no reason"),
                           http_status, bool(err.get("retryable")), obj)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class Client:
    """url: "http://HOST:PORT" (https too), or socket: the unix socket's path
    (one of the two). token: sent as "Authorization: Bearer TOKEN". timeout:
    seconds for each socket operation (None: no limit); a run's own limit is
    its request's timeout_ms."""

    def __init__(self, url=None, socket=None, token=None, timeout=None):
        if (url is None) == (socket is None):
            raise ValueError("give one of url and socket")
        self.url, self.socket, self.token, self.timeout = url, socket, token, timeout
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("url must be http://HOST:PORT or https://HOST:PORT, not %r" % url)
            self._parts = parts

    def _connection(self):
        if self.socket is not None:
            return _UnixConnection(self.socket, self.timeout)
        p = self._parts
        cls = http.client.HTTPSConnection if p.scheme == "https" else http.client.HTTPConnection
        return cls(p.hostname, p.port, timeout=self.timeout)

    def _request(self, method, path, body=None):
        conn = self._connection()
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        try:
            try:
                conn.request(method, path, body=body, headers=headers)
            except (BrokenPipeError, ConnectionResetError):
                # The daemon answers some refusals (401, 413) from the
                # headers and closes without reading the body: its answer
                # is there to read all the same.
                pass
            return conn, conn.getresponse()
        except BaseException:
            conn.close()
            raise

    def _call(self, method, path, body=None):
        """One exchange whose answer is a JSON object: (HTTP status, object)."""
        conn, resp = self._request(method, path, body)
        try:
            text = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            raise EchoSandboxError("system_error", "the daemon answered %d with no JSON: %r"
                                   % (resp.status, text[:200]), resp.status)

    @staticmethod
    def _body(request, fields):
        if request is not None and fields:
            raise ValueError("give a request dict or keyword fields, not both")
        return json.dumps(request if request is not None else fields).encode("utf-8")

    def run(self, request=None, **fields):
        """Runs one request (a dict, or its fields as keywords: shell=...,
        program=... with args=[...], language=... with code=..., stdin,
        env, files, collect, limits, timeout_ms, backend, ...) and returns
        its Result; raises EchoSandboxError when the engine could not run it."""
        status, obj = self._call("POST", "/v1/run", self._body(request, fields))
        if status != 200 or obj.get("status") == "error":
            _raise_for(obj, status)
        return Result(obj)

    def stream(self, request=None, **fields):
        """Runs one request and yields its events as they come: dicts
        {"event": "output", "stream": "stdout" | "stderr", "data": text}
        (data_base64 instead where the bytes are not UTF-8; "bytes" holds
        them decoded either way), then {"event": "result", "result": Result}.
        A request refused from the start raises EchoSandboxError at once; an
        engine error found later raises it after the events."""
        conn, resp = self._request("POST", "/v1/run?stream=1", self._body(request, fields))
        try:
            if resp.status != 200:
                _raise_for(json.loads(resp.read()), resp.status)
            for line in resp:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("event") == "result":
                    obj = event["result"]
                    if obj.get("status") == "error":
                        _raise_for(obj, resp.status)
                    event["result"] = Result(obj)
                elif event.get("event") == "output":
                    event["bytes"] = _field_bytes(event, "data")
                yield event
        finally:
            conn.close()


    def languages(self):
        """The languages the daemon's policy knows: dicts with name, image
        (k8s) and file (where the code goes)."""
        status, obj = self._call("GET", "/v1/languages")
        if status != 200:
            _raise_for(obj, status)
        return obj["languages"]

    def ready(self):
        """Whether the daemon is ready (GET /readyz), and what it says."""
        status, obj = self._call("GET", "/readyz")
        return status == 200, obj
