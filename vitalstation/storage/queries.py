"""Read-only queries: stored readings for the CLI, exports and (later) the trend views.

Run them off the GUI thread; each call opens its own connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from vitalstation.storage.schema import beds, patients, vital_signs


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One stored vital-sign record, as the admin commands print it."""

    id: int
    device_id: str | None
    vital: str
    value: float
    unit: str
    original_value: float
    original_unit: str
    measured_at: datetime
    received_at: datetime
    input: str
    data_source: str
    attribution: str
    patient_id: str | None
    bed: str | None
    signal_quality: float | None
    battery_level: float | None


class Queries:
    """History queries over the store."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def readings(
        self,
        *,
        device_id: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> Iterator[StoredRecord]:
        """Stored records, oldest measurement first, streamed (not loaded at once)."""
        query = (
            select(
                vital_signs.c.id, vital_signs.c.device_id, vital_signs.c.vital,
                vital_signs.c.value, vital_signs.c.unit, vital_signs.c.original_value,
                vital_signs.c.original_unit, vital_signs.c.measured_at,
                vital_signs.c.received_at, vital_signs.c.input, vital_signs.c.data_source,
                vital_signs.c.attribution, patients.c.patient_id, beds.c.label,
                vital_signs.c.signal_quality, vital_signs.c.battery_level,
            )
            .outerjoin(patients, patients.c.id == vital_signs.c.patient_ref)
            .outerjoin(beds, beds.c.id == vital_signs.c.bed_ref)
            .order_by(vital_signs.c.measured_at, vital_signs.c.id)
        )
        if device_id is not None:
            query = query.where(vital_signs.c.device_id == device_id)
        if since is not None:
            query = query.where(vital_signs.c.measured_at >= since)
        if limit is not None:
            query = query.limit(limit)
        with self._engine.connect() as connection:
            result = connection.execution_options(yield_per=1000).execute(query)
            for row in result:
                yield StoredRecord(*row)
