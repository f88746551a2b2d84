"""The single writer's batch paths: multi-row statements, ids without reading rows back.

The SQLite writer inserts a batch in a few multi-row statements and works the new rows' ids out
from ``lastrowid``; these tests check every id against the row the database really holds, on
both backends, across chunk boundaries and with re-sent readings mixed into the new ones.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import sqlite

from tests.factories import T0, make_reading
from vitalstation.domain.readings import Reading
from vitalstation.pipeline.types import ActivityEntry, Outcome, ReadingResult
from vitalstation.storage.schema import input_activity, raw_payloads, vital_signs
from vitalstation.storage.store import Store
from vitalstation.storage.writer import _sqlite_chunks, _sqlite_time

ADMIN = "test:admin"


def _rows_by_id(store: Store) -> dict[int, tuple[str, str, object, float, int | None]]:
    with store.engine.connect() as connection:
        return {
            row.id: (row.device_id, row.vital, row.measured_at, row.value, row.payload_ref)
            for row in connection.execute(select(vital_signs))
        }


def _check_ids(store: Store, readings: list[Reading], results: list[ReadingResult]) -> None:
    """Every record id a result names is the row of that reading's vital, with its value."""
    rows = _rows_by_id(store)
    for reading, result in zip(readings, results, strict=True):
        assert result.durable
        for measurement in reading.measurements:
            device, vital, measured, value, _ = rows[result.record_ids[measurement.kind]]
            assert (device, vital, measured) == (
                reading.device_id, measurement.kind.value, reading.measured_at
            )
            assert value == measurement.value


def test_chunks_are_powers_of_two_that_add_up() -> None:
    for count in (0, 1, 2, 3, 37, 255, 256, 257, 1000, 2001):
        sizes = _sqlite_chunks(count)
        assert sum(sizes) == count
        assert all(size & (size - 1) == 0 and size <= 256 for size in sizes)


@pytest.mark.parametrize("count", [1, 3, 37, 300, 1000])
def test_every_id_names_its_own_row(store: Store, count: int) -> None:
    readings = [
        make_reading(f"DEV{n % 7}", n, heart_rate=60 + n % 50, oxygen_saturation=90 + n % 10)
        for n in range(count)
    ]
    results = store.writer.write_readings(readings, T0)
    assert [r.outcome for r in results] == [Outcome.STORED] * count
    assert all(len(r.new_kinds) == 2 for r in results)
    _check_ids(store, readings, results)
    assert len(_rows_by_id(store)) == 2 * count


def test_resent_readings_mixed_with_new_ones_keep_their_ids(store: Store) -> None:
    first = [make_reading("DEV", n, heart_rate=70 + n % 20) for n in range(0, 600, 3)]
    stored = store.writer.write_readings(first, T0)
    ids = {r.measured_at: s.record_ids for r, s in zip(first, stored, strict=True)}
    # Every reading of 0..599: a third already stored, scattered through every chunk; one new
    # vital added to some stored readings (a new record at a known time).
    second = []
    for n in range(600):
        if n % 3 == 0 and n % 9 == 0:
            second.append(make_reading("DEV", n, heart_rate=70 + n % 20, respiratory_rate=14))
        else:
            second.append(make_reading("DEV", n, heart_rate=70 + n % 20))
    results = store.writer.write_readings(second, T0)
    _check_ids(store, second, results)
    for reading, result in zip(second, results, strict=True):
        n = round((reading.measured_at - T0).total_seconds())
        if n % 3:
            assert result.outcome is Outcome.STORED and result.new_kinds == ("heart_rate",)
        else:
            assert result.record_ids["heart_rate"] == ids[reading.measured_at]["heart_rate"]
            if n % 9 == 0:
                assert result.outcome is Outcome.STORED
                assert result.new_kinds == ("respiratory_rate",)
            else:
                assert result.outcome is Outcome.DUPLICATE and result.new_kinds == ()
    assert len(_rows_by_id(store)) == 600 + 600 // 9 + 1


def test_duplicates_inside_a_large_batch_are_stored_once(store: Store) -> None:
    readings = [make_reading("DEV", n % 150, heart_rate=80) for n in range(450)]
    results = store.writer.write_readings(readings, T0)
    assert [r.outcome for r in results] == [Outcome.STORED] * 150 + [Outcome.DUPLICATE] * 300
    for n in range(150, 450):
        assert results[n].record_ids == results[n % 150].record_ids
    _check_ids(store, readings, results)
    assert len(_rows_by_id(store)) == 150


def test_raw_payloads_new_and_known_in_one_batch(store: Store) -> None:
    old = [make_reading("DEV", n, raw=f'{{"n": {n}}}') for n in range(0, 40, 2)]
    store.writer.write_readings(old, T0)
    readings = [make_reading("DEV", n, raw=f'{{"n": {n}}}') for n in range(40, 80)]
    readings += [make_reading("DEV", n + 1000, raw=f'{{"n": {n}}}') for n in range(40)]
    store.writer.write_readings(readings, T0)
    with store.engine.connect() as connection:
        payloads = {row.id: row.content for row in connection.execute(select(raw_payloads))}
    assert len(payloads) == 80
    rows = _rows_by_id(store)
    for reading in old + readings:
        (row,) = [r for r in rows.values() if r[2] == reading.measured_at]
        assert payloads[row[4]] == reading.raw


def test_one_payload_row_for_equal_payloads_of_one_batch(store: Store) -> None:
    # Equal texts in distinct str objects (two messages with the same bytes): one row, both
    # readings pointing at it, with the source and receipt time of the first.
    first = "".join(['{"n": ', "1}"])
    second = "".join(['{"n": 1', "}"])
    assert first == second and first is not second
    readings = [
        replace(make_reading("DEV", 0, raw=first), source_ref="topic/a"),
        replace(make_reading("DEV", 1, raw=second), source_ref="topic/b"),
        replace(make_reading("DEV", 2, raw="other"), source_ref=None),
    ]
    store.writer.write_readings(readings, T0)
    with store.engine.connect() as connection:
        payloads = {row.id: row for row in connection.execute(select(raw_payloads))}
    assert len(payloads) == 2
    refs = [row[4] for row in sorted(_rows_by_id(store).values(), key=lambda r: r[2])]
    assert refs[0] == refs[1] != refs[2]
    assert payloads[refs[0]].content == first
    assert payloads[refs[0]].source_ref == "topic/a"
    assert payloads[refs[0]].received_at.replace(tzinfo=None) == readings[0].received_at.replace(
        tzinfo=None
    )
    assert payloads[refs[2]].source_ref is None


def test_many_devices_last_seen_in_one_batch(store: Store) -> None:
    for n in range(40):
        store.registry.add_device(f"DEV{n:02d}", actor=ADMIN, at=T0)
    readings = [
        make_reading(f"DEV{n % 40:02d}", n, battery=float(n), signal=None if n >= 40 else 50.0)
        for n in range(80)
    ]
    store.writer.write_readings(readings, T0)
    devices = {d.device_id: d for d in store.registry.list_devices()}
    for n in range(40):
        device = devices[f"DEV{n:02d}"]
        assert device.battery_level == n + 40  # the latest measurement's
        assert device.signal_quality == 50.0  # kept when the latest did not carry it
        assert device.last_input == "mqtt"
        assert device.last_seen_at == T0 + timedelta(seconds=n + 40, milliseconds=50)


def test_activity_rows_in_multi_row_statements(store: Store) -> None:
    entries = [
        ActivityEntry(at=T0 + timedelta(milliseconds=n), input="rest", action="data_post",
                      status=200, device_id=f"DEV{n % 3}", endpoint="/api/iot/vitals/",
                      method="POST", duration_ms=1.5, error=None if n % 5 else "x")
        for n in range(300)
    ]
    store.writer.write_activity(entries, None)
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(input_activity.c.at, input_activity.c.device_id, input_activity.c.error)
            .order_by(input_activity.c.at)
        ).all()
    assert [(r.at, r.device_id, r.error) for r in rows] == [
        (e.at, e.device_id, e.error) for e in entries
    ]


def test_sqlite_time_is_the_text_sqlalchemy_stores() -> None:
    # The minute cache must not change the text: the unique key and every query compare it.
    column = sqlite.DATETIME()
    process = column.bind_processor(sqlite.dialect())
    assert process is not None
    zones = (UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30)))
    times = [
        datetime(year, 1 + n % 12, 1 + n % 28, n % 24, n % 60, (7 * n) % 60, micro, tzinfo=zone)
        for n, (year, micro, zone) in enumerate(
            (year, micro, zone)
            for year in (5, 999, 1970, 2026, 9998)
            for micro in (0, 1, 999_999)
            for zone in zones
        )
    ]
    for _ in range(2):  # made, then from the cache
        for value in times:
            expected = process(value.astimezone(UTC).replace(tzinfo=None))
            assert _sqlite_time(value) == expected


def _sqlite_file_store(tmp_path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'station.db'}")


def test_sqlite_writer_keeps_one_connection_with_its_journal_in_memory(tmp_path) -> None:
    # The writer's own connection: the same one from commit to commit (its page cache stays
    # warm), with statement journals in memory; every other connection keeps the default.
    store = _sqlite_file_store(tmp_path)
    try:
        seen = []
        for n in range(3):
            store.writer.write_readings([make_reading("DEV1", n, heart_rate=70)], T0)
            own = store.writer._own.connection
            assert own is not None
            seen.append(own.connection.dbapi_connection)
        assert seen[0] is seen[1] is seen[2]
        assert seen[0].execute("PRAGMA temp_store").fetchone() == (2,)
        with store.engine.connect() as other:
            assert other.connection.dbapi_connection is not seen[0]
            assert other.exec_driver_sql("PRAGMA temp_store").scalar_one() == 0
    finally:
        store.close()


def test_sqlite_writer_replaces_a_connection_that_failed(tmp_path) -> None:
    store = _sqlite_file_store(tmp_path)
    try:
        store.writer.write_readings([make_reading("DEV1", 0, heart_rate=70)], T0)
        broken = store.writer._own.connection
        assert broken is not None
        broken.connection.dbapi_connection.close()  # as a connection the database dropped
        with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the driver raises
            store.writer.write_readings([make_reading("DEV1", 1, heart_rate=71)], T0)
        results = store.writer.write_readings([make_reading("DEV1", 1, heart_rate=71)], T0)
        assert results[0].outcome is Outcome.STORED
        assert store.writer._own.connection is not broken
        assert len(_rows_by_id(store)) == 2
    finally:
        store.close()


def test_closing_the_store_closes_the_writers_connection_and_checkpoints(tmp_path) -> None:
    store = _sqlite_file_store(tmp_path)
    store.writer.write_readings([make_reading("DEV1", 0, heart_rate=70)], T0)
    own = store.writer._own.connection
    assert own is not None
    store.close()
    assert own.closed and store.writer._own.connection is None
    # The last connection closed moved the WAL into the database and removed it.
    assert not (tmp_path / "station.db-wal").exists()
    reopened = _sqlite_file_store(tmp_path)
    try:
        assert len(_rows_by_id(reopened)) == 1
    finally:
        reopened.close()
