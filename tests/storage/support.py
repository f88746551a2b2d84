"""Helpers of the storage tests: alarms written as the service writes them, and what the
database says about its indexes (on SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, event, inspect

from tests.alarms.support import Ward
from vitalstation.alarms import AlarmTransition
from vitalstation.storage.alarms import AlarmStore


def persister(
    ward: Ward, alarm_store: AlarmStore, ids: dict[str, int]
) -> Callable[[Sequence[AlarmTransition]], None]:
    """A function that writes transitions as the alarm service does: each new row's id is
    learnt by the engine (while it still holds the alarm) and kept in ``ids``."""

    def persist(transitions: Sequence[AlarmTransition]) -> None:
        inserted = alarm_store.write(list(transitions), ids)
        for key, alarm_id in inserted.items():
            if ward.engine.alarm(key) is not None:
                ward.engine.assign_id(key, alarm_id)
        ids.update(inserted)

    return persist


def index_definition(engine: Engine, name: str) -> str:
    """The index's definition as the database keeps it (its partial WHERE included)."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            return connection.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = ?", (name,)).scalar_one()
        return connection.exec_driver_sql(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %(name)s", {"name": name}
        ).scalar_one()


def table_indexes(engine: Engine, table: str) -> dict[str, tuple[str, ...]]:
    """Each index of ``table``: its name and columns."""
    return {index["name"]: tuple(index["column_names"])
            for index in inspect(engine).get_indexes(table)}


def captured_selects(
    engine: Engine, call: Callable[[], object], table: re.Pattern[str]
) -> list[tuple[str, Any]]:
    """Each SELECT naming ``table`` that ``call`` runs: (statement, parameters)."""
    statements: list[tuple[str, Any]] = []

    def capture(connection, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT") and table.search(statement):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return statements


def sqlite_plans(
    engine: Engine, call: Callable[[], object], table: re.Pattern[str]
) -> list[tuple[str, str]]:
    """Each SELECT on ``table`` that ``call`` runs, and SQLite's plan of it as it ran."""
    statements = captured_selects(engine, call, table)
    with engine.connect() as connection:
        return [
            (statement, " | ".join(row[3] for row in connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters)))
            for statement, parameters in statements
        ]


def postgres_generic_plans(
    engine: Engine, call: Callable[[], object], table: re.Pattern[str]
) -> list[tuple[str, str]]:
    """Each SELECT on ``table`` that ``call`` runs, and PostgreSQL's generic plan of it
    (PREPAREd, ``plan_cache_mode = force_generic_plan``): the plan PostgreSQL may settle on
    for a statement psycopg prepares once it has run 5 times, made for any value of its
    parameters, so a partial index serves it only if the statement carries the index's term
    as a literal. Sequential scans are off, so a usable index is used on a small table."""
    statements = captured_selects(engine, call, table)
    plans = []
    with engine.connect() as connection:
        connection.exec_driver_sql("SET enable_seqscan = off")
        connection.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        for n, (statement, parameters) in enumerate(statements):
            names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))
            numbered = statement
            for number, name in enumerate(names, start=1):  # psycopg's names as $1, $2...
                numbered = numbered.replace(f"%({name})s", f"${number}")
            connection.exec_driver_sql(f"PREPARE generic_{n} AS {numbered}")
            values = ", ".join(_sql_literal((parameters or {})[name]) for name in names)
            plans.append((statement, "\n".join(row[0] for row in connection.exec_driver_sql(
                f"EXPLAIN EXECUTE generic_{n}" + (f"({values})" if values else "")))))
    return plans


def _sql_literal(value: object) -> str:
    if isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, datetime):
        value = value.isoformat()
    return "'" + str(value).replace("'", "''") + "'"
