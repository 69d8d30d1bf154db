"""A client for the echo-sandbox daemon (`echo-sandbox serve`).

Standard library only: http.client over TCP or a unix socket, and the same
surface on asyncio (AsyncClient).

    with Client(url="http://127.0.0.1:7878", token=None, timeout=60) as client:
        result = client.run(language="python", code="print(6*7)")
        result = client.run({"shell": "echo hi", "timeout_ms": 5000})
        for event in client.stream(shell="echo one; sleep 1; echo two"):
            ...

    with client.session(ttl_ms=600000, limits={"memory_bytes": 256 << 20}) as session:
        session.run(shell="echo 42 > answer")     # a sandbox that lives: its
        session.run(shell="cat answer")           # working dir persists
        session.cell("x = 41")                    # and its kernels' state:
        session.cell("x + 1").value               # "42"
        session.upload("in/data.csv", b"a,b\n")   # files in and out
        session.download("answer")                # b"42\n"
    # (deleted on leaving the block)

    async with AsyncClient(url="http://127.0.0.1:7878") as client:
        result = await client.run(language="python", code="print(6*7)")
        async for event in client.stream(shell="echo one"):
            ...

Errors are EchoSandboxError, or one of its kinds: Unavailable (the daemon
cannot be reached, or is stopping: 503), Busy (429: every run slot is taken;
retry_after says when to ask again) and Rejected (the daemon refused the
request: 400, 401, 404, 405, 413; SessionGone, a Rejected, for a session
that is unknown or has ended, with why). An error of the engine found once the
request ran (a program not found, a cluster that failed) is an
EchoSandboxError with the engine's code. A program that fails is a Result.

Errors that say the same request may succeed later (Unavailable before the
request was sent, Busy, 503, an engine error with retryable true) are
retried, `retries` times (3), after Retry-After when the daemon gave one,
else after backoff * 2**n seconds (0.5, 1, 2, ...; at most max_backoff);
retries=0 turns that off.
"""
import asyncio
import base64
import dataclasses
import http.client
import json
import socket as _socket
import ssl as _ssl
import time
from typing import Any, Dict, List, Optional
from urllib.parse import quote, urlsplit

__all__ = ["Client", "AsyncClient", "Session", "AsyncSession", "Result", "CellResult", "CollectedFile", "Event",
           "EchoSandboxError", "Unavailable", "Busy", "Rejected", "SessionGone"]
__version__ = "0.2.0"


# ---- errors ----

class EchoSandboxError(Exception):
    """The request did not run to a result: code is the engine's error code
    (invalid_request, unauthorized, policy_error, backend_unavailable,
    backend_error, exec_not_found, exec_denied, sandbox_setup, system_error,
    interrupted), http_status the daemon's answer (400, 401, 429, ...; 200
    for an error found after the run started; None when there was no
    answer), retryable whether the same request may succeed later,
    retry_after the seconds the daemon asked to wait (Retry-After) or None,
    result the Result the daemon sent with it, or None."""

    def __init__(self, code, message, http_status=None, retryable=False, result=None, retry_after=None):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
        self.http_status = http_status
        self.retryable = retryable
        self.result = result
        self.retry_after = retry_after


class Unavailable(EchoSandboxError):
    """The daemon cannot be reached (nothing listens, the connection broke)
    or is stopping (503). retryable: the request was not sent, or the
    daemon said it did not run it."""


class Busy(EchoSandboxError):
    """429: every run slot of the daemon is taken and its queue is full
    (retry_after: the seconds it asked to wait); or 409: another cell of
    the session's kernel is going on (nothing of this one ran)."""


class Rejected(EchoSandboxError):
    """The daemon refused the request as it is (400 invalid, 401 no valid
    token, 404, 405, 413 too large): sending it again will not help."""


class SessionGone(Rejected):
    """404 for a session: unknown, or ended. session: its id; ended: why it
    ended (ttl, idle, deleted, died, memory), or None where the daemon does
    not know it (an unknown id)."""

    def __init__(self, code, message, http_status=404, session=None, ended=None):
        super().__init__(code, message, http_status)
        self.session = session
        self.ended = ended


def _error_for(obj, http_status, headers):
    """The exception for an answer that is not a result to return."""
    if http_status == 404 and isinstance(obj, dict) and ("session" in obj or "ended" in obj):
        err = obj.get("error") or {}
        return SessionGone(err.get("code", "invalid_request"), err.get("message", "no such session"), 404,
                           session=obj.get("session"), ended=obj.get("ended"))
    err = (obj or {}).get("error") or {}
    code = err.get("code", "system_error")
    message = err.get("message", "the daemon gave no reason")
    retryable = bool(err.get("retryable"))
    result = Result.from_json(obj) if isinstance(obj, dict) and "status" in obj else None
    return _kind(http_status)(code, message, http_status, retryable, result, _retry_after(headers))


def _kind(http_status):
    """The exception class of an answer's HTTP status."""
    if http_status in (409, 429):
        return Busy
    if http_status == 503:
        return Unavailable
    if http_status is not None and 400 <= http_status < 500:
        return Rejected
    return EchoSandboxError


def _retry_after(headers):
    value = (headers or {}).get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: not sent by this daemon; backoff then


def _unreachable(where, e, sent):
    """A socket error as Unavailable: retryable when the request was not
    sent (the daemon cannot have run it)."""
    if sent:
        return Unavailable("backend_unavailable", "the connection to %s broke before the answer: %s (the request "
                           "may have run)" % (where, e), None, False)
    return Unavailable("backend_unavailable", "cannot reach the daemon at %s: %s" % (where, e), None, True)


# ---- results and events ----

class _Fields:
    """Lets a typed value be read as the dict it was (result["exit_code"])."""

    def __getitem__(self, name):
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None

    def get(self, name, default=None):
        return getattr(self, name, default)


def _field_bytes(obj, name):
    """The bytes of a field the daemon sends as text, or as name_base64
    where they are not UTF-8 (a stream, an event's data, a file's path)."""
    if name + "_base64" in obj:
        return base64.b64decode(obj[name + "_base64"])
    return obj.get(name, "").encode("utf-8")


@dataclasses.dataclass(frozen=True)
class CollectedFile(_Fields):
    """A file the request's collect patterns brought back: path (text;
    bytes that are not UTF-8 replaced), path_raw (its bytes), size (the
    whole file's), truncated, data (the bytes that came)."""
    path: str
    path_raw: bytes
    size: int
    truncated: bool
    data: bytes

    @classmethod
    def from_json(cls, f):
        path_raw = _field_bytes(f, "path")
        return cls(path_raw.decode("utf-8", "replace"), path_raw, f.get("size", 0), f.get("truncated", False),
                   base64.b64decode(f.get("base64", "")))


@dataclasses.dataclass(frozen=True)
class Result(_Fields):
    """One run's result, as the result object of the daemon's API says.
    stdout and stderr are text (bytes that are not UTF-8 decoded with
    replacement characters); stdout_raw and stderr_raw are the bytes.
    fallback: why a run the policy sent to k8s ran locally (else None).
    session: the session's id, for a run in one (else None).
    warm: a k8s run outside a session: whether a warm pod ran it (else None).
    warnings: what the run was degraded by, one entry each (a limit held
    less strictly than asked); empty on a clean run.
    egress: with a network allow list, the connections the program tried,
    each {host, port, allowed, reason, bytes_out, bytes_in};
    egress_left_off how many more there were.
    raw: the result object as the daemon sent it."""
    status: str
    exit_code: Optional[int]
    reason: Optional[str] = None
    signal: Optional[int] = None
    killed_by_us: bool = False
    timed_out: bool = False
    duration_ms: Optional[float] = None
    sandbox_type: Optional[str] = None
    isolation: Optional[str] = None
    pod: Optional[str] = None
    session: Optional[str] = None
    warm: Optional[bool] = None
    stdout: str = ""
    stderr: str = ""
    stdout_raw: bytes = b""
    stderr_raw: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    stdout_bytes: Optional[int] = None
    stderr_bytes: Optional[int] = None
    cpu_time_ms: Optional[int] = None
    memory_peak_bytes: Optional[int] = None
    warnings: List[str] = dataclasses.field(default_factory=list)
    cleanup_error: Optional[str] = None
    fallback: Optional[str] = None
    files: List[CollectedFile] = dataclasses.field(default_factory=list)
    files_truncated: bool = False
    egress: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    egress_left_off: int = 0
    error: Optional[Dict[str, Any]] = None
    raw: Dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, obj):
        stdout_raw, stderr_raw = _field_bytes(obj, "stdout"), _field_bytes(obj, "stderr")
        plain = {f.name: obj[f.name] for f in dataclasses.fields(cls)
                 if f.name in obj and f.name not in ("stdout", "stderr", "files")}
        return cls(**plain, stdout=stdout_raw.decode("utf-8", "replace"),
                   stderr=stderr_raw.decode("utf-8", "replace"), stdout_raw=stdout_raw, stderr_raw=stderr_raw,
                   files=[CollectedFile.from_json(f) for f in obj.get("files", [])], raw=obj)

    @property
    def ok(self):
        """The program ran and exited 0."""
        return self.status == "exited" and self.exit_code == 0


@dataclasses.dataclass(frozen=True)
class CellResult(_Fields):
    """A cell's result (Session.cell), as `echo-sandbox session cell --json`
    prints it. status: ok (value: the last expression's, as text, or
    None), error (error: {name, message, traceback}, what the code
    raised), timed_out or interrupted (the cell, not the kernel; state
    kept unless state_lost), died (the kernel ended: state_lost).
    state_lost: the kernel's earlier state is gone. raw: the object as
    the daemon sent it."""
    status: str
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    value: Optional[str] = None
    error: Optional[Dict[str, str]] = None
    state_lost: bool = False
    message: Optional[str] = None
    code: Optional[str] = None
    duration_ms: Optional[float] = None
    session: Optional[str] = None
    language: Optional[str] = None
    raw: Dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, obj):
        plain = {f.name: obj[f.name] for f in dataclasses.fields(cls) if f.name in obj and f.name != "raw"}
        return cls(**plain, raw=obj)

    @property
    def ok(self):
        """The cell ran and raised nothing."""
        return self.status == "ok"


_Bytes = bytes  # Event has a field named bytes


@dataclasses.dataclass(frozen=True)
class Event(_Fields):
    """One line of a streamed run. event "output": stream ("stdout" or
    "stderr"), data (text) and bytes; "truncated": max_stream_bytes, the
    ceiling of live output that was reached (the result keeps its own);
    "result": result, the Result, always the last."""
    event: str
    stream: Optional[str] = None
    data: Optional[str] = None
    bytes: Optional[_Bytes] = None
    max_stream_bytes: Optional[int] = None
    result: Optional[Result] = None

    @classmethod
    def from_json(cls, obj):
        kind = obj.get("event")
        if kind == "output":
            raw = _field_bytes(obj, "data")
            return cls(kind, stream=obj.get("stream"), data=raw.decode("utf-8", "replace"), bytes=raw)
        if kind == "result":
            return cls(kind, result=Result.from_json(obj["result"]))
        return cls(kind, max_stream_bytes=obj.get("max_stream_bytes"))


# ---- what both clients share ----

class _Base:
    def __init__(self, url=None, socket=None, token=None, timeout=None, retries=3, backoff=0.5, max_backoff=30.0):
        if (url is None) == (socket is None):
            raise ValueError("give one of url and socket")
        if retries < 0 or backoff < 0:
            raise ValueError("retries and backoff must not be negative")
        self.url, self.socket, self.token, self.timeout = url, socket, token, timeout
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("url must be http://HOST:PORT or https://HOST:PORT, not %r" % url)
            self._parts = parts
        self._where = url if url is not None else "unix:" + socket

    def _headers(self, body, content_type="application/json"):
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        return headers

    @staticmethod
    def _body(request, fields):
        if request is not None and fields:
            raise ValueError("give a request dict or keyword fields, not both")
        return json.dumps(request if request is not None else fields).encode("utf-8")

    def _delay(self, error, attempt):
        """Seconds before try attempt+1 of a request that failed with error,
        or None when it is not to be tried again."""
        if not error.retryable or attempt >= self.retries:
            return None
        if error.retry_after is not None:
            return min(error.retry_after, self.max_backoff)
        return min(self.backoff * (2 ** attempt), self.max_backoff)

    @staticmethod
    def _decode(status, text, headers):
        try:
            return json.loads(text)
        except ValueError:
            raise _kind(status)("system_error", "the daemon answered %d with no JSON: %r" % (status, text[:200]),
                                status, status in (429, 503), None, _retry_after(headers)) from None

    @staticmethod
    def _result(status, obj, headers):
        if status != 200 or obj.get("status") == "error":
            raise _error_for(obj, status, headers)
        return Result.from_json(obj)

    @staticmethod
    def _cell(status, obj, headers):
        """A cell's answer: its CellResult, or the error raised (failed: the
        engine could not run it)."""
        if status != 200:
            raise _error_for(obj, status, headers)
        if obj.get("status") == "failed":
            raise EchoSandboxError(obj.get("code") or "system_error", obj.get("message") or "the cell did not run",
                                   200)
        return CellResult.from_json(obj)

    @staticmethod
    def _download(path, status, data, headers):
        """A file's bytes, from a GET of it; a directory or a refusal raised."""
        json_answer = headers.get("content-type", "").startswith("application/json")
        if status == 200 and not json_answer:
            return data
        if status == 200:
            raise Rejected("invalid_request", "'%s' is a directory: Session.files lists it" % path, 200)
        raise _error_for(_Base._decode(status, data, headers), status, headers)

    @staticmethod
    def _event(line, status):
        event = Event.from_json(json.loads(line))
        if event.event == "result" and event.result.status == "error":
            raise _error_for(event.result.raw, status, None)
        return event


# ---- blocking ----

class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class Events:
    """The events of one streamed run, as an iterator (Event values, the
    last one event "result"); close() ends it early (the run goes on in the
    daemon to its end). Also a context manager."""

    def __init__(self, gen, conn):
        self._gen, self._conn = gen, conn

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._gen)

    def close(self):
        self._gen.close()
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Client(_Base):
    """url: "http://HOST:PORT" (https too), or socket: the unix socket's path
    (one of the two). token: sent as "Authorization: Bearer TOKEN". timeout:
    seconds for each socket operation (None: no limit); a run's own limit is
    its request's timeout_ms. retries, backoff, max_backoff: see the
    module's documentation. A context manager: close() ends the streams it
    has open (it holds no other connection between calls)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._open = set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for events in list(self._open):
            events.close()
        self._open.clear()

    def _connection(self):
        if self.socket is not None:
            return _UnixConnection(self.socket, self.timeout)
        p = self._parts
        cls = http.client.HTTPSConnection if p.scheme == "https" else http.client.HTTPConnection
        return cls(p.hostname, p.port, timeout=self.timeout)

    def _send(self, method, path, body, content_type="application/json"):
        """One exchange, up to the answer's headers: (conn, response)."""
        conn = self._connection()
        try:
            conn.connect()
        except OSError as e:  # refused, no socket file, no route, timed out
            conn.close()
            raise _unreachable(self._where, e, sent=False) from e
        try:
            try:
                conn.request(method, path, body=body, headers=self._headers(body, content_type))
            except (BrokenPipeError, ConnectionResetError):
                # The daemon answers some refusals (401, 413) from the
                # headers and closes without reading the body: its answer
                # is there to read all the same.
                pass
            return conn, conn.getresponse()
        except OSError as e:
            conn.close()
            raise _unreachable(self._where, e, sent=True) from e
        except BaseException:
            conn.close()
            raise

    def _with_retries(self, once):
        for attempt in range(self.retries + 1):
            try:
                return once()
            except EchoSandboxError as e:
                delay = self._delay(e, attempt)
                if delay is None:
                    raise
                time.sleep(delay)

    def _exchange(self, method, path, body=None, content_type="application/json"):
        """One exchange: (status, the answer's bytes, headers)."""
        conn, resp = self._send(method, path, body, content_type)
        try:
            text = resp.read()
        except OSError as e:
            raise _unreachable(self._where, e, sent=True) from e
        finally:
            conn.close()
        return resp.status, text, {k.lower(): v for k, v in resp.getheaders()}

    def _call(self, method, path, body=None):
        """One exchange whose answer is a JSON object: (status, object, headers)."""
        status, text, headers = self._exchange(method, path, body)
        return status, self._decode(status, text, headers), headers

    def run(self, request=None, **fields):
        """Runs one request (a dict, or its fields as keywords: shell=...,
        program=... with args=[...], language=... with code=..., stdin,
        env, files, collect, limits, timeout_ms, backend, ...) and returns
        its Result; raises EchoSandboxError (or a kind of it) when it could
        not run, once the retries are spent."""
        return self._run_at("/v1/run", self._body(request, fields))

    def _run_at(self, path, body):
        return self._with_retries(lambda: self._result(*self._call("POST", path, body)))

    def stream(self, request=None, **fields):
        """Runs one request and returns its events as they come (Events: an
        iterator of Event). A request refused from the start raises at once
        (after the retries); an engine error found later raises after the
        events that came before it."""
        return self._stream_at("/v1/run", self._body(request, fields))

    def _stream_at(self, path, body):
        conn, resp = self._with_retries(lambda: self._open_stream(path, body))
        events = Events(self._events(conn, resp), conn)
        self._open.add(events)
        return events

    def _open_stream(self, path, body):
        conn, resp = self._send("POST", path + "?stream=1", body)
        if resp.status == 200:
            return conn, resp
        try:
            text = resp.read()
        finally:
            conn.close()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        raise _error_for(self._decode(resp.status, text, headers), resp.status, headers)

    def _events(self, conn, resp):
        try:
            for line in resp:
                if line.strip():
                    yield self._event(line, resp.status)
        except OSError as e:
            raise _unreachable(self._where, e, sent=True) from e
        finally:
            conn.close()
            self._open = {e for e in self._open if e._conn is not conn}

    def languages(self):
        """The languages the daemon's policy knows: dicts with name, image
        (k8s) and file (where the code goes)."""
        def once():
            status, obj, headers = self._call("GET", "/v1/languages")
            if status != 200:
                raise _error_for(obj, status, headers)
            return obj["languages"]
        return self._with_retries(once)

    def ready(self):
        """Whether the daemon is ready (GET /readyz), and what it says."""
        status, obj, _ = self._call("GET", "/readyz")
        return status == 200, obj

    def _object(self, method, path, body=None, want=200):
        """An exchange whose answer is an object (a session's): the object,
        or the error raised."""
        def once():
            status, obj, headers = self._call(method, path, body)
            if status != want:
                raise _error_for(obj, status, headers)
            return obj
        return self._with_retries(once)

    def session(self, **options):
        """Creates a session (POST /v1/sessions): a sandbox that lives, whose
        working dir persists from run to run. options: ttl_ms,
        idle_timeout_ms, limits (memory_bytes, cpu, max_processes hold all
        its runs together), labels, backend. Returns a Session, a context
        manager that deletes it on exit."""
        return Session(self, self._object("POST", "/v1/sessions", self._body(None, options), want=201))

    def sessions(self):
        """The live sessions (GET /v1/sessions): dicts as Session.info gives."""
        return self._object("GET", "/v1/sessions")["sessions"]


class Session:
    """A session of the daemon (Client.session): id, and what its create
    answered in created. run and stream are Client's, in the session;
    info() its state now; delete() ends it (every process in it) and removes
    its working dir. A context manager: delete() on exit. A session that
    has ended raises SessionGone, with why (ttl, idle, deleted, ...).

    What persists from run to run is the working dir (its files); the
    processes a run starts end with that run."""

    def __init__(self, client, created):
        self._client = client
        self.id = created["id"]
        self.created = created
        self._deleted = False

    def _path(self, *rest):
        return "/".join(("/v1/sessions", self.id) + rest)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.delete()

    def run(self, request=None, **fields):
        """As Client.run, in the session; the Result's session is its id."""
        return self._client._run_at(self._path("run"), self._client._body(request, fields))

    def stream(self, request=None, **fields):
        """As Client.stream, in the session."""
        return self._client._stream_at(self._path("run"), self._client._body(request, fields))

    def _cell_body(self, code, language, timeout_ms):
        body = {"language": language, "code": code}
        if timeout_ms is not None:
            body["timeout_ms"] = timeout_ms
        return json.dumps(body).encode("utf-8")

    def _file(self, path):
        return self._path("files", quote(path.lstrip("/") if path else "", safe="/"))

    def cell(self, code, language="python", timeout_ms=None):
        """Runs code in the session's kernel of language (python, node):
        its variables, imports and definitions persist from cell to cell.
        Returns a CellResult (a cell that raised is one: status "error");
        raises Busy (409) while another cell of the kernel goes on, Rejected
        for a language without a kernel, SessionGone once it has ended.
        timeout_ms: the cell's deadline (the policy's where None)."""
        body = self._cell_body(code, language, timeout_ms)
        c = self._client
        return c._with_retries(lambda: c._cell(*c._call("POST", self._path("cell"), body)))

    def upload(self, path, data, mode=None):
        """Writes data (bytes or str) as the file path of the working dir,
        its directories made where missing; mode: its permission bits
        (0o644 where None). Refused (Rejected) outside the working dir or
        through a link a run planted; too large (413) a Rejected too."""
        query = "" if mode is None else "?mode=%o" % mode
        data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        c = self._client
        return c._with_retries(lambda: self._written(*c._exchange("PUT", self._file(path) + query, data,
                                                                   "application/octet-stream")))

    def _written(self, status, text, headers):
        obj = self._client._decode(status, text, headers)
        if status != 200:
            raise _error_for(obj, status, headers)
        return obj

    def download(self, path):
        """The bytes of the file path of the working dir. Refused (Rejected)
        for a directory (files() lists it), outside the working dir, or
        through a link a run planted."""
        c = self._client
        return c._with_retries(lambda: c._download(path, *c._exchange("GET", self._file(path))))

    def files(self, path=""):
        """The entries of a directory of the working dir ("": the working
        dir itself): dicts with name, type (file, dir, link, other), mode
        and size."""
        return self._client._object("GET", self._file(path) if path else self._path("files"))["entries"]

    def info(self):
        """The session now: id, state, runs, created_ms, expires_ms, ttl_ms,
        idle_timeout_ms, pid, cgroups; SessionGone once it has ended."""
        return self._client._object("GET", self._path())

    def delete(self):
        """Ends the session and removes what it held. Returns what the daemon
        said of it (state "ended"), or None when it had ended already (why:
        SessionGone's ended, from info())."""
        if self._deleted:
            return None
        self._deleted = True
        try:
            return self._client._object("DELETE", self._path())
        except SessionGone:
            return None


# ---- asyncio ----

async def _read_head(reader):
    """An HTTP/1.1 answer's status and headers (names in lower case)."""
    line = await reader.readline()
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ConnectionResetError("no HTTP answer (%r)" % line[:80])
    headers = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _body_chunks(reader, headers):
    """The body's bytes as they come: chunked, by Content-Length, or to EOF."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                return
            data = await reader.readexactly(size)
            await reader.readexactly(2)
            yield data
    elif "content-length" in headers:
        yield await reader.readexactly(int(headers["content-length"]))
    else:
        yield await reader.read()


class AsyncClient(_Base):
    """Client's surface on asyncio (standard library only): the same
    arguments and errors; run, languages and ready are coroutines, stream
    an async iterator of Event. An async context manager."""

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def close(self):
        """Holds no connection between calls: nothing to close."""

    async def _connect(self):
        try:
            if self.socket is not None:
                return await asyncio.wait_for(asyncio.open_unix_connection(self.socket), self.timeout)
            p = self._parts
            context = _ssl.create_default_context() if p.scheme == "https" else None
            port = p.port or (443 if p.scheme == "https" else 80)
            return await asyncio.wait_for(asyncio.open_connection(p.hostname, port, ssl=context), self.timeout)
        except (OSError, asyncio.TimeoutError) as e:
            raise _unreachable(self._where, e, sent=False) from e

    async def _send(self, method, path, body, content_type="application/json"):
        """One exchange, up to the answer's headers: (reader, writer, status, headers)."""
        reader, writer = await self._connect()
        host = self._parts.netloc if self.socket is None else "localhost"
        head = ["%s %s HTTP/1.1" % (method, path), "Host: " + host, "Connection: close"]
        head += ["%s: %s" % kv for kv in self._headers(body, content_type).items()]
        if body is not None:
            head.append("Content-Length: %d" % len(body))
        try:
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b""))
            try:
                await writer.drain()
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused from the headers (401, 413): the answer is there
            status, headers = await asyncio.wait_for(_read_head(reader), self.timeout)
            return reader, writer, status, headers
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            writer.close()
            raise _unreachable(self._where, e, sent=True) from e
        except BaseException:
            writer.close()
            raise

    async def _exchange(self, method, path, body=None, content_type="application/json"):
        reader, writer, status, headers = await self._send(method, path, body, content_type)
        try:
            text = b"".join([chunk async for chunk in _body_chunks(reader, headers)])
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            raise _unreachable(self._where, e, sent=True) from e
        finally:
            writer.close()
        return status, text, headers

    async def _call(self, method, path, body=None):
        status, text, headers = await self._exchange(method, path, body)
        return status, self._decode(status, text, headers), headers

    async def _with_retries(self, once):
        for attempt in range(self.retries + 1):
            try:
                return await once()
            except EchoSandboxError as e:
                delay = self._delay(e, attempt)
                if delay is None:
                    raise
                await asyncio.sleep(delay)

    async def run(self, request=None, **fields):
        """As Client.run."""
        return await self._run_at("/v1/run", self._body(request, fields))

    async def _run_at(self, path, body):
        async def once():
            return self._result(*await self._call("POST", path, body))
        return await self._with_retries(once)

    def stream(self, request=None, **fields):
        """As Client.stream, as an async iterator: async for event in ..."""
        return self._stream_at("/v1/run", self._body(request, fields))

    async def _stream_at(self, path, body):
        reader, writer, status, headers = await self._with_retries(lambda: self._open_stream(path, body))
        try:
            pending = b""
            async for chunk in _body_chunks(reader, headers):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield self._event(line, status)
            if pending.strip():
                yield self._event(pending, status)
        except (OSError, asyncio.IncompleteReadError) as e:
            raise _unreachable(self._where, e, sent=True) from e
        finally:
            writer.close()

    async def _open_stream(self, path, body):
        reader, writer, status, headers = await self._send("POST", path + "?stream=1", body)
        if status == 200:
            return reader, writer, status, headers
        try:
            text = b"".join([chunk async for chunk in _body_chunks(reader, headers)])
        finally:
            writer.close()
        raise _error_for(self._decode(status, text, headers), status, headers)

    async def languages(self):
        """As Client.languages."""
        async def once():
            status, obj, headers = await self._call("GET", "/v1/languages")
            if status != 200:
                raise _error_for(obj, status, headers)
            return obj["languages"]
        return await self._with_retries(once)

    async def ready(self):
        """As Client.ready."""
        status, obj, _ = await self._call("GET", "/readyz")
        return status == 200, obj

    async def _object(self, method, path, body=None, want=200):
        async def once():
            status, obj, headers = await self._call(method, path, body)
            if status != want:
                raise _error_for(obj, status, headers)
            return obj
        return await self._with_retries(once)

    def session(self, **options):
        """As Client.session: `async with client.session(...) as session:`,
        or `session = await client.session(...)` (then `await
        session.delete()`)."""
        return AsyncSession(self, options)

    async def sessions(self):
        """As Client.sessions."""
        return (await self._object("GET", "/v1/sessions"))["sessions"]


class AsyncSession:
    """Session's surface on asyncio: run, info and delete are coroutines,
    stream an async iterator; made by awaiting it or entering it."""

    def __init__(self, client, options):
        self._client, self._options = client, options
        self.id = self.created = None
        self._deleted = False

    _path = Session._path

    async def _create(self):
        if self.id is None:
            self.created = await self._client._object("POST", "/v1/sessions", self._client._body(None, self._options),
                                                      want=201)
            self.id = self.created["id"]
        return self

    def __await__(self):
        return self._create().__await__()

    async def __aenter__(self):
        return await self._create()

    async def __aexit__(self, *exc):
        await self.delete()

    async def run(self, request=None, **fields):
        """As Session.run."""
        return await self._client._run_at(self._path("run"), self._client._body(request, fields))

    def stream(self, request=None, **fields):
        """As Session.stream, as an async iterator."""
        return self._client._stream_at(self._path("run"), self._client._body(request, fields))

    _cell_body = Session._cell_body
    _file = Session._file
    _written = Session._written

    async def cell(self, code, language="python", timeout_ms=None):
        """As Session.cell."""
        body, c = self._cell_body(code, language, timeout_ms), self._client

        async def once():
            return c._cell(*await c._call("POST", self._path("cell"), body))
        return await c._with_retries(once)

    async def upload(self, path, data, mode=None):
        """As Session.upload."""
        query = "" if mode is None else "?mode=%o" % mode
        data = data.encode("utf-8") if isinstance(data, str) else bytes(data)

        async def once():
            return self._written(*await self._client._exchange("PUT", self._file(path) + query, data,
                                                                "application/octet-stream"))
        return await self._client._with_retries(once)

    async def download(self, path):
        """As Session.download."""
        async def once():
            return self._client._download(path, *await self._client._exchange("GET", self._file(path)))
        return await self._client._with_retries(once)

    async def files(self, path=""):
        """As Session.files."""
        return (await self._client._object("GET", self._file(path) if path else self._path("files")))["entries"]

    async def info(self):
        """As Session.info."""
        return await self._client._object("GET", self._path())

    async def delete(self):
        """As Session.delete."""
        if self._deleted or self.id is None:
            return None
        self._deleted = True
        try:
            return await self._client._object("DELETE", self._path())
        except SessionGone:
            return None
