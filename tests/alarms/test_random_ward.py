"""A seeded random ward (tests/alarms/random_ward.py) through the engine with its fast paths
(the device lanes, the calm band, the tracks' count of open alarms) and without them: every
transition, raised count, refusal, open alarm and NEWS2 must be the same, whatever happened in
between (overrides, discharges, restarts from a snapshot, profile changes, pauses, moves).
"""

from __future__ import annotations

import pytest

from tests.alarms.random_ward import run
from tests.alarms.test_fast_path import slow_path
from vitalstation.alarms import AlarmEngine

SEEDS = range(4)
WAYS_SEEDS = range(2)
STEPS = 600


def _open_sides_counted(engine: AlarmEngine) -> None:
    """Each vital track's count of its open limit alarms is the truth (one too many only
    costs a full evaluation, one too few skips an open alarm's update)."""
    for track in engine._tracks.values():
        expected = (track.low_key in engine._open) + (track.high_key in engine._open)
        assert track.open_sides == expected, track.key
        assert engine._track_of_key[track.low_key] is track


@pytest.mark.parametrize("lanes", [False, True], ids=["busy", "lanes"])
@pytest.mark.parametrize("seed", SEEDS)
def test_the_fast_paths_give_exactly_the_full_evaluations_outcome(
    seed: int, lanes: bool
) -> None:
    fast = run(seed, STEPS, after_step=_open_sides_counted, lanes=lanes)
    with slow_path():
        slow = run(seed, STEPS, lanes=lanes)
    assert len(fast) == STEPS + 2
    for index, (got, expected) in enumerate(zip(fast, slow, strict=True)):
        assert got == expected, f"step {index} of seed {seed}"


def _transitions(outcome: list) -> list:
    """The transitions alone (``process`` counts no raised alarms per reading)."""
    return [step[1] if isinstance(step, list) and len(step) == 2 and isinstance(step[0], dict)
            else step for step in outcome]


@pytest.mark.parametrize("seed", WAYS_SEEDS)
def test_the_pipelines_items_rows_and_attributed_readings_give_the_same_transitions(
    seed: int,
) -> None:
    stored = run(seed, STEPS, way="stored", lanes=True)
    assert _transitions(stored) == _transitions(run(seed, STEPS, way="process", lanes=True))
    assert stored == run(seed, STEPS, way="rows", lanes=True)
