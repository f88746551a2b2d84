"""Engine factory: SQLite in WAL mode by default, PostgreSQL by URL."""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# How long an SQLite writer waits for another process's lock (the CLI while the station runs)
# before reporting the database busy.
SQLITE_BUSY_TIMEOUT_MS = 10_000
# Page cache per connection. SQLite's 2 MiB default thrashes once the reading indexes outgrow
# it (a ward's indexes are tens of MiB after weeks); 64 MiB keeps inserts flat at 1M+ rows.
SQLITE_CACHE_KIB = 65_536
# How often the station's own checkpointer moves the WAL into the database (WalCheckpointer).
CHECKPOINT_INTERVAL_S = 1.0

_LOGGER = logging.getLogger(__name__)


class StoreConfigError(ValueError):
    """The store URL cannot be used; the message says why."""


def make_engine(url: str, *, background_checkpoints: bool = False) -> Engine:
    """Create the engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

    SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed batch survives a crash of
    the station (not of the operating system), and readers never block the writer. With
    ``background_checkpoints`` its connections never checkpoint the WAL themselves: the
    caller runs a :class:`WalCheckpointer` instead.
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
        if background_checkpoints:
            event.listen(engine, "connect", _no_auto_checkpoint)
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


def is_sqlite_file(url: str) -> bool:
    """True for an SQLite database in a file (the only kind with a write-ahead log)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False
    return parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")


def _no_auto_checkpoint(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


class WriteConnection:
    """The one connection through which a station writes an SQLite store (readings, alarm
    rows), kept open between transactions; :func:`write_connection` gives each engine's.

    The pipeline's writer commits a batch and the alarm service then stores what the batch
    raised, on the same thread, one after the other. With a pooled connection per transaction
    each of them found the database changed by the other since its own last transaction, and
    SQLite then drops that connection's whole page cache: every commit read its pages back
    from the OS. On one connection the cache stays warm, and a transaction costs no pool
    check-out (bench/alarms_cpu.py, bench/rest_store.py have the figures).

    Its statement journals are kept in memory (``temp_store=MEMORY``, on this connection
    only). Each multi-row INSERT runs with a statement journal (a copy of every page it
    changes, to undo that statement alone); past 64 KiB SQLite spills it to a temporary file,
    so every commit wrote each changed page twice, once to the WAL and once to a temporary
    file. The journal is undo data for one statement: it has nothing to do with durability
    (the commit still goes to the WAL). Other connections keep temporary files on disk: a
    large sort of a history export must not grow in memory.

    Transactions on it are serialised by a lock (outside one it holds no lock and no snapshot
    of the database). A transaction opened inside another on the same thread is a bug and
    raises at once rather than waiting for itself. A connection that failed is closed and
    replaced at the next transaction; the engine's disposal closes it.
    """

    def __init__(self, engine: Engine) -> None:
        # Weak: the shared table below must not keep a closed store's engine alive.
        self._engine = weakref.ref(engine)
        self._connection: Connection | None = None
        self._lock = threading.RLock()
        self._depth = 0
        event.listen(engine, "engine_disposed", self._on_disposed)

    @property
    def connection(self) -> Connection | None:
        """The connection open now (None before the first transaction and after a failure)."""
        return self._connection

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction: committed at the end of the block, rolled back on an exception."""
        with self._lock:
            if self._depth:
                raise RuntimeError("a write transaction inside another on the same connection")
            connection = self._connection
            if connection is None or connection.closed or connection.invalidated:
                engine = self._engine()
                if engine is None:
                    raise RuntimeError("the store's engine is gone")
                connection = self._connection = engine.connect()
                dbapi = connection.connection.dbapi_connection
                assert dbapi is not None
                dbapi.execute("PRAGMA temp_store=MEMORY")
            self._depth = 1
            try:
                with connection.begin():
                    yield connection
            except BaseException:
                self._connection = None
                try:
                    connection.invalidate()
                    connection.close()
                except Exception:  # noqa: BLE001, S110 - already failing; the original is raised
                    pass
                raise
            finally:
                self._depth = 0

    def close(self) -> None:
        """Close the connection now (the next transaction opens another)."""
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            # Closed at once (not returned to a disposed pool): the last connection to close
            # checkpoints the WAL into the database.
            connection.invalidate()
            connection.close()

    def _on_disposed(self, _engine: Engine) -> None:
        self.close()


_WRITE_CONNECTIONS: weakref.WeakKeyDictionary[Engine, WriteConnection] = (
    weakref.WeakKeyDictionary()
)
_WRITE_CONNECTIONS_LOCK = threading.Lock()


def write_connection(engine: Engine) -> WriteConnection:
    """``engine``'s :class:`WriteConnection` (SQLite), made on first use and shared."""
    with _WRITE_CONNECTIONS_LOCK:
        shared = _WRITE_CONNECTIONS.get(engine)
        if shared is None:
            shared = _WRITE_CONNECTIONS[engine] = WriteConnection(engine)
        return shared


class WalCheckpointer:
    """Copies SQLite's write-ahead log into the database on its own thread and connection.

    By default the commit that pushes the WAL past 1,000 pages runs the checkpoint itself,
    fsync included: the pipeline's writer then stalled for 20-30 ms every few seconds, the
    whole p99 of MQTT publish -> stored at 1,000 msg/s (26 ms; 3 ms without it,
    bench/mqtt.py). PASSIVE checkpoints never wait for readers or the writer, and sqlite3
    releases the GIL while one runs, so the writer keeps committing meanwhile. Durability is
    unchanged: a committed batch is in the WAL, which SQLite replays after a crash.
    """

    def __init__(self, engine: Engine, interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        self._engine = engine
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="vitalstation-wal-checkpoint", daemon=True
        )
        self.checkpoints = 0

    def start(self) -> None:
        """Checkpoint every ``interval_s`` from now on."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the checkpoint under way (the last connection's close does a final one)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                with self._engine.connect() as connection:
                    connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
                self.checkpoints += 1
            except Exception as exc:  # noqa: BLE001 - retried next interval; SQLite keeps the WAL
                _LOGGER.warning("SQLite checkpoint failed (retried in %.0f s): %s",
                                self._interval_s, exc)


def describe_url(url: str) -> str:
    """The URL with any password hidden, for logs and the status line."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid store URL>"
