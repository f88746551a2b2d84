"""The REST receiver: an embedded HTTP(S) server for devices, on its own threads.

Server: the standard library's ``ThreadingHTTPServer`` (a thread per connection, daemon
threads), with Nagle's algorithm disabled (PLATFORM.md: 726 → 6k requests/s) and each answer
written in one ``send``. It adds no dependency, speaks HTTP/1.1 keep-alive and TLS through
``ssl``, and a ward's devices are tens to hundreds of connections, not tens of thousands; the
endpoint logic (``rest_api``) does not depend on it, should an asyncio server be wanted later.

Hardening around the stdlib server: a cap on open connections, an idle timeout per connection
(slow or silent clients are dropped), the TLS handshake done on the connection's thread (a
slow handshake cannot stall the accept loop), JSON error bodies even for malformed HTTP, no
per-request stderr logging, no Python version in the ``Server`` header, and a stop that lets
requests in flight finish (their readings are acknowledged) while idle keep-alive connections
are closed.

Every request leaves one activity-log row (``input_activity``): buffered here and handed to the
pipeline's single writer every quarter second, so logging never delays an answer. Rows older
than ``rest.activity_retention_days`` are purged at start and every ten minutes.
"""

from __future__ import annotations

import email.utils
import logging
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from typing import Any

from vitalstation.config.settings import Settings
from vitalstation.domain.clock import Clock, utc_now
from vitalstation.ingest.base import InputHealth, InputState
from vitalstation.ingest.rest_api import (
    INPUT_NAME,
    AlertCounter,
    BodyError,
    Response,
    RestApi,
    alarms_raised,
    error_body,
)
from vitalstation.ingest.rest_auth import (
    DEFAULT_KEY_CACHE_TTL_S,
    ClientAddress,
    KeyCache,
    KeyDirectory,
    RateLimiter,
)
from vitalstation.pipeline.core import Pipeline, PipelineStopped
from vitalstation.pipeline.types import ActivityEntry

__all__ = ["RestConfig", "RestInput", "RestStartError"]

_LOGGER = logging.getLogger(__name__)

# Open connections at most; more are closed at once (a ward has tens of devices).
MAX_CONNECTIONS = 512
# A connection silent this long (between requests, or mid-request) is closed.
IDLE_TIMEOUT_S = 30.0
# An unread body up to this size is drained to keep the connection; beyond, it is closed.
DRAIN_LIMIT_BYTES = 64 * 1024
ACTIVITY_FLUSH_S = 0.25
ACTIVITY_PURGE_EVERY_S = 600.0
# Activity rows waiting at most (a database outage); beyond, rows are dropped and counted.
ACTIVITY_BUFFER_MAX = 100_000
_MAX_REQUEST_LINE = 65536
_MAX_HEADER_LINE = 8192
_MAX_HEADERS = 100
_END_OF_HEADERS = (b"\r\n", b"\n")


class RestStartError(RuntimeError):
    """The receiver cannot start (port in use, unreadable certificate); the message says why."""


@dataclass(frozen=True, slots=True)
class RestConfig:
    """What the receiver needs from ``[rest]`` (paths resolved, limits checked)."""

    host: str = "127.0.0.1"
    port: int = 8080
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_body_bytes: int = 1_048_576
    max_batch_readings: int = 1000
    rate_limit: int = 600
    trusted_proxies: tuple[str, ...] = ()
    activity_retention_days: int = 30
    key_cache_ttl_s: float = DEFAULT_KEY_CACHE_TTL_S
    max_connections: int = MAX_CONNECTIONS
    idle_timeout_s: float = IDLE_TIMEOUT_S

    @classmethod
    def from_settings(cls, settings: Settings) -> RestConfig:
        rest = settings.rest
        tls = bool(rest.tls_cert and rest.tls_key)
        return cls(
            host=rest.host,
            port=rest.port,
            tls_cert=settings.path(rest.tls_cert) if tls else None,
            tls_key=settings.path(rest.tls_key) if tls else None,
            max_body_bytes=rest.max_body_bytes,
            max_batch_readings=rest.max_batch_readings,
            rate_limit=rest.rate_limit,
            trusted_proxies=rest.trusted_proxies,
            activity_retention_days=rest.activity_retention_days,
        )


class _Connection:
    __slots__ = ("idle", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.idle = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        api: RestApi,
        context: ssl.SSLContext | None,
        max_connections: int,
        idle_timeout_s: float,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.api = api
        self.context = context
        self.idle_timeout_s = idle_timeout_s
        self.stopping = False
        self._slots = threading.BoundedSemaphore(max_connections)
        self._connections: set[_Connection] = set()
        self._connections_lock = threading.Lock()
        self._date = (0, "")
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN (a DNS query, seconds on some
        # networks) for a name nobody reads here.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)
        if self.context is not None:
            self.socket = self.context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.stopping or not self._slots.acquire(blocking=False):
            _LOGGER.warning("REST: refusing a connection from %s (too many open connections)",
                            client_address[0] if client_address else "?")
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that vanished, a failed TLS handshake (plain HTTP to the HTTPS port): not
        # the station's problem, and not worth a traceback on stderr.
        _LOGGER.debug("REST connection from %s ended with an error", client_address,
                      exc_info=True)

    # -- connection bookkeeping, for a stop that closes idle keep-alive connections ---------

    def register(self, sock: socket.socket) -> _Connection:
        connection = _Connection(sock)
        with self._connections_lock:
            self._connections.add(connection)
        return connection

    def unregister(self, connection: _Connection) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def open_connections(self) -> int:
        with self._connections_lock:
            return len(self._connections)

    def close_idle(self) -> None:
        with self._connections_lock:
            idle = [c for c in self._connections if c.idle]
        for connection in idle:
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def date(self) -> str:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, email.utils.formatdate(now, usegmt=True))
        return self._date[1]


class _Headers:
    """Request headers, case-insensitive, in arrival order (what the endpoints read)."""

    __slots__ = ("_fields",)

    def __init__(self) -> None:
        self._fields: dict[str, list[str]] = {}

    def add(self, name: str, value: str) -> None:
        values = self._fields.get(name)
        if values is None:
            self._fields[name] = [value]
        else:
            values.append(value)

    def get(self, name: str, default: Any = None) -> Any:
        values = self._fields.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str, failobj: Any = None) -> Any:
        values = self._fields.get(name.lower())
        return list(values) if values else failobj


class _BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _BodyReader:
    __slots__ = ("_handler", "consumed", "expect_continue")

    def __init__(self, handler: _Handler, expect_continue: bool) -> None:
        self._handler = handler
        self.consumed = False
        self.expect_continue = expect_continue

    def read(self, length: int) -> bytes:
        handler = self._handler
        self.consumed = True
        try:
            if self.expect_continue:
                self.expect_continue = False
                handler.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            data = handler.rfile.read(length)
        except (OSError, ValueError) as exc:
            raise BodyError(f"the connection failed while reading the body ({exc})") from None
        if len(data) < length:
            raise BodyError(f"got {len(data)} of the {length} bytes announced")
        return data


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "VitalStation"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout_s
        self.request.settimeout(self.timeout)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()
        self._connection = self.server.register(self.request)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.unregister(self._connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silenced: every request is in the activity log instead of on stderr."""

    def handle_one_request(self) -> None:
        connection = self._connection
        if self.server.stopping:
            self.close_connection = True
            return
        connection.idle = True
        try:
            line = self.rfile.readline(_MAX_REQUEST_LINE + 1)
        except (OSError, ValueError):  # idle timeout, reset, or closed by stop()
            self.close_connection = True
            return
        finally:
            connection.idle = False
        if not line:
            self.close_connection = True
            return
        self.command = ""
        try:
            expect_continue = self._parse(line)
        except _BadRequest as bad:
            self.send_error(bad.status, bad.reason)
            return
        except (OSError, ValueError):
            self.close_connection = True
            return
        # "100 Continue" is sent only when the body is actually wanted: a request refused on
        # its headers (401, 413, ...) is answered at once, without inviting the body.
        body = _BodyReader(self, expect_continue)
        response = self.server.api.handle(
            self.command, self.path, self.headers, str(self.client_address[0]), body
        )
        close = response.close or self.close_connection or self.server.stopping
        if not close and not body.consumed:
            close = not self._drain(body)
        self._send(response, close)

    def _parse(self, line: bytes) -> bool:
        """The request line and headers (HTTP/1.0 and 1.1); True when 100-continue is expected.

        Written out rather than ``BaseHTTPRequestHandler.parse_request``: the stdlib runs the
        headers through the e-mail parser, a quarter of the receiver's CPU under load. Strict:
        obsolete line folding, a malformed header, too many or too long headers are refused.
        """
        if len(line) > _MAX_REQUEST_LINE:
            raise _BadRequest(414, "Request line too long")
        parts = line.split()
        if len(parts) != 3:
            raise _BadRequest(400, "Bad request line")
        method, target, version = (part.decode("latin-1") for part in parts)
        self.command, self.path, self.request_version = method, target, version
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            self.close_connection = True
            raise _BadRequest(505 if version.startswith("HTTP/") else 400,
                              f"Unsupported protocol {version[:20]!r}")
        headers = _Headers()
        readline = self.rfile.readline
        for _ in range(_MAX_HEADERS + 1):
            raw = readline(_MAX_HEADER_LINE + 1)
            if raw in _END_OF_HEADERS:
                break
            if not raw:
                raise ValueError("connection closed in the headers")
            if len(raw) > _MAX_HEADER_LINE:
                raise _BadRequest(431, "Header line too long")
            if raw[0] in b" \t":
                raise _BadRequest(400, "Folded header lines are not accepted")
            name, colon, value = raw.partition(b":")
            if not colon or not name or name != name.strip():
                raise _BadRequest(400, "Malformed header line")
            headers.add(name.decode("latin-1").lower(), value.strip().decode("latin-1"))
        else:
            raise _BadRequest(431, "Too many headers")
        self.headers = headers  # type: ignore[assignment]
        connection = (headers.get("connection") or "").lower()
        if version == "HTTP/1.1":
            self.close_connection = "close" in connection
        else:
            self.close_connection = "keep-alive" not in connection
        if headers.get("transfer-encoding") is not None:
            self.close_connection = True  # no chunked bodies: the framing is unknown
        return version == "HTTP/1.1" and (headers.get("expect") or "").lower() == "100-continue"

    def _drain(self, body: _BodyReader) -> bool:
        """Read an unwanted body so the connection can serve the next request."""
        if body.expect_continue:
            return False  # the client may or may not send it now: start afresh
        if self.headers.get("Transfer-Encoding"):
            return False
        text = (self.headers.get("Content-Length") or "0").strip()
        if not text.isdigit() or not text.isascii():
            return False
        length = int(text)
        if length > DRAIN_LIMIT_BYTES:
            return False
        if length:
            try:
                body.read(length)
            except BodyError:
                return False
        return True

    def _send(self, response: Response, close: bool) -> None:
        status = response.status
        reason = self.responses.get(status, ("",))[0]
        head = [
            f"HTTP/1.1 {status} {reason}",
            "Server: VitalStation",
            f"Date: {self.server.date()}",
            "Content-Type: application/json",
            f"Content-Length: {len(response.body)}",
            "Cache-Control: no-store",
            "X-Content-Type-Options: nosniff",
        ]
        head.extend(f"{name}: {value}" for name, value in response.headers)
        if close:
            head.append("Connection: close")
            self.close_connection = True
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if self.command != "HEAD":  # a HEAD answer has the headers of the body, not the body
            data += response.body
        try:
            self.wfile.write(data)
        except OSError:
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed HTTP (bad request line, bad headers): a JSON error, then close."""
        reason = message or self.responses.get(code, ("Error",))[0]
        self._send(Response(code, error_body(reason)), close=True)


class RestInput:
    """The REST input: start/stop/health for the runtime; the server runs on its own threads."""

    name = INPUT_NAME

    def __init__(
        self,
        config: RestConfig,
        pipeline: Pipeline,
        keys: KeyDirectory,
        *,
        clock: Clock = utc_now,
        alerts_triggered: AlertCounter = alarms_raised,
    ) -> None:
        self.config = config
        self._pipeline = pipeline
        self._clock = clock
        self.keys = KeyCache(keys, ttl_s=config.key_cache_ttl_s, clock=clock)
        self.limiter = RateLimiter(config.rate_limit)
        self.api = RestApi(
            pipeline,
            self.keys,
            keys,
            limiter=self.limiter,
            addresses=ClientAddress(config.trusted_proxies),
            activity=self._log,
            max_body_bytes=config.max_body_bytes,
            max_batch_readings=config.max_batch_readings,
            clock=clock,
            alerts_triggered=alerts_triggered,
        )
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._flusher: threading.Thread | None = None
        self._stop_flushing = threading.Event()
        self._activity: list[ActivityEntry] = []
        self._activity_lock = threading.Lock()
        self._next_purge = 0.0
        self.activity_dropped = 0
        self._state = InputState.STOPPED
        self._detail = "not started"
        self._since: datetime | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        pipeline: Pipeline,
        keys: KeyDirectory,
        *,
        clock: Clock = utc_now,
        alerts_triggered: AlertCounter = alarms_raised,
    ) -> RestInput:
        """The receiver ``[rest]`` describes."""
        return cls(
            RestConfig.from_settings(settings), pipeline, keys, clock=clock,
            alerts_triggered=alerts_triggered,
        )

    # -- where it listens ------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the real one when the configured port is 0)."""
        if self._server is None:
            raise RuntimeError("the REST receiver is not started")
        return int(self._server.server_address[1])

    @property
    def scheme(self) -> str:
        return "https" if self.config.tls_cert else "http"

    @property
    def url(self) -> str:
        """The base URL devices use, e.g. ``http://127.0.0.1:8080``."""
        host = self.config.host
        shown = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{shown}:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Listen and serve; raises ``RestStartError`` naming host:port or the TLS file."""
        if self._server is not None:
            raise RuntimeError("the REST receiver is already started")
        config = self.config
        self._state = InputState.STARTING
        context = self._tls_context() if config.tls_cert and config.tls_key else None
        where = f"{config.host}:{config.port}"
        try:
            server = _Server(
                (config.host, config.port), self.api, context, config.max_connections,
                config.idle_timeout_s,
            )
        except OSError as exc:
            self._state = InputState.DOWN
            self._detail = f"cannot listen on {where}: {exc.strerror or exc}"
            raise RestStartError(
                f"REST receiver cannot listen on {where}: {exc.strerror or exc}"
                + (" (another program, or another station, uses the port; set rest.port)"
                   if exc.errno in (98, 48, 10048) else "")
            ) from exc
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1},
            name="vitalstation-rest", daemon=True,
        )
        self._thread.start()
        self._stop_flushing.clear()
        self._next_purge = 0.0  # purge old activity at once
        self._flusher = threading.Thread(
            target=self._flush_loop, name="vitalstation-rest-activity", daemon=True
        )
        self._flusher.start()
        self._state = InputState.UP
        self._detail = f"listening on {self.url}"
        self._since = self._clock()
        _LOGGER.info("REST receiver listening on %s", self.url)

    def stop(self, timeout: float) -> None:
        """Stop accepting, let requests in flight finish, close idle connections, flush the log."""
        server = self._server
        if server is None:
            return
        deadline = time.monotonic() + timeout
        server.stopping = True
        server.shutdown()
        server.server_close()
        while server.open_connections() and time.monotonic() < deadline:
            server.close_idle()
            time.sleep(0.01)
        if server.open_connections():
            _LOGGER.warning("REST: %d connections still open at stop", server.open_connections())
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        self._stop_flushing.set()
        if self._flusher is not None:
            self._flusher.join(max(0.0, deadline - time.monotonic()))
        self.flush_activity()
        self._server = None
        self._state = InputState.STOPPED
        self._detail = "stopped"
        self._since = self._clock()

    def health(self) -> InputHealth:
        counters = self.api.counters
        detail = self._detail
        if self._state is InputState.UP and self.activity_dropped:
            detail += f"; {self.activity_dropped} activity-log rows dropped"
        return InputHealth(
            self.name, self._state, detail, self._since,
            received=counters.received, rejected=counters.rejected,
        )

    # -- TLS -------------------------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext:
        cert, key = self.config.tls_cert, self.config.tls_key
        assert cert is not None and key is not None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(cert, key, password=_no_passphrase)
        except FileNotFoundError as exc:
            self._state = InputState.DOWN
            raise RestStartError(
                f"REST receiver: TLS file not found: {exc.filename} (rest.tls_cert / rest.tls_key)"
            ) from exc
        except (OSError, ssl.SSLError) as exc:
            self._state = InputState.DOWN
            raise RestStartError(
                f"REST receiver: cannot use the TLS certificate {cert} with the key {key}: "
                f"{exc} (both PEM; a key protected by a passphrase is not supported yet)"
            ) from exc
        return context

    # -- activity log ----------------------------------------------------------------------

    def _log(self, entry: ActivityEntry) -> None:
        with self._activity_lock:
            if len(self._activity) >= ACTIVITY_BUFFER_MAX:
                self.activity_dropped += 1
                return
            self._activity.append(entry)

    def _flush_loop(self) -> None:
        while not self._stop_flushing.wait(ACTIVITY_FLUSH_S):
            self.flush_activity()

    def flush_activity(self) -> None:
        """Hand the buffered activity-log rows to the pipeline's writer now (done every 0.25 s)."""
        with self._activity_lock:
            entries: Sequence[ActivityEntry] = self._activity
            self._activity = []
        purge = None
        now_s = time.monotonic()
        if now_s >= self._next_purge:
            self._next_purge = now_s + ACTIVITY_PURGE_EVERY_S
            cutoff = self._clock() - timedelta(days=self.config.activity_retention_days)
            purge = (INPUT_NAME, cutoff)
        if not entries and purge is None:
            return
        try:
            self._pipeline.log_activity(entries, purge=purge)
        except PipelineStopped:
            if entries:
                _LOGGER.warning("REST: %d activity-log rows not stored (station stopping)",
                                len(entries))


def _no_passphrase() -> bytes:
    return b""
