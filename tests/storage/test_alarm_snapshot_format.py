"""An alarm row's snapshot holds only what its columns do not (schema 0009): a restart still
gets every field of every open alarm back, from rows written either way, for every kind of
alarm the engine makes, on SQLite and PostgreSQL; and a downgrade writes the short snapshots
out in full, as an older station reads them."""

from __future__ import annotations

import json
from datetime import timedelta

from alembic import command
from sqlalchemy import select, update

from tests.alarms.support import T0, Ward
from tests.storage.support import persister
from vitalstation.alarms import (
    Alarm,
    AlarmKind,
    AlarmState,
    AlarmTransition,
    Attribution,
    Consciousness,
    Priority,
    TransitionKind,
)
from vitalstation.domain.vitals import VitalKind
from vitalstation.storage import migrate
from vitalstation.storage.alarms import SNAPSHOT_FIELDS, AlarmStore
from vitalstation.storage.json_text import json_text
from vitalstation.storage.schema import alarms
from vitalstation.storage.store import Store

RAISED_AT = T0 + timedelta(seconds=1, microseconds=250_000)
LATER = RAISED_AT + timedelta(minutes=3, microseconds=7)


def _alarms() -> tuple[Alarm, Alarm]:
    """Two open alarms with every field set to something of its own: one raised and updated
    in the same write, one updated in a later write (columns then set by an UPDATE)."""
    limit = Alarm(
        key="bed:12|limit.heart_rate.high", kind=AlarmKind.LIMIT, condition="heart_rate.high",
        priority=Priority.HIGH, state=AlarmState.ACKNOWLEDGED, raised_at=RAISED_AT,
        updated_at=LATER, message="Heart rate high: 150 /min (limit ≥ 131)",
        condition_present=True, latching=True, current_priority=Priority.MEDIUM,
        bed_label="12", patient_id="P1", device_id="DEV1", vital=VitalKind.HEART_RATE,
        value=128.5, worst_value=151.0, limit_value=131.0,
        measured_at=LATER - timedelta(milliseconds=5), update_count=17,
        audio_paused_until=LATER + timedelta(minutes=2), acknowledged_at=LATER,
        acknowledged_by="Nurse Joy",
    )
    technical = Alarm(
        key="device:DEV2|low_battery", kind=AlarmKind.TECHNICAL, condition="low_battery",
        priority=Priority.LOW, state=AlarmState.ACTIVE, raised_at=RAISED_AT,
        updated_at=RAISED_AT, message="Battery low on DEV2: 12 %", device_id="DEV2",
        value=12, limit_value=20.0, measured_at=RAISED_AT,
    )
    return limit, technical


def _write(store: Store) -> tuple[AlarmStore, dict[str, int]]:
    store.registry.add_patient("P1", "Ada", actor="test", at=T0)
    store.registry.add_bed("12", None, actor="test", at=T0)
    limit, technical = _alarms()
    alarm_store = AlarmStore(store.engine)
    first = limit._replace(state=AlarmState.ACTIVE, updated_at=RAISED_AT, update_count=0,
                           acknowledged_at=None, acknowledged_by=None,
                           audio_paused_until=None, value=150.0, worst_value=150.0)
    ids = alarm_store.write([
        AlarmTransition(TransitionKind.RAISED, first, RAISED_AT, "system", "engine", None,
                        AlarmState.ACTIVE),
        AlarmTransition(TransitionKind.RAISED, technical, RAISED_AT, "system", "engine", None,
                        AlarmState.ACTIVE),
    ], {})
    alarm_store.write([
        AlarmTransition(TransitionKind.ACKNOWLEDGED, limit, LATER, "Nurse Joy", "cli",
                        AlarmState.ACTIVE, AlarmState.ACKNOWLEDGED),
    ], ids)
    return alarm_store, ids


def _restored(alarm_store: AlarmStore) -> dict[str, Alarm]:
    return {alarm.key: alarm for alarm in alarm_store.load_snapshot().alarms}


def _expected(ids: dict[str, int]) -> dict[str, Alarm]:
    return {alarm.key: alarm._replace(alarm_id=ids[alarm.key]) for alarm in _alarms()}


def test_the_snapshot_holds_only_the_fields_without_a_column(store: Store) -> None:
    alarm_store, ids = _write(store)
    with store.engine.connect() as connection:
        texts = dict(connection.execute(select(alarms.c.alarm_key, alarms.c.snapshot)).all())
    for key, text in texts.items():
        assert sorted(json.loads(text)) == sorted(SNAPSHOT_FIELDS), key
    assert json.loads(texts["bed:12|limit.heart_rate.high"])["update_count"] == 17


def test_a_restart_gets_every_field_of_each_open_alarm_back(store: Store) -> None:
    alarm_store, ids = _write(store)
    assert _restored(alarm_store) == _expected(ids)
    for alarm in _restored(alarm_store).values():  # the same types, not only equal values
        assert isinstance(alarm.kind, AlarmKind) and isinstance(alarm.priority, Priority)
        assert alarm.raised_at.tzinfo is not None and alarm.updated_at.tzinfo is not None
    # A battery's level stays the integer it was (a float column would give 12.0).
    assert type(_restored(alarm_store)["device:DEV2|low_battery"].value) is int


def test_a_snapshot_written_in_full_before_0009_reads_the_same(store: Store) -> None:
    alarm_store, ids = _write(store)
    with store.engine.begin() as connection:
        for alarm in _alarms():  # as the station wrote them before: json_text(to_dict())
            connection.execute(update(alarms).where(alarms.c.id == ids[alarm.key]).values(
                snapshot=json_text(alarm.to_dict())))
    assert _restored(alarm_store) == _expected(ids)


def test_schema_0009_down_writes_the_snapshots_in_full_and_up_reads_them(store: Store) -> None:
    alarm_store, ids = _write(store)
    config = migrate._alembic_config()
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0008")
    with store.engine.connect() as connection:
        texts = dict(connection.execute(select(alarms.c.alarm_key, alarms.c.snapshot)).all())
    # What an older station reads: the whole alarm in the snapshot, as it wrote it.
    assert texts == {alarm.key: json_text(alarm.to_dict()) for alarm in _alarms()}
    assert migrate.upgrade(store.engine) == ("0008", migrate.head_revision())
    assert _restored(alarm_store) == _expected(ids)


def test_every_kind_of_alarm_the_engine_makes_comes_back_as_its_last_event_left_it(
    store: Store,
) -> None:
    """Limit (raised, worse, acknowledged, audio paused), NEWS2 and each technical condition,
    stored as the service stores them (ids learnt from each write): the restart's alarms are
    the last transitions' alarms, field for field. Fields whose columns are set only when the
    row is inserted (key, kind, raised_at, vital) are those the engine never changes."""
    store.registry.add_patient("P1", "Ada", actor="test", at=T0)
    store.registry.add_bed("12", None, actor="test", at=T0)
    alarm_store = AlarmStore(store.engine)
    ward = Ward()
    ids: dict[str, int] = {}
    last: dict[str, Alarm] = {}

    write = persister(ward, alarm_store, ids)

    def persist(transitions: list[AlarmTransition]) -> None:
        write(transitions)
        for transition in transitions:
            last[transition.alarm.key] = transition.alarm

    ward.engine.enter_news2("P1", consciousness=Consciousness.ALERT, on_oxygen=True)
    persist(ward.send(respiratory_rate=22, oxygen_saturation=95, blood_pressure_systolic=105,
                      heart_rate=150, temperature=38.4, battery=10, signal=30))
    ward.clock.advance(timedelta(seconds=2))
    persist(ward.send(heart_rate=190, battery=9, signal=25))  # worse: priority and value
    heart = ids["bed:12|limit.heart_rate.high"]
    persist(ward.engine.acknowledge(heart, actor="Nurse Joy", origin="cli"))
    persist(ward.engine.pause_audio(actor="Nurse Joy", origin="cli"))
    persist(ward.send(heart_rate=80, device="X9", bed=None, patient=None,
                      attribution=Attribution.UNKNOWN_DEVICE))
    persist(ward.send(heart_rate=150, device="DEV2", bed="12", patient="P1",
                      measured_at=ward.now() + timedelta(seconds=90)))
    persist(ward.engine.report_input("mqtt", up=False, detail="broker unreachable"))
    for _ in range(3):
        ward.clock.advance(timedelta(seconds=30))
        persist(ward.engine.tick())  # input down, then no data from the silent devices

    kinds_stored = {alarm.condition.split(".")[0] for alarm in last.values()}
    assert {"heart_rate", "news2", "low_battery", "poor_signal", "unknown_device",
            "clock_ahead", "input_down", "no_data"} <= kinds_stored, kinds_stored
    open_now = {alarm.key for alarm in ward.engine.active_alarms()}
    restored = _restored(alarm_store)
    assert set(restored) == open_now
    for key, alarm in restored.items():
        assert alarm == last[key]._replace(alarm_id=ids[key]), key
