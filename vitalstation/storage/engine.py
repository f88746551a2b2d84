"""Engine factory: SQLite in WAL mode by default, PostgreSQL by URL."""

from __future__ import annotations

import sqlite3
import threading
import weakref
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


# WAL checkpoints (the log copied back into the database file, with an fsync) are made by a
# background thread this often, instead of by whichever connection commits past SQLite's
# 1,000-page threshold: that was usually the single writer, whose commit then took tens of
# milliseconds (p99 45 ms against a 1 ms median under REST load) with every input's
# acknowledgement waiting behind it.
CHECKPOINT_INTERVAL_S = 0.5
# A committing connection still checkpoints past this many pages (64 MiB of 4 KiB pages): a
# safety net that bounds the log should the background thread fall behind or be stopped.
WAL_AUTOCHECKPOINT_PAGES = 16_384


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
        if database and database != ":memory:" and not database.startswith("file:"):
            checkpointer = _Checkpointer(database)
            event.listen(engine, "connect", checkpointer.on_connect)
            event.listen(engine, "engine_disposed", checkpointer.on_dispose)
            weakref.finalize(engine, checkpointer.stop)
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
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    cursor.close()


class _Checkpointer:
    """Checkpoints one SQLite database's WAL from its own thread (see CHECKPOINT_INTERVAL_S).

    Started by the engine's first connection, stopped when the engine is disposed (or garbage
    collected, or its file is gone). ``PASSIVE`` checkpoints never wait for, nor block, the
    writer: what a transaction in progress still needs is copied at the next pass. Durability
    is unchanged: a commit is in the WAL before it returns (``synchronous=NORMAL``).
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._running: tuple[threading.Thread, threading.Event] | None = None

    def on_connect(self, _dbapi_connection: Any, _record: Any) -> None:
        with self._lock:
            if self._running is not None:
                return
            stopping = threading.Event()
            thread = threading.Thread(
                target=self._run, args=(stopping,), name="vitalstation-sqlite-checkpoint",
                daemon=True,
            )
            self._running = (thread, stopping)
        thread.start()

    def on_dispose(self, _engine: Any) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the thread (it ends within one pass); the engine may connect again later."""
        with self._lock:
            running, self._running = self._running, None
        if running is not None:
            thread, stopping = running
            stopping.set()
            if thread is not threading.current_thread():
                thread.join(5.0)

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.wait(CHECKPOINT_INTERVAL_S):
            if not Path(self._path).exists():
                return  # the database was removed (a test's folder, a deleted home)
            try:
                connection = sqlite3.connect(self._path, timeout=0.0)
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                finally:
                    connection.close()
            except Exception:  # noqa: BLE001, S110 - busy, locked, gone: the next pass tries
                pass  # (not logged: this thread may outlive the logging of a closed station)


def describe_url(url: str) -> str:
    """The URL with any password hidden, for logs and the status line."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid store URL>"
