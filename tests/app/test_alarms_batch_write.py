"""One transaction per batch: the alarm store writes a whole batch of transitions (new alarms
inserted in one statement with their final state, stored ones updated once) and the database
ends up exactly as if each transition had been written on its own, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy

from tests.alarms.support import STATION, T0, Ward
from tests.conftest import _pg_admin
from vitalstation.alarms import AlarmTransition
from vitalstation.storage.alarms import AlarmStore
from vitalstation.storage.outbox import OutboxMessage
from vitalstation.storage.schema import alarm_events, alarms, notification_outbox
from vitalstation.storage.store import Store


@pytest.fixture
def second_url(store_url: str, tmp_path, request: pytest.FixtureRequest) -> Iterator[str]:
    """Another fresh database on the same backend as ``store``."""
    if store_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'second.db'}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"vs_test_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield sqlalchemy.make_url(store_url).set(database=name).render_as_string(
        hide_password=False
    )
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _register(store: Store) -> None:
    for bed, patient in (("12", "P1"), ("14", "P2")):
        store.registry.add_patient(patient, f"Patient {patient}", actor="test", at=T0)
        store.registry.add_bed(bed, "5N", actor="test", at=T0)
        store.registry.admit(patient, bed, actor="test", at=T0)


def _messages(transition: AlarmTransition) -> list[OutboxMessage]:
    """An outbox message for each notification, as the router makes them."""
    return [OutboxMessage("station", "station", {"event": transition.kind.value,
                                                "role": n.role.value})
            for n in transition.notifications]


def _scenario() -> tuple[list[AlarmTransition], list[AlarmTransition]]:
    """Transitions before the batch (stored first) and the batch itself: alarms raised,
    escalated, resolved and raised again under the same key, a stored alarm updated and
    acknowledged, a technical alarm, all in one batch."""
    ward = Ward()
    before = ward.send(heart_rate=150)  # HIGH, latching, escalation started
    before += ward.send(oxygen_saturation=80, bed="14", patient="P2", device="DEV2")
    ward.clock.advance(timedelta(seconds=11))
    before += ward.engine.tick()  # the delayed SpO2 alarm is raised
    batch: list[AlarmTransition] = []
    ward.clock.advance(timedelta(seconds=1))
    batch += ward.send(heart_rate=160)  # the stored alarm: worse
    batch += ward.send(heart_rate=35, bed="14", patient="P2", device="DEV2")  # new
    batch += ward.send(heart_rate=72, bed="14", patient="P2", device="DEV2")  # resolves
    batch += ward.send(heart_rate=36, bed="14", patient="P2", device="DEV2")  # same key again
    batch += ward.send(heart_rate=72, battery=5)  # latches the HR alarm; low battery
    alarm = ward.engine.alarm("bed:12|limit.heart_rate.high")
    assert alarm is not None
    batch += ward.engine.acknowledge(alarm.key, actor="Nurse Joy", origin=STATION)
    ward.clock.advance(timedelta(seconds=130))
    batch += ward.engine.tick()  # escalation timeouts
    return before, batch


def _tables(store: Store) -> dict[str, list[tuple]]:
    with store.engine.connect() as connection:
        return {
            table.name: [tuple(row) for row in connection.execute(
                sqlalchemy.select(table).order_by(table.c.id)
            )]
            for table in (alarms, alarm_events, notification_outbox)
        }


def test_a_batch_in_one_write_stores_what_one_write_per_transition_stores(
    store: Store, second_url: str
) -> None:
    before, batch = _scenario()
    kinds = [t.kind.value for t in batch]
    assert kinds.count("raised") >= 3 and "resolved" in kinds and "acknowledged" in kinds
    assert any(t.notifications for t in batch)

    second = Store.open(second_url)
    try:
        results = []
        for target, one_by_one in ((store, False), (second, True)):
            _register(target)
            alarm_store = AlarmStore(target.engine)
            ids = dict(alarm_store.write(before, {}, [_messages(t) for t in before]))
            if one_by_one:
                for transition in batch:
                    ids.update(alarm_store.write([transition], ids, [_messages(transition)]))
            else:
                ids.update(alarm_store.write(batch, ids, [_messages(t) for t in batch]))
            results.append((_tables(target), ids))
    finally:
        second.close()
    (batched, batched_ids), (single, single_ids) = results
    assert batched_ids == single_ids
    assert batched == single
    assert len(batched["alarms"]) >= 5 and len(batched["alarm_events"]) == len(before + batch)


def test_the_sqlite_driver_path_stores_what_sqlalchemy_stores(tmp_path, monkeypatch) -> None:
    """On SQLite the store writes through the driver's cursor (rows and payload JSON built by
    hand); the same transitions through SQLAlchemy's statements (the PostgreSQL path) must
    leave every column of every row the same."""
    from vitalstation.storage import alarms as alarm_storage

    before, batch = _scenario()
    results = []
    for name, through_sqlalchemy in (("driver.db", False), ("sqlalchemy.db", True)):
        target = Store.open(f"sqlite:///{tmp_path / name}")
        try:
            _register(target)
            alarm_store = AlarmStore(target.engine)
            with monkeypatch.context() as patch:
                if through_sqlalchemy:
                    patch.setattr(alarm_storage, "_write_sqlite", alarm_store._write_rows)
                ids = dict(alarm_store.write(before, {}, [_messages(t) for t in before]))
                ids.update(alarm_store.write(batch, ids, [_messages(t) for t in batch]))
            results.append((_tables(target), ids))
        finally:
            target.close()
    (driver, driver_ids), (reference, reference_ids) = results
    assert driver_ids == reference_ids
    assert driver == reference
    assert driver["notification_outbox"] and len(driver["alarms"]) >= 5
