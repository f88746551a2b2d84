"""Who did what (storage/audit_trail.py, schema 0010): the audit log and people's alarm steps
read as one list, newest first; one alarm's whole trail; the partial index the people's steps
are found through, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import insert

from tests.alarms.support import T0, Ward
from tests.storage.support import (
    index_definition,
    persister,
    postgres_generic_plans,
    sqlite_plans,
    table_indexes,
)
from vitalstation.alarms.model import SYSTEM_ACTOR
from vitalstation.storage import migrate
from vitalstation.storage.alarms import AlarmStore
from vitalstation.storage.audit_trail import AuditQueries
from vitalstation.storage.registry import NotFound
from vitalstation.storage.schema import ALARM_EVENT_BY_PERSON, audit_log
from vitalstation.storage.store import Store

_EVENTS = re.compile(r"\bFROM alarm_events\b")


def _ward(store: Store) -> tuple[Ward, dict[str, int]]:
    """Bed 12 with P1 admitted at T0 - 1 h (register rows by ``admin``); an HR alarm raised
    at T0 (the station's steps), acknowledged by ``nurse:jo`` at T0 + 1 min, then resolved
    at T0 + 3 min (the station's again)."""
    earlier = T0 - timedelta(hours=1)
    store.registry.add_patient("P1", "Ada Lovelace", actor="admin", at=earlier)
    store.registry.add_bed("12", "5N", actor="admin", at=earlier)
    store.registry.admit("P1", "12", actor="admin", at=earlier)
    ward = Ward()
    alarm_store = AlarmStore(store.engine)
    ids: dict[str, int] = {}

    persist = persister(ward, alarm_store, ids)

    persist(ward.send(heart_rate=160))
    ward.clock.advance(timedelta(minutes=1))
    (alarm_id,) = ids.values()
    persist(ward.engine.acknowledge(alarm_id, actor="nurse:jo", origin="station:ws-3"))
    ward.clock.advance(timedelta(minutes=2))
    persist(ward.send(heart_rate=72))
    return ward, ids


def test_people_s_alarm_steps_and_the_audit_log_come_newest_first(store: Store) -> None:
    _, ids = _ward(store)
    (alarm_id,) = ids.values()
    entries = AuditQueries(store.engine).entries()
    # The acknowledgement ended the escalation chain too: two steps of one moment, the later
    # stored first in a newest-first list.
    assert [(e.actor, e.action, e.subject) for e in entries] == [
        ("nurse:jo", "alarm.escalation_ended", f"alarm {alarm_id}"),
        ("nurse:jo", "alarm.acknowledged", f"alarm {alarm_id}"),
        ("admin", "patient.admit", "P1"),
        ("admin", "bed.add", "12"),
        ("admin", "patient.add", "P1"),
    ]
    ack = entries[1]
    assert ack.at == T0 + timedelta(minutes=1)
    assert (ack.origin, ack.alarm_id, ack.bed, ack.patient_id) == (
        "station:ws-3", alarm_id, "12", "P1")
    assert "HR" in ack.message or "heart" in ack.message.lower()
    assert entries[2].details == {"bed": "12"}
    # The station's own steps are in the alarm's trail, not in this list.
    assert all(e.actor != SYSTEM_ACTOR for e in entries)
    stored = AlarmStore(store.engine).events(alarm_id)
    assert {s.actor for s in stored} == {SYSTEM_ACTOR, "nurse:jo"}


def test_the_range_the_actor_and_the_limit_choose_across_both_tables(store: Store) -> None:
    _, ids = _ward(store)
    queries = AuditQueries(store.engine)
    store.registry.add_bed("14", "5N", actor="nurse:jo", at=T0 + timedelta(minutes=5))
    acknowledged = ["alarm.escalation_ended", "alarm.acknowledged"]
    assert [e.action for e in queries.entries(since=T0)] == ["bed.add", *acknowledged]
    assert [e.action for e in queries.entries(until=T0)] == [
        "patient.admit", "bed.add", "patient.add"]
    assert [e.action for e in queries.entries(since=T0, until=T0 + timedelta(minutes=1))] == []
    # [since, until): an entry at ``since`` is in, one at ``until`` is out.
    at_ack = T0 + timedelta(minutes=1)
    assert [e.action for e in queries.entries(since=at_ack, until=at_ack + timedelta(
        seconds=1))] == acknowledged
    assert queries.entries(since=at_ack - timedelta(seconds=1), until=at_ack) == []
    assert [e.action for e in queries.entries(actor="nurse:jo")] == ["bed.add", *acknowledged]
    assert queries.entries(actor="nobody") == []
    # The newest two of both tables together, not two of each.
    assert [e.action for e in queries.entries(limit=2)] == ["bed.add", acknowledged[0]]
    assert [e.action for e in queries.entries(limit=4)][-1] == "patient.admit"
    assert queries.entries(limit=0) == []


def test_details_are_json_when_stored_as_json_and_text_otherwise(store: Store) -> None:
    at = T0 + timedelta(hours=1)
    with store.engine.begin() as connection:
        for actor, details in (("a", '{"origin": "cli", "vital": "heart_rate"}'),
                               ("b", "device=DEV1"), ("c", ""), ("d", "[1, 2]")):
            connection.execute(insert(audit_log).values(
                at=at, actor=actor, action="test", subject="s", details=details))
    entries = {e.actor: e for e in AuditQueries(store.engine).entries(since=at)}
    assert entries["a"].details == {"origin": "cli", "vital": "heart_rate"}
    assert entries["a"].origin == "cli"
    assert entries["b"].details == {"text": "device=DEV1"}
    assert entries["c"].details == {}
    assert entries["d"].details == {"text": "[1, 2]"}
    assert entries["a"].to_dict()["at"] == at.isoformat()


def test_an_alarm_s_trail_has_every_step_oldest_first(store: Store) -> None:
    _, ids = _ward(store)
    (alarm_id,) = ids.values()
    trail = AuditQueries(store.engine).alarm_trail(alarm_id)
    assert trail[0].action == "alarm.raised" and trail[0].actor == SYSTEM_ACTOR
    assert "alarm.acknowledged" in [e.action for e in trail]
    assert trail[-1].action == "alarm.resolved"
    assert [e.at for e in trail] == sorted(e.at for e in trail)
    assert {e.bed for e in trail} == {"12"}
    with pytest.raises(NotFound, match="no alarm 99999"):
        AuditQueries(store.engine).alarm_trail(99999)


def test_the_people_term_is_the_system_actor_written_as_a_literal() -> None:
    text = str(ALARM_EVENT_BY_PERSON.compile(compile_kwargs={"literal_binds": False}))
    assert text == f"alarm_events.actor <> '{SYSTEM_ACTOR}'"


def _people_queries(store: Store) -> None:
    AuditQueries(store.engine).entries(since=T0 - timedelta(days=1), actor="nurse:jo")
    AuditQueries(store.engine).entries()


def test_sqlite_finds_people_s_steps_through_the_partial_index(tmp_path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'station.db'}")
    try:
        _ward(store)
        plans = sqlite_plans(store.engine, lambda: _people_queries(store), _EVENTS)
        assert len(plans) == 2
        for statement, plan in plans:
            assert "alarm_events.actor <> 'system'" in statement
            assert "alarm_events USING INDEX ix_alarm_events_people_at" in plan, plan
            assert "TEMP B-TREE" not in plan, plan  # newest first from the index
    finally:
        store.close()


@pytest.mark.postgres
def test_postgresql_plans_people_s_steps_on_the_partial_index_for_any_value(
    pg_url: str,
) -> None:
    store = Store.open(pg_url)
    try:
        _ward(store)
        plans = postgres_generic_plans(store.engine, lambda: _people_queries(store), _EVENTS)
        assert len(plans) == 2
        for statement, plan in plans:
            assert "ix_alarm_events_people_at" in plan, (statement, plan)
    finally:
        store.close()


def test_schema_0010_adds_the_people_index_and_back(store: Store) -> None:
    assert table_indexes(store.engine, "alarm_events") == {
        "ix_alarm_events_alarm": ("alarm_ref",), "ix_alarm_events_people_at": ("at",)}
    # Partial: the station's own steps never enter it.
    assert re.search(r"WHERE \(*\(?actor\)?(::text)? <> 'system'",
                     index_definition(store.engine, "ix_alarm_events_people_at"))
    config = migrate._alembic_config()
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0009")
    assert table_indexes(store.engine, "alarm_events") == {"ix_alarm_events_alarm": ("alarm_ref",)}
    assert migrate.upgrade(store.engine) == ("0009", migrate.head_revision())
    assert "ix_alarm_events_people_at" in table_indexes(store.engine, "alarm_events")
