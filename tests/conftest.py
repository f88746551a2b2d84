"""Shared fixtures: fresh data homes, and a throwaway database per test on SQLite and PostgreSQL.

PostgreSQL: the local server (``VITALSTATION_TEST_PG_URL``, default
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``). Each test gets its own database,
cloned from a template migrated once per run, and dropped afterwards, so runs never collide.
When the server is unreachable the PostgreSQL cases are skipped with the reason, except under
``CI=true``, where a missing server is a failure.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

PG_ADMIN_URL = os.environ.get(
    "VITALSTATION_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# moto's server (werkzeug) logs every request from its own threads, which outlive a test's
# captured output and then print "--- Logging error ---" noise into the run.
logging.getLogger("werkzeug").setLevel(logging.WARNING)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> None:
    """No test reads the developer's data home or VITALSTATION_* settings."""
    for name in list(os.environ):
        if name.startswith("VITALSTATION_") and name != "VITALSTATION_TEST_PG_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("VITALSTATION_HOME", str(tmp_path_factory.mktemp("default-home")))


@pytest.fixture(autouse=True)
def _station_logging_undone() -> Iterator[None]:
    """A test that runs ``main()`` in-process sets up the station's logging, whose stderr
    handler holds that test's captured stream: left on the root logger, every later warning
    (a notification thread's, say) fails with "--- Logging error --- I/O operation on closed
    file". Each test's station handlers are closed and the root level restored."""
    from vitalstation.app.logging_setup import remove_station_logging

    root = logging.getLogger()
    level = root.level
    yield
    remove_station_logging()
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _memory_keyring():
    """No test touches the developer's OS keyring: each test gets an empty in-memory one."""
    import keyring

    from tests.factories import memory_keyring

    previous = keyring.get_keyring()
    backend = memory_keyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def _pg_admin():
    import sqlalchemy

    return sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database on the local PostgreSQL (its name)."""
    import sqlalchemy

    from vitalstation.storage import migrate
    from vitalstation.storage.engine import make_engine

    try:
        admin = _pg_admin()
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "no server"
        reason = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc.__class__.__name__}"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: PostgreSQL is required)")
        pytest.skip(reason)
    name = f"vs_tmpl_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = sqlalchemy.make_url(PG_ADMIN_URL).set(database=name)
    engine = make_engine(url.render_as_string(hide_password=False))
    migrate.upgrade(engine)
    engine.dispose()
    yield name
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test."""
    import sqlalchemy

    name = f"vs_test_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    url = sqlalchemy.make_url(PG_ADMIN_URL).set(database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """The same test on SQLite (a file in tmp_path) and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'station.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(store_url: str):
    """An open, migrated store."""
    from vitalstation.storage.store import Store

    opened = Store.open(store_url)
    yield opened
    opened.close()


@pytest.fixture
def make_station(tmp_path):
    """Starts a station ``Runtime`` with no inputs on a temporary data home (SQLite unless a
    URL is given), with bed 4 holding patient P1 (Ada Lovelace, admitted 3 days ago) and the
    bedside monitor DEV1 assigned to the bed; every station started is stopped afterwards."""
    from datetime import UTC, datetime, timedelta

    from vitalstation.app.runtime import Runtime
    from vitalstation.config.settings import load_settings
    from vitalstation.domain.clock import utc_now

    started: list[Runtime] = []

    def start(store_url: str | None = None, *, clock=utc_now) -> Runtime:
        home = tmp_path / f"home{len(started)}"
        home.mkdir()
        env = {"VITALSTATION_STATION__NAME": "Ward 5 North"}
        if store_url is not None:
            env["VITALSTATION_STORE__URL"] = store_url
        runtime = Runtime(load_settings(home, env), clock=clock, input_factories=[])
        runtime.start()
        started.append(runtime)
        registry = runtime.store.registry
        at = datetime.now(UTC) - timedelta(days=3)
        registry.add_patient("P1", "Ada Lovelace", actor="test", at=at)
        registry.add_bed("4", "5 North", actor="test", at=at)
        registry.admit("P1", "4", actor="test", at=at)
        registry.add_device("DEV1", name="Bed 4 monitor", actor="test", at=at)
        registry.assign_device("DEV1", bed_label="4", actor="test", at=at)
        return runtime

    yield start
    for runtime in reversed(started):
        runtime.stop()


@pytest.fixture
def ward_store(store):
    """A Ward (fake clock, alarm engine: tests/alarms/support.py) and the store, with patient
    P1 admitted to bed 12 an hour before the ward's clock (device DEV1 in the bed: the Ward's
    defaults). The station-level alarm tests (tests/app, tests/faults) start from it."""
    from tests.alarms.support import Ward

    ward = Ward()
    at = ward.now() - timedelta(hours=1)
    store.registry.add_patient("P1", "Ada Lovelace", actor="test", at=at)
    store.registry.add_bed("12", "5N", actor="test", at=at)
    store.registry.admit("P1", "12", actor="test", at=at)
    return ward, store
