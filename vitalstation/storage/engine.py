"""Engine factory: SQLite in WAL mode by default, PostgreSQL by URL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# How long an SQLite writer waits for another process's lock (the CLI while the station runs)
# before reporting the database busy.
SQLITE_BUSY_TIMEOUT_MS = 10_000
# Page cache per connection. SQLite's 2 MiB default thrashes once the reading indexes outgrow
# it (a ward's indexes are tens of MiB after weeks); 64 MiB keeps inserts flat at 1M+ rows.
SQLITE_CACHE_KIB = 65_536


class StoreConfigError(ValueError):
    """The store URL cannot be used; the message says why."""


def make_engine(url: str) -> Engine:
    """Create the engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

    SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed batch survives a crash of
    the station (not of the operating system), and readers never block the writer.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreConfigError(f"store URL {url!r} is not a database URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True)
    raise StoreConfigError(
        f"store URL {parsed.render_as_string(hide_password=True)!r}: unsupported database "
        f"{backend!r} (use sqlite:///path or postgresql+psycopg://user@host/db)"
    )


def _sqlite_on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


def describe_url(url: str) -> str:
    """The URL with any password hidden, for logs and the status line."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid store URL>"
