"""The REST receiver: an embedded HTTP(S) server for devices, on its own thread.

Server: one asyncio event loop (standard library, no dependency) in the thread
``vitalstation-rest``, serving HTTP/1.1 keep-alive and TLS (``ssl``), with Nagle's algorithm
disabled and each answer written in one ``send``. A thread per connection (the stdlib's
``ThreadingHTTPServer``, used before) spent most of its time handing the GIL between 32 handler
threads and the single writer; on one loop, requests waiting for their commit are just futures,
so many of them are in flight at once and the pipeline commits them together
(``bench/rest.py`` has the figures).

Hardening: a cap on open connections, an idle timeout (a silent client is dropped; the whole
head of a request, and then its body, must arrive within it, so a slow-loris client is dropped
too), TLS handshakes asynchronous with the same timeout, a body over the limit refused (413)
before any of it is read, JSON error bodies even for malformed HTTP, no per-request stderr
logging, no Python version in the ``Server`` header, and a stop that lets requests in flight
finish (their readings are acknowledged) while idle keep-alive connections are closed.

Every request leaves one activity-log row (``input_activity``): buffered here and handed to the
pipeline's single writer every quarter second, so logging never delays an answer. Rows older
than ``rest.activity_retention_days`` are purged at start and every ten minutes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import logging
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from vitalstation.config.settings import Settings
from vitalstation.domain.clock import Clock, utc_now
from vitalstation.ingest.accept import Acceptor, listen
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
# How often slow connections are looked for (at most; a quarter of the idle timeout if less).
SWEEP_PERIOD_S = 0.5
# Connections waiting to be accepted at most (the kernel's queue).
LISTEN_BACKLOG = 128
# A request head (request line and headers) longer than this is refused (431).
_MAX_HEAD = 65536
_MAX_HEADER_LINE = 8192
_MAX_HEADERS = 100
# What one read from the socket takes at most (a whole request, usually; or several pipelined).
_READ_SIZE = 65536


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


_REASONS = {status: phrase for status, (phrase, _) in BaseHTTPRequestHandler.responses.items()}


class _Connection:
    """One open connection; ``idle`` while it waits for a request line (closed at stop).

    ``deadline`` (loop time, 0 for none) is when the client must have sent what the server
    waits for: a sweep closes connections past it. One sweep for all connections costs far
    less than a timer per request (``asyncio.timeout`` was a tenth of the loop's time).
    """

    __slots__ = ("deadline", "idle", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.idle = True
        self.deadline = 0.0


class _Server:
    """HTTP/1.1 on one asyncio event loop in its own thread, in front of :class:`RestApi`.

    The socket is bound in the constructor (so a port in use is an error of ``start``); the
    loop thread accepts, reads, answers. TLS handshakes are asynchronous too, so a slow one
    never holds anyone else up.
    """

    def __init__(
        self,
        address: tuple[str, int],
        api: RestApi,
        context: ssl.SSLContext | None,
        max_connections: int,
        idle_timeout_s: float,
    ) -> None:
        listener = listen(address[0], address[1], backlog=LISTEN_BACKLOG)
        self._listener = listener
        self.server_address = listener.getsockname()
        self.api = api
        self.context = context
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self.stopping = False
        self._connections: set[_Connection] = set()
        self._date = (0, "")
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(_quiet_exceptions)
        # Not asyncio.start_server, which leaks a socket accepted just as it closes (accept.py).
        self._acceptor = Acceptor(
            listener, self._protocol, ssl_context=context,
            ssl_handshake_timeout=idle_timeout_s if context else None, name="REST",
        )
        self._thread = threading.Thread(
            target=self._run, name="vitalstation-rest", daemon=True
        )
        self._started = threading.Event()

    # -- lifecycle (any thread) -------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._started.wait(10)

    def stop(self, deadline: float) -> None:
        """Stop accepting, finish requests in flight, close idle connections, end the loop."""
        if not self._thread.is_alive():
            self._listener.close()
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(deadline), self._loop)
        try:
            future.result(max(0.1, deadline - time.monotonic()) + 1.0)
        except (TimeoutError, concurrent.futures.TimeoutError):
            _LOGGER.warning("REST: the server did not stop in time")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(max(0.1, deadline - time.monotonic()))

    def open_connections(self) -> int:
        return len(self._connections)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start_accepting())
            self._started.set()
            sweeper = self._loop.create_task(self._sweep())
            self._loop.run_forever()
            sweeper.cancel()
        finally:
            self._started.set()
            # A handler scheduled but not yet started would be cancelled before it could close
            # its connection: let it start (it sees ``stopping`` and closes), then cancel.
            for _ in range(3):
                self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.run_until_complete(self._acceptor.close())
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            if tasks:
                self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

    async def _start_accepting(self) -> None:
        self._acceptor.start()

    def _protocol(self) -> asyncio.StreamReaderProtocol:
        return asyncio.StreamReaderProtocol(asyncio.StreamReader(limit=_MAX_HEAD), self._serve)

    async def _sweep(self) -> None:
        """Close connections whose client is too slow (idle, slow-loris, stalled body)."""
        period = min(SWEEP_PERIOD_S, self.idle_timeout_s / 4)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            for connection in [c for c in self._connections if 0 < c.deadline < now]:
                connection.writer.transport.abort()

    async def _shutdown(self, deadline: float) -> None:
        self.stopping = True
        self._acceptor.stop_accepting()
        for _ in range(3):  # connections accepted just now: their handlers see the stop and close
            await asyncio.sleep(0)
        while self._connections and time.monotonic() < deadline:
            for connection in [c for c in self._connections if c.idle]:
                connection.writer.transport.abort()
            await asyncio.sleep(0.01)
        if self._connections:
            _LOGGER.warning("REST: %d connections still open at stop", len(self._connections))
        await self._acceptor.close()  # every connection still open, served or not

    def _evict_slowest(self) -> bool:
        """At the cap, make room by closing the connection that has waited longest for its
        client (an idle keep-alive one, or a slow-loris head); False when every connection is
        being served. Refusing the newcomer instead would let slow clients lock devices out
        for the whole idle timeout, again and again (tests/hostile/test_rest_hostile.py)."""
        waiting = [c for c in self._connections if c.deadline > 0]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda c: c.deadline)
        self._connections.discard(oldest)
        oldest.writer.transport.abort()
        return True

    # -- one connection (on the loop) --------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if self.stopping or (
            len(self._connections) >= self.max_connections and not self._evict_slowest()
        ):
            _LOGGER.warning("REST: refusing a connection from %s (too many open connections)",
                            peer[0] if peer else "?")
            writer.transport.abort()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = _Connection(writer)
        self._connections.add(connection)
        exchange = _Exchange(self, connection, reader, str(peer[0]) if peer else "?")
        try:
            while not self.stopping and await exchange.one():
                pass
        except (OSError, ConnectionError, asyncio.IncompleteReadError):
            pass  # a client that vanished: not the station's problem
        except Exception:  # noqa: BLE001 - one connection's bug must not end the server
            _LOGGER.exception("REST connection from %s failed", peer)
        finally:
            self._connections.discard(connection)
            writer.transport.close()

    def date(self) -> str:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, email.utils.formatdate(now, usegmt=True))
        return self._date[1]


def _quiet_exceptions(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A failed TLS handshake (plain HTTP to the HTTPS port) or a reset: debug, not stderr."""
    _LOGGER.debug("REST: %s", context.get("message"), exc_info=context.get("exception"))


class _Headers:
    """Request headers, case-insensitive, in arrival order (what the endpoints read)."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, list[str]] | None = None) -> None:
        self._fields = {} if fields is None else fields  # lower-case name -> values

    def get(self, name: str, default: Any = None) -> Any:
        values = self._fields.get(name)
        if values is None:
            values = self._fields.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str, failobj: Any = None) -> Any:
        values = self._fields.get(name)
        if values is None:
            values = self._fields.get(name.lower())
        return list(values) if values else failobj


class _BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _BodyReader:
    """The body, read when the endpoint asks (after its checks): 413 never reads it."""

    __slots__ = ("_exchange", "consumed", "expect_continue")

    def __init__(self, exchange: _Exchange, expect_continue: bool) -> None:
        self._exchange = exchange
        self.consumed = False
        self.expect_continue = expect_continue

    async def read(self, length: int) -> bytes:
        exchange = self._exchange
        connection = exchange.connection
        self.consumed = True
        try:
            if self.expect_continue:
                self.expect_continue = False
                exchange.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            pending = exchange.pending
            if len(pending) >= length:  # arrived with the head (or before it was asked for)
                exchange.pending = pending[length:]
                return pending[:length]
            exchange.pending = b""
            connection.deadline = exchange.loop.time() + exchange.server.idle_timeout_s
            return pending + await exchange.reader.readexactly(length - len(pending))
        except asyncio.IncompleteReadError as exc:
            got = len(pending) + len(exc.partial)
            raise BodyError(f"got {got} of the {length} bytes announced") from None
        except (OSError, ValueError) as exc:
            raise BodyError(f"the connection failed while reading the body ({exc})") from None
        finally:
            connection.deadline = 0.0


class _Exchange:
    """Requests and answers on one connection, one after the other (HTTP/1.1 keep-alive)."""

    __slots__ = (
        "close_connection", "command", "connection", "headers", "loop", "path", "peer", "pending",
        "reader", "server", "writer",
    )

    def __init__(
        self, server: _Server, connection: _Connection, reader: asyncio.StreamReader, peer: str
    ) -> None:
        self.server = server
        self.connection = connection
        self.reader = reader
        self.pending = b""  # read from the socket, not yet consumed (the next head, a body)
        self.writer = connection.writer
        self.loop = asyncio.get_running_loop()
        self.peer = peer
        self.close_connection = False
        self.command = ""
        self.path = ""
        self.headers = _Headers()

    async def one(self) -> bool:
        """Serve one request; False when the connection is to be closed."""
        server = self.server
        connection = self.connection
        connection.idle = True
        # Between requests, and for the whole head of one: a silent or slow (slow-loris)
        # client is dropped after the idle timeout.
        connection.deadline = self.loop.time() + server.idle_timeout_s
        try:
            try:
                head = await self._read_head()
            finally:
                connection.idle = False
            self.command = ""
            expect_continue = self._parse(head)
        except _BadRequest as bad:
            self._send(Response(bad.status, error_body(bad.reason)), close=True)
            return False
        except (ValueError, OSError, asyncio.IncompleteReadError):
            return False  # closed (or closed by stop) before a whole head
        finally:
            connection.deadline = 0.0
        # "100 Continue" is sent only when the body is actually wanted: a request refused on
        # its headers (401, 413, ...) is answered at once, without inviting the body.
        body = _BodyReader(self, expect_continue)
        response = await server.api.handle(
            self.command, self.path, self.headers, self.peer, body
        )
        close = response.close or self.close_connection or server.stopping
        if not close and not body.consumed:
            close = not await self._drain(body)
        self._send(response, close)
        transport = self.writer.transport
        # drain() waits only while the transport's buffer is over its high-water mark, or sees a
        # lost connection: with the answer sent whole (the usual case), nothing to wait for.
        if transport.is_closing() or transport.get_write_buffer_size():
            await self.writer.drain()
        return not close

    async def _read_head(self) -> bytes:
        """The request head (request line and headers, up to its blank line), read whole.

        What the socket has is read in chunks of up to ``_READ_SIZE`` bytes and kept in
        ``pending``: a request usually arrives whole in one chunk, so its head and body cost
        one read. The head ends at the first blank line, whether its line ends are CRLF or a
        bare LF, so every complete head is answered at once: a head with no header line
        (``GET / HTTP/1.1`` then CRLF), and one whose lines end with a bare LF, which
        ``_parse`` refuses (400) and which would otherwise wait for a CRLF blank line that
        never comes. A request line that ends with a bare LF is refused without waiting for
        the rest of the head.
        """
        data: bytes | bytearray = self.pending
        scanned = 0  # searched already (a head in pieces is not searched again from its start)
        line_end = -1
        while True:
            start = 2 if data[:2] == b"\r\n" else 0  # a stray CRLF after a request (RFC 9112 2.2)
            if line_end < 0:
                line_end = data.find(b"\n", max(start, scanned))
                if line_end >= 0 and (line_end == start or data[line_end - 1] != 13):
                    raise _BadRequest(400, "Malformed request head: lines must end with CRLF")
            if line_end >= 0:
                scan = max(line_end, scanned)
                end = data.find(b"\n\r\n", scan)
                bare = data.find(b"\n\n", scan, end + 2 if end >= 0 else len(data))
                head_end = bare + 2 if bare >= 0 else end + 3 if end >= 0 else -1
                if head_end >= 0:
                    if head_end - start > _MAX_HEAD:
                        break
                    self.pending = bytes(data[head_end:])
                    return bytes(data[start:head_end])
            scanned = max(0, len(data) - 2)  # a blank line may end in the next chunk
            if len(data) - start > _MAX_HEAD:
                break
            chunk = await self.reader.read(_READ_SIZE)
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(data), None)  # closed mid-head
            if not data:
                data = chunk
            else:
                if isinstance(data, bytes):
                    data = bytearray(data)  # a head in pieces: grown in place, not recopied
                data += chunk
        self.pending = b""
        raise _BadRequest(431, f"Request head too large (at most {_MAX_HEAD} bytes)")

    def _parse(self, head: bytes) -> bool:
        """The request line and headers (HTTP/1.0 and 1.1); True when 100-continue is expected.

        The headers arrive in one read, up to the blank line (reading them line by line was
        a quarter of the receiver's time per request). Strict: every line ends with CRLF, and
        obsolete line folding, a malformed header, too many or too long headers, and an
        HTTP/1.1 request without exactly one Host header are refused (400).
        """
        crlf = head.count(b"\r\n")
        if head.count(b"\n") != crlf or head.count(b"\r") != crlf:
            raise _BadRequest(400, "Malformed request head: lines must end with CRLF")
        lines = head[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3:
            raise _BadRequest(400, "Bad request line")
        method, target, version = parts
        self.command, self.path = method, target
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            raise _BadRequest(505 if version.startswith("HTTP/") else 400,
                              f"Unsupported protocol {version[:20]!r}")
        if len(lines) > _MAX_HEADERS + 1:
            raise _BadRequest(431, "Too many headers")
        fields: dict[str, list[str]] = {}
        for index in range(1, len(lines)):
            raw = lines[index]
            if len(raw) > _MAX_HEADER_LINE:
                raise _BadRequest(431, "Header line too long")
            if raw[:1] in (" ", "\t"):
                raise _BadRequest(400, "Folded header lines are not accepted")
            name, colon, value = raw.partition(":")
            if not colon or not name or name[-1] in " \t":
                raise _BadRequest(400, "Malformed header line")
            name = name.lower()
            values = fields.get(name)
            if values is None:
                fields[name] = [value.strip()]
            else:
                values.append(value.strip())
        if version == "HTTP/1.1" and len(fields.get("host", ())) != 1:  # RFC 9112 3.2
            raise _BadRequest(400, "An HTTP/1.1 request must have exactly one Host header")
        headers = self.headers = _Headers(fields)
        connection = (headers.get("connection") or "").lower()
        if version == "HTTP/1.1":
            self.close_connection = "close" in connection
        else:
            self.close_connection = "keep-alive" not in connection
        if "transfer-encoding" in fields:
            self.close_connection = True  # no chunked bodies: the framing is unknown
        return version == "HTTP/1.1" and (headers.get("expect") or "").lower() == "100-continue"

    async def _drain(self, body: _BodyReader) -> bool:
        """Read an unwanted body so the connection can serve the next request."""
        if body.expect_continue:
            return False  # the client may or may not send it now: start afresh
        if self.headers.get("transfer-encoding"):
            return False
        text = (self.headers.get("content-length") or "0").strip()
        if not text.isdigit() or not text.isascii() or len(text) > 18:
            return False  # int() refuses strings of over 4,300 digits: not read, closed
        length = int(text)
        if length > DRAIN_LIMIT_BYTES:
            return False
        if length:
            try:
                await body.read(length)
            except BodyError:
                return False
        return True

    def _send(self, response: Response, close: bool) -> None:
        """The whole answer in one write (head and body together)."""
        status = response.status
        body = response.body
        head = (
            f"{_status_line(status)}Date: {self.server.date()}\r\n{_FIXED_HEADERS}"
            f"Content-Length: {len(body)}\r\n"
        )
        for name, value in response.headers:
            head += f"{name}: {value}\r\n"
        if close:
            head += "Connection: close\r\n"
            self.close_connection = True
        data = (head + "\r\n").encode("latin-1")
        if self.command != "HEAD":  # a HEAD answer has the headers of the body, not the body
            data += body
        self.writer.write(data)


_FIXED_HEADERS = (
    "Server: VitalStation\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
    "X-Content-Type-Options: nosniff\r\n"
)
_STATUS_LINES: dict[int, str] = {}


def _status_line(status: int) -> str:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
    return line


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
        server.start()
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
        server.stop(deadline)
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
