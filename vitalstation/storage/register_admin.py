"""What the Settings dialog needs of the register beyond :class:`~.registry.Registry`: device
details (manufacturer, model, firmware), a transfer that keeps the patient's limits, an
unregistered device's last payload, and audit rows for settings changes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from vitalstation.storage.directory import bump_version
from vitalstation.storage.outbox import write_audit
from vitalstation.storage.registry import Conflict, NotFound, _check_id
from vitalstation.storage.schema import (
    admissions,
    audit_log,
    beds,
    devices,
    limit_overrides,
    patients,
    raw_payloads,
    vital_signs,
)

__all__ = ["DeviceDetails", "RegisterAdmin"]

@dataclass(frozen=True, slots=True)
class DeviceDetails:
    """What a registered device is (shown and edited in Settings > Devices)."""

    device_id: str
    manufacturer: str
    model: str
    firmware: str


def _detail(kind: str, value: str) -> str:
    """An optional detail: empty, or checked as the register checks ids."""
    value = value.strip()
    return _check_id(f"the {kind}", value) if value else value


class RegisterAdmin:
    """Thread-safe: every call is its own transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def device_details(self) -> dict[str, DeviceDetails]:
        """Manufacturer, model and firmware of every registered device, by device id."""
        query = select(devices.c.device_id, devices.c.manufacturer, devices.c.model,
                       devices.c.firmware)
        with self._engine.connect() as connection:
            return {row.device_id: DeviceDetails(*row) for row in connection.execute(query)}

    def set_device_details(
        self, device_id: str, *, manufacturer: str, model: str, firmware: str,
        actor: str, at: datetime,
    ) -> None:
        """Record what the device is; audited."""
        values = {
            "manufacturer": _detail("manufacturer", manufacturer),
            "model": _detail("model", model),
            "firmware": _detail("firmware", firmware),
        }
        with self._engine.begin() as connection:
            updated = connection.execute(
                devices.update().where(devices.c.device_id == device_id).values(**values)
            ).rowcount
            if not updated:
                raise NotFound(f"no device {device_id} (see `vitalstation device list`)")
            write_audit(connection, at, actor, "device.details", device_id, values)

    def transfer(self, patient_id: str, bed_label: str, *, actor: str, at: datetime) -> str:
        """Move an admitted patient to another free bed from ``at`` on; returns the bed left.

        The stay goes on: the old admission ends and a new one starts at the same instant (so
        readings before ``at`` stay with the old bed), and the patient's limit overrides move to
        the new admission instead of reverting as on a discharge.
        """
        with self._engine.begin() as connection:
            patient_ref = connection.execute(
                select(patients.c.id).where(patients.c.patient_id == patient_id)
            ).scalar_one_or_none()
            if patient_ref is None:
                raise NotFound(f"no patient {patient_id} (see `vitalstation patient list`)")
            bed_ref = connection.execute(
                select(beds.c.id).where(beds.c.label == bed_label)
            ).scalar_one_or_none()
            if bed_ref is None:
                raise NotFound(f"no bed {bed_label} (see `vitalstation bed list`)")
            current = connection.execute(
                select(admissions.c.id, admissions.c.admitted_at, beds.c.label)
                .join(beds, beds.c.id == admissions.c.bed_ref)
                .where(admissions.c.patient_ref == patient_ref,
                       admissions.c.discharged_at.is_(None))
            ).one_or_none()
            if current is None:
                raise Conflict(f"patient {patient_id} is not admitted: admit them instead")
            if current.label == bed_label:
                raise Conflict(f"patient {patient_id} is already in bed {bed_label}")
            if at < current.admitted_at:
                raise Conflict(f"patient {patient_id} was admitted after {at.isoformat()}")
            occupant = connection.execute(
                select(patients.c.patient_id)
                .join(admissions, admissions.c.patient_ref == patients.c.id)
                .where(admissions.c.bed_ref == bed_ref, admissions.c.discharged_at.is_(None))
            ).scalar_one_or_none()
            if occupant is not None:
                raise Conflict(f"bed {bed_label} is occupied by patient {occupant}")
            connection.execute(
                admissions.update().where(admissions.c.id == current.id).values(discharged_at=at)
            )
            new_ref = connection.execute(
                admissions.insert().values(patient_ref=patient_ref, bed_ref=bed_ref,
                                           admitted_at=at)
            ).inserted_primary_key[0]
            connection.execute(
                limit_overrides.update()
                .where(limit_overrides.c.admission_ref == current.id,
                       limit_overrides.c.removed_at.is_(None))
                .values(admission_ref=new_ref)
            )
            bump_version(connection)
            write_audit(connection, at, actor, "patient.transfer", patient_id,
                        {"from": current.label, "to": bed_label})
            return str(current.label)

    def last_payload(self, device_id: str) -> str | None:
        """The raw payload of the latest reading stored for ``device_id`` (registered or not)."""
        query = (
            select(raw_payloads.c.content)
            .join(vital_signs, vital_signs.c.payload_ref == raw_payloads.c.id)
            .where(vital_signs.c.device_id == device_id)
            .order_by(vital_signs.c.received_at.desc(), vital_signs.c.id.desc())
            .limit(1)
        )
        with self._engine.connect() as connection:
            content = connection.execute(query).scalar_one_or_none()
        return None if content is None else str(content)

    def audit(self, at: datetime, actor: str, action: str, subject: str,
              details: Mapping[str, Any]) -> None:
        """One audit row (settings saved, admin unlocked, secret changed: names, not values)."""
        with self._engine.begin() as connection:
            write_audit(connection, at, actor, action, subject, details)

    def audit_many(self, at: datetime,
                   rows: Sequence[tuple[str, str, str, Mapping[str, Any]]]) -> None:
        """Several audit rows ``(actor, action, subject, details)`` in one transaction."""
        with self._engine.begin() as connection:
            for actor, action, subject, details in rows:
                write_audit(connection, at, actor, action, subject, details)

    def last_audit_details(self, action: str, subject: str) -> dict[str, Any] | None:
        """The details of the latest audit row of ``action`` on ``subject`` (None: none, or
        not a JSON object)."""
        query = (
            select(audit_log.c.details)
            .where(audit_log.c.action == action, audit_log.c.subject == subject)
            .order_by(audit_log.c.id.desc())
            .limit(1)
        )
        with self._engine.connect() as connection:
            details = connection.execute(query).scalar_one_or_none()
        try:
            loaded = json.loads(details) if details else None
        except ValueError:
            return None
        return loaded if isinstance(loaded, dict) else None
