"""SQLite's WAL is checkpointed by a thread beside the single writer, not inside its commits."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta

from tests.factories import T0, make_reading
from vitalstation.domain.clock import FakeClock
from vitalstation.pipeline.core import Pipeline
from vitalstation.storage import engine as engine_module
from vitalstation.storage.store import Store

NOW = T0 + timedelta(days=1)


def checkpoint_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "vitalstation-sqlite-checkpoint"}


def test_the_wal_is_checkpointed_beside_the_writer_and_stops_with_the_store(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(engine_module, "CHECKPOINT_INTERVAL_S", 0.05)
    before = checkpoint_threads()
    store = Store.open(f"sqlite:///{tmp_path / 'wal.db'}")
    wal = tmp_path / "wal.db-wal"
    pipeline = Pipeline(store.writer, clock=FakeClock(NOW))
    pipeline.start()
    try:
        with store.engine.connect() as connection:
            pages = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        assert pages == engine_module.WAL_AUTOCHECKPOINT_PAGES  # commits no longer checkpoint
        (ours,) = checkpoint_threads() - before  # other tests' stores may have their own
        largest = 0
        for batch in range(16):
            pipeline.process([make_reading(at=batch * 1000 + i, heart_rate=60 + i % 40)
                              for i in range(400)])
            largest = max(largest, os.path.getsize(wal))
            time.sleep(0.2)  # the checkpointer passes: the next commit starts the log afresh
        total = os.path.getsize(tmp_path / "wal.db")
        # Without the background pass the log would hold every batch (no commit checkpoints
        # below WAL_AUTOCHECKPOINT_PAGES), more than the database itself: it stays near the
        # size of a batch or two instead.
        assert largest < total / 2, (largest, total)
    finally:
        pipeline.stop()
        store.close()
    assert not ours.is_alive()
