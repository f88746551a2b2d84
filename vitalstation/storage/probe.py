"""Settings' "Test connection" for a database URL: connect, ask the schema revision, close.

Nothing is created or migrated: a test must not change the database it looks at.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from vitalstation.storage.engine import StoreConfigError, describe_url, make_engine

__all__ = ["ProbeFailed", "probe_database"]


class ProbeFailed(Exception):
    """The database could not be reached; the message says why (never the password)."""


def probe_database(url: str) -> str:
    """``connected to postgresql://ward@db/ward: VitalStation schema 0004`` or ProbeFailed."""
    shown = describe_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ProbeFailed(f"{url!r} is not a database URL") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database)
        if not path.exists():
            folder = next((p for p in path.parents if p.exists()), None)
            if folder is None or not os.access(folder, os.W_OK):
                raise ProbeFailed(f"cannot create {path}: {folder} is not writable")
            return f"{path} does not exist yet; the station creates it at first start"
    try:
        engine = make_engine(url)
    except (StoreConfigError, OSError) as exc:
        raise ProbeFailed(str(exc)) from None
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
            if inspect(connection).has_table("alembic_version"):
                revision = connection.execute(
                    text("select version_num from alembic_version")
                ).scalar_one_or_none()
                return f"connected to {shown}: VitalStation schema {revision}"
            return f"connected to {shown}: no VitalStation tables yet (created at first start)"
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)
        reason = str(orig if orig is not None else exc).strip().splitlines()[0]
        raise ProbeFailed(f"cannot connect to {shown}: {reason}") from None
    finally:
        engine.dispose()
