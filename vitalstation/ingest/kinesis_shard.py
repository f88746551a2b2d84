"""One Kinesis shard, read on its own thread with its own boto3 client.

The reader of a shard loops: ``GetRecords`` → every record of the batch becomes readings (or a
dead letter) → one pipeline submission → once the pipeline reports the batch durable (or
refused), the shard's checkpoint is saved at the batch's last sequence number → the next call.
The seed's consumers read only the last record of each batch, from one hard-coded shard, at
``LATEST`` with no checkpoint, and ``int()``-truncated 101.5 °F; here nothing of a batch is
skipped, every value is kept as sent, and a restart resumes ``AFTER_SEQUENCE_NUMBER`` the
checkpoint, so no record is lost and none is stored twice.

Failure handling, per shard:

* the pipeline reports the batch ``FAILED`` (database down): no checkpoint; after a back-off the
  same batch is read again from its first sequence number;
* ``ExpiredIteratorException`` (the reader paused for over 5 minutes): a new iterator from the
  checkpoint, at once;
* throttling (``ProvisionedThroughputExceededException``, ``LimitExceededException``) and
  transient errors (connection errors, 5xx): exponential back-off with jitter, capped;
* refused credentials: a slow retry, shown in health;
* the shard or stream gone (``ResourceNotFoundException``): the reader ends as *lost* and the
  input's shard discovery decides (stream missing → health DOWN; shard listed again → a new
  reader from the checkpoint).

A closed shard (split or merged) is read to its end (``NextShardIterator`` is null; on stacks
that never return null, such as moto, the end is the shard's ``EndingSequenceNumber`` or an
empty, caught-up read of a closed shard), then its checkpoint becomes :data:`SHARD_END` and
its children become eligible.

Thread-affinity: everything here runs on the reader's thread, except :meth:`ShardReader.status`,
:meth:`ShardReader.set_ending` and the properties, which any thread may call.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol

from vitalstation.domain.clock import Clock
from vitalstation.domain.errors import PayloadError, summarize
from vitalstation.domain.payloads import BatchParse, decode_json, parse_payload
from vitalstation.domain.readings import InputKind, Reading
from vitalstation.pipeline.core import Pipeline, PipelineBusy, PipelineStopped
from vitalstation.pipeline.types import Outcome, ReadingResult

_LOGGER = logging.getLogger(__name__)

SHARD_END = "SHARD_END"
"""The checkpoint of a shard read to its end (KCL's name): its children may be read."""

INPUT_NAME = "kinesis"

# --- tuning (module constants so tests can patch them; read at call time) --------------------

# AWS allows 5 GetRecords calls per second per shard: a reader that is behind calls again after
# this long, never sooner (a caught-up reader waits the configured poll interval instead).
MIN_CALL_INTERVAL_S = 0.2
# Throttling and transient errors: base * 2**n with jitter, capped. The cap keeps a reader that
# rode out a long outage at most this far from noticing that Kinesis is back.
BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 10.0
# Refused or missing credentials are not fixed by hammering: retry this slowly.
CREDENTIALS_RETRY_S = 30.0
# How long one wait for the pipeline's room or results lasts before the reader re-checks stop
# and abandon: the "never block uninterruptibly for more than ~0.2 s" rule.
WAIT_SLICE_S = 0.2
# Characters of a record kept as a dead letter's excerpt (the writer bounds it again).
EXCERPT_CHARS = 2000
# The Kinesis Producer Library's aggregated-record magic: such a record holds many user records
# in protobuf, which the station does not unpack.
KPL_MAGIC = b"\xf3\x89\x9a\xc2"

ClientFactory = Callable[[], Any]
"""Makes one boto3 Kinesis client; called once on each thread (clients are not shared)."""


class CheckpointStore(Protocol):
    """Where the input keeps each shard's last stored sequence number (``storage`` implements it).

    Both methods are called from reader and discovery threads and must be thread-safe.
    """

    def load(self, stream: str) -> dict[str, str]:
        """Every checkpoint of ``stream``: shard id → sequence number or :data:`SHARD_END`."""
        ...

    def save(self, stream: str, shard_id: str, sequence_number: str) -> None:
        """Record that every record of the shard up to ``sequence_number`` is stored."""
        ...


# --- errors ---------------------------------------------------------------------------------


class ErrorKind(enum.Enum):
    """How the readers and the discovery loop treat a failed AWS call."""

    EXPIRED = "expired iterator"
    THROTTLED = "throttled"
    TRANSIENT = "transient"
    NOT_FOUND = "not found"
    IN_USE = "stream busy"
    CREDENTIALS = "credentials"
    INVALID = "invalid argument"
    OTHER = "other"  # any other answer or error of the AWS client
    UNEXPECTED = "unexpected"  # not from the AWS client at all: a bug, logged with a traceback


ErrorClassifier = Callable[[BaseException], tuple[ErrorKind, str]]
"""Says what kind of failure an exception of the AWS client is, with a reason safe to show.

The input (``ingest.kinesis``, the one module that knows botocore) provides it."""


class Backoff:
    """Exponential back-off with "equal jitter" (half fixed, half random), capped.

    Jitter keeps the readers of one stream from retrying in lock-step after a shared throttle.
    """

    def __init__(self) -> None:
        self._attempt = 0

    def next_delay(self) -> float:
        """The pause before the next retry (grows with each call until :meth:`reset`)."""
        ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2 ** min(self._attempt, 30)))
        self._attempt += 1
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not secrets

    def reset(self) -> None:
        """Forget past failures (after a successful call)."""
        self._attempt = 0


# --- records → readings ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecodedRecord:
    """What one Kinesis record held: its readings, and why some or all of it was refused."""

    readings: list[Reading]
    refusal: str | None
    excerpt: str


def _batch_refusal(parsed: BatchParse) -> str:
    if parsed.total == 1 and 0 in parsed.errors:
        return summarize(parsed.errors[0])
    parts = [
        f"readings[{index}]: " + "; ".join(f"{k}: {v}" for k, v in errors.items())
        for index, errors in sorted(parsed.errors.items())
    ]
    return f"{len(parsed.errors)} of {parsed.total} readings invalid: " + " | ".join(parts)


def decode_record(
    data: bytes, *, source_ref: str, received_at: datetime, naive_zone: tzinfo = UTC
) -> DecodedRecord:
    """Parse one record's data (bytes: boto3 has already base64-decoded it).

    The same payload formats as MQTT: the bedside one-vital message, the InHealth reading
    object, or a batch of them. Values are kept as sent (101.5 °F stays 101.5 °F). A timestamp
    without an offset (the bedside publisher's ``2025-11-08 10:23:45.123456``) is read in
    ``naive_zone`` (``kinesis.timestamp_zone``).
    """
    if data.startswith(KPL_MAGIC):
        reason = (
            "KPL-aggregated record: the station reads one payload per record; turn off "
            "aggregation in the producer (AggregationEnabled=false)"
        )
        return DecodedRecord([], reason, repr(data[:200]))
    try:
        obj = decode_json(data)
    except PayloadError as exc:
        excerpt = data[:EXCERPT_CHARS].decode("utf-8", "backslashreplace")
        return DecodedRecord([], exc.message, excerpt)
    text = data.decode("utf-8").lstrip("\ufeff")
    try:
        parsed = parse_payload(
            obj,
            input=InputKind.KINESIS,
            received_at=received_at,
            naive_zone=naive_zone,
            raw=text,
            source_ref=source_ref,
        )
    except PayloadError as exc:
        return DecodedRecord([], exc.message, text[:EXCERPT_CHARS])
    readings = [reading for _, reading in parsed.readings]
    refusal = _batch_refusal(parsed) if parsed.errors else None
    return DecodedRecord(readings, refusal, text[:EXCERPT_CHARS] if refusal else "")


# --- the reader -----------------------------------------------------------------------------


class ShardState(enum.StrEnum):
    """Where a shard's reader is (shown per shard in health)."""

    WAITING = "waiting"  # for its parent shards to be read to their end
    STARTING = "starting"
    READING = "reading"
    BACKING_OFF = "backing off"
    FINISHED = "finished"  # closed shard read to its end; SHARD_END saved
    LOST = "lost"  # the shard (or stream) is gone; discovery decides what next
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ShardStatus:
    """One shard as health and the status bar show it."""

    shard_id: str
    state: ShardState
    lag_ms: int | None  # MillisBehindLatest of the last read; None before the first
    checkpoint: str | None
    received: int  # records read
    rejected: int  # records refused in whole or in part (dead-lettered)
    problem: str = ""


class _Delivery(enum.Enum):
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"


class _ShardLost(Exception):
    """The shard or its stream no longer exists."""


class Counters:
    """Records read and refused, summed over every reader of the input (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received = 0
        self.rejected = 0
        self.dead_letters = 0
        self.expired_iterators = 0
        self.throttled = 0
        self.errors = 0
        self.failed_batches = 0
        self.get_records_calls = 0

    def add(self, **amounts: int) -> None:
        """Add to named counters."""
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    def snapshot(self) -> dict[str, int]:
        """Every counter, consistently."""
        with self._lock:
            return {k: v for k, v in vars(self).items() if not k.startswith("_")}


Position = tuple[str, str | None]
"""Where to get an iterator: (ShardIteratorType, StartingSequenceNumber or None)."""


class ShardReader:
    """Reads one shard on its own thread until it ends, is lost, or the input stops.

    ``stop`` ends the reading loop promptly (every pause is an ``Event`` wait). A batch already
    submitted when ``stop`` is set is still waited for, so that its checkpoint is saved: the
    runtime stops inputs before it drains the pipeline, so the pipeline is still storing then.
    ``abandon`` (set by the input when its stop timeout has passed) gives that wait up; the
    batch is then stored by the pipeline's drain but not checkpointed, and the next start
    re-reads it from the older checkpoint (the store's dedupe keeps that exact).
    """

    def __init__(
        self,
        *,
        stream: str,
        shard_id: str,
        start: Position,
        checkpoint: str | None,
        ending: str | None,
        client_factory: ClientFactory,
        classify: ErrorClassifier,
        pipeline: Pipeline,
        checkpoints: CheckpointStore,
        max_records: int,
        poll_interval_s: float,
        naive_zone: tzinfo,
        clock: Clock,
        counters: Counters,
        stop: threading.Event,
        abandon: threading.Event,
        on_exit: Callable[[ShardReader], None],
    ) -> None:
        self.stream = stream
        self.shard_id = shard_id
        self._position: Position = start
        self._checkpoint = checkpoint
        self._ending = ending
        self._client_factory = client_factory
        self._classify = classify
        self._pipeline = pipeline
        self._checkpoints = checkpoints
        self._max_records = max_records
        self._poll_interval_s = poll_interval_s
        self._naive_zone = naive_zone
        self._clock = clock
        self._counters = counters
        self._stop = stop
        self._abandon = abandon
        self._on_exit = on_exit
        self._backoff = Backoff()
        self._expired_in_a_row = 0
        self._client: Any = None
        self._state = ShardState.STARTING
        self._problem = ""
        self._lag_ms: int | None = None
        self._received = 0
        self._rejected = 0
        # Dead letters already written for the batch being retried (so a retry adds none).
        self._dead_lettered: set[tuple[str, str]] = set()
        # Dead letters the writer gave up on (database down), appended on the pipeline thread
        # before the batch's submission is resolved: the batch is then read again.
        self._unstored_dead_letters: list[tuple[str, str]] = []
        self._thread = threading.Thread(
            target=self._run, name=f"vitalstation-kinesis-{shard_id}", daemon=True
        )

    # -- any thread --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the reader's thread."""
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the thread to end."""
        self._thread.join(max(0.0, timeout))

    @property
    def alive(self) -> bool:
        """True while the reader's thread runs."""
        return self._thread.is_alive()

    @property
    def exited(self) -> bool:
        """True once the reading loop has ended (the thread may still be finishing)."""
        return self._state in (ShardState.FINISHED, ShardState.LOST, ShardState.STOPPED)

    @property
    def state(self) -> ShardState:
        """The reader's state."""
        return self._state

    @property
    def checkpoint(self) -> str | None:
        """The last checkpoint saved (or loaded), :data:`SHARD_END` when finished."""
        return self._checkpoint

    def set_ending(self, ending: str | None) -> None:
        """The shard's ``EndingSequenceNumber`` once discovery sees it closed."""
        self._ending = ending

    def status(self) -> ShardStatus:
        """A snapshot for health."""
        return ShardStatus(
            shard_id=self.shard_id,
            state=self._state,
            lag_ms=self._lag_ms,
            checkpoint=self._checkpoint,
            received=self._received,
            rejected=self._rejected,
            problem=self._problem,
        )

    # -- the reader's thread -----------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._client = self._client_factory()
            self._read()
        except _ShardLost as exc:
            self._state = ShardState.LOST
            self._problem = str(exc)
            _LOGGER.warning("kinesis %s/%s: %s", self.stream, self.shard_id, exc)
        except Exception as exc:  # noqa: BLE001 - reported; discovery starts a new reader
            self._state = ShardState.LOST
            self._problem = f"reader failed: {type(exc).__name__}: {str(exc)[:200]}"
            _LOGGER.exception("kinesis %s/%s: reader failed", self.stream, self.shard_id)
        else:
            if self._state is not ShardState.FINISHED:
                self._state = ShardState.STOPPED
        finally:
            self._on_exit(self)

    def _read(self) -> None:
        iterator: str | None = None
        next_call = 0.0
        while not self._stop.is_set():
            if iterator is None:
                iterator = self._new_iterator()
                continue
            if not self._pause(next_call - time.monotonic()):
                return
            started = time.monotonic()
            try:
                response = self._client.get_records(ShardIterator=iterator, Limit=self._max_records)
            except Exception as exc:  # noqa: BLE001 - classified; each kind has its remedy
                iterator = self._recover(exc, "GetRecords", iterator)
                continue
            self._counters.add(get_records_calls=1)
            self._expired_in_a_row = 0
            records: Sequence[dict[str, Any]] = response.get("Records") or []
            next_iterator = response.get("NextShardIterator")
            lag = response.get("MillisBehindLatest")
            self._lag_ms = int(lag) if lag is not None else self._lag_ms
            if self._state is not ShardState.READING or self._problem:
                self._state, self._problem = ShardState.READING, ""
            if records:
                delivery = self._deliver(records)
                if delivery is _Delivery.STOPPED:
                    return
                if delivery is _Delivery.FAILED:
                    # Read the same batch again, from its first record, after a pause.
                    self._position = ("AT_SEQUENCE_NUMBER", records[0]["SequenceNumber"])
                    iterator = None
                    self._pause_after_failure("the store did not commit the last batch")
                    continue
            if next_iterator is None:
                self._finish("NextShardIterator is null")
                return
            if self._reached_end(bool(records), lag):
                self._finish(f"EndingSequenceNumber {self._ending} reached")
                return
            self._backoff.reset()  # a whole cycle went through: the next failure starts small
            iterator = next_iterator
            caught_up = len(records) < self._max_records and (lag or 0) <= (
                self._poll_interval_s * 1000
            )
            next_call = started + (self._poll_interval_s if caught_up else MIN_CALL_INTERVAL_S)

    def _pause(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` (interrupted by stop); False when stopping."""
        if seconds > 0:
            return not self._stop.wait(seconds)
        return not self._stop.is_set()

    def _pause_after_failure(self, problem: str, delay: float | None = None) -> None:
        delay = self._backoff.next_delay() if delay is None else delay
        self._state = ShardState.BACKING_OFF
        self._problem = f"{problem}; retrying in {delay:.1f} s"
        self._stop.wait(delay)

    def _new_iterator(self) -> str | None:
        kind, sequence = self._position
        params: dict[str, Any] = {
            "StreamName": self.stream,
            "ShardId": self.shard_id,
            "ShardIteratorType": kind,
        }
        if sequence is not None:
            params["StartingSequenceNumber"] = sequence
        try:
            return str(self._client.get_shard_iterator(**params)["ShardIterator"])
        except Exception as exc:  # noqa: BLE001 - classified below
            kind_of, reason = self._classify(exc)
            if kind_of is ErrorKind.INVALID and sequence is not None:
                # The checkpoint is not a position of this shard (the stream was deleted and
                # re-created under the same name?). Re-reading all it retains loses nothing;
                # the store's dedupe drops what was already stored.
                _LOGGER.error(
                    "kinesis %s/%s: checkpoint %s refused (%s); reading from TRIM_HORIZON",
                    self.stream, self.shard_id, sequence, reason,
                )
                self._position = ("TRIM_HORIZON", None)
                return None
            return self._recover(exc, "GetShardIterator", None)

    def _recover(self, exc: Exception, operation: str, iterator: str | None) -> str | None:
        """Handle a failed call; returns the iterator to go on with (None: get a new one)."""
        kind, reason = self._classify(exc)
        if kind is ErrorKind.EXPIRED:
            # Renewed from the checkpoint (the position after the last stored record). A LATEST
            # reader that has read nothing yet renews at LATEST; it cannot have paused for the
            # 5 minutes an iterator lives, since only storing a batch makes a reader wait.
            self._counters.add(expired_iterators=1)
            self._expired_in_a_row += 1
            _LOGGER.info(
                "kinesis %s/%s: iterator expired; renewing from %s",
                self.stream, self.shard_id, self._describe_position(),
            )
            if self._expired_in_a_row > 1:  # a fresh iterator expired at once: do not spin
                self._pause_after_failure(reason)
            return None
        if kind is ErrorKind.NOT_FOUND:
            raise _ShardLost(f"{operation}: {reason}")
        if kind is ErrorKind.THROTTLED:
            self._counters.add(throttled=1)
            _LOGGER.info("kinesis %s/%s: %s", self.stream, self.shard_id, reason)
            self._pause_after_failure(reason)
            return iterator
        self._counters.add(errors=1)
        if kind is ErrorKind.CREDENTIALS:
            _LOGGER.error("kinesis %s/%s: %s", self.stream, self.shard_id, reason)
            self._pause_after_failure(reason, CREDENTIALS_RETRY_S)
            return iterator
        _LOGGER.warning(
            "kinesis %s/%s: %s failed: %s", self.stream, self.shard_id, operation, reason,
            exc_info=kind is ErrorKind.UNEXPECTED,
        )
        self._pause_after_failure(reason)
        # A transient failure leaves the iterator usable; anything else gets a fresh one.
        return iterator if kind in (ErrorKind.TRANSIENT, ErrorKind.IN_USE) else None

    def _describe_position(self) -> str:
        kind, sequence = self._position
        return f"{kind} {sequence}" if sequence else kind

    # -- one batch ---------------------------------------------------------------------------

    def _deliver(self, records: Sequence[dict[str, Any]]) -> _Delivery:
        """Store every record of the batch, then checkpoint it (see the class docstring)."""
        now = self._clock()
        readings: list[Reading] = []
        owners: list[int] = []
        refused: set[int] = set()
        try:
            for index, record in enumerate(records):
                ref = f"{self.stream}/{self.shard_id}/{record['SequenceNumber']}"
                decoded = decode_record(
                    bytes(record["Data"]), source_ref=ref, received_at=now,
                    naive_zone=self._naive_zone,
                )
                if decoded.refusal is not None:
                    refused.add(index)
                    self._dead_letter(ref, decoded.refusal, decoded.excerpt)
                readings.extend(decoded.readings)
                owners.extend([index] * len(decoded.readings))
            results = self._store(readings)
            if results is None:
                return _Delivery.STOPPED
            if self._dead_letters_lost():
                return _Delivery.FAILED
            if any(result.outcome is Outcome.FAILED for result in results):
                self._counters.add(failed_batches=1)
                reason = next(
                    (r.errors.get("store") or "" for r in results if r.outcome is Outcome.FAILED),
                    "",
                )
                _LOGGER.warning(
                    "kinesis %s/%s: %d records not stored (%s); will read them again",
                    self.stream, self.shard_id, len(records), reason,
                )
                return _Delivery.FAILED
            rejected = [
                (owners[i], result) for i, result in enumerate(results)
                if result.outcome is Outcome.REJECTED
            ]
            for owner, result in rejected:
                refused.add(owner)
                ref = f"{self.stream}/{self.shard_id}/{records[owner]['SequenceNumber']}"
                reason = "refused by the station: " + summarize(result.errors)
                self._dead_letter(ref, reason, bytes(records[owner]["Data"])[:EXCERPT_CHARS]
                                  .decode("utf-8", "backslashreplace"))
            # Those dead letters are queued behind the batch: one empty submission makes sure
            # they are written before the checkpoint passes the records.
            if rejected and self._store([]) is None:
                return _Delivery.STOPPED
            if self._dead_letters_lost():
                return _Delivery.FAILED
        except PipelineStopped:
            return _Delivery.STOPPED
        except PipelineBusy as exc:  # too many dead letters waiting: read the batch again
            _LOGGER.warning("kinesis %s/%s: %s; will read the batch again",
                            self.stream, self.shard_id, exc)
            return _Delivery.FAILED
        self._dead_lettered.clear()
        self._received += len(records)
        self._rejected += len(refused)
        self._counters.add(received=len(records), rejected=len(refused))
        self._save(str(records[-1]["SequenceNumber"]))
        return _Delivery.DONE

    def _dead_letter(self, ref: str, reason: str, excerpt: str) -> None:
        if (ref, reason) in self._dead_lettered:
            return

        def on_done(committed: bool) -> None:  # on the pipeline thread
            if not committed:
                self._unstored_dead_letters.append((ref, reason))

        self._pipeline.dead_letter(INPUT_NAME, ref, reason, excerpt, on_done=on_done)
        self._dead_lettered.add((ref, reason))
        self._counters.add(dead_letters=1)

    def _dead_letters_lost(self) -> bool:
        """True when a dead letter of the batch was not committed: it must not be passed.

        Called after a submission queued behind the dead letters is resolved, so each of their
        outcomes is known by then.
        """
        if not self._unstored_dead_letters:
            return False
        lost, self._unstored_dead_letters = self._unstored_dead_letters, []
        self._dead_lettered.difference_update(lost)
        self._counters.add(dead_letters=-len(lost), failed_batches=1)
        _LOGGER.warning(
            "kinesis %s/%s: %d dead letters not stored (database unavailable); will read the "
            "batch again", self.stream, self.shard_id, len(lost),
        )
        return True

    def _store(self, readings: list[Reading]) -> list[ReadingResult] | None:
        """Submit and wait for the results; None when stopping before they came."""
        done = threading.Event()
        box: list[list[ReadingResult]] = []

        def on_done(results: list[ReadingResult]) -> None:  # on the pipeline thread
            box.append(results)
            done.set()

        waited = False
        while True:
            if self._stop.is_set():
                return None  # not submitted: the next start reads it from the checkpoint
            try:
                self._pipeline.submit(readings, on_done=on_done, timeout=WAIT_SLICE_S)
                break
            except PipelineBusy:
                if not waited:
                    waited = True
                    self._problem = "the station's queue is full; waiting for room"
        if waited:
            self._problem = ""
        # Not interrupted by stop (see the class docstring): only by abandon.
        while not done.wait(WAIT_SLICE_S):
            if self._abandon.is_set():
                return None
        return box[0]

    def _save(self, sequence: str) -> None:
        self._position = ("AFTER_SEQUENCE_NUMBER", sequence)
        try:
            self._checkpoints.save(self.stream, self.shard_id, sequence)
        except Exception as exc:  # noqa: BLE001 - readings are stored; only a restart re-reads
            self._problem = f"checkpoint not saved: {type(exc).__name__}: {str(exc)[:160]}"
            _LOGGER.warning("kinesis %s/%s: %s", self.stream, self.shard_id, self._problem)
            return
        self._checkpoint = sequence

    def _reached_end(self, had_records: bool, lag: int | None) -> bool:
        """A closed shard's end on stacks that never return a null ``NextShardIterator``."""
        ending = self._ending
        if ending is None:
            return False  # open (as far as discovery knows)
        last = self._position[1] if self._position[0] == "AFTER_SEQUENCE_NUMBER" else None
        if last is not None and _sequence_at_least(last, ending):
            return True
        return not had_records and not lag

    def _finish(self, how: str) -> None:
        _LOGGER.info(
            "kinesis %s/%s: closed shard read to its end (%s)", self.stream, self.shard_id, how
        )
        try:
            self._checkpoints.save(self.stream, self.shard_id, SHARD_END)
            self._checkpoint = SHARD_END
        except Exception as exc:  # noqa: BLE001 - a restart reads its tail again, harmlessly
            _LOGGER.warning(
                "kinesis %s/%s: end of shard not saved: %s", self.stream, self.shard_id, exc
            )
        self._state = ShardState.FINISHED
        self._problem = ""


def _sequence_at_least(sequence: str, other: str) -> bool:
    """Kinesis sequence numbers are decimal strings of up to 128 digits."""
    try:
        return int(sequence) >= int(other)
    except ValueError:
        return False
