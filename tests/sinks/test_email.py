"""Email notifications delivered to a real SMTP server on loopback: plain, STARTTLS with login
(the password from the secret lookup), SSL; refusals and an unreachable server."""

from __future__ import annotations

import logging

import pytest

from tests.sinks.servers import free_port, make_certificate, smtp_server
from vitalstation.sinks.delivery import DeliveryError
from vitalstation.sinks.email import SMTP_PASSWORD_SECRET, SmtpSender

PAYLOAD = {
    "station": "Ward 5 North", "alarm_id": 7, "alarm_key": "bed:12|limit.heart_rate.high",
    "event": "escalated", "at": "2026-11-02T08:02:00+00:00", "role": "doctor",
    "reason": "no_answer", "priority": "high", "message": "HR 160 /min > 130",
    "patient_id": "P1", "bed": "12", "notification_id": 41,
}
PASSWORD = "s3cret-smtp-pw"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


def test_a_plain_server_receives_the_email() -> None:
    with smtp_server() as (port, mailbox):
        sender = SmtpSender("127.0.0.1", port, sender="station@ward5.example", security="none")
        sender.send("doctor@ward5.example", PAYLOAD)
    ((recipients, message),) = mailbox.mails
    assert recipients == ["doctor@ward5.example"]
    assert message["Subject"] == "[Ward 5 North] *** HIGH alarm, bed 12 (P1): HR 160 /min > 130"
    assert message["X-VitalStation-Notification"] == "41"
    body = message.get_payload()
    assert "For: doctor" in body and "Why: no_answer" in body and "Alarm: 7" in body


def test_starttls_with_login_takes_the_password_from_the_secret_lookup(
    certificate, caplog
) -> None:
    asked: list[str] = []

    def lookup(name: str) -> str | None:
        asked.append(name)
        return PASSWORD

    with caplog.at_level(logging.DEBUG), smtp_server(
        certificate=certificate, user=("ward5", PASSWORD)
    ) as (port, mailbox):
        sender = SmtpSender(
            "127.0.0.1", port, sender="station@ward5.example", security="starttls",
            username="ward5", secret_lookup=lookup, ssl_context=certificate.client_context(),
        )
        sender.send("nurse@ward5.example", PAYLOAD)
    assert asked == [SMTP_PASSWORD_SECRET]
    assert mailbox.logins == ["ward5"] and len(mailbox.mails) == 1
    assert PASSWORD not in caplog.text


def test_implicit_ssl(certificate) -> None:
    with smtp_server(certificate=certificate, implicit_tls=True) as (port, mailbox):
        SmtpSender("127.0.0.1", port, sender="s@w.example", security="ssl",
                   ssl_context=certificate.client_context()).send("d@w.example", PAYLOAD)
    assert len(mailbox.mails) == 1


def test_a_wrong_password_is_a_retried_failure_without_the_password(certificate) -> None:
    with smtp_server(certificate=certificate, user=("ward5", PASSWORD)) as (port, mailbox):
        sender = SmtpSender(
            "127.0.0.1", port, sender="s@w.example", username="ward5",
            secret_lookup=lambda name: "wrong-password", ssl_context=certificate.client_context(),
            timeout_s=3,
        )
        with pytest.raises(DeliveryError) as caught:
            sender.send("d@w.example", PAYLOAD)
    # smtplib tries PLAIN, then LOGIN after the 535; aiosmtpd may hang up on the second.
    assert not caught.value.permanent
    assert "wrong-password" not in str(caught.value) and mailbox.mails == []


def test_a_missing_password_and_an_untrusted_certificate_are_failures(certificate) -> None:
    with smtp_server(certificate=certificate, user=("ward5", PASSWORD)) as (port, _):
        with pytest.raises(DeliveryError, match="secret smtp.password is not"):
            SmtpSender("127.0.0.1", port, sender="s@w.example", username="ward5",
                       secret_lookup=lambda name: None,
                       ssl_context=certificate.client_context()).send("d@w.example", PAYLOAD)
        with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            SmtpSender("127.0.0.1", port, sender="s@w.example").send("d@w.example", PAYLOAD)


def test_no_server_is_a_retried_failure() -> None:
    sender = SmtpSender("127.0.0.1", free_port(), sender="s@w.example", security="none",
                        timeout_s=2)
    with pytest.raises(DeliveryError) as caught:
        sender.send("d@w.example", PAYLOAD)
    assert not caught.value.permanent and "ConnectionRefusedError" in str(caught.value)


def test_a_refused_recipient_is_permanent() -> None:
    with smtp_server() as (port, _):
        sender = SmtpSender("127.0.0.1", port, sender="s@w.example", security="none")
        with pytest.raises(DeliveryError) as caught:
            sender.send("nobody@refused.example", PAYLOAD)
    assert caught.value.permanent
