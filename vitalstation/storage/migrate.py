"""Schema migrations with Alembic, run in-process: ``vitalstation db upgrade`` and on start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest schema revision this version of the station knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the database to the newest schema; returns (revision before, revision after).

    Safe to run on every start: an up-to-date database is left alone. A database written by a
    newer station (an unknown revision) is refused rather than touched.
    """
    before = current_revision(engine)
    script = ScriptDirectory.from_config(_alembic_config())
    if before is not None:
        try:
            script.get_revision(before)
        except Exception as exc:  # noqa: BLE001 - alembic raises several types for this
            raise RuntimeError(
                f"the database is at schema revision {before}, which this version of "
                "VitalStation does not know (written by a newer version?)"
            ) from exc
    if before == head_revision():
        return before, before
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return before, head_revision()
