"""The engine's cheaper calls on its busiest paths: they must do what the slower ones did.

A held reading of an open alarm on a device's lane is counted without ``_evaluate``; the raise
and resolve paths call the escalator and the record by position; a priority hashes by identity.
"""

from __future__ import annotations

from datetime import timedelta

from tests.alarms.support import T0, Ward
from tests.alarms.test_fast_path import QUIET, slow_path
from vitalstation.alarms import AlarmKind, Escalator, Priority, TransitionKind
from vitalstation.alarms.state import AlarmRecord
from vitalstation.domain.clock import FakeClock


def _held_readings(ward: Ward) -> list[tuple]:
    """An alarm raised at 118, then readings no worse (held), one worse, then calm."""
    seen = []
    for value in (118, 117, 118, 112, 125, 119, 72):
        ward.clock.advance(1)
        made = ward.send(heart_rate=value)
        alarm = ward.engine.alarm("bed:12|limit.heart_rate.high")
        seen.append((
            [t.to_dict() for t in made],
            None if alarm is None else (alarm.update_count, alarm.value, alarm.message,
                                        alarm.measured_at, alarm.worst_value,
                                        alarm.current_priority),
        ))
    return seen


def test_an_open_alarms_held_readings_on_a_lane_count_as_on_the_full_path() -> None:
    ward = Ward(policy=QUIET)
    ward.send(heart_rate=72)  # the device's lane
    fast = _held_readings(ward)
    with slow_path():
        slow = _held_readings(Ward(policy=QUIET))
    assert fast == slow
    # Held: no event, the count and the latest value and message move on.
    assert fast[1][0] == [] and fast[1][1][0] == 1 and fast[1][1][1] == 117
    assert "117" in fast[1][1][2] and fast[1][1][3] == T0 + timedelta(seconds=2)
    assert [e["event"] for e in fast[4][0]] == ["updated"]  # 125 is worse: an event
    assert fast[5][0] == [] and fast[5][1][0] == 5 and fast[5][1][4] == 125


def test_priorities_hash_by_identity_and_find_their_entries() -> None:
    assert Priority.__hash__ is object.__hash__  # not Enum's Python-level __hash__
    table = {p: p.value for p in Priority}
    assert [table[Priority(v)] for v in ("low", "medium", "high")] == ["low", "medium", "high"]
    assert len({Priority.LOW, Priority.MEDIUM, Priority.HIGH, Priority("high")}) == 3


def test_escalator_steps_by_position_equal_the_same_by_keyword() -> None:
    clock = FakeClock(T0)
    by_name, by_position = Escalator(clock=clock), Escalator(clock=clock)
    asked = by_name.start("k", Priority.HIGH, message="m", patient_id="P1", bed_label="12",
                          now=T0)
    assert by_position.start("k", Priority.HIGH, "m", "P1", "12", T0) == asked
    later = T0 + timedelta(seconds=5)
    ended = by_name.end("k", reason="alarm resolved", now=later)
    assert by_position.end("k", "alarm resolved", "system", "engine", later) == ended
    assert ended[0].kind is TransitionKind.ESCALATION_ENDED


def test_condition_ended_by_position_equals_the_same_by_keyword() -> None:
    def record() -> AlarmRecord:
        return AlarmRecord("bed:12|limit.heart_rate.high", AlarmKind.LIMIT, "heart_rate.high",
                           Priority.MEDIUM, T0, "m", False, True, "12", "P1", "DEV1", None,
                           118.0, 110.0, T0)

    later = T0 + timedelta(seconds=3)
    by_name = record().condition_ended(later, reason="condition ended", value=72.0)
    assert record().condition_ended(later, "condition ended", 72.0) == by_name
    assert by_name[0].kind is TransitionKind.RESOLVED and by_name[0].alarm.value == 72.0
