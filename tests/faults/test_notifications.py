"""The notification outbox through an SMTP outage: pages wait in the outbox while the mail
server is down and go out, once each, when it comes back on the same address.

In process (the escalation's minutes are driven by the fake clock of ``tests/alarms``), on the
real store (SQLite and PostgreSQL) and a real SMTP server (aiosmtpd) on loopback. The chain
surviving a restart mid-way is ``tests/app/test_alarms_notifications.py``
(``test_the_chain_and_its_notifications_survive_a_restart``).
"""

from __future__ import annotations

from datetime import timedelta

from aiosmtpd.controller import Controller

from tests.app.test_alarms_notifications import (
    HIGH_TIMEOUT,
    add_contacts,
    drain,
    raise_high,
    settings_for,
    wire,
)
from tests.sinks.servers import Mailbox, free_port
from vitalstation.sinks.email import SmtpSender
from vitalstation.storage.outbox import OutboxStatus


def test_the_outbox_delivers_once_the_smtp_server_returns(ward_store, tmp_path) -> None:
    ward, store = ward_store
    add_contacts(store, "http://127.0.0.1:9/unused")
    port = free_port()  # nobody listens yet: the mail server is down
    sender = SmtpSender("127.0.0.1", port, sender="station@ward5.example", security="none",
                        timeout_s=2)
    service, notifications = wire(ward, store, settings_for(tmp_path), {"email": sender})
    alarm_id = raise_high(service, ward)
    ward.clock.advance(HIGH_TIMEOUT)  # no answer: the nurse is paged by email
    service.tick()
    drain(notifications)

    def email_rows():
        return [r for r in service.notifications(alarm_id) if r.channel == "email"]

    (row,) = email_rows()
    assert (row.status, row.attempts) == (OutboxStatus.PENDING, 1), row
    assert "ConnectionRefused" in row.last_error

    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()  # the mail server is back, same address
    try:
        drain(notifications)
        assert email_rows()[0].attempts == 1  # the retry waits for its back-off (30 s)
        ward.clock.advance(timedelta(seconds=30))
        drain(notifications)
        drain(notifications)  # nothing left: a second pass sends nothing again
    finally:
        controller.stop()
    (row,) = email_rows()
    print(f"SMTP outage: {row.attempts} attempts, {row.status.value}; "
          f"mails received {len(mailbox.mails)}")
    assert (row.status, row.attempts) == (OutboxStatus.DELIVERED, 2)
    assert [rcpt for rcpt, _ in mailbox.mails] == [["nurse.p1@ward5.example"]]
    assert not any(a.condition == "notification_failed" for a in service.active_alarms())
