"""Escalation notifications end to end: engine → store + outbox (one transaction) → delivery to
a real SMTP server and a real webhook on loopback (500, then retried), failures shown to the
nurse, DynamoDB items through an outage, and a chain that survives a restart mid-way. A fake
clock drives the escalation and the retries; the store is real (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from tests.alarms.support import STATION, Ward
from tests.sinks.servers import free_port, smtp_server, webhook_server
from vitalstation.app.alarms import AlarmService
from vitalstation.app.notifications import Notifications, RetryPolicy
from vitalstation.config.settings import DynamoDBSettings, NotificationsSettings, Settings
from vitalstation.sinks.email import SmtpSender
from vitalstation.sinks.webhook import WebhookSender
from vitalstation.storage.alarms import AlarmStore
from vitalstation.storage.outbox import ContactScope, OutboxStatus, OutboxStore

HIGH_TIMEOUT = timedelta(minutes=2)


def settings_for(tmp_path, **notifications) -> Settings:
    base = Settings(home=tmp_path)
    return dataclasses.replace(
        base, station=dataclasses.replace(base.station, name="Ward 5 North"),
        notifications=NotificationsSettings(
            retry_initial_s=30, retry_max_s=120, max_attempts=3, **notifications
        ),
    )


def add_contacts(store, webhook_url: str) -> None:
    outbox = OutboxStore(store.engine)
    at = Ward().now()
    outbox.add_contact(ContactScope.PATIENT, "P1", "nurse", "email", "nurse.p1@ward5.example",
                       actor="admin", at=at)
    outbox.add_contact(ContactScope.WARD, "5N", "doctor", "email", "oncall@ward5.example",
                       actor="admin", at=at)
    outbox.add_contact(ContactScope.WARD, "5N", "doctor", "webhook", webhook_url,
                       actor="admin", at=at)
    outbox.add_contact(ContactScope.WARD, "", "ems", "webhook", webhook_url,
                       actor="admin", at=at)


def wire(ward: Ward, store, settings: Settings, senders: dict) -> tuple[AlarmService,
                                                                          Notifications]:
    service = AlarmService(ward.engine, AlarmStore(store.engine))
    service.resume()
    notifications = Notifications.from_settings(
        settings, store, service, clock=ward.clock, senders=senders
    )
    return service, notifications


def raise_high(service: AlarmService, ward: Ward) -> int:
    with service._lock:
        service._handle(ward.send(heart_rate=160))
    (alarm,) = service.active_alarms()
    assert alarm.alarm_id is not None
    return alarm.alarm_id


def drain(notifications: Notifications) -> None:
    while notifications.worker.run_once():
        pass


def test_an_unanswered_alarm_pages_by_email_and_webhook_with_a_retry(ward_store, tmp_path
                                                                      ) -> None:
    ward, store = ward_store
    with smtp_server() as (smtp_port, mailbox), webhook_server([500]) as (url, hooks):
        add_contacts(store, url)
        senders = {
            "email": SmtpSender("127.0.0.1", smtp_port, sender="station@ward5.example",
                                security="none", station="Ward 5 North"),
            "webhook": WebhookSender(timeout_s=5),
        }
        service, notifications = wire(ward, store, settings_for(tmp_path), senders)
        shown = []
        notifications.station.add_listener(shown.append)
        alarm_id = raise_high(service, ward)
        drain(notifications)
        assert [(r.channel, r.payload["role"]) for r in shown] == [
            ("device", "patient"), ("station", "patient"),
        ]
        ward.clock.advance(HIGH_TIMEOUT)  # no answer: the nurse
        service.tick()
        drain(notifications)
        ward.clock.advance(HIGH_TIMEOUT)  # no acknowledgement: the doctor (email + webhook)
        service.tick()
        drain(notifications)
        assert hooks.answered == [500]
        ward.clock.advance(timedelta(seconds=30))  # the webhook's retry falls due
        drain(notifications)
        assert hooks.answered == [500, 200]

    rows = {(r.channel, r.recipient): r for r in service.notifications(alarm_id)}
    assert rows[("email", "nurse.p1@ward5.example")].status is OutboxStatus.DELIVERED
    doctor_hook = rows[("webhook", url)]
    assert (doctor_hook.status, doctor_hook.attempts) == (OutboxStatus.DELIVERED, 2)
    assert sorted(r for recipients, _ in mailbox.mails for r in recipients) == [
        "nurse.p1@ward5.example", "oncall@ward5.example",
    ]
    body = hooks.bodies[-1]
    assert body["schema"] == "vitalstation.notification/1"
    assert (body["alarm_id"], body["role"], body["reason"]) == (
        alarm_id, "doctor", "no_acknowledgement",
    )
    assert body["notification_id"] == doctor_hook.id
    assert [m["Subject"] for _, m in mailbox.mails][0].startswith("[Ward 5 North] *** HIGH")


def test_a_page_nobody_can_receive_is_shown_to_the_nurse(ward_store, tmp_path) -> None:
    ward, store = ward_store  # no contacts at all
    service, notifications = wire(ward, store, settings_for(tmp_path), {})
    heard = []
    service.add_listener(heard.append)
    alarm_id = raise_high(service, ward)
    ward.clock.advance(HIGH_TIMEOUT)
    service.tick()
    drain(notifications)
    (failed,) = [r for r in service.notifications(alarm_id) if r.channel == "email"]
    assert failed.status is OutboxStatus.FAILED and failed.attempts == 1
    assert "no email contact for the nurse of 12" in failed.last_error
    technical = [a for a in service.active_alarms() if a.condition == "notification_failed"]
    assert len(technical) == 1 and "email" in technical[0].message
    events = [e.event for e in service.events(alarm_id)]
    assert "notification_failed" in events
    assert any(t.kind.value == "notification_failed" for t in heard)


def test_a_down_smtp_server_is_retried_then_failed_and_shown(ward_store, tmp_path) -> None:
    ward, store = ward_store
    add_contacts(store, "http://127.0.0.1:9/unused")
    sender = SmtpSender("127.0.0.1", free_port(), sender="s@w.example", security="none",
                        timeout_s=2)
    service, notifications = wire(ward, store, settings_for(tmp_path), {"email": sender})
    alarm_id = raise_high(service, ward)
    ward.clock.advance(HIGH_TIMEOUT)
    service.tick()
    policy = RetryPolicy(timedelta(seconds=30), timedelta(seconds=120), 3)
    for attempt in range(1, 4):
        drain(notifications)
        (row,) = [r for r in service.notifications(alarm_id) if r.channel == "email"]
        assert row.attempts == attempt
        ward.clock.advance(policy.delay(attempt))
    assert row.status is OutboxStatus.FAILED and "ConnectionRefusedError" in row.last_error
    assert [policy.delay(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 120]
    assert any(a.condition == "notification_failed" for a in service.active_alarms())


def test_the_chain_and_its_notifications_survive_a_restart(ward_store, tmp_path) -> None:
    ward, store = ward_store
    with smtp_server() as (smtp_port, mailbox):
        add_contacts(store, "http://127.0.0.1:9/unused")
        senders = {"email": SmtpSender("127.0.0.1", smtp_port, sender="s@w.example",
                                       security="none")}
        service, _ = wire(ward, store, settings_for(tmp_path), senders)
        alarm_id = raise_high(service, ward)
        ward.clock.advance(HIGH_TIMEOUT)
        service.tick()  # the nurse is paged; the station dies before delivering
        assert [r.status for r in service.notifications(alarm_id) if r.channel == "email"] == [
            OutboxStatus.PENDING,
        ]
        del service

        later = Ward()
        later.clock.advance(HIGH_TIMEOUT + timedelta(seconds=90))  # 30 s before the doctor
        restarted, notifications = wire(later, store, settings_for(tmp_path), senders)
        chain = restarted.escalation(alarm_id)
        assert [r.value for r in chain.notified] == ["nurse"]
        assert chain.due_at == Ward().now() + 2 * HIGH_TIMEOUT
        assert restarted.tick() == []
        drain(notifications)  # the nurse's email, left by the first run
        later.clock.advance(timedelta(seconds=30))
        (step,) = [t for t in restarted.tick() if t.kind.value == "escalated"]
        assert step.details["roles"] == ["doctor"] and step.details["reason"] == (
            "no_acknowledgement"
        )
        drain(notifications)
        restarted.acknowledge(alarm_id, actor="Dr Who", origin=STATION)
        assert restarted.escalation(alarm_id) is None
    recipients = [r for rcpt, _ in mailbox.mails for r in rcpt]
    assert recipients == ["nurse.p1@ward5.example", "oncall@ward5.example"]
    events = [e.event for e in restarted.events(alarm_id)]
    assert events.count("escalated") == 2 and events[-1] == "escalation_ended"


moto_server = pytest.importorskip("moto.server", reason="moto[server] is a test dependency")


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTESTING")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_dynamodb_items_wait_out_an_outage(ward_store, tmp_path, aws_environment) -> None:
    import uuid

    from tests.sinks.test_dynamodb import create_table, items
    from vitalstation.sinks.dynamodb import DynamoDBAnomalySink, dynamodb_client_factory

    ward, store = ward_store
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    table = f"BSM_anamoly_{uuid.uuid4().hex[:8]}"
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    create_table(endpoint, table)
    server.stop()  # the outage
    settings = dataclasses.replace(
        settings_for(tmp_path),
        dynamodb=DynamoDBSettings(enabled=True, table=table, endpoint_url=endpoint),
    )
    sink = DynamoDBAnomalySink(dynamodb_client_factory(settings.dynamodb))
    service, notifications = wire(ward, store, settings, {"dynamodb": sink})
    alarm_id = raise_high(service, ward)
    for _ in range(4):  # past max_attempts (3): the nurse is told, the item is kept
        drain(notifications)
        ward.clock.advance(timedelta(minutes=2))
    (row,) = [r for r in service.notifications(alarm_id) if r.channel == "dynamodb"]
    assert row.status is OutboxStatus.PENDING and row.attempts == 4
    assert any(a.condition == "notification_failed" for a in service.active_alarms())

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        drain(notifications)
        stored_items = items(endpoint, table)
    finally:
        server.stop()
    assert service.notifications(alarm_id)[-1].status is OutboxStatus.DELIVERED
    # Every alarm is an item: the heart rate, and the technical alarm about the outage.
    (stored,) = [i for i in stored_items if i["alarm_id"] == alarm_id]
    (technical,) = [i for i in stored_items if i["alarm_id"] != alarm_id]
    assert technical["datatype"] == "notification_failed"
    assert (stored["deviceid"], stored["datatype"], stored["value"]) == ("DEV1", "HeartRate", 160)
    assert stored["alarm_id"] == alarm_id and stored["priority"] == "high"
    assert stored["timestamp"] == "2026-11-02 08:00:00.000000"
    assert not any(a.condition == "notification_failed" for a in service.active_alarms())


def test_the_smtp_password_comes_from_the_secret_store_or_the_environment_only_if_chosen(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keyring
    from keyring.backends import fail

    from vitalstation.app.notifications import secret_lookup_for
    from vitalstation.config.settings import SecretsSettings

    monkeypatch.setenv("VITALSTATION_SECRET_SMTP_PASSWORD", "pw-from-env")
    chosen = dataclasses.replace(Settings(home=tmp_path),
                                 secrets=SecretsSettings(source="environment"))
    assert secret_lookup_for(chosen)("smtp.password") == "pw-from-env"
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())  # no keyring on this machine, and no choice made
    try:
        assert secret_lookup_for(Settings(home=tmp_path))("smtp.password") is None
        assert secret_lookup_for(chosen)("smtp.password") == "pw-from-env"
    finally:
        keyring.set_keyring(previous)
