"""The client against a real daemon: $ECHO_SANDBOX_BIN serve (default: the
build tree's echo-sandbox), started for these tests on a free port and on a
unix socket with a token.

    ECHO_SANDBOX_BIN=build/echo-sandbox python3 -m unittest discover clients/python/tests
"""
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from echo_sandbox import (AsyncClient, Busy, CellResult, Client, EchoSandboxError, Rejected, Result,  # noqa: E402
                          Session, SessionGone)

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("ECHO_SANDBOX_BIN") or os.path.join(HERE, "..", "..", "..", "build", "echo-sandbox")


class Daemon:
    def __init__(self, *args, env=None):
        self.dir = tempfile.mkdtemp(prefix="esb-py-")
        self.port_file = os.path.join(self.dir, "port")
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = subprocess.Popen([BIN, "serve", "--port-file", self.port_file] + list(args),
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        for _ in range(1000):
            if os.path.exists(self.port_file):
                break
            time.sleep(0.01)
        with open(self.port_file) as f:
            self.where = f.read().strip()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.log.close()
        shutil.rmtree(self.dir)


class OverTcp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon("--listen", "127.0.0.1:0")
        port = cls.daemon.where.rsplit(":", 1)[-1]
        cls.client = Client(url="http://127.0.0.1:%s" % port, timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def test_runs_code_from_keywords(self):
        r = self.client.run(language="python", code="print(6*7)")
        self.assertIsInstance(r, Result)
        self.assertEqual(r.exit_code, 0)
        self.assertEqual(r.stdout, "42\n")
        self.assertEqual(r.status, "exited")
        self.assertTrue(r.ok)

    def test_runs_a_request_dict_and_reports_failure_as_a_result(self):
        r = self.client.run({"shell": "echo out; echo err >&2; exit 3"})
        self.assertEqual((r.exit_code, r.stdout, r.stderr, r.ok), (3, "out\n", "err\n", False))

    def test_gives_bytes_that_are_not_utf8(self):
        r = self.client.run(shell="printf '\\377\\376'")
        self.assertEqual(r.stdout_raw, b"\xff\xfe")

    def test_files_in_and_out(self):
        r = self.client.run(shell="cat in.txt > out.txt", files={"in.txt": "carried\n"}, collect=["*.txt"])
        self.assertEqual([f["path"] for f in r.files], ["in.txt", "out.txt"])
        self.assertEqual(r.files[1]["data"], b"carried\n")

    def test_gives_a_collected_name_that_is_not_utf8(self):
        r = self.client.run(shell="printf x > \"$(printf 'caf\\351').txt\"", collect=["*.txt"])
        self.assertEqual(r.raw["files"][0]["path_base64"], "Y2Fm6S50eHQ=")
        self.assertEqual(r.files[0]["path_raw"], b"caf\xe9.txt")
        self.assertEqual(r.files[0]["path"], "caf\ufffd.txt")
        self.assertEqual(r.files[0]["data"], b"x")

    def test_raises_the_engines_error_code(self):
        with self.assertRaises(EchoSandboxError) as caught:
            self.client.run(shell="true", timeout_ms=-1)
        self.assertEqual(caught.exception.code, "invalid_request")
        self.assertEqual(caught.exception.http_status, 400)
        self.assertIn("timeout_ms", caught.exception.message)
        with self.assertRaises(EchoSandboxError) as caught:
            self.client.run(program="/nonexistent/program")
        self.assertEqual(caught.exception.code, "exec_not_found")
        self.assertEqual(caught.exception.result["exit_code"], 127)

    def test_streams_output_before_the_result(self):
        events = list(self.client.stream(shell="echo one; echo two >&2"))
        kinds = [(e["event"], e.get("stream")) for e in events]
        self.assertEqual(kinds[-1], ("result", None))
        self.assertIn(("output", "stdout"), kinds[:-1])
        self.assertEqual(b"".join(e["bytes"] for e in events if e.get("stream") == "stdout"), b"one\n")
        self.assertEqual(events[-1]["result"].stderr, "two\n")

    def test_stream_raises_for_a_request_refused_at_once(self):
        with self.assertRaises(EchoSandboxError) as caught:
            list(self.client.stream(shell=5))
        self.assertEqual(caught.exception.code, "invalid_request")

    def test_lists_languages_and_readiness(self):
        names = [lang["name"] for lang in self.client.languages()]
        self.assertIn("python", names)
        ready, said = self.client.ready()
        self.assertTrue(ready, said)

    def test_refuses_unclear_arguments(self):
        with self.assertRaises(ValueError):
            Client()
        with self.assertRaises(ValueError):
            Client(url="ftp://x")
        with self.assertRaises(ValueError):
            self.client.run({"shell": "true"}, shell="true")


def locked_daemon(tmp):
    """A daemon on a unix socket under tmp that wants the token s3cret:
    (daemon, the socket's path)."""
    token_file = os.path.join(tmp, "token")
    with open(token_file, "w") as f:
        f.write("s3cret\n")
    socket_path = os.path.join(tmp, "run", "echo-sandbox.sock")
    return Daemon("--listen", "unix:" + socket_path, "--token-file", token_file), socket_path


class OverUnixSocketWithToken(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="esb-py-token-")
        cls.daemon, cls.socket_path = locked_daemon(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        shutil.rmtree(cls.tmp)

    def test_runs_with_the_token(self):
        r = Client(socket=self.socket_path, token="s3cret").run(shell="echo via the socket")
        self.assertEqual(r.stdout, "via the socket\n")

    def test_raises_without_it(self):
        with self.assertRaises(EchoSandboxError) as caught:
            Client(socket=self.socket_path).run(shell="true")
        self.assertEqual(caught.exception.http_status, 401)


class Sessions(unittest.TestCase):
    """Sessions through the daemon, in a directory of sessions of their own
    that must be empty at the end: nothing of a session is left."""

    @classmethod
    def setUpClass(cls):
        cls.sessions = tempfile.mkdtemp(prefix="esb-py-sessions-")
        cls.daemon = Daemon("--listen", "127.0.0.1:0", env=dict(os.environ, ECHO_SANDBOX_SESSION_DIR=cls.sessions))
        port = cls.daemon.where.rsplit(":", 1)[-1]
        cls.client = Client(url="http://127.0.0.1:%s" % port, timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        left = os.listdir(cls.sessions)
        os.rmdir(cls.sessions) if not left else None
        assert not left, "sessions left: %s" % left

    def test_keeps_files_from_run_to_run_and_deletes_the_session_on_exit(self):
        with self.client.session(ttl_ms=60000, idle_timeout_ms=60000) as s:
            self.assertIsInstance(s, Session)
            self.assertEqual(s.created["state"], "alive")
            r = s.run(shell="echo 41 > n")
            self.assertEqual(r.session, s.id)
            self.assertEqual(s.run({"shell": "cat n"}).stdout, "41\n")
            self.assertEqual(s.info()["runs"], 2)
            self.assertIn(s.id, [x["id"] for x in self.client.sessions()])
        self.assertFalse(os.path.exists(os.path.join(self.sessions, s.id)))
        with self.assertRaises(SessionGone) as caught:
            s.info()
        self.assertEqual((caught.exception.ended, caught.exception.session), ("deleted", s.id))
        with self.assertRaises(SessionGone):
            s.run(shell="true")
        self.assertIsNone(s.delete())

    def test_streams_a_run_in_a_session(self):
        with self.client.session() as s:
            events = list(s.stream(shell="echo one; echo two >&2"))
        self.assertEqual([(e.stream, e.data) for e in events[:-1]], [("stdout", "one\n"), ("stderr", "two\n")])
        self.assertEqual((events[-1].event, events[-1].result.session), ("result", s.id))

    def test_refuses_a_create_naming_the_field(self):
        for options, field in (({"shell": "true"}, "'shell'"), ({"ttl_ms": 0}, "'ttl_ms'"),
                               ({"env": {"A": "1"}}, "'env'")):
            with self.assertRaises(Rejected) as caught:
                self.client.session(**options)
            self.assertEqual(caught.exception.http_status, 400)
            self.assertIn(field, caught.exception.message)

    def test_the_async_client_has_sessions_too(self):
        async def go():
            async with AsyncClient(url=self.client.url, timeout=60) as client:
                async with client.session(idle_timeout_ms=60000) as s:
                    await s.run(shell="echo 7 > n")
                    r = await s.run(shell="cat n")
                    events = [e async for e in s.stream(shell="cat n")]
                    ids = [x["id"] for x in await client.sessions()]
                with self.assertRaises(SessionGone) as caught:
                    await s.info()
                return s.id, r, events, ids, caught.exception.ended
        sid, r, events, ids, ended = asyncio.run(go())
        self.assertEqual((r.stdout, r.session), ("7\n", sid))
        self.assertEqual([e.data for e in events[:-1]], ["7\n"])
        self.assertIn(sid, ids)
        self.assertEqual(ended, "deleted")

    def test_cells_keep_the_kernels_state(self):
        with self.client.session() as s:
            self.assertIsInstance(s.cell("x = 41"), CellResult)
            r = s.cell("x + 1", language="python", timeout_ms=10000)
            self.assertEqual((r.status, r.value, r.session, r.language), ("ok", "42", s.id, "python"))
            self.assertTrue(r.ok)
            r = s.cell("raise KeyError('k')")
            self.assertEqual((r.status, r.error["name"]), ("error", "KeyError"))
            self.assertIn("KeyError", r.error["traceback"])
            self.assertEqual(s.cell("print(x)").stdout, "41\n")
            with self.assertRaises(Rejected) as caught:
                s.cell("1", language="cobol")
            self.assertEqual(caught.exception.http_status, 400)
            self.assertIn("python", caught.exception.message)
        with self.assertRaises(SessionGone) as caught:
            s.cell("x")
        self.assertEqual(caught.exception.ended, "deleted")

    # A's cell blocks on a fifo of the working dir until a run writes it,
    # once B's cell has been refused: no sleep decides the order.
    def test_a_second_cell_while_one_goes_on_is_busy(self):
        once = Client(url=self.client.url, timeout=60, retries=0)
        with self.client.session() as s:
            s.run(shell="mkfifo go")
            answers = []
            a = threading.Thread(target=lambda: answers.append(
                s.cell("open('a-started', 'w').close()\nopen('go').read()", timeout_ms=60000)))
            a.start()
            try:
                while "a-started" not in [e["name"] for e in s.files()]:
                    time.sleep(0.01)
                with self.assertRaises(Busy) as caught:
                    Session(once, {"id": s.id}).cell("'b'")
                self.assertEqual((caught.exception.http_status, caught.exception.retryable), (409, True))
            finally:
                s.run(shell="echo done > go")
                a.join()
            self.assertEqual((answers[0].status, answers[0].value), ("ok", "'done\\n'"))

    def test_uploads_files_a_run_reads_and_downloads_files_a_run_wrote(self):
        outside = tempfile.mkdtemp(prefix="esb-py-outside-")
        try:
            with open(os.path.join(outside, "secret"), "w") as f:
                f.write("host\n")
            os.chmod(outside, 0o777)
            with self.client.session() as s:
                written = s.upload("in/data.bin", b"\xff\x00raw", mode=0o600)
                self.assertEqual(written, {"path": "in/data.bin", "size": 5})
                r = s.run(shell="od -An -c in/data.bin | tr -s ' '; stat -c %%a in/data.bin; echo made > out.txt; "
                                "ln -s %s/secret planted; ln -s %s dir" % (outside, outside))
                self.assertEqual(r.stdout, " 377 \\0 r a w\n600\n")
                self.assertEqual(s.download("out.txt"), b"made\n")
                self.assertEqual(s.download("in/data.bin"), b"\xff\x00raw")
                names = {e["name"]: e["type"] for e in s.files()}
                self.assertEqual(names, {"in": "dir", "out.txt": "file", "planted": "link", "dir": "link"})
                self.assertEqual([e["name"] for e in s.files("in")], ["data.bin"])
                for refused in (lambda: s.download("planted"), lambda: s.upload("dir/new", "x"),
                                lambda: s.download("in"), lambda: s.download("../etc/passwd")):
                    with self.assertRaises(Rejected):
                        refused()
                self.assertFalse(os.path.exists(os.path.join(outside, "new")))
        finally:
            shutil.rmtree(outside)

    def test_the_async_session_has_cells_and_files(self):
        async def go():
            async with AsyncClient(url=self.client.url, timeout=60) as client:
                async with client.session() as s:
                    await s.cell("x = 41")
                    r = await s.cell("x + 1")
                    await s.upload("note", "from async")
                    await s.run(shell="cat note > copy")
                    return r.value, await s.download("copy"), [e["name"] for e in await s.files()]
        value, copy, names = asyncio.run(go())
        self.assertEqual((value, copy, sorted(names)), ("42", b"from async", ["copy", "note"]))

    def test_an_unknown_session_is_gone_without_a_reason(self):
        ghost = Session(self.client, {"id": "0123456789abcdef" * 2})
        with self.assertRaises(SessionGone) as caught:
            ghost.run(shell="true")
        self.assertEqual((caught.exception.http_status, caught.exception.ended), (404, None))


if __name__ == "__main__":
    unittest.main()
