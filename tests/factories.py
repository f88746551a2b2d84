"""Builders of test data shared by the suites."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from vitalstation.domain.readings import InputKind, Measurement, Reading
from vitalstation.domain.vitals import CANONICAL_UNIT, VitalKind

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def make_reading(
    device_id: str = "BSM_G101",
    at: datetime | int = 0,
    *,
    input: InputKind = InputKind.MQTT,
    received_at: datetime | None = None,
    raw: str | None = None,
    battery: float | None = None,
    signal: float | None = None,
    **vitals: float,
) -> Reading:
    """A valid reading; ``at`` as seconds after T0 or a datetime; vitals in canonical units."""
    measured = at if isinstance(at, datetime) else T0 + timedelta(seconds=at)
    vitals = vitals or {"heart_rate": 80.0}
    measurements = tuple(
        Measurement(VitalKind(name), float(v), float(v), CANONICAL_UNIT[VitalKind(name)])
        for name, v in vitals.items()
    )
    return Reading(
        device_id=device_id,
        measured_at=measured,
        measurements=measurements,
        input=input,
        received_at=received_at or measured + timedelta(milliseconds=50),
        battery_level=battery,
        signal_quality=signal,
        raw=raw,
    )


class GatedWriter:
    """The real writer, held before each write until the test opens the gate.

    Shows what an input does while a commit is still pending (nothing acknowledged yet).
    """

    def __init__(self, store) -> None:
        self._store = store
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.committed = threading.Event()

    def write_readings(self, readings, now):
        self.entered.set()
        assert self.gate.wait(20), "the test never opened the gate"
        results = self._store.writer.write_readings(readings, now)
        self.committed.set()
        return results

    def write_dead_letter(self, *args):
        self._store.writer.write_dead_letter(*args)

    def __getattr__(self, name):
        return getattr(self._store.writer, name)
