"""Things to put between the station and a service, to make the service fail on demand.

* ``TcpProxy``: a plain TCP relay on a fixed loopback port. ``cut()`` closes the listener and
  every relayed connection (the service is "down": connections refused and reset), ``restore()``
  listens again on the same port. Used for PostgreSQL, so that the machine's own server is never
  stopped.
* ``PrivatePostgres``: a PostgreSQL server of the test's own, to stop and start for real.
* ``KinesisFaultProxy``: an HTTP relay to moto's server that answers chosen Kinesis calls with
  an AWS error instead (``ProvisionedThroughputExceededException``, ``ExpiredIteratorException``),
  as the real service does, and counts what it injected.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest


class TcpProxy:
    """Relays 127.0.0.1:<port> to ``target``; can be cut and restored."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.accepted = 0

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    start = restore

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            doomed, self._sockets = self._sockets, set()
        for sock in doomed:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
                self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class KinesisFaultProxy:
    """moto's Kinesis behind a relay that injects the errors queued in ``faults``.

    ``inject(operation, code, times)`` makes the next ``times`` calls of ``operation`` (e.g.
    ``"GetRecords"``) fail with ``code`` (HTTP 400, the AWS JSON error shape).
    """

    def __init__(self, moto_url: str) -> None:
        target = urlsplit(moto_url)
        self._target = (target.hostname or "127.0.0.1", target.port or 80)
        self._lock = threading.Lock()
        self._faults: dict[str, list[str]] = {}
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
                pass

            def do_POST(self):  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                operation = (self.headers.get("X-Amz-Target") or "").rsplit(".", 1)[-1]
                code = proxy._take(operation)
                if code is not None:
                    data = json.dumps({"__type": code, "message": f"injected {code}"}).encode()
                    self._answer(400, {"Content-Type": "application/x-amz-json-1.1"}, data)
                    return
                upstream = http.client.HTTPConnection(*proxy._target, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in ("connection", "keep-alive")}
                    upstream.request("POST", self.path, body=body, headers=headers)
                    reply = upstream.getresponse()
                    data = reply.read()
                    self._answer(reply.status, {
                        k: v for k, v in reply.getheaders()
                        if k.lower() not in ("content-length", "connection", "transfer-encoding",
                                             "server", "date")}, data)
                finally:
                    upstream.close()

            def _answer(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def inject(self, operation: str, code: str, times: int) -> None:
        with self._lock:
            self._faults.setdefault(operation, []).extend([code] * times)

    def pending(self) -> int:
        with self._lock:
            return sum(len(codes) for codes in self._faults.values())

    def _take(self, operation: str) -> str | None:
        with self._lock:
            self.calls[operation] += 1
            codes = self._faults.get(operation)
            if not codes:
                return None
            code = codes.pop(0)
            self.injected[code] += 1
            return code

    def start(self) -> KinesisFaultProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


class PrivatePostgres:
    """A PostgreSQL server of the test's own (``initdb`` in a temporary folder, a free port),
    so that it can really be stopped and started again: the machine's server never is.

    Run as the ``postgres`` user when the tests run as root (``initdb`` refuses root). Skips
    the test with the reason when the server's programs are not installed.
    """

    def __init__(self) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        pg_ctl = bins[-1] if bins else (Path(p) if (p := shutil.which("pg_ctl")) else None)
        if pg_ctl is None:
            pytest.skip("no PostgreSQL server programs (pg_ctl, initdb) on this machine")
        self._bin = pg_ctl.parent
        self.folder = Path(tempfile.mkdtemp(prefix="vs-faults-pg-"))
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._run("initdb", "-D", str(self.folder / "data"), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync")

    def _run(self, program: str, *args: str) -> None:
        subprocess.run([*self._as_user, str(self._bin / program), *args], check=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             cwd=self.folder)

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-w", "-l",
                  str(self.folder / "server.log"), "-o",
                  f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1", "start")

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: what an administrator's restart does (sessions ended)."""
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-w", "-m", "fast", "stop")

    def close(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # not running
        shutil.rmtree(self.folder, ignore_errors=True)
