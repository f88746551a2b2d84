"""What the pipeline hands back to inputs and on to subscribers, and what it needs from a store.

The store implements :class:`ReadingStore` (in ``storage/``, a layer above); the pipeline only
knows this protocol, so that readings flow through one route without the pipeline importing
SQLAlchemy.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from vitalstation.domain.readings import Reading
from vitalstation.domain.vitals import VitalKind


class Outcome(enum.StrEnum):
    """What became of one submitted reading."""

    STORED = "stored"  # at least one of its vitals is a new record, committed
    DUPLICATE = "duplicate"  # every vital was already stored: nothing new, same record ids
    REJECTED = "rejected"  # invalid; nothing stored; ``errors`` says why
    FAILED = "failed"  # the store could not commit; nothing acknowledged, send again later


class Attribution(enum.StrEnum):
    """Whom a record belongs to at its measurement time."""

    PATIENT = "patient"  # the device's patient, directly or through the bed
    BED = "bed"  # the device's bed, with nobody admitted to it
    UNASSIGNED = "unassigned"  # a registered device assigned to no bed and no patient
    UNKNOWN_DEVICE = "unknown_device"  # a device nobody registered: kept for the admin


# The pipeline builds a ReadingResult and a StoredReading for every reading, a REST request an
# ActivityEntry: their ``__init__`` is written here (``init=False``) instead of generated. A
# frozen dataclass's generated one sets each field with ``object.__setattr__(self, name,
# value)``, ~1,600 instructions a field (ReadingResult: ~17,700 a result, more than the rest of
# storing a one-vital reading's row); a slot's own descriptor (``Class.field.__set__``) sets it
# in a third of that and is as frozen: assigning an attribute still raises
# ``FrozenInstanceError``, and ``fields``, ``replace``, ``==`` and ``repr`` are the dataclass's.


def _setter(cls: type, name: str) -> Callable[[Any, Any], None]:
    """The ``__set__`` of ``cls``'s slot ``name``: sets it without the frozen ``__setattr__``."""
    return cls.__dict__[name].__set__  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True, init=False)
class ReadingResult:
    """The durable fate of one reading, given to the input that submitted it.

    ``record_ids`` maps each vital to its record id, for new and duplicate vitals alike (a
    re-sent reading answers with the ids it was first stored under). ``alarms_raised`` counts
    the alarms the reading raised (the REST answer's ``alerts_triggered``).
    """

    outcome: Outcome
    record_ids: dict[VitalKind, int] = field(default_factory=dict)
    new_kinds: tuple[VitalKind, ...] = ()
    attribution: Attribution | None = None
    patient_id: str | None = None
    bed_label: str | None = None
    errors: dict[str, str] = field(default_factory=dict)
    # Alarms this reading raised (new alarms, not updates), as the subscribers report them.
    alarms_raised: int = 0

    def __init__(
        self,
        outcome: Outcome,
        record_ids: dict[VitalKind, int] | None = None,
        new_kinds: tuple[VitalKind, ...] = (),
        attribution: Attribution | None = None,
        patient_id: str | None = None,
        bed_label: str | None = None,
        errors: dict[str, str] | None = None,
        alarms_raised: int = 0,
    ) -> None:
        _set_outcome(self, outcome)
        _set_record_ids(self, {} if record_ids is None else record_ids)
        _set_new_kinds(self, new_kinds)
        _set_attribution(self, attribution)
        _set_patient_id(self, patient_id)
        _set_bed_label(self, bed_label)
        _set_errors(self, {} if errors is None else errors)
        _set_alarms_raised(self, alarms_raised)

    @property
    def durable(self) -> bool:
        """True when the reading is safely in the database (stored now or before)."""
        return self.outcome in (Outcome.STORED, Outcome.DUPLICATE)

    @property
    def first_record_id(self) -> int | None:
        """The id of the reading's first vital (the seed's single ``vital_sign_id``)."""
        return next(iter(self.record_ids.values()), None)

    def with_alarms_raised(self, more: int) -> ReadingResult:
        """This result counting ``more`` alarms raised (``dataclasses.replace`` without its
        cost, ~1.9 µs against ~0.6: the pipeline makes one for each reading that raised one)."""
        return ReadingResult(
            self.outcome, self.record_ids, self.new_kinds, self.attribution, self.patient_id,
            self.bed_label, self.errors, self.alarms_raised + more,
        )


_set_outcome = _setter(ReadingResult, "outcome")
_set_record_ids = _setter(ReadingResult, "record_ids")
_set_new_kinds = _setter(ReadingResult, "new_kinds")
_set_attribution = _setter(ReadingResult, "attribution")
_set_patient_id = _setter(ReadingResult, "patient_id")
_set_bed_label = _setter(ReadingResult, "bed_label")
_set_errors = _setter(ReadingResult, "errors")
_set_alarms_raised = _setter(ReadingResult, "alarms_raised")


@dataclass(frozen=True, slots=True, init=False)
class StoredReading:
    """A reading that has just been committed, as subscribers (alarms, window, sinks) see it."""

    reading: Reading
    result: ReadingResult

    def __init__(self, reading: Reading, result: ReadingResult) -> None:
        _set_reading(self, reading)
        _set_result(self, result)


_set_reading = _setter(StoredReading, "reading")
_set_result = _setter(StoredReading, "result")


@dataclass(frozen=True, slots=True, init=False)
class ActivityEntry:
    """One request (or delivery) an input handled, for the activity log (``input_activity``).

    ``key_used`` marks a request made with a verified API key: the writer adds it to that key's
    usage counters (``use_count``, ``last_used_at``) in the same transaction.
    """

    at: datetime
    input: str
    action: str
    status: int
    device_id: str | None = None
    key_prefix: str | None = None
    key_used: bool = False
    peer: str | None = None
    endpoint: str | None = None
    method: str | None = None
    duration_ms: float | None = None
    error: str | None = None

    def __init__(
        self,
        at: datetime,
        input: str,
        action: str,
        status: int,
        device_id: str | None = None,
        key_prefix: str | None = None,
        key_used: bool = False,
        peer: str | None = None,
        endpoint: str | None = None,
        method: str | None = None,
        duration_ms: float | None = None,
        error: str | None = None,
    ) -> None:
        _set_at(self, at)
        _set_input(self, input)
        _set_action(self, action)
        _set_status(self, status)
        _set_device_id(self, device_id)
        _set_key_prefix(self, key_prefix)
        _set_key_used(self, key_used)
        _set_peer(self, peer)
        _set_endpoint(self, endpoint)
        _set_method(self, method)
        _set_duration_ms(self, duration_ms)
        _set_error(self, error)


_set_at = _setter(ActivityEntry, "at")
_set_input = _setter(ActivityEntry, "input")
_set_action = _setter(ActivityEntry, "action")
_set_status = _setter(ActivityEntry, "status")
_set_device_id = _setter(ActivityEntry, "device_id")
_set_key_prefix = _setter(ActivityEntry, "key_prefix")
_set_key_used = _setter(ActivityEntry, "key_used")
_set_peer = _setter(ActivityEntry, "peer")
_set_endpoint = _setter(ActivityEntry, "endpoint")
_set_method = _setter(ActivityEntry, "method")
_set_duration_ms = _setter(ActivityEntry, "duration_ms")
_set_error = _setter(ActivityEntry, "error")


class ReadingStore(Protocol):
    """The single writer the pipeline commits through (implemented in ``storage``)."""

    def write_readings(self, readings: Sequence[Reading], now: datetime) -> list[ReadingResult]:
        """Store ``readings`` in one transaction; return one result per reading, in order.

        Must only return after the commit. A reading whose device is refused (e.g. retired)
        comes back ``REJECTED`` with the reason; a reading already stored comes back
        ``DUPLICATE``. Raises on a database failure (nothing of the batch is committed).
        """
        ...

    def write_dead_letter(
        self, input: str, source_ref: str | None, reason: str, excerpt: str, at: datetime
    ) -> None:
        """Keep a payload that could not become readings, with the reason."""
        ...

    def write_activity(
        self, entries: Sequence[ActivityEntry], purge: tuple[str, datetime] | None
    ) -> None:
        """Append activity-log rows and bump the usage counters of the keys they used.

        ``purge`` = (input, before): also delete a bounded chunk of that input's rows older
        than ``before`` (retention), so that a large backlog is purged over several calls.
        """
        ...
