"""The audit trail as people read it: ``vitalstation audit`` and Settings > Audit log.

The entries come from :mod:`vitalstation.storage.audit_trail`; this module says how an entry
reads in a table (the subject with its alarm's bed and message, the details without what the
other columns already show), so the command line and the window read the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from vitalstation.storage.audit_trail import DEFAULT_LIMIT, AuditEntry, AuditQueries
from vitalstation.storage.store import Store

__all__ = ["DEFAULT_LIMIT", "AuditEntry", "alarm_trail", "audit_entries", "details_text",
           "subject_text"]


def audit_entries(
    store: Store, *, since: datetime | None = None, until: datetime | None = None,
    actor: str | None = None, limit: int = DEFAULT_LIMIT,
) -> list[AuditEntry]:
    """The audit log with people's alarm steps in ``[since, until)``, newest first, at most
    ``limit`` (the log also holds what the station recorded itself, e.g. the alarm settings
    in force at each start, and patients' own limits reverted at discharge)."""
    return AuditQueries(store.engine).entries(since=since, until=until, actor=actor, limit=limit)


def alarm_trail(store: Store, alarm_id: int) -> list[AuditEntry]:
    """Every step of one alarm, the station's own included, oldest first."""
    return AuditQueries(store.engine).alarm_trail(alarm_id)


def subject_text(entry: AuditEntry) -> str:
    """``P123``, ``bed 4``; an alarm's step as ``alarm 12, bed 4: HR 152 > 130``."""
    if entry.alarm_id is None:
        return entry.subject
    where = f", bed {entry.bed}" if entry.bed else ""
    return f"{entry.subject}{where}: {entry.message}" if entry.message else entry.subject + where


def details_text(entry: AuditEntry) -> str:
    """``key=value, ...``; what the other columns show (origin, the alarm's message) left
    out, a change ``[before, after]`` as ``before → after``; ``-`` when nothing is left."""
    details = {k: v for k, v in entry.details.items()
               if not (k == "origin" and v == entry.origin)
               and not (k == "message" and v == entry.message)}
    if set(details) == {"text"}:
        return str(details["text"])
    return ", ".join(f"{k}={_value_text(v)}" for k, v in details.items()) or "-"


def _value_text(value: Any) -> str:
    if isinstance(value, list) and len(value) == 2 and not any(
            isinstance(v, list | dict) for v in value):
        return f"{_value_text(value[0])} → {_value_text(value[1])}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
