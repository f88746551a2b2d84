"""Technical alarms: the monitoring itself is failing, whatever the patient's values.

Conditions (the ``alarms.condition`` column) and their priorities:

| condition | when | priority |
|---|---|---|
| ``no_data`` | a device has sent nothing for longer than its vitals' cadence allows | MEDIUM |
| ``no_data.<vital>`` | a device still sends, but not that vital (probe off) | MEDIUM |
| ``low_battery`` | battery < 20 % (MEDIUM below 10 %); clears at ≥ 25 % | LOW / MEDIUM |
| ``poor_signal`` | signal quality < 50; clears at ≥ 55 | LOW |
| ``unknown_device`` | readings from a device nobody registered | LOW |
| ``clock_ahead`` | measured_at > received_at + 60 s (the device's clock runs ahead) | LOW |
| ``input_down`` | an input (MQTT, Kinesis, REST, file drop) reported down for > 30 s | MEDIUM |

A monitored patient with no monitoring is a "prompt response, reversible injury" case in IEC
60601-1-8 Table 1, hence MEDIUM for no data and a down input; the rest only need a nurse's or
an admin's look. Technical alarms never latch (as Philips INOPs): they end with their cause.
No-data is timed on the station's clock (when readings arrive), not on device timestamps, so a
device whose clock lags does not look silent; only devices in a bed or with a patient are
watched, and only for vitals they send as a device (a nurse's manual entry sets no cadence).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

from vitalstation.alarms.model import Priority
from vitalstation.domain.vitals import VitalKind


class TechnicalCondition(enum.StrEnum):
    """The technical conditions (value = the condition name, before any ``.<vital>``)."""

    NO_DATA = "no_data"
    LOW_BATTERY = "low_battery"
    POOR_SIGNAL = "poor_signal"
    UNKNOWN_DEVICE = "unknown_device"
    CLOCK_AHEAD = "clock_ahead"
    INPUT_DOWN = "input_down"
    NOTIFICATION_FAILED = "notification_failed"  # the outbox gave up on a channel's message


DEFAULT_NO_DATA_AFTER: Mapping[VitalKind, timedelta] = MappingProxyType({
    # Seed cadences (bedside monitor): HR every 1 s, SpO2 every 10 s, temperature every 15 s.
    # 30 s of silence from a 1 s stream is 30 missed samples; 6 missed for the slower ones.
    VitalKind.HEART_RATE: timedelta(seconds=30),
    VitalKind.SPO2: timedelta(seconds=60),
    VitalKind.TEMPERATURE: timedelta(seconds=90),
    VitalKind.RESPIRATORY_RATE: timedelta(seconds=60),
    # Ward vitals: automated NIBP cycles at most hourly on a ward; an hour plus ten minutes.
    VitalKind.SYSTOLIC_BP: timedelta(minutes=70),
    VitalKind.DIASTOLIC_BP: timedelta(minutes=70),
    # Glucose and weight are spot checks: no cadence, no no-data alarm.
})


@dataclass(frozen=True, slots=True)
class TechnicalPolicy:
    """Thresholds of the technical alarms; every figure configurable."""

    no_data_after: Mapping[VitalKind, timedelta] = field(
        default_factory=lambda: DEFAULT_NO_DATA_AFTER
    )
    no_data_priority: Priority = Priority.MEDIUM
    low_battery_below: float = 20.0
    critical_battery_below: float = 10.0  # MEDIUM: the device is about to stop
    battery_clear_margin: float = 5.0
    poor_signal_below: float = 50.0
    signal_clear_margin: float = 5.0
    clock_ahead_after: timedelta = timedelta(seconds=60)
    input_down_after: timedelta = timedelta(seconds=30)
    input_down_priority: Priority = Priority.MEDIUM

    def silence_limit(self, vitals: frozenset[VitalKind]) -> timedelta | None:
        """How long a device sending ``vitals`` may be silent: its fastest vital's limit."""
        limits = [self.no_data_after[v] for v in vitals if v in self.no_data_after]
        return min(limits) if limits else None


def battery_priority(level: float, policy: TechnicalPolicy) -> Priority | None:
    """The low-battery priority of ``level`` %, or None when the battery is fine."""
    if level < policy.critical_battery_below:
        return Priority.MEDIUM
    if level < policy.low_battery_below:
        return Priority.LOW
    return None


def battery_recovered(level: float, policy: TechnicalPolicy) -> bool:
    """True when a low-battery alarm may clear (above the threshold by the margin)."""
    return level >= policy.low_battery_below + policy.battery_clear_margin


def signal_poor(quality: float, policy: TechnicalPolicy) -> bool:
    """True when the signal quality is too poor to trust the values."""
    return quality < policy.poor_signal_below


def signal_recovered(quality: float, policy: TechnicalPolicy) -> bool:
    """True when a poor-signal alarm may clear (above the threshold by the margin)."""
    return quality >= policy.poor_signal_below + policy.signal_clear_margin


def clock_ahead_by(measured_at_s: float, received_at_s: float) -> float:
    """Seconds the device's clock runs ahead of the station (negative: behind)."""
    return measured_at_s - received_at_s
