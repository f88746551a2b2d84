"""Email notifications over SMTP (smtplib): plain, STARTTLS or SSL, optional login.

The password is looked up by name at each connection (``secret_lookup("smtp.password")``: the
OS keyring, or the environment by the admin's choice), so it is never in the settings, the
database or the log, and a password changed in Settings applies at the next message.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from vitalstation.sinks.delivery import DeliveryError, SecretLookup, summary

SMTP_PASSWORD_SECRET = "smtp.password"
SECURITY_MODES = ("starttls", "ssl", "none")

class SmtpSender:
    """Sends one notification as one email (a connection per message: pages are rare)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        security: str = "starttls",
        username: str = "",
        secret_lookup: SecretLookup | None = None,
        timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        station: str = "VitalStation",
    ) -> None:
        if security not in SECURITY_MODES:
            raise ValueError(f"SMTP security {security!r} is not one of {SECURITY_MODES}")
        self.host, self.port, self.sender = host, port, sender
        self.security, self.username = security, username
        self._secret_lookup = secret_lookup
        self.timeout_s = timeout_s
        self._ssl_context = ssl_context
        self.station = station

    def send(self, recipient: str, payload: Mapping[str, Any]) -> None:
        """Deliver, or raise ``DeliveryError`` (permanent when the server refuses the address
        or the message with a 5xx answer)."""
        message = self.compose(recipient, payload)
        try:
            with self._connect() as smtp:
                if self.username:
                    smtp.login(self.username, self._password())
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"recipient refused: {exc.recipients}", permanent=True) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"SMTP login refused for {self.username}: {exc.smtp_code}"
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"SMTP server answered {exc.smtp_code}: {_text(exc.smtp_error)}",
                permanent=500 <= exc.smtp_code < 600,
            ) from None
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            raise DeliveryError(
                f"SMTP {self.host}:{self.port} ({self.security}): {type(exc).__name__}: {exc}"
            ) from None

    def compose(self, recipient: str, payload: Mapping[str, Any]) -> EmailMessage:
        """The email: a one-line subject with the priority marker, the facts in the body."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = recipient
        message["Subject"] = f"[{payload.get('station') or self.station}] {summary(payload)}"
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain="vitalstation")
        if payload.get("notification_id") is not None:
            message["X-VitalStation-Notification"] = str(payload["notification_id"])
        lines = [summary(payload), ""]
        for label, key in (
            ("For", "role"), ("Why", "reason"), ("Alarm", "alarm_id"), ("Event", "event"),
            ("Patient", "patient_id"), ("Bed", "bed"), ("At", "at"),
        ):
            if payload.get(key) is not None:
                lines.append(f"{label}: {payload[key]}")
        lines += ["", "Acknowledge or escalate at the station."]
        message.set_content("\n".join(lines))
        return message

    def _connect(self) -> smtplib.SMTP:
        context = self._ssl_context or ssl.create_default_context()
        if self.security == "ssl":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s,
                                    context=context)
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        try:
            if self.security == "starttls":
                smtp.starttls(context=context)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _password(self) -> str:
        password = None if self._secret_lookup is None else self._secret_lookup(
            SMTP_PASSWORD_SECRET
        )
        if not password:
            raise DeliveryError(
                f"SMTP user {self.username} is set but the secret {SMTP_PASSWORD_SECRET} is not"
            )
        return password


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
