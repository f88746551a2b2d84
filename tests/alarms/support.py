"""A small ward for the alarm tests: a fake clock, an engine, and readings built in one line."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from vitalstation.alarms import (
    AlarmEngine,
    AlarmPolicy,
    AlarmProfile,
    AlarmTransition,
    AttributedReading,
    Attribution,
    Priority,
)
from vitalstation.domain.clock import FakeClock
from vitalstation.domain.readings import DataSource, Measurement
from vitalstation.domain.vitals import CANONICAL_UNIT, Unit, VitalKind, to_canonical

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
STATION = "station:Ward 5 North"


def measurement(kind: VitalKind | str, value: float, unit: Unit | None = None) -> Measurement:
    """A measurement as the domain builds it: canonical value, the device's figures kept."""
    kind = VitalKind(kind)
    unit = unit or CANONICAL_UNIT[kind]
    return Measurement(kind, to_canonical(kind, value, unit), float(value), unit)


def band(profile: AlarmProfile, kind: VitalKind, value: float) -> Priority | None:
    """The priority a profile gives ``value`` (canonical unit), None inside the limits."""
    limits = profile.limits_for(kind)
    breach = None if limits is None else limits.evaluate(value)
    return None if breach is None else breach.priority


def kinds(transitions: Iterable[AlarmTransition]) -> list[str]:
    """The event names of ``transitions``, in order."""
    return [t.kind.value for t in transitions]


class Ward:
    """An engine on a fake clock, with a bedside device in bed 12 (patient P1) by default."""

    def __init__(
        self, profile: AlarmProfile | str = "adult-ward", policy: AlarmPolicy | None = None
    ) -> None:
        self.clock = FakeClock(T0)
        self.engine = AlarmEngine(profile, clock=self.clock, policy=policy)

    def now(self) -> datetime:
        return self.clock()

    def send(
        self,
        *measurements: Measurement,
        device: str = "DEV1",
        bed: str | None = "12",
        patient: str | None = "P1",
        attribution: Attribution | None = None,
        measured_at: datetime | None = None,
        received_at: datetime | None = None,
        battery: float | None = None,
        signal: float | None = None,
        source: DataSource = DataSource.DEVICE,
        **vitals: float,
    ) -> list[AlarmTransition]:
        """Process one reading measured now (vitals in canonical units by name)."""
        now = self.clock()
        items = list(measurements) + [measurement(k, v) for k, v in vitals.items()]
        if attribution is None:
            attribution = (
                Attribution.PATIENT if patient else Attribution.BED if bed
                else Attribution.UNASSIGNED
            )
        reading = AttributedReading(
            device_id=device,
            measured_at=measured_at or now,
            received_at=received_at or now,
            measurements=tuple(items),
            attribution=attribution,
            patient_id=patient,
            bed_label=bed,
            battery_level=battery,
            signal_quality=signal,
            data_source=source,
        )
        return self.engine.process([reading])

    def advance(self, seconds: float) -> list[AlarmTransition]:
        """Move the clock and tick the engine."""
        self.clock.advance(timedelta(seconds=seconds))
        return self.engine.tick()

    def only_alarm(self):
        """The single open alarm (fails if there is not exactly one)."""
        alarms = self.engine.active_alarms()
        assert len(alarms) == 1, [a.key for a in alarms]
        return alarms[0]
