"""The SQLite store's one write connection, shared by the readings' writer and the alarm store."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

from tests.alarms.support import Ward
from tests.factories import T0, make_reading
from vitalstation.storage.alarms import AlarmStore
from vitalstation.storage.engine import write_connection
from vitalstation.storage.store import Store


def _file_store(tmp_path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'station.db'}")


def _dbapi(store: Store):
    connection = write_connection(store.engine).connection
    assert connection is not None
    return connection.connection.dbapi_connection


def test_readings_and_alarm_transitions_are_written_on_one_kept_connection(tmp_path) -> None:
    # One connection: neither finds the database changed by the other at its next
    # transaction, so neither has its page cache dropped (bench/alarms.py: ~16,500 fewer page
    # reads from the OS per 30,000 alarm-heavy readings).
    store = _file_store(tmp_path)
    try:
        alarm_store = AlarmStore(store.engine)
        ward = Ward()
        store.writer.write_readings([make_reading("DEV1", 0, heart_rate=70)], T0)
        first = _dbapi(store)
        changes = first.total_changes  # rows this very connection changed
        inserted = alarm_store.write(ward.send(heart_rate=160), {})
        assert _dbapi(store) is first
        assert first.total_changes - changes >= 3  # the alarm row and its two events
        store.writer.write_readings([make_reading("DEV1", 1, heart_rate=71)], T0)
        assert _dbapi(store) is first
        (alarm_id,) = inserted.values()
        assert [row.id for row in alarm_store.list_alarms()] == [alarm_id]
        assert first.execute("PRAGMA temp_store").fetchone() == (2,)
    finally:
        store.close()


def test_an_alarm_write_that_failed_leaves_a_fresh_connection_for_both(tmp_path) -> None:
    store = _file_store(tmp_path)
    try:
        alarm_store = AlarmStore(store.engine)
        ward = Ward()
        store.writer.write_readings([make_reading("DEV1", 0, heart_rate=70)], T0)
        broken = _dbapi(store)
        broken.close()  # as a connection the database dropped
        transitions = ward.send(heart_rate=160)
        with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the driver raises
            alarm_store.write(transitions, {})
        assert write_connection(store.engine).connection is None
        inserted = alarm_store.write(transitions, {})  # retried, as the alarm service does
        assert len(inserted) == 1 and _dbapi(store) is not broken
        results = store.writer.write_readings([make_reading("DEV1", 1, heart_rate=71)], T0)
        assert results[0].outcome.value == "stored"
        assert len(alarm_store.list_alarms()) == 1
    finally:
        store.close()


def test_a_write_transaction_inside_another_is_refused_not_waited_for(tmp_path) -> None:
    store = _file_store(tmp_path)
    try:
        shared = write_connection(store.engine)
        with shared.transaction(), pytest.raises(RuntimeError, match="inside another"):
            with shared.transaction():
                pass
        with shared.transaction() as connection:  # still usable afterwards
            assert connection.exec_driver_sql("SELECT 1").scalar_one() == 1
    finally:
        store.close()


def test_transactions_from_two_threads_take_turns(tmp_path) -> None:
    store = _file_store(tmp_path)
    try:
        shared = write_connection(store.engine)
        inside = threading.Event()
        release = threading.Event()
        order: list[str] = []

        def hold() -> None:
            with shared.transaction():
                order.append("first in")
                inside.set()
                release.wait(5)
                order.append("first out")

        holder = threading.Thread(target=hold)
        holder.start()
        assert inside.wait(5)
        waiter = threading.Thread(target=lambda: _enter(shared, order))
        waiter.start()
        waiter.join(0.2)
        assert waiter.is_alive()  # waits for the first transaction to end
        release.set()
        holder.join(5)
        waiter.join(5)
        assert order == ["first in", "first out", "second in"]
    finally:
        store.close()


def _enter(shared, order: list[str]) -> None:
    with shared.transaction():
        order.append("second in")


def test_a_closed_store_leaves_no_write_connection_behind(tmp_path) -> None:
    store = _file_store(tmp_path)
    store.writer.write_readings([make_reading("DEV1", 0, heart_rate=70)], T0)
    own = write_connection(store.engine).connection
    assert own is not None
    engine = weakref.ref(store.engine)
    store.close()
    assert own.closed
    del store, own
    gc.collect()
    # The shared table holds engines weakly: a closed store's engine and connection go.
    assert engine() is None
