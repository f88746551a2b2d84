"""Several submissions committed in one batch: each gets its own results, in its own order.

The pipeline handles a batch's readings as whole lists where it can; these cases mix valid,
rejected and duplicate readings across submissions so that every result, alarm count and
counter must still land on its own reading.
"""

from __future__ import annotations

from datetime import timedelta

from tests.factories import T0, GatedWriter, make_reading
from vitalstation.domain.clock import FakeClock
from vitalstation.pipeline.core import Pipeline
from vitalstation.pipeline.types import Outcome, StoredReading
from vitalstation.storage.store import Store

NOW = T0 + timedelta(minutes=1)
FUTURE = 3600  # seconds after T0: an hour ahead of NOW, refused


def test_mixed_submissions_in_one_batch_each_get_their_results(store: Store) -> None:
    writer = GatedWriter(store)
    pipeline = Pipeline(writer, clock=FakeClock(NOW))
    seen: list[list[StoredReading]] = []

    def alarms(stored):
        seen.append(list(stored))
        # Each new heart rate of 150 raised one alarm (indexes into this batch's list).
        return {i: 1 for i, s in enumerate(stored) if s.reading.measurements[0].value == 150.0}

    pipeline.subscribe(alarms)
    pipeline.start()
    try:
        held = pipeline.submit([make_reading(at=100)])  # holds the writer: the rest queue up
        assert writer.entered.wait(5)
        first = pipeline.submit([make_reading(at=1), make_reading(at=2, heart_rate=150)])
        mixed = pipeline.submit([
            make_reading(at=3),
            make_reading(at=FUTURE),  # rejected by the validation
            make_reading(at=1),  # the first submission's reading again: a duplicate
            make_reading("", at=4),  # rejected: no device id
            make_reading(at=5, heart_rate=150),
        ])
        refused = pipeline.submit([make_reading(at=FUTURE + 1)])
        last = pipeline.submit([make_reading(at=6)])
        writer.gate.set()
        assert held.wait(5)[0].outcome is Outcome.STORED
        first_results = first.wait(5)
        mixed_results = mixed.wait(5)
        refused_results = refused.wait(5)
        last_results = last.wait(5)
    finally:
        writer.gate.set()
        pipeline.stop()
    assert [r.outcome for r in first_results] == [Outcome.STORED, Outcome.STORED]
    assert [r.alarms_raised for r in first_results] == [0, 1]
    assert [r.outcome for r in mixed_results] == [
        Outcome.STORED, Outcome.REJECTED, Outcome.DUPLICATE, Outcome.REJECTED, Outcome.STORED,
    ]
    assert [r.alarms_raised for r in mixed_results] == [0, 0, 0, 0, 1]
    assert "timestamp" in mixed_results[1].errors and "device_id" in mixed_results[3].errors
    assert mixed_results[2].record_ids == first_results[0].record_ids
    assert [r.outcome for r in refused_results] == [Outcome.REJECTED]
    assert [r.outcome for r in last_results] == [Outcome.STORED]
    # The subscribers saw the new readings only, in order (the held batch, then the others).
    assert [[s.reading.measured_at for s in batch] for batch in seen] == [
        [T0 + timedelta(seconds=100)],
        [T0 + timedelta(seconds=s) for s in (1, 2, 3, 5, 6)],
    ]
    assert all(s.result.outcome is Outcome.STORED for batch in seen for s in batch)
    stats = pipeline.stats()
    assert (stats.submitted, stats.stored, stats.duplicates, stats.rejected) == (10, 6, 1, 3)
    assert stats.records == 6 and stats.failed == 0
    assert stats.batches == 2 and stats.last_batch_size == 9


def test_a_batch_with_every_reading_rejected_writes_nothing(store: Store) -> None:
    pipeline = Pipeline(store.writer, clock=FakeClock(NOW))
    seen: list[object] = []
    pipeline.subscribe(seen.append)
    pipeline.start()
    try:
        results = pipeline.process([make_reading(at=FUTURE), make_reading("", at=1)])
    finally:
        pipeline.stop()
    assert [r.outcome for r in results] == [Outcome.REJECTED, Outcome.REJECTED]
    assert seen == []
    stats = pipeline.stats()
    assert (stats.rejected, stats.stored, stats.lag_ms) == (2, 0, 0.0)
