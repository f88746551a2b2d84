"""Kinesis checkpoints: the last stored record of each shard, so a restart resumes after it.

Implements the ``CheckpointStore`` protocol of ``vitalstation.ingest.kinesis`` (which may not
import this layer); the runtime hands an instance to the Kinesis input. One row per
``(stream, shard_id)`` in ``kinesis_checkpoints``, upserted; the sequence number is kept as the
text Kinesis gave (up to 128 digits, more than any integer column holds), or the input's
end-of-shard marker for a shard read to its end.

Thread-safe: each call opens its own connection and commits at once. The Kinesis readers save
from their own threads while the pipeline's writer commits readings; on SQLite that is a short
wait for the write lock (``busy_timeout``), never a failure.
"""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from vitalstation.domain.clock import Clock, utc_now
from vitalstation.storage.schema import kinesis_checkpoints

_MAX_CHARS = 128  # the columns' length: Kinesis ids and sequence numbers are shorter


class CheckpointStore:
    """Per-shard Kinesis checkpoints on SQLAlchemy Core (SQLite and PostgreSQL alike)."""

    def __init__(self, engine: Engine, *, clock: Clock = utc_now) -> None:
        self._engine = engine
        self._clock = clock
        insert = (postgresql if engine.dialect.name == "postgresql" else sqlite).insert
        statement = insert(kinesis_checkpoints)
        self._upsert = statement.on_conflict_do_update(
            index_elements=["stream", "shard_id"],
            set_={
                "sequence_number": statement.excluded.sequence_number,
                "updated_at": statement.excluded.updated_at,
            },
        )

    def load(self, stream: str) -> dict[str, str]:
        """Every checkpoint of ``stream``: shard id → sequence number (or end-of-shard marker)."""
        query = select(kinesis_checkpoints.c.shard_id, kinesis_checkpoints.c.sequence_number).where(
            kinesis_checkpoints.c.stream == stream
        )
        with self._engine.connect() as connection:
            return {shard_id: sequence for shard_id, sequence in connection.execute(query)}

    def save(self, stream: str, shard_id: str, sequence_number: str) -> None:
        """Record that every record of ``shard_id`` up to ``sequence_number`` is stored.

        Last writer wins: a station only saves a position whose records are already in this
        database, so even an older position saved by another station sharing the database
        means re-reading (deduplicated), never a loss.
        """
        for what, text in (("stream", stream), ("shard id", shard_id),
                           ("sequence number", sequence_number)):
            if not text or len(text) > _MAX_CHARS:
                raise ValueError(f"a checkpoint's {what} must be 1 to {_MAX_CHARS} characters")
        with self._engine.begin() as connection:
            connection.execute(
                self._upsert,
                {
                    "stream": stream,
                    "shard_id": shard_id,
                    "sequence_number": sequence_number,
                    "updated_at": self._clock(),
                },
            )

    def clear(self, stream: str) -> int:
        """Forget every checkpoint of ``stream`` (the next start reads from the initial position).

        For an admin whose stream was deleted and re-created under the same name: the old
        sequence numbers mean nothing in the new stream. Returns how many were removed.
        """
        with self._engine.begin() as connection:
            result = connection.execute(
                kinesis_checkpoints.delete().where(kinesis_checkpoints.c.stream == stream)
            )
            return result.rowcount
