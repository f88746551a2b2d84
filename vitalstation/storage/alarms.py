"""Alarms in the database: every transition the engine hands out, the alarm list, and the
per-patient limit overrides.

Each :class:`~vitalstation.alarms.AlarmTransition` becomes one ``alarm_events`` row (event, who,
when, from where, details as JSON) and an insert (RAISED) or update (everything later) of its
``alarms`` row. The row also keeps the engine's condition key, the rest of the alarm's state
as JSON (``snapshot``: what the row's columns do not hold, schema 0009) and its escalation
chain as JSON, so that a restarted station resumes its open alarms and escalation chains
(:meth:`AlarmStore.load_snapshot`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select

from vitalstation.alarms import (
    Alarm,
    AlarmTransition,
    ChainState,
    EngineSnapshot,
    LimitOverride,
    TransitionKind,
    VitalLimits,
)
from vitalstation.domain.errors import UserError
from vitalstation.domain.vitals import VitalKind
from vitalstation.storage.directory import current_version
from vitalstation.storage.engine import write_connection
from vitalstation.storage.json_text import json_text, record_text_writer
from vitalstation.storage.outbox import (
    OutboxMessage,
    OutboxStatus,
    message_rows,
    payload_json,
    write_audit,
)
from vitalstation.storage.schema import (
    ALARM_OPEN,
    admissions,
    alarm_events,
    alarm_requests,
    alarms,
    audit_log,
    beds,
    limit_overrides,
    notification_outbox,
    patients,
    sqlite_time_text,
)

DEFAULT_LIST_LIMIT = 1000
# The audit action of a clinician's NEWS2 entry (``AlarmService.enter_observation``).
NEWS2_ENTRY_ACTION = "news2.entry"


@dataclass(frozen=True, slots=True)
class News2Entry:
    """One stored NEWS2 entry: what the clinician entered (None: not this field) and when."""

    patient_id: str
    at: datetime
    consciousness: str | None
    on_oxygen: bool | None
    spo2_scale: int | None


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


@dataclass(frozen=True, slots=True)
class OverrideRow:
    """One stored limit override (in force while ``removed_at`` is None)."""

    id: int
    override: LimitOverride
    origin: str
    removed_at: datetime | None = None
    removed_by: str | None = None
    removed_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id, "patient_id": self.override.patient_id,
            "vital": self.override.kind.value, "limits": self.override.limits.to_dict(),
            "author": self.override.author, "reason": self.override.reason,
            "at": _iso(self.override.at), "origin": self.origin,
            "removed_at": _iso(self.removed_at), "removed_by": self.removed_by,
            "removed_reason": self.removed_reason,
        }


class NotAdmitted(UserError):
    """A limit override was asked for a patient who is in no bed (overrides last a stay)."""


class AlarmStore:
    """Writes transitions and reads alarms. Thread-safe (reads on a connection of their own;
    on SQLite, writes of transitions through the store's shared write connection)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # SQLite: alarm batches go through the connection the readings' writer commits on,
        # right after it on the same thread (its page cache stays warm).
        self._write = write_connection(engine) if engine.dialect.name == "sqlite" else None

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (shared with the outbox)."""
        return self._engine

    # -- writing ---------------------------------------------------------------------------

    def write(
        self,
        transitions: Sequence[AlarmTransition],
        known_ids: Mapping[str, int],
        messages: Sequence[Sequence[OutboxMessage]] = (),
    ) -> dict[str, int]:
        """Store ``transitions`` in order, in one transaction, with their outbox messages
        (``messages[i]`` belongs to ``transitions[i]``; the alarm id is added to each).

        ``known_ids`` maps the keys of alarms already stored to their row ids (transitions
        made before the engine learnt the id carry none). Returns the ids of the rows this call
        inserted, by key (the last one per key): hand them to ``AlarmEngine.assign_id``.
        Raises on a database failure; then nothing was stored.

        Each alarm row is written once per call, with its final state: an alarm raised here is
        inserted as it stands after the call's last transition of it (all new rows in one
        statement), an alarm stored before is updated once. The events and outbox rows follow,
        one statement each: a batch costs a handful of statements, not several per alarm.
        """
        ids: dict[str, int | _RowWrite] = dict(known_ids)
        new_rows: list[_RowWrite] = []
        updates: dict[int, _RowWrite] = {}  # existing row id -> its last transition and chain
        targets: list[int | _RowWrite] = []  # the row of each transition
        for transition in transitions:
            alarm = transition.alarm
            target: int | _RowWrite | None = None
            if transition.kind is not TransitionKind.RAISED:
                target = alarm.alarm_id if alarm.alarm_id is not None else ids.get(alarm.key)
            if target is None:
                target = _RowWrite(transition)
                new_rows.append(target)
                ids[alarm.key] = target
            elif isinstance(target, int):
                row = updates.get(target)
                if row is None:
                    updates[target] = _RowWrite(transition)
                else:
                    row.follow(transition)
            else:
                target.follow(transition)
            targets.append(target)
        if self._write is not None:  # SQLite: the store's write connection (see there)
            with self._write.transaction() as connection:
                _write_sqlite(connection, transitions, messages, new_rows, updates, targets)
        else:
            with self._engine.begin() as connection:
                self._write_rows(connection, transitions, messages, new_rows, updates, targets)
        return {row.first.alarm.key: row.alarm_id for row in new_rows}

    def refresh(self, current: Sequence[Alarm]) -> None:
        """Bring the rows of stored open alarms up to ``current`` (each with its
        ``alarm_id``), in one transaction, with no event: what changed without a transition.

        An open alarm's readings that are no worse than its worst count an update and move its
        value, message and times without an event (one alarm, not a flood of updates), so its
        row keeps the state of its last transition until something is written; the service
        writes them here every few seconds (``AlarmService.refresh_rows``), so that a restart
        or ``vitalstation alarms`` is at most that far behind. Raises on a database failure;
        then nothing was stored.
        """
        if not current:
            return
        if any(alarm.alarm_id is None for alarm in current):
            raise ValueError("refresh takes stored alarms (each with its alarm_id)")
        if self._write is not None:  # SQLite: the store's write connection (see write)
            times = _TimeTexts()
            rows = [(*_sqlite_changes(alarm, alarm.updated_at, times), alarm.alarm_id)
                    for alarm in current]
            with self._write.transaction() as connection:
                cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                try:
                    cursor.executemany(_SQLITE_UPDATE_ALARM[0], rows)
                finally:
                    cursor.close()
            return
        values = []
        for alarm in current:
            item = _changed_values(alarm, alarm.updated_at, None)
            item["b_alarm_id"] = alarm.alarm_id
            values.append(item)
        with self._engine.begin() as connection:
            connection.execute(_UPDATE_ALARM, values)

    def _write_rows(
        self,
        connection: Connection,
        transitions: Sequence[AlarmTransition],
        messages: Sequence[Sequence[OutboxMessage]],
        new_rows: list[_RowWrite],
        updates: dict[int, _RowWrite],
        targets: list[int | _RowWrite],
    ) -> None:
        """:meth:`write`'s statements through SQLAlchemy (PostgreSQL)."""
        if new_rows:
            self._insert(connection, new_rows)
        by_columns: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
        for alarm_id, row in updates.items():
            values = _changed_values(row.last.alarm, row.last.at, row.chain)
            values["b_alarm_id"] = alarm_id
            by_columns[row.chain is None].append(values)
        for rows in by_columns:  # one executemany per column set
            if rows:
                connection.execute(_UPDATE_ALARM, rows)
        events: list[dict[str, Any]] = []
        outbox: list[dict[str, Any]] = []
        for index, transition in enumerate(transitions):
            target = targets[index]
            alarm_id = target if isinstance(target, int) else target.alarm_id
            events.append({
                "alarm_ref": alarm_id, "at": transition.at, "event": transition.kind.value,
                "actor": transition.actor, "origin": transition.origin,
                "details": json_text(dict(transition.details)),
            })
            if index < len(messages) and messages[index]:
                outbox += message_rows(messages[index], at=transition.at,
                                       alarm_id=alarm_id, alarm_key=transition.alarm.key)
        if events:
            connection.execute(_INSERT_EVENTS, events)
        if outbox:
            connection.execute(_INSERT_OUTBOX, outbox)

    @staticmethod
    def _insert(connection: Connection, rows: list[_RowWrite]) -> None:
        """Insert the new alarm rows and learn their ids (one statement where the database
        returns the ids of a multi-row insert in order, else one statement per row)."""
        values = []
        for row in rows:
            item = _row_values(row.last, row.chain)
            first = row.first.alarm
            item["p_bed"], item["p_patient"] = first.bed_label, first.patient_id
            values.append(item)
        in_order = connection.dialect.insert_executemany_returning_sort_by_parameter_order
        if len(rows) > 1 and in_order:
            found = connection.execute(_INSERT_ALARM_RETURNING, values).scalars().all()
            if len(found) != len(rows):
                raise RuntimeError(f"inserted {len(rows)} alarms, got {len(found)} ids back")
            for row, alarm_id in zip(rows, found, strict=True):
                row.alarm_id = int(alarm_id)
            return
        for row, item in zip(rows, values, strict=True):
            row.alarm_id = int(connection.execute(_INSERT_ALARM, item).inserted_primary_key[0])

    def audit(self, at: datetime, actor: str, action: str, subject: str,
              details: Mapping[str, Any]) -> None:
        """One audit-log row in its own transaction (e.g. a NEWS2 entry)."""
        with self._engine.begin() as connection:
            write_audit(connection, at, actor, action, subject, details)

    # -- limit overrides -------------------------------------------------------------------

    def save_override(self, override: LimitOverride, *, origin: str) -> OverrideRow:
        """Store ``override`` for the patient's current stay (replacing the one in force for
        that vital) and audit it, in one transaction. ``NotAdmitted`` if not in a bed."""
        with self._engine.begin() as connection:
            admission = connection.execute(
                select(admissions.c.id)
                .join(patients, patients.c.id == admissions.c.patient_ref)
                .where(patients.c.patient_id == override.patient_id,
                       admissions.c.discharged_at.is_(None))
            ).scalar_one_or_none()
            if admission is None:
                raise NotAdmitted(
                    f"patient {override.patient_id} is not admitted to a bed: limits are "
                    "overridden for a stay"
                )
            self._end_overrides(
                connection, override.patient_id, override.kind, at=override.at,
                actor=override.author, reason="replaced",
            )
            limits = json.dumps(override.limits.to_dict(), sort_keys=True)
            row_id = int(connection.execute(limit_overrides.insert().values(
                patient_id=override.patient_id, admission_ref=admission,
                vital=override.kind.value, limits=limits, author=override.author,
                reason=override.reason, origin=origin, set_at=override.at,
            )).inserted_primary_key[0])
            write_audit(connection, override.at, override.author, "limits.override",
                   f"{override.patient_id}/{override.kind.value}",
                   {"limits": override.limits.to_dict(), "reason": override.reason,
                    "origin": origin, "override_id": row_id})
        return OverrideRow(row_id, override, origin)

    def remove_override(
        self, patient_id: str, kind: VitalKind, *, actor: str, origin: str, reason: str,
        at: datetime,
    ) -> bool:
        """End the override in force for one patient's vital, audited; False if none."""
        with self._engine.begin() as connection:
            ended = self._end_overrides(
                connection, patient_id, kind, at=at, actor=actor, reason=reason
            )
            if ended:
                write_audit(connection, at, actor, "limits.revert", f"{patient_id}/{kind.value}",
                       {"reason": reason, "origin": origin})
        return bool(ended)

    def overrides_in_force(self) -> list[LimitOverride]:
        """The overrides of patients still in the bed they were set for (restart)."""
        query = (
            select(limit_overrides)
            .join(admissions, admissions.c.id == limit_overrides.c.admission_ref)
            .where(limit_overrides.c.removed_at.is_(None), admissions.c.discharged_at.is_(None))
            .order_by(limit_overrides.c.id)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [_override_row(row).override for row in rows]

    def override_history(self, patient_id: str) -> list[OverrideRow]:
        """Every override set for a patient, oldest first (the audit view)."""
        query = (
            select(limit_overrides).where(limit_overrides.c.patient_id == patient_id)
            .order_by(limit_overrides.c.id)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [_override_row(row) for row in rows]

    def revert_discharged(self, at: datetime) -> list[LimitOverride]:
        """End, audited, the overrides whose stay has ended (a discharge by the CLI or
        another station); returns them, so the engine can drop them too."""
        query = (
            select(limit_overrides)
            .join(admissions, admissions.c.id == limit_overrides.c.admission_ref)
            .where(limit_overrides.c.removed_at.is_(None),
                   admissions.c.discharged_at.is_not(None))
        )
        with self._engine.begin() as connection:
            rows = connection.execute(query).mappings().all()
            for row in rows:
                connection.execute(
                    limit_overrides.update().where(limit_overrides.c.id == row["id"]).values(
                        removed_at=at, removed_by="system", removed_reason="patient discharged"
                    )
                )
                write_audit(connection, at, "system", "limits.revert",
                       f"{row['patient_id']}/{row['vital']}",
                       {"reason": "patient discharged", "override_id": row["id"]})
        return [_override_row(row).override for row in rows]

    def discharged_among(self, patient_ids: Sequence[str]) -> set[str]:
        """Those of ``patient_ids`` who were admitted once and are in no bed now."""
        if not patient_ids:
            return set()
        query = (
            select(patients.c.patient_id, admissions.c.discharged_at)
            .join(admissions, admissions.c.patient_ref == patients.c.id)
            .where(patients.c.patient_id.in_(list(patient_ids)))
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        admitted = {row.patient_id for row in rows if row.discharged_at is None}
        return {row.patient_id for row in rows} - admitted

    def directory_version(self) -> int:
        """The register's version (bumped by every admission, discharge, assignment)."""
        with self._engine.connect() as connection:
            return current_version(connection)

    @staticmethod
    def _end_overrides(
        connection: Connection, patient_id: str, kind: VitalKind, *, at: datetime, actor: str,
        reason: str,
    ) -> int:
        return int(connection.execute(
            limit_overrides.update()
            .where(limit_overrides.c.patient_id == patient_id,
                   limit_overrides.c.vital == kind.value,
                   limit_overrides.c.removed_at.is_(None))
            .values(removed_at=at, removed_by=actor, removed_reason=reason)
        ).rowcount)

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
        if active_only:  # ix_alarms_open, newest first (ALARM_OPEN: the index's own term)
            query = query.where(ALARM_OPEN)
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

    def news2_entries_in_force(self) -> list[News2Entry]:
        """The NEWS2 entries (ACVPU, air or oxygen, SpO2 scale) made for each patient during
        the stay they are in now, oldest first: the engine keeps them only in memory, and a
        restart must not fall back to "assumed alert, on air" for a patient on oxygen."""
        query = (
            select(audit_log.c.at, audit_log.c.subject, audit_log.c.details)
            .join(patients, patients.c.patient_id == audit_log.c.subject)
            .join(admissions, admissions.c.patient_ref == patients.c.id)
            .where(audit_log.c.action == NEWS2_ENTRY_ACTION)
            .where(admissions.c.discharged_at.is_(None))
            .where(audit_log.c.at >= admissions.c.admitted_at)
            .order_by(audit_log.c.at, audit_log.c.id)
        )
        entries: list[News2Entry] = []
        with self._engine.connect() as connection:
            for row in connection.execute(query):
                try:
                    details = json.loads(row.details or "{}")
                except ValueError:
                    continue  # not written by this station: nothing to take up
                entries.append(News2Entry(
                    patient_id=row.subject,
                    at=row.at,
                    consciousness=details.get("consciousness"),
                    on_oxygen=details.get("on_oxygen"),
                    spo2_scale=details.get("spo2_scale"),
                ))
        return entries

    def load_snapshot(self) -> EngineSnapshot:
        """The open alarms and their escalation chains, for ``AlarmEngine.restore``.

        From ``ix_alarms_open`` (``ALARM_OPEN``: the index's own term), sorted by id here: an
        ``ORDER BY id`` would have SQLite walk the whole table in id order instead.
        """
        query = (
            select(alarms.c.id, alarms.c.snapshot, alarms.c.escalation,
                   *(alarms.c[column] for column in _COLUMN_OF_FIELD.values()))
            .where(ALARM_OPEN)
            .where(alarms.c.snapshot.is_not(None))
        )
        with self._engine.connect() as connection:
            rows = sorted(connection.execute(query).all(), key=lambda row: row.id)
        found: dict[str, Alarm] = {}
        chains: dict[str, ChainState] = {}
        for row in rows:
            alarm = Alarm.from_dict(alarm_data(row._mapping))
            found[alarm.key] = alarm  # the newest row wins if a key was ever left open twice
            if row.escalation:
                chains[alarm.key] = ChainState.from_dict(json.loads(row.escalation))
        return EngineSnapshot(alarms=tuple(found.values()), chains=tuple(chains.values()))


def alarm_data(row: Mapping[str, Any]) -> dict[str, Any]:
    """An ``alarms`` row (its ``id``, ``snapshot`` and the columns of ``_COLUMN_OF_FIELD``) as
    the dict :meth:`Alarm.from_dict` reads: the columns, then the snapshot's fields over them
    (a snapshot written before schema 0009 holds every field, the same values as the columns).
    """
    data = {field: row[column] for field, column in _COLUMN_OF_FIELD.items()}
    data.update(json.loads(row["snapshot"]))
    data["alarm_id"] = row["id"]
    return data


class RequestStatus:
    """Where an alarm request stands (the ``alarm_requests.status`` column)."""

    PENDING = "pending"  # waiting for the running station's tick
    CLAIMED = "claimed"  # the station is applying it
    DONE = "done"  # applied: ``result`` holds the transitions
    FAILED = "failed"  # refused: ``result`` holds the error
    WITHDRAWN = "withdrawn"  # no station took it in time; the CLI applied it itself


@dataclass(frozen=True, slots=True)
class AlarmRequestRow:
    """One request from another process (the CLI) to the running station's engine."""

    id: int
    action: str
    payload: dict[str, Any]
    status: str
    result: dict[str, Any] | None


class AlarmRequestStore:
    """The ``alarm_requests`` queue: the CLI submits, the station's tick claims and answers.
    Claims are conditional updates, so each request is applied once even with several
    stations on one PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def submit(self, action: str, payload: Mapping[str, Any], *, at: datetime) -> int:
        """Queue a request; returns its id."""
        with self._engine.begin() as connection:
            return int(connection.execute(alarm_requests.insert().values(
                created_at=at, action=action, status=RequestStatus.PENDING,
                payload=json.dumps(dict(payload), default=str, sort_keys=True),
            )).inserted_primary_key[0])

    def claim(self, limit: int = 20) -> list[AlarmRequestRow]:
        """Pending requests, oldest first, now claimed by the caller."""
        query = (
            select(alarm_requests).where(alarm_requests.c.status == RequestStatus.PENDING)
            .order_by(alarm_requests.c.id).limit(limit)
        )
        claimed: list[AlarmRequestRow] = []
        with self._engine.begin() as connection:
            for row in connection.execute(query).mappings().all():
                if self._move(connection, row["id"], RequestStatus.PENDING,
                              RequestStatus.CLAIMED):
                    claimed.append(_request_row({**row, "status": RequestStatus.CLAIMED}))
        return claimed

    def finish(self, request_id: int, *, ok: bool, result: Mapping[str, Any], at: datetime
               ) -> None:
        """Record the outcome of a claimed request."""
        with self._engine.begin() as connection:
            connection.execute(
                alarm_requests.update().where(alarm_requests.c.id == request_id).values(
                    status=RequestStatus.DONE if ok else RequestStatus.FAILED,
                    result=json.dumps(dict(result), default=str, sort_keys=True), done_at=at,
                )
            )

    def withdraw(self, request_id: int, *, at: datetime) -> bool:
        """Take back a request nobody claimed; False if a station claimed it meanwhile."""
        with self._engine.begin() as connection:
            moved = self._move(connection, request_id, RequestStatus.PENDING,
                               RequestStatus.WITHDRAWN, done_at=at)
        return moved

    def get(self, request_id: int) -> AlarmRequestRow | None:
        """One request by id."""
        with self._engine.connect() as connection:
            row = connection.execute(
                select(alarm_requests).where(alarm_requests.c.id == request_id)
            ).mappings().first()
        return None if row is None else _request_row(row)

    @staticmethod
    def _move(connection: Connection, request_id: int, old: str, new: str, **values: Any
              ) -> bool:
        return connection.execute(
            alarm_requests.update()
            .where(alarm_requests.c.id == request_id, alarm_requests.c.status == old)
            .values(status=new, **values)
        ).rowcount == 1


def _request_row(row: Any) -> AlarmRequestRow:
    return AlarmRequestRow(
        id=row["id"], action=row["action"], payload=json.loads(row["payload"]),
        status=row["status"], result=json.loads(row["result"]) if row["result"] else None,
    )


# Built once (the compiled statements are cached): the bed and patient of a new alarm looked up
# by label and patient id in the insert itself.
_INSERT_ALARM = alarms.insert().values(
    bed_ref=select(beds.c.id).where(beds.c.label == bindparam("p_bed"))
    .limit(1).scalar_subquery(),
    patient_ref=select(patients.c.id).where(patients.c.patient_id == bindparam("p_patient"))
    .limit(1).scalar_subquery(),
)
_INSERT_ALARM_RETURNING = _INSERT_ALARM.returning(alarms.c.id, sort_by_parameter_order=True)
_INSERT_EVENTS = alarm_events.insert()
_INSERT_OUTBOX = notification_outbox.insert()
_UPDATE_ALARM = alarms.update().where(alarms.c.id == bindparam("b_alarm_id"))


class _RowWrite:
    """The transitions of one alarm row within one write: the first (an insert takes its bed
    and patient), the last (the row's final state) and the newest escalation chain."""

    __slots__ = ("alarm_id", "chain", "first", "last")

    def __init__(self, transition: AlarmTransition) -> None:
        self.first = self.last = transition
        self.chain: ChainState | None = transition.escalation
        self.alarm_id: int | None = None

    def follow(self, transition: AlarmTransition) -> None:
        self.last = transition
        if transition.escalation is not None:
            self.chain = transition.escalation


def _row_values(transition: AlarmTransition, chain: ChainState | None) -> dict[str, Any]:
    """The ``alarms`` row as ``transition`` leaves it, ``escalation`` being ``chain``."""
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
        "snapshot": _alarm_text(alarm),
        "escalation": None if chain is None else json_text(chain.to_dict()),
    }


def _changed_values(alarm: Alarm, at: datetime, chain: ChainState | None) -> dict[str, Any]:
    """What an update of the alarm row sets (``_UPDATED_COLUMNS``, as :func:`_row_values` has
    them) for ``alarm`` as a transition at ``at`` left it, with ``escalation`` only when there
    is a newer ``chain`` (else the stored one stays)."""
    values = {
        "priority": alarm.priority.value,
        "state": alarm.state.value,
        "value": alarm.value,
        "limit_value": alarm.limit_value,
        "message": alarm.message,
        "updated_at": max(alarm.updated_at, at),
        "resolved_at": alarm.resolved_at,
        "snapshot": _alarm_text(alarm),
    }
    if chain is not None:
        values["escalation"] = json_text(chain.to_dict())
    return values


_ROW_COLUMNS = (
    "alarm_key", "kind", "condition", "vital", "priority", "state", "device_id", "value",
    "limit_value", "message", "raised_at", "updated_at", "resolved_at", "snapshot",
)
_SQLITE_INSERT_ALARM = (
    f"INSERT INTO alarms ({', '.join(_ROW_COLUMNS)}, escalation, bed_ref, patient_ref) "
    f"VALUES ({', '.join('?' * len(_ROW_COLUMNS))}, ?, "
    "(SELECT id FROM beds WHERE label = ? LIMIT 1), "
    "(SELECT id FROM patients WHERE patient_id = ? LIMIT 1))"
)
_SQLITE_INSERT_ALARM_WITH_ID = (
    f"INSERT INTO alarms (id, {', '.join(_ROW_COLUMNS)}, escalation, bed_ref, patient_ref) "
    f"VALUES (?, {', '.join('?' * len(_ROW_COLUMNS))}, ?, "
    "(SELECT id FROM beds WHERE label = ? LIMIT 1), "
    "(SELECT id FROM patients WHERE patient_id = ? LIMIT 1))"
)
# What an alarm row's later transitions change (AlarmRecord sets the rest once, when the alarm
# is raised: its key, kind, condition, vital, device, time raised, bed and patient). An UPDATE
# that sets an indexed column, even to the value it has, rewrites that index's entry (SQLite
# decides by the SET list), so the fixed columns are left out: six bound values and two index
# rewrites fewer per alarm row updated (the alarm service's instructions per reading on the
# alarm-heavy mix 42,300 -> 41,666; the WAL pages per commit stay ~46, the leaves those entries
# are on being written anyway by the batch's new rows).
_UPDATED_COLUMNS = (
    "priority", "state", "value", "limit_value", "message", "updated_at", "resolved_at",
    "snapshot",
)
_SQLITE_UPDATE_ALARM = (
    f"UPDATE alarms SET {', '.join(f'{name} = ?' for name in _UPDATED_COLUMNS)} WHERE id = ?",
    f"UPDATE alarms SET {', '.join(f'{name} = ?' for name in _UPDATED_COLUMNS)}, "
    "escalation = ? WHERE id = ?",
)
_SQLITE_INSERT_EVENT = (
    "INSERT INTO alarm_events (alarm_ref, at, event, actor, origin, details) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_OUTBOX_COLUMNS = (
    "created_at", "alarm_ref", "alarm_key", "channel", "recipient", "payload", "status",
    "attempts", "next_attempt_at", "updated_at",
)
# A new message's three times are the transition's, its status pending and its attempts 0:
# the time bound once (?1) and the constants written in the statement, six values bound per
# row instead of ten (a text bound costs ~600 instructions: SQLite copies it). The same stored
# values: a literal has the type a bound str or int has.
_SQLITE_INSERT_OUTBOX = (
    f"INSERT INTO notification_outbox ({', '.join(_OUTBOX_COLUMNS)}) "
    f"VALUES (?1, ?2, ?3, ?4, ?5, ?6, '{OutboxStatus.PENDING.value}', 0, ?1, ?1)"
)


def _write_sqlite(
    connection: Connection,
    transitions: Sequence[AlarmTransition],
    messages: Sequence[Sequence[OutboxMessage]],
    new_rows: list[_RowWrite],
    updates: dict[int, _RowWrite],
    targets: list[int | _RowWrite],
) -> None:
    """:meth:`AlarmStore.write`'s statements on SQLite, through the driver's cursor: the same
    rows and stored text as SQLAlchemy's, without its per-statement compilation and per-value
    processing (most of an alarm batch's cost, paid on the pipeline thread)."""
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    times = _TimeTexts()
    try:
        if new_rows:
            _insert_sqlite_alarms(cursor, new_rows, times)
        by_columns: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]] = ([], [])
        for alarm_id, row in updates.items():
            last = row.last
            values = _sqlite_changes(last.alarm, last.at, times)
            if row.chain is None:  # the stored chain stays
                by_columns[0].append((*values, alarm_id))
            else:
                by_columns[1].append((*values, _chain_text(row.chain), alarm_id))
        for statement, rows in zip(_SQLITE_UPDATE_ALARM, by_columns, strict=True):
            if rows:
                cursor.executemany(statement, rows)
        events: list[tuple[Any, ...]] = []
        outbox: list[tuple[Any, ...]] = []
        for index, transition in enumerate(transitions):
            target = targets[index]
            alarm_id = target if isinstance(target, int) else target.alarm_id
            at = times[transition.at]
            details = transition.details
            events.append((alarm_id, at, transition.kind._value_, transition.actor,
                           transition.origin,
                           json_text(details if details.__class__ is dict else dict(details))))
            if index < len(messages) and messages[index]:
                key = transition.alarm.key
                for message in messages[index]:  # message_rows' columns, as tuples
                    outbox.append((at, alarm_id, key, message.channel, message.recipient,
                                   payload_json(message.payload, alarm_id)))
        if events:
            cursor.executemany(_SQLITE_INSERT_EVENT, events)
        if outbox:
            cursor.executemany(_SQLITE_INSERT_OUTBOX, outbox)
    finally:
        cursor.close()


def _insert_sqlite_alarms(cursor: Any, new_rows: list[_RowWrite], times: _TimeTexts) -> None:
    """Insert the alarm rows raised in this write; each ``alarm_id`` set.

    The first row alone, its id from ``lastrowid``; the others in one statement with the ids
    that follow it (a statement per row was a tenth of a batch's write). The first insert
    took the database's write lock, held until the commit, so no other connection can add a
    row meanwhile; and when its id is the table's largest, the ids after it are free. It is
    not when the largest id is SQLite's maximum (SQLite then picks ids at random): then each
    row goes on its own.
    """
    inserts = [(
        *_sqlite_row(row.last, times),
        None if row.chain is None else _chain_text(row.chain),
        row.first.alarm.bed_label, row.first.alarm.patient_id,
    ) for row in new_rows]
    cursor.execute(_SQLITE_INSERT_ALARM, inserts[0])
    first_id = int(cursor.lastrowid)
    new_rows[0].alarm_id = first_id
    if len(inserts) == 1:
        return
    if cursor.execute("SELECT max(id) FROM alarms").fetchone()[0] == first_id:
        cursor.executemany(_SQLITE_INSERT_ALARM_WITH_ID, [
            (first_id + offset, *values) for offset, values in enumerate(inserts[1:], start=1)
        ])
        for offset, row in enumerate(new_rows[1:], start=1):
            row.alarm_id = first_id + offset
        return
    for row, values in zip(new_rows[1:], inserts[1:], strict=True):
        cursor.execute(_SQLITE_INSERT_ALARM, values)
        row.alarm_id = int(cursor.lastrowid)


def _sqlite_row(transition: AlarmTransition, times: _TimeTexts) -> tuple[Any, ...]:
    """``_row_values(transition, ...)`` without ``escalation``, as a tuple in ``_ROW_COLUMNS``
    order, times as SQLite stores them (from ``times``); built directly (one per alarm row
    written)."""
    alarm = transition.alarm
    vital = alarm.vital
    updated_at = alarm.updated_at if alarm.updated_at >= transition.at else transition.at
    resolved_at = alarm.resolved_at
    return (
        alarm.key, alarm.kind._value_, alarm.condition[:64],
        None if vital is None else vital._value_, alarm.priority._value_,
        alarm.state._value_, alarm.device_id, alarm.value, alarm.limit_value, alarm.message,
        times[alarm.raised_at], times[updated_at],
        None if resolved_at is None else times[resolved_at],
        _alarm_text(alarm),
    )


def _sqlite_changes(alarm: Alarm, at: datetime, times: _TimeTexts) -> tuple[Any, ...]:
    """What an update of the alarm row sets for ``alarm`` as a transition at ``at`` left it,
    in ``_UPDATED_COLUMNS`` order (as :func:`_sqlite_row` has them)."""
    updated_at = alarm.updated_at if alarm.updated_at >= at else at
    resolved_at = alarm.resolved_at
    return (
        alarm.priority._value_, alarm.state._value_, alarm.value, alarm.limit_value,
        alarm.message, times[updated_at], None if resolved_at is None else times[resolved_at],
        _alarm_text(alarm),
    )


class _TimeTexts(dict[datetime, str]):
    """``sqlite_time_text`` of each time, worked out once per write: a batch's transitions
    share one time (the engine's clock when the batch was evaluated), which is each event's
    and outbox row's time and most alarm rows' ``updated_at`` and ``raised_at``. Equal times
    (the same instant) have the same text, so a time found here is as good as one computed."""

    __slots__ = ()

    def __missing__(self, value: datetime) -> str:
        text = self[value] = sqlite_time_text(value)
        return text


# The alarm fields an ``alarms`` row holds in columns of their own, each written from the same
# alarm as the snapshot beside it (``_row_values``, ``_sqlite_row``, ``_changed_values``,
# ``_sqlite_changes``): the field -> its column. ``condition`` is not one of them (its column
# keeps 64 characters), nor ``device_id`` (set when the row is inserted, not updated after),
# nor ``updated_at`` (its column is the later of it and the transition's time), nor the bed and
# patient (ids in the row), nor ``value`` and ``limit_value`` (a float column gives 12.0 back
# for a battery's 12): those stay in the snapshot with the rest.
_COLUMN_OF_FIELD = {
    "key": "alarm_key", "kind": "kind", "priority": "priority", "state": "state",
    "raised_at": "raised_at", "message": "message", "resolved_at": "resolved_at",
    "vital": "vital",
}
# What the snapshot holds (schema 0009): every other field but the id, which is the row's.
# About 410 characters instead of 670 (the alarm-heavy bench), so an alarm row of ~900 bytes
# instead of ~1,160: fewer pages per alarm commit, and less text built and bound.
SNAPSHOT_FIELDS = tuple(
    name for name in Alarm._fields if name not in _COLUMN_OF_FIELD and name != "alarm_id"
)
# ``json_text`` of ``alarm.to_dict()``'s SNAPSHOT_FIELDS, and ``json_text(chain.to_dict())``,
# the same text written without building the dicts (one snapshot per alarm row written, and
# its chain).
_alarm_text = record_text_writer(Alarm, SNAPSHOT_FIELDS)
_chain_text = record_text_writer(ChainState)


def _override_row(row: Any) -> OverrideRow:
    override = LimitOverride(
        patient_id=row["patient_id"], limits=VitalLimits.from_dict(json.loads(row["limits"])),
        author=row["author"], reason=row["reason"], at=row["set_at"],
    )
    return OverrideRow(
        id=row["id"], override=override, origin=row["origin"], removed_at=row["removed_at"],
        removed_by=row["removed_by"], removed_reason=row["removed_reason"],
    )


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
