"""The store on SQLite and PostgreSQL: migrations, dedupe, attribution, register, queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select

from tests.factories import T0, make_reading
from vitalstation.domain.errors import UserError
from vitalstation.pipeline.types import Attribution, Outcome
from vitalstation.storage import migrate
from vitalstation.storage.engine import make_engine
from vitalstation.storage.registry import Conflict, NotFound
from vitalstation.storage.schema import dead_letters, metadata, raw_payloads, vital_signs
from vitalstation.storage.store import Store, StoreUnavailable

ADMIN = "test:admin"


def count(store: Store, table) -> int:
    with store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def test_migrations_reach_head_and_are_idempotent(store: Store) -> None:
    assert store.schema_revision() == migrate.head_revision()
    assert migrate.upgrade(store.engine) == (migrate.head_revision(), migrate.head_revision())


def _vital_sign_indexes(engine) -> dict[str, tuple[str, ...]]:
    return {
        index["name"]: tuple(index["column_names"])
        for index in inspect(engine).get_indexes("vital_signs")
    }


def test_upgrading_from_the_first_schema_keeps_the_readings_and_reorders_their_indexes(
    store_url: str,
) -> None:
    # A data home as the first release left it (schema 0001) with a reading stored; then
    # every migration since, as the station runs them on start; then 0005 down and up again.
    engine = make_engine(store_url)
    config = migrate._alembic_config()
    if migrate.current_revision(engine) is not None:  # PostgreSQL: a copy of a migrated template
        metadata.drop_all(engine)
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE alembic_version")
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    engine.dispose()
    old = Store.open(store_url, upgrade=False)
    old.registry.add_device("DEV1", actor=ADMIN, at=T0 - timedelta(days=1))
    old.writer.write_readings([make_reading("DEV1", heart_rate=72, oxygen_saturation=97)], T0)
    assert _vital_sign_indexes(old.engine)["ix_vital_signs_patient_vital_time"] == (
        "patient_ref", "vital", "measured_at")
    old.close()

    store = Store.open(store_url)
    try:
        assert store.schema_revision() == migrate.head_revision()
        indexes = _vital_sign_indexes(store.engine)
        assert indexes["ix_vital_signs_patient_time_vital"] == (
            "patient_ref", "measured_at", "vital")
        assert indexes["ix_vital_signs_bed_time_vital"] == ("bed_ref", "measured_at", "vital")
        assert not {"ix_vital_signs_patient_vital_time", "ix_vital_signs_bed_vital_time"} & set(
            indexes)
        # The migrated database is the schema the station declares (no index missing or extra).
        with store.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
        assert [d for d in differences if "index" in str(d[0])] == []
        assert count(store, vital_signs) == 2
        again = store.writer.write_readings(
            [make_reading("DEV1", heart_rate=72, oxygen_saturation=97)], T0
        )
        assert again[0].outcome is Outcome.DUPLICATE

        with store.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0004")
        assert set(_vital_sign_indexes(store.engine)) >= {
            "ix_vital_signs_patient_vital_time", "ix_vital_signs_bed_vital_time"}
        assert migrate.upgrade(store.engine) == ("0004", migrate.head_revision())
        assert "ix_vital_signs_bed_time_vital" in _vital_sign_indexes(store.engine)
    finally:
        store.close()


def _alarm_indexes(engine) -> dict[str, tuple[str, ...]]:
    return {
        index["name"]: tuple(index["column_names"])
        for index in inspect(engine).get_indexes("alarms")
    }


def test_schema_0006_drops_the_alarm_key_index_and_its_downgrade_puts_it_back(
    store: Store,
) -> None:
    assert "ix_alarms_alarm_key" not in _alarm_indexes(store.engine)
    config = migrate._alembic_config()
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0005")
    assert _alarm_indexes(store.engine)["ix_alarms_alarm_key"] == ("alarm_key",)
    assert migrate.upgrade(store.engine) == ("0005", migrate.head_revision())
    assert "ix_alarms_alarm_key" not in _alarm_indexes(store.engine)


def test_sqlite_runs_in_wal_mode(tmp_path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'x.db'}")
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    store.close()


def test_unknown_database_kind_and_unreachable_server_are_clear_errors(tmp_path) -> None:
    with pytest.raises(StoreUnavailable, match="unsupported database 'mysql'"):
        Store.open("mysql://localhost/x")
    with pytest.raises(StoreUnavailable, match="cannot open the database"):
        Store.open("postgresql+psycopg://nobody:secret@127.0.0.1:1/none")
    with pytest.raises(StoreUnavailable) as info:
        Store.open("postgresql+psycopg://nobody:secret@127.0.0.1:1/none")
    assert "secret" not in str(info.value)


def test_a_reading_is_stored_once_whatever_sends_it_again(store: Store) -> None:
    first = store.writer.write_readings([make_reading(heart_rate=72, oxygen_saturation=97)], T0)
    assert first[0].outcome is Outcome.STORED
    assert set(first[0].new_kinds) == {"heart_rate", "oxygen_saturation"}
    again = store.writer.write_readings(
        [make_reading(heart_rate=72, oxygen_saturation=97), make_reading(heart_rate=72)], T0
    )
    assert [r.outcome for r in again] == [Outcome.DUPLICATE, Outcome.DUPLICATE]
    assert again[0].record_ids == first[0].record_ids
    assert again[0].new_kinds == ()
    assert count(store, vital_signs) == 2


def test_duplicates_inside_one_batch_are_stored_once(store: Store) -> None:
    results = store.writer.write_readings([make_reading(), make_reading(), make_reading(at=1)], T0)
    assert [r.outcome for r in results] == [Outcome.STORED, Outcome.DUPLICATE, Outcome.STORED]
    assert results[0].record_ids == results[1].record_ids
    assert count(store, vital_signs) == 2


def test_a_new_vital_at_a_known_time_is_stored(store: Store) -> None:
    store.writer.write_readings([make_reading(heart_rate=70)], T0)
    results = store.writer.write_readings([make_reading(heart_rate=70, respiratory_rate=16)], T0)
    assert results[0].outcome is Outcome.STORED
    assert results[0].new_kinds == ("respiratory_rate",)
    assert count(store, vital_signs) == 2


def test_times_are_utc_aware_and_exact_to_the_microsecond(store: Store) -> None:
    at = T0 + timedelta(microseconds=123456)
    store.writer.write_readings([make_reading(at=at)], T0)
    (record,) = store.queries.readings(device_id="BSM_G101")
    assert record.measured_at == at
    assert record.measured_at.utcoffset() == timedelta(0)


def test_original_value_and_unit_are_kept(store: Store) -> None:
    from vitalstation.domain.readings import Measurement
    from vitalstation.domain.vitals import Unit, VitalKind, fahrenheit_to_celsius

    reading = make_reading()
    reading = type(reading)(
        **{
            **{f: getattr(reading, f) for f in reading.__slots__},
            "measurements": (
                Measurement(VitalKind.TEMPERATURE, fahrenheit_to_celsius(101.5), 101.5,
                            Unit.FAHRENHEIT),
            ),
        }
    )
    store.writer.write_readings([reading], T0)
    (record,) = store.queries.readings(device_id="BSM_G101")
    assert record.vital == "temperature"
    assert record.unit == "Cel"
    assert record.value == pytest.approx(38.6111111)
    assert (record.original_value, record.original_unit) == (101.5, "[degF]")


def test_raw_payloads_are_kept_once_and_referenced(store: Store) -> None:
    raw = '{"deviceid": "BSM_G101", "datatype": "HeartRate", "value": 80}'
    batch = [make_reading(raw=raw), make_reading(at=1, raw=raw)]
    store.writer.write_readings(batch, T0)
    store.writer.write_readings([make_reading(at=2, raw=str(raw))], T0)
    assert count(store, raw_payloads) == 1
    with store.engine.connect() as connection:
        refs = connection.execute(select(vital_signs.c.payload_ref).distinct()).scalars().all()
    assert len(refs) == 1 and refs[0] is not None


def test_unknown_device_readings_are_kept_and_listed(store: Store) -> None:
    results = store.writer.write_readings(
        [make_reading("STRANGER", 0), make_reading("STRANGER", 1)], T0
    )
    assert {r.attribution for r in results} == {Attribution.UNKNOWN_DEVICE}
    (seen,) = store.registry.list_unknown_devices()
    assert (seen.device_id, seen.reading_count, seen.last_input) == ("STRANGER", 2, "mqtt")
    assert count(store, vital_signs) == 2
    store.registry.add_device("STRANGER", actor=ADMIN, at=T0)
    assert store.registry.list_unknown_devices() == []


def _ward(store: Store) -> None:
    registry = store.registry
    registry.add_patient("P1", "Ada Lovelace", actor=ADMIN, at=T0)
    registry.add_patient("P2", "Alan Turing", actor=ADMIN, at=T0)
    registry.add_bed("4", "5N", actor=ADMIN, at=T0)
    registry.add_bed("5", "5N", actor=ADMIN, at=T0)
    registry.add_device("BSM_G101", name="Monitor 1", device_type="bedside", actor=ADMIN, at=T0)


def test_readings_belong_to_the_patient_in_the_bed_at_measurement_time(store: Store) -> None:
    _ward(store)
    registry = store.registry
    registry.assign_device("BSM_G101", bed_label="4", actor=ADMIN, at=T0)
    registry.admit("P1", "4", actor=ADMIN, at=T0 + timedelta(minutes=1))
    registry.discharge("P1", actor=ADMIN, at=T0 + timedelta(minutes=10))
    registry.admit("P2", "4", actor=ADMIN, at=T0 + timedelta(minutes=20))
    results = store.writer.write_readings(
        [
            make_reading(at=30),  # bed 4 empty
            make_reading(at=5 * 60),  # P1
            make_reading(at=15 * 60),  # empty again
            make_reading(at=25 * 60),  # P2
            # A backlog arriving late still belongs to whoever was there when it was measured.
        ],
        T0 + timedelta(hours=1),
    )
    assert [(r.attribution, r.patient_id, r.bed_label) for r in results] == [
        (Attribution.BED, None, "4"),
        (Attribution.PATIENT, "P1", "4"),
        (Attribution.BED, None, "4"),
        (Attribution.PATIENT, "P2", "4"),
    ]
    records = list(store.queries.readings(device_id="BSM_G101"))
    assert [r.patient_id for r in records] == [None, "P1", None, "P2"]


def test_device_assigned_to_a_patient_and_reassigned(store: Store) -> None:
    _ward(store)
    registry = store.registry
    assert store.writer.write_readings([make_reading(at=0)], T0)[0].attribution is (
        Attribution.UNASSIGNED
    )
    registry.assign_device("BSM_G101", patient_id="P1", actor=ADMIN, at=T0 + timedelta(seconds=10))
    registry.assign_device("BSM_G101", patient_id="P2", actor=ADMIN, at=T0 + timedelta(seconds=20))
    results = store.writer.write_readings([make_reading(at=15), make_reading(at=25)], T0)
    assert [r.patient_id for r in results] == ["P1", "P2"]
    with pytest.raises(Conflict, match="later than this one"):
        registry.assign_device("BSM_G101", bed_label="4", actor=ADMIN, at=T0)
    registry.assign_device("BSM_G101", actor=ADMIN, at=T0 + timedelta(seconds=30))
    assert store.writer.write_readings([make_reading(at=35)], T0)[0].attribution is (
        Attribution.UNASSIGNED
    )


def test_a_retired_device_is_refused_with_the_reason(store: Store) -> None:
    _ward(store)
    store.registry.set_device_status("BSM_G101", "retired", actor=ADMIN, at=T0)
    (result,) = store.writer.write_readings([make_reading()], T0)
    assert result.outcome is Outcome.REJECTED
    assert "retired" in result.errors["device_id"]
    assert count(store, vital_signs) == 0


def test_device_last_seen_battery_and_signal(store: Store) -> None:
    _ward(store)
    store.writer.write_readings(
        [make_reading(at=0, battery=80, signal=90), make_reading(at=1, battery=79)], T0
    )
    (device,) = store.registry.list_devices()
    assert device.battery_level == 79
    assert device.signal_quality == 90
    assert device.last_input == "mqtt"
    assert device.last_seen_at is not None


def test_register_round_trip_and_its_refusals(store: Store) -> None:
    _ward(store)
    registry = store.registry
    registry.admit("P1", "4", actor=ADMIN, at=T0)
    assert [(p.patient_id, p.bed) for p in registry.list_patients()] == [("P1", "4"), ("P2", None)]
    assert [(b.label, b.patient_id) for b in registry.list_beds()] == [("4", "P1"), ("5", None)]
    with pytest.raises(Conflict, match="already exists"):
        registry.add_patient("P1", "Someone", actor=ADMIN, at=T0)
    with pytest.raises(Conflict, match="occupied by patient P1"):
        registry.admit("P2", "4", actor=ADMIN, at=T0)
    with pytest.raises(Conflict, match="already in bed 4"):
        registry.admit("P1", "5", actor=ADMIN, at=T0)
    with pytest.raises(NotFound, match="no bed 9"):
        registry.admit("P2", "9", actor=ADMIN, at=T0)
    with pytest.raises(NotFound, match="no patient P9"):
        registry.discharge("P9", actor=ADMIN, at=T0)
    with pytest.raises(Conflict, match="not admitted"):
        registry.discharge("P2", actor=ADMIN, at=T0)
    with pytest.raises(UserError, match="must not be empty"):
        registry.add_bed("  ", None, actor=ADMIN, at=T0)
    registry.assign_device("BSM_G101", bed_label="4", actor=ADMIN, at=T0)
    (device,) = registry.list_devices()
    assert (device.device_id, device.bed, device.status) == ("BSM_G101", "4", "active")
    assert device.patient_id == "P1"  # the patient in its bed
    assert registry.discharge("P1", actor=ADMIN, at=T0 + timedelta(hours=1)) == "4"


def test_dead_letters_are_kept_with_the_reason(store: Store) -> None:
    store.writer.write_dead_letter("mqtt", "healthcare/monitors/X", "not JSON", "\x00garbage", T0)
    with store.engine.connect() as connection:
        row = connection.execute(select(dead_letters)).one()
    # NUL is escaped, not lost: PostgreSQL cannot hold it in text.
    assert (row.input, row.reason, row.excerpt) == ("mqtt", "not JSON", "\\u0000garbage")


def test_readings_query_filters_by_device_and_time(store: Store) -> None:
    store.writer.write_readings(
        [make_reading("A", at) for at in (0, 60, 120)] + [make_reading("B", 30)], T0
    )
    assert len(list(store.queries.readings(device_id="A"))) == 3
    since = list(store.queries.readings(device_id="A", since=T0 + timedelta(seconds=60)))
    assert [r.measured_at for r in since] == [
        T0 + timedelta(seconds=60), T0 + timedelta(seconds=120)
    ]
    assert len(list(store.queries.readings(device_id="A", limit=1))) == 1
