"""How an audit entry reads in a table (app/audit.py), the same in the CLI and Settings."""

from __future__ import annotations

from datetime import UTC, datetime

from vitalstation.app.audit import details_text, subject_text
from vitalstation.storage.audit_trail import AuditEntry

AT = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def test_an_alarm_step_names_its_bed_and_message_and_leaves_them_out_of_the_details() -> None:
    step = AuditEntry(
        at=AT, actor="system", action="alarm.raised", subject="alarm 7", origin="engine",
        details={"message": "HR 152 > 130", "value": 152.0, "limit_value": 130.0,
                 "origin": "engine"},
        alarm_id=7, bed="4", patient_id="P1", message="HR 152 > 130",
    )
    assert subject_text(step) == "alarm 7, bed 4: HR 152 > 130"
    assert details_text(step) == "value=152, limit_value=130"
    unplaced = AuditEntry(at=AT, actor="nurse:jo", action="alarm.paused", subject="alarm 8",
                          details={"minutes": 2.5, "state": ["active", "audio_paused"]},
                          alarm_id=8)
    assert subject_text(unplaced) == "alarm 8"
    assert details_text(unplaced) == "minutes=2.5, state=active → audio_paused"


def test_a_logged_entry_reads_as_stored() -> None:
    logged = AuditEntry(at=AT, actor="cli:root", action="patient.admit", subject="P1",
                        details={"text": "bed=4"})
    assert (subject_text(logged), details_text(logged)) == ("P1", "bed=4")
    moved = AuditEntry(at=AT, actor="cli:root", action="limits.override", subject="P1/hr",
                       origin="cli", details={"origin": "station:ws-1", "low": [40, 35]})
    # An origin the column does not show stays; nested values are not arrows.
    assert details_text(moved) == "origin=station:ws-1, low=40 → 35"
    nested = AuditEntry(at=AT, actor="a", action="x", subject="s", details={"v": [[1], [2]]})
    assert details_text(nested) == "v=[[1], [2]]"
    assert details_text(AuditEntry(at=AT, actor="a", action="x", subject="s")) == "-"
