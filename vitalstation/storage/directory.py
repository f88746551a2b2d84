"""Who a device's reading belongs to at its measurement time, from an in-memory snapshot.

The writer attributes every record without a query per reading: it keeps a snapshot of devices,
device assignments and admissions, and reloads it when ``directory_version`` changes (every
admin change bumps it in the same transaction, whichever process or station made it).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from vitalstation.pipeline.types import Attribution
from vitalstation.storage.schema import (
    admissions,
    beds,
    device_assignments,
    devices,
    directory_version,
    patients,
)


@dataclass(frozen=True, slots=True)
class Attributed:
    """The resolution of one device at one time."""

    attribution: Attribution
    device_ref: int | None = None
    device_status: str | None = None
    patient_ref: int | None = None
    bed_ref: int | None = None
    patient_id: str | None = None
    bed_label: str | None = None


@dataclass(frozen=True, slots=True)
class _Interval:
    start: datetime
    end: datetime | None
    bed_ref: int | None
    patient_ref: int | None

    def covers(self, at: datetime) -> bool:
        return self.start <= at and (self.end is None or at < self.end)


def _find(intervals: list[_Interval], starts: list[datetime], at: datetime) -> _Interval | None:
    index = bisect_right(starts, at) - 1
    # Intervals of one device or bed do not overlap, so only the latest start can cover ``at``.
    if index >= 0 and intervals[index].covers(at):
        return intervals[index]
    return None


class Directory:
    """Devices, their assignments over time, and admissions over time."""

    def __init__(self, version: int) -> None:
        self.version = version
        self._devices: dict[str, tuple[int, str]] = {}
        self._assignments: dict[int, list[_Interval]] = {}
        self._assignment_starts: dict[int, list[datetime]] = {}
        self._admissions: dict[int, list[_Interval]] = {}
        self._admission_starts: dict[int, list[datetime]] = {}
        self._patient_ids: dict[int, str] = {}
        self._bed_labels: dict[int, str] = {}
        # device id -> (from, until or None, resolution): the last resolution of each device
        # and the interval it holds for (its assignment and admission both open). Readings
        # arrive in time order, so nearly all are answered from here; one outside the interval
        # is resolved again. A change to the register makes a new Directory (a new version),
        # so the entries never outlive what they were computed from.
        self._cached: dict[str, tuple[datetime | None, datetime | None, Attributed]] = {}

    @classmethod
    def load(cls, connection: Connection) -> Directory:
        """Read the whole directory (small: a ward's devices, beds and admissions)."""
        directory = cls(current_version(connection))
        for row in connection.execute(select(devices.c.id, devices.c.device_id, devices.c.status)):
            directory._devices[row.device_id] = (row.id, row.status)
        by_device: dict[int, list[_Interval]] = defaultdict(list)
        for row in connection.execute(
            select(device_assignments).order_by(device_assignments.c.assigned_at)
        ):
            by_device[row.device_ref].append(
                _Interval(row.assigned_at, row.unassigned_at, row.bed_ref, row.patient_ref)
            )
        by_bed: dict[int, list[_Interval]] = defaultdict(list)
        for row in connection.execute(select(admissions).order_by(admissions.c.admitted_at)):
            by_bed[row.bed_ref].append(
                _Interval(row.admitted_at, row.discharged_at, row.bed_ref, row.patient_ref)
            )
        directory._assignments = dict(by_device)
        directory._assignment_starts = {k: [i.start for i in v] for k, v in by_device.items()}
        directory._admissions = dict(by_bed)
        directory._admission_starts = {k: [i.start for i in v] for k, v in by_bed.items()}
        for row in connection.execute(select(patients.c.id, patients.c.patient_id)):
            directory._patient_ids[row.id] = row.patient_id
        for row in connection.execute(select(beds.c.id, beds.c.label)):
            directory._bed_labels[row.id] = row.label
        return directory

    def resolve(self, device_id: str, at: datetime) -> Attributed:
        """Attribute a reading of ``device_id`` measured at ``at``."""
        cached = self._cached.get(device_id)
        if cached is not None:
            since, until, found = cached
            if (since is None or since <= at) and (until is None or at < until):
                return found
        return self._resolve(device_id, at)

    def _resolve(self, device_id: str, at: datetime) -> Attributed:
        device = self._devices.get(device_id)
        if device is None:
            found = Attributed(Attribution.UNKNOWN_DEVICE)
            self._cached[device_id] = (None, None, found)  # until the register changes
            return found
        device_ref, status = device
        assignment = _find(
            self._assignments.get(device_ref, []),
            self._assignment_starts.get(device_ref, []),
            at,
        )
        if assignment is None:
            return Attributed(Attribution.UNASSIGNED, device_ref, status)
        if assignment.patient_ref is not None:
            found = self._attributed(device_ref, status, assignment.patient_ref, None)
            self._cached[device_id] = (assignment.start, assignment.end, found)
            return found
        bed_ref = assignment.bed_ref
        assert bed_ref is not None
        admission = _find(
            self._admissions.get(bed_ref, []), self._admission_starts.get(bed_ref, []), at
        )
        if admission is None:
            return Attributed(
                Attribution.BED, device_ref, status, None, bed_ref, None,
                self._bed_labels.get(bed_ref),
            )
        found = self._attributed(device_ref, status, admission.patient_ref, bed_ref)
        # Both hold: from the later start to the earlier end.
        ends = [end for end in (assignment.end, admission.end) if end is not None]
        self._cached[device_id] = (
            max(assignment.start, admission.start), min(ends) if ends else None, found
        )
        return found

    def _attributed(
        self, device_ref: int, status: str, patient_ref: int | None, bed_ref: int | None
    ) -> Attributed:
        return Attributed(
            Attribution.PATIENT,
            device_ref,
            status,
            patient_ref,
            bed_ref,
            self._patient_ids.get(patient_ref) if patient_ref is not None else None,
            self._bed_labels.get(bed_ref) if bed_ref is not None else None,
        )


def current_version(connection: Connection) -> int:
    """The directory version in the database."""
    version = connection.execute(
        select(directory_version.c.version).where(directory_version.c.id == 1)
    ).scalar_one_or_none()
    return int(version or 0)


def bump_version(connection: Connection) -> None:
    """Mark the directory changed (call inside the transaction that changes it)."""
    connection.execute(
        directory_version.update()
        .where(directory_version.c.id == 1)
        .values(version=directory_version.c.version + 1)
    )
