"""History of one bed or patient: downsampled trends, alarm markers, readings, the alarm trail,
and a streamed export. Read-only; run every call off the GUI thread (each opens its own
connection).

A bed's history is a :class:`Scope`: the records stored with the bed, plus the records of each
patient admitted to it that came from a device assigned to the patient directly (those carry no
bed), during that admission. A patient's history is every record of the patient.

Trends are downsampled in the database: the range is cut into buckets and each bucket gives the
minimum, the maximum, the mean time and the count of each vital, so that a one-reading spike
survives (min/max per bucket) while 72 h of one-second readings come back as a few thousand rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Float,
    Integer,
    and_,
    cast,
    false,
    func,
    literal,
    or_,
    select,
    tuple_,
)

from vitalstation.domain.vitals import VitalKind
from vitalstation.storage.registry import NotFound
from vitalstation.storage.schema import (
    admissions,
    alarm_events,
    alarms,
    beds,
    patients,
    vital_signs,
)

# The Julian day of 1970-01-01T00:00Z: SQLite stores naive UTC text, julianday() reads it.
_UNIX_EPOCH_JULIAN_DAY = 2440587.5
_SECONDS_PER_DAY = 86400.0
# Rows fetched per round trip when streaming an export.
EXPORT_CHUNK_ROWS = 2000
MAX_BUCKETS = 20000


@dataclass(frozen=True, slots=True)
class Segment:
    """Records of one bed (``bed_ref``) or one patient (``patient_ref``) in a time interval.

    ``only_without_bed`` keeps a patient's records that carry no bed (from a device assigned to
    the patient), so that a bed's scope never counts a record twice.
    """

    bed_ref: int | None = None
    patient_ref: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    only_without_bed: bool = False


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose history: a bed (with its occupant now) or a patient, as record segments."""

    segments: tuple[Segment, ...]
    bed_label: str | None = None
    bed_ref: int | None = None
    patient_id: str | None = None
    patient_name: str | None = None
    patient_ref: int | None = None
    admitted_at: datetime | None = None
    patient_refs: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class TrendBuckets:
    """One vital's downsampled trend: per bucket, mean time (epoch s), min, max, count."""

    vital: str
    unit: str
    times: list[float] = field(default_factory=list)
    minimums: list[float] = field(default_factory=list)
    maximums: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        """How many records the buckets summarise."""
        return sum(self.counts)


@dataclass(frozen=True, slots=True)
class AlarmMarker:
    """An alarm of the scope in the range: where to mark the trend, and what to say."""

    alarm_id: int
    priority: str
    state: str
    kind: str
    condition: str
    vital: str | None
    message: str
    raised_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class RecordRow:
    """One stored record for the readings table and the export."""

    id: int
    measured_at: datetime
    received_at: datetime
    vital: str
    value: float
    unit: str
    original_value: float
    original_unit: str
    device_id: str | None
    input: str
    data_source: str
    attribution: str
    patient_id: str | None
    patient_name: str | None
    bed: str | None
    signal_quality: float | None
    battery_level: float | None
    notes: str | None


@dataclass(frozen=True, slots=True)
class TrailEvent:
    """One step of an alarm's life (``alarm_events``), with the alarm it belongs to."""

    id: int
    alarm_id: int
    at: datetime
    event: str
    actor: str
    origin: str
    details: dict[str, Any]
    priority: str
    message: str


class HistoryQueries:
    """The history reads. Thread-safe: each call is its own connection."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    # -- scopes ----------------------------------------------------------------------------

    def bed_scope(self, bed_label: str) -> Scope:
        """The bed's records, and its occupant now (``NotFound`` for an unknown bed)."""
        with self._engine.connect() as connection:
            bed_ref = connection.execute(
                select(beds.c.id).where(beds.c.label == bed_label)
            ).scalar_one_or_none()
            if bed_ref is None:
                raise NotFound(f"no bed {bed_label} (see `vitalstation bed list`)")
            stays = connection.execute(
                select(
                    admissions.c.patient_ref, admissions.c.admitted_at,
                    admissions.c.discharged_at, patients.c.patient_id, patients.c.name,
                )
                .join(patients, patients.c.id == admissions.c.patient_ref)
                .where(admissions.c.bed_ref == bed_ref)
                .order_by(admissions.c.admitted_at)
            ).all()
        segments = [Segment(bed_ref=bed_ref)] + [
            Segment(
                patient_ref=stay.patient_ref, since=stay.admitted_at,
                until=stay.discharged_at, only_without_bed=True,
            )
            for stay in stays
        ]
        current = next((s for s in stays if s.discharged_at is None), None)
        return Scope(
            segments=tuple(segments),
            bed_label=bed_label,
            bed_ref=bed_ref,
            patient_id=None if current is None else current.patient_id,
            patient_name=None if current is None else current.name,
            patient_ref=None if current is None else current.patient_ref,
            admitted_at=None if current is None else current.admitted_at,
            patient_refs=tuple(sorted({s.patient_ref for s in stays})),
        )

    def patient_scope(self, patient_id: str) -> Scope:
        """Every record of the patient (``NotFound`` for an unknown patient)."""
        with self._engine.connect() as connection:
            row = connection.execute(
                select(patients.c.id, patients.c.name).where(patients.c.patient_id == patient_id)
            ).one_or_none()
        if row is None:
            raise NotFound(f"no patient {patient_id} (see `vitalstation patient list`)")
        return Scope(
            segments=(Segment(patient_ref=row.id),), patient_id=patient_id,
            patient_name=row.name, patient_ref=row.id, patient_refs=(row.id,),
        )

    # -- trends ----------------------------------------------------------------------------

    def trends(
        self, scope: Scope, since: datetime, until: datetime, *, buckets: int
    ) -> dict[str, TrendBuckets]:
        """Every vital of ``scope`` in ``[since, until)``, in at most ``buckets`` buckets each.

        Buckets are of equal width; empty ones are left out (a gap in the data stays a gap).
        """
        if until <= since:
            raise ValueError("the trend range must end after it starts")
        if not 1 <= buckets <= MAX_BUCKETS:
            raise ValueError(f"buckets must be between 1 and {MAX_BUCKETS}")
        width = (until - since).total_seconds() / buckets
        epoch = self._epoch(vital_signs.c.measured_at)
        offset = (epoch - literal(since.timestamp(), Float)) / literal(width, Float)
        # The offset is never negative: SQLite's truncating cast is its floor.
        floored = offset if self._dialect == "sqlite" else func.floor(offset)
        bucket = cast(floored, Integer).label("bucket")
        inner = (
            select(
                vital_signs.c.vital, vital_signs.c.unit, vital_signs.c.value,
                epoch.label("epoch"), bucket,
            )
            .where(self._in_scope(scope, since, until))
            .subquery()
        )
        query = (
            select(
                inner.c.vital, func.max(inner.c.unit), inner.c.bucket,
                func.avg(inner.c.epoch), func.min(inner.c.value), func.max(inner.c.value),
                func.count(),
            )
            .group_by(inner.c.vital, inner.c.bucket)
            .order_by(inner.c.vital, inner.c.bucket)
        )
        out: dict[str, TrendBuckets] = {}
        with self._engine.connect() as connection:
            for vital, unit, _bucket, at, low, high, count in connection.execute(query):
                series = out.get(vital)
                if series is None:
                    series = out[vital] = TrendBuckets(vital, unit)
                series.times.append(float(at))
                series.minimums.append(float(low))
                series.maximums.append(float(high))
                series.counts.append(int(count))
        return out

    def records_after(
        self, scope: Scope, after: datetime, *, limit: int = 5000
    ) -> list[RecordRow]:
        """Records measured after ``after``, oldest first (the live tail of a trend)."""
        query = (
            self._record_select()
            .where(self._in_scope(scope, after, None), vital_signs.c.measured_at > after)
            .order_by(vital_signs.c.measured_at, vital_signs.c.id)
            .limit(limit)
        )
        with self._engine.connect() as connection:
            return [RecordRow(*row) for row in connection.execute(query)]

    def latest(self, scope: Scope, since: datetime) -> dict[str, RecordRow]:
        """The newest record of each vital measured since ``since`` (one indexed query each)."""
        out: dict[str, RecordRow] = {}
        with self._engine.connect() as connection:
            for vital in VitalKind:
                row = connection.execute(
                    self._record_select()
                    .where(self._in_scope(scope, since, None), vital_signs.c.vital == vital.value)
                    .order_by(vital_signs.c.measured_at.desc(), vital_signs.c.id.desc())
                    .limit(1)
                ).first()
                if row is not None:
                    out[vital.value] = RecordRow(*row)
        return out

    # -- alarms ----------------------------------------------------------------------------

    def alarm_markers(self, scope: Scope, since: datetime, until: datetime) -> list[AlarmMarker]:
        """The scope's alarms that were open at some time in ``[since, until)``, oldest first."""
        query = (
            select(
                alarms.c.id, alarms.c.priority, alarms.c.state, alarms.c.kind,
                alarms.c.condition, alarms.c.vital, alarms.c.message, alarms.c.raised_at,
                alarms.c.resolved_at,
            )
            .where(
                self._alarm_scope(scope),
                alarms.c.raised_at < until,
                or_(alarms.c.resolved_at.is_(None), alarms.c.resolved_at >= since),
            )
            .order_by(alarms.c.raised_at, alarms.c.id)
        )
        with self._engine.connect() as connection:
            return [AlarmMarker(*row) for row in connection.execute(query)]

    def trail(
        self, scope: Scope, since: datetime, until: datetime, *, limit: int = 1000
    ) -> list[TrailEvent]:
        """Every step of the scope's alarms in ``[since, until)``, newest first."""
        query = (
            _trail_select()
            .where(self._alarm_scope(scope), alarm_events.c.at >= since, alarm_events.c.at < until)
            .order_by(alarm_events.c.at.desc(), alarm_events.c.id.desc())
            .limit(limit)
        )
        with self._engine.connect() as connection:
            return [_trail_event(row) for row in connection.execute(query)]

    def alarm_trail(self, alarm_id: int) -> list[TrailEvent]:
        """One alarm's steps (its escalation trail), oldest first."""
        query = (
            _trail_select()
            .where(alarm_events.c.alarm_ref == alarm_id)
            .order_by(alarm_events.c.at, alarm_events.c.id)
        )
        with self._engine.connect() as connection:
            return [_trail_event(row) for row in connection.execute(query)]

    # -- readings --------------------------------------------------------------------------

    def records_page(
        self,
        scope: Scope,
        since: datetime,
        until: datetime,
        *,
        before: tuple[datetime, int] | None = None,
        limit: int = 200,
    ) -> list[RecordRow]:
        """A page of records in ``[since, until)``, newest first.

        Keyset paging: pass the ``(measured_at, id)`` of the last row of a page as ``before``
        to get the next one (stable while new readings arrive, unlike an offset).
        """
        query = self._record_select().where(self._in_scope(scope, since, until))
        if before is not None:
            query = query.where(
                tuple_(vital_signs.c.measured_at, vital_signs.c.id) < tuple_(*before)
            )
        query = query.order_by(
            vital_signs.c.measured_at.desc(), vital_signs.c.id.desc()
        ).limit(limit)
        with self._engine.connect() as connection:
            return [RecordRow(*row) for row in connection.execute(query)]

    def count_records(self, scope: Scope, since: datetime, until: datetime) -> int:
        """How many records ``scope`` has in ``[since, until)``."""
        query = select(func.count()).select_from(vital_signs).where(
            self._in_scope(scope, since, until)
        )
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def stream_records(
        self, scope: Scope, since: datetime, until: datetime
    ) -> Iterator[RecordRow]:
        """Every record in ``[since, until)``, oldest first, fetched in chunks (for exports)."""
        query = (
            self._record_select()
            .where(self._in_scope(scope, since, until))
            .order_by(vital_signs.c.measured_at, vital_signs.c.id)
        )
        with self._engine.connect() as connection:
            # Closed with the generator (``close()``): a stopped export frees its cursor.
            with connection.execution_options(yield_per=EXPORT_CHUNK_ROWS).execute(
                query
            ) as result:
                for row in result:
                    yield RecordRow(*row)

    # -- internals -------------------------------------------------------------------------

    def _epoch(self, column: Any) -> ColumnElement[float]:
        """Seconds since 1970 of a stored time, computed by the database."""
        if self._dialect == "sqlite":
            return (func.julianday(column) - _UNIX_EPOCH_JULIAN_DAY) * _SECONDS_PER_DAY
        return cast(func.extract("epoch", column), Float)

    def _in_scope(
        self, scope: Scope, since: datetime | None, until: datetime | None
    ) -> ColumnElement[bool]:
        measured = vital_signs.c.measured_at
        # The indexes are (bed or patient, time, vital) (schema 0005): a segment's time range is
        # one index range, whichever vitals the caller then picks.
        terms = []
        for segment in scope.segments:
            start = _later(segment.since, since)
            end = _earlier(segment.until, until)
            if start is not None and end is not None and end <= start:
                continue
            parts: list[ColumnElement[bool]] = []
            if segment.bed_ref is not None:
                parts.append(vital_signs.c.bed_ref == segment.bed_ref)
            if segment.patient_ref is not None:
                parts.append(vital_signs.c.patient_ref == segment.patient_ref)
            if segment.only_without_bed:
                parts.append(vital_signs.c.bed_ref.is_(None))
            if start is not None:
                parts.append(measured >= start)
            if end is not None:
                parts.append(measured < end)
            terms.append(and_(*parts))
        return or_(*terms) if terms else false()

    @staticmethod
    def _alarm_scope(scope: Scope) -> ColumnElement[bool]:
        terms: list[ColumnElement[bool]] = []
        if scope.bed_ref is not None:
            terms.append(alarms.c.bed_ref == scope.bed_ref)
        if scope.bed_ref is None and scope.patient_refs:
            terms.append(alarms.c.patient_ref.in_(scope.patient_refs))
        return or_(*terms) if terms else false()

    @staticmethod
    def _record_select() -> Any:
        return (
            select(
                vital_signs.c.id, vital_signs.c.measured_at, vital_signs.c.received_at,
                vital_signs.c.vital, vital_signs.c.value, vital_signs.c.unit,
                vital_signs.c.original_value, vital_signs.c.original_unit,
                vital_signs.c.device_id, vital_signs.c.input, vital_signs.c.data_source,
                vital_signs.c.attribution, patients.c.patient_id, patients.c.name,
                beds.c.label, vital_signs.c.signal_quality, vital_signs.c.battery_level,
                vital_signs.c.notes,
            )
            .select_from(vital_signs)
            .outerjoin(patients, patients.c.id == vital_signs.c.patient_ref)
            .outerjoin(beds, beds.c.id == vital_signs.c.bed_ref)
        )


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a if b is None else b
    return max(a, b)


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a if b is None else b
    return min(a, b)


def _trail_select() -> Any:
    return select(
        alarm_events.c.id, alarm_events.c.alarm_ref, alarm_events.c.at, alarm_events.c.event,
        alarm_events.c.actor, alarm_events.c.origin, alarm_events.c.details,
        alarms.c.priority, alarms.c.message,
    ).join(alarms, alarms.c.id == alarm_events.c.alarm_ref)


def _trail_event(row: Any) -> TrailEvent:
    return TrailEvent(
        id=row[0], alarm_id=row[1], at=row[2], event=row[3], actor=row[4], origin=row[5],
        details=json.loads(row[6]) if row[6] else {}, priority=row[7], message=row[8],
    )
