"""The pipeline with the real store: dedupe, durable-before-acknowledged, back-pressure."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.factories import T0, GatedWriter, make_reading
from vitalstation.domain.clock import FakeClock
from vitalstation.pipeline.core import Pipeline, PipelineBusy, PipelineStopped
from vitalstation.pipeline.types import Outcome
from vitalstation.storage.schema import vital_signs
from vitalstation.storage.store import Store

NOW = T0 + timedelta(minutes=1)


def stored_count(store: Store) -> int:
    with store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(vital_signs)).scalar_one()




@pytest.fixture
def pipeline(store: Store):
    running = Pipeline(store.writer, clock=FakeClock(NOW))
    running.start()
    yield running
    running.stop()


def test_a_duplicate_is_stored_once_and_answered_with_the_same_ids(pipeline, store) -> None:
    first = pipeline.process([make_reading(heart_rate=71)])
    second = pipeline.process([make_reading(heart_rate=71)])
    both = pipeline.process([make_reading(at=5), make_reading(at=5)])
    assert first[0].outcome is Outcome.STORED
    assert second[0].outcome is Outcome.DUPLICATE
    assert second[0].record_ids == first[0].record_ids
    assert [r.outcome for r in both] == [Outcome.STORED, Outcome.DUPLICATE]
    assert stored_count(store) == 2
    stats = pipeline.stats()
    assert (stats.stored, stats.duplicates, stats.records) == (2, 2, 2)


def test_a_reading_is_acknowledged_only_after_its_commit(store: Store) -> None:
    writer = GatedWriter(store)
    pipeline = Pipeline(writer, clock=FakeClock(NOW))
    pipeline.start()
    acknowledged = []

    def acknowledge(results):
        # The input acknowledges here: by now the reading must be visible to anyone.
        acknowledged.append((results, stored_count(store)))

    ticket = pipeline.submit([make_reading()], on_done=acknowledge)
    assert writer.entered.wait(5)
    assert not ticket.done() and acknowledged == []
    assert stored_count(store) == 0
    writer.gate.set()
    results = ticket.wait(5)
    assert results[0].durable
    assert acknowledged == [(results, 1)]
    assert writer.committed.is_set()
    pipeline.stop()


def test_subscribers_see_new_readings_after_commit_and_before_the_input(store: Store) -> None:
    order: list[str] = []
    pipeline = Pipeline(store.writer, clock=FakeClock(NOW))
    pipeline.subscribe(lambda stored: order.append(f"subscriber:{len(stored)}"))
    pipeline.subscribe(lambda stored: 1 / 0)  # a broken subscriber harms nobody
    pipeline.start()
    pipeline.submit([make_reading(), make_reading()], on_done=lambda r: order.append("input"))
    pipeline.stop()
    assert order == ["subscriber:1", "input"]
    assert pipeline.stats().subscriber_errors == 1


def test_invalid_readings_are_rejected_with_the_reason_and_not_stored(pipeline, store) -> None:
    future = make_reading(at=NOW + timedelta(hours=1))
    impossible = make_reading(at=1, heart_rate=900)
    results = pipeline.process([future, impossible, make_reading(at=2)])
    assert [r.outcome for r in results] == [Outcome.REJECTED, Outcome.REJECTED, Outcome.STORED]
    assert "future" in results[0].errors["timestamp"]
    assert "heart_rate" in results[1].errors
    assert stored_count(store) == 1
    assert pipeline.stats().rejected == 2


def test_a_failing_store_is_retried_then_reported_failed_and_never_acknowledged(store) -> None:
    class BrokenWriter:
        calls = 0

        def write_readings(self, readings, now):
            BrokenWriter.calls += 1
            raise OSError("disk I/O error")

        def write_dead_letter(self, *args):
            raise OSError("disk I/O error")

    pipeline = Pipeline(BrokenWriter(), clock=FakeClock(NOW), retry_delays_s=(0, 0))
    pipeline.start()
    (result,) = pipeline.process([make_reading()])
    assert result.outcome is Outcome.FAILED and not result.durable
    assert "disk I/O error" in result.errors["store"]
    assert BrokenWriter.calls == 3
    pipeline.stop()
    assert pipeline.stats().failed == 1


def test_a_full_queue_pushes_back_instead_of_growing(store: Store) -> None:
    writer = GatedWriter(store)
    pipeline = Pipeline(writer, clock=FakeClock(NOW), capacity=3, batch_max=1)
    pipeline.start()
    pipeline.submit([make_reading(at=0)])
    assert writer.entered.wait(5)  # the worker holds reading 0; the queue is empty again
    pipeline.submit([make_reading(at=1), make_reading(at=2), make_reading(at=3)])
    with pytest.raises(PipelineBusy, match="queue is full"):
        pipeline.submit([make_reading(at=4)], timeout=0.05)
    assert pipeline.stats().queued == 3
    assert pipeline.stats().busy_refusals == 1
    writer.gate.set()
    pipeline.submit([make_reading(at=4)], timeout=5).wait(5)
    pipeline.stop()
    assert stored_count(store) == 5


def test_stop_stores_everything_queued_then_refuses_more(store: Store) -> None:
    pipeline = Pipeline(store.writer, clock=FakeClock(NOW), batch_max=10)
    pipeline.start()
    tickets = [pipeline.submit([make_reading(at=i)]) for i in range(100)]
    assert pipeline.stop(timeout=30)
    assert all(t.done() and t.wait(0)[0].durable for t in tickets)
    assert stored_count(store) == 100
    with pytest.raises(PipelineStopped):
        pipeline.submit([make_reading(at=500)])


def test_dead_letters_go_through_the_single_writer(pipeline, store) -> None:
    pipeline.dead_letter("mqtt", "healthcare/monitors/x", "not JSON: line 1", "{{{")
    pipeline.process([make_reading()])  # processed after the dead letter: it is stored by now
    assert pipeline.stats().dead_letters == 1


def test_a_dead_letter_reports_whether_it_was_committed_before_later_submissions(
    store: Store,
) -> None:
    class DownForDeadLetters:
        """Readings go in; dead letters fail while ``down`` (a database that is down)."""

        def __init__(self) -> None:
            self.down = True
            self.attempts = 0

        def write_dead_letter(self, *args):
            self.attempts += 1
            if self.down:
                raise OSError("database is down")
            return store.writer.write_dead_letter(*args)

        def __getattr__(self, name):
            return getattr(store.writer, name)

    writer = DownForDeadLetters()
    pipeline = Pipeline(writer, clock=FakeClock(NOW), retry_delays_s=(0, 0))
    pipeline.start()
    outcomes: list[tuple[str, object]] = []
    try:
        pipeline.dead_letter("mqtt", "t", "not JSON", "{{{",
                             on_done=lambda ok: outcomes.append(("dead letter", ok)))
        pipeline.submit([], on_done=lambda results: outcomes.append(("ack", results))).wait(5)
        assert outcomes == [("dead letter", False), ("ack", [])]
        assert writer.attempts == 3  # retried like readings before giving up
        writer.down = False
        pipeline.dead_letter("mqtt", "t", "not JSON", "{{{",
                             on_done=lambda ok: outcomes.append(("dead letter", ok)))
        pipeline.process([])
        assert outcomes[2] == ("dead letter", True)
    finally:
        pipeline.stop()
    assert pipeline.stats().dead_letters == 1


def test_lag_and_batch_counters_are_reported(pipeline) -> None:
    pipeline.process([make_reading(at=i) for i in range(10)])
    stats = pipeline.stats()
    assert stats.batches >= 1
    assert stats.last_batch_size >= 1
    assert stats.lag_ms > 0
    assert stats.queued == 0


def test_subscribers_report_the_alarms_each_reading_raised(store: Store) -> None:
    pipeline = Pipeline(store.writer, clock=FakeClock(NOW))
    pipeline.subscribe(lambda stored: {len(stored) - 1: 2})  # the last new reading raised 2
    pipeline.subscribe(lambda stored: {len(stored) - 1: 1, 99: 5})  # out of range: ignored
    pipeline.start()
    try:
        first = make_reading()
        second = make_reading(at=1)
        results = pipeline.process([first, second])
        (again,) = pipeline.process([first])
    finally:
        pipeline.stop()
    assert [r.outcome for r in results] == [Outcome.STORED, Outcome.STORED]
    assert [r.alarms_raised for r in results] == [0, 3]
    assert again.outcome is Outcome.DUPLICATE and again.alarms_raised == 0


def test_a_commit_that_reported_failure_but_landed_still_reaches_the_subscribers(store) -> None:
    # The connection drops while the COMMIT is acknowledged: the rows are in, the writer
    # raised, the retry finds them as duplicates. The alarm engine must still see them.
    class CommitThenRaise:
        calls = 0

        def write_readings(self, readings, now):
            results = store.writer.write_readings(readings, now)
            CommitThenRaise.calls += 1
            if CommitThenRaise.calls == 1:
                raise OSError("server closed the connection unexpectedly")
            return results

        def write_dead_letter(self, *args):
            store.writer.write_dead_letter(*args)

    seen = []
    pipeline = Pipeline(CommitThenRaise(), clock=FakeClock(NOW), retry_delays_s=(0,))
    pipeline.subscribe(lambda stored: seen.extend(stored))
    pipeline.start()
    (result,) = pipeline.process([make_reading(heart_rate=160)])
    pipeline.stop()
    assert result.outcome is Outcome.DUPLICATE and result.durable
    assert [s.reading.measurements[0].value for s in seen] == [160.0]
    assert seen[0].result.new_kinds == ("heart_rate",)
    assert stored_count(store) == 1


def test_dead_letters_and_activity_are_bounded_too(store, monkeypatch) -> None:
    from vitalstation.pipeline import core

    monkeypatch.setattr(core, "SIDE_CAPACITY_ITEMS", 3)
    writer = GatedWriter(store)
    pipeline = Pipeline(writer, clock=FakeClock(NOW))
    pipeline.start()
    pipeline.submit([make_reading()])
    assert writer.entered.wait(5)  # the worker is held; everything below waits in the queue
    for n in range(3):
        pipeline.dead_letter("mqtt", f"t/{n}", "not JSON")
    with pytest.raises(PipelineBusy, match="dead letters"):
        pipeline.dead_letter("mqtt", "t/4", "not JSON")
    pipeline.log_activity([object()])  # dropped and counted, never blocking the input
    assert pipeline.stats().activity_dropped == 1
    writer.gate.set()
    assert pipeline.stop(10)
    assert pipeline.stats().dead_letters == 3
