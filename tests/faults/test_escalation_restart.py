"""An escalation chain survives a SIGKILL of ``vitalstation serve`` mid-chain, in real time.

A real ``serve`` (SQLite) with the nurse's and the doctor's contacts, a real SMTP server
(aiosmtpd) and a webhook receiver on loopback. A REST reading with heart rate 150 raises a
HIGH alarm: stage 1 asks the patient, and with no answer within the HIGH timeout (2 minutes,
fixed) the nurse is paged by e-mail. The station is SIGKILLed during stage 1 and started
again: the chain must resume from the database and escalate at its stored due time (not
restart its 2 minutes, not fire early), the nurse's mail must arrive once, and a second
SIGKILL after the delivery must not send it again (the outbox row is delivered). The full
form (``VITALSTATION_FULL_PROOF=1``) also kills the station during stage 2 and waits for the
doctor's page (e-mail and webhook) at its due time.

Time: the HIGH timeout cannot be configured, so that CI need not wait 2 minutes the *first*
run's clock (the station's clock, ``domain.clock``) is set back ``OFFSET_S`` seconds: the alarm
is raised "``OFFSET_S`` seconds ago" as the database sees it, and falls due a few seconds after
the restart. The restarted station, the one under test, is the plain ``serve`` on the true
clock. The full form's stage 2 runs its whole 2 minutes in real time.
"""

from __future__ import annotations

import http.client
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy

from simulator.register import SIM_WARD
from tests.faults.harness import FULL, Home, StationProcess, iso_z, make_home
from tests.simulator.conftest import free_port
from tests.sinks.servers import Mailbox, smtp_server, webhook_server
from vitalstation.storage.outbox import ContactScope, OutboxStore
from vitalstation.storage.schema import alarm_events, alarms, notification_outbox
from vitalstation.storage.store import Store

HIGH_TIMEOUT = timedelta(minutes=2)
OFFSET_S = 108.0  # the first run's clock is this far behind: the nurse is due ~12 s after
WAIT_S = 60.0  # for anything the station does (generous: CI machines are shared)
NURSE, DOCTOR = "nurse@ward.example", "oncall@ward.example"


def add_contacts(home: Home, webhook_url: str) -> None:
    store = Store.open(home.store_url)
    try:
        outbox = OutboxStore(store.engine)
        at = datetime.now(UTC) - timedelta(days=1)
        outbox.add_contact(ContactScope.WARD, SIM_WARD, "nurse", "email", NURSE,
                           actor="test:faults", at=at)
        outbox.add_contact(ContactScope.WARD, SIM_WARD, "doctor", "email", DOCTOR,
                           actor="test:faults", at=at)
        outbox.add_contact(ContactScope.WARD, SIM_WARD, "doctor", "webhook", webhook_url,
                           actor="test:faults", at=at)  # the doctor's second channel
    finally:
        store.close()


def post_reading(home: Home, heart_rate: float, at: datetime) -> list[int]:
    """POST one reading, retried while answered 503 (as a device does); every answer."""
    device = home.devices[0]
    answers: list[int] = []
    while not answers or (answers[-1] == 503 and len(answers) < 10):
        conn = http.client.HTTPConnection("127.0.0.1", home.rest_port, timeout=30)
        try:
            conn.request("POST", "/api/iot/vitals/", body=json.dumps(
                {"device_id": device, "timestamp": iso_z(at), "heart_rate": heart_rate}),
                headers={"Authorization": f"Bearer {home.keys[device]}",
                         "Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            answers.append(response.status)
        finally:
            conn.close()
    return answers


class Database:
    """The station's store, read directly (the station may be dead)."""

    def __init__(self, url: str) -> None:
        self.engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.NullPool)

    def chain(self) -> tuple[int, dict | None]:
        """The one HIGH heart-rate alarm's id and its escalation chain (JSON)."""
        with self.engine.connect() as db:
            rows = db.execute(sqlalchemy.select(alarms.c.id, alarms.c.escalation).where(
                alarms.c.condition.like("heart_rate%"))).all()
        assert len(rows) <= 1, rows
        if not rows:
            return 0, None
        alarm_id, chain = rows[0]
        return alarm_id, (json.loads(chain) if chain else None)

    def events(self, alarm_id: int) -> list[tuple[str, datetime, str]]:
        with self.engine.connect() as db:
            rows = db.execute(sqlalchemy.select(
                alarm_events.c.event, alarm_events.c.at, alarm_events.c.details,
            ).where(alarm_events.c.alarm_ref == alarm_id).order_by(alarm_events.c.id)).all()
        return [(event, at.astimezone(UTC), details) for event, at, details in rows]

    def emails(self) -> list[tuple[str, str, int]]:
        with self.engine.connect() as db:
            rows = db.execute(sqlalchemy.select(
                notification_outbox.c.recipient, notification_outbox.c.status,
                notification_outbox.c.attempts,
            ).where(notification_outbox.c.channel == "email")
             .order_by(notification_outbox.c.id)).all()
        return [tuple(row) for row in rows]

    def close(self) -> None:
        self.engine.dispose()


def wait_for(what: str, predicate, timeout: float, station: StationProcess):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{station.log[-4000:]}"
        time.sleep(0.1)


def escalated_to(db: Database, alarm_id: int, role: str) -> list[datetime]:
    return [at for event, at, details in db.events(alarm_id)
            if event == "escalated" and role in json.loads(details or "{}").get("roles", [])]


def wait_escalation(db: Database, alarm_id: int, role: str, due: datetime,
                    restarted: datetime, station: StationProcess) -> datetime:
    """The moment the chain escalated to ``role``; asserts it did so on schedule: not before
    its due time, and within 5 s of it (or of the restart, if that came after it: an overdue
    step is taken at once)."""
    wait = (due - datetime.now(UTC)).total_seconds()
    (at,) = wait_for(f"the escalation to the {role}",
                     lambda: escalated_to(db, alarm_id, role), max(0.0, wait) + WAIT_S, station)
    assert at >= due, f"escalated to the {role} {(due - at).total_seconds():.1f} s early"
    late = (at - max(due, restarted)).total_seconds()
    assert late < 5, f"escalated to the {role} {late:.1f} s after it was due ({due})"
    return at


def mails_to(mailbox: Mailbox) -> list[str]:
    return [r for recipients, _ in mailbox.mails for r in recipients]


@pytest.mark.timeout(500 if FULL else 240)
def test_escalation_resumes_after_sigkill_mid_chain_and_pages_once(tmp_path: Path) -> None:
    with smtp_server() as (smtp_port, mailbox), webhook_server() as (webhook_url, hooks):
        toml = ('[mqtt]\nenabled = false\n'
                f'[notifications]\nsmtp_host = "127.0.0.1"\nsmtp_port = {smtp_port}\n'
                'smtp_security = "none"\nsmtp_from = "station@ward.example"\n'
                'retry_initial_s = 2\n')
        home = make_home(tmp_path / "home", toml, rest_port=free_port(), beds=1)
        add_contacts(home, webhook_url)
        station = StationProcess(home, clock_offset_s=-OFFSET_S)
        db = Database(home.store_url)
        figures: list[str] = []
        try:
            station.start()
            station_now = datetime.now(UTC) - timedelta(seconds=OFFSET_S)
            answers = post_reading(home, 150.0, station_now)
            assert answers[-1] == 200, f"{answers}\n{station.log[-4000:]}"
            alarm_id, chain = wait_for("the chain in the database", lambda: (
                (lambda c: c if c[1] and c[1]["stage"] == "asking_patient" else None)(
                    db.chain())), WAIT_S, station)
            raised = datetime.fromisoformat(chain["started_at"])
            due = datetime.fromisoformat(chain["due_at"])
            assert due == raised + HIGH_TIMEOUT
            assert chain["notified"] == []

            station.kill()  # stage 1: the patient asked, nobody paged yet
            assert mailbox.mails == []
            station.clock_offset_s = 0.0  # the plain serve, on the true clock
            station.start()
            restarted = datetime.now(UTC)
            _, resumed = db.chain()
            assert resumed is not None and resumed["stage"] == "asking_patient"
            assert datetime.fromisoformat(resumed["due_at"]) == due  # not restarted
            at = wait_escalation(db, alarm_id, "nurse", due, restarted, station)
            figures.append(f"nurse paged {(at - due).total_seconds():.2f} s after due (the "
                           f"restart {(due - restarted).total_seconds():.1f} s before it)")
            wait_for("the nurse's mail", lambda: mails_to(mailbox), WAIT_S, station)
            wait_for("the outbox row delivered",
                     lambda: db.emails() == [(NURSE, "delivered", 1)], WAIT_S, station)

            station.kill()  # the page is delivered: a restart must not send it again
            station.start()
            time.sleep(3.0)  # past the outbox's poll and the 2 s retry back-off
            assert mails_to(mailbox) == [NURSE]
            assert db.emails() == [(NURSE, "delivered", 1)]
            _, chain = db.chain()
            assert chain["stage"] == "awaiting_acknowledgement"
            assert chain["notified"] == ["nurse"]
            doctor_due = datetime.fromisoformat(chain["due_at"])
            assert doctor_due == due + HIGH_TIMEOUT

            if FULL:  # stage 2 in real time, with a SIGKILL in the middle of it
                time.sleep(max(0.0, (doctor_due - datetime.now(UTC)).total_seconds() / 2))
                station.kill()
                station.start()
                restarted = datetime.now(UTC)
                at = wait_escalation(db, alarm_id, "doctor", doctor_due, restarted, station)
                figures.append(f"doctor paged {(at - doctor_due).total_seconds():.2f} s "
                               "after due")
                wait_for("the doctor's mail", lambda: DOCTOR in mails_to(mailbox), WAIT_S,
                         station)
            station.stop()
            events = [event for event, _, _ in db.events(alarm_id)]
        finally:
            station.close()
            db.close()

    expected_mails = [NURSE, DOCTOR] if FULL else [NURSE]
    print(f"escalation restart: starts {station.starts}, {'; '.join(figures)}; "
          f"mails {mails_to(mailbox)}; events {events}")
    assert mails_to(mailbox) == expected_mails
    assert events.count("raised") == 1
    assert events.count("patient_asked") == 1  # the restart did not ask the patient again
    assert events.count("escalated") == len(expected_mails)
    assert "notification_failed" not in events
    assert len(hooks.answered) == (1 if FULL else 0)  # the doctor's webhook, once
