"""The AlarmService API the window, CLI and REST call: every action stored and audited, limit
overrides kept across a restart and reverted on a discharge made through the register."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.alarms.support import STATION, Ward
from vitalstation.alarms import (
    AlarmActionError,
    Direction,
    Priority,
    UnknownAlarm,
    above,
    below,
)
from vitalstation.alarms.news2 import Parameter
from vitalstation.app.alarms import AlarmService
from vitalstation.domain.vitals import VitalKind
from vitalstation.storage.alarms import AlarmStore, NotAdmitted
from vitalstation.storage.schema import audit_log

NURSE = "Nurse Joy"


def _service(ward: Ward, store) -> AlarmService:
    service = AlarmService(ward.engine, AlarmStore(store.engine))
    service.resume()
    return service


def _audit(store, action: str) -> list[dict]:
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(audit_log).where(audit_log.c.action == action).order_by(audit_log.c.id)
        ).mappings().all()
    return [dict(row) for row in rows]


def test_every_action_is_stored_with_who_and_where(ward_store) -> None:
    ward, store = ward_store
    service = _service(ward, store)
    with service._lock:
        service._handle(ward.send(heart_rate=160))
    (alarm,) = service.active_alarms()
    alarm_id = alarm.alarm_id
    assert alarm_id is not None and service.alarm(alarm_id).key == alarm.key
    assert service.escalation(alarm_id).stage.value == "asking_patient"

    service.comment(alarm_id, "patient was walking", actor=NURSE, origin=STATION)
    service.pause_audio(alarm_id, actor=NURSE, origin=STATION, duration=timedelta(minutes=1))
    service.record_patient_answer(alarm_id, "nurse", actor=NURSE, origin=STATION)
    service.escalate(alarm_id, actor=NURSE, origin="cli")  # next rung above the nurse: doctor
    assert Priority.HIGH == service.alarm(alarm_id).priority
    assert [r.value for r in service.escalation(alarm_id).notified] == ["nurse", "doctor"]
    service.acknowledge(alarm_id, actor="Dr Who", origin=STATION)

    events = {e.event: e for e in service.events(alarm_id)}
    assert events["commented"].details == {"text": "patient was walking"}
    assert (events["commented"].actor, events["commented"].origin) == (NURSE, STATION)
    assert events["audio_paused"].actor == NURSE
    assert events["patient_answered"].origin == STATION
    assert events["escalated"].origin == "cli"
    assert events["acknowledged"].actor == "Dr Who"
    assert service.escalation(alarm_id) is None
    with pytest.raises(UnknownAlarm):
        service.comment(987654, "x", actor=NURSE, origin=STATION)
    with pytest.raises(AlarmActionError):
        service.comment(alarm_id, "   ", actor=NURSE, origin=STATION)
    with pytest.raises(AlarmActionError):
        service.comment(alarm_id, "from a device", actor="DEV1", origin="rest:DEV1")


def test_observations_are_audited_and_rescore_news2(ward_store) -> None:
    ward, store = ward_store
    service = _service(ward, store)
    service.enter_observation("P1", consciousness="V", on_oxygen=True, actor=NURSE,
                              origin=STATION, bed_label="12")
    result = service.news2("P1")
    assert result is not None
    (entry,) = _audit(store, "news2.entry")
    assert entry["actor"] == NURSE and json.loads(entry["details"])["on_oxygen"] is True
    with pytest.raises(AlarmActionError):
        service.enter_observation("P1", actor=NURSE, origin=STATION)


def test_an_override_is_stored_audited_survives_a_restart_and_is_removed(ward_store) -> None:
    ward, store = ward_store
    service = _service(ward, store)
    with service._lock:
        service._handle(ward.send(heart_rate=125))
    assert [a.condition for a in service.active_alarms()] == ["heart_rate.high"]
    service.set_limit_override(
        "P1", "heart_rate", [above(130, Priority.MEDIUM), below(40, Priority.MEDIUM)],
        author="Dr Who", reason="athlete, resting HR high", origin=STATION,
    )
    assert service.limits_for("P1", VitalKind.HEART_RATE).edge(Direction.HIGH).value == 130
    ward.clock.advance(timedelta(seconds=5))
    with service._lock:
        service._handle(ward.send(heart_rate=126))
    (row,) = _audit(store, "limits.override")
    assert row["actor"] == "Dr Who" and row["subject"] == "P1/heart_rate"
    assert json.loads(row["details"])["origin"] == STATION

    restarted = _service(Ward(), store)
    (override,) = restarted.overrides("P1")
    assert override.author == "Dr Who" and override.reason == "athlete, resting HR high"
    assert restarted.remove_limit_override(
        "P1", "heart_rate", actor="Dr Who", reason="back to normal", origin="cli"
    )
    assert restarted.overrides("P1") == ()
    assert not restarted.remove_limit_override(
        "P1", "heart_rate", actor="Dr Who", reason="again", origin="cli"
    )
    (revert,) = _audit(store, "limits.revert")
    assert revert["actor"] == "Dr Who"
    assert _service(Ward(), store).overrides("P1") == ()
    history = restarted.override_history("P1")
    assert history[0].removed_by == "Dr Who" and history[0].removed_reason == "back to normal"


def test_an_override_needs_an_admitted_patient_an_author_and_a_reason(ward_store) -> None:
    ward, store = ward_store
    service = _service(ward, store)
    limits = [above(130, Priority.MEDIUM)]
    with pytest.raises(NotAdmitted):
        service.set_limit_override("P9", "heart_rate", limits, author="Dr", reason="r",
                                   origin=STATION)
    with pytest.raises(AlarmActionError):
        service.set_limit_override("P1", "heart_rate", limits, author="Dr", reason=" ",
                                   origin=STATION)
    with pytest.raises(AlarmActionError):
        service.set_limit_override("P1", "pulse", limits, author="Dr", reason="r",
                                   origin=STATION)
    with pytest.raises(AlarmActionError):
        service.set_limit_override("P1", "heart_rate", limits, author="DEV1", reason="r",
                                   origin="rest:DEV1")
    with pytest.raises(AlarmActionError):
        service.set_limit_override(
            "P1", "heart_rate", [above(50, Priority.MEDIUM), below(60, Priority.MEDIUM)],
            author="Dr", reason="r", origin=STATION,
        )
    assert service.overrides("P1") == () and _audit(store, "limits.override") == []


def test_a_discharge_through_the_register_reverts_overrides_and_alarms(ward_store) -> None:
    ward, store = ward_store
    service = _service(ward, store)
    service.set_limit_override("P1", "heart_rate", [above(130, Priority.MEDIUM)],
                               author="Dr Who", reason="athlete", origin=STATION)
    with service._lock:
        service._handle(ward.send(heart_rate=140))
    assert service.active_alarms(patient_id="P1")
    store.registry.discharge("P1", actor="admin", at=ward.now())
    resolved = service.sync_discharges()
    assert "resolved" in [t.kind.value for t in resolved]
    assert service.overrides("P1") == () and service.active_alarms(patient_id="P1") == []
    (revert,) = _audit(store, "limits.revert")
    assert revert["actor"] == "system" and "discharged" in revert["details"]
    assert _service(Ward(), store).overrides("P1") == ()
    assert service.sync_discharges() == []  # nothing changed since


def test_news2_entries_survive_a_restart_for_the_current_stay_only(ward_store) -> None:
    ward, store = ward_store
    service = _service(ward, store)
    service.enter_observation("P1", consciousness="V", actor=NURSE, origin=STATION,
                              bed_label="12")
    ward.clock.advance(timedelta(minutes=5))
    service.enter_observation("P1", on_oxygen=True, actor=NURSE, origin=STATION, bed_label="12")
    before = service.news2("P1")
    assert before is not None
    entered = (Parameter.CONSCIOUSNESS, Parameter.AIR_OR_OXYGEN)
    assert [before.scores[p] for p in entered] == [3, 2]

    restarted = _service(Ward(), store)  # a new engine: only the database remembers
    after = restarted.news2("P1")
    assert after is not None
    assert [after.scores[p] for p in entered] == [3, 2]
    assert not set(entered) & set(after.assumed)

    # A later stay starts afresh: the entries of the one before are not taken up.
    at = ward.now() + timedelta(minutes=1)
    store.registry.discharge("P1", actor="test", at=at)
    store.registry.admit("P1", "12", actor="test", at=at + timedelta(minutes=1))
    assert _service(Ward(), store).news2("P1") is None
