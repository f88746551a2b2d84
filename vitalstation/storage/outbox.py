"""The notification outbox and the contacts it addresses, in the database.

Each message the station must deliver (an email, a webhook POST, a station dialog, a DynamoDB
anomaly item) is one ``notification_outbox`` row, written in the same transaction as the alarm
transition that caused it, so a crash can never lose a page. The delivery thread claims due
rows, tries them, and records the outcome: delivered, retried later (attempts, next attempt,
last error) or failed. Claiming is an optimistic update of ``next_attempt_at``, so two stations
sharing one PostgreSQL never send the same message twice at once.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import IntegrityError

from vitalstation.domain.errors import UserError
from vitalstation.storage.json_text import json_text
from vitalstation.storage.schema import audit_log, notification_contacts, notification_outbox

MAX_ERROR_CHARS = 2000
MAX_RECIPIENT_CHARS = 500


class OutboxStatus(enum.StrEnum):
    """Where a message stands."""

    PENDING = "pending"  # waiting for its next attempt
    DELIVERED = "delivered"
    FAILED = "failed"  # given up: the nurse is told (technical alarm)


class ContactScope(enum.StrEnum):
    """Whose contact it is: a ward's (``scope_id`` the ward, ``""`` every ward) or a patient's."""

    WARD = "ward"
    PATIENT = "patient"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message to enqueue: the channel, who receives it, and what (JSON-ready)."""

    channel: str
    recipient: str
    payload: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.recipient or len(self.recipient) > MAX_RECIPIENT_CHARS:
            raise ValueError(f"a {self.channel} message needs a recipient of at most "
                             f"{MAX_RECIPIENT_CHARS} characters")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One stored message and its delivery state."""

    id: int
    created_at: datetime
    alarm_id: int | None
    alarm_key: str | None
    channel: str
    recipient: str
    payload: dict[str, Any]
    status: OutboxStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    updated_at: datetime
    delivered_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``vitalstation alarms notifications --json``, the window)."""
        return {
            "id": self.id, "created_at": _iso(self.created_at), "alarm_id": self.alarm_id,
            "alarm_key": self.alarm_key, "channel": self.channel, "recipient": self.recipient,
            "payload": self.payload, "status": self.status.value, "attempts": self.attempts,
            "next_attempt_at": _iso(self.next_attempt_at), "last_error": self.last_error,
            "updated_at": _iso(self.updated_at), "delivered_at": _iso(self.delivered_at),
        }


@dataclass(frozen=True, slots=True)
class ContactRow:
    """Who a role is reached at, for a ward or a patient."""

    id: int
    scope: ContactScope
    scope_id: str
    role: str
    channel: str
    address: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"id": self.id, "scope": self.scope.value, "scope_id": self.scope_id,
                "role": self.role, "channel": self.channel, "address": self.address}


class ContactExists(UserError):
    """That contact is already registered."""


def message_rows(
    messages: Iterable[OutboxMessage],
    *,
    at: datetime,
    alarm_id: int | None = None,
    alarm_key: str | None = None,
) -> list[dict[str, Any]]:
    """The outbox rows of ``messages`` (due at once; the alarm id added to each payload)."""
    return [
        {
            "created_at": at, "alarm_ref": alarm_id, "alarm_key": alarm_key,
            "channel": m.channel, "recipient": m.recipient,
            "payload": payload_json(m.payload, alarm_id),
            "status": OutboxStatus.PENDING.value, "attempts": 0, "next_attempt_at": at,
            "updated_at": at,
        }
        for m in messages
    ]


def payload_json(payload: Mapping[str, Any], alarm_id: int | None) -> str:
    """A message's stored payload: JSON with sorted keys, the alarm id added when known."""
    return json_text({**payload, "alarm_id": alarm_id} if alarm_id is not None else payload)


def insert_messages(
    connection: Connection,
    messages: Iterable[OutboxMessage],
    *,
    at: datetime,
    alarm_id: int | None = None,
    alarm_key: str | None = None,
) -> int:
    """Enqueue ``messages`` inside the caller's transaction (due at once); returns how many."""
    rows = message_rows(messages, at=at, alarm_id=alarm_id, alarm_key=alarm_key)
    if rows:
        connection.execute(notification_outbox.insert(), rows)
    return len(rows)


class OutboxStore:
    """The outbox's queries. Thread-safe (each call its own connection)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def enqueue(
        self, messages: Sequence[OutboxMessage], *, at: datetime, alarm_id: int | None = None,
        alarm_key: str | None = None,
    ) -> int:
        """Enqueue messages in their own transaction."""
        with self._engine.begin() as connection:
            return insert_messages(
                connection, messages, at=at, alarm_id=alarm_id, alarm_key=alarm_key
            )

    def claim_due(
        self, now: datetime, *, lease: timedelta, limit: int = 50,
        channels: Iterable[str] | None = None,
    ) -> list[OutboxRow]:
        """Pending messages due at ``now``, oldest first, each claimed for ``lease`` (their next
        attempt moved to ``now + lease``, so a crash mid-delivery retries them later)."""
        query = (
            select(notification_outbox)
            .where(notification_outbox.c.status == OutboxStatus.PENDING.value,
                   notification_outbox.c.next_attempt_at <= now)
            .order_by(notification_outbox.c.next_attempt_at, notification_outbox.c.id)
            .limit(limit)
        )
        if channels is not None:
            query = query.where(notification_outbox.c.channel.in_(list(channels)))
        claimed: list[OutboxRow] = []
        with self._engine.begin() as connection:
            rows = connection.execute(query).mappings().all()
            for row in rows:
                result = connection.execute(
                    notification_outbox.update()
                    .where(notification_outbox.c.id == row["id"],
                           notification_outbox.c.status == OutboxStatus.PENDING.value,
                           notification_outbox.c.next_attempt_at == row["next_attempt_at"])
                    .values(next_attempt_at=now + lease)
                )
                if result.rowcount == 1:
                    claimed.append(_outbox_row(row))
        return claimed

    def mark_delivered(self, message_id: int, *, at: datetime) -> None:
        """The message reached its recipient."""
        self._update(message_id, status=OutboxStatus.DELIVERED.value, delivered_at=at,
                     updated_at=at, attempts=notification_outbox.c.attempts + 1,
                     last_error=None)

    def mark_retry(self, message_id: int, *, at: datetime, error: str, next_at: datetime) -> None:
        """An attempt failed; try again at ``next_at``."""
        self._update(message_id, next_attempt_at=next_at, updated_at=at,
                     attempts=notification_outbox.c.attempts + 1,
                     last_error=error[:MAX_ERROR_CHARS])

    def mark_failed(self, message_id: int, *, at: datetime, error: str) -> None:
        """Given up on the message (attempts exhausted, or a permanent error)."""
        self._update(message_id, status=OutboxStatus.FAILED.value, updated_at=at,
                     attempts=notification_outbox.c.attempts + 1,
                     last_error=error[:MAX_ERROR_CHARS])

    def get(self, message_id: int) -> OutboxRow | None:
        """One message by id."""
        with self._engine.connect() as connection:
            row = connection.execute(
                select(notification_outbox).where(notification_outbox.c.id == message_id)
            ).mappings().first()
        return None if row is None else _outbox_row(row)

    def for_alarm(self, alarm_id: int) -> list[OutboxRow]:
        """An alarm's messages and their delivery state, oldest first."""
        return self.list(alarm_id=alarm_id, limit=10_000, oldest_first=True)

    def list(
        self, *, status: OutboxStatus | None = None, channel: str | None = None,
        alarm_id: int | None = None, limit: int = 1000, oldest_first: bool = False,
    ) -> list[OutboxRow]:
        """Messages, newest first unless ``oldest_first``."""
        order = (notification_outbox.c.id if oldest_first
                 else notification_outbox.c.id.desc())
        query = select(notification_outbox).order_by(order).limit(limit)
        if status is not None:
            query = query.where(notification_outbox.c.status == status.value)
        if channel is not None:
            query = query.where(notification_outbox.c.channel == channel)
        if alarm_id is not None:
            query = query.where(notification_outbox.c.alarm_ref == alarm_id)
        with self._engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [_outbox_row(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """How many messages are pending, delivered and failed."""
        query = select(notification_outbox.c.status, func.count()).group_by(
            notification_outbox.c.status
        )
        with self._engine.connect() as connection:
            found = {status: int(n) for status, n in connection.execute(query).all()}
        return {s.value: found.get(s.value, 0) for s in OutboxStatus}

    # -- contacts ------------------------------------------------------------------------

    def add_contact(
        self, scope: ContactScope, scope_id: str, role: str, channel: str, address: str, *,
        actor: str, at: datetime,
    ) -> ContactRow:
        """Register who ``role`` is reached at by ``channel``; audited."""
        values = {"scope": scope.value, "scope_id": scope_id, "role": role,
                  "channel": channel, "address": address}
        try:
            with self._engine.begin() as connection:
                row_id = int(connection.execute(notification_contacts.insert().values(
                    **values, created_at=at, created_by=actor,
                )).inserted_primary_key[0])
                write_audit(connection, at, actor, "contact.add", f"{scope.value}:{scope_id}",
                            values)
        except IntegrityError:
            raise ContactExists(
                f"{role} is already reached at {address} by {channel} for {scope.value} "
                f"{scope_id or '(every ward)'}"
            ) from None
        return ContactRow(row_id, scope, scope_id, role, channel, address)

    def remove_contact(self, contact_id: int, *, actor: str, at: datetime) -> bool:
        """Remove a contact by id; audited. False if there was none."""
        with self._engine.begin() as connection:
            row = connection.execute(
                select(notification_contacts).where(notification_contacts.c.id == contact_id)
            ).mappings().first()
            if row is None:
                return False
            connection.execute(
                notification_contacts.delete().where(notification_contacts.c.id == contact_id)
            )
            write_audit(
                connection, at, actor, "contact.remove", f"{row['scope']}:{row['scope_id']}",
                {"role": row["role"], "channel": row["channel"], "address": row["address"]},
            )
        return True

    def contacts(self) -> list[ContactRow]:
        """Every contact."""
        query = select(notification_contacts).order_by(notification_contacts.c.id)
        with self._engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            ContactRow(row["id"], ContactScope(row["scope"]), row["scope_id"], row["role"],
                       row["channel"], row["address"])
            for row in rows
        ]

    def _update(self, message_id: int, **values: Any) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                notification_outbox.update()
                .where(notification_outbox.c.id == message_id).values(**values)
            )


def write_audit(
    connection: Connection, at: datetime, actor: str, action: str, subject: str,
    details: Mapping[str, Any],
) -> None:
    """One ``audit_log`` row (details as JSON) inside the caller's transaction."""
    connection.execute(audit_log.insert().values(
        at=at, actor=actor, action=action, subject=subject,
        details=json.dumps(dict(details), default=str, sort_keys=True),
    ))


def _outbox_row(row: Any) -> OutboxRow:
    return OutboxRow(
        id=row["id"], created_at=row["created_at"], alarm_id=row["alarm_ref"],
        alarm_key=row["alarm_key"], channel=row["channel"], recipient=row["recipient"],
        payload=json.loads(row["payload"]) if row["payload"] else {},
        status=OutboxStatus(row["status"]), attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"], last_error=row["last_error"],
        updated_at=row["updated_at"], delivered_at=row["delivered_at"],
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
