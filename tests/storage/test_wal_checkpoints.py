"""The running station's SQLite WAL is checkpointed by the store's own thread, never inside a
commit of the pipeline's writer (a checkpoint there stalled the writer 20-30 ms)."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import timedelta

from tests.factories import T0, make_reading
from vitalstation.storage.store import Store

WAL_PAGES = "PRAGMA wal_checkpoint(PASSIVE)"  # (busy, pages in the WAL, pages checkpointed)


def _write(store: Store, batches: int) -> None:
    for batch in range(batches):
        readings = [make_reading(at=batch * 100 + n, heart_rate=70) for n in range(100)]
        store.writer.write_readings(readings, T0 + timedelta(days=1))


def _autocheckpoint(store: Store) -> int:
    with store.engine.connect() as connection:
        return int(connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


def test_the_station_store_checkpoints_on_its_own_thread_and_stops_with_the_store(
    tmp_path,
) -> None:
    path = tmp_path / "station.db"
    store = Store.open(f"sqlite:///{path}", background_checkpoints=True)
    try:
        assert store.checkpointer is not None
        assert _autocheckpoint(store) == 0  # commits never checkpoint
        thread = [t for t in threading.enumerate() if t.name == "vitalstation-wal-checkpoint"]
        assert len(thread) == 1
        _write(store, 30)
        deadline = time.monotonic() + 10
        while store.checkpointer.checkpoints < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.checkpointer.checkpoints >= 2
        # Everything written is in the database file: a checkpoint now has nothing left to copy.
        probe = sqlite3.connect(path)
        try:
            busy, in_wal, done = probe.execute(WAL_PAGES).fetchone()
        finally:
            probe.close()
        assert busy == 0 and in_wal == done
    finally:
        store.close()
    assert not thread[0].is_alive()


def test_other_stores_keep_sqlite_checkpointing_in_their_commits(tmp_path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'cli.db'}")  # the CLI, tests, tools
    try:
        assert store.checkpointer is None
        assert _autocheckpoint(store) == 1000
    finally:
        store.close()
    memory = Store.open("sqlite://", background_checkpoints=True)  # no file, no WAL
    try:
        assert memory.checkpointer is None
    finally:
        memory.close()
