"""The exact text the alarm store leaves in SQLite: every column of the alarm, event and
outbox rows of a raise → acknowledge → resolve cycle written in two batches, with the outbox
messages the notification router makes.

The store builds these rows by hand on SQLite (snapshot and chain JSON, time texts, outbox
payloads) for speed; this pins what a reader of the database sees, so that a faster way of
building them cannot change it. Transitions are built by hand, not by the engine, so only the
store and the router are under test.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vitalstation.alarms import (
    Alarm,
    AlarmKind,
    AlarmState,
    AlarmTransition,
    ChainState,
    Channel,
    Notification,
    Priority,
    Role,
    TransitionKind,
)
from vitalstation.alarms.escalation import ChainStage
from vitalstation.app.notifications import NotificationRouter
from vitalstation.domain.vitals import VitalKind
from vitalstation.storage.alarms import AlarmStore
from vitalstation.storage.outbox import OutboxStore
from vitalstation.storage.store import Store

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
RAISED_AT = T0 + timedelta(seconds=1, microseconds=250_000)  # microseconds in the text
ACKED_AT = T0 + timedelta(seconds=61)  # none: isoformat leaves them out, SQLite's text not
KEY = "bed:12|limit.heart_rate.high"
MESSAGE = "Heart rate high: 150 /min (limit ≥ 131)"
STATION = "station:Ward 5 North"


def _cycle() -> tuple[list[AlarmTransition], list[AlarmTransition]]:
    """The first batch (raised, patient asked) and the second (acknowledged, resolved, chain
    ended), as the engine hands them out."""
    alarm = Alarm(
        key=KEY, kind=AlarmKind.LIMIT, condition="heart_rate.high", priority=Priority.HIGH,
        state=AlarmState.ACTIVE, raised_at=RAISED_AT, updated_at=RAISED_AT, message=MESSAGE,
        latching=True, current_priority=Priority.HIGH, bed_label="12", patient_id="P1",
        device_id="DEV1", vital=VitalKind.HEART_RATE, value=150.0, worst_value=150.0,
        limit_value=131.0, measured_at=RAISED_AT - timedelta(milliseconds=5),
    )
    chain = ChainState(
        alarm_key=KEY, priority=Priority.HIGH, stage=ChainStage.ASKING_PATIENT,
        started_at=RAISED_AT, due_at=RAISED_AT + timedelta(minutes=2), message=MESSAGE,
        patient_id="P1", bed_label="12",
    )
    asked = [
        Notification(Role.PATIENT, channel, KEY, Priority.HIGH, "ask", "Do you need help?",
                     patient_id="P1", bed_label="12")
        for channel in (Channel.DEVICE, Channel.STATION)
    ]
    first = [
        AlarmTransition(
            TransitionKind.RAISED, alarm, RAISED_AT, "system", "engine", None,
            AlarmState.ACTIVE,
            details={"value": 150.0, "limit_value": 131.0, "priority": "high",
                     "message": MESSAGE},
        ),
        AlarmTransition(
            TransitionKind.PATIENT_ASKED, alarm, RAISED_AT, "system", "engine",
            AlarmState.ACTIVE, AlarmState.ACTIVE,
            details={"stage": "asking_patient", "due_at": chain.due_at},
            notifications=tuple(asked), escalation=chain,
        ),
    ]
    acked = alarm._replace(
        state=AlarmState.ACKNOWLEDGED, updated_at=ACKED_AT, acknowledged_at=ACKED_AT,
        acknowledged_by="Nurse Joy", condition_present=False, update_count=3,
    )
    resolved = acked._replace(state=AlarmState.RESOLVED, resolved_at=ACKED_AT)
    ended = chain._replace(
        stage=ChainStage.ENDED, ended_at=ACKED_AT, end_reason="acknowledged",
        ended_by="Nurse Joy", notified=(Role.NURSE, Role.DOCTOR),
    )
    paged = Notification(Role.NURSE, Channel.EMAIL, KEY, Priority.HIGH, "no_answer",
                         MESSAGE, patient_id="P1", bed_label="12")
    second = [
        AlarmTransition(
            TransitionKind.ACKNOWLEDGED, acked, ACKED_AT, "Nurse Joy", STATION,
            AlarmState.ACTIVE, AlarmState.ACKNOWLEDGED, notifications=(paged,),
        ),
        AlarmTransition(
            TransitionKind.RESOLVED, resolved, ACKED_AT, "system", "engine",
            AlarmState.ACKNOWLEDGED, AlarmState.RESOLVED,
            details={"reason": "condition ended", "state": ["acknowledged", "resolved"]},
        ),
        AlarmTransition(
            TransitionKind.ESCALATION_ENDED, resolved, ACKED_AT, "Nurse Joy", STATION,
            AlarmState.RESOLVED, AlarmState.RESOLVED,
            details={"reason": "acknowledged", "stage": "ended"}, escalation=ended,
        ),
    ]
    return first, second


def _stored(tmp_path: Path) -> tuple[list[tuple], dict[str, list[tuple]]]:
    """The alarm rows after the first batch, and every table's rows after the second."""
    path = tmp_path / "text.db"
    store = Store.open(f"sqlite:///{path}")
    try:
        store.registry.add_patient("P1", "Ada", actor="test", at=T0)
        store.registry.add_bed("12", "5N", actor="test", at=T0)
        router = NotificationRouter(OutboxStore(store.engine), store, station="Ward 5 North")
        router.refresh()
        alarm_store = AlarmStore(store.engine)
        first, second = _cycle()
        ids = alarm_store.write(first, {}, [router(t) for t in first])
        assert ids == {KEY: 1}
        with sqlite3.connect(path) as connection:
            after_first = connection.execute("SELECT * FROM alarms ORDER BY id").fetchall()
        alarm_store.write(second, ids, [router(t) for t in second])
    finally:
        store.close()
    with sqlite3.connect(path) as connection:
        return after_first, {
            table: connection.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
            for table in ("alarms", "alarm_events", "notification_outbox")
        }


def test_every_column_of_a_stored_cycle_is_the_pinned_text(tmp_path: Path) -> None:
    after_first, final = _stored(tmp_path)
    assert after_first == AFTER_FIRST_BATCH_ALARMS  # inserted as the batch left it
    assert final["alarms"] == ALARMS  # then updated once
    assert final["alarm_events"] == ALARM_EVENTS
    assert final["notification_outbox"] == NOTIFICATION_OUTBOX


# What the store wrote before its SQLite rows were built by hand for speed (the columns in
# the tables' order; the times as SQLAlchemy's SQLite DateTime stores them), but for the
# snapshot, which since schema 0009 holds only the fields the row's columns do not.
AFTER_FIRST_BATCH_ALARMS = [
    (
        1, 'limit', 'heart_rate.high', 'heart_rate', 'high', 'active', 'DEV1', 1, 1, 150.0,
        131.0, 'Heart rate high: 150 /min (limit ≥ 131)', '2026-11-02 08:00:01.250000',
        '2026-11-02 08:00:01.250000', None, 'bed:12|limit.heart_rate.high',
        (
            '{"acknowledged_at":null,"acknowledged_by":null,"audio_paused_until":null,'
            '"bed_label":"12","condition":"heart_rate.high","condition_present":true,'
            '"current_priority":"high","device_id":"DEV1","latching":true,'
            '"limit_value":131.0,"measured_at":"2026-11-02T08:00:01.245000+00:00",'
            '"patient_id":"P1","update_count":0,'
            '"updated_at":"2026-11-02T08:00:01.250000+00:00","value":150.0,'
            '"worst_value":150.0}'
        ),
        (
            '{"alarm_key":"bed:12|limit.heart_rate.high","answer":null,"answered_at":null,'
            '"answered_by":null,"bed_label":"12","due_at":"2026-11-02T08:02:01.250000+00:00",'
            '"end_reason":null,"ended_at":null,"ended_by":null,'
            '"message":"Heart rate high: 150 /min (limit ≥ 131)","notified":[],"patient_id":"P1",'
            '"priority":"high","stage":"asking_patient",'
            '"started_at":"2026-11-02T08:00:01.250000+00:00"}'
        ),
    ),
]
ALARMS = [
    (
        1, 'limit', 'heart_rate.high', 'heart_rate', 'high', 'resolved', 'DEV1', 1, 1, 150.0,
        131.0, 'Heart rate high: 150 /min (limit ≥ 131)', '2026-11-02 08:00:01.250000',
        '2026-11-02 08:01:01.000000', '2026-11-02 08:01:01.000000',
        'bed:12|limit.heart_rate.high',
        (
            '{"acknowledged_at":"2026-11-02T08:01:01+00:00","acknowledged_by":"Nurse Joy",'
            '"audio_paused_until":null,"bed_label":"12","condition":"heart_rate.high",'
            '"condition_present":false,"current_priority":"high","device_id":"DEV1",'
            '"latching":true,"limit_value":131.0,'
            '"measured_at":"2026-11-02T08:00:01.245000+00:00","patient_id":"P1",'
            '"update_count":3,"updated_at":"2026-11-02T08:01:01+00:00","value":150.0,'
            '"worst_value":150.0}'
        ),
        (
            '{"alarm_key":"bed:12|limit.heart_rate.high","answer":null,"answered_at":null,'
            '"answered_by":null,"bed_label":"12","due_at":"2026-11-02T08:02:01.250000+00:00",'
            '"end_reason":"acknowledged","ended_at":"2026-11-02T08:01:01+00:00",'
            '"ended_by":"Nurse Joy","message":"Heart rate high: 150 /min (limit ≥ 131)",'
            '"notified":["nurse","doctor"],"patient_id":"P1","priority":"high","stage":"ended",'
            '"started_at":"2026-11-02T08:00:01.250000+00:00"}'
        ),
    ),
]
ALARM_EVENTS = [
    (
        1, 1, '2026-11-02 08:00:01.250000', 'raised', 'system', 'engine',
        (
            '{"limit_value":131.0,"message":"Heart rate high: 150 /min (limit ≥ 131)",'
            '"priority":"high","value":150.0}'
        ),
    ),
    (
        2, 1, '2026-11-02 08:00:01.250000', 'patient_asked', 'system', 'engine',
        '{"due_at":"2026-11-02 08:02:01.250000+00:00","stage":"asking_patient"}',
    ),
    (
        3, 1, '2026-11-02 08:01:01.000000', 'acknowledged', 'Nurse Joy',
        'station:Ward 5 North', '{}',
    ),
    (
        4, 1, '2026-11-02 08:01:01.000000', 'resolved', 'system', 'engine',
        '{"reason":"condition ended","state":["acknowledged","resolved"]}',
    ),
    (
        5, 1, '2026-11-02 08:01:01.000000', 'escalation_ended', 'Nurse Joy',
        'station:Ward 5 North', '{"reason":"acknowledged","stage":"ended"}',
    ),
]
NOTIFICATION_OUTBOX = [
    (
        1, '2026-11-02 08:00:01.250000', 1, 'bed:12|limit.heart_rate.high', 'device',
        'device:DEV1',
        (
            '{"alarm_id":1,"alarm_key":"bed:12|limit.heart_rate.high",'
            '"at":"2026-11-02T08:00:01.250000+00:00","bed":"12","event":"patient_asked",'
            '"message":"Do you need help?","patient_id":"P1","priority":"high","reason":"ask",'
            '"role":"patient","station":"Ward 5 North"}'
        ),
        'pending', 0, '2026-11-02 08:00:01.250000', None, '2026-11-02 08:00:01.250000', None,
    ),
    (
        2, '2026-11-02 08:00:01.250000', 1, 'bed:12|limit.heart_rate.high', 'station',
        'station',
        (
            '{"alarm_id":1,"alarm_key":"bed:12|limit.heart_rate.high",'
            '"at":"2026-11-02T08:00:01.250000+00:00","bed":"12","event":"patient_asked",'
            '"message":"Do you need help?","patient_id":"P1","priority":"high","reason":"ask",'
            '"role":"patient","station":"Ward 5 North"}'
        ),
        'pending', 0, '2026-11-02 08:00:01.250000', None, '2026-11-02 08:00:01.250000', None,
    ),
    (
        3, '2026-11-02 08:01:01.000000', 1, 'bed:12|limit.heart_rate.high', 'email',
        'unconfigured:nurse',
        (
            '{"alarm_id":1,"alarm_key":"bed:12|limit.heart_rate.high",'
            '"at":"2026-11-02T08:01:01+00:00","bed":"12","event":"acknowledged",'
            '"message":"Heart rate high: 150 /min (limit ≥ 131)","patient_id":"P1",'
            '"priority":"high","reason":"no_answer","role":"nurse","station":"Ward 5 North"}'
        ),
        'pending', 0, '2026-11-02 08:01:01.000000', None, '2026-11-02 08:01:01.000000', None,
    ),
]
