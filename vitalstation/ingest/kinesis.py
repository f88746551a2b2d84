"""The Kinesis input: every shard of one stream, checkpointed in the database.

An IoT rule forwards the bedside monitors' MQTT messages into a Kinesis stream (the seed's
architecture); this input reads that stream. One discovery thread lists the stream's shards
(``ListShards``, every :data:`SHARD_SYNC_INTERVAL_S` and whenever a reader ends) and starts one
:class:`~vitalstation.ingest.kinesis_shard.ShardReader` thread per shard, each with its own
boto3 client (clients are not shared across threads). A shard created by resharding (split or
merge) is started only once its parent shards are read to their end, so a device's readings
are stored in the order it sent them. Every record of every batch is parsed (the seed read only
the last one), and each shard's checkpoint is saved only after its batch is stored, so a
restart resumes after the last stored record: nothing lost, nothing stored twice.

Where a shard with no checkpoint starts is ``kinesis.initial_position``: ``TRIM_HORIZON`` (the
default: everything the stream retains) or ``LATEST``. Children of a shard this station has
read always start at ``TRIM_HORIZON``, or the records put between the split and their reader's
start would be skipped.

Credentials: the station's secrets ``aws.access_key_id`` / ``aws.secret_access_key`` (the OS
keyring, set in Settings; the runtime passes them in), else boto3's default chain (environment
variables, the shared credentials and config files with ``AWS_PROFILE``, container or instance
roles). They are never logged, nor shown in health.

Stopping: ``stop(timeout)`` ends every pause at once (all waits are on an ``Event``); a reader
waiting for the pipeline to store its last batch keeps waiting, up to the timeout, and then
saves that checkpoint (the runtime stops inputs before draining the pipeline, so the pipeline
is still running). Past the timeout the wait is abandoned: the pipeline's drain still stores
the batch, but its checkpoint is not saved, and the next start re-reads it from the older
checkpoint, which the store's dedupe makes exact (duplicates counted, no second record).

Limits: two stations consuming the same stream each read every shard (no lease sharing, as the
KCL does); with one shared database the dedupe keeps the records exact. KPL-aggregated records
are dead-lettered with a reason, not unpacked.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOError,
    TokenRetrievalError,
)

from vitalstation.config.secrets import AwsCredentials
from vitalstation.config.settings import KinesisSettings
from vitalstation.domain.clock import Clock, utc_now
from vitalstation.ingest.base import InputHealth, InputState
from vitalstation.ingest.kinesis_shard import (
    INPUT_NAME,
    SHARD_END,
    CheckpointStore,
    ClientFactory,
    Counters,
    ErrorKind,
    Position,
    ShardReader,
    ShardState,
    ShardStatus,
)
from vitalstation.pipeline.core import Pipeline

__all__ = [
    "SHARD_END",
    "CheckpointStore",
    "ClientFactory",
    "KinesisInput",
    "ShardState",
    "ShardStatus",
    "boto3_client_factory",
    "classify",
]

_LOGGER = logging.getLogger(__name__)

# --- tuning (module constants so tests can patch them; read at call time) --------------------

# How often the shard list is refreshed: new shards of a resharding are found within this
# (and at once when a parent is read to its end). ListShards allows 100 calls/s per stream.
SHARD_SYNC_INTERVAL_S = 10.0
# A missing stream may be created later (by an admin, by CloudFormation): look again this often.
MISSING_STREAM_RETRY_S = 10.0
# Refused or missing credentials, a database that cannot give the checkpoints: retry this often.
SLOW_RETRY_S = 30.0
# boto3 timeouts. GetRecords answers in well under a second; a dead endpoint must not hold a
# reader (and so the station's stop) for botocore's default 60 s.
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0


# --- AWS errors ---------------------------------------------------------------------------

_THROTTLING_CODES = frozenset({
    "ProvisionedThroughputExceededException", "LimitExceededException", "ThrottlingException",
    "KMSThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
})
_CREDENTIAL_CODES = frozenset({
    "UnrecognizedClientException", "InvalidSignatureException", "AccessDeniedException",
    "ExpiredTokenException", "IncompleteSignature", "MissingAuthenticationToken",
    "InvalidClientTokenId", "SignatureDoesNotMatch", "KMSAccessDeniedException",
})
_TRANSIENT_CODES = frozenset({
    "InternalFailure", "InternalFailureException", "ServiceUnavailable",
    "ServiceUnavailableException", "InternalServerError", "KMSInternalException",
})
_CREDENTIAL_ERRORS = (
    NoCredentialsError, PartialCredentialsError, CredentialRetrievalError, ProfileNotFound,
    TokenRetrievalError, SSOError,
)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ``ClientError``, else the exception's class name."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "ClientError")
    return type(exc).__name__


def classify(exc: BaseException) -> tuple[ErrorKind, str]:
    """What kind of failure ``exc`` is, and a short reason safe to show and log.

    Credentials never appear: for credential failures only the error's name is given (botocore
    messages about them name variables, not values, but there is no reason to echo them).
    """
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        message = str(exc.response.get("Error", {}).get("Message") or "")[:200]
        if code == "ExpiredIteratorException":
            return ErrorKind.EXPIRED, "shard iterator expired"
        if code in _THROTTLING_CODES:
            return ErrorKind.THROTTLED, f"throttled by Kinesis ({code})"
        if code == "ResourceNotFoundException":
            return ErrorKind.NOT_FOUND, message or code
        if code == "ResourceInUseException":
            return ErrorKind.IN_USE, message or code
        if code in _CREDENTIAL_CODES:
            return ErrorKind.CREDENTIALS, (
                f"AWS refused the credentials ({code}); check the AWS keys in Settings (the "
                "keyring), or the environment or AWS profile"
            )
        if code == "InvalidArgumentException":
            return ErrorKind.INVALID, f"{code}: {message}"
        if code in _TRANSIENT_CODES or status >= 500:
            return ErrorKind.TRANSIENT, f"Kinesis error {status} ({code})"
        return ErrorKind.OTHER, f"{code}: {message}" if message else code
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return ErrorKind.CREDENTIALS, (
            f"no usable AWS credentials ({type(exc).__name__}); set the AWS keys in Settings "
            "(the keyring), or in the environment or an AWS profile"
        )
    if isinstance(exc, ConnectionError | HTTPClientError | IncompleteReadError):
        return ErrorKind.TRANSIENT, f"cannot reach Kinesis: {str(exc)[:200]}"
    if isinstance(exc, BotoCoreError):
        return ErrorKind.OTHER, f"{type(exc).__name__}: {str(exc)[:200]}"
    return ErrorKind.UNEXPECTED, f"unexpected {type(exc).__name__}: {str(exc)[:200]}"



def boto3_client_factory(
    settings: KinesisSettings, credentials: AwsCredentials | None = None
) -> ClientFactory:
    """A factory of Kinesis clients for ``settings``: a new client per call (one per thread).

    botocore's own retries are off: the readers retry with their own back-off, which ``stop``
    interrupts and health shows. ``credentials`` (the station's keyring secrets) if given, else
    boto3's default chain (environment, shared files and ``AWS_PROFILE``, container and instance
    roles).
    """
    config = Config(
        region_name=settings.region,
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        max_pool_connections=2,
    )

    # One session for the input, used under a lock: a boto3 session is not thread-safe, and a
    # session per client would load and parse the service model again for every shard (≈ 0.2 s
    # of CPU each). Each call still returns a new client, used by one thread only.
    lock = threading.Lock()
    sessions: list[boto3.session.Session] = []

    def make() -> Any:
        with lock:
            if not sessions:
                sessions.append(
                    boto3.session.Session(
                        aws_access_key_id=credentials.access_key_id,
                        aws_secret_access_key=credentials.secret_access_key,
                        aws_session_token=credentials.session_token,
                    )
                    if credentials is not None
                    else boto3.session.Session()
                )
            return sessions[0].client(
                "kinesis",
                region_name=settings.region,
                endpoint_url=settings.endpoint_url or None,
                config=config,
            )

    return make


def _short_id(shard_id: str) -> str:
    """``shardId-000000000007`` → ``7`` for a compact health line."""
    tail = shard_id.rsplit("-", 1)[-1]
    return str(int(tail)) if tail.isdigit() else shard_id


class KinesisInput:
    """Reads every shard of ``settings.stream`` into ``pipeline``; see the module docstring.

    ``checkpoints`` keeps a sequence number per shard (``storage.checkpoints`` implements it;
    the runtime wires it). ``client_factory`` makes one boto3 client per thread (tests wrap it
    to inject faults). Thread-safety: ``start``, ``stop`` and ``health`` from one controlling
    thread; ``health`` and ``shards`` from any.
    """

    name = INPUT_NAME

    def __init__(
        self,
        settings: KinesisSettings,
        pipeline: Pipeline,
        checkpoints: CheckpointStore,
        *,
        client_factory: ClientFactory | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._settings = settings
        self._stream = settings.stream
        self._pipeline = pipeline
        self._checkpoints = checkpoints
        self._client_factory = client_factory or boto3_client_factory(settings)
        self._naive_zone = ZoneInfo(settings.timestamp_zone)  # checked by the settings loader
        self._clock = clock
        self.counters = Counters()
        self._stop = threading.Event()
        self._abandon = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._readers: dict[str, ShardReader] = {}
        self._finished: set[str] = set()
        self._saved: dict[str, str] = {}  # checkpoints loaded, then as readers leave them
        self._lost_at: dict[str, float] = {}
        self._waiting: set[str] = set()  # shards waiting for their parents
        self._discovered = False
        self._endpoint = settings.endpoint_url or f"the AWS endpoint of {settings.region}"
        # What is wrong with discovery, else None: (hard, detail). Hard trouble (stream missing,
        # credentials refused) is DOWN; soft trouble only when no shard is being read.
        self._trouble: tuple[bool, str] | None = None
        self._loaded = False
        self._stopped = False
        self._last_state: InputState | None = None
        self._since: datetime | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start discovery on its own thread; returns at once (health shows the progress)."""
        if self._thread is not None:
            raise RuntimeError("the Kinesis input was already started")
        self._thread = threading.Thread(
            target=self._run, name="vitalstation-kinesis", daemon=True
        )
        self._thread.start()
        _LOGGER.info(
            "kinesis: reading stream %s in %s at %s",
            self._stream, self._settings.region, self._endpoint,
        )

    def stop(self, timeout: float) -> None:
        """Stop every reader; in-flight batches are checkpointed if stored within ``timeout``."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            readers = list(self._readers.values())
        for reader in readers:
            reader.join(deadline - time.monotonic())
        self._abandon.set()
        stuck = [r.shard_id for r in readers if r.alive]
        grace = time.monotonic() + 0.5  # readers waiting on the pipeline leave at once now
        for reader in readers:
            reader.join(grace - time.monotonic())
        if stuck:
            _LOGGER.warning(
                "kinesis: %d shard readers still busy after %.1f s (%s); their last batch is "
                "left to the pipeline and will be read again at the next start",
                len(stuck), timeout, ", ".join(stuck),
            )
        self._stopped = True

    # -- health ------------------------------------------------------------------------------

    def shards(self) -> tuple[ShardStatus, ...]:
        """Every shard being read or known finished/waiting, by shard id."""
        with self._lock:
            statuses = {sid: reader.status() for sid, reader in self._readers.items()}
            for sid in self._waiting:
                statuses.setdefault(
                    sid, ShardStatus(sid, ShardState.WAITING, None, self._saved.get(sid), 0, 0)
                )
        return tuple(statuses[sid] for sid in sorted(statuses))

    def health(self) -> InputHealth:
        """UP / DEGRADED / DOWN with the stream, shard count, lag and what is wrong.

        ``received`` counts Kinesis records read and stored; ``rejected`` the records refused in
        whole or in part (each kept as a dead letter). The detail names the stream, the shards
        being read and each one's MillisBehindLatest, e.g. ``stream BSMStream: 4 shards, lag
        120 ms (0: 120, 1: 0, 2: 3, 3: 0)``.
        """
        state, detail = self._assess()
        if state is not self._last_state:
            self._last_state, self._since = state, self._clock()
        counts = self.counters.snapshot()
        return InputHealth(
            name=self.name,
            state=state,
            detail=detail,
            since=self._since,
            received=counts["received"],
            rejected=counts["rejected"],
        )

    def _assess(self) -> tuple[InputState, str]:
        if self._stopped:
            return InputState.STOPPED, f"stream {self._stream}: stopped"
        statuses = self.shards()
        active = [
            s for s in statuses
            if s.state in (ShardState.STARTING, ShardState.READING, ShardState.BACKING_OFF)
        ]
        waiting = sum(1 for s in statuses if s.state is ShardState.WAITING)
        trouble = self._trouble
        if trouble is not None and (trouble[0] or not active):
            return InputState.DOWN, trouble[1]
        if not self._discovered:
            return InputState.STARTING, (
                f"connecting to stream {self._stream} in {self._settings.region} "
                f"at {self._endpoint}"
            )
        lags = [(s.shard_id, s.lag_ms) for s in active]
        known = [lag for _, lag in lags if lag is not None]
        detail = f"stream {self._stream}: {len(active)} shard{'s' if len(active) != 1 else ''}"
        if known:
            detail += f", lag {max(known)} ms (" + ", ".join(
                f"{_short_id(sid)}: {'?' if lag is None else lag}" for sid, lag in lags
            ) + ")"
        if waiting:
            detail += f", {waiting} waiting for parent shards"
        problems = [f"shard {_short_id(s.shard_id)}: {s.problem}" for s in active if s.problem]
        if trouble is not None:
            problems.insert(0, trouble[1])
        if problems:
            return InputState.DEGRADED, detail + "; " + "; ".join(problems)
        return InputState.UP, detail

    # -- discovery thread --------------------------------------------------------------------

    def _run(self) -> None:
        client: Any = None
        backoff_attempt = 0
        while not self._stop.is_set():
            # Cleared before listing: a reader that ends meanwhile wakes the next round at once.
            self._wake.clear()
            try:
                if client is None:
                    client = self._client_factory()
                    self._endpoint = str(getattr(client.meta, "endpoint_url", self._endpoint))
                if not self._loaded:
                    self._load_checkpoints()
                shards = self._list_shards(client)
            except _CheckpointsUnavailable as exc:
                self._trouble = (True, str(exc))
                self._stop.wait(SLOW_RETRY_S)
                continue
            except Exception as exc:  # noqa: BLE001 - classified and shown in health
                delay = self._report(exc, backoff_attempt)
                backoff_attempt += 1
                self._stop.wait(delay)
                continue
            backoff_attempt = 0
            self._trouble = None
            self._reconcile(shards)
            self._discovered = True
            self._wake.wait(SHARD_SYNC_INTERVAL_S)

    def _load_checkpoints(self) -> None:
        try:
            saved = self._checkpoints.load(self._stream)
        except Exception as exc:  # noqa: BLE001 - without them a start could skip or repeat
            _LOGGER.error("kinesis: cannot read the checkpoints: %s", exc)
            raise _CheckpointsUnavailable(
                f"stream {self._stream}: cannot read the checkpoints from the database "
                f"({type(exc).__name__}); retrying"
            ) from exc
        with self._lock:
            self._saved.update(saved)
            self._finished.update(sid for sid, seq in saved.items() if seq == SHARD_END)
        self._loaded = True

    def _list_shards(self, client: Any) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        response = client.list_shards(StreamName=self._stream)
        shards.extend(response.get("Shards") or [])
        while response.get("NextToken"):
            response = client.list_shards(NextToken=response["NextToken"])
            shards.extend(response.get("Shards") or [])
        return shards

    def _report(self, exc: Exception, attempt: int) -> float:
        """Show a failed ListShards in health; returns how long to wait before the next try."""
        kind, reason = classify(exc)
        where = f"in {self._settings.region} at {self._endpoint}"
        if kind is ErrorKind.NOT_FOUND:
            detail = (
                f"stream {self._stream} not found {where}; "
                f"looking again every {MISSING_STREAM_RETRY_S:g} s"
            )
            hard, delay = True, MISSING_STREAM_RETRY_S
        elif kind is ErrorKind.CREDENTIALS:
            hard, delay = True, SLOW_RETRY_S
            detail = f"stream {self._stream} {where}: {reason}"
        elif kind is ErrorKind.IN_USE:
            detail = f"stream {self._stream} {where} is being created or changed; waiting"
            hard, delay = False, MISSING_STREAM_RETRY_S
        else:
            detail = f"stream {self._stream} {where}: {reason}"
            hard, delay = False, min(SLOW_RETRY_S, 0.5 * 2 ** min(attempt, 10))
        if self._trouble is None or self._trouble[1] != detail:
            _LOGGER.warning("kinesis: %s", detail)
        self._trouble = (hard, detail)
        return delay

    def _reconcile(self, shards: list[dict[str, Any]]) -> None:
        listed = {shard["ShardId"]: shard for shard in shards}
        now = time.monotonic()
        with self._lock:
            for sid, reader in list(self._readers.items()):
                if not reader.exited:
                    continue
                del self._readers[sid]
                if reader.checkpoint is not None:
                    self._saved[sid] = reader.checkpoint
                if reader.state is ShardState.FINISHED:
                    self._finished.add(sid)
                else:
                    self._lost_at[sid] = now
            self._waiting.clear()
            for sid, shard in listed.items():
                ending = (shard.get("SequenceNumberRange") or {}).get("EndingSequenceNumber")
                if sid in self._readers:
                    self._readers[sid].set_ending(ending)
                    continue
                if sid in self._finished:
                    continue
                if now - self._lost_at.get(sid, -1e9) < SHARD_SYNC_INTERVAL_S:
                    continue  # lost a moment ago: try again at the next regular sync
                parents = [
                    p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId"))
                    if p
                ]
                # A parent no longer listed has aged out of the stream: nothing left to read.
                if any(p in listed and p not in self._finished for p in parents):
                    self._waiting.add(sid)
                    continue
                self._start_reader(sid, ending, self._start_position(sid, parents))

    def _start_position(self, shard_id: str, parents: list[str]) -> Position:
        saved = self._saved.get(shard_id)
        if saved is not None:
            return ("AFTER_SEQUENCE_NUMBER", saved)
        if any(p in self._finished for p in parents):
            return ("TRIM_HORIZON", None)  # a child of a shard we read: from its first record
        return (self._settings.initial_position, None)

    def _start_reader(self, shard_id: str, ending: str | None, start: Position) -> None:
        reader = ShardReader(
            stream=self._stream,
            shard_id=shard_id,
            start=start,
            checkpoint=self._saved.get(shard_id),
            ending=ending,
            client_factory=self._client_factory,
            classify=classify,
            pipeline=self._pipeline,
            checkpoints=self._checkpoints,
            max_records=self._settings.max_records_per_call,
            poll_interval_s=self._settings.poll_interval_ms / 1000,
            naive_zone=self._naive_zone,
            clock=self._clock,
            counters=self.counters,
            stop=self._stop,
            abandon=self._abandon,
            on_exit=self._on_reader_exit,
        )
        self._readers[shard_id] = reader
        self._lost_at.pop(shard_id, None)
        _LOGGER.info(
            "kinesis %s/%s: reading from %s", self._stream, shard_id,
            f"{start[0]} {start[1]}" if start[1] else start[0],
        )
        reader.start()

    def _on_reader_exit(self, reader: ShardReader) -> None:
        # On the reader's thread: let discovery start its children (or restart it) now.
        if not self._stop.is_set():
            self._wake.set()


class _CheckpointsUnavailable(Exception):
    """The database could not give the checkpoints; reading now could skip or repeat records."""

