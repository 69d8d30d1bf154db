#!/usr/bin/env python3
"""HTTP requests for the serve specs (Lua has no sockets).

  http_client.py request ADDR METHOD PATH [BODY] [--token T] [--body-file FILE]
                 [--chunked] [--pad-header BYTES] [--deadline SECONDS]
      prints {"status": N, "body": "...", "headers": {name: value}} (names
      in lower case) for one request; the body may come
      from FILE, be sent in chunks (Transfer-Encoding: chunked), and the
      request carry a header of BYTES more; with a deadline, status 0 and
      body "no answer within ..." when the whole exchange took longer
      (--token "" sends "Authorization: Bearer " and nothing after it)
  http_client.py flood ADDR N BODY
      sends N POST /v1/run at once, each on its own connection; prints
      {"statuses": [...], "bodies": [...], "headers": [...]}
  http_client.py headers-only ADDR LENGTH [--token T]
      sends the headers of a POST /v1/run with Content-Length LENGTH and no
      byte of the body, then waits (20 s at most) for an answer; prints
      {"status": N} (0: no answer before the body was sent)
  http_client.py idle ADDR
      connects and sends nothing; prints {"closed": true} once the server
      closes the connection, {"closed": false} if it has not within 20 s

ADDR is a TCP port on 127.0.0.1 or unix:/path.

Every request and answer of `request` is checked against the daemon's
OpenAPI description (doc/openapi.json) with python3-jsonschema: the answer
against what the document says that status answers (a path's "{id}"
matching one segment), and the request body the daemon took (200, 201)
against the schema of the operation's body; an answer that
is not UTF-8 is no JSON at all. What does not
match is listed in the output's "schema_errors" (spec/support/daemon.lua
fails the spec on it).
"""
import http.client
import json
import os
import re
import signal
import socket
import sys
import threading


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.path_ = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path_)


def connect(addr, timeout=120):
    if addr.startswith("unix:"):
        return UnixConnection(addr[5:], timeout)
    return http.client.HTTPConnection("127.0.0.1", int(addr), timeout=timeout)


def chunks(data, size=64 * 1024):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def request(addr, method, path, body=None, token=None, chunked=False, pad_header=0):
    c = connect(addr)
    headers = {"Content-Type": "application/json"}
    if token is not None:  # "": "Authorization: Bearer " and nothing after it
        headers["Authorization"] = "Bearer " + token
    if pad_header:
        headers["X-Padding"] = "x" * pad_header
    # the bytes the spec gave, UTF-8 or not (argv's surrogateescape undone)
    data = body.encode("utf-8", "surrogateescape") if body is not None else None
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
        data = chunks(data)
    try:
        c.request(method, path, body=data, headers=headers, encode_chunked=chunked)
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused from the headers (401, 413), the body unread: the answer is there
    r = c.getresponse()
    raw = r.read()
    c.close()
    # JSON is UTF-8 (RFC 8259): a strict client refuses anything else.
    request.utf8 = True
    try:
        data = raw.decode("utf-8")
    except UnicodeDecodeError:
        request.utf8, data = False, raw.decode("utf-8", "replace")
    request.content_type = (r.getheader("Content-Type") or "").split(";")[0]
    return r.status, data, {k.lower(): v for k, v in r.getheaders()}


OPENAPI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "doc", "openapi.json")


def schema_errors(method, path, body, status, content_type, answer):
    """What of this exchange doc/openapi.json does not allow, as strings."""
    try:
        from jsonschema import Draft202012Validator
    except ImportError:
        return ["python3-jsonschema is missing (bootstrap.sh test installs it)"]
    with open(OPENAPI) as f:
        doc = json.load(f)

    def check(value, ref, what):
        # the document as the root, so that its #/components refs resolve
        validator = Draft202012Validator(dict(doc, **{"$ref": ref}))
        return ["%s: %s at %s" % (what, e.message, "/".join(map(str, e.absolute_path)) or "the top")
                for e in validator.iter_errors(value)]

    route = None
    for template, item in doc["paths"].items():  # "{id}": one segment; "{path}": the rest
        pattern = re.sub(r"\\{[^/]*\\}", "[^/]+", re.escape(template).replace(r"\{path\}", ".+"))
        if re.fullmatch(pattern, path.split("?")[0]):
            route = item.get(method.lower(), route)
    if route is None:
        return [] if status in (404, 405) else ["%s %s is not in the document" % (method, path)]
    errors = []
    answer_doc = route["responses"].get(str(status))
    if answer_doc is None:
        errors.append("%s %s answered %d, which the document does not list" % (method, path, status))
    elif "content" not in answer_doc and not content_type:
        pass  # an answer of the HTTP library's own, with no media type: the document says so
    elif content_type not in answer_doc.get("content", {}):
        errors.append("%s %s answered %d as %s, which the document does not list" % (method, path, status,
                                                                                      content_type))
    elif content_type == "application/json":
        schema = answer_doc["content"][content_type]["schema"]
        if "$ref" in schema:  # (the document itself is "an object")
            errors += check(json.loads(answer), schema["$ref"], "the answer")
    elif content_type == "application/x-ndjson":
        for line in answer.splitlines():
            if line.strip():
                errors += check(json.loads(line), "#/components/schemas/Event", "an event line")
    json_body = "application/json" in route.get("requestBody", {}).get("content", {})
    if status in (200, 201) and body is not None and json_body:
        schema = route["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        errors += check(json.loads(body), schema, "the request")
    return errors


def raw_socket(addr):
    if addr.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(addr[5:])
    else:
        s = socket.create_connection(("127.0.0.1", int(addr)))
    s.settimeout(20)
    return s


def headers_only(addr, length, token):
    s = raw_socket(addr)
    auth = "Authorization: Bearer %s\r\n" % token if token else ""
    s.sendall(("POST /v1/run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\n%s\r\n" % (length, auth)).encode())
    try:
        line = s.recv(4096).split(b"\r\n", 1)[0].split()
        return int(line[1]) if len(line) > 1 else 0
    except socket.timeout:
        return 0
    finally:
        s.close()


def idle(addr):
    s = raw_socket(addr)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    finally:
        s.close()


def option(args, name, flag=False):
    """Takes --NAME (and its value unless a flag) out of args."""
    if name not in args:
        return False if flag else None
    i = args.index(name)
    value = True if flag else args[i + 1]
    del args[i:i + (1 if flag else 2)]
    return value


def on_deadline(signum, frame):
    raise TimeoutError


def main():
    args = sys.argv[1:]
    token = option(args, "--token")
    body_file = option(args, "--body-file")
    chunked = option(args, "--chunked", flag=True)
    pad_header = int(option(args, "--pad-header") or 0)
    deadline = option(args, "--deadline")
    if args[0] == "request":
        sent = args[4] if len(args) > 4 else None
        if body_file:
            with open(body_file) as f:
                sent = f.read()
        if deadline:  # a hang detector: the whole exchange, not each socket call
            signal.signal(signal.SIGALRM, on_deadline)
            signal.alarm(int(deadline))
        try:
            status, body, headers = request(args[1], args[2], args[3], sent, token, chunked, pad_header)
            signal.alarm(0)
        except TimeoutError:
            status, body = 0, "no answer within %s s" % deadline
            request.content_type, headers = "", {}
        errors = [] if status == 0 else schema_errors(args[2], args[3], sent, status, request.content_type, body)
        if status != 0 and not request.utf8:
            errors.insert(0, "the answer is not UTF-8, so no JSON a strict client reads")
        print(json.dumps({"status": status, "body": body, "headers": headers, "schema_errors": errors}))
    elif args[0] == "headers-only":
        print(json.dumps({"status": headers_only(args[1], int(args[2]), token)}))
    elif args[0] == "idle":
        print(json.dumps({"closed": idle(args[1])}))
    elif args[0] == "flood":
        n, body = int(args[2]), args[3]
        statuses, bodies, headers = [None] * n, [None] * n, [None] * n

        def one(i):
            try:
                statuses[i], bodies[i], headers[i] = request(args[1], "POST", "/v1/run", body, token)
            except Exception as e:  # reported, not raised: the spec decides
                statuses[i], bodies[i], headers[i] = 0, str(e), {}
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(json.dumps({"statuses": statuses, "bodies": bodies, "headers": headers}))


if __name__ == "__main__":
    main()
