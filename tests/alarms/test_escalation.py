"""Two-stage escalation on a fake clock: answers, timeouts up to EMS, acknowledgement, restart."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.alarms.support import STATION, T0, Ward, kinds
from vitalstation.alarms import (
    AlarmActionError,
    AlarmEngine,
    AlarmPolicy,
    ChainStage,
    ChainState,
    Channel,
    EngineSnapshot,
    EscalationPolicy,
    Escalator,
    PatientAnswer,
    Priority,
    Role,
    TechnicalPolicy,
    TransitionKind,
    UnknownAlarm,
)
from vitalstation.domain.clock import FakeClock

KEY = "bed:12|limit.heart_rate.high"


def roles(event) -> list[str]:
    """The clinical roles an event notified (each once, in order)."""
    seen: list[str] = []
    for n in event.notifications:
        if n.role.value not in seen:
            seen.append(n.role.value)
    return seen


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def escalator(clock: FakeClock) -> Escalator:
    return Escalator(EscalationPolicy(min_priority=Priority.LOW), clock=clock)


def start(escalator: Escalator, priority: Priority = Priority.HIGH):
    return escalator.start(KEY, priority, message="Heart rate high: 150 /min",
                           patient_id="P1", bed_label="12")


def run_until(escalator: Escalator, clock: FakeClock, seconds: float) -> list[tuple[float, list]]:
    """Tick once a second up to ``seconds``; (elapsed, roles) of every escalation."""
    steps = []
    while (clock() - T0).total_seconds() < seconds:
        clock.advance(1)
        for event in escalator.tick():
            steps.append(((clock() - T0).total_seconds(), roles(event)))
    return steps


# -- stage 1 --------------------------------------------------------------------------------------

def test_stage_one_asks_the_patient(escalator: Escalator) -> None:
    [asked] = start(escalator)
    assert asked.kind is TransitionKind.PATIENT_ASKED
    assert [(n.role, n.channel) for n in asked.notifications] == [
        (Role.PATIENT, Channel.DEVICE), (Role.PATIENT, Channel.STATION)
    ]
    assert asked.notifications[0].reason == "ask"
    assert asked.notifications[0].message == "Heart rate high: 150 /min"
    assert asked.chain.stage is ChainStage.ASKING_PATIENT
    assert asked.chain.due_at == T0 + timedelta(minutes=2)


def test_alarms_below_the_level_do_not_escalate(clock: FakeClock) -> None:
    default = Escalator(clock=clock)  # MEDIUM and above
    assert start(default, Priority.LOW) == []
    assert len(start(default, Priority.MEDIUM)) == 1


# -- no answer: up to EMS -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("priority", "minutes"), [(Priority.HIGH, 2), (Priority.MEDIUM, 5), (Priority.LOW, 15)]
)
def test_no_answer_climbs_to_ems_at_the_priority_timeout(
    escalator: Escalator, clock: FakeClock, priority: Priority, minutes: int
) -> None:
    start(escalator, priority)
    step = minutes * 60
    assert run_until(escalator, clock, 4 * step) == [
        (step, ["nurse"]), (2 * step, ["doctor"]), (3 * step, ["ems"])
    ]
    assert escalator.chain(KEY).due_at is None  # type: ignore[union-attr]
    assert run_until(escalator, clock, 10 * step) == []


def test_escalation_events_say_why_and_when(escalator: Escalator, clock: FakeClock) -> None:
    start(escalator)
    clock.advance(120)
    [nurse] = escalator.tick()
    assert nurse.kind is TransitionKind.ESCALATED
    assert (nurse.actor, nurse.origin, nurse.at) == ("system", "engine", clock())
    assert nurse.details["reason"] == "no_answer"
    assert nurse.details["stage"] == ["asking_patient", "awaiting_acknowledgement"]
    assert [(n.role, n.channel, n.reason) for n in nurse.notifications] == [
        (Role.NURSE, Channel.STATION, "no_answer"), (Role.NURSE, Channel.EMAIL, "no_answer")
    ]
    clock.advance(120)
    [doctor] = escalator.tick()
    assert doctor.details["reason"] == "no_acknowledgement"
    assert {n.channel for n in doctor.notifications} == {Channel.EMAIL, Channel.WEBHOOK}


# -- each answer ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("answer", "notified", "then"),
    [
        # answered at 60 s; with no clinician ack the chain climbs from the highest rung told
        (PatientAnswer.NURSE, ["nurse"], [(180, ["doctor"]), (300, ["ems"])]),
        (PatientAnswer.DOCTOR, ["doctor"], [(180, ["nurse", "ems"])]),
        (PatientAnswer.EMS, ["ems"], []),
        (PatientAnswer.ALL, ["nurse", "doctor", "ems"], []),
        (PatientAnswer.DECLINED, [], [(180, ["nurse"])]),
    ],
)
def test_each_patient_answer(
    escalator: Escalator, clock: FakeClock, answer: PatientAnswer, notified: list, then: list
) -> None:
    start(escalator)
    clock.advance(60)
    [answered] = escalator.answer(KEY, answer, actor="nurse.kim", origin=STATION)
    assert answered.kind is TransitionKind.PATIENT_ANSWERED
    assert (answered.actor, answered.origin) == ("nurse.kim", STATION)
    assert answered.details["answer"] == answer.value
    assert roles(answered) == notified
    assert all(n.reason == "patient_request" for n in answered.notifications)
    chain = answered.chain
    assert chain.answer is answer and chain.answered_at == clock()
    expected_stage = (
        ChainStage.DECLINED if answer is PatientAnswer.DECLINED else ChainStage.AWAITING_ACK
    )
    assert chain.stage is expected_stage
    assert run_until(escalator, clock, 1800) == then


def test_answer_from_the_bedside_device_with_the_seed_action_names(
    escalator: Escalator,
) -> None:
    start(escalator)
    [answered] = escalator.answer(KEY, "approve_doctor", actor="DEV1", origin="rest:DEV1")
    assert answered.chain.answer is PatientAnswer.DOCTOR and answered.origin == "rest:DEV1"
    assert PatientAnswer.parse("decline") is PatientAnswer.DECLINED
    with pytest.raises(AlarmActionError):
        PatientAnswer.parse("maybe")


def test_declined_with_no_cap_stops_calling(clock: FakeClock) -> None:
    escalator = Escalator(EscalationPolicy(declined_cap=None), clock=clock)
    start(escalator)
    escalator.answer(KEY, PatientAnswer.DECLINED, actor="kim", origin=STATION)
    assert escalator.chain(KEY).due_at is None  # type: ignore[union-attr]
    assert run_until(escalator, clock, 3600) == []


# -- the end of a chain ---------------------------------------------------------------------------

def test_acknowledgement_mid_chain_ends_it(escalator: Escalator, clock: FakeClock) -> None:
    start(escalator)
    assert run_until(escalator, clock, 150) == [(120, ["nurse"])]
    [ended] = escalator.end(KEY, reason="acknowledged", actor="nurse.kim", origin=STATION)
    assert ended.kind is TransitionKind.ESCALATION_ENDED
    assert ended.chain.stage is ChainStage.ENDED and ended.chain.ended_by == "nurse.kim"
    assert escalator.chain(KEY) is None
    assert run_until(escalator, clock, 3600) == []
    with pytest.raises(UnknownAlarm):
        escalator.answer(KEY, "doctor", actor="kim", origin=STATION)


# -- restart --------------------------------------------------------------------------------------

def test_chain_state_round_trips_as_json(escalator: Escalator, clock: FakeClock) -> None:
    start(escalator)
    escalator.answer(KEY, "nurse", actor="kim", origin=STATION)
    chain = escalator.chain(KEY)
    assert chain is not None
    assert ChainState.from_dict(json.loads(json.dumps(chain.to_dict()))) == chain


def test_restart_mid_chain_resumes_with_the_remaining_time(
    escalator: Escalator, clock: FakeClock
) -> None:
    start(escalator)
    clock.advance(90)
    saved = json.dumps([c.to_dict() for c in escalator.snapshot()])
    clock.advance(10)  # the station is down for 10 s

    revived = Escalator(EscalationPolicy(min_priority=Priority.LOW), clock=clock)
    revived.restore(ChainState.from_dict(d) for d in json.loads(saved))
    assert revived.chain(KEY).remaining(clock()) == timedelta(seconds=20)  # type: ignore[union-attr]
    assert run_until(revived, clock, 400) == [(120, ["nurse"]), (240, ["doctor"]), (360, ["ems"])]


def test_steps_due_while_the_station_was_down_are_taken_in_order(
    escalator: Escalator, clock: FakeClock
) -> None:
    start(escalator)
    saved = escalator.snapshot()
    clock.advance(250)  # down past the nurse (120 s) and doctor (240 s) steps
    revived = Escalator(EscalationPolicy(min_priority=Priority.LOW), clock=clock)
    revived.restore(saved)
    events = revived.tick()
    assert [roles(e) for e in events] == [["nurse"], ["doctor"]]
    assert [e.details["scheduled_at"] for e in events] == [
        (T0 + timedelta(seconds=120)).isoformat(), (T0 + timedelta(seconds=240)).isoformat()
    ]
    assert revived.chain(KEY).due_at == T0 + timedelta(seconds=360)  # type: ignore[union-attr]


# -- through the engine ---------------------------------------------------------------------------

NO_NOISE = AlarmPolicy(news2=None, technical=TechnicalPolicy(no_data_after={}))


def test_engine_raises_asks_escalates_and_ends_on_acknowledgement() -> None:
    ward = Ward(policy=NO_NOISE)
    events = ward.send(heart_rate=150)
    assert kinds(events) == ["raised", "patient_asked"]
    assert events[1].escalation is not None and events[1].alarm.key == KEY
    ward.engine.assign_id(KEY, 12)
    [nurse] = ward.advance(120)
    assert nurse.kind is TransitionKind.ESCALATED and roles(nurse) == ["nurse"]
    assert all(n.alarm_id == 12 and n.bed_label == "12" for n in nurse.notifications)
    events = ward.engine.acknowledge(12, actor="nurse.kim", origin=STATION)
    assert kinds(events) == ["acknowledged", "escalation_ended"]
    assert events[1].details["reason"] == "acknowledged" and events[1].actor == "nurse.kim"
    assert ward.advance(600) == []


def test_engine_answer_by_nurse_at_station_and_by_device() -> None:
    ward = Ward(policy=NO_NOISE)
    ward.send(heart_rate=150)
    ward.clock.advance(30)
    [answered] = ward.engine.record_patient_answer(KEY, "doctor", actor="DEV1",
                                                   origin="rest:DEV1")
    assert roles(answered) == ["doctor"] and answered.alarm.key == KEY
    with pytest.raises(AlarmActionError, match="device"):
        ward.engine.acknowledge(KEY, actor="DEV1", origin="rest:DEV1")
    [more] = ward.engine.record_patient_answer(KEY, PatientAnswer.ALL, actor="nurse.kim",
                                               origin=STATION)
    assert roles(more) == ["nurse", "ems"]  # the doctor was already told


def test_a_resolved_alarm_ends_its_chain() -> None:
    ward = Ward(policy=NO_NOISE)
    ward.send(heart_rate=120)  # MEDIUM, non-latching
    events = ward.send(heart_rate=80)
    assert kinds(events) == ["resolved", "escalation_ended"]
    assert events[1].details["reason"] == "alarm resolved"
    assert ward.advance(3600) == []


def test_a_latched_alarm_keeps_escalating_until_acknowledged() -> None:
    ward = Ward(policy=NO_NOISE)
    ward.send(heart_rate=150)
    assert kinds(ward.send(heart_rate=80)) == ["latched"]
    assert [roles(t) for t in ward.advance(120)] == [["nurse"]]


def test_a_rising_priority_shortens_the_wait() -> None:
    ward = Ward(policy=NO_NOISE)
    ward.send(heart_rate=120)  # MEDIUM: due at 5 min
    ward.clock.advance(60)
    [rise] = ward.send(heart_rate=140)  # HIGH at 60 s: due at 60 + 120 = 180 s
    assert rise.kind is TransitionKind.PRIORITY_RAISED
    assert rise.escalation is not None
    assert rise.escalation.due_at == T0 + timedelta(seconds=180)
    assert ward.advance(119) == []
    assert [roles(t) for t in ward.advance(1)] == [["nurse"]]


def test_manual_escalation_of_an_alarm_below_the_level() -> None:
    ward = Ward(policy=NO_NOISE)
    [low] = ward.send(respiratory_rate=11)  # adult-ward LOW: no chain
    assert low.kind is TransitionKind.RAISED
    [manual] = ward.engine.escalate(low.alarm.key, ["doctor"], actor="nurse.kim", origin="cli")
    assert manual.kind is TransitionKind.ESCALATED and manual.details["reason"] == "manual"
    assert roles(manual) == ["doctor"] and manual.actor == "nurse.kim"
    # Unacknowledged, it climbs from the doctor after LOW's 15 min.
    assert [roles(t) for t in ward.advance(900)] == [["nurse", "ems"]]


def test_manual_escalation_refuses_unknown_roles_and_devices() -> None:
    ward = Ward(policy=NO_NOISE)
    ward.send(heart_rate=150)
    with pytest.raises(AlarmActionError, match="role"):
        ward.engine.escalate(KEY, ["janitor"], actor="kim", origin="cli")
    with pytest.raises(AlarmActionError, match="device"):
        ward.engine.escalate(KEY, ["doctor"], actor="DEV1", origin="rest:DEV1")


def test_technical_alarms_do_not_ask_the_patient() -> None:
    ward = Ward(policy=AlarmPolicy(news2=None))
    ward.engine.report_input("mqtt", up=False)
    assert kinds(ward.advance(31)) == ["raised"]


def test_engine_restart_mid_chain_resumes_from_the_stored_state() -> None:
    ward = Ward(policy=NO_NOISE)
    ward.send(heart_rate=150)
    ward.clock.advance(90)
    saved = json.dumps(ward.engine.snapshot().to_dict())
    ward.clock.advance(10)

    engine = AlarmEngine("adult-ward", clock=ward.clock, policy=NO_NOISE)
    engine.restore(EngineSnapshot.from_dict(json.loads(saved)))
    assert engine.escalation(KEY).remaining(ward.now()) == timedelta(seconds=20)  # type: ignore[union-attr]
    ward.clock.advance(19)
    assert engine.tick() == []
    ward.clock.advance(1)
    [nurse] = engine.tick()
    assert roles(nurse) == ["nurse"] and nurse.at == T0 + timedelta(seconds=120)
    assert kinds(engine.acknowledge(KEY, actor="kim", origin="cli")) == [
        "acknowledged", "escalation_ended"
    ]


def test_escalation_can_be_disabled() -> None:
    ward = Ward(policy=AlarmPolicy(escalation=None, news2=None))
    assert kinds(ward.send(heart_rate=150)) == ["raised"]
    with pytest.raises(AlarmActionError, match="disabled"):
        ward.engine.record_patient_answer(KEY, "doctor", actor="kim", origin="cli")


def test_the_values_built_on_the_hot_paths_have_every_field_and_equal_keyword_built_ones(
) -> None:
    # The engine and the escalator build their named tuples with tuple.__new__ from every
    # value in order (no __new__ frame); a value missing or out of place would show here.
    ward = Ward(policy=NO_NOISE)
    events = ward.send(heart_rate=120)  # MEDIUM: not latching
    events += ward.engine.record_patient_answer(KEY, "nurse", actor="Patient",
                                                origin="rest:DEV1")
    events += ward.advance(600)
    events += ward.send(heart_rate=72)
    assert kinds(events) == ["raised", "patient_asked", "patient_answered", "escalated",
                             "escalated", "resolved", "escalation_ended"]
    values = []
    for event in events:
        values += [event, event.alarm, *event.notifications]
        if event.escalation is not None:
            values.append(event.escalation)
    for value in values:
        rebuilt = type(value)(**value._asdict())
        assert len(value) == len(type(value)._fields) and value == rebuilt
        assert value.to_dict() == rebuilt.to_dict()
