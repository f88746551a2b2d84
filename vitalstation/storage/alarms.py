"""Alarms in the database: every transition the engine hands out, and the alarm list.

Each :class:`~vitalstation.alarms.AlarmTransition` becomes one ``alarm_events`` row (event, who,
when, from where, details as JSON) and an insert (RAISED) or update (everything later) of its
``alarms`` row. The row also keeps the engine's condition key and the alarm's full state as
JSON, so that a restarted station resumes its open alarms and escalation chains
(:meth:`AlarmStore.load_snapshot`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from vitalstation.alarms import (
    Alarm,
    AlarmState,
    AlarmTransition,
    ChainState,
    EngineSnapshot,
    TransitionKind,
)
from vitalstation.storage.schema import alarm_events, alarms, beds, patients

DEFAULT_LIST_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class AlarmRow:
    """One stored alarm, as ``vitalstation alarms`` lists it."""

    id: int
    key: str | None
    kind: str
    condition: str
    vital: str | None
    priority: str
    state: str
    device_id: str | None
    patient_id: str | None
    bed: str | None
    value: float | None
    limit_value: float | None
    message: str
    raised_at: datetime
    updated_at: datetime
    resolved_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (times ISO 8601)."""
        return {
            "id": self.id, "key": self.key, "kind": self.kind, "condition": self.condition,
            "vital": self.vital, "priority": self.priority, "state": self.state,
            "device_id": self.device_id, "patient_id": self.patient_id, "bed": self.bed,
            "value": self.value, "limit_value": self.limit_value, "message": self.message,
            "raised_at": _iso(self.raised_at), "updated_at": _iso(self.updated_at),
            "resolved_at": _iso(self.resolved_at),
        }


@dataclass(frozen=True, slots=True)
class AlarmEventRow:
    """One stored transition of an alarm."""

    id: int
    alarm_id: int
    at: datetime
    event: str
    actor: str
    origin: str
    details: dict[str, Any]


class AlarmStore:
    """Writes transitions and reads alarms. Thread-safe (each call its own connection)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- writing ---------------------------------------------------------------------------

    def write(
        self, transitions: Sequence[AlarmTransition], known_ids: Mapping[str, int]
    ) -> dict[str, int]:
        """Store ``transitions`` in order, in one transaction.

        ``known_ids`` maps the keys of alarms already stored to their row ids (transitions
        made before the engine learnt the id carry none). Returns the ids of the rows this call
        inserted, by key (the last one per key): hand them to ``AlarmEngine.assign_id``.
        Raises on a database failure; then nothing was stored.
        """
        ids = dict(known_ids)
        inserted: dict[str, int] = {}
        with self._engine.begin() as connection:
            for transition in transitions:
                alarm = transition.alarm
                alarm_id = None if transition.kind is TransitionKind.RAISED else (
                    alarm.alarm_id if alarm.alarm_id is not None else ids.get(alarm.key)
                )
                values = _row_values(transition)
                if alarm_id is None:
                    values["bed_ref"] = _ref(beds.c.id, beds.c.label, alarm.bed_label)
                    values["patient_ref"] = _ref(
                        patients.c.id, patients.c.patient_id, alarm.patient_id
                    )
                    alarm_id = int(connection.execute(
                        alarms.insert().values(**values)
                    ).inserted_primary_key[0])
                    inserted[alarm.key] = alarm_id
                    ids[alarm.key] = alarm_id
                else:
                    if transition.escalation is None:
                        values.pop("escalation")
                    connection.execute(
                        alarms.update().where(alarms.c.id == alarm_id).values(**values)
                    )
                connection.execute(alarm_events.insert().values(
                    alarm_ref=alarm_id,
                    at=transition.at,
                    event=transition.kind.value,
                    actor=transition.actor,
                    origin=transition.origin,
                    details=json.dumps(dict(transition.details), default=str, sort_keys=True),
                ))
        return inserted

    # -- reading ---------------------------------------------------------------------------

    def list_alarms(
        self,
        *,
        active_only: bool = False,
        bed_label: str | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
    ) -> list[AlarmRow]:
        """Alarms, newest first; ``active_only``: those not resolved."""
        query = (
            select(alarms, beds.c.label.label("bed"), patients.c.patient_id.label("patient_id"))
            .select_from(
                alarms.outerjoin(beds, alarms.c.bed_ref == beds.c.id)
                .outerjoin(patients, alarms.c.patient_ref == patients.c.id)
            )
            .order_by(alarms.c.raised_at.desc(), alarms.c.id.desc())
            .limit(limit)
        )
        if active_only:
            query = query.where(alarms.c.state != AlarmState.RESOLVED.value)
        if bed_label is not None:
            query = query.where(beds.c.label == bed_label)
        with self._engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [_alarm_row(row) for row in rows]

    def get(self, alarm_id: int) -> AlarmRow | None:
        """One alarm by id, or None."""
        query = (
            select(alarms, beds.c.label.label("bed"), patients.c.patient_id.label("patient_id"))
            .select_from(
                alarms.outerjoin(beds, alarms.c.bed_ref == beds.c.id)
                .outerjoin(patients, alarms.c.patient_ref == patients.c.id)
            )
            .where(alarms.c.id == alarm_id)
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        return None if row is None else _alarm_row(row)

    def events(self, alarm_id: int) -> list[AlarmEventRow]:
        """An alarm's transitions, oldest first."""
        query = (
            select(alarm_events)
            .where(alarm_events.c.alarm_ref == alarm_id)
            .order_by(alarm_events.c.at, alarm_events.c.id)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            AlarmEventRow(
                id=row["id"], alarm_id=row["alarm_ref"], at=row["at"], event=row["event"],
                actor=row["actor"], origin=row["origin"],
                details=json.loads(row["details"]) if row["details"] else {},
            )
            for row in rows
        ]

    def load_snapshot(self) -> EngineSnapshot:
        """The open alarms and their escalation chains, for ``AlarmEngine.restore``."""
        query = (
            select(alarms.c.id, alarms.c.snapshot, alarms.c.escalation)
            .where(alarms.c.state != AlarmState.RESOLVED.value)
            .where(alarms.c.snapshot.is_not(None))
            .order_by(alarms.c.id)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        found: dict[str, Alarm] = {}
        chains: dict[str, ChainState] = {}
        for row in rows:
            data = json.loads(row.snapshot)
            data["alarm_id"] = row.id
            alarm = Alarm.from_dict(data)
            found[alarm.key] = alarm  # the newest row wins if a key was ever left open twice
            if row.escalation:
                chains[alarm.key] = ChainState.from_dict(json.loads(row.escalation))
        return EngineSnapshot(alarms=tuple(found.values()), chains=tuple(chains.values()))


def _row_values(transition: AlarmTransition) -> dict[str, Any]:
    alarm = transition.alarm
    return {
        "alarm_key": alarm.key,
        "kind": alarm.kind.value,
        "condition": alarm.condition[:64],
        "vital": None if alarm.vital is None else alarm.vital.value,
        "priority": alarm.priority.value,
        "state": alarm.state.value,
        "device_id": alarm.device_id,
        "value": alarm.value,
        "limit_value": alarm.limit_value,
        "message": alarm.message,
        "raised_at": alarm.raised_at,
        "updated_at": max(alarm.updated_at, transition.at),
        "resolved_at": alarm.resolved_at,
        "snapshot": json.dumps(alarm.to_dict(), sort_keys=True),
        "escalation": None if transition.escalation is None
        else json.dumps(transition.escalation.to_dict(), sort_keys=True),
    }


def _ref(id_column: Any, name_column: Any, name: str | None) -> Any:
    if name is None:
        return None
    return select(id_column).where(name_column == name).limit(1).scalar_subquery()


def _alarm_row(row: Any) -> AlarmRow:
    return AlarmRow(
        id=row["id"], key=row["alarm_key"], kind=row["kind"], condition=row["condition"],
        vital=row["vital"], priority=row["priority"], state=row["state"],
        device_id=row["device_id"], patient_id=row["patient_id"], bed=row["bed"],
        value=row["value"], limit_value=row["limit_value"], message=row["message"],
        raised_at=row["raised_at"], updated_at=row["updated_at"],
        resolved_at=row["resolved_at"],
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
