"""The engine: no floods, delay, hysteresis, HIGH cap, live data, overrides, NEWS2, restart."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.alarms.support import STATION, T0, Ward, kinds, measurement
from vitalstation.alarms import (
    AlarmActionError,
    AlarmEngine,
    AlarmKind,
    AlarmPolicy,
    AlarmProfile,
    AlarmState,
    AttributedReading,
    Attribution,
    Consciousness,
    EngineSnapshot,
    LimitOverride,
    Priority,
    TechnicalPolicy,
    TransitionKind,
    VitalLimits,
    above,
    below,
)
from vitalstation.domain.readings import DataSource, InputKind, Reading
from vitalstation.domain.vitals import Unit, VitalKind

QUIET = AlarmPolicy(escalation=None, news2=None, technical=TechnicalPolicy(no_data_after={}))
HR_KEY = "bed:12|limit.heart_rate.high"
SPO2_KEY = "bed:12|limit.oxygen_saturation.low"


@pytest.fixture
def ward() -> Ward:
    return Ward(policy=QUIET)


# -- no floods ------------------------------------------------------------------------------------

def test_a_thousand_abnormal_readings_make_one_alarm(ward: Ward) -> None:
    events = []
    for _ in range(1000):
        events += ward.send(heart_rate=120)
        ward.clock.advance(1)
    assert kinds(events) == ["raised"]
    alarm = ward.only_alarm()
    assert alarm.update_count == 999
    assert alarm.updated_at == T0 + timedelta(seconds=999)
    assert alarm.raised_at == T0


def test_updates_report_only_a_worse_value(ward: Ward) -> None:
    ward.send(heart_rate=120)
    assert ward.send(heart_rate=115) == []  # better: counted, no event
    [worse] = ward.send(heart_rate=125)
    assert worse.kind is TransitionKind.UPDATED and worse.details["worst_value"] == [120, 125]
    alarm = ward.only_alarm()
    assert (alarm.value, alarm.worst_value, alarm.update_count) == (125, 125, 2)


def test_an_open_alarms_message_follows_the_latest_value_and_limit(ward: Ward) -> None:
    # The message is made again only when the value or the breached limit changes: a value
    # that comes back, and the same value after crossing another limit, must still show.
    messages = []
    for value in (120, 120, 115, 120, 131, 120):
        ward.send(heart_rate=value)
        messages.append(ward.only_alarm().message)
    assert messages == [
        "Heart rate high: 120 /min (limit > 110)",
        "Heart rate high: 120 /min (limit > 110)",
        "Heart rate high: 115 /min (limit > 110)",
        "Heart rate high: 120 /min (limit > 110)",
        "Heart rate high: 131 /min (limit > 130)",
        "Heart rate high: 120 /min (limit > 110)",
    ]
    strict = VitalLimits(VitalKind.HEART_RATE, (above(115, Priority.MEDIUM),))
    ward.engine.set_override(LimitOverride("P1", strict, author="dr.jones", reason="post-op",
                                           at=T0))
    ward.send(heart_rate=120)  # the same value against another limit
    assert ward.only_alarm().message == "Heart rate high: 120 /min (limit > 115)"


def test_one_alarm_per_bed_whatever_the_device(ward: Ward) -> None:
    ward.send(heart_rate=120, device="DEV1")
    assert ward.send(heart_rate=120, device="DEV2") == []
    assert ward.only_alarm().key == HR_KEY


def test_unassigned_devices_alarm_per_device(ward: Ward) -> None:
    ward.send(heart_rate=120, device="A", bed=None, patient=None)
    ward.send(heart_rate=120, device="B", bed=None, patient=None)
    assert [a.key for a in ward.engine.active_alarms()] == [
        "device:A|limit.heart_rate.high", "device:B|limit.heart_rate.high"
    ]


def test_a_patient_without_a_bed_is_its_own_scope(ward: Ward) -> None:
    [raised] = ward.send(heart_rate=120, bed=None, patient="P7")
    assert raised.alarm.key == "patient:P7|limit.heart_rate.high"


# -- delay, HIGH cap, hysteresis ------------------------------------------------------------------

def test_delay_holds_a_medium_condition_until_it_persists(ward: Ward) -> None:
    # adult-ward SpO2: delay 15 s; 88 % is MEDIUM.
    assert ward.send(oxygen_saturation=88) == []
    ward.clock.advance(10)
    assert ward.send(oxygen_saturation=87) == []
    ward.clock.advance(5)
    [raised] = ward.send(oxygen_saturation=88)
    assert raised.kind is TransitionKind.RAISED and raised.details["delayed_s"] == 15
    assert raised.alarm.worst_value == 87


def test_a_transient_breach_shorter_than_the_delay_raises_nothing(ward: Ward) -> None:
    ward.send(oxygen_saturation=88)
    ward.clock.advance(5)
    ward.send(oxygen_saturation=96)
    assert ward.advance(60) == []
    assert ward.engine.active_alarms() == []


def test_delay_expires_on_tick_without_new_readings(ward: Ward) -> None:
    ward.send(oxygen_saturation=88)
    assert ward.advance(14) == []
    [raised] = ward.advance(1)
    assert raised.alarm.key == SPO2_KEY and raised.alarm.priority is Priority.MEDIUM


def test_high_priority_is_never_delayed_beyond_the_cap(ward: Ward) -> None:
    ward.send(oxygen_saturation=80)  # HIGH (< 85): the 15 s delay is capped at 10 s
    assert ward.advance(9) == []
    [raised] = ward.advance(1)
    assert raised.alarm.priority is Priority.HIGH


def test_a_condition_that_worsens_to_high_while_delayed_raises_at_the_cap(ward: Ward) -> None:
    ward.send(oxygen_saturation=88)  # MEDIUM, pending
    ward.clock.advance(8)
    assert ward.send(oxygen_saturation=82) == []  # HIGH now; 8 s since onset
    ward.clock.advance(2)
    [raised] = ward.send(oxygen_saturation=82)
    assert raised.alarm.priority is Priority.HIGH and raised.details["delayed_s"] == 10


def test_a_delayed_raise_names_the_worst_value_beside_its_limit_and_the_value_now(
    ward: Ward,
) -> None:
    # 84 % set HIGH (< 85) during the delay; at the raise the saturation is back to 86 %:
    # the nurse must read 84 beside "< 85", not 86 beside "< 85".
    ward.send(oxygen_saturation=88)
    ward.clock.advance(5)
    ward.send(oxygen_saturation=84)
    ward.clock.advance(5)
    [raised] = ward.send(oxygen_saturation=86)
    assert raised.alarm.priority is Priority.HIGH
    assert raised.alarm.message == "SpO2 low: 84 % (limit < 85), now 86 %"


def test_long_delay_is_capped_for_heart_rate_latency() -> None:
    slow = AlarmProfile("slow", "HR with a 60 s delay", {
        VitalKind.HEART_RATE: VitalLimits(
            VitalKind.HEART_RATE, (below(40, Priority.HIGH), above(120, Priority.MEDIUM)),
            delay=timedelta(seconds=60),
        ),
    })
    ward = Ward(slow, policy=QUIET)
    ward.send(heart_rate=20)
    assert ward.advance(9.9) == []
    assert kinds(ward.advance(0.1)) == ["raised"]  # 10 s: IEC 60601-2-27 HR latency
    assert kinds(ward.send(heart_rate=130)) == ["latched"]  # the low alarm; high pending
    assert ward.advance(59.9) == []  # MEDIUM waits its full delay
    [raised] = ward.advance(0.1)
    assert raised.alarm.key == "bed:12|limit.heart_rate.high"


def test_hysteresis_clears_only_inside_the_limit_by_the_margin(ward: Ward) -> None:
    # adult-ward HR > 110 MEDIUM, hysteresis 2
    ward.send(heart_rate=115)
    assert ward.send(heart_rate=110) == []  # at the limit: inside, but within 2
    assert ward.send(heart_rate=109) == []
    assert ward.only_alarm().current_priority is None
    assert kinds(ward.send(heart_rate=108)) == ["resolved"]


def test_without_hysteresis_an_alarm_clears_as_soon_as_it_is_inside() -> None:
    ward = Ward("inhealth", policy=QUIET)
    ward.send(heart_rate=100)  # >= 99.5 LOW
    assert kinds(ward.send(heart_rate=99.4)) == ["resolved"]


def test_high_and_low_of_one_vital_are_separate_conditions(ward: Ward) -> None:
    ward.send(heart_rate=150)  # HIGH, latching
    events = ward.send(heart_rate=35)
    assert kinds(events) == ["latched", "raised"]
    assert {a.condition for a in ward.engine.active_alarms()} == {
        "heart_rate.high", "heart_rate.low"
    }


# -- live data ------------------------------------------------------------------------------------

def test_an_old_reading_raises_no_limit_alarm(ward: Ward) -> None:
    ward.clock.advance(timedelta(hours=1))
    old = ward.now() - timedelta(minutes=16)
    assert ward.send(heart_rate=150, measured_at=old, received_at=old) == []


def test_a_reading_older_than_the_latest_is_history(ward: Ward) -> None:
    ward.clock.advance(60)
    ward.send(heart_rate=80)
    assert ward.send(heart_rate=150, measured_at=ward.now() - timedelta(seconds=30)) == []


# -- the profiles end to end ----------------------------------------------------------------------

def test_inhealth_celsius_36_1_is_normal_end_to_end() -> None:
    ward = Ward("inhealth", policy=QUIET)
    assert ward.send(measurement(VitalKind.TEMPERATURE, 36.1, Unit.CELSIUS)) == []
    [raised] = ward.send(measurement(VitalKind.TEMPERATURE, 101.95, Unit.FAHRENHEIT))
    assert raised.alarm.priority is Priority.MEDIUM and raised.alarm.condition == "temperature.high"


def test_inhealth_glucose_fractions_raise_no_false_emergency() -> None:
    ward = Ward("inhealth", policy=QUIET)
    assert ward.send(glucose=119.5) == []
    [raised] = ward.send(glucose=299.5)
    assert raised.alarm.priority is Priority.LOW


def test_bedside_monitor_fever_on_the_real_fahrenheit_value() -> None:
    ward = Ward("bedside-monitor", policy=QUIET)
    assert ward.send(measurement(VitalKind.TEMPERATURE, 100.9, Unit.FAHRENHEIT)) == []
    [raised] = ward.send(measurement(VitalKind.TEMPERATURE, 101.5, Unit.FAHRENHEIT))
    assert raised.alarm.priority is Priority.MEDIUM
    assert raised.alarm.value == pytest.approx(38.6111111, abs=1e-6)


@pytest.mark.parametrize("profile", ["adult-ward", "inhealth", "bedside-monitor"])
@pytest.mark.parametrize(
    "vital", ["heart_rate", "respiratory_rate", "oxygen_saturation"]
)
def test_zero_raises_a_high_alarm_end_to_end(profile: str, vital: str) -> None:
    ward = Ward(profile, policy=QUIET)
    events = ward.send(**{vital: 0.0}) + ward.advance(10)  # SpO2's delay is capped at 10 s
    assert [(t.kind, t.alarm.priority) for t in events] == [
        (TransitionKind.RAISED, Priority.HIGH)
    ]


# -- per-patient overrides ------------------------------------------------------------------------

def copd(author: str = "dr.jones") -> LimitOverride:
    return LimitOverride(
        "P1",
        VitalLimits(VitalKind.SPO2, (below(80, Priority.HIGH), below(86, Priority.MEDIUM))),
        author=author, reason="COPD, target 88-92 %", at=T0,
    )


def test_override_replaces_the_vital_for_that_patient_and_re_evaluates(ward: Ward) -> None:
    ward.send(oxygen_saturation=88)
    ward.advance(15)
    assert ward.only_alarm().key == SPO2_KEY
    events = ward.engine.set_override(copd())
    assert kinds(events) == ["resolved"]
    assert ward.engine.overrides("P1")[0].author == "dr.jones"
    assert ward.send(oxygen_saturation=88) == []
    # Another patient keeps the profile.
    ward.send(oxygen_saturation=88, device="DEV2", bed="14", patient="P2")
    assert ward.advance(15)[0].alarm.key == "bed:14|limit.oxygen_saturation.low"


def test_discharge_drops_the_overrides(ward: Ward) -> None:
    ward.engine.set_override(copd())
    discharged = ward.engine.discharge("P1", actor="clerk", origin="cli")
    assert [o.reason for o in discharged.overrides] == ["COPD, target 88-92 %"]
    assert ward.engine.overrides("P1") == ()
    assert ward.engine.limits_for("P1", VitalKind.SPO2) is ward.engine.profile.limits_for(
        VitalKind.SPO2
    )
    assert ward.engine.discharge("P1").overrides == ()


def test_discharge_resolves_the_patients_alarms_so_the_next_patient_starts_clean() -> None:
    ward = Ward(policy=AlarmPolicy(news2=None, technical=TechnicalPolicy(no_data_after={})))
    ward.send(heart_rate=150, battery=10)  # HIGH latching limit alarm + a chain + battery
    discharged = ward.engine.discharge("P1", actor="clerk", origin="cli")
    assert [(t.kind.value, t.alarm.condition) for t in discharged.transitions] == [
        ("resolved", "heart_rate.high"), ("escalation_ended", "heart_rate.high")
    ]
    assert discharged.transitions[0].actor == "clerk"
    assert discharged.transitions[0].details["reason"] == "patient discharged"
    assert [a.condition for a in ward.engine.active_alarms()] == ["low_battery"]
    [raised, _asked] = ward.send(heart_rate=150, patient="P2", battery=10)
    assert raised.kind is TransitionKind.RAISED and raised.alarm.patient_id == "P2"


# -- NEWS2 alarms ---------------------------------------------------------------------------------

def full_set(ward: Ward, **values: float):
    base = {"respiratory_rate": 16, "oxygen_saturation": 97, "blood_pressure_systolic": 120,
            "heart_rate": 70, "temperature": 37.0}
    base.update(values)
    return ward.send(**base)


def news2_ward() -> Ward:
    return Ward(policy=AlarmPolicy(escalation=None, technical=TechnicalPolicy(no_data_after={})))


def test_news2_worked_case_raises_a_high_news2_alarm() -> None:
    ward = news2_ward()
    ward.engine.enter_news2("P1", consciousness=Consciousness.ALERT, on_oxygen=True)
    events = full_set(ward, respiratory_rate=22, oxygen_saturation=95,
                      blood_pressure_systolic=105, heart_rate=115, temperature=38.4)
    news2 = [t for t in events if t.alarm.kind is AlarmKind.NEWS2]
    assert [(t.kind, t.alarm.priority, t.alarm.value) for t in news2] == [
        (TransitionKind.RAISED, Priority.HIGH, 9.0)
    ]
    assert news2[0].alarm.key == "patient:P1|news2"
    assert news2[0].alarm.message.startswith("NEWS2 9 (high)")
    assert ward.engine.news2("P1").total == 9  # type: ignore[union-attr]


def test_news2_single_red_score_is_flagged_at_low_priority() -> None:
    ward = news2_ward()
    events = full_set(ward, respiratory_rate=26)
    [news2] = [t for t in events if t.alarm.kind is AlarmKind.NEWS2]
    assert news2.alarm.priority is Priority.LOW
    assert "low-medium" in news2.alarm.message and "red score" in news2.alarm.message
    assert news2.details["assumed"] == ["air_or_oxygen", "consciousness"]


def test_news2_medium_then_back_to_low_resolves() -> None:
    ward = news2_ward()
    events = full_set(ward, heart_rate=115, temperature=38.4, respiratory_rate=22)  # 2+1+2
    assert [t.alarm.priority for t in events if t.alarm.kind is AlarmKind.NEWS2] == [
        Priority.MEDIUM
    ]
    events = full_set(ward)
    assert [t.kind for t in events if t.alarm.kind is AlarmKind.NEWS2] == [
        TransitionKind.RESOLVED
    ]


def test_incomplete_news2_raises_nothing() -> None:
    ward = news2_ward()
    events = ward.send(heart_rate=135, oxygen_saturation=85, temperature=39.5)  # >= 8 of 3
    assert all(t.alarm.kind is not AlarmKind.NEWS2 for t in events)
    result = ward.engine.news2("P1")
    assert result is not None and result.total is None and result.minimum_total == 8


def test_news2_entry_of_confusion_rescores() -> None:
    ward = news2_ward()
    full_set(ward, heart_rate=95, respiratory_rate=22)  # 1 + 2
    [raised] = ward.engine.enter_news2("P1", consciousness="C")
    assert raised.alarm.priority is Priority.MEDIUM  # 1 + 2 + 3 = 6


def test_news2_is_scored_once_per_patient_per_batch() -> None:
    ward = news2_ward()
    now = ward.now()
    values = {"respiratory_rate": 22, "oxygen_saturation": 97, "blood_pressure_systolic": 120,
              "heart_rate": 115, "temperature": 38.4}
    batch = [
        AttributedReading("DEV1", now - timedelta(seconds=2 - i), now,
                          tuple(measurement(k, v) for k, v in values.items()),
                          Attribution.PATIENT, "P1", "12")
        for i in range(3)
    ]
    events = ward.engine.process(batch)
    assert [t.kind for t in events if t.alarm.kind is AlarmKind.NEWS2] == [
        TransitionKind.RAISED
    ]
    assert events[-1].alarm.kind is AlarmKind.NEWS2  # after the batch's limit alarms


def test_bad_clinician_entries_are_refused_with_the_choices() -> None:
    ward = news2_ward()
    with pytest.raises(AlarmActionError, match="ACVPU"):
        ward.engine.enter_news2("P1", consciousness="drowsy")
    with pytest.raises(AlarmActionError, match="scale"):
        ward.engine.enter_news2("P1", scale=3)
    assert ward.engine.news2("P1") is None  # nothing half-entered


def test_news2_stale_values_make_it_incomplete_and_never_clear() -> None:
    ward = news2_ward()
    full_set(ward, heart_rate=115, temperature=38.4, respiratory_rate=22)
    ward.clock.advance(timedelta(hours=2))
    assert [t for t in ward.send(heart_rate=70) if t.alarm.kind is AlarmKind.NEWS2] == []
    assert ward.engine.alarm("patient:P1|news2") is not None
    assert ward.engine.news2("P1").stale  # type: ignore[union-attr]


# -- restart --------------------------------------------------------------------------------------

def test_snapshot_and_restore_carry_open_alarms_across_a_restart(ward: Ward) -> None:
    ward.send(heart_rate=150)
    ward.send(respiratory_rate=22)
    ward.engine.assign_id(HR_KEY, 7)
    ward.engine.pause_audio(actor="kim", origin=STATION)
    saved = json.dumps(ward.engine.snapshot().to_dict())

    ward.clock.advance(30)
    engine = AlarmEngine("adult-ward", clock=ward.clock, policy=QUIET)
    engine.restore(EngineSnapshot.from_dict(json.loads(saved)))
    assert {a.key for a in engine.active_alarms()} == {HR_KEY, "bed:12|limit.respiratory_rate.high"}
    assert engine.audio_pause is not None
    restored = engine.alarm(7)
    assert restored is not None and restored.state is AlarmState.AUDIO_PAUSED
    # The restored alarm carries on: a normal value latches it (HIGH), an ack resolves it.
    now = ward.now()
    reading = AttributedReading("DEV1", now, now, (measurement("heart_rate", 80),),
                                Attribution.PATIENT, "P1", "12")
    assert kinds(engine.process([reading])) == ["latched"]
    assert kinds(engine.acknowledge(7, actor="kim", origin="cli")) == ["acknowledged", "resolved"]


def test_attributed_reading_from_a_stored_reading() -> None:
    reading = Reading(
        device_id="DEV1", measured_at=T0, received_at=T0,
        measurements=(measurement("heart_rate", 80), measurement("oxygen_saturation", 97)),
        input=InputKind.MQTT, battery_level=50, signal_quality=90,
    )
    wrapped = AttributedReading.from_reading(
        reading, attribution="bed", bed_label="12", kinds={VitalKind.SPO2}
    )
    assert wrapped.attribution is Attribution.BED and wrapped.scope == "bed:12"
    assert [m.kind for m in wrapped.measurements] == [VitalKind.SPO2]
    assert (wrapped.battery_level, wrapped.signal_quality) == (50, 90)
    assert wrapped.data_source is DataSource.DEVICE


def test_same_inputs_same_clock_same_transitions() -> None:
    def run() -> list[dict]:
        ward = Ward()
        events = ward.send(heart_rate=150, oxygen_saturation=80)
        events += ward.advance(10) + ward.advance(200)
        events += ward.send(heart_rate=80)
        return [t.to_dict() for t in events]

    assert run() == run()


# -- which reading raised what (the REST receiver's alerts_triggered) ----------------------------

def test_process_readings_counts_the_alarms_each_row_raised() -> None:
    ward = news2_ward()
    now = ward.now()

    def row(n: int, device: str, patient: str, bed: str, **vitals: float) -> tuple:
        reading = AttributedReading(
            device_id=device, measured_at=now - timedelta(seconds=10 - n), received_at=now,
            measurements=tuple(measurement(k, v) for k, v in vitals.items()),
            attribution=Attribution.PATIENT, patient_id=patient, bed_label=bed,
        )
        return (reading, "patient", patient, bed, None)

    calm = {"respiratory_rate": 16, "oxygen_saturation": 97, "blood_pressure_systolic": 120,
            "temperature": 37.0}
    rows = [
        row(0, "DEV1", "P1", "12", heart_rate=72),  # calm (the device's lane is made)
        row(1, "DEV1", "P1", "12", heart_rate=120),  # raises HR high
        row(2, "DEV2", "P2", "14", heart_rate=40),  # raises HR low
        row(3, "DEV1", "P1", "12", heart_rate=125),  # the same alarm, worse: no new one
        row(4, "DEV2", "P2", "14", heart_rate=140),  # resolves HR low, raises HR high
        row(5, "DEV3", "P3", "16", heart_rate=115, **calm),  # raises HR high (NEWS2 2)
        # Temperature and respiration high, and NEWS2 5 (2+1+2, medium): P3's NEWS2 alarm
        # is counted for the last row that brought P3 a value, this one.
        row(6, "DEV3", "P3", "16", temperature=38.4, respiratory_rate=22),
    ]
    raised: dict[int, int] = {}
    transitions = ward.engine.process_readings(rows, raised)
    assert raised == {1: 1, 2: 1, 4: 1, 5: 1, 6: 3}
    assert [(t.alarm.device_id, t.alarm.condition) for t in transitions
            if t.kind is TransitionKind.RAISED] == [
        ("DEV1", "heart_rate.high"), ("DEV2", "heart_rate.low"), ("DEV2", "heart_rate.high"),
        ("DEV3", "heart_rate.high"), ("DEV3", "temperature.high"),
        ("DEV3", "respiratory_rate.high"), ("DEV3", "news2"),
    ]
    assert ward.engine.process_readings([row(7, "DEV1", "P1", "12", heart_rate=72)], raised)
    assert raised == {1: 1, 2: 1, 4: 1, 5: 1, 6: 3}  # resolving raises nothing
