"""A large batch reaches the alarm service in parts: each part's alarms are stored and published
before the next part is evaluated, and every alarm is still counted on the reading that
raised it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.factories import make_reading
from vitalstation.alarms import AlarmEngine, AlarmTransition, TransitionKind
from vitalstation.app.alarms import EVALUATE_CHUNK_READINGS, AlarmService
from vitalstation.pipeline.core import Pipeline
from vitalstation.pipeline.types import Outcome
from vitalstation.storage.alarms import AlarmStore
from vitalstation.storage.store import Store


def test_a_batch_larger_than_a_part_is_evaluated_in_order_part_by_part(store: Store) -> None:
    service = AlarmService(AlarmEngine("adult-ward", clock=lambda: datetime.now(UTC)),
                           AlarmStore(store.engine))
    open_when_raised: dict[str, list[str]] = {}

    def listen(transition: AlarmTransition) -> None:
        if transition.kind is TransitionKind.RAISED:
            open_when_raised[transition.alarm.device_id or ""] = sorted(
                alarm.device_id or "" for alarm in service.active_alarms()
            )

    service.add_listener(listen)
    # Two unregistered devices: BSM_A in the first part and into the second, BSM_B only in
    # the second. One submission to a pipeline whose batches take it whole: one batch of 2.4
    # parts.
    count = int(EVALUATE_CHUNK_READINGS * 2.4)
    pipeline = Pipeline(store.writer, batch_max=count)
    pipeline.subscribe(service)
    first_b = EVALUATE_CHUNK_READINGS + 50
    start = datetime.now(UTC) - timedelta(seconds=count)
    readings = [
        make_reading("BSM_A" if n < first_b else "BSM_B", start + timedelta(seconds=n))
        for n in range(count)
    ]
    pipeline.start()
    try:
        results = pipeline.process(readings)
    finally:
        pipeline.stop()
    assert all(r.outcome is Outcome.STORED for r in results)
    raised_at = [n for n, result in enumerate(results) if result.alarms_raised]
    assert [results[n].alarms_raised for n in raised_at] == [1, 1]
    # BSM_A's alarm on a reading of BSM_A in the first part, BSM_B's on one of BSM_B.
    assert raised_at[0] < EVALUATE_CHUNK_READINGS
    assert readings[raised_at[1]].device_id == "BSM_B"
    # BSM_A's alarm was stored and published before BSM_B's readings were evaluated.
    assert open_when_raised["BSM_A"] == ["BSM_A"]
    assert open_when_raised["BSM_B"] == ["BSM_A", "BSM_B"]
    assert service.unsaved == 0
    rows = service.list_alarms()
    assert sorted(row.device_id or "" for row in rows) == ["BSM_A", "BSM_B"]
