"""REST: the InHealth device API, ``POST /api/iot/vitals/`` and ``/api/iot/vitals/batch/``.

Each request carries its device's key as ``Authorization: Bearer <key>``; an unregistered
device has no key and sends none (the station answers 401, which the unknown-device scenario
expects). A 2xx answer is an acknowledgement (a batch answered with ``"failed": n > 0`` is
reported as refused, with the station's reasons); 4xx is a refusal with the station's
``"error"``; 5xx and connection failures are errors. One keep-alive connection, reopened once
per request when the station closed it. Standard library only.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from simulator.transports.base import (
    ACKNOWLEDGED,
    Delivery,
    Outcome,
    Report,
    Transport,
    TransportError,
)
from simulator.wire import Message, WireFormat

__all__ = ["BATCH_PATH", "SINGLE_PATH", "RestTransport"]

# 429 (over the key's rate) and 503 (station busy) are retried after Retry-After, bounded.
_BUSY = (429, 503)
_BUSY_RETRIES = 3
_MAX_RETRY_WAIT = 2.0

SINGLE_PATH = "/api/iot/vitals/"
BATCH_PATH = "/api/iot/vitals/batch/"
_MAX_ERROR_CHARS = 300


def _error_text(status: int, reason: str, body: bytes) -> str:
    """The station's ``error`` (and per-field ``errors``) from a JSON answer, else the body."""
    detail = ""
    try:
        answer = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        detail = body.decode("utf-8", "replace").strip()
    else:
        if isinstance(answer, dict):
            detail = str(answer.get("error") or answer.get("message") or "")
            fields = answer.get("errors")
            if fields:
                detail = f"{detail} {json.dumps(fields, sort_keys=True)}".strip()
        else:
            detail = json.dumps(answer)
    detail = detail[:_MAX_ERROR_CHARS]
    return f"HTTP {status} {reason}" + (f": {detail}" if detail else "")


class RestTransport(Transport):
    """POSTs each message to the station's REST receiver with its device's key."""

    name = "rest"
    judges_content = True
    refuses_unregistered = True
    wire_format = WireFormat.INHEALTH

    def __init__(
        self,
        base_url: str,
        keys: Mapping[str, str],
        *,
        timeout: float = 10.0,
        ca_file: str | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportError(
                f"{base_url!r} is not an http:// or https:// URL of the station's REST receiver"
            )
        self.base_url = base_url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        try:
            self._port = parts.port or (443 if self._https else 80)
        except ValueError:
            raise TransportError(f"{base_url!r} has an invalid port") from None
        self._prefix = parts.path.rstrip("/")
        self._keys = dict(keys)
        self._timeout = timeout
        self._ssl = ssl.create_default_context(cafile=ca_file) if self._https else None
        self._conn: http.client.HTTPConnection | None = None
        self._report: Report | None = None

    @property
    def target(self) -> str:
        return self.base_url

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=self._ssl
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        conn.connect()
        if conn.sock is not None:
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def open(self, report: Report) -> None:
        try:
            self._conn = self._connect()
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError(
                f"cannot reach the station's REST receiver at {self.base_url}: {_reason(exc)}"
            ) from None
        self._report = report

    def _post(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, str, bytes, float | None]:
        """One request, retried once on a fresh connection if the old one was dropped."""
        for attempt in (1, 2):
            try:
                if self._conn is None:
                    self._conn = self._connect()
                self._conn.request("POST", path, body=body, headers=headers)
                response = self._conn.getresponse()
                data = response.read()
                if response.will_close:
                    self._drop()
                return response.status, response.reason, data, _seconds(
                    response.getheader("Retry-After")
                )
            except (OSError, http.client.HTTPException):
                self._drop()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def send(self, messages: Sequence[Message]) -> None:
        assert self._report is not None, "open() first"
        for message in messages:
            self._report(message, self._deliver(message))

    def _deliver(self, message: Message) -> Outcome:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self._keys.get(message.device_id)
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        elif not message.unregistered:
            return Outcome(Delivery.ERROR, f"no API key for device {message.device_id}")
        path = self._prefix + (BATCH_PATH if message.is_batch else SINGLE_PATH)
        for attempt in range(1, _BUSY_RETRIES + 2):
            try:
                status, reason, body, retry_after = self._post(path, message.payload, headers)
            except (OSError, http.client.HTTPException) as exc:
                return Outcome(Delivery.ERROR, f"{self.base_url}: {_reason(exc)}")
            if status not in _BUSY or attempt > _BUSY_RETRIES:
                break
            # Over the key's rate, or the station busy: wait as told (bounded), then again.
            time.sleep(min(_MAX_RETRY_WAIT, retry_after if retry_after is not None else 0.5))
        if 200 <= status < 300:
            if message.is_batch:
                failed = _batch_failures(body)
                if failed:
                    return Outcome(Delivery.REFUSED, _error_text(status, reason, body))
            return ACKNOWLEDGED
        delivery = Delivery.REFUSED if 400 <= status < 500 else Delivery.ERROR
        return Outcome(delivery, _error_text(status, reason, body))

    def close(self, timeout: float) -> None:
        self._drop()
        self._report = None


def _batch_failures(body: bytes) -> int:
    """``failed`` from a batch answer (0 when absent or unreadable)."""
    try:
        answer = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return 0
    failed = answer.get("failed") if isinstance(answer, dict) else None
    return failed if isinstance(failed, int) and not isinstance(failed, bool) else 0


def _seconds(text: str | None) -> float | None:
    """A Retry-After in seconds (the HTTP-date form is not used by the station)."""
    try:
        return max(0.0, float(text)) if text else None
    except ValueError:
        return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the station running?)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
