"""Kinesis checkpoints in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.factories import T0
from vitalstation.domain.clock import FakeClock
from vitalstation.ingest.kinesis import SHARD_END
from vitalstation.ingest.kinesis import CheckpointStore as CheckpointProtocol
from vitalstation.storage.checkpoints import CheckpointStore
from vitalstation.storage.schema import kinesis_checkpoints
from vitalstation.storage.store import Store

# A real Kinesis sequence number: 56 digits, far beyond any integer column.
LONG_SEQUENCE = "49590338271490256608559692538361571095921575989136588898"


def test_a_stream_without_checkpoints_loads_empty(store: Store) -> None:
    assert CheckpointStore(store.engine).load("BSMStream") == {}


def test_saved_checkpoints_load_per_shard_and_per_stream(store: Store) -> None:
    checkpoints = CheckpointStore(store.engine)
    checkpoints.save("BSMStream", "shardId-000000000000", LONG_SEQUENCE)
    checkpoints.save("BSMStream", "shardId-000000000001", "7")
    checkpoints.save("OtherStream", "shardId-000000000000", "3")
    assert checkpoints.load("BSMStream") == {
        "shardId-000000000000": LONG_SEQUENCE,
        "shardId-000000000001": "7",
    }
    assert checkpoints.load("OtherStream") == {"shardId-000000000000": "3"}


def test_saving_again_moves_the_checkpoint_and_its_time(store: Store) -> None:
    clock = FakeClock(T0)
    checkpoints = CheckpointStore(store.engine, clock=clock)
    checkpoints.save("S", "shardId-000000000000", "10")
    clock.advance(timedelta(seconds=5))
    checkpoints.save("S", "shardId-000000000000", "20")
    checkpoints.save("S", "shardId-000000000000", SHARD_END)
    with store.engine.connect() as connection:
        rows = connection.execute(select(kinesis_checkpoints)).all()
    assert len(rows) == 1
    assert rows[0].sequence_number == SHARD_END
    assert rows[0].updated_at == T0 + timedelta(seconds=5)


def test_checkpoints_survive_reopening_the_store(store_url: str) -> None:
    first = Store.open(store_url)
    CheckpointStore(first.engine).save("S", "shardId-000000000003", "42")
    first.close()
    second = Store.open(store_url)
    try:
        assert CheckpointStore(second.engine).load("S") == {"shardId-000000000003": "42"}
    finally:
        second.close()


def test_clear_forgets_one_stream_only(store: Store) -> None:
    checkpoints = CheckpointStore(store.engine)
    checkpoints.save("S", "shardId-000000000000", "1")
    checkpoints.save("S", "shardId-000000000001", "2")
    checkpoints.save("T", "shardId-000000000000", "3")
    assert checkpoints.clear("S") == 2
    assert checkpoints.load("S") == {}
    assert checkpoints.load("T") == {"shardId-000000000000": "3"}


@pytest.mark.parametrize(
    ("stream", "shard", "sequence"),
    [("", "shardId-0", "1"), ("S", "", "1"), ("S", "shardId-0", ""), ("S", "x" * 129, "1")],
)
def test_empty_or_oversized_values_are_refused(store: Store, stream, shard, sequence) -> None:
    with pytest.raises(ValueError, match="must be 1 to 128 characters"):
        CheckpointStore(store.engine).save(stream, shard, sequence)


def test_readers_of_several_shards_save_at_once(store: Store) -> None:
    """One thread per shard saves while the others do (SQLite waits for its write lock)."""
    checkpoints = CheckpointStore(store.engine)
    errors: list[BaseException] = []

    def reader(shard: int) -> None:
        try:
            for sequence in range(1, 31):
                checkpoints.save("S", f"shardId-{shard:012d}", str(sequence))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(shard,)) for shard in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert checkpoints.load("S") == {f"shardId-{shard:012d}": "30" for shard in range(4)}


def test_the_store_implements_the_inputs_protocol(store: Store) -> None:
    checkpoints: CheckpointProtocol = CheckpointStore(store.engine)
    checkpoints.save("S", "shardId-000000000000", "5")
    assert checkpoints.load("S") == {"shardId-000000000000": "5"}
