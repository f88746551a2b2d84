"""Technical alarms: no data, battery, signal, unknown device, clock ahead, input down."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.alarms.support import Ward, kinds
from vitalstation.alarms import (
    AlarmKind,
    AlarmPolicy,
    Attribution,
    Priority,
    TechnicalPolicy,
    TransitionKind,
)
from vitalstation.domain.readings import DataSource
from vitalstation.domain.vitals import VitalKind

QUIET = AlarmPolicy(escalation=None, news2=None)


@pytest.fixture
def ward() -> Ward:
    return Ward(policy=QUIET)


def technical(events):
    """(event, condition) of the technical transitions among ``events``."""
    return [
        (t.kind.value, t.alarm.condition) for t in events if t.alarm.kind is AlarmKind.TECHNICAL
    ]


# -- no data --------------------------------------------------------------------------------------

def test_a_silent_device_raises_one_no_data_alarm_after_its_fastest_cadence(ward: Ward) -> None:
    ward.send(heart_rate=80, oxygen_saturation=97)  # HR: 30 s, SpO2: 60 s -> 30 s
    assert ward.advance(30) == []
    [raised] = ward.advance(1)
    assert raised.alarm.key == "device:DEV1|no_data"
    assert raised.alarm.priority is Priority.MEDIUM
    assert (raised.alarm.bed_label, raised.alarm.patient_id) == ("12", "P1")
    assert not raised.alarm.latching
    assert ward.advance(120) == []  # one alarm, and no per-vital ones on top
    assert kinds(ward.send(heart_rate=80, oxygen_saturation=97)) == ["resolved"]


def test_a_vital_that_stops_while_the_device_sends_others(ward: Ward) -> None:
    ward.send(heart_rate=80, oxygen_saturation=97)
    events = []
    for _ in range(7):  # SpO2 alone every 10 s (probe of the HR channel off)
        events += ward.advance(5)
        ward.clock.advance(5)
        events += ward.send(oxygen_saturation=97)
    assert technical(events) == [("raised", "no_data.heart_rate")]
    raised = next(t for t in events if t.kind is TransitionKind.RAISED)
    assert raised.at == ward.clock() - timedelta(seconds=35)  # first tick past 30 s
    assert raised.alarm.vital is VitalKind.HEART_RATE
    assert technical(ward.send(heart_rate=80)) == [("resolved", "no_data.heart_rate")]


@pytest.mark.parametrize(
    ("vital", "seconds"), [("heart_rate", 30), ("oxygen_saturation", 60), ("temperature", 90)]
)
def test_default_cadences_follow_the_seed(ward: Ward, vital: str, seconds: int) -> None:
    ward.send(**{vital: 37.0 if vital == "temperature" else 97.0})
    assert ward.advance(seconds) == []
    assert technical(ward.advance(1)) == [("raised", "no_data")]


def test_cadences_are_configurable() -> None:
    policy = AlarmPolicy(escalation=None, news2=None, technical=TechnicalPolicy(
        no_data_after={VitalKind.HEART_RATE: timedelta(seconds=5)}
    ))
    ward = Ward(policy=policy)
    ward.send(heart_rate=80)
    assert ward.advance(5) == []
    assert technical(ward.advance(1)) == [("raised", "no_data")]


def test_manual_entries_and_spot_checks_set_no_cadence(ward: Ward) -> None:
    ward.send(respiratory_rate=16, source=DataSource.MANUAL)
    ward.send(glucose=100, device="GLUCO")
    assert ward.advance(3600) == []


def test_unassigned_devices_are_not_watched(ward: Ward) -> None:
    ward.send(heart_rate=80, bed=None, patient=None)
    assert ward.advance(300) == []


def test_watch_device_at_startup_and_forget_it(ward: Ward) -> None:
    ward.engine.watch_device("DEV9", bed_label="3", patient_id="P9",
                             vitals=[VitalKind.HEART_RATE], last_seen=ward.now())
    [raised] = ward.advance(31)
    assert raised.alarm.key == "device:DEV9|no_data" and raised.alarm.bed_label == "3"
    assert kinds(ward.engine.forget_device("DEV9")) == ["resolved"]
    assert ward.advance(60) == []


def test_a_device_moved_out_of_its_bed_stops_being_watched(ward: Ward) -> None:
    ward.send(heart_rate=80)
    ward.send(heart_rate=80, bed=None, patient=None, attribution=Attribution.UNASSIGNED)
    assert ward.advance(300) == []


# -- battery and signal ---------------------------------------------------------------------------

def test_low_battery_with_priority_and_hysteresis(ward: Ward) -> None:
    assert ward.send(heart_rate=80, battery=20) == []
    [low] = ward.send(heart_rate=80, battery=19)
    assert (low.alarm.condition, low.alarm.priority) == ("low_battery", Priority.LOW)
    assert low.alarm.key == "device:DEV1|low_battery" and low.alarm.limit_value == 20
    [critical] = ward.send(heart_rate=80, battery=9)
    assert critical.kind is TransitionKind.PRIORITY_RAISED
    assert critical.alarm.priority is Priority.MEDIUM
    assert ward.send(heart_rate=80, battery=22) == []  # charging, not yet 25
    assert technical(ward.send(heart_rate=80, battery=25)) == [("resolved", "low_battery")]


def test_poor_signal(ward: Ward) -> None:
    assert ward.send(heart_rate=80, signal=50) == []
    [poor] = ward.send(heart_rate=80, signal=49.5)
    assert (poor.alarm.condition, poor.alarm.priority) == ("poor_signal", Priority.LOW)
    assert ward.send(heart_rate=80, signal=54) == []
    assert technical(ward.send(heart_rate=80, signal=55)) == [("resolved", "poor_signal")]


# -- unknown device and device clock --------------------------------------------------------------

def test_unknown_device_raises_once_and_resolves_when_registered(ward: Ward) -> None:
    events = []
    for _ in range(1000):
        events += ward.send(heart_rate=80, device="X9", bed=None, patient=None,
                            attribution=Attribution.UNKNOWN_DEVICE)
    assert technical(events) == [("raised", "unknown_device")]
    alarm = ward.engine.alarm("device:X9|unknown_device")
    assert alarm is not None and alarm.priority is Priority.LOW and alarm.update_count == 999
    assert technical(ward.send(heart_rate=80, device="X9")) == [("resolved", "unknown_device")]


def test_device_clock_ahead(ward: Ward) -> None:
    now = ward.now()
    assert ward.send(heart_rate=80, measured_at=now + timedelta(seconds=60)) == []
    [ahead] = ward.send(heart_rate=80, measured_at=now + timedelta(seconds=61))
    assert ahead.alarm.condition == "clock_ahead" and ahead.alarm.value == 61
    worse = ward.send(heart_rate=80, measured_at=now + timedelta(seconds=62))
    assert technical(worse) == [("updated", "clock_ahead")]
    ward.clock.advance(70)
    assert technical(ward.send(heart_rate=80)) == [("resolved", "clock_ahead")]


# -- inputs ---------------------------------------------------------------------------------------

def test_an_input_down_for_longer_than_allowed(ward: Ward) -> None:
    assert ward.engine.report_input("mqtt", up=False, detail="broker unreachable") == []
    assert ward.advance(30) == []
    [down] = ward.advance(1)
    assert down.alarm.key == "input:mqtt|input_down"
    assert down.alarm.priority is Priority.MEDIUM
    assert down.alarm.message == "Input mqtt down for 31 s: broker unreachable"
    assert ward.engine.report_input("mqtt", up=False) == []  # still down: same alarm
    assert kinds(ward.engine.report_input("mqtt", up=True)) == ["resolved"]


def test_a_short_outage_raises_nothing(ward: Ward) -> None:
    ward.engine.report_input("kinesis", up=False, detail="stream missing")
    ward.advance(10)
    assert ward.engine.report_input("kinesis", up=True) == []
    assert ward.advance(60) == []


def test_technical_alarms_never_latch_even_at_high_priority() -> None:
    policy = AlarmPolicy(escalation=None, news2=None,
                         technical=TechnicalPolicy(input_down_priority=Priority.HIGH))
    ward = Ward(policy=policy)
    ward.engine.report_input("rest", up=False)
    [down] = ward.advance(31)
    assert down.alarm.priority is Priority.HIGH and not down.alarm.latching
    assert kinds(ward.engine.report_input("rest", up=True)) == ["resolved"]
