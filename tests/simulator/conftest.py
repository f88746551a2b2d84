"""Real things for the transport tests: a private Mosquitto, moto's Kinesis, a tiny REST server.

Each is started by the test on a free loopback port (never 1883, which the machine's own
broker may hold) and stopped after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vitalstation.domain.errors import PayloadError
from vitalstation.domain.payloads import decode_json, parse_inhealth_batch, parse_inhealth_reading
from vitalstation.domain.readings import InputKind

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_port() -> int:
    """A loopback port nobody listens on (at the time of asking)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextlib.contextmanager
def private_mosquitto(folder: Path, listener_options: str = "") -> Iterator[int]:
    """Mosquitto on a free loopback port with ``listener_options``; yields the port."""
    if not os.path.exists(MOSQUITTO):
        pytest.fail(f"{MOSQUITTO} is missing: scripts/setup installs the mosquitto package")
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(
        "per_listener_settings false\n"
        "persistence false\n"
        "max_queued_messages 0\n"  # the test subscriber must not lose a message
        "set_tcp_nodelay true\n"
        "log_type error\n"
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        f"{listener_options}"
    )
    log = open(folder / "mosquitto.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=log)
    try:
        try:
            _wait_listening(port)
        except OSError:
            raise AssertionError(
                "mosquitto did not start: " + (folder / "mosquitto.log").read_text()
            ) from None
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[str]:
    """A private Mosquitto on a free loopback port; yields its mqtt:// URL."""
    with private_mosquitto(tmp_path) as port:
        yield f"mqtt://127.0.0.1:{port}"


def _dummy_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials, so that nothing reaches a real AWS account."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="module")
def _moto_server() -> Iterator[str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        reason = "moto's server is not installed (pip install 'moto[server]')"
        if IN_CI:
            pytest.fail(f"{reason}: the test extra must include it")
        pytest.skip(reason)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_kinesis(_moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """moto's server on a free loopback port (one per module; use fresh stream names), with
    dummy credentials in the environment; its endpoint URL."""
    _dummy_aws_credentials(monkeypatch)
    return _moto_server


class RestStub:
    """The seed's REST contract in miniature: Bearer keys, the real parsers, the seed's JSON."""

    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = {key: device for device, key in keys.items()}
        self.requests: list[tuple[str, str | None, bytes, int]] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else ~40 ms per answer (PLATFORM.md, "HTTP")

            def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
                pass

            def do_POST(self):  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                auth = self.headers.get("Authorization")
                status, answer = stub.answer(self.path, auth, body)
                with stub._lock:
                    stub.requests.append((self.path, auth, body, status))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def answer(self, path: str, auth: str | None, body: bytes) -> tuple[int, dict]:
        device = None
        if auth and auth.startswith("Bearer "):
            device = self.keys.get(auth[len("Bearer "):])
        if device is None:
            return 401, {"success": False, "error": "Invalid API key"}
        now = datetime.now(UTC)
        try:
            obj = decode_json(body)
            if path == "/api/iot/vitals/":
                parse_inhealth_reading(obj, input=InputKind.REST, received_at=now,
                                       device_id=device)
                return 200, {"success": True, "message": "Vital signs received successfully",
                             "vital_sign_id": len(self.requests) + 1, "alerts_triggered": 0}
            if path == "/api/iot/vitals/batch/":
                result = parse_inhealth_batch(obj, input=InputKind.REST, received_at=now,
                                              device_id=device)
                return 200, {"success": True, "message": "Batch submitted successfully",
                             "total_readings": result.total,
                             "processed": len(result.readings), "failed": len(result.errors)}
        except PayloadError as exc:
            return 400, {"success": False, "error": str(exc), "errors": exc.errors}
        return 404, {"success": False, "error": "Not found"}

    def __enter__(self) -> RestStub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()
