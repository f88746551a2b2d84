"""The single writer: commits batches of readings, deduplicated by the database's unique key.

Only the pipeline thread calls :meth:`ReadingWriter.write_readings`. Each call is one
transaction: the raw payloads, every vital-sign record, the devices' last-seen state and the
unknown-device list are committed together or not at all.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from itertools import chain
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Float,
    Insert,
    and_,
    bindparam,
    func,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite

from vitalstation.domain.readings import Reading
from vitalstation.domain.vitals import CANONICAL_UNIT, VitalKind
from vitalstation.pipeline.types import ActivityEntry, Attribution, Outcome, ReadingResult
from vitalstation.storage.directory import Attributed, Directory
from vitalstation.storage.engine import write_connection
from vitalstation.storage.keys import bump_usage
from vitalstation.storage.schema import (
    dead_letters,
    devices,
    directory_version,
    input_activity,
    raw_payloads,
    unknown_devices,
    vital_signs,
)
from vitalstation.storage.schema import sqlite_time_text as _sqlite_time

# Raw payloads and dead-letter excerpts are kept up to this many characters.
MAX_RAW_CHARS = 64_000
MAX_EXCERPT_CHARS = 4_000
# Keys looked up per query when finding the ids of duplicates.
_LOOKUP_CHUNK = 300
# Activity-log rows deleted per write at most: a large backlog is purged over several writes
# instead of holding the writer (and the readings behind it) for one long DELETE.
ACTIVITY_PURGE_CHUNK = 5_000

_ReadingKey = tuple[str | None, str, datetime]

_COLUMNS = (
    "device_id", "device_ref", "patient_ref", "bed_ref", "attribution", "vital", "value",
    "unit", "original_value", "original_unit", "measured_at", "received_at", "input",
    "data_source", "signal_quality", "battery_level", "payload_ref", "notes",
)
_DEVICE = _COLUMNS.index("device_id")
_VITAL = _COLUMNS.index("vital")
_MEASURED = _COLUMNS.index("measured_at")
_RECEIVED = _COLUMNS.index("received_at")
_SQLITE_FIND = "SELECT id FROM vital_signs WHERE device_id = ? AND vital = ? AND measured_at = ?"
_SQLITE_VERSION = "SELECT version FROM directory_version WHERE id = 1"
_ACTIVITY_COLUMNS = (
    "at", "input", "action", "device_id", "key_prefix", "peer", "endpoint", "method", "status",
    "duration_ms", "error",
)
# SQLite: rows per multi-row statement at most. Statements are built for powers of two up to
# this (so a connection prepares at most 9 shapes of each and its statement cache keeps them);
# 256 rows x 18 columns stays well under SQLite's 32,766 bound parameters.
_SQLITE_CHUNK_MAX = 256


def _sqlite_chunks(count: int) -> list[int]:
    """``count`` split into powers of two (largest first), none above ``_SQLITE_CHUNK_MAX``."""
    sizes: list[int] = []
    while count >= _SQLITE_CHUNK_MAX:
        sizes.append(_SQLITE_CHUNK_MAX)
        count -= _SQLITE_CHUNK_MAX
    size = _SQLITE_CHUNK_MAX // 2
    while count:
        if count >= size:
            sizes.append(size)
            count -= size
        size //= 2
    return sizes


# SQLite: NULL is bound without ``None``. sqlite3 binds a ``None`` only after looking for an
# adapter for it (and building, then discarding, an AttributeError on the way): ~1 µs a value,
# more than the rest of a row's binding. So a nullable id is bound as 0 (no row has id 0) and
# turned back into NULL by ``nullif``, a nullable text as "" the same way (the writer never
# stores an empty text: it stores NULL for it), and a nullable float as NaN, which SQLite
# stores as NULL (a NaN never gets this far: validation refuses it).
_NULL_ID = 0
_NULL_TEXT = ""
_NULL_FLOAT = float("nan")
_ID_OR_NULL = "nullif(?, 0)"
_TEXT_OR_NULL = "nullif(?, '')"


def _id(value: int | None) -> int:
    return _NULL_ID if value is None else value


def _text(value: str | None) -> str:
    return value or _NULL_TEXT


def _float(value: float | None) -> float:
    return _NULL_FLOAT if value is None else value


@functools.cache
def _sqlite_insert(table: str, columns: tuple[str, ...], row: str, rows: int, conflict: str) -> str:
    """``INSERT INTO table (columns) VALUES row, row, ... [ON CONFLICT (...) DO NOTHING]``."""
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * rows)}"
    return sql + (f" ON CONFLICT ({conflict}) DO NOTHING" if conflict else "")


def _placeholders(columns: tuple[str, ...], ids: tuple[str, ...], texts: tuple[str, ...]) -> str:
    """One VALUES row: ``?``, with the nullable ids and texts wrapped in ``nullif``."""
    return "(" + ", ".join(
        _ID_OR_NULL if name in ids else _TEXT_OR_NULL if name in texts else "?"
        for name in columns
    ) + ")"


@functools.cache
def _sqlite_update_devices(rows: int) -> str:
    """One UPDATE for ``rows`` devices; battery and signal keep their value when not sent."""
    values = ", ".join(["(?, ?, ?, ?, ?)"] * rows)
    return (
        "UPDATE devices SET last_seen_at = v.column2, last_input = v.column3, "
        "battery_level = coalesce(v.column4, devices.battery_level), "
        "signal_quality = coalesce(v.column5, devices.signal_quality) "
        f"FROM (VALUES {values}) AS v WHERE devices.id = v.column1"
    )


_PAYLOAD_COLUMNS = ("sha256", "input", "source_ref", "received_at", "content")
_PAYLOAD_ROW = _placeholders(_PAYLOAD_COLUMNS, (), ("source_ref",))
_VITAL_ROW = _placeholders(
    _COLUMNS, ("device_ref", "patient_ref", "bed_ref", "payload_ref"), ("notes",)
)
_ACTIVITY_ROW = _placeholders(
    _ACTIVITY_COLUMNS, (), ("device_id", "key_prefix", "peer", "endpoint", "method", "error")
)
# The directory version, as every batch asks it (built once: building it costs more than
# running it).
_VERSION = select(directory_version.c.version).where(directory_version.c.id == 1)


def storable_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` and made storable on every backend.

    PostgreSQL refuses NUL characters and lone surrogates in text: payloads from hostile or
    broken devices carry both, and must still be kept, so they are escaped (``\\u0000``).
    """
    text = text[:limit]
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    if text.isascii():  # the usual case, known without encoding (a copy of a whole payload)
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


_ENUM_COLUMNS = tuple(
    _COLUMNS.index(name)
    for name in ("attribution", "vital", "unit", "original_unit", "input", "data_source")
)


# The canonical unit's text by the vital's text (str keys: an Enum key hashes in Python).
_UNIT_TEXT = {str(kind): str(unit) for kind, unit in CANONICAL_UNIT.items()}


def _plain(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row with its StrEnums as plain str (their hash is not the str's: keys must match)."""
    values = list(row)
    for index in _ENUM_COLUMNS:
        values[index] = str(values[index])
    return tuple(values)


def _insert(engine_dialect: str, table: Any) -> Insert:
    if engine_dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class ReadingWriter:
    """Implements the pipeline's ``ReadingStore`` on SQLAlchemy Core."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        self._directory: Directory | None = None
        # SQLite: the store's write connection, kept between transactions (see ``_begin``).
        self._own = write_connection(engine) if self._dialect == "sqlite" else None
        insert_vitals = _insert(self._dialect, vital_signs)
        self._insert_vitals = insert_vitals.on_conflict_do_nothing(
            index_elements=["device_id", "vital", "measured_at"]
        ).returning(
            vital_signs.c.id,
            vital_signs.c.device_id,
            vital_signs.c.vital,
            vital_signs.c.measured_at,
        )
        insert_raw = _insert(self._dialect, raw_payloads)
        self._insert_raw = insert_raw.on_conflict_do_nothing(
            index_elements=["sha256"]
        ).returning(raw_payloads.c.id, raw_payloads.c.sha256)
        # One statement for every device of a batch; battery and signal keep their last known
        # value when a reading does not carry them.
        self._update_device = (
            devices.update()
            .where(devices.c.id == bindparam("ref"))
            .values(
                last_seen_at=bindparam("seen", type_=devices.c.last_seen_at.type),
                last_input=bindparam("via"),
                battery_level=func.coalesce(
                    bindparam("battery", type_=Float), devices.c.battery_level
                ),
                signal_quality=func.coalesce(
                    bindparam("signal", type_=Float), devices.c.signal_quality
                ),
            )
        )
        insert_unknown = _insert(self._dialect, unknown_devices)
        self._upsert_unknown = insert_unknown.on_conflict_do_update(
            index_elements=["device_id"],
            set_={
                "last_seen_at": insert_unknown.excluded.last_seen_at,
                "last_input": insert_unknown.excluded.last_input,
                "reading_count": unknown_devices.c.reading_count
                + insert_unknown.excluded.reading_count,
            },
        )

    def write_readings(self, readings: Sequence[Reading], now: datetime) -> list[ReadingResult]:
        """Store ``readings`` in one transaction; one result per reading, in order."""
        text_times = self._dialect == "sqlite"
        received: tuple[datetime | None, Any] = (None, None)  # a batch's readings share it often
        received_texts: dict[int, str] = {}  # id(received_at) -> its SQLite text, for devices
        with self._begin() as connection:
            directory = self._fresh_directory(connection)
            payload_refs = self._store_payloads(connection, readings)
            rows: list[tuple[Any, ...]] = []
            resolved: list[Attributed | None] = []
            rejected: dict[int, ReadingResult] = {}
            for index, reading in enumerate(readings):
                where = directory.resolve(reading.device_id, reading.measured_at)
                if where.device_status == "retired":
                    rejected[index] = ReadingResult(
                        Outcome.REJECTED,
                        errors={"device_id": f"device {reading.device_id} is retired; "
                                "its readings are refused"},
                    )
                    resolved.append(None)
                    continue
                resolved.append(where)
                payload_ref = payload_refs.get(id(reading.raw)) if reading.raw else None
                notes = storable_text(reading.notes, MAX_EXCERPT_CHARS) if reading.notes else None
                if not text_times:
                    for measurement in reading.measurements:
                        # In _COLUMNS order; ``_plain`` makes the StrEnums str for PostgreSQL.
                        rows.append((
                            reading.device_id, where.device_ref, where.patient_ref,
                            where.bed_ref, where.attribution, measurement.kind,
                            measurement.value, measurement.unit, measurement.original_value,
                            measurement.original_unit, reading.measured_at,
                            reading.received_at, reading.input, reading.data_source,
                            reading.signal_quality, reading.battery_level, payload_ref, notes,
                        ))
                    continue
                # SQLite: times as the text SQLAlchemy stores (naive UTC, microseconds), made
                # once per reading (once per batch for a shared receipt time); enums as plain
                # str (``_value_``): sqlite3 binds a str subclass only after failing to find
                # an adapter for it, which cost more than the rest of the row.
                measured = _sqlite_time(reading.measured_at)
                if reading.received_at is not received[0]:
                    received = (reading.received_at, _sqlite_time(reading.received_at))
                    received_texts[id(reading.received_at)] = received[1]
                attribution = where.attribution._value_
                via = reading.input._value_
                source = reading.data_source._value_
                # _id, _float and _text inlined: a call each cost more than the test.
                device_ref = where.device_ref
                if device_ref is None:
                    device_ref = _NULL_ID
                patient_ref = where.patient_ref
                if patient_ref is None:
                    patient_ref = _NULL_ID
                bed_ref = where.bed_ref
                if bed_ref is None:
                    bed_ref = _NULL_ID
                payload = _NULL_ID if payload_ref is None else payload_ref
                signal = reading.signal_quality
                if signal is None:
                    signal = _NULL_FLOAT
                battery = reading.battery_level
                if battery is None:
                    battery = _NULL_FLOAT
                text = notes or _NULL_TEXT
                for measurement in reading.measurements:
                    vital = measurement.kind._value_
                    rows.append((  # in _COLUMNS order, NULLs as _VITAL_ROW binds them
                        reading.device_id, device_ref, patient_ref, bed_ref,
                        attribution, vital, measurement.value, _UNIT_TEXT[vital],
                        measurement.original_value, measurement.original_unit._value_,
                        measured, received[1], via, source, signal, battery, payload, text,
                    ))
            stored = self._insert_rows(connection, rows) if rows else []
            results = self._results(readings, resolved, rejected, stored)
            self._update_devices(connection, readings, resolved, received_texts)
        return results

    def write_dead_letter(
        self, input: str, source_ref: str | None, reason: str, excerpt: str, at: datetime
    ) -> None:
        """Keep a payload an input could not turn into readings."""
        with self._begin() as connection:
            connection.execute(
                dead_letters.insert().values(
                    at=at,
                    input=input,
                    source_ref=storable_text(source_ref or "", 500) or None,
                    reason=storable_text(reason, MAX_EXCERPT_CHARS),
                    excerpt=storable_text(excerpt, MAX_EXCERPT_CHARS),
                )
            )

    def write_activity(
        self, entries: Sequence[ActivityEntry], purge: tuple[str, datetime] | None = None
    ) -> None:
        """Append activity-log rows and add their verified-key requests to the keys' counters.

        One transaction. The counters are bumped with ``use_count = use_count + n`` per key, so
        no increment is lost to another writer (another station, the CLI) at the same time.
        ``purge`` = (input, before) deletes up to ``ACTIVITY_PURGE_CHUNK`` older rows of it.
        """
        usage: dict[str, tuple[int, datetime]] = {}
        rows: list[tuple[Any, ...]] = []
        for entry in entries:
            rows.append((  # in _ACTIVITY_COLUMNS order
                entry.at,
                entry.input,
                entry.action,
                storable_text(entry.device_id, 64) if entry.device_id else None,
                entry.key_prefix,
                storable_text(entry.peer, 100) if entry.peer else None,
                storable_text(entry.endpoint, 200) if entry.endpoint else None,
                storable_text(entry.method, 10) if entry.method else None,
                entry.status,
                entry.duration_ms,
                storable_text(entry.error, MAX_EXCERPT_CHARS) if entry.error else None,
            ))
            if entry.key_used and entry.key_prefix:
                count, latest = usage.get(entry.key_prefix, (0, entry.at))
                usage[entry.key_prefix] = (count + 1, max(latest, entry.at))
        if not rows and purge is None:
            return
        with self._begin() as connection:
            if rows and self._dialect == "sqlite":
                # The driver's executemany: SQLAlchemy's per-row parameter processing was most
                # of the cost of logging a busy receiver's requests.
                # Multi-row statements: executemany steps (and releases the GIL) once a row.
                cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                try:
                    start = 0
                    for size in _sqlite_chunks(len(rows)):
                        cursor.execute(
                            _sqlite_insert(
                                "input_activity", _ACTIVITY_COLUMNS, _ACTIVITY_ROW, size, ""
                            ),
                            [value for row in rows[start:start + size] for value in (
                                _sqlite_time(row[0]), row[1], row[2], _text(row[3]),
                                _text(row[4]), _text(row[5]), _text(row[6]), _text(row[7]),
                                row[8], _float(row[9]), _text(row[10]),
                            )],
                        )
                        start += size
                finally:
                    cursor.close()
            elif rows:
                connection.execute(
                    input_activity.insert(),
                    [dict(zip(_ACTIVITY_COLUMNS, row, strict=True)) for row in rows],
                )
            bump_usage(connection, usage)
            if purge is not None:
                input_name, before = purge
                old = (
                    select(input_activity.c.id)
                    .where(input_activity.c.input == input_name, input_activity.c.at < before)
                    .limit(ACTIVITY_PURGE_CHUNK)
                )
                connection.execute(input_activity.delete().where(input_activity.c.id.in_(old)))

    def close(self) -> None:
        """Close the write connection (SQLite; done when the engine is disposed)."""
        if self._own is not None:
            self._own.close()

    # -- transactions ----------------------------------------------------------------------

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """One transaction: committed at the end of the block, rolled back on an exception.

        PostgreSQL: a pooled connection per transaction, as any caller (the pool pings it, so a
        restarted server costs one retry). SQLite: the store's :class:`WriteConnection`, kept
        open between transactions and shared with the alarm store (its page cache stays warm,
        its statement journals stay in memory; see there).
        """
        if self._own is None:
            with self._engine.begin() as connection:
                yield connection
            return
        with self._own.transaction() as connection:
            yield connection

    # -- steps -----------------------------------------------------------------------------

    def _fresh_directory(self, connection: Connection) -> Directory:
        if self._directory is None or self._directory.version != self._version(connection):
            self._directory = Directory.load(connection)
        return self._directory

    def _version(self, connection: Connection) -> int:
        """The directory version in the database (``directory.current_version``, cheaper)."""
        if self._dialect == "sqlite":
            cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                found = cursor.execute(_SQLITE_VERSION).fetchone()
            finally:
                cursor.close()
            return int(found[0] if found and found[0] is not None else 0)
        return int(connection.execute(_VERSION).scalar_one_or_none() or 0)

    def _store_payloads(
        self, connection: Connection, readings: Sequence[Reading]
    ) -> dict[int, int]:
        """Insert each distinct raw payload once; map ``id(raw)`` to its row id."""
        by_identity: dict[int, str] = {}  # id(raw) -> its digest
        rows: dict[str, tuple[Any, ...]] = {}  # digest -> row, in _PAYLOAD_COLUMNS order
        sqlite = self._dialect == "sqlite"
        received: tuple[datetime | None, Any] = (None, None)  # often shared by the batch
        sha256 = hashlib.sha256
        for reading in readings:
            raw = reading.raw
            if not raw:
                continue
            identity = id(raw)
            if identity in by_identity:
                continue
            digest = sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()
            by_identity[identity] = digest
            if digest in rows:
                continue
            source_ref = reading.source_ref
            source = storable_text(source_ref, 500) if source_ref else None
            if sqlite:  # bound as _PAYLOAD_ROW binds them: times as text, NULL text as ""
                if reading.received_at is not received[0]:
                    received = (reading.received_at, _sqlite_time(reading.received_at))
                rows[digest] = (digest, reading.input._value_, source or _NULL_TEXT,
                                received[1], storable_text(raw, MAX_RAW_CHARS))
            else:
                rows[digest] = (digest, reading.input._value_, source, reading.received_at,
                                storable_text(raw, MAX_RAW_CHARS))
        if not by_identity:
            return {}
        if sqlite:
            ids = self._insert_payloads_sqlite(connection, list(rows.values()))
        else:
            ids = {
                row.sha256: row.id
                for row in connection.execute(
                    self._insert_raw,
                    [dict(zip(_PAYLOAD_COLUMNS, row, strict=True)) for row in rows.values()],
                )
            }
        missing = [digest for digest in rows if digest not in ids]
        for start in range(0, len(missing), _LOOKUP_CHUNK):
            chunk = missing[start:start + _LOOKUP_CHUNK]
            for row in connection.execute(
                select(raw_payloads.c.id, raw_payloads.c.sha256).where(
                    raw_payloads.c.sha256.in_(chunk)
                )
            ):
                ids[row.sha256] = row.id
        return {identity: ids[digest] for identity, digest in by_identity.items()}

    @staticmethod
    def _insert_payloads_sqlite(
        connection: Connection, rows: list[tuple[Any, ...]]
    ) -> dict[str, int]:
        """SQLite: multi-row INSERTs (see ``_insert_rows_sqlite`` for the ids); returns the ids
        of the payloads of every statement that inserted all of its rows (the caller looks up
        the others). ``rows``: bound as ``_PAYLOAD_ROW`` binds them, the digest first."""
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        ids: dict[str, int] = {}
        params = list(chain.from_iterable(rows))
        width = len(_PAYLOAD_COLUMNS)
        try:
            start = 0
            for size in _sqlite_chunks(len(rows)):
                cursor.execute(
                    _sqlite_insert("raw_payloads", _PAYLOAD_COLUMNS, _PAYLOAD_ROW, size, "sha256"),
                    params[start * width:(start + size) * width],
                )
                if cursor.rowcount == size:
                    first_id = int(cursor.lastrowid or 0) - size + 1
                    for offset, row in enumerate(rows[start:start + size]):
                        ids[row[0]] = first_id + offset
                start += size
        finally:
            cursor.close()
        return ids

    def _insert_rows(
        self, connection: Connection, rows: list[tuple[Any, ...]]
    ) -> list[tuple[int, bool]]:
        """Insert what is new; for every row, in order: (record id, inserted now)."""
        if self._dialect == "sqlite":
            return self._insert_rows_sqlite(connection, rows)
        rows = [_plain(row) for row in rows]
        new_ids: dict[_ReadingKey, int] = {}
        as_dicts = [dict(zip(_COLUMNS, row, strict=True)) for row in rows]
        for inserted in connection.execute(self._insert_vitals, as_dicts):
            new_ids[(inserted.device_id, inserted.vital, inserted.measured_at)] = inserted.id
        keys = [(row[_DEVICE], row[_VITAL], row[_MEASURED]) for row in rows]
        missing = {key for key in keys if key not in new_ids}
        existing = self._existing_ids(connection, missing) if missing else {}
        claimed: set[_ReadingKey] = set()  # a key is new for its first row in the batch only
        outcome: list[tuple[int, bool]] = []
        for key in keys:
            if key in new_ids and key not in claimed:
                claimed.add(key)
                outcome.append((new_ids[key], True))
            else:
                outcome.append((new_ids.get(key) or existing[key], False))
        return outcome

    def _insert_rows_sqlite(
        self, connection: Connection, rows: list[tuple[Any, ...]]
    ) -> list[tuple[int, bool]]:
        """SQLite: the new rows in a few multi-row INSERTs; ids without reading rows back.

        Each statement is one step of SQLite, so one release of the GIL: a row-by-row INSERT
        released it once a row, and under load every release costs a wait for the receiver's
        thread to hand the GIL back (up to the switch interval), which was most of a batch's
        time. Ids: SQLite gives a new row "one larger than the largest ROWID in the table prior
        to the insert" (sqlite.org/autoinc.html; random only once the largest possible ROWID is
        used), and the rows of a VALUES list are inserted in order, so when a statement inserts
        all of its ``n`` rows their ids are ``lastrowid - n + 1 .. lastrowid``. A statement that
        met rows already stored (a re-sent reading) looks its rows up one by one: its new rows
        are the ``rowcount`` highest ids. Keys repeated inside the batch are inserted once.
        Times are bound as the text SQLAlchemy stores, so the unique key and every query agree.
        """
        keys = [(row[_DEVICE], row[_VITAL], row[_MEASURED]) for row in rows]
        unique: list[tuple[Any, ...]]
        slots: Sequence[int]  # each row's index in ``unique``
        if len(dict.fromkeys(keys)) == len(rows):  # the usual batch: no key twice
            unique, slots = rows, range(len(rows))
        else:
            first: dict[_ReadingKey, int] = {}
            unique, slots = [], []
            for key, row in zip(keys, rows, strict=True):
                index = first.get(key)
                if index is None:
                    index = first[key] = len(unique)
                    unique.append(row)
                slots.append(index)
        ids = [0] * len(unique)
        new = [False] * len(unique)
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            start = 0
            for size in _sqlite_chunks(len(unique)):
                chunk = unique[start:start + size]
                cursor.execute(
                    _sqlite_insert(
                        "vital_signs", _COLUMNS, _VITAL_ROW, size, "device_id, vital, measured_at"
                    ),
                    list(chain.from_iterable(chunk)),
                )
                inserted = cursor.rowcount
                last = int(cursor.lastrowid or 0)
                if inserted == size:
                    ids[start:start + size] = range(last - size + 1, last + 1)
                    new[start:start + size] = [True] * size
                else:
                    lowest_new = last - inserted + 1 if inserted > 0 else None
                    for offset, row in enumerate(chunk):
                        cursor.execute(_SQLITE_FIND, (row[_DEVICE], row[_VITAL], row[_MEASURED]))
                        found = cursor.fetchone()
                        if found is None:  # pragma: no cover - a conflict always has its row
                            raise RuntimeError("reading neither inserted nor found")
                        ids[start + offset] = int(found[0])
                        new[start + offset] = lowest_new is not None and found[0] >= lowest_new
                start += size
        finally:
            cursor.close()
        if unique is rows:  # every key once: each row's own outcome
            return list(zip(ids, new, strict=True))
        outcome: list[tuple[int, bool]] = []
        claimed: set[int] = set()  # a key is new for its first row in the batch only
        for index in slots:
            if new[index] and index not in claimed:
                claimed.add(index)
                outcome.append((ids[index], True))
            else:
                outcome.append((ids[index], False))
        return outcome

    @staticmethod
    def _results(
        readings: Sequence[Reading],
        resolved: list[Attributed | None],
        rejected: dict[int, ReadingResult],
        stored: list[tuple[int, bool]],
    ) -> list[ReadingResult]:
        results: list[ReadingResult] = []
        position = 0
        stored_outcome, duplicate = Outcome.STORED, Outcome.DUPLICATE
        for index, (reading, where) in enumerate(zip(readings, resolved, strict=True)):
            if where is None:
                results.append(rejected[index])
                continue
            measurements = reading.measurements
            if len(measurements) == 1:  # the usual reading: no loop, no list
                kind = measurements[0].kind
                record_id, is_new = stored[position]
                position += 1
                record_ids = {kind: record_id}
                new_kinds: tuple[VitalKind, ...] = (kind,) if is_new else ()
            else:
                record_ids = {}
                added: list[VitalKind] = []
                for measurement in measurements:
                    record_id, is_new = stored[position]
                    position += 1
                    record_ids[measurement.kind] = record_id
                    if is_new:
                        added.append(measurement.kind)
                new_kinds = tuple(added)
            results.append(ReadingResult(  # positional: keywords cost a third more per call
                stored_outcome if new_kinds else duplicate, record_ids, new_kinds,
                where.attribution, where.patient_id, where.bed_label,
            ))
        return results

    def _existing_ids(
        self, connection: Connection, keys: set[_ReadingKey]
    ) -> dict[_ReadingKey, int]:
        found: dict[_ReadingKey, int] = {}
        ordered = sorted(keys, key=lambda k: (k[0] or "", k[1], k[2]))
        for start in range(0, len(ordered), _LOOKUP_CHUNK):
            chunk = ordered[start:start + _LOOKUP_CHUNK]
            if self._dialect == "postgresql":
                condition = tuple_(
                    vital_signs.c.device_id, vital_signs.c.vital, vital_signs.c.measured_at
                ).in_(chunk)
            else:
                condition = or_(*(
                    and_(
                        vital_signs.c.device_id == device_id,
                        vital_signs.c.vital == vital,
                        vital_signs.c.measured_at == measured_at,
                    )
                    for device_id, vital, measured_at in chunk
                ))
            for row in connection.execute(
                select(
                    vital_signs.c.id,
                    vital_signs.c.device_id,
                    vital_signs.c.vital,
                    vital_signs.c.measured_at,
                ).where(condition)
            ):
                found[(row.device_id, row.vital, row.measured_at)] = row.id
        return found

    def _update_devices(
        self,
        connection: Connection,
        readings: Sequence[Reading],
        resolved: list[Attributed | None],
        received_texts: dict[int, str],
    ) -> None:
        """Last seen, battery and signal of registered devices; the list of unknown ones.

        ``received_texts``: the SQLite text of receipt times already formatted for the rows.
        """
        latest: dict[int, dict[str, Any]] = {}
        unknown: dict[str, dict[str, Any]] = {}
        for reading, where in zip(readings, resolved, strict=True):
            if where is None:
                continue
            # A device's entry built for its first reading only (setdefault built one a reading).
            if where.attribution is Attribution.UNKNOWN_DEVICE:
                entry = unknown.get(reading.device_id)
                if entry is None:
                    entry = unknown[reading.device_id] = {
                        "device_id": reading.device_id,
                        "first_seen_at": reading.received_at,
                        "last_seen_at": reading.received_at,
                        "last_input": reading.input._value_,
                        "reading_count": 0,
                    }
                entry["reading_count"] += 1
                if reading.received_at >= entry["last_seen_at"]:
                    entry["last_seen_at"] = reading.received_at
                    entry["last_input"] = reading.input._value_
                continue
            assert where.device_ref is not None
            state = latest.get(where.device_ref)
            if state is None:
                state = latest[where.device_ref] = {
                    "last_seen_at": reading.received_at,
                    "last_input": reading.input._value_,
                    "measured_at": None,
                }
            elif reading.received_at >= state["last_seen_at"]:
                state["last_seen_at"] = reading.received_at
                state["last_input"] = reading.input._value_
            if state["measured_at"] is None or reading.measured_at >= state["measured_at"]:
                state["measured_at"] = reading.measured_at
                if reading.battery_level is not None:
                    state["battery_level"] = reading.battery_level
                if reading.signal_quality is not None:
                    state["signal_quality"] = reading.signal_quality
        if latest and self._dialect == "sqlite":
            params = [
                (
                    device_ref,
                    received_texts.get(id(state["last_seen_at"]))
                    or _sqlite_time(state["last_seen_at"]),
                    state["last_input"],
                    _float(state.get("battery_level")), _float(state.get("signal_quality")),
                )
                for device_ref, state in latest.items()
            ]
            cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:  # one UPDATE ... FROM (VALUES ...) per chunk, not one step per device
                start = 0
                for size in _sqlite_chunks(len(params)):
                    cursor.execute(
                        _sqlite_update_devices(size),
                        [value for row in params[start:start + size] for value in row],
                    )
                    start += size
            finally:
                cursor.close()
        elif latest:
            connection.execute(
                self._update_device,
                [
                    {
                        "ref": device_ref,
                        "seen": state["last_seen_at"],
                        "via": state["last_input"],
                        "battery": state.get("battery_level"),
                        "signal": state.get("signal_quality"),
                    }
                    for device_ref, state in latest.items()
                ],
            )
        if unknown:
            connection.execute(self._upsert_unknown, list(unknown.values()))
