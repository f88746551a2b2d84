"""Alarm transitions in the database, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.alarms.support import T0, Ward
from vitalstation.alarms import (
    Alarm,
    AlarmEngine,
    AlarmKind,
    AlarmState,
    AlarmTransition,
    ChainStage,
    ChainState,
    Priority,
    TransitionKind,
)
from vitalstation.domain.vitals import VitalKind
from vitalstation.storage.alarms import AlarmStore
from vitalstation.storage.schema import alarms
from vitalstation.storage.store import Store


def _persist(alarm_store: AlarmStore, ward: Ward, transitions, ids: dict[str, int]) -> None:
    inserted = alarm_store.write(transitions, ids)
    for key, alarm_id in inserted.items():
        if ward.engine.alarm(key) is not None:
            ward.engine.assign_id(key, alarm_id)
    ids.update(inserted)


def test_raise_update_acknowledge_resolve_are_stored(store: Store) -> None:
    store.registry.add_patient("P1", "Ada", actor="test", at=T0)
    store.registry.add_bed("12", None, actor="test", at=T0)
    alarm_store = AlarmStore(store.engine)
    ward = Ward()
    ids: dict[str, int] = {}
    raised = ward.send(heart_rate=160)
    assert [t.kind.value for t in raised][0] == "raised"
    _persist(alarm_store, ward, raised, ids)
    (row,) = alarm_store.list_alarms(active_only=True)
    assert row.condition == "heart_rate.high" and row.state == "active"
    assert row.key == raised[0].alarm.key and row.value == 160
    assert row.device_id == "DEV1" and row.bed == "12" and row.patient_id == "P1"
    assert [r.id for r in alarm_store.list_alarms(bed_label="12")] == [row.id]
    assert ward.engine.alarm(row.id) is not None  # the engine knows the id now

    for _ in range(20):
        ward.clock.advance(timedelta(seconds=1))
        _persist(alarm_store, ward, ward.send(heart_rate=170), ids)
    assert len(alarm_store.list_alarms()) == 1

    ward.clock.advance(timedelta(seconds=1))
    _persist(alarm_store, ward, ward.send(heart_rate=70), ids)
    acked = ward.engine.acknowledge(row.id, actor="Nurse Joy", origin="cli")
    _persist(alarm_store, ward, acked, ids)
    assert alarm_store.list_alarms(active_only=True) == []
    (final,) = alarm_store.list_alarms()
    assert final.state == "resolved" and final.resolved_at is not None
    events = alarm_store.events(final.id)
    assert events[0].event == "raised"
    assert any(e.event == "acknowledged" and e.actor == "Nurse Joy" and e.origin == "cli"
               for e in events)
    assert all(isinstance(e.details, dict) for e in events)
    assert alarm_store.get(final.id) == final
    d = final.to_dict()
    assert d["id"] == final.id and d["raised_at"].startswith("2026-")


def test_open_alarms_come_back_after_a_restart(store: Store) -> None:
    alarm_store = AlarmStore(store.engine)
    ward = Ward()
    ids: dict[str, int] = {}
    _persist(alarm_store, ward, ward.send(heart_rate=160), ids)
    snapshot = alarm_store.load_snapshot()
    assert len(snapshot.alarms) == 1 and snapshot.alarms[0].alarm_id is not None
    engine = AlarmEngine("adult-ward", clock=ward.clock)
    engine.restore(snapshot)
    (alarm,) = engine.active_alarms()
    assert alarm.alarm_id == snapshot.alarms[0].alarm_id
    assert alarm_store.list_alarms(bed_label="nope") == []


def test_one_write_of_many_transitions_keeps_every_event_and_the_last_state(store: Store
                                                                             ) -> None:
    from vitalstation.storage.outbox import OutboxMessage, OutboxStore

    store.registry.add_patient("P1", "Ada", actor="test", at=T0)
    store.registry.add_bed("12", None, actor="test", at=T0)
    alarm_store = AlarmStore(store.engine)
    ward = Ward()
    transitions = ward.send(heart_rate=160)  # raised, patient asked (a chain)
    ward.clock.advance(timedelta(seconds=1))
    transitions += ward.send(heart_rate=175)  # updated (worse)
    transitions += ward.engine.acknowledge(transitions[0].alarm.key, actor="Jo", origin="cli")
    kinds = [t.kind.value for t in transitions]
    assert kinds[:2] == ["raised", "patient_asked"] and "acknowledged" in kinds
    messages = [[OutboxMessage("webhook", "http://h.example/x", {"n": i})] for i in
                range(len(transitions))]
    inserted = alarm_store.write(transitions, {}, messages)
    (alarm_id,) = inserted.values()
    (row,) = alarm_store.list_alarms()
    assert row.id == alarm_id and row.state == "acknowledged" and row.value == 175
    assert [e.event for e in alarm_store.events(alarm_id)] == kinds
    snapshot = alarm_store.load_snapshot()
    (chain,) = snapshot.chains  # the newest chain of the batch: ended by the acknowledgement
    assert not chain.active and chain.ended_by == "Jo"
    assert snapshot.alarms[0].state.value == "acknowledged"
    rows = OutboxStore(store.engine).for_alarm(alarm_id)
    assert [r.payload["n"] for r in rows] == list(range(len(transitions)))
    assert all(r.payload["alarm_id"] == alarm_id for r in rows)


def _raise_in_beds(ward: Ward, beds: int) -> list:
    """One heart-rate alarm (raised, patient asked) in each of ``beds`` beds."""
    transitions = []
    for n in range(beds):
        transitions += ward.send(heart_rate=160, device=f"DEV{n}", bed=f"B{n}", patient=f"P{n}")
    return transitions


def test_many_alarms_raised_in_one_write_each_get_their_own_row(store: Store) -> None:
    for n in range(6):
        store.registry.add_patient(f"P{n}", f"Patient {n}", actor="test", at=T0)
        store.registry.add_bed(f"B{n}", None, actor="test", at=T0)
    alarm_store = AlarmStore(store.engine)
    ward = Ward()
    alarm_store.write(_raise_in_beds(ward, 1), {})  # an id already taken before the batch
    transitions = _raise_in_beds(ward, 6)  # beds 1-5: raised here (bed 0's is open)
    inserted = alarm_store.write(transitions, {})
    assert len(inserted) == 5 and len(set(inserted.values())) == 5
    rows = {row.id: row for row in alarm_store.list_alarms()}
    for key, alarm_id in inserted.items():
        row = rows[alarm_id]
        assert row.key == key
        n = row.bed[1:]
        assert row.patient_id == f"P{n}" and row.device_id == f"DEV{n}"
        assert [e.event for e in alarm_store.events(alarm_id)] == ["raised", "patient_asked"]


def test_new_alarm_rows_get_their_ids_one_by_one_when_the_next_ids_are_not_free(
    tmp_path,
) -> None:
    # SQLite's largest id taken (by a row of another era, say): SQLite then gives new rows
    # random free ids, so the ids after the first insert's are not known to be free.
    store = Store.open(f"sqlite:///{tmp_path / 'station.db'}")
    try:
        alarm_store = AlarmStore(store.engine)
        ward = Ward()
        with store.engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO alarms (id, kind, condition, priority, state, message, raised_at,"
                f" updated_at) VALUES ({2**63 - 1}, 'limit', 'heart_rate.high', 'high',"
                " 'resolved', 'old', '2020-01-01 00:00:00.000000',"
                " '2020-01-01 00:00:00.000000')")
        inserted = alarm_store.write(_raise_in_beds(ward, 3), {})
        assert len(set(inserted.values())) == 3
        rows = {row.id: row for row in alarm_store.list_alarms()}
        assert {rows[alarm_id].key for alarm_id in inserted.values()} == set(inserted)
        assert all(rows[i].key == k for k, i in inserted.items())
        # Each took an id of SQLite's choosing (random), not the first one's followers, which
        # might be taken.
        ids = sorted(inserted.values())
        assert ids != list(range(ids[0], ids[0] + len(ids)))
    finally:
        store.close()


def _alarm_rows(store: Store) -> dict[int, dict]:
    with store.engine.connect() as connection:
        return {row["id"]: dict(row) for row in
                connection.execute(select(alarms).order_by(alarms.c.id)).mappings()}


def test_an_updated_row_is_the_row_its_last_transition_would_insert(store: Store) -> None:
    # An update sets only the columns a later transition can change; every column the engine
    # can change changes here (priority, state, value, limit, message, times, snapshot, chain),
    # so an update that misses or mixes up one leaves a row unlike a fresh insert of the same
    # final state (one per step, its key the same: RAISED always makes a row of its own).
    store.registry.add_patient("P1", "Ada", actor="test", at=T0)
    store.registry.add_bed("12", None, actor="test", at=T0)
    alarm_store = AlarmStore(store.engine)
    key = "bed:12|limit.heart_rate.high"
    raised = Alarm(
        key=key, kind=AlarmKind.LIMIT, condition="heart_rate.high", priority=Priority.MEDIUM,
        state=AlarmState.ACTIVE, raised_at=T0, updated_at=T0, message="HR 125 (limit 121)",
        bed_label="12", patient_id="P1", device_id="DEV1", vital=VitalKind.HEART_RATE,
        value=125.0, limit_value=121.0,
    )
    chain = ChainState(key, Priority.MEDIUM, ChainStage.ASKING_PATIENT, T0,
                       T0 + timedelta(minutes=2), message=raised.message)
    later = T0 + timedelta(seconds=5)
    worse = raised._replace(
        priority=Priority.HIGH, state=AlarmState.ACKNOWLEDGED, updated_at=later,
        message="HR 150 (limit 131)", value=150.0, limit_value=131.0, update_count=4,
    )
    end = T0 + timedelta(seconds=9)
    over = worse._replace(state=AlarmState.RESOLVED, updated_at=end, resolved_at=end,
                          value=None, limit_value=None, message="")
    ended = chain._replace(stage=ChainStage.ENDED, ended_at=end, end_reason="resolved")

    def step(kind, alarm, at, escalation=None) -> AlarmTransition:
        return AlarmTransition(kind, alarm, at, "system", "engine", None, alarm.state,
                               escalation=escalation)

    ids = alarm_store.write([step(TransitionKind.RAISED, raised, T0, chain)], {})
    for alarm, at, escalation, final_chain in ((worse, later, None, chain),
                                               (over, end, ended, ended)):
        alarm_store.write([step(TransitionKind.UPDATED, alarm, at, escalation)], ids)
        (fresh_id,) = alarm_store.write(
            [step(TransitionKind.RAISED, alarm, at, final_chain)], {}).values()
        rows = _alarm_rows(store)
        updated, fresh = rows[ids[key]], rows[fresh_id]
        assert updated.pop("id") != fresh.pop("id")
        assert updated == fresh
        assert updated["message"] == alarm.message and updated["escalation"] is not None
