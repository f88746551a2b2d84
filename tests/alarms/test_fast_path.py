"""The engine's fast path for calm readings (inside every limit, nothing pending, no alarm open
on the vital): it must never miss or delay an alarm, nor skip what a calm reading still changes
(the latest values, NEWS2, the device's last-heard time).

Each case is also checked against the engine with the fast path switched off (an empty calm
band sends every reading through the full evaluation), and a generated ward compares the two
reading by reading.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Iterator
from datetime import timedelta
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.alarms.support import T0, Ward, kinds, measurement
from vitalstation.alarms import (
    AlarmPolicy,
    AlarmProfile,
    AttributedReading,
    Attribution,
    LimitOverride,
    Priority,
    TechnicalPolicy,
    TransitionKind,
    VitalLimits,
    above,
    below,
    engine,
)
from vitalstation.domain.vitals import VitalKind

QUIET = AlarmPolicy(escalation=None, news2=None, technical=TechnicalPolicy(no_data_after={}))


def _no_calm_band(limits: VitalLimits | None) -> tuple[float, float]:
    return math.inf, -math.inf  # empty: no reading is calm, every one is fully evaluated


@contextlib.contextmanager
def slow_path() -> Iterator[None]:
    """The engine without its fast paths (the reference): no calm band, no device lanes."""
    with mock.patch.object(engine, "_calm_band", _no_calm_band), \
            mock.patch.object(engine, "_FAST_LANES", False):
        yield


def both(scenario: Callable[[Ward], list]) -> list:
    """Run ``scenario`` on a fresh ward with and without the fast path; the transitions (as
    stored and printed) must be the same. Returns the fast path's."""
    fast = [[t.to_dict() for t in step] for step in scenario(Ward(policy=QUIET))]
    with slow_path():
        slow = [[t.to_dict() for t in step] for step in scenario(Ward(policy=QUIET))]
    assert fast == slow
    return fast


def test_a_breach_right_after_many_calm_readings_raises_at_once() -> None:
    ward = Ward(policy=QUIET)
    for _ in range(1000):
        ward.clock.advance(1)
        assert ward.send(heart_rate=72) == []
    ward.clock.advance(1)
    [raised] = ward.send(heart_rate=111)  # adult-ward: > 110 MEDIUM, no delay
    assert raised.kind is TransitionKind.RAISED and raised.alarm.priority is Priority.MEDIUM
    assert raised.alarm.measured_at == ward.now() and raised.alarm.value == 111


def test_every_side_and_band_after_calm_readings_is_the_full_evaluation() -> None:
    def scenario(ward: Ward) -> list:
        steps = []
        for value in (72, 111, 72, 131, 72, 49, 72, 39, 72, 40, 72, 130, 72, 110, 72, 50):
            ward.clock.advance(1)
            steps.append(ward.send(heart_rate=value))
        return steps

    steps = both(scenario)
    # Between breaches the calm 72 resolves (medium) or latches (high); 40 is on an inclusive
    # limit (breached), 110 and 50 on exclusive ones (not), and the latched alarms take 40 and
    # 130 as their condition's return.
    assert [[(e["event"], e["alarm"]["condition"]) for e in step] for step in steps] == [
        [], [("raised", "heart_rate.high")], [("resolved", "heart_rate.high")],
        [("raised", "heart_rate.high")], [("latched", "heart_rate.high")],
        [("raised", "heart_rate.low")], [("resolved", "heart_rate.low")],
        [("raised", "heart_rate.low")], [("latched", "heart_rate.low")],
        [("updated", "heart_rate.low")], [("latched", "heart_rate.low")],
        [("updated", "heart_rate.high")], [("latched", "heart_rate.high")], [], [], [],
    ]


def test_a_value_on_an_inclusive_limit_raises() -> None:
    ward = Ward(policy=QUIET)
    for _ in range(10):
        ward.clock.advance(1)
        ward.send(heart_rate=60)
    ward.clock.advance(1)
    [raised] = ward.send(heart_rate=40)  # <= 40 HIGH (inclusive)
    assert raised.alarm.priority is Priority.HIGH


def test_hysteresis_holds_an_open_alarm_for_readings_inside_the_calm_band() -> None:
    # adult-ward HR > 110 MEDIUM with hysteresis 2: 109 is inside every limit (the calm band)
    # but the open alarm must hold until 108.
    def scenario(ward: Ward) -> list:
        steps = [ward.send(heart_rate=72)]
        for value in (115, 109, 109.5, 108.5, 108, 109, 72):
            ward.clock.advance(1)
            steps.append(ward.send(heart_rate=value))
        return steps

    steps = both(scenario)
    assert [[e["event"] for e in step] for step in steps] == [
        [], ["raised"], [], [], [], ["resolved"], [], [],
    ]


def test_a_pending_breach_is_cleared_by_a_calm_reading_and_restarts_its_delay() -> None:
    # adult-ward SpO2 < 90 MEDIUM with a 15 s delay.
    def scenario(ward: Ward) -> list:
        steps = [ward.send(oxygen_saturation=97)]
        ward.clock.advance(1)
        steps.append(ward.send(oxygen_saturation=88))  # pending from now
        ward.clock.advance(10)
        steps.append(ward.send(oxygen_saturation=96))  # calm: the pending breach is dropped
        steps.append(ward.advance(10))  # 20 s after onset: nothing
        steps.append(ward.send(oxygen_saturation=88))  # pending again, from now
        steps.append(ward.advance(14))
        steps.append(ward.advance(1))  # 15 s of the new breach: raised
        return steps

    steps = both(scenario)
    assert [[e["event"] for e in step] for step in steps] == [
        [], [], [], [], [], [], ["raised"],
    ]
    assert steps[-1][0]["details"]["delayed_s"] == 15


def test_calm_readings_keep_the_latest_values_and_rescore_news2() -> None:
    # Every value inside its limit alarm's band, yet NEWS2 6 (medium): on oxygen (2), SpO2 92
    # (2), HR 105 (1), systolic 105 (1); then calm values bring it back to 2 and it resolves.
    policy = AlarmPolicy(escalation=None, technical=TechnicalPolicy(no_data_after={}))
    ward = Ward(policy=policy)
    ward.engine.enter_news2("P1", on_oxygen=True)
    first = ward.send(
        measurement("respiratory_rate", 16), measurement("oxygen_saturation", 97),
        measurement("blood_pressure_systolic", 120), measurement("heart_rate", 70),
        measurement("temperature", 37.0),
    )
    assert first == []
    assert ward.engine.news2("P1").total == 2  # type: ignore[union-attr]
    ward.clock.advance(60)
    raised = ward.send(
        measurement("respiratory_rate", 16), measurement("blood_pressure_systolic", 105),
        measurement("heart_rate", 105), measurement("temperature", 37.0),
        measurement("oxygen_saturation", 92),
    )
    assert [(t.kind, t.alarm.kind.value, t.alarm.priority) for t in raised] == [
        (TransitionKind.RAISED, "news2", Priority.MEDIUM)
    ]
    assert ward.engine.news2("P1").total == 6  # type: ignore[union-attr]
    ward.clock.advance(60)
    assert kinds(ward.send(heart_rate=70, oxygen_saturation=97,
                           blood_pressure_systolic=120)) == ["resolved"]
    assert ward.engine.news2("P1").total == 2  # type: ignore[union-attr]


def test_a_new_override_applies_to_the_next_calm_reading() -> None:
    ward = Ward(policy=QUIET)
    for _ in range(5):
        ward.clock.advance(1)
        assert ward.send(heart_rate=95) == []
    strict = VitalLimits(VitalKind.HEART_RATE, (below(50, Priority.MEDIUM),
                                                above(90, Priority.MEDIUM)))
    override = LimitOverride("P1", strict, author="dr.jones", reason="post-op", at=T0)
    assert kinds(ward.engine.set_override(override)) == ["raised"]  # the latest value, 95
    ward.clock.advance(1)
    assert kinds(ward.send(heart_rate=89)) == ["resolved"]
    ward.clock.advance(1)
    assert kinds(ward.send(heart_rate=91)) == ["raised"]  # in the profile's band, not this one
    ward.engine.remove_override("P1", VitalKind.HEART_RATE)
    ward.clock.advance(1)
    assert ward.send(heart_rate=100) == []


def test_a_new_profile_applies_to_the_next_calm_reading() -> None:
    ward = Ward(policy=QUIET)
    for _ in range(5):
        ward.clock.advance(1)
        assert ward.send(heart_rate=95) == []
    tight = AlarmProfile("tight", "HR above 90", {
        VitalKind.HEART_RATE: VitalLimits(VitalKind.HEART_RATE, (above(90, Priority.LOW),)),
    })
    ward.engine.profile = tight  # what a saved Settings > Alarms page does
    ward.clock.advance(1)
    assert kinds(ward.send(heart_rate=95)) == ["raised"]


def test_a_calm_reading_still_ends_a_technical_alarm_and_counts_as_heard() -> None:
    ward = Ward(policy=AlarmPolicy(escalation=None, news2=None))
    ward.send(heart_rate=72, battery=10)
    assert [a.condition for a in ward.engine.active_alarms()] == ["low_battery"]
    assert kinds(ward.send(heart_rate=72, battery=80)) == ["resolved"]
    ward.advance(20)
    assert ward.send(heart_rate=72) == []
    assert ward.advance(20) == []  # heard 20 s ago: not silent yet


def test_a_calm_reading_from_an_unknown_device_still_raises_its_technical_alarm() -> None:
    ward = Ward(policy=QUIET)
    events = ward.send(heart_rate=72, device="STRAY", bed=None, patient=None,
                       attribution=Attribution.UNKNOWN_DEVICE)
    assert [t.alarm.condition for t in events] == ["unknown_device"]


# -- a generated ward: the fast path against the full evaluation, reading by reading ----------

VALUES = {
    "heart_rate": [30, 39.9, 40, 45, 49.9, 50, 72, 95, 108, 109, 110, 110.1, 120, 130, 130.1],
    "oxygen_saturation": [80, 84.9, 85, 87, 89.9, 90, 90.5, 91, 97],
    "respiratory_rate": [6, 8, 11, 12, 16, 20, 21, 24, 25],
    "blood_pressure_systolic": [85, 90, 99, 100, 101, 120, 180, 181, 220],
    "temperature": [35.0, 36.0, 36.1, 37.0, 38.05, 38.1, 39.1, 40.0],
}
reading_step = st.tuples(
    st.just("read"),
    st.integers(0, 1),  # which bed
    st.dictionaries(st.sampled_from(sorted(VALUES)), st.integers(0, 14), min_size=1),
    st.sampled_from([0, 0.5, 1, 3, 8, 16]),
)
other_step = st.one_of(
    st.tuples(st.just("tick"), st.sampled_from([1, 5, 15, 40])),
    st.tuples(st.just("ack")),
    st.tuples(st.just("override"), st.booleans()),
)
scenarios = st.lists(st.one_of(reading_step, reading_step, reading_step, other_step),
                     min_size=1, max_size=60)
STRICT_HR = VitalLimits(VitalKind.HEART_RATE, (below(55, Priority.LOW),
                                               above(100, Priority.MEDIUM)), hysteresis=3)


def _run(steps: list[tuple]) -> list[list[dict]]:
    ward = Ward(policy=AlarmPolicy(technical=TechnicalPolicy(
        no_data_after={VitalKind.HEART_RATE: timedelta(seconds=30)})))
    out: list[list[dict]] = []
    for step in steps:
        if step[0] == "read":
            _, bed, vitals, dt = step
            ward.clock.advance(dt)
            values = {name: VALUES[name][index % len(VALUES[name])]
                      for name, index in vitals.items()}
            reading = AttributedReading(
                device_id=f"DEV{bed}", measured_at=ward.now(), received_at=ward.now(),
                measurements=tuple(measurement(k, v) for k, v in sorted(values.items())),
                attribution=Attribution.PATIENT, patient_id=f"P{bed}", bed_label=f"{bed}",
            )
            events = ward.engine.process([reading])
        elif step[0] == "tick":
            events = ward.advance(step[1])
        elif step[0] == "ack":
            events = []
            for alarm in ward.engine.active_alarms():
                events += ward.engine.acknowledge(alarm.key, actor="Nurse", origin="cli")
        elif step[1]:
            events = ward.engine.set_override(
                LimitOverride("P0", STRICT_HR, author="dr", reason="test", at=ward.now()))
        else:
            _, events = ward.engine.remove_override("P0", VitalKind.HEART_RATE)
        out.append([e.to_dict() for e in events])
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios)
def test_the_fast_path_gives_exactly_the_full_evaluations_transitions(steps) -> None:
    fast = _run(steps)
    with slow_path():
        slow = _run(steps)
    assert fast == slow


def test_the_calm_band_is_open_at_every_limit() -> None:
    limits = VitalLimits(VitalKind.HEART_RATE, (
        below(40, Priority.HIGH, inclusive=True), below(50, Priority.MEDIUM),
        above(110, Priority.MEDIUM), above(130, Priority.HIGH, inclusive=True),
    ))
    assert engine._calm_band(limits) == (50, 110)
    assert engine._calm_band(None) == (-math.inf, math.inf)
    only_high = VitalLimits(VitalKind.HEART_RATE, (above(110, Priority.MEDIUM),))
    assert engine._calm_band(only_high) == (-math.inf, 110)


# -- the device lanes: readings that skip the technical checks must be those with nothing to
# check, whatever changes between them (bed, patient, battery, signal, clock, discharge) ------

def _lane_scenario(seed: int, length: int = 60) -> list[tuple]:
    """A seeded ward of two devices: mostly calm and abnormal readings in their own bed, now
    and then a technical condition, a move, an old or early reading, a tick, a discharge."""
    rnd = random.Random(seed)
    steps: list[tuple] = []
    for _ in range(length):
        roll = rnd.random()
        if roll < 0.8:
            vitals = {"heart_rate": rnd.randrange(15)}
            if rnd.random() < 0.3:
                vitals["respiratory_rate"] = rnd.randrange(9)
            if rnd.random() < 0.1:
                vitals[rnd.choice(sorted(VALUES))] = rnd.randrange(15)
            steps.append((
                "read", rnd.randrange(2),
                rnd.choice([None] * 12 + [("P2", "0"), ("P1", "1"), (None, "1"), (None, None)]),
                vitals,
                rnd.choice([None] * 10 + [10, 19.9, 20, 80, 80]),  # battery
                rnd.choice([None] * 10 + [30, 49.9, 50, 90, 90]),  # signal
                rnd.choice([0] * 12 + [-400, 400, 3]),  # s after now: old, ahead
                rnd.choice([0, 0.5, 1, 1, 3, 8, 40]),
                rnd.random() < 0.5,
            ))
        elif roll < 0.9:
            steps.append(("tick", rnd.choice([1, 5, 15, 40])))
        elif roll < 0.95:
            steps.append(("discharge", rnd.choice(["P0", "P1"])))
        elif roll < 0.98:
            steps.append(("forget", rnd.randrange(2)))
        else:
            steps.append(("ack",))
    return steps


def _run_lanes(steps: list[tuple]) -> list[list[dict]]:
    ward = Ward(policy=AlarmPolicy(technical=TechnicalPolicy(no_data_after={
        VitalKind.HEART_RATE: timedelta(seconds=30), VitalKind.SPO2: timedelta(seconds=30)})))
    out: list[list[dict]] = []
    for step in steps:
        if step[0] == "read":
            _, device, where, vitals, battery, signal, ahead, dt, rows = step
            patient, bed = where or (f"P{device}", f"{device}")
            ward.clock.advance(dt)
            values = {name: VALUES[name][index % len(VALUES[name])]
                      for name, index in vitals.items()}
            attribution = (Attribution.PATIENT if patient else Attribution.BED if bed
                           else Attribution.UNASSIGNED)
            reading = AttributedReading(
                device_id=f"DEV{device}", measured_at=ward.now() + timedelta(seconds=ahead),
                received_at=ward.now(),
                measurements=tuple(measurement(k, v) for k, v in sorted(values.items())),
                attribution=attribution, patient_id=patient, bed_label=bed,
                battery_level=battery, signal_quality=signal,
            )
            if rows:  # the service's way: the kinds stored new (here all but temperature)
                kept = tuple(m.kind for m in reading.measurements
                             if m.kind is not VitalKind.TEMPERATURE)
                events = ward.engine.process_readings(
                    [(reading, attribution.value, patient, bed, kept)])
            else:
                events = ward.engine.process([reading])
        elif step[0] == "tick":
            events = ward.advance(step[1])
        elif step[0] == "discharge":
            events = ward.engine.discharge(step[1]).transitions
        elif step[0] == "forget":
            events = ward.engine.forget_device(f"DEV{step[1]}")
        else:
            events = []
            for alarm in ward.engine.active_alarms():
                events += ward.engine.acknowledge(alarm.key, actor="Nurse", origin="cli")
        out.append([e.to_dict() for e in events])
    return out


@pytest.mark.parametrize("seed", range(40))
def test_the_device_lanes_give_exactly_the_full_paths_transitions(seed: int) -> None:
    steps = _lane_scenario(seed)
    fast = _run_lanes(steps)
    with slow_path():
        slow = _run_lanes(steps)
    assert fast == slow


def test_a_calm_reading_on_a_lane_keeps_the_device_heard_and_its_news2_values() -> None:
    ward = Ward(policy=AlarmPolicy(escalation=None, technical=TechnicalPolicy(
        no_data_after={VitalKind.HEART_RATE: timedelta(seconds=30)})))
    ward.send(heart_rate=72)  # the full path: the lane is made
    assert "DEV1" in ward.engine._lanes
    for _ in range(3):
        ward.clock.advance(20)
        assert ward.send(heart_rate=73) == []  # the lane
        assert ward.advance(0) == []  # heard 20 s ago: not silent
    state = ward.engine._news2["P1"]
    assert [(p.value, o.value, o.at) for p, o in state.measured.items()] == [
        ("pulse", 73.0, ward.now())]
    ward.clock.advance(31)
    assert [t.alarm.condition for t in ward.engine.tick()] == ["no_data"]
    assert kinds(ward.send(heart_rate=72)) == ["resolved"]  # the full path again


def test_a_reading_sent_late_keeps_the_later_news2_value_on_both_paths() -> None:
    def kept(ward: Ward) -> list[tuple]:
        ward.send(heart_rate=72)  # the full path: the lane is made
        ward.clock.advance(10)
        ward.send(heart_rate=80)  # the lane
        ward.send(heart_rate=90, measured_at=ward.now() - timedelta(seconds=5))  # late
        state = ward.engine._news2["P1"]
        return [(p.value, o.value, o.at) for p, o in state.measured.items()]

    policy = AlarmPolicy(escalation=None, technical=TechnicalPolicy(no_data_after={}))
    fast = kept(Ward(policy=policy))
    with slow_path():
        slow = kept(Ward(policy=policy))
    assert fast == slow == [("pulse", 80.0, T0 + timedelta(seconds=10))]
