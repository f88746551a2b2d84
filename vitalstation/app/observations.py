"""Manual observations at the station: vitals a nurse measured by hand, and the NEWS2 entries
no device sends (consciousness ACVPU, air or oxygen). Blocking; call off the GUI thread.

Manual vitals take the same route as a device's: parsed by the InHealth reading parser as
``input = manual`` (so ``data_source = manual``), then stored, deduplicated and evaluated by the
pipeline and the alarm engine like any reading. They are filed under the bed's manual-entry
device ``manual:<bed>`` (registered on first use, assigned to the bed, type ``manual-entry``), so
that the writer attributes them to the patient in the bed at their measurement time. Who
entered them is kept in the record's notes and its raw payload; the engine sets no data
cadence for manual values, so the manual device never raises "no data".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from vitalstation.alarms import AlarmTransition, Consciousness
from vitalstation.app.alarms import AlarmService
from vitalstation.domain.clock import Clock, utc_now
from vitalstation.domain.errors import UserError
from vitalstation.domain.payloads import parse_inhealth_reading
from vitalstation.domain.readings import InputKind
from vitalstation.pipeline.core import Pipeline
from vitalstation.pipeline.types import Outcome, ReadingResult
from vitalstation.storage.history import HistoryQueries
from vitalstation.storage.registry import Conflict
from vitalstation.storage.store import Store

MANUAL_DEVICE_PREFIX = "manual:"
MANUAL_DEVICE_TYPE = "manual-entry"
# A manual entry is stored before the form answers: wait this long for the commit.
MANUAL_STORE_TIMEOUT_S = 15.0
# How far back a nurse may date an observation (a round's values typed in after the round).
MAX_BACKDATE = timedelta(hours=24)

# The vitals a nurse may type, by the InHealth field name, with the units the form uses.
MANUAL_VITAL_FIELDS = (
    "heart_rate", "respiratory_rate", "oxygen_saturation", "blood_pressure_systolic",
    "blood_pressure_diastolic", "temperature", "glucose", "weight",
)


class ObservationError(UserError):
    """A manual observation that cannot be taken; the message says why, for the form."""


@dataclass(frozen=True, slots=True)
class ManualEntry:
    """A stored manual reading: its record ids and whom it was filed under."""

    device_id: str
    patient_id: str
    measured_at: datetime
    result: ReadingResult


def manual_device_id(bed_label: str) -> str:
    """The manual-entry device of a bed (``manual:4``)."""
    return f"{MANUAL_DEVICE_PREFIX}{bed_label}"


class ObservationService:
    """Enters a nurse's observations for the patient in a bed."""

    def __init__(
        self,
        store: Store,
        pipeline: Pipeline,
        alarms: AlarmService,
        *,
        station_name: str,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._pipeline = pipeline
        self._alarms = alarms
        self._history = HistoryQueries(store.engine)
        self._origin = f"station:{station_name}"
        self._clock = clock

    def enter_vitals(
        self,
        bed_label: str,
        values: Mapping[str, float],
        *,
        actor: str,
        measured_at: datetime | None = None,
        temperature_unit: str = "C",
        weight_unit: str = "kg",
        note: str = "",
    ) -> ManualEntry:
        """Store vitals measured by hand for the bed's patient (``data_source = manual``).

        ``values`` are keyed by InHealth field name (``heart_rate``, ``temperature`` …) in the
        station's units (temperature in ``temperature_unit``). Refused with the reason: no
        patient in the bed, an unknown or implausible value (the parser names the field), a
        time in the future or before the admission. Returns once the reading is stored.
        """
        actor = actor.strip()
        if not actor:
            raise ObservationError("say who measured the values")
        unknown = sorted(set(values) - set(MANUAL_VITAL_FIELDS))
        if unknown:
            raise ObservationError(f"not a manual vital: {', '.join(unknown)}")
        if not values:
            raise ObservationError("enter at least one value")
        now = self._clock()
        when = measured_at or now
        patient_id, admitted_at = self._occupant(bed_label)
        if when < admitted_at:
            raise ObservationError(
                f"{when:%Y-%m-%d %H:%M} is before patient {patient_id} came to bed {bed_label}"
            )
        if now - when > MAX_BACKDATE:
            raise ObservationError("a manual observation may be at most 24 h old")
        device_id = self._manual_device(bed_label, admitted_at, actor=actor)
        body: dict[str, object] = {
            "device_id": device_id,
            "timestamp": when.isoformat(),
            **{name: values[name] for name in MANUAL_VITAL_FIELDS if name in values},
            "notes": f"entered by {actor}" + (f": {note.strip()}" if note.strip() else ""),
        }
        if "temperature" in values:
            body["temperature_unit"] = temperature_unit
        if "weight" in values:
            body["weight_unit"] = weight_unit
        raw = json.dumps(body, sort_keys=True)
        # PayloadError (a UserError naming each bad field) goes back to the form as it is.
        reading = parse_inhealth_reading(
            body, input=InputKind.MANUAL, received_at=now, device_id=device_id, raw=raw,
            source_ref=f"{self._origin} {actor}",
        )
        (result,) = self._pipeline.process([reading], timeout=MANUAL_STORE_TIMEOUT_S)
        if result.outcome is Outcome.DUPLICATE:
            raise ObservationError("these values were already entered for that time")
        if result.outcome is not Outcome.STORED:
            reason = "; ".join(f"{k}: {v}" for k, v in result.errors.items()) or "not stored"
            raise ObservationError(f"the observation was not stored ({reason})")
        return ManualEntry(device_id, result.patient_id or patient_id, when, result)

    def enter_news2(
        self,
        bed_label: str,
        *,
        actor: str,
        consciousness: Consciousness | str | None = None,
        on_oxygen: bool | None = None,
    ) -> list[AlarmTransition]:
        """ACVPU and air/oxygen for the bed's patient, to the engine (audited there)."""
        patient_id, _admitted = self._occupant(bed_label)
        return self._alarms.enter_observation(
            patient_id, actor=actor, origin=self._origin, consciousness=consciousness,
            on_oxygen=on_oxygen, bed_label=bed_label,
        )

    def _occupant(self, bed_label: str) -> tuple[str, datetime]:
        scope = self._history.bed_scope(bed_label)
        if scope.patient_id is None or scope.admitted_at is None:
            raise ObservationError(
                f"bed {bed_label} has no patient admitted; observations belong to a patient"
            )
        return scope.patient_id, scope.admitted_at

    def _manual_device(self, bed_label: str, since: datetime, *, actor: str) -> str:
        """The bed's manual-entry device, registered and assigned to the bed on first use."""
        device_id = manual_device_id(bed_label)
        registry = self._store.registry
        info = next((d for d in registry.list_devices() if d.device_id == device_id), None)
        if info is None:
            try:
                registry.add_device(
                    device_id, name=f"Manual entry, bed {bed_label}",
                    device_type=MANUAL_DEVICE_TYPE, actor=actor, at=self._clock(),
                )
            except Conflict:
                pass  # registered meanwhile by another station
        if info is None or info.bed != bed_label:
            try:
                registry.assign_device(device_id, bed_label=bed_label, actor=actor, at=since)
            except Conflict:
                # Assigned later than ``since`` already (e.g. moved and back): assign from now.
                registry.assign_device(
                    device_id, bed_label=bed_label, actor=actor, at=self._clock()
                )
        return device_id
