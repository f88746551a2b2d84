"""Who did what, and when: the audit log and people's alarm actions read as one list.

Two tables hold the trail. ``audit_log`` has the register, settings, keys, limit overrides,
NEWS2 entries and contacts; ``alarm_events`` has every step of every alarm, most of them the
station's own (raised, asked, escalated, resolved, by ``system``) and some of them people's
(acknowledged, paused, answered, escalated by a nurse). ``vitalstation audit`` lists the first
with the people's part of the second, newest first; one alarm's whole trail, the station's
steps included, is :meth:`AuditQueries.alarm_trail`.

The people's alarm steps are found through a partial index (schema 0010) that the station's
own steps never enter, so the alarm commits the pipeline waits for write no more pages for it.
Read-only; each call opens its own connection.
"""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import Engine, select

from vitalstation.storage.registry import NotFound
from vitalstation.storage.schema import (
    ALARM_EVENT_BY_PERSON,
    alarm_events,
    alarms,
    audit_log,
    beds,
    patients,
)

DEFAULT_LIMIT = 200


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One thing someone (or the station) did: an ``audit_log`` row or an alarm's step.

    ``action`` is the audit log's (``patient.admit``, ``limits.override``) or ``alarm.`` and
    the step (``alarm.acknowledged``); ``details`` is a mapping when stored as JSON, else the
    stored text (register and key rows written before they were JSON) under ``"text"``.
    """

    at: datetime
    actor: str
    action: str
    subject: str
    origin: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    alarm_id: int | None = None
    bed: str | None = None
    patient_id: str | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """For ``--json``: every field, times as ISO-8601."""
        return {
            "at": self.at.isoformat(), "actor": self.actor, "action": self.action,
            "subject": self.subject, "origin": self.origin, "details": self.details,
            "alarm_id": self.alarm_id, "bed": self.bed, "patient_id": self.patient_id,
            "message": self.message,
        }


class AuditQueries:
    """Reads of the audit trail."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[AuditEntry]:
        """The audit log and people's alarm actions in ``[since, until)``, newest first, at
        most ``limit``; only ``actor``'s when given (exactly as recorded, e.g. ``cli:root``)."""
        if limit <= 0:
            return []
        logged = _bounded(
            select(audit_log.c.id, audit_log.c.at, audit_log.c.actor, audit_log.c.action,
                   audit_log.c.subject, audit_log.c.details),
            audit_log.c, since=since, until=until, actor=actor, limit=limit,
        )
        steps = _bounded(
            _alarm_steps_select().where(ALARM_EVENT_BY_PERSON),
            alarm_events.c, since=since, until=until, actor=actor, limit=limit,
        )
        with self._engine.connect() as connection:
            logged_rows = connection.execute(logged).all()
            step_rows = connection.execute(steps).all()
        # Ties in time: the audit-log row first (deterministic; the two tables share no ids).
        merged = heapq.merge(
            (_logged_entry(row) for row in logged_rows),
            (_step_entry(row) for row in step_rows),
            key=lambda entry: entry.at, reverse=True,
        )
        return list(islice(merged, limit))

    def alarm_trail(self, alarm_id: int) -> list[AuditEntry]:
        """Every step of one alarm, the station's own included, oldest first."""
        with self._engine.connect() as connection:
            known = connection.execute(
                select(alarms.c.id).where(alarms.c.id == alarm_id)
            ).scalar_one_or_none()
            if known is None:
                raise NotFound(f"no alarm {alarm_id} (see `vitalstation alarms`)")
            rows = connection.execute(
                _alarm_steps_select()
                .where(alarm_events.c.alarm_ref == alarm_id)
                .order_by(alarm_events.c.at, alarm_events.c.id)
            ).all()
        return [_step_entry(row) for row in rows]


def _bounded(
    query: Any, columns: Any, *, since: datetime | None, until: datetime | None,
    actor: str | None, limit: int,
) -> Any:
    """``query`` on a table with ``at``, ``actor`` and ``id``: in the range, by the actor,
    the latest ``limit`` (ties by id, so that rows of one moment keep their order)."""
    if since is not None:
        query = query.where(columns.at >= since)
    if until is not None:
        query = query.where(columns.at < until)
    if actor is not None:
        query = query.where(columns.actor == actor)
    return query.order_by(columns.at.desc(), columns.id.desc()).limit(limit)


def _alarm_steps_select() -> Any:
    return (
        select(
            alarm_events.c.id, alarm_events.c.at, alarm_events.c.actor, alarm_events.c.event,
            alarm_events.c.alarm_ref, alarm_events.c.details, alarm_events.c.origin,
            alarms.c.message, beds.c.label, patients.c.patient_id,
        )
        .join(alarms, alarms.c.id == alarm_events.c.alarm_ref)
        .outerjoin(beds, beds.c.id == alarms.c.bed_ref)
        .outerjoin(patients, patients.c.id == alarms.c.patient_ref)
    )


def _logged_entry(row: Any) -> AuditEntry:
    details = _details(row[5])
    origin = details.get("origin", "")
    return AuditEntry(
        at=row[1], actor=row[2], action=row[3], subject=row[4],
        origin=origin if isinstance(origin, str) else str(origin), details=details,
    )


def _step_entry(row: Any) -> AuditEntry:
    return AuditEntry(
        at=row[1], actor=row[2], action=f"alarm.{row[3]}", subject=f"alarm {row[4]}",
        origin=row[6] or "", details=_details(row[5]), alarm_id=row[4], bed=row[8],
        patient_id=row[9], message=row[7] or "",
    )


def _details(text: str | None) -> dict[str, Any]:
    """Stored details: JSON objects as they are; other text (register and key rows written
    before they were JSON: ``name=…``, ``device=… new=…``) kept whole under ``"text"``."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"text": text}
    return value if isinstance(value, dict) else {"text": text}

