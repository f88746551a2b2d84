"""The shortcuts of the raise / update / resolve path against what they stand for.

``AlarmRecord.hold`` (an open alarm's abnormal reading with nothing to report) must leave the
record as ``observe`` does, or refuse and change nothing; ``VitalLimits.still_breached`` must
answer as its limits' ``breached``; the escalator's start and end build their chains field by
field and must equal the keyword-built values they replace.
"""

from __future__ import annotations

import copy
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.alarms.support import T0
from vitalstation.alarms import (
    ChainStage,
    EscalationPolicy,
    Escalator,
    Priority,
    VitalLimits,
    above,
    below,
)
from vitalstation.alarms.limits import Direction, Limit
from vitalstation.alarms.model import AlarmKind, AlarmState, TransitionKind
from vitalstation.alarms.state import AlarmRecord
from vitalstation.domain.clock import FakeClock
from vitalstation.domain.vitals import VitalKind

LATCHING = {Priority.LOW: False, Priority.MEDIUM: False, Priority.HIGH: True}
priorities = st.sampled_from(list(Priority))
values = st.sampled_from([30.0, 45.0, 100.0, 110.0, 111.0, 118.0, 118.5, 130.0, 150.0])


def _record(priority: Priority, value: float, higher_is_worse: bool | None,
            state: AlarmState) -> AlarmRecord:
    return AlarmRecord(
        key="bed:12|limit.heart_rate.high", kind=AlarmKind.LIMIT,
        condition="heart_rate.high", priority=priority, at=T0, message="first",
        latching=LATCHING[priority], higher_is_worse=higher_is_worse, bed_label="12",
        patient_id="P1", device_id="DEV1", vital=VitalKind.HEART_RATE, value=value,
        limit_value=110.0, measured_at=T0, state=state,
    )


def _slots(record: AlarmRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in AlarmRecord.__slots__}


@settings(max_examples=300, deadline=None)
@given(priority=priorities, first=values, worst=st.none() | values,
       higher_is_worse=st.none() | st.booleans(), present=st.booleans(),
       state=st.sampled_from([AlarmState.ACTIVE, AlarmState.AUDIO_PAUSED,
                              AlarmState.ACKNOWLEDGED]),
       value=values, priority_now=st.none() | priorities,
       measured=st.booleans(), message=st.none() | st.just("now"))
def test_hold_leaves_the_record_as_observe_does_or_changes_nothing(
    priority: Priority, first: float, worst: float | None, higher_is_worse: bool | None,
    present: bool, state: AlarmState, value: float, priority_now: Priority | None,
    measured: bool, message: str | None,
) -> None:
    record = _record(priority, first, higher_is_worse, state)
    record.worst_value = worst
    record.condition_present = present
    at = T0 + timedelta(seconds=5)
    measured_at = at if measured else None
    observed = copy.copy(record)
    events = observed.observe(value, priority_now=priority_now, at=at, latching_for=LATCHING,
                              limit_value=130.0, measured_at=measured_at, message=message)
    before = _slots(record)
    if record.hold(value, priority_now, at, measured_at, message):
        assert events == []
        assert _slots(record) == _slots(observed)
    else:
        assert _slots(record) == before
    # Every reading observe reports on is refused by hold.
    if events:
        assert _slots(record) == before


def test_hold_counts_a_plain_update_and_refuses_a_worse_value_or_a_higher_band() -> None:
    record = _record(Priority.MEDIUM, 118.0, True, AlarmState.ACTIVE)
    later = T0 + timedelta(seconds=1)
    assert record.hold(117.0, Priority.MEDIUM, later, later, "again")
    assert (record.update_count, record.value, record.worst_value, record.message,
            record.updated_at) == (1, 117.0, 118.0, "again", later)
    assert not record.hold(119.0, Priority.MEDIUM, later, later, "worse")
    assert not record.hold(117.0, Priority.HIGH, later, later, "higher")
    record.condition_present = False
    assert not record.hold(117.0, None, later, later, None)
    assert record.update_count == 1 and record.value == 117.0


def _reference_still_breached(limits: VitalLimits, direction: Direction, value: float) -> bool:
    probe = value + limits.hysteresis if direction is Direction.HIGH else value - limits.hysteresis
    return any(lim.direction is direction and lim.breached(probe) for lim in limits.limits)


@settings(max_examples=300, deadline=None)
@given(low=st.sampled_from([40.0, 50.0]), high=st.sampled_from([110.0, 130.0]),
       inclusive=st.booleans(), hysteresis=st.sampled_from([0.0, 1.0, 2.5]),
       direction=st.sampled_from(list(Direction)),
       value=st.sampled_from([38.0, 40.0, 41.0, 42.5, 50.0, 51.0, 75.0, 107.5, 109.0, 110.0,
                              111.0, 129.0, 130.0, 131.0]))
def test_still_breached_answers_as_the_limits_do(
    low: float, high: float, inclusive: bool, hysteresis: float, direction: Direction,
    value: float,
) -> None:
    limits = VitalLimits(VitalKind.HEART_RATE, (
        below(low, Priority.MEDIUM, inclusive=inclusive), above(high, Priority.MEDIUM),
        above(high + 20, Priority.HIGH, inclusive=not inclusive),
        Limit(Direction.LOW, low - 10, Priority.HIGH, inclusive),
    ), hysteresis=hysteresis)
    assert limits.still_breached(direction, value) == _reference_still_breached(
        limits, direction, value
    )


def test_the_escalators_start_and_end_build_the_chains_they_stand_for() -> None:
    clock = FakeClock(T0)
    escalator = Escalator(EscalationPolicy(), clock=clock)
    assert escalator.start("k", Priority.LOW, message="m") == []  # below the level
    [asked] = escalator.start("k", Priority.MEDIUM, message="m", patient_id="P1",
                              bed_label="12")
    chain = asked.chain
    assert (asked.kind, asked.at, asked.actor, asked.origin) == (
        TransitionKind.PATIENT_ASKED, T0, "system", "engine")
    assert chain.stage is ChainStage.ASKING_PATIENT and chain.started_at == T0
    assert chain.due_at == T0 + timedelta(minutes=5)
    assert asked.details == {"stage": [None, "asking_patient"],
                             "due_at": (T0 + timedelta(minutes=5)).isoformat()}
    assert [(n.role.value, n.channel.value, n.reason) for n in asked.notifications] == [
        ("patient", "device", "ask"), ("patient", "station", "ask")]
    assert escalator.start("k", Priority.HIGH, message="again") == []  # one chain per alarm
    clock.advance(timedelta(seconds=30))
    [ended] = escalator.end("k", reason="alarm resolved", actor="kim", origin="cli")
    assert ended.chain == chain._replace(
        stage=ChainStage.ENDED, due_at=None, ended_at=T0 + timedelta(seconds=30),
        end_reason="alarm resolved", ended_by="kim",
    )
    assert (ended.kind, ended.at, ended.actor, ended.origin, ended.notifications) == (
        TransitionKind.ESCALATION_ENDED, T0 + timedelta(seconds=30), "kim", "cli", ())
    assert ended.details == {"reason": "alarm resolved", "stage": ["asking_patient", "ended"]}
    assert escalator.chain("k") is None and escalator.end("k", reason="again") == []


def test_chains_started_at_one_time_take_their_own_priority_and_policy_timeouts() -> None:
    # The escalator reuses the due time (and its text) of the last chain started at the same
    # moment with the same priority and policy; any other chain works out its own.
    clock = FakeClock(T0)
    escalator = Escalator(EscalationPolicy(min_priority=Priority.LOW), clock=clock)
    now = clock()

    def due(key: str, priority: Priority) -> tuple[object, object]:
        [asked] = escalator.start(key, priority, message="m", now=now)
        assert asked.details["due_at"] == asked.chain.due_at.isoformat()
        return asked.chain.due_at, asked.details["due_at"]

    assert due("a", Priority.MEDIUM)[0] == T0 + timedelta(minutes=5)
    assert due("b", Priority.MEDIUM)[0] == T0 + timedelta(minutes=5)
    assert due("c", Priority.HIGH)[0] == T0 + timedelta(minutes=2)
    assert due("d", Priority.MEDIUM)[0] == T0 + timedelta(minutes=5)
    escalator.policy = EscalationPolicy(min_priority=Priority.LOW, answer_timeout={
        Priority.HIGH: timedelta(seconds=30), Priority.MEDIUM: timedelta(seconds=90),
        Priority.LOW: timedelta(minutes=10),
    })  # as AlarmEngine.reconfigure does
    assert due("e", Priority.MEDIUM)[0] == T0 + timedelta(seconds=90)
    later = T0 + timedelta(seconds=1)
    [asked] = escalator.start("f", Priority.MEDIUM, message="m", now=later)
    assert asked.chain.due_at == later + timedelta(seconds=90)
    assert asked.details["due_at"] == (later + timedelta(seconds=90)).isoformat()
