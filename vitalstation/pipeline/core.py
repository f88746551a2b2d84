"""The pipeline: the one route from every input to the database and on to subscribers.

Inputs call :meth:`Pipeline.submit` from their own threads. One worker thread drains the
bounded queue in batches: validate → deduplicate → store (one transaction per batch, through
the single writer) → hand the newly stored readings to subscribers (alarm engine, window,
sinks) → only then resolve each submission, so an input acknowledges a reading (HTTP 2xx,
MQTT PUBACK, Kinesis checkpoint, file archived) only once it is durable.

Normalisation to canonical units happens where a payload becomes a :class:`Reading`
(``domain.payloads``), because a unit error must name the payload's own field; the pipeline
re-validates every reading whatever built it, so that no input can bypass the rules.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from operator import attrgetter
from typing import TypeVar

from vitalstation.domain.clock import Clock, utc_now
from vitalstation.domain.payloads import DEFAULT_MAX_FUTURE_SKEW, validate_readings
from vitalstation.domain.readings import Reading
from vitalstation.pipeline.types import (
    ActivityEntry,
    Outcome,
    ReadingResult,
    ReadingStore,
    StoredReading,
)

_LOGGER = logging.getLogger(__name__)

# Readings waiting at most. About a second of a busy ward's worst burst; beyond it inputs are
# told to wait (REST answers 503, MQTT withholds PUBACK) instead of the station swelling.
QUEUE_CAPACITY_READINGS = 20_000
# Readings per transaction at most. 1,000 rows per commit is where SQLite and PostgreSQL reach
# their plateau (PLATFORM.md); fewer arrive when the station is quiet, so latency stays low.
BATCH_MAX_READINGS = 1_000
# Dead letters and activity-log batches waiting at most, beside the readings. A flood of bad
# payloads while the database is slow must not grow the station without bound: past this,
# dead letters are refused (the input does not acknowledge; the sender retries later) and
# activity rows are dropped with a counter (they are a log, not patient data).
SIDE_CAPACITY_ITEMS = 10_000
# A failed commit (database locked, PostgreSQL restarting) is retried after these pauses;
# after the last one the batch is reported FAILED to its inputs, which keep it unacknowledged.
STORE_RETRY_DELAYS_S = (0.05, 0.2, 0.5, 1.0, 2.0)

Subscriber = Callable[[Sequence[StoredReading]], Mapping[int, int] | None]
"""Called on the pipeline thread with each committed batch's newly stored readings.

It may return ``{index: alarms raised}`` (index into the batch it was given): the pipeline adds
those counts to the readings' ``ReadingResult.alarms_raised`` before answering the inputs.
"""

ResultCallback = Callable[[list[ReadingResult]], None]
"""Called on the pipeline thread with a submission's results, after commit and subscribers."""

DeadLetterCallback = Callable[[bool], None]
"""Called on the pipeline thread once a dead letter is committed (True) or given up (False).

An input acknowledges a payload it dead-letters only after True: a dead letter lost while the
database is down would otherwise be a payload acknowledged and kept nowhere.
"""


_T = TypeVar("_T")

_OUTCOME = attrgetter("outcome")
_NEW_KINDS = attrgetter("new_kinds")
_RECEIVED_AT = attrgetter("received_at")


class _GaveUp(Exception):
    """The store failed after every retry; ``cause`` is the last failure."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class PipelineBusy(Exception):
    """The queue stayed full for the whole timeout: the input should retry later."""


class PipelineStopped(Exception):
    """The pipeline is stopping or stopped and takes no more readings."""


class Ticket:
    """A submission's claim on its results; :meth:`wait` blocks until they are durable.

    The event a waiter sleeps on is created only when someone waits before the results are
    in: most inputs use ``on_done`` and never wait, and an Event per reading would cost more
    than storing it.
    """

    __slots__ = ("_done", "_event", "_results")
    _lock = threading.Lock()  # shared: held for a few instructions at a time

    def __init__(self) -> None:
        self._done = False
        self._event: threading.Event | None = None
        self._results: list[ReadingResult] = []

    def _resolve(self, results: list[ReadingResult]) -> None:
        with Ticket._lock:
            self._results = results
            self._done = True
            event = self._event
        if event is not None:
            event.set()

    def done(self) -> bool:
        """True once the results are known."""
        return self._done

    def wait(self, timeout: float | None = None) -> list[ReadingResult]:
        """The results, one per submitted reading in order; ``TimeoutError`` if not in time."""
        with Ticket._lock:
            if self._done:
                return self._results
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        if not event.wait(timeout):
            raise TimeoutError("the pipeline did not store the readings in time")
        return self._results


@dataclass(slots=True)
class _Submission:
    readings: Sequence[Reading]
    ticket: Ticket
    on_done: ResultCallback | None
    enqueued_at: float


@dataclass(slots=True)
class _DeadLetter:
    input: str
    source_ref: str | None
    reason: str
    excerpt: str
    at: datetime
    on_done: DeadLetterCallback | None = None
    resolved: bool = False


@dataclass(slots=True)
class _Activity:
    entries: Sequence[ActivityEntry]
    purge: tuple[str, datetime] | None


_Item = _Submission | _DeadLetter | _Activity


@dataclass(frozen=True, slots=True)
class PipelineStats:
    """Counters since start, readable from any thread (the status bar, ``serve`` logs, benches)."""

    submitted: int = 0
    stored: int = 0  # readings with at least one new record
    records: int = 0  # new vital-sign records
    duplicates: int = 0
    rejected: int = 0
    failed: int = 0
    busy_refusals: int = 0
    dead_letters: int = 0
    activity: int = 0  # activity-log rows written
    activity_failures: int = 0  # activity-log writes that failed (rows lost, logged)
    activity_dropped: int = 0  # activity rows dropped because the queue was full
    subscriber_errors: int = 0
    batches: int = 0
    queued: int = 0
    last_batch_size: int = 0
    last_commit_ms: float = 0.0
    # Receipt → commit of the slowest reading of the last batch; what a nurse's screen lags.
    lag_ms: float = 0.0
    # Longest a submission waited in the queue in the last batch.
    queue_wait_ms: float = 0.0


@dataclass(slots=True)
class _Counters:
    values: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, amount: float = 1) -> None:
        self.values[name] = self.values.get(name, 0) + amount


class Pipeline:
    """Bounded queue, one worker, batched commits through one :class:`ReadingStore`.

    Thread-safety: :meth:`submit`, :meth:`process`, :meth:`dead_letter` and :meth:`stats` may
    be called from any thread; subscribers and ``on_done`` callbacks run on the pipeline thread
    and must not block for long (hand work to your own thread or queue).
    """

    def __init__(
        self,
        store: ReadingStore,
        *,
        clock: Clock = utc_now,
        capacity: int = QUEUE_CAPACITY_READINGS,
        batch_max: int = BATCH_MAX_READINGS,
        max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
        retry_delays_s: Sequence[float] = STORE_RETRY_DELAYS_S,
    ) -> None:
        self._store = store
        self._clock = clock
        self._capacity = capacity
        self._batch_max = batch_max
        self._max_future_skew = max_future_skew
        self._retry_delays_s = tuple(retry_delays_s)
        self._subscribers: list[Subscriber] = []
        self._cond = threading.Condition()
        self._queue: deque[_Item] = deque()
        self._queued = 0
        self._side_queued = 0
        self._accepting = False
        self._thread: threading.Thread | None = None
        self._stats_lock = threading.Lock()
        self._counters = _Counters()
        self._gauges: dict[str, float] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> None:
        """Receive every committed batch's newly stored readings (not duplicates)."""
        self._subscribers.append(subscriber)

    def start(self) -> None:
        """Start the worker thread; submissions are accepted from now on."""
        if self._thread is not None:
            raise RuntimeError("pipeline already started")
        self._accepting = True
        self._thread = threading.Thread(target=self._run, name="vitalstation-pipeline", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> bool:
        """Refuse new submissions, store everything already queued, stop the worker.

        Returns False if the queue could not be drained within ``timeout``.
        """
        with self._cond:
            self._accepting = False
            self._cond.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- input side ------------------------------------------------------------------------

    def submit(
        self,
        readings: Sequence[Reading],
        *,
        on_done: ResultCallback | None = None,
        timeout: float | None = 0.0,
    ) -> Ticket:
        """Queue ``readings`` for storage; returns at once with a :class:`Ticket`.

        When the queue is full, waits up to ``timeout`` seconds (None: for ever) for room,
        then raises :class:`PipelineBusy`. Raises :class:`PipelineStopped` after :meth:`stop`.
        """
        count = len(readings)
        ticket = Ticket()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if not self._accepting:
                    raise PipelineStopped("the station is stopping and takes no more readings")
                # A submission larger than the whole queue still goes in when the queue is empty.
                if self._queued + count <= self._capacity or self._queued == 0:
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    with self._stats_lock:
                        self._counters.add("busy_refusals")
                    raise PipelineBusy(
                        f"the station's queue is full ({self._queued} readings waiting)"
                    )
                self._cond.wait(remaining)
            was_idle = not self._queue
            self._queue.append(_Submission(readings, ticket, on_done, time.monotonic()))
            self._queued += count
            if was_idle:  # the worker only sleeps on an empty queue
                self._cond.notify_all()
        return ticket

    def process(self, readings: Sequence[Reading], timeout: float = 30.0) -> list[ReadingResult]:
        """Submit and wait until stored (for inputs that answer synchronously: REST, files).

        Raises :class:`PipelineBusy` if the queue stays full, ``TimeoutError`` if the store
        does not commit within ``timeout``.
        """
        return self.submit(readings, timeout=timeout).wait(timeout)

    def dead_letter(
        self,
        input: str,
        source_ref: str | None,
        reason: str,
        excerpt: str = "",
        *,
        on_done: DeadLetterCallback | None = None,
    ) -> None:
        """Keep a payload that could not become readings (stored by the writer, in order).

        The write is retried like a batch of readings; ``on_done(committed)`` then tells the
        input whether it may acknowledge the payload. A submission made after this call is
        resolved only after the dead letter's ``on_done`` (the writer keeps the order).
        Raises :class:`PipelineBusy` when ``SIDE_CAPACITY_ITEMS`` are already waiting: the
        input then withholds its acknowledgement, as for readings.
        """
        with self._cond:
            if not self._accepting:
                raise PipelineStopped("the station is stopping and takes no more payloads")
            if self._side_queued >= SIDE_CAPACITY_ITEMS:
                with self._stats_lock:
                    self._counters.add("busy_refusals")
                raise PipelineBusy(
                    f"the station's queue is full ({self._side_queued} dead letters and "
                    "activity batches waiting)"
                )
            self._queue.append(
                _DeadLetter(input, source_ref, reason, excerpt, self._clock(), on_done)
            )
            self._side_queued += 1
            self._cond.notify_all()

    def log_activity(
        self,
        entries: Sequence[ActivityEntry],
        *,
        purge: tuple[str, datetime] | None = None,
    ) -> None:
        """Have the writer append activity-log rows (and purge old ones), after the readings.

        Never waits and never counts against the reading queue: an input hands its buffered
        rows over every fraction of a second, and they are written after the batch's readings
        are committed and acknowledged, so logging never delays an acknowledgement. Past
        ``SIDE_CAPACITY_ITEMS`` waiting, the rows are dropped and counted (``activity_dropped``).
        """
        with self._cond:
            if not self._accepting:
                raise PipelineStopped("the station is stopping and takes no more activity")
            if self._side_queued >= SIDE_CAPACITY_ITEMS:
                with self._stats_lock:
                    self._counters.add("activity_dropped", len(entries))
                return
            self._queue.append(_Activity(entries, purge))
            self._side_queued += 1
            self._cond.notify_all()

    def stats(self) -> PipelineStats:
        """A consistent snapshot of the counters."""
        with self._stats_lock:
            values = dict(self._counters.values)
            values.update(self._gauges)
        with self._cond:
            values["queued"] = self._queued
        return PipelineStats(
            **{
                f.name: (float if f.type == "float" else int)(values.get(f.name, 0))
                for f in fields(PipelineStats)
            }
        )

    # -- worker ----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and self._accepting:
                    self._cond.wait()
                if not self._queue:
                    return  # stopped and drained
                items: list[_Item] = []
                taken = 0
                while self._queue:
                    head = self._queue[0]
                    size = len(head.readings) if isinstance(head, _Submission) else 0
                    if isinstance(head, _Activity) and any(
                        isinstance(item, _Activity) for item in items
                    ):
                        break  # one activity write per batch keeps batches short
                    if items and taken + size > self._batch_max:
                        break
                    item = self._queue.popleft()
                    if not isinstance(item, _Submission):
                        self._side_queued -= 1
                    items.append(item)
                    taken += size
                self._queued -= taken
                self._cond.notify_all()
            try:
                self._process_batch(items)
            except Exception:  # noqa: BLE001 - the worker must outlive any one batch
                _LOGGER.exception("pipeline batch failed unexpectedly")
                self._fail_unresolved(items, "internal error in the pipeline (see the log)")

    def _process_batch(self, items: list[_Item]) -> None:
        if all(isinstance(item, _Activity) for item in items):
            for item in items:  # only activity: not a batch of readings, so no batch gauges
                if isinstance(item, _Activity):
                    self._write_activity(item)
            return
        now = self._clock()
        started = time.monotonic()
        submissions = [item for item in items if isinstance(item, _Submission)]
        for item in items:
            if isinstance(item, _DeadLetter):
                self._write_dead_letter(item)

        # Readings are handled as whole lists where they can be (a REST batch is hundreds of
        # readings of one submission): the per-reading Python work is what limits the
        # station's throughput, so no position is kept per reading unless a reading needs one.
        problems: list[dict[int, dict[str, str]]] = []  # per submission: rejected by index
        to_write: list[Reading] = []
        for submission in submissions:
            readings = submission.readings
            found = validate_readings(readings, now=now, max_future_skew=self._max_future_skew)
            problems.append(found)
            if found:
                to_write.extend(r for i, r in enumerate(readings) if i not in found)
            else:
                to_write.extend(readings)

        written, retried = self._write_with_retry(to_write, now) if to_write else ([], False)
        committed = time.monotonic()

        stored_at = self._stored_at(written, retried)  # None: every written reading
        if stored_at is None:
            stored = list(map(StoredReading, to_write, written))
        else:
            stored = []
            for i in stored_at:
                result = written[i]
                if result.outcome is not Outcome.STORED:
                    # A failed attempt may have committed after all (the connection dropped
                    # while the COMMIT was being acknowledged): the retry then finds the rows.
                    # Those readings were never shown to the subscribers, so show them now: an
                    # alarm evaluated twice is an update; one never evaluated is a silent alarm.
                    result = dataclasses.replace(result, new_kinds=to_write[i].kinds())
                stored.append(StoredReading(to_write[i], result))
        if stored:
            raised = self._notify_subscribers(stored)
            for index, count in raised.items():
                if count and 0 <= index < len(stored):
                    at = index if stored_at is None else stored_at[index]
                    written[at] = written[at].with_alarms_raised(count)

        self._record_batch(
            submissions, problems, to_write, written, stored_at, started, committed, now
        )
        position = 0
        for submission, found in zip(submissions, problems, strict=True):
            count = len(submission.readings)
            if not found:
                final = written[position:position + count]
                position += count
            else:
                final = []
                for index in range(count):
                    errors = found.get(index)
                    if errors is not None:
                        final.append(ReadingResult(Outcome.REJECTED, errors=errors))
                    else:
                        final.append(written[position])
                        position += 1
            self._resolve(submission, final)
        for item in items:
            if isinstance(item, _Activity):
                self._write_activity(item)

    @staticmethod
    def _stored_at(written: list[ReadingResult], retried: bool) -> list[int] | None:
        """Which written readings go to the subscribers: None for all of them (the usual
        batch: every reading new), else their indexes - the new ones and, after a retry,
        the duplicates the failed attempt may have committed."""
        outcomes = list(map(_OUTCOME, written))
        stored_outcome = Outcome.STORED
        if not retried:
            if outcomes.count(stored_outcome) == len(outcomes):
                return None
            return [i for i, outcome in enumerate(outcomes) if outcome is stored_outcome]
        shown = (stored_outcome, Outcome.DUPLICATE)
        return [i for i, outcome in enumerate(outcomes) if outcome in shown]

    def _write_with_retry(
        self, readings: list[Reading], now: datetime
    ) -> tuple[list[ReadingResult], bool]:
        """The store's results, and whether an attempt failed before them."""
        try:
            return self._retrying(
                lambda: self._store.write_readings(readings, now), f"{len(readings)} readings"
            )
        except _GaveUp as gave_up:
            reason = f"the database did not commit: {gave_up.cause}"
            failed = ReadingResult(Outcome.FAILED, errors={"store": reason})
            return [failed] * len(readings), True

    def _retrying(self, write: Callable[[], _T], what: str) -> tuple[_T, bool]:
        """``write()`` retried after ``retry_delays_s``; raises ``_GaveUp`` after the last."""
        attempt = 0
        while True:
            try:
                return write(), attempt > 0
            except Exception as exc:  # noqa: BLE001 - any store failure is retried, then reported
                if attempt >= len(self._retry_delays_s):
                    _LOGGER.error("store failed %d times, %s not stored: %s",
                                  attempt + 1, what, exc)
                    raise _GaveUp(exc) from exc
                delay = self._retry_delays_s[attempt]
                _LOGGER.warning("store failed (%s); retrying in %.2f s", exc, delay)
                time.sleep(delay)
                attempt += 1

    def _write_dead_letter(self, item: _DeadLetter) -> None:
        try:
            self._retrying(
                lambda: self._store.write_dead_letter(
                    item.input, item.source_ref, item.reason, item.excerpt, item.at
                ),
                f"a dead letter from {item.input} ({item.reason[:200]})",
            )
        except _GaveUp:
            self._resolve_dead_letter(item, False)  # the input keeps the payload unacknowledged
            return
        with self._stats_lock:
            self._counters.add("dead_letters")
        self._resolve_dead_letter(item, True)

    @staticmethod
    def _resolve_dead_letter(item: _DeadLetter, committed: bool) -> None:
        item.resolved = True
        if item.on_done is not None:
            try:
                item.on_done(committed)
            except Exception:  # noqa: BLE001 - the input's callback must not stop the pipeline
                _LOGGER.exception("dead-letter callback failed")

    def _write_activity(self, item: _Activity) -> None:
        try:
            self._store.write_activity(item.entries, item.purge)
        except Exception:  # noqa: BLE001 - logged; the requests were answered already
            _LOGGER.exception("could not store %d activity-log rows", len(item.entries))
            with self._stats_lock:
                self._counters.add("activity_failures")
            return
        with self._stats_lock:
            self._counters.add("activity", len(item.entries))

    def _notify_subscribers(self, stored: list[StoredReading]) -> dict[int, int]:
        raised: dict[int, int] = {}
        for subscriber in self._subscribers:
            try:
                counts = subscriber(stored)
                for index, count in (counts or {}).items():
                    raised[index] = raised.get(index, 0) + int(count)
            except Exception:  # noqa: BLE001 - one broken subscriber must not stop the others
                _LOGGER.exception("pipeline subscriber %r failed", subscriber)
                with self._stats_lock:
                    self._counters.add("subscriber_errors")
        return raised

    def _resolve(self, submission: _Submission, results: list[ReadingResult]) -> None:
        if submission.on_done is not None:
            try:
                submission.on_done(results)
            except Exception:  # noqa: BLE001 - the input's callback must not stop the pipeline
                _LOGGER.exception("input callback failed")
        submission.ticket._resolve(results)

    def _fail_unresolved(self, items: list[_Item], reason: str) -> None:
        for item in items:
            if isinstance(item, _DeadLetter) and not item.resolved:
                self._resolve_dead_letter(item, False)
            if isinstance(item, _Submission) and not item.ticket.done():
                failed = [ReadingResult(Outcome.FAILED, errors={"pipeline": reason})]
                self._resolve(item, failed * len(item.readings))

    def _record_batch(
        self,
        submissions: list[_Submission],
        problems: list[dict[int, dict[str, str]]],
        to_write: list[Reading],
        written: list[ReadingResult],
        stored_at: list[int] | None,
        started: float,
        committed: float,
        now: datetime,
    ) -> None:
        counts = Counter(map(_OUTCOME, written))  # the store's outcomes; C loops, not Python's
        records = sum(map(len, map(_NEW_KINDS, written)))
        rejected = sum(map(len, problems))  # by the validation
        # The earliest receipt of a stored (new) reading, one subtraction per batch.
        if stored_at is None:
            receipts = list(map(_RECEIVED_AT, to_write))
        else:
            receipts = [to_write[i].received_at for i in stored_at
                        if written[i].outcome is Outcome.STORED]
        oldest = min(receipts) if receipts else None
        lag_ms = 0.0
        if oldest is not None:
            lag = (now - oldest).total_seconds() * 1000
            lag_ms = max(0.0, lag + (committed - started) * 1000)
        wait_ms = max(((started - s.enqueued_at) * 1000 for s in submissions), default=0.0)
        submitted = sum(len(s.readings) for s in submissions)
        with self._stats_lock:
            self._counters.add("submitted", submitted)
            self._counters.add("batches")
            self._counters.add("stored", counts[Outcome.STORED])
            self._counters.add("duplicates", counts[Outcome.DUPLICATE])
            self._counters.add("rejected", counts[Outcome.REJECTED] + rejected)
            self._counters.add("failed", counts[Outcome.FAILED])
            self._counters.add("records", records)
            self._gauges["last_batch_size"] = submitted
            self._gauges["last_commit_ms"] = (committed - started) * 1000
            self._gauges["lag_ms"] = lag_ms
            self._gauges["queue_wait_ms"] = wait_ms
