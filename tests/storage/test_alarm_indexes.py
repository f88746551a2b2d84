"""The alarms table's indexes (schema 0007), alarm_events' (0008) and the queries they serve.

On SQLite each query's plan names its index (the plan SQLite makes without statistics, as on
a station's database: the same on a 200,000-alarm table as here); the results are those the
queries gave before; the migration goes up and down on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import insert, select, update

from tests.alarms.support import T0, Ward
from tests.storage.support import (
    index_definition,
    persister,
    postgres_generic_plans,
    sqlite_plans,
    table_indexes,
)
from vitalstation.alarms import AlarmState
from vitalstation.storage import migrate
from vitalstation.storage.alarms import AlarmStore
from vitalstation.storage.history import HistoryQueries
from vitalstation.storage.schema import ALARM_OPEN, alarm_events, alarms
from vitalstation.storage.store import Store

_ALARMS = re.compile(r"\balarms\b")
_EVENTS = re.compile(r"\balarm_events\b")


def _ward_with_alarms(store: Store) -> tuple[AlarmStore, Ward, dict[str, int]]:
    """Beds B0-B2 (patients P0-P2): B0's and B1's alarms raised in one write (the same time),
    B2's a minute later; B1's resolved."""
    for n in range(3):
        store.registry.add_patient(f"P{n}", f"Patient {n}", actor="test", at=T0)
        store.registry.add_bed(f"B{n}", None, actor="test", at=T0)
    alarm_store = AlarmStore(store.engine)
    ward = Ward()
    ids: dict[str, int] = {}

    persist = persister(ward, alarm_store, ids)

    persist([t for n in range(2) for t in ward.send(
        heart_rate=160, device=f"DEV{n}", bed=f"B{n}", patient=f"P{n}")])
    ward.clock.advance(timedelta(minutes=1))
    persist(ward.send(heart_rate=160, device="DEV2", bed="B2", patient="P2"))
    ward.clock.advance(timedelta(minutes=1))
    persist(ward.send(heart_rate=70, device="DEV1", bed="B1", patient="P1"))
    persist(ward.engine.acknowledge(ids[_key(ids, "B1")], actor="nurse:jo", origin="cli"))
    return alarm_store, ward, ids


def _key(ids: dict[str, int], bed: str) -> str:
    return next(key for key in ids if key.startswith(f"bed:{bed}|"))


@pytest.fixture
def sqlite_ward(tmp_path):
    """A station file with ``_ward_with_alarms``' alarms: (store, alarm store, ward, ids). The
    plans are SQLite's."""
    store = Store.open(f"sqlite:///{tmp_path / 'station.db'}")
    try:
        yield (store, *_ward_with_alarms(store))
    finally:
        store.close()


def test_each_alarm_query_is_planned_on_its_index(sqlite_ward) -> None:
    store, alarm_store, ward, _ = sqlite_ward
    history = HistoryQueries(store.engine)
    scope = history.bed_scope("B0")
    now = ward.clock()
    expected = {
        "newest first": (lambda: alarm_store.list_alarms(limit=500), "ix_alarms_raised"),
        "open, newest first": (
            lambda: alarm_store.list_alarms(active_only=True), "ix_alarms_open"),
        "one bed": (lambda: alarm_store.list_alarms(bed_label="B0"),
                    "ix_alarms_bed_raised (bed_ref=?)"),
        "start-up snapshot": (alarm_store.load_snapshot, "ix_alarms_open"),
        "trend markers": (
            lambda: history.alarm_markers(scope, now - timedelta(hours=1), now),
            "ix_alarms_bed_raised (bed_ref=? AND raised_at<?)"),
        "bed trail": (
            lambda: history.trail(scope, now - timedelta(hours=1), now),
            "ix_alarms_bed_raised (bed_ref=?)"),
    }
    for name, (call, index) in expected.items():
        ((statement, plan),) = sqlite_plans(store.engine, call, _ALARMS)
        assert f"alarms USING INDEX {index}" in plan, (name, plan)
        if index == "ix_alarms_open":
            # The index's term in the text: SQLite also matches ``state <> ?`` while the
            # bound value is 'resolved' (it re-prepares when the value changes), but
            # PostgreSQL's plan of a prepared statement (psycopg prepares those run 5
            # times) holds for any value, so it may not use the partial index for it.
            assert "alarms.state <> 'resolved'" in statement, (name, statement)
        # Never every alarm row; alarms come in the index's order, the trail's steps are
        # sorted (the range's only).
        assert not re.search(r"SCAN alarms(?! USING)", plan), (name, plan)
        assert name == "bed trail" or "TEMP B-TREE FOR ORDER BY" not in plan, (name, plan)


@pytest.mark.postgres
def test_postgresql_plans_the_open_alarm_queries_on_the_partial_index_for_any_value(
    pg_url: str,
) -> None:
    # A statement psycopg has prepared (run 5 times) may get PostgreSQL's generic plan, made
    # for any value of its parameters: only the literal term lets it use the partial index.
    store = Store.open(pg_url)
    try:
        alarm_store, _, _ = _ward_with_alarms(store)

        def open_alarm_queries() -> None:
            alarm_store.load_snapshot()
            alarm_store.list_alarms(active_only=True)

        plans = postgres_generic_plans(store.engine, open_alarm_queries, _ALARMS)
        assert len(plans) == 2
        for statement, plan in plans:
            assert "ix_alarms_open" in plan, (statement, plan)
    finally:
        store.close()


def test_the_open_alarms_term_is_the_resolved_state_written_as_a_literal() -> None:
    text = str(ALARM_OPEN.compile(compile_kwargs={"literal_binds": False}))
    assert text == f"alarms.state <> '{AlarmState.RESOLVED.value}'"


def test_alarm_lists_are_newest_first_with_ties_by_id_and_only_what_was_asked(
    store: Store,
) -> None:
    alarm_store, _, ids = _ward_with_alarms(store)
    b0, b1, b2 = (ids[_key(ids, f"B{n}")] for n in range(3))
    assert b0 < b1 < b2
    # B0's and B1's were raised at the same time: the larger id first.
    assert [row.id for row in alarm_store.list_alarms()] == [b2, b1, b0]
    assert [row.id for row in alarm_store.list_alarms(limit=2)] == [b2, b1]
    assert [row.id for row in alarm_store.list_alarms(active_only=True)] == [b2, b0]
    assert [row.id for row in alarm_store.list_alarms(bed_label="B1")] == [b1]
    assert alarm_store.list_alarms(bed_label="B1", active_only=True) == []
    assert [row.bed for row in alarm_store.list_alarms(bed_label="B2")] == ["B2"]


def test_the_snapshot_takes_the_newest_row_of_a_key_left_open_twice(store: Store) -> None:
    alarm_store, _, ids = _ward_with_alarms(store)
    old = ids[_key(ids, "B0")]
    # A second open row of B0's key, with a larger id but raised earlier: the index's order
    # (time) is not the snapshot's (id).
    columns = [column for column in alarms.c if column.name != "id"]
    with store.engine.begin() as connection:
        new = connection.execute(
            insert(alarms).from_select(
                [column.name for column in columns],
                select(*columns).where(alarms.c.id == old),
            ).returning(alarms.c.id)
        ).scalar_one()
        connection.execute(update(alarms).where(alarms.c.id == new).values(
            raised_at=T0 - timedelta(days=1)))
    snapshot = alarm_store.load_snapshot()
    by_key = {alarm.key: alarm.alarm_id for alarm in snapshot.alarms}
    assert new > old and by_key[_key(ids, "B0")] == new
    assert by_key[_key(ids, "B2")] == ids[_key(ids, "B2")]
    assert _key(ids, "B1") not in by_key  # resolved


def test_a_bed_trail_keeps_the_steps_of_alarms_raised_before_the_range(store: Store) -> None:
    alarm_store, ward, ids = _ward_with_alarms(store)
    history = HistoryQueries(store.engine)
    scope = history.bed_scope("B1")
    raised = alarm_store.get(ids[_key(ids, "B1")]).raised_at
    # From after B1's alarm was raised: its resolution and acknowledgement, not its raising.
    since = raised + timedelta(seconds=30)
    steps = history.trail(scope, since, ward.clock() + timedelta(seconds=1))
    assert steps and {step.alarm_id for step in steps} == {ids[_key(ids, "B1")]}
    assert "raised" not in {step.event for step in steps}
    assert "acknowledged" in {step.event for step in steps}
    # Up to the time it was raised (the end excluded): nothing.
    assert history.trail(scope, raised - timedelta(hours=1), raised) == []
    (marker,) = history.alarm_markers(scope, since, ward.clock())
    assert marker.alarm_id == ids[_key(ids, "B1")] and marker.state == "resolved"
    assert history.alarm_markers(scope, ward.clock() + timedelta(seconds=1),
                                 ward.clock() + timedelta(hours=1)) == []


def test_schema_0007_adds_the_open_and_time_indexes_and_drops_state_and_back(
    store: Store,
) -> None:
    indexes = table_indexes(store.engine, "alarms")
    assert indexes == {"ix_alarms_open": ("raised_at",), "ix_alarms_raised": ("raised_at",),
                       "ix_alarms_bed_raised": ("bed_ref", "raised_at")}
    assert re.search(r"WHERE \(*\(?state\)?(::text)? <> 'resolved'",
                     index_definition(store.engine, "ix_alarms_open"))
    config = migrate._alembic_config()
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0006")
    assert table_indexes(store.engine, "alarms") == {
        "ix_alarms_state": ("state",), "ix_alarms_bed_raised": ("bed_ref", "raised_at")}
    assert migrate.upgrade(store.engine) == ("0006", migrate.head_revision())
    assert set(table_indexes(store.engine, "alarms")) == {
        "ix_alarms_open", "ix_alarms_raised", "ix_alarms_bed_raised"}


def test_each_alarm_event_query_is_planned_on_the_alarm_index(sqlite_ward) -> None:
    store, alarm_store, ward, ids = sqlite_ward
    history = HistoryQueries(store.engine)
    scope = history.bed_scope("B1")
    now = ward.clock()
    alarm_id = ids[_key(ids, "B1")]
    calls = {
        "an alarm's steps": lambda: alarm_store.events(alarm_id),
        "its trail": lambda: history.alarm_trail(alarm_id),
        "a bed's trail": lambda: history.trail(scope, now - timedelta(hours=1), now),
    }
    for name, call in calls.items():
        ((_, plan),) = sqlite_plans(store.engine, call, _EVENTS)
        assert "alarm_events USING INDEX ix_alarm_events_alarm (alarm_ref=?)" in plan, (
            name, plan)
        assert not re.search(r"SCAN alarm_events(?! USING)", plan), (name, plan)


def test_an_alarms_steps_come_oldest_first_with_ties_by_id(store: Store) -> None:
    alarm_store, ward, ids = _ward_with_alarms(store)
    alarm_id = ids[_key(ids, "B1")]
    steps = alarm_store.events(alarm_id)
    assert [step.event for step in steps][:1] == ["raised"] and len(steps) >= 4
    # A step stored last but dated first (a late write), and one at the same time as the
    # first step: the order is by time, then by id.
    first_at = steps[0].at
    with store.engine.begin() as connection:
        for at in (first_at - timedelta(seconds=5), first_at):
            connection.execute(insert(alarm_events).values(
                alarm_ref=alarm_id, at=at, event="note", actor="test", origin="test",
                details=""))
    again = alarm_store.events(alarm_id)
    assert [step.at for step in again] == sorted(step.at for step in again)
    assert again[0].event == "note" and again[0].at == first_at - timedelta(seconds=5)
    tied = [step for step in again if step.at == first_at]
    assert [step.id for step in tied] == sorted(step.id for step in tied)
    assert tied[-1].event == "note"
    trail = HistoryQueries(store.engine).alarm_trail(alarm_id)
    assert [step.id for step in trail] == [step.id for step in again]


def test_schema_0008_indexes_alarm_events_by_alarm_alone_and_back(store: Store) -> None:
    assert table_indexes(store.engine, "alarm_events")["ix_alarm_events_alarm"] == ("alarm_ref",)
    config = migrate._alembic_config()
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0007")
    assert table_indexes(store.engine, "alarm_events") == {
        "ix_alarm_events_alarm_at": ("alarm_ref", "at")}
    assert migrate.upgrade(store.engine) == ("0007", migrate.head_revision())
    assert table_indexes(store.engine, "alarm_events")["ix_alarm_events_alarm"] == ("alarm_ref",)
    assert "ix_alarm_events_alarm_at" not in table_indexes(store.engine, "alarm_events")
