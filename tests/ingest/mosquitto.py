"""A private Mosquitto for tests: its own port, configuration, persistence and log.

Never port 1883 (a system Mosquitto may be there, as on this machine). Each broker runs from a
folder of its own, so a test can stop it and start it again on the same port with the same
persistence file (``stop`` is SIGTERM: Mosquitto saves its persistence then; SIGKILL would lose
what it had not saved yet, which is Mosquitto's trade-off, not the station's).
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    """A TCP port free on loopback right now (the OS's choice, so never 1883)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0,
    message: str | Callable[[], str] = "condition", *, interval: float = 0.02,
) -> None:
    """Poll ``predicate`` until it is true; fail the test naming ``message`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            pytest.fail(f"timed out after {timeout} s waiting for {text}")
        time.sleep(interval)


def require_mosquitto() -> None:
    """Skip (or, under CI, fail) when the mosquitto binary is missing."""
    if not os.access(MOSQUITTO, os.X_OK):
        reason = f"mosquitto not found at {MOSQUITTO} (scripts/setup installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)


class Mosquitto:
    """One private broker on ``127.0.0.1:<port>``, configured by ``listener_lines``."""

    def __init__(
        self,
        folder: Path,
        *,
        port: int | None = None,
        allow_anonymous: bool = True,
        password_file: Path | None = None,
        listener_lines: Sequence[str] = (),
        extra_lines: Sequence[str] = (),
    ) -> None:
        require_mosquitto()
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.allow_anonymous = allow_anonymous
        self.password_file = password_file
        self.listener_lines = list(listener_lines)
        self.extra_lines = list(extra_lines)
        self.log_path = folder / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._baseline = 0  # connections logged that were our own readiness probes

    @property
    def persistence_dir(self) -> Path:
        return self.folder / "data"

    def _write_config(self) -> Path:
        self.persistence_dir.mkdir(exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            *self.listener_lines,
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            "persistence true",
            f"persistence_location {self.persistence_dir}/",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "set_tcp_nodelay true",
            "max_queued_messages 100000",
            *self.extra_lines,
        ]
        if os.geteuid() == 0:  # as root Mosquitto would switch to the "mosquitto" user
            lines.append(f"user {getpass.getuser()}")
        if self.password_file is not None:
            lines.append(f"password_file {self.password_file}")
        path = self.folder / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def start(self, timeout: float = 10.0) -> Mosquitto:
        """Start it and wait until it accepts connections."""
        config = self._write_config()
        logged = self.log().count("New connection from")
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                _, err = self.process.communicate()
                pytest.fail(f"mosquitto exited: {err.decode(errors='replace')}\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    pytest.fail(f"mosquitto did not listen on {self.port}:\n{self.log()}")
                time.sleep(0.02)
                continue
            # The probe is logged as a connection (on a plain listener; a TLS one logs only
            # handshakes): wait for that line, and leave it out of connection_attempts().
            if not any(line.startswith("certfile") for line in self.listener_lines):
                try:
                    wait_until(lambda: self.log().count("New connection from") > logged, 5,
                               "mosquitto to log the readiness probe")
                except BaseException:
                    self.kill()  # never leave a broker behind a failed start
                    raise
            self._baseline = self.log().count("New connection from")
            return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: Mosquitto saves its persistence and exits."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: gone at once, nothing saved."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def connection_attempts(self) -> int:
        """TCP connections the broker logged (accepted or refused) since it last started."""
        return self.log().count("New connection from") - self._baseline


def add_password(file: Path, user: str, password: str) -> None:
    """Add ``user`` to a Mosquitto password file (created when missing)."""
    args = [MOSQUITTO_PASSWD, "-b"]
    if not file.exists():
        args.append("-c")
    subprocess.run([*args, str(file), user, password], check=True, capture_output=True)
    file.chmod(0o600)
