"""An open alarm's readings that are no worse than its worst make no event (one alarm, not a
flood), but they still change it: its update count, latest value, message and times. Those
reach its row on a tick every ``ROW_REFRESH_INTERVAL_S`` (``AlarmService.refresh_rows``) and on
stop, without an event, so ``vitalstation alarms`` and a restart are at most that far behind
(SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, select

from tests.alarms.support import Ward
from vitalstation.app.alarms import AlarmService
from vitalstation.storage.alarms import AlarmStore
from vitalstation.storage.schema import alarm_events, alarms


def _service(ward: Ward, store, **options: float) -> AlarmService:
    service = AlarmService(ward.engine, AlarmStore(store.engine), **options)
    service.resume()
    return service


def _send(service: AlarmService, ward: Ward, heart_rate: float) -> list:
    ward.clock.advance(timedelta(seconds=1))
    with service._lock:  # as the pipeline hands a batch over
        return service._handle(ward.send(heart_rate=heart_rate))


def _row(store, alarm_id: int) -> tuple[float, str, dict]:
    with store.engine.connect() as connection:
        row = connection.execute(
            select(alarms.c.value, alarms.c.message, alarms.c.snapshot)
            .where(alarms.c.id == alarm_id)).one()
    return row.value, row.message, json.loads(row.snapshot)


def _events(store) -> int:
    with store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(alarm_events)).scalar_one()


def _raise_then_hold(ward: Ward, store, **options: float) -> tuple[AlarmService, int]:
    """A high heart-rate alarm at 160, then 150 and 155: no worse, so no event."""
    service = _service(ward, store, **options)
    assert [t.kind.value for t in _send(service, ward, 160)][0] == "raised"
    (alarm,) = service.active_alarms()
    assert _send(service, ward, 150) == [] and _send(service, ward, 155) == []
    return service, alarm.alarm_id


def test_a_change_without_an_event_reaches_the_row_on_the_first_tick(ward_store) -> None:
    ward, store = ward_store
    service, alarm_id = _raise_then_hold(ward, store)
    events = _events(store)
    value, message, snapshot = _row(store, alarm_id)
    assert value == 160 and snapshot["update_count"] == 0  # as the raise left it

    service.tick()
    value, message, snapshot = _row(store, alarm_id)
    live = service.alarm(alarm_id)
    assert value == 155 == live.value and message == live.message
    assert snapshot["update_count"] == 2 == live.update_count
    assert snapshot["worst_value"] == 160
    assert snapshot["updated_at"] == live.updated_at.isoformat()
    assert snapshot["measured_at"] == live.measured_at.isoformat()
    assert _events(store) == events  # no event for it
    assert service.refresh_rows() == 0  # nothing more to write

    restarted = _service(Ward(), store)
    back = restarted.alarm(alarm_id)
    assert (back.update_count, back.value, back.updated_at) == (
        2, 155, live.updated_at)


def test_ticks_refresh_the_rows_once_per_interval(ward_store) -> None:
    ward, store = ward_store
    service, alarm_id = _raise_then_hold(ward, store, row_refresh_interval_s=3600)
    service.tick()  # the first tick writes
    assert _row(store, alarm_id)[2]["update_count"] == 2
    _send(service, ward, 151)
    service.tick()  # within the interval: not yet
    assert _row(store, alarm_id)[2]["update_count"] == 2
    assert service.refresh_rows() == 1
    assert _row(store, alarm_id)[2]["update_count"] == 3


def test_with_no_interval_every_tick_refreshes(ward_store) -> None:
    ward, store = ward_store
    service, alarm_id = _raise_then_hold(ward, store, row_refresh_interval_s=0)
    service.tick()
    _send(service, ward, 151)
    service.tick()
    assert _row(store, alarm_id)[2]["update_count"] == 3


def test_stop_writes_what_changed_since_the_last_tick(ward_store) -> None:
    ward, store = ward_store
    service, alarm_id = _raise_then_hold(ward, store)
    service.stop()
    assert _row(store, alarm_id)[2]["update_count"] == 2


def test_an_alarm_resolved_or_written_by_its_own_event_is_not_written_again(ward_store) -> None:
    ward, store = ward_store
    service, alarm_id = _raise_then_hold(ward, store)
    assert service.refresh_rows() == 1
    worse = _send(service, ward, 170)  # worse than the worst: an event, which writes the row
    assert [t.kind.value for t in worse] == ["updated"]
    assert service.refresh_rows() == 0
    assert _row(store, alarm_id)[0] == 170
    assert [t.kind.value for t in _send(service, ward, 70)] == ["latched"]  # high: latches
    _send(service, ward, 72)  # a normal reading leaves a latched alarm as it is
    assert service.refresh_rows() == 0
    acked = service.acknowledge(alarm_id, actor="Nurse Joy", origin="cli")
    assert "resolved" in [t.kind.value for t in acked] and service.alarm(alarm_id) is None
    _send(service, ward, 75)
    assert service.refresh_rows() == 0 and service.active_alarms() == []


def test_a_failed_refresh_is_logged_and_retried(ward_store, monkeypatch, caplog) -> None:
    ward, store = ward_store
    service, alarm_id = _raise_then_hold(ward, store)
    real = AlarmStore.refresh
    calls = []

    def failing_once(self, current):
        calls.append(len(current))
        if len(calls) == 1:
            raise RuntimeError("database is locked")
        return real(self, current)

    monkeypatch.setattr(AlarmStore, "refresh", failing_once)
    assert service.refresh_rows() == 0
    assert "could not bring 1 alarm rows up to date" in caplog.text
    assert _row(store, alarm_id)[2]["update_count"] == 0
    assert service.refresh_rows() == 1
    assert _row(store, alarm_id)[2]["update_count"] == 2 and calls == [1, 1]
