"""Administration entry points for the CLI (and later the Settings dialog)."""

from __future__ import annotations

from vitalstation.app.credentials import database_url
from vitalstation.config.settings import Settings
from vitalstation.storage.store import Store


def open_store(settings: Settings) -> Store:
    """Open (and migrate) the station's database for an admin command.

    Safe while the station runs: SQLite waits for the writer's lock (WAL), PostgreSQL is
    shared anyway, and every register change tells the running writer to reload.
    """
    return Store.open(database_url(settings))
