"""The client's own surface: its exceptions, retries, the context manager,
the typed result and events, and AsyncClient; against a real daemon
(test_client.Daemon) and, for answers a daemon gives only under load, a
scripted HTTP server of the standard library's.
"""
import asyncio
import dataclasses
import http.server
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from echo_sandbox import (AsyncClient, Busy, Client, CollectedFile, EchoSandboxError, Event, Rejected,  # noqa: E402
                          Result, Unavailable)
from test_client import Daemon, locked_daemon  # noqa: E402

RESULT = {"status": "exited", "exit_code": 0, "stdout": "fine\n", "stderr": "", "duration_ms": 1.0,
          "sandbox_type": "local", "timed_out": False, "killed_by_us": False}


def free_port():
    """A port nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Scripted:
    """An HTTP server that answers POST /v1/run from a script: a list of
    (status, headers, body) taken in order, the last one repeated; it counts
    the requests."""

    def __init__(self, script):
        self.script, self.count = list(script), 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, headers, body = outer.script[min(outer.count, len(outer.script) - 1)]
                outer.count += 1
                data = json.dumps(body).encode()
                self.send_response(status)
                for k, v in dict(headers, **{"Content-Type": "application/json",
                                             "Content-Length": str(len(data))}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.start()
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def refusal(status, code, retryable, retry_after=None):
    body = {"status": "error", "exit_code": 125, "error": {"code": code, "message": "no", "retryable": retryable}}
    return (status, {"Retry-After": retry_after} if retry_after is not None else {}, body)


class Errors(unittest.TestCase):
    def test_a_daemon_that_is_down_is_unavailable_not_a_bare_socket_error(self):
        for client in (Client(url="http://127.0.0.1:%d" % free_port(), retries=0),
                       Client(socket="/nonexistent/echo-sandbox.sock", retries=0)):
            with self.assertRaises(Unavailable) as caught:
                client.run(shell="true")
            e = caught.exception
            self.assertNotIsInstance(e, OSError)
            self.assertIsInstance(e.__cause__, OSError)
            self.assertEqual((e.code, e.http_status, e.retryable), ("backend_unavailable", None, True))
            self.assertIn("cannot reach the daemon", e.message)

    def test_busy_is_retried_after_retry_after_until_it_runs(self):
        server = Scripted([refusal(429, "backend_unavailable", True, "0")] * 2 + [(200, {}, RESULT)])
        try:
            r = Client(url=server.url, retries=2).run(shell="true")
            self.assertEqual((r.stdout, server.count), ("fine\n", 3))
        finally:
            server.stop()

    def test_retries_can_be_turned_off_and_busy_says_the_delay(self):
        server = Scripted([refusal(429, "backend_unavailable", True, "7")])
        try:
            with self.assertRaises(Busy) as caught:
                Client(url=server.url, retries=0).run(shell="true")
            self.assertEqual((caught.exception.retry_after, caught.exception.http_status), (7.0, 429))
            self.assertTrue(caught.exception.retryable)
            self.assertEqual(server.count, 1)
        finally:
            server.stop()

    def test_backs_off_without_retry_after_and_gives_up_after_the_retries(self):
        server = Scripted([refusal(503, "backend_unavailable", True)])
        try:
            with self.assertRaises(Unavailable) as caught:
                Client(url=server.url, retries=3, backoff=0).run(shell="true")
            self.assertEqual((caught.exception.http_status, server.count), (503, 4))
        finally:
            server.stop()

    def test_does_not_retry_what_cannot_pass(self):
        server = Scripted([refusal(400, "invalid_request", False)])
        try:
            with self.assertRaises(Rejected):
                Client(url=server.url, backoff=0).run(shell="true")
            self.assertEqual(server.count, 1)
        finally:
            server.stop()

    def test_async_retries_too(self):
        server = Scripted([refusal(429, "backend_unavailable", True, "0"), (200, {}, RESULT)])
        try:
            r = asyncio.run(AsyncClient(url=server.url, retries=1).run(shell="true"))
            self.assertEqual((r.stdout, server.count), ("fine\n", 2))
        finally:
            server.stop()


class AgainstTheDaemon(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="esb-py-surface-")
        cls.daemon = Daemon("--listen", "127.0.0.1:0")
        cls.url = "http://127.0.0.1:%s" % cls.daemon.where.rsplit(":", 1)[-1]
        cls.locked, cls.socket_path = locked_daemon(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        cls.locked.stop()
        shutil.rmtree(cls.tmp)

    def test_the_result_is_typed(self):
        with Client(url=self.url) as client:
            r = client.run(shell="echo x > a.txt; echo hi", collect=["*.txt"])
        self.assertTrue(dataclasses.is_dataclass(r))
        self.assertIsInstance(r, Result)
        self.assertEqual((r.stdout, r.exit_code, r.sandbox_type), ("hi\n", 0, "local"))
        self.assertEqual(r.files, [CollectedFile("a.txt", b"a.txt", 2, False, b"x\n")])
        self.assertIsNone(r.fallback)
        self.assertEqual(r.warnings, [], "a clean run has no warnings")
        degraded = Result.from_json({"status": "exited", "exit_code": 0, "warnings": ["memory", "cpu"]})
        self.assertEqual(degraded.warnings, ["memory", "cpu"], "one entry per degradation, in order")

    def test_an_engine_error_carries_a_typed_result(self):
        with self.assertRaises(EchoSandboxError) as caught:
            Client(url=self.url).run(program="/nonexistent/program")
        self.assertIsInstance(caught.exception.result, Result)
        self.assertEqual((caught.exception.result.exit_code, caught.exception.code), (127, "exec_not_found"))
        self.assertFalse(caught.exception.retryable)

    def test_events_are_an_iterator_of_typed_events(self):
        with Client(url=self.url) as client:
            events = client.stream(shell="echo one; echo two >&2")
            self.assertIs(iter(events), events)
            seen = list(events)
        self.assertTrue(all(isinstance(e, Event) for e in seen))
        self.assertEqual(seen[-1].event, "result")
        self.assertEqual(seen[-1].result.stdout, "one\n")
        self.assertEqual(b"".join(e.bytes for e in seen if e.stream == "stderr"), b"two\n")

    def test_leaving_the_with_block_closes_the_streams_it_left_open(self):
        with Client(url=self.url) as client:
            events = client.stream(shell="echo one; sleep 1; echo two")
            first = next(events)
        self.assertEqual((first.event, first.data), ("output", "one\n"))
        self.assertRaises(StopIteration, next, events)

    def test_unauthorized_is_rejected(self):
        with self.assertRaises(Rejected) as caught:
            Client(socket=self.socket_path).run(shell="true")
        self.assertEqual((caught.exception.code, caught.exception.http_status), ("unauthorized", 401))

    def test_async_has_the_same_surface(self):
        async def main():
            async with AsyncClient(url=self.url, timeout=60) as client:
                r = await client.run(language="python", code="print(6*7)")
                seen = [e async for e in client.stream(shell="echo one; echo two >&2")]
                names = [lang["name"] for lang in await client.languages()]
                ready, _ = await client.ready()
                try:
                    await client.run(shell="true", timeout_ms=-1)
                except Rejected as e:
                    rejected = e
            async with AsyncClient(socket=self.socket_path, token="s3cret") as client:
                via_socket = await client.run(shell="echo via the socket")
            return r, seen, names, ready, rejected, via_socket
        r, seen, names, ready, rejected, via_socket = asyncio.run(main())
        self.assertIsInstance(r, Result)
        self.assertEqual(r.stdout, "42\n")
        self.assertEqual(seen[-1].result.stderr, "two\n")
        self.assertEqual(b"".join(e.bytes for e in seen if e.stream == "stdout"), b"one\n")
        self.assertIn("python", names)
        self.assertTrue(ready)
        self.assertEqual((rejected.code, rejected.http_status), ("invalid_request", 400))
        self.assertEqual(via_socket.stdout, "via the socket\n")

    def test_async_a_daemon_that_is_down_is_unavailable(self):
        client = AsyncClient(url="http://127.0.0.1:%d" % free_port(), retries=0)
        with self.assertRaises(Unavailable) as caught:
            asyncio.run(client.run(shell="true"))
        self.assertTrue(caught.exception.retryable)


class Busy429(unittest.TestCase):
    """A real daemon with one slot and no queue, its slot held."""

    def test_busy_with_the_daemons_retry_after(self):
        daemon = Daemon("--listen", "127.0.0.1:0", "--max-running", "1", "--max-queue", "0", "--grace", "0.1")
        url = "http://127.0.0.1:%s" % daemon.where.rsplit(":", 1)[-1]
        holder = threading.Thread(target=lambda: Client(url=url, retries=0).run(shell="sleep 30"))
        holder.start()
        try:
            for _ in range(2000):  # the interlock: the run is in flight
                if "echo_sandbox_in_flight 1" in urllib.request.urlopen(url + "/metrics").read().decode():
                    break
            with self.assertRaises(Busy) as caught:
                Client(url=url, retries=0).run(shell="true")
            self.assertEqual((caught.exception.retry_after, caught.exception.http_status), (1.0, 429))
        finally:
            daemon.stop()
            holder.join()


if __name__ == "__main__":
    unittest.main()
