"""The store: one engine, migrated on open, with its writer, register and queries."""

from __future__ import annotations

import logging

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from vitalstation.domain.errors import UserError
from vitalstation.storage import migrate
from vitalstation.storage.engine import (
    StoreConfigError,
    WalCheckpointer,
    describe_url,
    is_sqlite_file,
    make_engine,
)
from vitalstation.storage.queries import Queries
from vitalstation.storage.registry import Registry
from vitalstation.storage.writer import ReadingWriter

_LOGGER = logging.getLogger(__name__)


class StoreUnavailable(UserError):
    """The database cannot be opened or migrated; the message says which and why."""


class Store:
    """Owns the engine. ``writer`` is for the pipeline thread only; the rest is thread-safe."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.checkpointer: WalCheckpointer | None = None
        self.writer = ReadingWriter(engine)
        self.registry = Registry(engine)
        self.queries = Queries(engine)

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True, background_checkpoints: bool = False
             ) -> Store:
        """Connect to ``url`` and (by default) bring its schema up to date.

        ``background_checkpoints`` (the running station): an SQLite file's WAL is checkpointed
        by a thread of the store's own, never inside a commit of the pipeline's writer.
        """
        shown = describe_url(url)
        checkpoints = background_checkpoints and is_sqlite_file(url)
        try:
            engine = make_engine(url, background_checkpoints=checkpoints)
        except StoreConfigError as exc:
            raise StoreUnavailable(str(exc)) from exc
        try:
            if upgrade:
                before, after = migrate.upgrade(engine)
                if before != after:
                    _LOGGER.info("database %s upgraded from %s to %s", shown, before, after)
            else:
                migrate.current_revision(engine)
        except OperationalError as exc:
            engine.dispose()
            reason = str(exc.orig).strip() if exc.orig is not None else str(exc)
            raise StoreUnavailable(f"cannot open the database {shown}: {reason}") from exc
        except RuntimeError as exc:
            engine.dispose()
            raise StoreUnavailable(f"database {shown}: {exc}") from exc
        store = cls(engine, url)
        if checkpoints:
            store.checkpointer = WalCheckpointer(engine)
            store.checkpointer.start()
        return store

    @property
    def description(self) -> str:
        """The URL without its password, for logs and status."""
        return describe_url(self.url)

    def schema_revision(self) -> str | None:
        """The schema revision the database is at."""
        return migrate.current_revision(self.engine)

    def close(self) -> None:
        """Stop the checkpointer, release every connection (the last one checkpoints)."""
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.engine.dispose()
