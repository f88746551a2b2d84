"""A bed's history for the bed detail window and the CSV export (no Qt; blocking calls).

Every method runs SQL: call them off the GUI thread (the window's ``BackgroundTasks``).
"""

from __future__ import annotations

import csv
import enum
import os
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from vitalstation.domain.clock import Clock, utc_now
from vitalstation.storage.history import (
    AlarmMarker,
    HistoryQueries,
    RecordRow,
    Scope,
    TrailEvent,
    TrendBuckets,
)
from vitalstation.storage.store import Store

# About one bucket per horizontal pixel of a trend plot: finer is invisible, coarser hides.
DEFAULT_TREND_BUCKETS = 1200
DEFAULT_PAGE_ROWS = 200
# How often an export reports progress, in rows.
EXPORT_PROGRESS_EVERY_ROWS = 5000

EXPORT_COLUMNS = (
    "measured_at", "received_at", "bed", "patient_id", "patient_name", "device_id", "vital",
    "value", "unit", "original_value", "original_unit", "source", "data_source",
    "attribution", "signal_quality", "battery_level", "notes",
)


class TrendWindow(enum.Enum):
    """The trend ranges a nurse can pick; value = (label, length)."""

    HOUR_1 = ("1 h", timedelta(hours=1))
    HOURS_8 = ("8 h", timedelta(hours=8))
    HOURS_24 = ("24 h", timedelta(hours=24))
    HOURS_72 = ("72 h", timedelta(hours=72))

    @property
    def label(self) -> str:
        """What the window's button says."""
        return self.value[0]

    @property
    def length(self) -> timedelta:
        """How far back the trend reaches."""
        return self.value[1]


@dataclass(frozen=True, slots=True)
class BedTrends:
    """What the bed detail's trend tab shows for one window."""

    scope: Scope
    window: TrendWindow
    since: datetime
    until: datetime
    trends: dict[str, TrendBuckets]
    markers: list[AlarmMarker]

    @property
    def record_count(self) -> int:
        """How many stored records the trends summarise."""
        return sum(t.total for t in self.trends.values())


@dataclass(frozen=True, slots=True)
class ExportResult:
    """A finished export: where it went and how many records it holds."""

    path: Path
    rows: int


class ExportCancelled(Exception):
    """The export was stopped before it finished; no file was left behind."""


class HistoryService:
    """History of beds and patients over the store. Thread-safe (no state of its own)."""

    def __init__(self, store: Store, *, clock: Clock = utc_now) -> None:
        self._queries = HistoryQueries(store.engine)
        self._clock = clock

    def scope(self, bed_label: str) -> Scope:
        """The bed and who is in it now (``NotFound`` for an unknown bed)."""
        return self._queries.bed_scope(bed_label)

    def trends(
        self,
        bed_label: str,
        window: TrendWindow,
        *,
        until: datetime | None = None,
        buckets: int = DEFAULT_TREND_BUCKETS,
    ) -> BedTrends:
        """Every vital of the bed over ``window`` up to ``until`` (now), min/max-bucketed."""
        end = until or self._clock()
        start = end - window.length
        scope = self._queries.bed_scope(bed_label)
        return BedTrends(
            scope=scope,
            window=window,
            since=start,
            until=end,
            trends=self._queries.trends(scope, start, end, buckets=buckets),
            markers=self._queries.alarm_markers(scope, start, end),
        )

    def newer_records(self, scope: Scope, after: datetime) -> list[RecordRow]:
        """Records measured after ``after``, oldest first (the live tail of the trends)."""
        return self._queries.records_after(scope, after)

    def latest(self, scope: Scope, since: datetime) -> dict[str, RecordRow]:
        """The newest record of each vital since ``since`` (the window's big numbers)."""
        return self._queries.latest(scope, since)

    def readings_page(
        self,
        scope: Scope,
        since: datetime,
        until: datetime,
        *,
        before: tuple[datetime, int] | None = None,
        limit: int = DEFAULT_PAGE_ROWS,
    ) -> list[RecordRow]:
        """One page of the readings table, newest first (see ``HistoryQueries.records_page``)."""
        return self._queries.records_page(scope, since, until, before=before, limit=limit)

    def bed_trail(self, scope: Scope, since: datetime, until: datetime) -> list[TrailEvent]:
        """Every step of the bed's alarms in the range, newest first."""
        return self._queries.trail(scope, since, until)

    def escalation_trail(self, alarm_id: int) -> list[TrailEvent]:
        """One alarm's steps, oldest first: raised, asked, answered, escalated, acknowledged."""
        return self._queries.alarm_trail(alarm_id)

    def export_csv(
        self,
        bed_label: str,
        since: datetime,
        until: datetime,
        path: str | os.PathLike[str],
        *,
        progress: Callable[[int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> ExportResult:
        """Write the bed's records in ``[since, until)`` to ``path`` as CSV, oldest first.

        Streamed: rows are fetched and written in chunks, never all held in memory. The file
        is written beside ``path`` under a temporary name and renamed when complete, so a
        failed or cancelled export leaves no half file. Times are ISO 8601 UTC; values are in
        the stored (canonical) unit with the device's own value and unit beside them.
        """
        if until <= since:
            raise ValueError("the export range must end after it starts")
        target = Path(path)
        scope = self._queries.bed_scope(bed_label)
        partial = target.with_name(target.name + ".partial")
        rows = 0
        try:
            with partial.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(EXPORT_COLUMNS)
                records = closing(self._queries.stream_records(scope, since, until))
                with records:
                    for record in records.thing:
                        writer.writerow(_csv_row(record))
                        rows += 1
                        if rows % EXPORT_PROGRESS_EVERY_ROWS == 0:
                            if cancelled is not None and cancelled():
                                raise ExportCancelled(f"export stopped after {rows} rows")
                            if progress is not None:
                                progress(rows)
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return ExportResult(target, rows)


def _csv_row(record: RecordRow) -> list[object]:
    return [
        record.measured_at.isoformat(), record.received_at.isoformat(), record.bed or "",
        record.patient_id or "", record.patient_name or "", record.device_id or "",
        record.vital, _number(record.value), record.unit, _number(record.original_value),
        record.original_unit, record.input, record.data_source, record.attribution,
        "" if record.signal_quality is None else _number(record.signal_quality),
        "" if record.battery_level is None else _number(record.battery_level),
        record.notes or "",
    ]


def _number(value: float) -> str:
    """Shortest exact text of a float (``repr``), with no ``.0`` on whole numbers."""
    return str(int(value)) if value.is_integer() else repr(value)
