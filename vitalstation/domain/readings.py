"""What a device measured at one moment: the unit of work of the pipeline."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from vitalstation.domain.vitals import CANONICAL_UNIT, Unit, VitalKind


class InputKind(enum.StrEnum):
    """Which input a reading arrived by (stored with every record)."""

    MQTT = "mqtt"
    KINESIS = "kinesis"
    REST = "rest"
    FILE = "file"
    MANUAL = "manual"


class DataSource(enum.StrEnum):
    """Who produced the value: a device, or a clinician typing it in (seed: ``data_source``)."""

    DEVICE = "device"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class Measurement:
    """One vital's value in its canonical unit, with what the device actually sent.

    ``original_value``/``original_unit`` keep the device's own figures (e.g. 101.5 ``[degF]``)
    so that nothing is lost by normalisation.
    """

    kind: VitalKind
    value: float
    original_value: float
    original_unit: Unit

    @property
    def unit(self) -> Unit:
        """The canonical unit ``value`` is in."""
        return CANONICAL_UNIT[self.kind]


@dataclass(frozen=True, slots=True)
class Reading:
    """Vitals measured by one device at one time, as parsed from any input.

    A reading is identified by ``(device_id, measured_at, kind)`` per measurement: sending the
    same measurement twice, by any input, is the same reading and is stored once.

    ``measured_at`` and ``received_at`` are timezone-aware UTC datetimes. ``raw`` is the payload
    as received (bounded by the input), kept as the reading's raw-payload reference.
    """

    device_id: str
    measured_at: datetime
    measurements: tuple[Measurement, ...]
    input: InputKind
    received_at: datetime
    data_source: DataSource = DataSource.DEVICE
    signal_quality: float | None = None
    battery_level: float | None = None
    notes: str | None = None
    source_ref: str | None = None
    raw: str | None = field(default=None, repr=False, compare=False)

    def kinds(self) -> tuple[VitalKind, ...]:
        """The vitals this reading carries, in the order they were sent."""
        return tuple(m.kind for m in self.measurements)
