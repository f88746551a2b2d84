"""The REST receiver's test harness: a real station (store, pipeline, receiver) and a client.

Shared by ``test_rest.py`` and ``test_rest_fuzz.py`` (no tests of its own). One station per
test module and backend, since a database, a pipeline and a listening socket are the slow part;
each test registers its own devices so that tests do not see each other's readings.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy

from vitalstation.ingest.rest import RestConfig, RestInput
from vitalstation.pipeline.core import Pipeline
from vitalstation.storage.keys import KeyStore, NewKey
from vitalstation.storage.store import Store

ADMIN = "test:admin"
# Registered, admitted and assigned long before any reading a test sends (the seed's documented
# readings are from 2025-11-17).
REGISTERED = datetime(2025, 1, 1, tzinfo=UTC)
PG_ADMIN_URL = os.environ.get(
    "VITALSTATION_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
_ids = itertools.count(1)


def backend_params() -> list[Any]:
    """SQLite, and PostgreSQL marked as the shared fixtures mark it."""
    return ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def backend_url(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[str]:
    """A fresh migrated database for a whole module (a generator for a module fixture)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('rest') / 'station.db'}"
        return
    template = request.getfixturevalue("pg_template")  # skips when PostgreSQL is absent
    name = f"vs_rest_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield sqlalchemy.make_url(PG_ADMIN_URL).set(database=name).render_as_string(
            hide_password=False
        )
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """A keep-alive HTTP(S) client on one connection (http.client, as devices' stacks do)."""

    def __init__(self, rest: RestInput, context: ssl.SSLContext | None = None) -> None:
        if rest.scheme == "https":
            self._conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", rest.port, timeout=10, context=context
            )
        else:
            self._conn = http.client.HTTPConnection("127.0.0.1", rest.port, timeout=10)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = "application/json",
    ) -> Reply:
        sent: dict[str, str] = {}
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        data: bytes | None
        if body is None:
            data = None
        elif isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body).encode()
        if data is not None and content_type is not None:
            sent["Content-Type"] = content_type
        sent.update(headers or {})
        self._conn.request(method, path, body=data, headers=sent)
        response = self._conn.getresponse()
        payload = response.read()
        reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, payload)
        if reply.headers.get("connection", "").lower() == "close":
            self._conn.close()
        return reply

    def post(self, path: str, body: Any, **kw: Any) -> Reply:
        return self.request("POST", path, body, **kw)

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def close(self) -> None:
        self._conn.close()


@dataclass
class Station:
    """A store, a running pipeline and a running receiver, on one backend."""

    store: Store
    pipeline: Pipeline
    keys: KeyStore
    rest: RestInput
    extra: list[RestInput] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)
    patients: dict[str, str] = field(default_factory=dict)

    def device(
        self,
        device_id: str | None = None,
        *,
        assigned: bool = True,
        status: str = "active",
        name: str = "Smart BP Monitor",
        device_type: str = "Blood Pressure Monitor",
    ) -> str:
        """A new device (with its own patient in its own bed when assigned)."""
        n = next(_ids)
        device_id = device_id or f"DEV{n:04d}-{uuid.uuid4().hex[:6]}"
        registry = self.store.registry
        registry.add_device(device_id, name=name, device_type=device_type, actor=ADMIN,
                            at=REGISTERED)
        if assigned:
            patient, bed = f"P{n}-{device_id}"[:64], f"B{n}-{device_id}"[:64]
            registry.add_patient(patient, f"Patient {n}", actor=ADMIN, at=REGISTERED)
            registry.add_bed(bed, "REST", actor=ADMIN, at=REGISTERED)
            registry.admit(patient, bed, actor=ADMIN, at=REGISTERED)
            registry.assign_device(device_id, bed_label=bed, actor=ADMIN, at=REGISTERED)
            self.patients[device_id] = patient
        if status != "active":
            registry.set_device_status(device_id, status, actor=ADMIN, at=REGISTERED)
        return device_id

    def key(self, device_id: str, *, at: datetime | None = None, **options: Any) -> NewKey:
        return self.keys.create(
            device_id, name=options.pop("name", "Primary API Key"), actor=ADMIN,
            at=at or datetime.now(UTC), **options,
        )

    def client(
        self, rest: RestInput | None = None, context: ssl.SSLContext | None = None
    ) -> Client:
        client = Client(rest or self.rest, context)
        self.clients.append(client)
        return client

    def receiver(self, **overrides: Any) -> RestInput:
        """Another receiver on the same store and pipeline, with other settings."""
        config = replace(self.rest.config, port=0, **overrides)
        rest = RestInput(config, self.pipeline, self.keys)
        rest.start()
        self.extra.append(rest)
        return rest

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for rest in [*self.extra, self.rest]:
            rest.stop(5.0)
        self.pipeline.stop(10.0)
        self.store.close()


def open_station(url: str, **config: Any) -> Station:
    store = Store.open(url)
    pipeline = Pipeline(store.writer)
    pipeline.start()
    keys = KeyStore(store.engine)
    defaults: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "rate_limit": 0}
    rest = RestInput(RestConfig(**(defaults | config)), pipeline, keys)
    rest.start()
    return Station(store, pipeline, keys, rest)


def now_iso(offset_s: float = 0.0) -> str:
    """A timestamp as devices send it, ``offset_s`` from now."""
    at = datetime.now(UTC) + timedelta(seconds=offset_s)
    return at.isoformat(timespec="microseconds").replace("+00:00", "Z")
