"""The REST receiver's endpoints: request in, answer out, independent of the HTTP server.

``POST /api/iot/vitals/``, ``POST /api/iot/vitals/batch/`` and ``GET /api/iot/status/`` keep the
InHealth contract (paths, fields, ``Authorization: Bearer``, success shapes) without its bugs:
a missing or unparsable timestamp is refused rather than replaced by "now", every refused field
is named in ``errors``, a wrong method is a 405 with ``Allow``, an unknown path a 404, a body
over the limit a 413 before it is read, a key over its rate a 429 with ``Retry-After``, a busy
station or failed commit a 503 with ``Retry-After``, and bad input is never a 500.

Checks run in this order, each answering at once: route (404/405) → Content-Length (411/413) →
Content-Type (415) → key (401) → rate (429) → device state and permission (403) → body JSON
(400) → device_id matches the key (403) → fields (400) → device assigned (400) → stored (200)
or not committed (503). A reading is answered only after it is committed (``Pipeline``), and a
re-sent reading answers with the id it was first stored under.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from vitalstation.domain.clock import Clock, utc_now
from vitalstation.domain.errors import PayloadError, quote
from vitalstation.domain.payloads import (
    BatchReadings,
    decode_json,
    parse_inhealth_reading,
    parse_inhealth_readings,
)
from vitalstation.domain.readings import InputKind, Reading
from vitalstation.ingest.rest_auth import (
    ClientAddress,
    KeyCache,
    KeyDirectory,
    KeyGrant,
    RateLimiter,
    presented_prefix,
)
from vitalstation.ingest.rest_openapi import (
    BATCH_PATH,
    OPENAPI_PATH,
    STATUS_PATH,
    VITALS_PATH,
    openapi_json,
)
from vitalstation.pipeline.core import Pipeline, PipelineBusy, PipelineStopped
from vitalstation.pipeline.types import ActivityEntry, Outcome, ReadingResult

_LOGGER = logging.getLogger(__name__)

INPUT_NAME = "rest"
# How long a request waits for room in a full pipeline queue before it is answered 503.
SUBMIT_WAIT_S = 1.0
# How long a request waits for its readings to be committed before it is answered 503 (the
# readings may still be stored; sending them again is safe: duplicates are recognised).
STORE_TIMEOUT_S = 15.0
RETRY_BUSY_S = 1
RETRY_STORE_S = 5
RETRY_STOPPING_S = 10
# How often a request waiting for room in a full pipeline queue tries again.
BUSY_POLL_S = 0.01

# Outcomes read once (an Enum member read from its class goes through EnumType.__getattr__).
_STORED = Outcome.STORED
_DUPLICATE = Outcome.DUPLICATE
_FAILED = Outcome.FAILED
_REJECTED = Outcome.REJECTED

# Device states whose readings the receiver refuses (403); "maintenance" is still accepted.
_REFUSED_STATES = ("retired", "inactive")

AlertCounter = Callable[[Sequence[ReadingResult]], int]
"""How many alarms a request's readings raised (``alerts_triggered``)."""


def alarms_raised(results: Sequence[ReadingResult]) -> int:
    """``alerts_triggered``: the alarms the readings raised, as the pipeline's alarm engine
    reported them (``ReadingResult.alarms_raised``; 0 for duplicates and rejected readings)."""
    return sum(result.alarms_raised for result in results)


def no_alerts(results: Sequence[ReadingResult]) -> int:
    """Always 0 (a receiver with no alarm engine behind it)."""
    return 0


class Headers(Protocol):
    """The request headers (``http.client.HTTPMessage``): case-insensitive."""

    def get(self, name: str, default: Any = None) -> Any: ...
    def get_all(self, name: str, failobj: Any = None) -> Any: ...


class Body(Protocol):
    """The request body, read at most once and only when the endpoint wants it."""

    async def read(self, length: int) -> bytes:
        """Exactly ``length`` bytes; raises ``BodyError`` if the client sends fewer."""
        ...


class BodyError(Exception):
    """The client did not send the body it announced (closed, or too slow)."""


@dataclass(frozen=True, slots=True, init=False)
class Response:
    """An answer: status, JSON body, extra headers; ``close`` ends the connection after it."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False

    def __init__(
        self,
        status: int,
        body: bytes,
        headers: tuple[tuple[str, str], ...] = (),
        close: bool = False,
    ) -> None:
        # Through the slots' own setters: the frozen dataclass's __init__ sets each field
        # with object.__setattr__ (~1,600 instructions a field, one answer per request).
        _set_status(self, status)
        _set_body(self, body)
        _set_headers(self, headers)
        _set_close(self, close)


_set_status = Response.__dict__["status"].__set__
_set_body = Response.__dict__["body"].__set__
_set_headers = Response.__dict__["headers"].__set__
_set_close = Response.__dict__["close"].__set__


class _Refusal(Exception):
    """A request answered with an error status at the step that found the problem."""

    def __init__(
        self,
        status: int,
        error: str,
        errors: dict[str, Any] | None = None,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        close: bool = False,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.errors = errors
        self.headers = headers
        self.close = close


@dataclass(slots=True)
class _Call:
    """What the activity log keeps of one request."""

    method: str
    path: str
    peer: str
    action: str = "error"
    device_id: str | None = None
    key_prefix: str | None = None
    key_used: bool = False
    error: str | None = None
    received: int = 0  # readings durable (stored now or before)
    rejected: int = 0  # readings refused


@dataclass(slots=True)
class RestCounters:
    requests: int = 0
    received: int = 0  # readings durable (stored now or before)
    rejected: int = 0  # readings refused
    by_status: dict[int, int] = field(default_factory=dict)


_ROUTES: dict[str, tuple[str, str]] = {
    VITALS_PATH: ("POST", "vitals"),
    BATCH_PATH: ("POST", "batch"),
    STATUS_PATH: ("GET", "status"),
    OPENAPI_PATH: ("GET", "openapi"),
}


def _route(path: str) -> tuple[str, str] | None:
    route = _ROUTES.get(path)
    if route is None and not path.endswith("/"):
        route = _ROUTES.get(path + "/")  # /api/iot/vitals as /api/iot/vitals/
    return route


def dumps(obj: Any) -> bytes:
    """JSON as sent: compact, ASCII-safe."""
    return json.dumps(obj, separators=(",", ":")).encode("ascii")


def iso(value: datetime) -> str:
    """UTC ISO-8601 with ``Z``, as the seed answered."""
    if value.tzinfo is UTC:  # a reading's time: its isoformat ends "+00:00"
        return value.isoformat()[:-6] + "Z"
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def error_body(error: str, errors: dict[str, Any] | None = None) -> bytes:
    """The error shape: the seed's ``{"success": false, "error"}`` plus the field map."""
    body: dict[str, Any] = {"success": False, "error": error}
    if errors:
        body["errors"] = errors
    return dumps(body)


_INTERNAL = error_body("Internal server error")
_CHALLENGE = (("WWW-Authenticate", 'Bearer realm="vitalstation"'),)


def _key_unavailable(call: _Call, key: str, exc: Exception) -> _Refusal:
    """The 503 of a key the station cannot check now (the database is down)."""
    _LOGGER.warning("API key verification failed: %s", exc)
    call.key_prefix = presented_prefix(key)
    return _Refusal(
        503, "The station cannot check API keys right now (database unavailable); "
        "try again shortly",
        headers=(("Retry-After", str(RETRY_STORE_S)),),
    )


class _Waker:
    """Hands results from the pipeline thread to the loop's futures, one wake-up per batch,
    and gives up on those not answered in time.

    ``call_soon_threadsafe`` per request writes to the loop's wake-up pipe each time; the
    pipeline resolves a whole batch of requests at once, so they are queued here and the loop
    is woken once for all of them. Waiting futures are kept in arrival order with their
    deadline, and one check every ``period`` fails the overdue ones with ``TimeoutError``
    (an ``asyncio.timeout`` per request, a timer and a cancellation each, was ~5 % of the
    receiver's time).
    """

    __slots__ = ("_check", "_lock", "_loop", "_pending", "_period", "_waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop, period: float = 1.0) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[asyncio.Future[list[ReadingResult]], list[ReadingResult]]] = []
        self._period = period
        self._waiting: collections.deque[tuple[float, asyncio.Future[list[ReadingResult]]]] = (
            collections.deque()
        )
        self._check: asyncio.TimerHandle | None = None

    def watch(self, future: asyncio.Future[list[ReadingResult]], deadline: float) -> None:
        """Fail ``future`` with ``TimeoutError`` if it is still waiting at ``deadline`` (loop
        time; deadlines come in order), at most ``period`` late. On the loop."""
        self._waiting.append((deadline, future))
        if self._check is None:
            self._check = self._loop.call_later(self._period, self._expire)

    def _expire(self) -> None:
        waiting = self._waiting
        now = self._loop.time()
        while waiting and (waiting[0][1].done() or waiting[0][0] <= now):
            _, future = waiting.popleft()
            if not future.done():
                future.set_exception(TimeoutError())
        self._check = self._loop.call_later(self._period, self._expire) if waiting else None

    def __call__(
        self, future: asyncio.Future[list[ReadingResult]], results: list[ReadingResult]
    ) -> None:
        with self._lock:
            first = not self._pending
            self._pending.append((future, results))
        if first:
            try:
                self._loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def _deliver(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for future, results in pending:
            if not future.done():  # a request that timed out gave up its future
                future.set_result(results)


class RestApi:
    """The endpoints, as coroutines on the HTTP server's event loop.

    Nothing here blocks the loop for long: a key the cache does not know and the status query
    go to the database on a worker thread, and a request waiting for its commit only awaits a
    future the pipeline resolves (many requests are in flight at once, so the single writer
    commits them together).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        keys: KeyCache,
        directory: KeyDirectory,
        *,
        limiter: RateLimiter,
        addresses: ClientAddress,
        activity: Callable[[ActivityEntry], None],
        max_body_bytes: int,
        max_batch_readings: int,
        clock: Clock = utc_now,
        alerts_triggered: AlertCounter = alarms_raised,
        submit_wait_s: float = SUBMIT_WAIT_S,
        store_timeout_s: float = STORE_TIMEOUT_S,
    ) -> None:
        self._pipeline = pipeline
        self._keys = keys
        self._directory = directory
        self._limiter = limiter
        self._addresses = addresses
        self._activity = activity
        self.max_body_bytes = max_body_bytes
        self.max_batch_readings = max_batch_readings
        self._clock = clock
        self._alerts_triggered = alerts_triggered
        self._submit_wait_s = submit_wait_s
        self._store_timeout_s = store_timeout_s
        self._lock = threading.Lock()
        self.counters = RestCounters()
        self._wakers: dict[asyncio.AbstractEventLoop, _Waker] = {}
        # An ``ingest.rest_alerts.AlertResponses`` handing devices' answers to the alarm
        # engine, set by the station when it runs one (None: those paths are a 404).
        self.alert_responses: Any = None

    def _waker(self, loop: asyncio.AbstractEventLoop) -> _Waker:
        waker = self._wakers.get(loop)
        if waker is None:
            period = min(1.0, max(0.01, self._store_timeout_s / 10))
            waker = self._wakers[loop] = _Waker(loop, period)
        return waker

    # -- entry -----------------------------------------------------------------------------

    async def handle(
        self, method: str, target: str, headers: Headers, peer: str, body: Body
    ) -> Response:
        """Answer one request; never raises (an unexpected error is a logged 500)."""
        started = time.perf_counter()
        path = target
        if "?" in path or "#" in path:  # most targets have neither: no lists made
            path = path.split("?", 1)[0].split("#", 1)[0]
        if path.startswith(("http://", "https://")):  # absolute form, as sent to proxies
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        addresses = self._addresses
        client = (
            addresses.resolve(peer, headers.get_all("x-forwarded-for")) if addresses.trusted
            else peer  # what resolve() answers when no proxy is trusted, without the lookup
        )
        call = _Call(method, path, client)
        try:
            response = await self._dispatch(call, method, path, headers, body)
        except _Refusal as refusal:
            call.error = refusal.error
            response = Response(
                refusal.status, error_body(refusal.error, refusal.errors), refusal.headers,
                refusal.close,
            )
        except Exception:  # noqa: BLE001 - a bug must not take the receiver down
            _LOGGER.exception("REST %s %s failed", method, path[:200])
            call.error = "internal server error (see the station log)"
            response = Response(500, _INTERNAL)
        self._record(call, response.status, started)
        return response

    def _record(self, call: _Call, status: int, started: float) -> None:
        if status == 401 or (status == 403 and call.action == "auth"):
            action = "auth"
        elif status < 300:
            action = call.action
        else:
            action = "error"
        with self._lock:  # the request's readings counted with it: one lock per request
            counters = self.counters
            counters.requests += 1
            counters.by_status[status] = counters.by_status.get(status, 0) + 1
            counters.received += call.received
            counters.rejected += call.rejected
        # Positional, in the fields' order: twelve keyword arguments cost more than the
        # entry's own making (5.2 against 3.0 µs here).
        self._activity(ActivityEntry(
            self._clock(), INPUT_NAME, action, status, call.device_id, call.key_prefix,
            call.key_used, call.peer, call.path[:200], call.method[:10],
            (time.perf_counter() - started) * 1000, call.error,
        ))

    # -- steps -----------------------------------------------------------------------------

    async def _dispatch(
        self, call: _Call, method: str, path: str, headers: Headers, body: Body
    ) -> Response:
        route = _route(path)
        if route is None:
            # POST /api/iot/alerts/<id>/response (ingest.rest_alerts), when the station set
            # ``alert_responses`` on this receiver.
            alerts = self.alert_responses
            if alerts is not None and path.startswith("/api/iot/alerts/"):
                return await alerts.handle(self, call, method, path, headers, body)
            raise _Refusal(
                404, f"Not found: no endpoint {path[:100]!r} (the API is described at "
                f"{OPENAPI_PATH})",
            )
        allowed, endpoint = route
        if method != allowed:
            raise _Refusal(
                405, f"Method {method[:20]} not allowed on {path[:100]}; use {allowed}",
                headers=(("Allow", allowed),),
            )
        if endpoint == "openapi":
            call.action = "data_get"
            return Response(200, openapi_json())
        length = 0
        if method == "POST":
            length = self._content_length(headers)
            self._content_type(headers)
        # The key check inline rather than awaiting _authenticate: the cache answers nearly
        # every request, and then no coroutine is made.
        key = self._bearer(call, headers)
        try:
            hit, grant = self._keys.cached(key)
        except Exception as exc:  # noqa: BLE001 - as a failed verification: 503
            raise _key_unavailable(call, key, exc) from None
        if not hit:  # a database query: on a worker thread, not on the loop
            grant = await self._verify(call, key)
        grant = self._granted(call, key, grant)
        retry = self._limiter.check(grant.prefix)
        if retry is not None:
            raise _Refusal(
                429,
                f"Rate limit exceeded: at most {self._limiter.per_minute} requests per minute "
                "per API key",
                headers=(("Retry-After", str(retry)),),
            )
        if endpoint == "status":
            return await self._status(call, grant)
        if grant.device_status in _REFUSED_STATES:
            call.action = "auth"
            raise _Refusal(
                403, f"Device {grant.device_id} is {grant.device_status}: its readings are refused",
            )
        if not grant.can_write_vitals:
            call.action = "auth"
            raise _Refusal(403, "API key does not have permission to write vitals")
        call.action = "data_post"
        if length == 0:
            raise _Refusal(400, "Empty request body: expected a JSON object",
                           {"body": "empty: expected a JSON object"})
        try:
            raw = await body.read(length)
        except BodyError as exc:
            raise _Refusal(400, f"Incomplete request body: {exc}", close=True) from None
        received_at = self._clock()
        # Decoded once: the text is both what is parsed and the raw payload kept. Bytes that
        # are not UTF-8 go to decode_json as bytes, which words the error (400).
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            obj = self._decode(raw)
            text = raw.decode("utf-8", "replace")
        else:
            obj = self._decode(text)
        source = f"{method} {path[:100]} key={grant.prefix} peer={call.peer}"
        if endpoint == "vitals":
            return await self._vitals(call, grant, obj, text, source, received_at)
        parsed = self._parse_batch(grant, obj, text, source, received_at)
        # The decoded body is not needed while the readings are stored: its objects (a dict
        # per reading) freed now are not in the collector's count while the request waits.
        obj = None
        return await self._batch(call, grant, parsed)

    def _content_length(self, headers: Headers) -> int:
        if headers.get("transfer-encoding") is not None:
            raise _Refusal(
                411, "Content-Length required (chunked bodies are not accepted)", close=True
            )
        values = headers.get_all("content-length")
        if not values:
            raise _Refusal(411, "Content-Length required", close=True)
        if len(values) > 1 and len({value.strip() for value in values}) > 1:
            raise _Refusal(400, "Conflicting Content-Length headers", close=True)
        text = values[0].strip()
        if not text.isdigit() or not text.isascii() or len(text) > 18:
            raise _Refusal(400, f"Invalid Content-Length {text[:30]!r}", close=True)
        length = int(text)
        if length > self.max_body_bytes:
            raise _Refusal(
                413,
                f"Request body of {length} bytes is over the limit of {self.max_body_bytes} bytes",
                {"body": f"at most {self.max_body_bytes} bytes; send large batches in parts"},
                close=True,
            )
        return length

    @staticmethod
    def _content_type(headers: Headers) -> None:
        text = headers.get("content-type") or ""
        if text == "application/json":  # what devices send: accepted below too, at more cost
            return
        media, _, params = text.partition(";")
        ok = media.strip().lower() == "application/json"
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
                "utf-8", "utf8"
            ):
                ok = False
        if not ok:
            shown = text[:60] or "none"
            raise _Refusal(
                415, f"Content-Type must be application/json (UTF-8), not {shown!r}",
            )

    @staticmethod
    def _bearer(call: _Call, headers: Headers) -> str:
        """The key presented in ``Authorization: Bearer <key>``; 401 without one."""
        header = headers.get("authorization") or ""
        if header == "Bearer":  # "Bearer " with its trailing space stripped by the parser
            header = "Bearer "
        if not header.startswith("Bearer "):
            call.action = "auth"
            raise _Refusal(
                401, "Missing or invalid Authorization header: send 'Authorization: Bearer <key>'",
                headers=_CHALLENGE,
            )
        key = header[7:].strip()
        if not key:
            call.action = "auth"
            raise _Refusal(401, "Empty API key", headers=_CHALLENGE)
        return key

    async def _verify(self, call: _Call, key: str) -> KeyGrant | None:
        """A key the cache does not answer, verified by the store on a worker thread (the
        default executor's ``asyncio_N`` threads: once per key per cache TTL); 503 when the
        database cannot answer."""
        try:
            return await asyncio.get_running_loop().run_in_executor(None, self._keys.verify, key)
        except Exception as exc:  # noqa: BLE001 - the database is down: the device retries
            raise _key_unavailable(call, key, exc) from None

    async def _authenticate(self, call: _Call, headers: Headers) -> KeyGrant:
        """The key check as one step (``rest_alerts``' endpoints): the grant, or 401/503."""
        key = self._bearer(call, headers)
        try:
            hit, grant = self._keys.cached(key)
        except Exception as exc:  # noqa: BLE001 - as a failed verification: 503
            raise _key_unavailable(call, key, exc) from None
        if not hit:
            grant = await self._verify(call, key)
        return self._granted(call, key, grant)

    @staticmethod
    def _granted(call: _Call, key: str, grant: KeyGrant | None) -> KeyGrant:
        """The grant of a valid key, noted for the log; 401 for an invalid one."""
        if grant is None:
            call.action = "auth"
            call.key_prefix = presented_prefix(key)  # what was presented, for the log
            raise _Refusal(401, "Invalid API key", headers=_CHALLENGE)
        call.key_prefix = grant.prefix
        call.key_used = True
        call.device_id = grant.device_id
        return grant

    async def _read(self, body: Body, length: int) -> bytes:
        """The body (``rest_alerts``' endpoints; ``_dispatch`` reads it inline): 400 when
        empty or incomplete."""
        if length == 0:
            raise _Refusal(400, "Empty request body: expected a JSON object",
                           {"body": "empty: expected a JSON object"})
        try:
            return await body.read(length)
        except BodyError as exc:
            raise _Refusal(400, f"Incomplete request body: {exc}", close=True) from None

    @staticmethod
    def _decode(raw: bytes | str) -> object:
        try:
            return decode_json(raw)
        except PayloadError as exc:
            reason = exc.errors.get("body", exc.message)
            raise _Refusal(400, f"Invalid JSON in request body: {reason}", exc.errors) from None

    # -- endpoints -------------------------------------------------------------------------

    async def _status(self, call: _Call, grant: KeyGrant) -> Response:
        call.action = "data_get"
        try:
            status = await asyncio.get_running_loop().run_in_executor(
                None, lambda: self._directory.device_status(grant.device_id, now=self._clock())
            )
        except Exception as exc:  # noqa: BLE001 - database down
            _LOGGER.warning("device status query failed: %s", exc)
            raise _Refusal(
                503, "The station's database is unavailable; try again shortly",
                headers=(("Retry-After", str(RETRY_STORE_S)),),
            ) from None
        if status is None:  # the device was deleted since the key was cached
            raise _Refusal(401, "Invalid API key")
        return Response(200, dumps({
            "success": True,
            "device_id": status.device_id,
            "device_name": status.name,
            "device_type": status.device_type,
            "is_active": status.is_active,
            "patient_assigned": status.patient_assigned,
            "patient_id": status.patient_id,
            "api_key_valid": True,
            "last_reading": iso(status.last_reading) if status.last_reading else None,
        }))

    def _check_device(self, given: object, grant: KeyGrant, where: str = "") -> None:
        if isinstance(given, str) and given != grant.device_id:
            raise _Refusal(
                403,
                f"device_id {quote(given)}{where} does not match the API key's device "
                f"{quote(grant.device_id)}",
            )

    @staticmethod
    def _check_assigned(grant: KeyGrant) -> None:
        if not grant.assigned:
            reason = (
                f"device {grant.device_id} is not assigned to a bed or patient; nothing was "
                f"stored (the station's admin assigns it: vitalstation device assign "
                f"{grant.device_id} --bed BED)"
            )
            raise _Refusal(400, reason[0].upper() + reason[1:], {"device_id": reason})

    async def _vitals(
        self,
        call: _Call,
        grant: KeyGrant,
        obj: object,
        text: str,
        source: str,
        received_at: datetime,
    ) -> Response:
        if isinstance(obj, dict):
            given = obj.get("device_id")
            if given is None:
                raise _Refusal(
                    400, "Invalid reading: device_id: required",
                    {"device_id": "required: the device's registered id"},
                )
            self._check_device(given, grant)
        try:
            reading = parse_inhealth_reading(
                obj, input=InputKind.REST, received_at=received_at, device_id=grant.device_id,
                raw=text, source_ref=source,
            )
        except PayloadError as exc:
            call.rejected = 1
            raise _Refusal(400, exc.message, exc.errors) from None
        self._check_assigned(grant)
        (result,) = await self._store([reading])
        if result.outcome is _REJECTED:
            call.rejected = 1
            raise _Refusal(400, "Invalid reading: " + "; ".join(
                f"{k}: {v}" for k, v in result.errors.items()), result.errors)
        call.received = 1
        record_id = next(iter(result.record_ids.values()), None)  # first_record_id
        counter = self._alerts_triggered
        alerts = result.alarms_raised if counter is alarms_raised else counter([result])
        # What dumps() gives for these five fields, formatted directly (a json.dumps of a
        # dict per request was ~3 % of the receiver's time): ints, and an ISO time in ASCII.
        return Response(200, (
            '{"success":true,"message":"Vital signs received successfully","vital_sign_id":'
            f'{"null" if record_id is None else int(record_id)},"alerts_triggered":'
            f'{int(alerts)},"timestamp":"{iso(reading.measured_at)}"}}'
        ).encode("ascii"))

    def _parse_batch(
        self, grant: KeyGrant, obj: object, text: str, source: str, received_at: datetime
    ) -> BatchReadings:
        """The batch's readings, or the refusal (403, 413, 400) the request gets first."""
        top_given = deferred = False
        readings: object = None
        if isinstance(obj, dict):
            readings = obj.get("readings")
            if isinstance(readings, list) and len(readings) > self.max_batch_readings:
                reason = (
                    f"has {len(readings)} readings; at most {self.max_batch_readings} are "
                    "accepted per batch"
                )
                raise _Refusal(413, f"Batch too large: {reason}", {"readings": reason})
            top = obj.get("device_id")
            top_given = top is not None
            self._check_device(top, grant)
            # With the key's own device_id at the top, a reading naming another device is an
            # error of the parse (device_id does not match): its items are looked at only
            # when the parse found errors, and then the 403 comes before anything else.
            deferred = top == grant.device_id
            if not deferred:
                self._check_items(readings, grant)
        try:
            parsed = parse_inhealth_readings(
                obj, input=InputKind.REST, received_at=received_at,
                device_id=grant.device_id if top_given else None,
                max_readings=self.max_batch_readings, raw=text, source_ref=source,
            )
        except PayloadError as exc:
            raise _Refusal(400, exc.message, exc.errors) from None
        if deferred and parsed.errors:
            self._check_items(readings, grant)
        return parsed

    def _check_items(self, readings: object, grant: KeyGrant) -> None:
        """403 for the first reading whose device_id is another device's."""
        if isinstance(readings, list):
            own = grant.device_id
            for index, item in enumerate(readings):
                if isinstance(item, dict) and item.get("device_id", own) != own:
                    self._check_device(item["device_id"], grant, f" (reading {index})")

    async def _batch(self, call: _Call, grant: KeyGrant, parsed: BatchReadings) -> Response:
        errors: dict[str, Any] = {str(index): problems for index, problems in parsed.errors.items()}
        if not parsed.readings:
            call.rejected = parsed.total
            raise _Refusal(
                400, f"No valid reading in the batch ({parsed.total} refused; see errors)",
                errors,
            )
        self._check_assigned(grant)
        readings = parsed.readings
        results = await self._store(readings)
        if len(results) != len(readings):
            raise ValueError(f"{len(results)} results for {len(readings)} readings")
        indexes = parsed.indexes
        created: list[int] = []
        durable: list[ReadingResult] = []
        duplicates = 0
        alerts = 0
        counted = self._alerts_triggered is alarms_raised  # summed here, not by a second pass
        stored, duplicate = _STORED, _DUPLICATE
        add_created, add_durable = created.append, durable.append
        for position, result in enumerate(results):
            outcome = result.outcome
            if outcome is stored or outcome is duplicate:
                add_durable(result)
                for record_id in result.record_ids.values():  # first_record_id
                    if record_id is not None:
                        add_created(record_id)
                    break
                if outcome is duplicate:
                    duplicates += 1
                if counted:
                    alerts += result.alarms_raised
            else:
                index = position if indexes is None else indexes[position]
                errors[str(index)] = dict(result.errors)
        rejected = parsed.total - len(durable)
        call.received, call.rejected = len(durable), rejected
        if not durable:
            raise _Refusal(
                400, f"No valid reading in the batch ({parsed.total} refused; see errors)",
                errors,
            )
        return Response(200, dumps({
            "success": True,
            "message": "Batch submitted successfully",
            "total_readings": parsed.total,
            "processed": len(durable),
            "failed": rejected,
            "duplicates": duplicates,
            "vitals_created": created,
            "alerts_triggered": alerts if counted else self._alerts_triggered(durable),
            "errors": dict(sorted(errors.items(), key=lambda item: int(item[0]))),
        }))

    async def _store(self, readings: list[Reading]) -> list[ReadingResult]:
        """Submit and await the commit; 503 when the station cannot store them now."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[ReadingResult]] = loop.create_future()
        wake = self._waker(loop)
        # wake(future, results) on the pipeline thread: a partial, not a closure (no cells in
        # this frame, one Python call fewer per request).
        on_done = partial(wake, future)
        now = loop.time()
        deadline = now + self._submit_wait_s
        try:
            while True:
                try:
                    self._pipeline.submit(readings, on_done=on_done, timeout=0.0)
                    break
                except PipelineBusy:
                    if loop.time() >= deadline:
                        raise
                    await asyncio.sleep(BUSY_POLL_S)  # the loop serves others meanwhile
                    now = loop.time()
            wake.watch(future, now + self._store_timeout_s)
            results = await future
        except PipelineBusy:
            raise _Refusal(
                503, "The station is busy; try again shortly (nothing was stored)",
                headers=(("Retry-After", str(RETRY_BUSY_S)),),
            ) from None
        except PipelineStopped:
            raise _Refusal(
                503, "The station is stopping; try again shortly (nothing was stored)",
                headers=(("Retry-After", str(RETRY_STOPPING_S)),),
            ) from None
        except TimeoutError:
            raise _Refusal(
                503, "The station did not store the readings in time; send them again "
                "(a reading already stored is recognised, not duplicated)",
                headers=(("Retry-After", str(RETRY_STORE_S)),),
            ) from None
        failed = _FAILED  # a module constant: Outcome.FAILED is a class look-up per use
        for result in results:
            if result.outcome is failed:
                break
        else:
            return results
        reason = next(
            (r.errors.get("store") or r.errors.get("pipeline") or "not committed")
            for r in results if r.outcome is failed
        )
        _LOGGER.warning("REST readings not stored: %s", reason)
        raise _Refusal(
            503, "The station's database did not store the readings; send them again "
            "shortly (nothing was acknowledged)",
            headers=(("Retry-After", str(RETRY_STORE_S)),),
        )
