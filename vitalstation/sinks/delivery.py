"""What every notification channel shares: the message's documented JSON, and how a sender
says an attempt failed.

A sender delivers one message to one recipient and returns, or raises :class:`DeliveryError`
(``permanent`` when retrying cannot help: a refused address, a 4xx answer). The outbox in the
station (``app/notifications.py``) retries the others with back-off, and tells the nurse about
a message it gave up on.

The notification JSON (``schema`` ``vitalstation.notification/1``), the body of a webhook POST
and the source of an email, has these fields::

    schema           "vitalstation.notification/1"
    notification_id  the outbox row id (the same on every retry: receivers may deduplicate)
    station          the station's name
    alarm_id         the alarm's database id
    alarm_key        the engine's condition key, e.g. "bed:12|limit.heart_rate.high"
    event            the alarm event that caused it (raised, escalated, patient_asked, ...)
    at               when (ISO 8601, UTC)
    role             who it is for: nurse, doctor, ems, patient
    reason           ask | patient_request | no_answer | no_acknowledgement | manual
    priority         high | medium | low
    message          the alarm's message, e.g. "HR 160 /min > 130"
    patient_id, bed  where (either may be null)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

NOTIFICATION_SCHEMA = "vitalstation.notification/1"
PRIORITY_MARKERS = {"high": "***", "medium": "**", "low": "*"}

SecretLookup = Callable[[str], "str | None"]
"""A secret by name (e.g. ``smtp.password``), or None when it is not set; handed down by the
station (the OS keyring), so no sink reads a secret store itself."""


class DeliveryError(Exception):
    """One attempt failed; ``permanent``: retrying the same message cannot succeed."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Sender(Protocol):
    """Delivers one message to one recipient (blocking; called on the delivery thread)."""

    def send(self, recipient: str, payload: Mapping[str, Any]) -> None:
        """Deliver or raise :class:`DeliveryError`."""


def summary(payload: Mapping[str, Any]) -> str:
    """One line for a subject or a log: ``*** HIGH alarm, bed 12 (P1): HR 160 /min > 130``."""
    priority = str(payload.get("priority") or "")
    where = []
    if payload.get("bed"):
        where.append(f"bed {payload['bed']}")
    if payload.get("patient_id"):
        where.append(f"({payload['patient_id']})" if where else f"patient {payload['patient_id']}")
    place = " " + " ".join(where) if where else ""
    marker = PRIORITY_MARKERS.get(priority, "")
    return f"{marker} {priority.upper()} alarm,{place}: {payload.get('message', '')}".strip()
