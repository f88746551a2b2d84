"""What the pipeline hands back to inputs and on to subscribers, and what it needs from a store.

The store implements :class:`ReadingStore` (in ``storage/``, a layer above); the pipeline only
knows this protocol, so that readings flow through one route without the pipeline importing
SQLAlchemy.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

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


@dataclass(frozen=True, slots=True)
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

    @property
    def durable(self) -> bool:
        """True when the reading is safely in the database (stored now or before)."""
        return self.outcome in (Outcome.STORED, Outcome.DUPLICATE)

    @property
    def first_record_id(self) -> int | None:
        """The id of the reading's first vital (the seed's single ``vital_sign_id``)."""
        return next(iter(self.record_ids.values()), None)


@dataclass(frozen=True, slots=True)
class StoredReading:
    """A reading that has just been committed, as subscribers (alarms, window, sinks) see it."""

    reading: Reading
    result: ReadingResult


@dataclass(frozen=True, slots=True)
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
