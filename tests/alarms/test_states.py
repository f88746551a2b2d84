"""IEC 60601-1-8 §6.8 states: every transition, latching, audio pause, independence."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.alarms.support import STATION, Ward, kinds
from vitalstation.alarms import (
    AlarmActionError,
    AlarmPolicy,
    AlarmState,
    Priority,
    TechnicalPolicy,
    TransitionKind,
    UnknownAlarm,
)

HR_KEY = "bed:12|limit.heart_rate.high"
RR_KEY = "bed:12|limit.respiratory_rate.high"
# States only: no escalation chains, NEWS2 or no-data alarms in the way.
QUIET = AlarmPolicy(escalation=None, news2=None, technical=TechnicalPolicy(no_data_after={}))


@pytest.fixture
def ward() -> Ward:
    return Ward(policy=QUIET)


def test_raise_makes_an_active_alarm_with_a_system_event(ward: Ward) -> None:
    [raised] = ward.send(heart_rate=120)  # adult-ward: > 110 MEDIUM
    assert raised.kind is TransitionKind.RAISED
    assert (raised.actor, raised.origin) == ("system", "engine")
    assert (raised.from_state, raised.to_state) == (None, AlarmState.ACTIVE)
    alarm = raised.alarm
    assert alarm.key == HR_KEY and alarm.condition == "heart_rate.high"
    assert alarm.priority is Priority.MEDIUM and alarm.audible and not alarm.latching
    assert (alarm.bed_label, alarm.patient_id, alarm.device_id) == ("12", "P1", "DEV1")
    assert alarm.value == 120 and alarm.limit_value == 110
    assert alarm.message == "Heart rate high: 120 /min (limit > 110)"


def test_non_latching_alarm_resolves_by_itself(ward: Ward) -> None:
    ward.send(heart_rate=120)
    ward.clock.advance(5)
    [resolved] = ward.send(heart_rate=80)
    assert resolved.kind is TransitionKind.RESOLVED
    assert (resolved.from_state, resolved.to_state) == (AlarmState.ACTIVE, AlarmState.RESOLVED)
    assert resolved.alarm.resolved_at == ward.now()
    assert ward.engine.active_alarms() == []


def test_acknowledge_then_condition_ends(ward: Ward) -> None:
    ward.send(heart_rate=120)
    ward.clock.advance(3)
    [ack] = ward.engine.acknowledge(HR_KEY, actor="nurse.kim", origin=STATION)
    assert ack.kind is TransitionKind.ACKNOWLEDGED
    assert (ack.actor, ack.origin, ack.at) == ("nurse.kim", STATION, ward.now())
    assert (ack.from_state, ack.to_state) == (AlarmState.ACTIVE, AlarmState.ACKNOWLEDGED)
    assert ack.alarm.acknowledged_by == "nurse.kim" and not ack.alarm.audible
    # Still shown while the condition lasts; updates do not re-sound it.
    assert ward.send(heart_rate=118) == []
    [worse] = ward.send(heart_rate=125)
    assert worse.kind is TransitionKind.UPDATED and worse.to_state is AlarmState.ACKNOWLEDGED
    assert ward.only_alarm().state is AlarmState.ACKNOWLEDGED
    assert kinds(ward.send(heart_rate=80)) == ["resolved"]


def test_acknowledge_twice_is_one_event_and_resolved_alarms_are_gone(ward: Ward) -> None:
    ward.send(heart_rate=120)
    assert len(ward.engine.acknowledge(HR_KEY, actor="kim", origin="cli")) == 1
    assert ward.engine.acknowledge(HR_KEY, actor="kim", origin="cli") == []
    ward.send(heart_rate=80)
    with pytest.raises(UnknownAlarm):
        ward.engine.acknowledge(HR_KEY, actor="kim", origin="cli")


def test_high_priority_latches_until_acknowledged(ward: Ward) -> None:
    [raised] = ward.send(heart_rate=150)  # > 130 HIGH
    assert raised.alarm.latching
    ward.clock.advance(4)
    [latched] = ward.send(heart_rate=80)
    assert latched.kind is TransitionKind.LATCHED
    assert latched.to_state is AlarmState.ACTIVE
    assert latched.alarm.latched and not latched.alarm.condition_present
    ward.clock.advance(60)
    assert ward.advance(60) == []  # stays, however long
    assert ward.only_alarm().latched
    events = ward.engine.acknowledge(HR_KEY, actor="kim", origin=STATION)
    assert kinds(events) == ["acknowledged", "resolved"]
    assert events[1].actor == "kim" and events[1].details["reason"] == "latched alarm acknowledged"
    assert ward.engine.active_alarms() == []


def test_latched_alarm_whose_condition_returns_carries_on(ward: Ward) -> None:
    ward.send(heart_rate=150)
    ward.send(heart_rate=80)
    [back] = ward.send(heart_rate=140)
    assert back.kind is TransitionKind.UPDATED and back.details["condition_returned"] is True
    assert ward.only_alarm().condition_present and ward.only_alarm().key == HR_KEY


def test_acknowledged_high_alarm_resolves_when_its_condition_ends(ward: Ward) -> None:
    ward.send(heart_rate=150)
    ward.engine.acknowledge(HR_KEY, actor="kim", origin=STATION)
    assert kinds(ward.send(heart_rate=80)) == ["resolved"]


def test_latching_is_a_policy_choice() -> None:
    ward = Ward(policy=AlarmPolicy(
        escalation=None, news2=None, latching=frozenset(),
        technical=TechnicalPolicy(no_data_after={}),
    ))
    ward.send(heart_rate=150)
    assert kinds(ward.send(heart_rate=80)) == ["resolved"]


def test_audio_pause_lasts_two_minutes_by_default(ward: Ward) -> None:
    ward.send(heart_rate=120)
    [paused] = ward.engine.pause_audio(HR_KEY, actor="kim", origin=STATION)
    assert paused.kind is TransitionKind.AUDIO_PAUSED
    assert paused.to_state is AlarmState.AUDIO_PAUSED
    assert paused.alarm.audio_paused_until == ward.now() + timedelta(minutes=2)
    assert ward.advance(119) == []
    [resumed] = ward.advance(1)
    assert resumed.kind is TransitionKind.AUDIO_RESUMED
    assert (resumed.from_state, resumed.to_state) == (AlarmState.AUDIO_PAUSED, AlarmState.ACTIVE)
    assert resumed.details["reason"] == "pause expired"


def test_paused_alarm_may_be_acknowledged_and_may_resolve(ward: Ward) -> None:
    ward.send(heart_rate=120)
    ward.engine.pause_audio(HR_KEY, actor="kim", origin=STATION)
    [ack] = ward.engine.acknowledge(HR_KEY, actor="kim", origin=STATION)
    assert ack.from_state is AlarmState.AUDIO_PAUSED
    ward.send(respiratory_rate=22)  # another alarm to pause
    ward.engine.pause_audio(RR_KEY, actor="kim", origin=STATION)
    assert kinds(ward.send(respiratory_rate=15)) == ["resolved"]


def test_pause_all_holds_new_alarms_of_that_bed_up_to_the_paused_priority(ward: Ward) -> None:
    ward.send(respiratory_rate=22)  # bed 12, MEDIUM
    paused = ward.engine.pause_audio(actor="kim", origin=STATION)
    assert kinds(paused) == ["audio_paused"]
    pause = ward.engine.audio_pause
    assert pause is not None and dict(pause.levels) == {"bed:12": Priority.MEDIUM}
    ward.clock.advance(10)
    [held] = ward.send(heart_rate=45)  # bed 12, MEDIUM: held
    assert held.kind is TransitionKind.RAISED and held.to_state is AlarmState.AUDIO_PAUSED
    assert held.details["audio_pause"] == "held"
    assert held.alarm.audio_paused_until == pause.until
    [high] = ward.send(blood_pressure_systolic=85)  # bed 12, HIGH (<= 90): breaks through
    assert high.to_state is AlarmState.ACTIVE and high.details["audio_pause"] == "broke through"
    # The held alarm sounds again when the pause ends, like the paused one.
    assert sorted(kinds(ward.advance(110))) == ["audio_resumed", "audio_resumed"]
    assert all(a.audible for a in ward.engine.active_alarms())


def test_pausing_one_bed_never_silences_a_new_alarm_in_another(ward: Ward) -> None:
    ward.send(heart_rate=150)  # bed 12, HIGH
    ward.engine.pause_audio(actor="kim", origin=STATION)
    [other] = ward.send(respiratory_rate=22, device="DEV2", bed="14", patient="P2")
    assert other.to_state is AlarmState.ACTIVE and "audio_pause" not in other.details


def test_paused_alarm_whose_priority_rises_breaks_through(ward: Ward) -> None:
    ward.send(heart_rate=120)
    ward.engine.pause_audio(HR_KEY, actor="kim", origin=STATION)
    [rise] = ward.send(heart_rate=140)
    assert rise.kind is TransitionKind.PRIORITY_RAISED
    assert (rise.from_state, rise.to_state) == (AlarmState.AUDIO_PAUSED, AlarmState.ACTIVE)
    assert rise.details["priority"] == ["medium", "high"]
    assert rise.alarm.priority is Priority.HIGH and rise.alarm.latching


def test_acknowledged_alarm_sounds_again_when_it_gets_worse(ward: Ward) -> None:
    ward.send(heart_rate=120)
    ward.engine.acknowledge(HR_KEY, actor="kim", origin=STATION)
    [rise] = ward.send(heart_rate=140)
    assert (rise.kind, rise.to_state) == (TransitionKind.PRIORITY_RAISED, AlarmState.ACTIVE)
    assert rise.alarm.acknowledged_by is None


def test_priority_never_drops_while_open_but_the_current_band_is_shown(ward: Ward) -> None:
    ward.send(heart_rate=140)  # HIGH
    assert ward.send(heart_rate=120) == []  # MEDIUM band, same alarm, no event
    alarm = ward.only_alarm()
    assert alarm.priority is Priority.HIGH and alarm.current_priority is Priority.MEDIUM


def test_inactivating_one_alarm_never_affects_another(ward: Ward) -> None:
    ward.send(heart_rate=120, respiratory_rate=22)
    assert {a.key for a in ward.engine.active_alarms()} == {HR_KEY, RR_KEY}
    ward.engine.acknowledge(HR_KEY, actor="kim", origin=STATION)
    assert ward.engine.alarm(RR_KEY).state is AlarmState.ACTIVE  # type: ignore[union-attr]
    ward.engine.pause_audio(RR_KEY, actor="kim", origin=STATION)
    assert ward.engine.alarm(HR_KEY).state is AlarmState.ACKNOWLEDGED  # type: ignore[union-attr]
    # Another bed is untouched by everything above.
    ward.send(heart_rate=120, device="DEV2", bed="14", patient="P2")
    assert ward.engine.alarm("bed:14|limit.heart_rate.high").audible  # type: ignore[union-attr]


@pytest.mark.parametrize("action", ["acknowledge", "pause_audio"])
def test_a_bedside_device_cannot_silence_alarms(ward: Ward, action: str) -> None:
    ward.send(heart_rate=120)
    with pytest.raises(AlarmActionError, match="device"):
        getattr(ward.engine, action)(HR_KEY, actor="DEV1", origin="rest:DEV1")


@pytest.mark.parametrize(
    ("actor", "origin"), [("", STATION), ("kim", "window"), ("kim", "station:"), ("x" * 101, "cli")]
)
def test_every_action_names_who_and_from_where(ward: Ward, actor: str, origin: str) -> None:
    ward.send(heart_rate=120)
    with pytest.raises(AlarmActionError):
        ward.engine.acknowledge(HR_KEY, actor=actor, origin=origin)


@pytest.mark.parametrize("actor", ["system", " System "])
def test_a_person_cannot_act_under_the_station_s_own_name(ward: Ward, actor: str) -> None:
    ward.send(heart_rate=120)
    for act in (lambda: ward.engine.acknowledge(HR_KEY, actor=actor, origin="cli"),
                lambda: ward.engine.pause_audio(HR_KEY, actor=actor, origin=STATION),
                lambda: ward.engine.discharge("P1", actor=actor, origin="cli")):
        with pytest.raises(AlarmActionError, match="the station's own name"):
            act()
    assert ward.engine.alarm(HR_KEY).state is AlarmState.ACTIVE  # type: ignore[union-attr]


def test_audio_pause_longer_than_the_maximum_is_refused(ward: Ward) -> None:
    ward.send(heart_rate=120)
    with pytest.raises(AlarmActionError, match="at most 300 s"):
        ward.engine.pause_audio(HR_KEY, actor="kim", origin=STATION, duration=timedelta(hours=1))
    with pytest.raises(AlarmActionError):
        ward.engine.pause_audio(HR_KEY, actor="kim", origin=STATION, duration=timedelta(0))


def test_database_id_names_the_alarm_once_assigned(ward: Ward) -> None:
    [raised] = ward.send(heart_rate=120)
    assert raised.alarm.alarm_id is None
    assert ward.engine.assign_id(HR_KEY, 41).alarm_id == 41
    [ack] = ward.engine.acknowledge(41, actor="kim", origin="cli")
    assert ack.alarm.alarm_id == 41 and ack.alarm.key == HR_KEY
    with pytest.raises(UnknownAlarm):
        ward.engine.acknowledge(42, actor="kim", origin="cli")


def test_record_id_names_the_alarm_as_assign_id_does(ward: Ward) -> None:
    ward.send(heart_rate=120)
    assert ward.engine.record_id(HR_KEY, 41) is None  # no snapshot made for the service
    ward.engine.record_id(HR_KEY, 43)  # the store's id taken again: the old one is forgotten
    [ack] = ward.engine.acknowledge(43, actor="kim", origin="cli")
    assert ack.alarm.alarm_id == 43 and ack.alarm.key == HR_KEY
    with pytest.raises(UnknownAlarm):
        ward.engine.acknowledge(41, actor="kim", origin="cli")
    with pytest.raises(UnknownAlarm):
        ward.engine.record_id("no such alarm", 44)


def test_transitions_serialise_to_json(ward: Ward) -> None:
    events = ward.send(heart_rate=150) + ward.send(heart_rate=80)
    events += ward.engine.acknowledge(HR_KEY, actor="kim", origin="cli")
    lines = [json.dumps(t.to_dict(), ensure_ascii=False) for t in events]
    assert [json.loads(line)["event"] for line in lines] == [
        "raised", "latched", "acknowledged", "resolved"
    ]
    assert json.loads(lines[0])["alarm"]["priority"] == "high"
