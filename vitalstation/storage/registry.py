"""Patients, beds, admissions and devices: the admin's register, every change audited.

Each operation is one transaction that also bumps the directory version, so the running
station's writer attributes readings by the new state from its next batch on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, select
from sqlalchemy.exc import IntegrityError

from vitalstation.domain.errors import UserError
from vitalstation.storage.directory import bump_version
from vitalstation.storage.outbox import write_audit
from vitalstation.storage.schema import (
    DEVICE_STATUSES,
    admissions,
    beds,
    device_assignments,
    devices,
    patients,
    unknown_devices,
)

MAX_ID_CHARS = 64


class NotFound(UserError):
    """The patient, bed or device named does not exist."""


class Conflict(UserError):
    """The change contradicts what is registered (duplicate id, occupied bed, ...)."""


@dataclass(frozen=True, slots=True)
class PatientInfo:
    """A patient and where they are now."""

    patient_id: str
    name: str
    bed: str | None
    admitted_at: datetime | None


@dataclass(frozen=True, slots=True)
class BedInfo:
    """A bed and who is in it now."""

    label: str
    ward: str | None
    patient_id: str | None
    patient_name: str | None


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A registered device, where it is assigned now, and what it last reported."""

    device_id: str
    name: str
    device_type: str
    status: str
    bed: str | None
    patient_id: str | None
    last_seen_at: datetime | None
    last_input: str | None
    battery_level: float | None
    signal_quality: float | None


@dataclass(frozen=True, slots=True)
class UnknownDeviceInfo:
    """A device that sent readings without being registered."""

    device_id: str
    first_seen_at: datetime
    last_seen_at: datetime
    last_input: str
    reading_count: int


def _check_id(kind: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise UserError(f"{kind} must not be empty")
    if len(value) > MAX_ID_CHARS:
        raise UserError(f"{kind} {value[:20]!r}… is longer than {MAX_ID_CHARS} characters")
    if any(ord(ch) < 32 for ch in value):
        raise UserError(f"{kind} must not contain control characters")
    return value


class Registry:
    """Admin operations on the register. Thread-safe: every call is its own transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- patients --------------------------------------------------------------------------

    def add_patient(self, patient_id: str, name: str, *, actor: str, at: datetime) -> None:
        """Register a patient by the hospital's id (e.g. ``P123``)."""
        patient_id = _check_id("patient id", patient_id)
        if not name.strip():
            raise UserError("the patient's name must not be empty")
        with self._engine.begin() as connection:
            try:
                connection.execute(
                    patients.insert().values(
                        patient_id=patient_id, name=name.strip(), created_at=at
                    )
                )
            except IntegrityError:
                raise Conflict(f"patient {patient_id} already exists") from None
            write_audit(connection, at, actor, "patient.add", patient_id, {"name": name.strip()})

    def list_patients(self) -> list[PatientInfo]:
        """Every patient, with their current bed."""
        current = (
            select(admissions.c.patient_ref, beds.c.label, admissions.c.admitted_at)
            .join(beds, beds.c.id == admissions.c.bed_ref)
            .where(admissions.c.discharged_at.is_(None))
            .subquery()
        )
        query = (
            select(patients.c.patient_id, patients.c.name, current.c.label, current.c.admitted_at)
            .outerjoin(current, current.c.patient_ref == patients.c.id)
            .order_by(patients.c.patient_id)
        )
        with self._engine.connect() as connection:
            return [PatientInfo(*row) for row in connection.execute(query)]

    # -- beds ------------------------------------------------------------------------------

    def add_bed(self, label: str, ward: str | None, *, actor: str, at: datetime) -> None:
        """Register a bed by its label (e.g. ``4`` or ``5N-04``)."""
        label = _check_id("bed label", label)
        with self._engine.begin() as connection:
            try:
                connection.execute(beds.insert().values(label=label, ward=ward, created_at=at))
            except IntegrityError:
                raise Conflict(f"bed {label} already exists") from None
            bump_version(connection)
            write_audit(connection, at, actor, "bed.add", label, {"ward": ward or ""})

    def list_beds(self) -> list[BedInfo]:
        """Every bed, with its current patient."""
        current = (
            select(admissions.c.bed_ref, patients.c.patient_id, patients.c.name)
            .join(patients, patients.c.id == admissions.c.patient_ref)
            .where(admissions.c.discharged_at.is_(None))
            .subquery()
        )
        query = (
            select(beds.c.label, beds.c.ward, current.c.patient_id, current.c.name)
            .outerjoin(current, current.c.bed_ref == beds.c.id)
            .order_by(beds.c.ward, beds.c.label)
        )
        with self._engine.connect() as connection:
            return [BedInfo(*row) for row in connection.execute(query)]

    # -- admissions ------------------------------------------------------------------------

    def admit(self, patient_id: str, bed_label: str, *, actor: str, at: datetime) -> None:
        """Admit a patient to a free bed from ``at`` on."""
        with self._engine.begin() as connection:
            patient_ref = self._patient_ref(connection, patient_id)
            bed_ref = self._bed_ref(connection, bed_label)
            occupant = connection.execute(
                select(patients.c.patient_id)
                .join(admissions, admissions.c.patient_ref == patients.c.id)
                .where(admissions.c.bed_ref == bed_ref, admissions.c.discharged_at.is_(None))
            ).scalar_one_or_none()
            if occupant is not None:
                raise Conflict(f"bed {bed_label} is occupied by patient {occupant}")
            where = connection.execute(
                select(beds.c.label)
                .join(admissions, admissions.c.bed_ref == beds.c.id)
                .where(
                    admissions.c.patient_ref == patient_ref, admissions.c.discharged_at.is_(None)
                )
            ).scalar_one_or_none()
            if where is not None:
                raise Conflict(
                    f"patient {patient_id} is already in bed {where}; discharge them first"
                )
            connection.execute(
                admissions.insert().values(
                    patient_ref=patient_ref, bed_ref=bed_ref, admitted_at=at
                )
            )
            bump_version(connection)
            write_audit(connection, at, actor, "patient.admit", patient_id, {"bed": bed_label})

    def discharge(self, patient_id: str, *, actor: str, at: datetime) -> str:
        """End the patient's current admission at ``at``; returns the bed they left."""
        with self._engine.begin() as connection:
            patient_ref = self._patient_ref(connection, patient_id)
            row = connection.execute(
                select(admissions.c.id, beds.c.label, admissions.c.admitted_at)
                .join(beds, beds.c.id == admissions.c.bed_ref)
                .where(
                    admissions.c.patient_ref == patient_ref, admissions.c.discharged_at.is_(None)
                )
            ).one_or_none()
            if row is None:
                raise Conflict(f"patient {patient_id} is not admitted to any bed")
            if at < row.admitted_at:
                raise Conflict(f"patient {patient_id} was admitted after {at.isoformat()}")
            connection.execute(
                admissions.update().where(admissions.c.id == row.id).values(discharged_at=at)
            )
            # Devices assigned to the patient directly stop reporting for them too.
            connection.execute(
                device_assignments.update()
                .where(
                    device_assignments.c.patient_ref == patient_ref,
                    device_assignments.c.unassigned_at.is_(None),
                )
                .values(unassigned_at=at)
            )
            bump_version(connection)
            write_audit(connection, at, actor, "patient.discharge", patient_id, {"bed": row.label})
            return str(row.label)

    # -- devices ---------------------------------------------------------------------------

    def add_device(
        self,
        device_id: str,
        *,
        name: str = "",
        device_type: str = "",
        actor: str,
        at: datetime,
    ) -> None:
        """Register a device by the id it sends (``deviceid`` / ``device_id``)."""
        device_id = _check_id("device id", device_id)
        with self._engine.begin() as connection:
            try:
                connection.execute(
                    devices.insert().values(
                        device_id=device_id, name=name, device_type=device_type, created_at=at
                    )
                )
            except IntegrityError:
                raise Conflict(f"device {device_id} already exists") from None
            connection.execute(
                unknown_devices.delete().where(unknown_devices.c.device_id == device_id)
            )
            bump_version(connection)
            write_audit(connection, at, actor, "device.add", device_id,
                        {"name": name, "type": device_type})

    def set_device_status(self, device_id: str, status: str, *, actor: str, at: datetime) -> None:
        """Mark a device active, inactive, in maintenance or retired (retired: refused)."""
        if status not in DEVICE_STATUSES:
            raise UserError(f"status must be one of {', '.join(DEVICE_STATUSES)}")
        with self._engine.begin() as connection:
            device_ref = self._device_ref(connection, device_id)
            connection.execute(
                devices.update().where(devices.c.id == device_ref).values(status=status)
            )
            bump_version(connection)
            write_audit(connection, at, actor, "device.status", device_id, {"status": status})

    def assign_device(
        self,
        device_id: str,
        *,
        bed_label: str | None = None,
        patient_id: str | None = None,
        actor: str,
        at: datetime,
    ) -> None:
        """Assign a device to a bed or to a patient from ``at`` on (ending any earlier one).

        With neither, the device is unassigned: its readings are kept but belong to nobody.
        """
        if bed_label is not None and patient_id is not None:
            raise UserError("assign a device to a bed or to a patient, not both")
        with self._engine.begin() as connection:
            device_ref = self._device_ref(connection, device_id)
            bed_ref = self._bed_ref(connection, bed_label) if bed_label is not None else None
            patient_ref = (
                self._patient_ref(connection, patient_id) if patient_id is not None else None
            )
            latest = connection.execute(
                select(func.max(device_assignments.c.assigned_at)).where(
                    device_assignments.c.device_ref == device_ref
                )
            ).scalar_one_or_none()
            if latest is not None and at < latest:
                raise Conflict(
                    f"device {device_id} has an assignment starting {latest.isoformat()}, "
                    "later than this one"
                )
            connection.execute(
                device_assignments.update()
                .where(
                    and_(
                        device_assignments.c.device_ref == device_ref,
                        device_assignments.c.unassigned_at.is_(None),
                    )
                )
                .values(unassigned_at=at)
            )
            if bed_ref is not None or patient_ref is not None:
                connection.execute(
                    device_assignments.insert().values(
                        device_ref=device_ref, bed_ref=bed_ref, patient_ref=patient_ref,
                        assigned_at=at,
                    )
                )
            bump_version(connection)
            target = (
                {"bed": bed_label} if bed_label is not None
                else {"patient": patient_id} if patient_id is not None
                else {"unassigned": True}
            )
            write_audit(connection, at, actor, "device.assign", device_id, target)

    def list_devices(self) -> list[DeviceInfo]:
        """Every registered device with its current assignment.

        ``patient_id`` is whom its readings belong to now: the patient it is assigned to, or
        the patient admitted to its bed.
        """
        occupant = patients.alias("occupant")
        in_bed = admissions.alias("in_bed")
        current = (
            select(
                device_assignments.c.device_ref,
                beds.c.label.label("bed"),
                func.coalesce(patients.c.patient_id, occupant.c.patient_id).label("patient_id"),
            )
            .outerjoin(beds, beds.c.id == device_assignments.c.bed_ref)
            .outerjoin(patients, patients.c.id == device_assignments.c.patient_ref)
            .outerjoin(
                in_bed,
                and_(
                    in_bed.c.bed_ref == device_assignments.c.bed_ref,
                    in_bed.c.discharged_at.is_(None),
                ),
            )
            .outerjoin(occupant, occupant.c.id == in_bed.c.patient_ref)
            .where(device_assignments.c.unassigned_at.is_(None))
            .subquery()
        )
        query = (
            select(
                devices.c.device_id, devices.c.name, devices.c.device_type, devices.c.status,
                current.c.bed, current.c.patient_id, devices.c.last_seen_at,
                devices.c.last_input, devices.c.battery_level, devices.c.signal_quality,
            )
            .outerjoin(current, current.c.device_ref == devices.c.id)
            .order_by(devices.c.device_id)
        )
        with self._engine.connect() as connection:
            return [DeviceInfo(*row) for row in connection.execute(query)]

    def list_unknown_devices(self) -> list[UnknownDeviceInfo]:
        """Devices that sent readings without being registered, most recent first."""
        query = select(
            unknown_devices.c.device_id, unknown_devices.c.first_seen_at,
            unknown_devices.c.last_seen_at, unknown_devices.c.last_input,
            unknown_devices.c.reading_count,
        ).order_by(unknown_devices.c.last_seen_at.desc())
        with self._engine.connect() as connection:
            return [UnknownDeviceInfo(*row) for row in connection.execute(query)]

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _patient_ref(connection: Connection, patient_id: str) -> int:
        return _ref_of(connection, patients.c.id, patients.c.patient_id, patient_id, "patient")

    @staticmethod
    def _bed_ref(connection: Connection, label: str) -> int:
        return _ref_of(connection, beds.c.id, beds.c.label, label, "bed")

    @staticmethod
    def _device_ref(connection: Connection, device_id: str) -> int:
        return _ref_of(connection, devices.c.id, devices.c.device_id, device_id, "device")


def _ref_of(connection: Connection, id_column: Any, key_column: Any, key: str, kind: str) -> int:
    """The row id of the ``kind`` named ``key``; ``NotFound`` naming the list command."""
    ref = connection.execute(select(id_column).where(key_column == key)).scalar_one_or_none()
    if ref is None:
        raise NotFound(f"no {kind} {key} (see `vitalstation {kind} list`)")
    return int(ref)
