"""The single writer: commits batches of readings, deduplicated by the database's unique key.

Only the pipeline thread calls :meth:`ReadingWriter.write_readings`. Each call is one
transaction: the raw payloads, every vital-sign record, the devices' last-seen state and the
unknown-device list are committed together or not at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
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
from vitalstation.domain.vitals import VitalKind
from vitalstation.pipeline.types import ActivityEntry, Attribution, Outcome, ReadingResult
from vitalstation.storage.directory import Attributed, Directory
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
_SQLITE_INSERT = (
    f"INSERT INTO vital_signs ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _COLUMNS)}) "
    "ON CONFLICT (device_id, vital, measured_at) DO NOTHING"
)
_SQLITE_INSERT_PAYLOAD = (
    "INSERT INTO raw_payloads (sha256, input, source_ref, received_at, content) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING"
)
_SQLITE_FIND = "SELECT id FROM vital_signs WHERE device_id = ? AND vital = ? AND measured_at = ?"
_SQLITE_VERSION = "SELECT version FROM directory_version WHERE id = 1"
_SQLITE_UPDATE_DEVICE = (
    "UPDATE devices SET last_seen_at = ?, last_input = ?, "
    "battery_level = coalesce(?, battery_level), signal_quality = coalesce(?, signal_quality) "
    "WHERE id = ?"
)
_ACTIVITY_COLUMNS = (
    "at", "input", "action", "device_id", "key_prefix", "peer", "endpoint", "method", "status",
    "duration_ms", "error",
)
_SQLITE_INSERT_ACTIVITY = (
    f"INSERT INTO input_activity ({', '.join(_ACTIVITY_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _ACTIVITY_COLUMNS)})"
)
# The directory version, as every batch asks it (built once: building it costs more than
# running it).
_VERSION = select(directory_version.c.version).where(directory_version.c.id == 1)


def _sqlite_time(value: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores: naive UTC with microseconds."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def storable_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` and made storable on every backend.

    PostgreSQL refuses NUL characters and lone surrogates in text: payloads from hostile or
    broken devices carry both, and must still be kept, so they are escaped (``\\u0000``).
    """
    text = text[:limit]
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


_ENUM_COLUMNS = tuple(
    _COLUMNS.index(name)
    for name in ("attribution", "vital", "unit", "original_unit", "input", "data_source")
)


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
        with self._engine.begin() as connection:
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
                for measurement in reading.measurements:
                    # In _COLUMNS order. The enums are StrEnums, bound as their text by
                    # sqlite3 as they are (``_plain`` turns them into str for PostgreSQL).
                    rows.append((
                        reading.device_id, where.device_ref, where.patient_ref, where.bed_ref,
                        where.attribution, measurement.kind, measurement.value,
                        measurement.unit, measurement.original_value,
                        measurement.original_unit, reading.measured_at,
                        reading.received_at, reading.input, reading.data_source,
                        reading.signal_quality, reading.battery_level, payload_ref, notes,
                    ))
            stored = self._insert_rows(connection, rows) if rows else []
            results = self._results(readings, resolved, rejected, stored)
            self._update_devices(connection, readings, resolved)
        return results

    def write_dead_letter(
        self, input: str, source_ref: str | None, reason: str, excerpt: str, at: datetime
    ) -> None:
        """Keep a payload an input could not turn into readings."""
        with self._engine.begin() as connection:
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
        with self._engine.begin() as connection:
            if rows and self._dialect == "sqlite":
                # The driver's executemany: SQLAlchemy's per-row parameter processing was most
                # of the cost of logging a busy receiver's requests.
                cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                try:
                    cursor.executemany(_SQLITE_INSERT_ACTIVITY, [
                        (_sqlite_time(row[0]), *row[1:]) for row in rows
                    ])
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
        by_identity: dict[int, tuple[str, Reading]] = {}
        for reading in readings:
            if reading.raw and id(reading.raw) not in by_identity:
                digest = hashlib.sha256(reading.raw.encode("utf-8", "surrogatepass")).hexdigest()
                by_identity[id(reading.raw)] = (digest, reading)
        if not by_identity:
            return {}
        rows = {}
        for digest, reading in by_identity.values():
            rows[digest] = {
                "sha256": digest,
                "input": reading.input.value,
                "source_ref": storable_text(reading.source_ref or "", 500) or None,
                "received_at": reading.received_at,
                "content": storable_text(reading.raw or "", MAX_RAW_CHARS),
            }
        if self._dialect == "sqlite":
            ids = self._insert_payloads_sqlite(connection, list(rows.values()))
        else:
            ids = {
                row.sha256: row.id
                for row in connection.execute(self._insert_raw, list(rows.values()))
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
        return {identity: ids[digest] for identity, (digest, _) in by_identity.items()}

    @staticmethod
    def _insert_payloads_sqlite(
        connection: Connection, rows: list[dict[str, Any]]
    ) -> dict[str, int]:
        """SQLite: one prepared INSERT per payload on the driver's cursor (see
        ``_insert_rows_sqlite``); returns the ids of the payloads inserted now."""
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        ids: dict[str, int] = {}
        try:
            for row in rows:
                cursor.execute(
                    _SQLITE_INSERT_PAYLOAD,
                    (row["sha256"], row["input"], row["source_ref"],
                     _sqlite_time(row["received_at"]), row["content"]),
                )
                if cursor.rowcount == 1:
                    ids[row["sha256"]] = int(cursor.lastrowid or 0)
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
        """SQLite: one prepared INSERT per row on the driver's cursor.

        sqlite3 reuses the prepared statement, so a row costs a few microseconds and tells
        directly whether it was inserted (``rowcount``) and under which id (``lastrowid``):
        about twice the throughput of a RETURNING multi-row insert that must be matched back
        to its rows. Times are bound in exactly the text form SQLAlchemy stores (naive UTC,
        microseconds), so the unique key and every query agree with the rest of the store.
        """
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        outcome: list[tuple[int, bool]] = []
        received: tuple[datetime | None, str] = (None, "")  # a batch's readings share it often
        try:
            for row in rows:
                params = list(row)
                params[_MEASURED] = _sqlite_time(row[_MEASURED])
                if row[_RECEIVED] is not received[0]:
                    received = (row[_RECEIVED], _sqlite_time(row[_RECEIVED]))
                params[_RECEIVED] = received[1]
                cursor.execute(_SQLITE_INSERT, params)
                if cursor.rowcount == 1:
                    outcome.append((int(cursor.lastrowid or 0), True))
                    continue
                cursor.execute(_SQLITE_FIND, (row[_DEVICE], row[_VITAL], params[_MEASURED]))
                found = cursor.fetchone()
                if found is None:  # pragma: no cover - a conflict always has its row
                    raise RuntimeError("reading neither inserted nor found")
                outcome.append((int(found[0]), False))
        finally:
            cursor.close()
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
        for index, reading in enumerate(readings):
            if index in rejected:
                results.append(rejected[index])
                continue
            where = resolved[index]
            assert where is not None
            record_ids: dict[VitalKind, int] = {}
            new_kinds: list[VitalKind] = []
            for measurement in reading.measurements:
                record_id, is_new = stored[position]
                position += 1
                record_ids[measurement.kind] = record_id
                if is_new:
                    new_kinds.append(measurement.kind)
            results.append(ReadingResult(
                Outcome.STORED if new_kinds else Outcome.DUPLICATE,
                record_ids=record_ids,
                new_kinds=tuple(new_kinds),
                attribution=where.attribution,
                patient_id=where.patient_id,
                bed_label=where.bed_label,
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
    ) -> None:
        """Last seen, battery and signal of registered devices; the list of unknown ones."""
        latest: dict[int, dict[str, Any]] = {}
        unknown: dict[str, dict[str, Any]] = {}
        for reading, where in zip(readings, resolved, strict=True):
            if where is None:
                continue
            if where.attribution is Attribution.UNKNOWN_DEVICE:
                entry = unknown.setdefault(reading.device_id, {
                    "device_id": reading.device_id,
                    "first_seen_at": reading.received_at,
                    "last_seen_at": reading.received_at,
                    "last_input": reading.input.value,
                    "reading_count": 0,
                })
                entry["reading_count"] += 1
                if reading.received_at >= entry["last_seen_at"]:
                    entry["last_seen_at"] = reading.received_at
                    entry["last_input"] = reading.input.value
                continue
            assert where.device_ref is not None
            state = latest.setdefault(where.device_ref, {
                "last_seen_at": reading.received_at,
                "last_input": reading.input.value,
                "measured_at": None,
            })
            if reading.received_at >= state["last_seen_at"]:
                state["last_seen_at"] = reading.received_at
                state["last_input"] = reading.input.value
            if state["measured_at"] is None or reading.measured_at >= state["measured_at"]:
                state["measured_at"] = reading.measured_at
                if reading.battery_level is not None:
                    state["battery_level"] = reading.battery_level
                if reading.signal_quality is not None:
                    state["signal_quality"] = reading.signal_quality
        if latest and self._dialect == "sqlite":
            cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.executemany(_SQLITE_UPDATE_DEVICE, [
                    (
                        _sqlite_time(state["last_seen_at"]), state["last_input"],
                        state.get("battery_level"), state.get("signal_quality"), device_ref,
                    )
                    for device_ref, state in latest.items()
                ])
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
