"""Device API keys on SQLite and PostgreSQL: issue, verify, revoke, rotate, expire, count.

Also the ``vitalstation device key ...`` commands end to end. One database per backend for the
module (creating a PostgreSQL database per test would be most of the run); each test registers
its own devices.
"""

from __future__ import annotations

import itertools
import json
import statistics
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.ingest.test_rest_harness import backend_params, backend_url
from vitalstation.cli import main
from vitalstation.domain.errors import UserError
from vitalstation.pipeline.types import ActivityEntry
from vitalstation.storage.keys import KEY_CHARS, KeyStore, hash_key, key_prefix
from vitalstation.storage.registry import Conflict, NotFound
from vitalstation.storage.schema import api_keys, audit_log
from vitalstation.storage.store import Store
from vitalstation.storage.writer import ReadingWriter

ADMIN = "test:admin"
T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
_ids = itertools.count(1)


@pytest.fixture(scope="module", params=backend_params())
def store_url(request, tmp_path_factory):
    yield from backend_url(request, tmp_path_factory)


@pytest.fixture(scope="module")
def store(store_url):
    opened = Store.open(store_url)
    yield opened
    opened.close()


@dataclass
class Ward:
    """Fresh ids for one test: dev1 in bed ``bed`` with ``patient`` admitted; dev2 unassigned."""

    dev1: str
    dev2: str
    patient: str
    bed: str


@pytest.fixture
def ward(store: Store) -> Ward:
    tag = f"{next(_ids)}-{uuid.uuid4().hex[:6]}"
    ward = Ward(f"DEV1-{tag}", f"DEV2-{tag}", f"P-{tag}", f"B-{tag}")
    registry = store.registry
    registry.add_patient(ward.patient, "Ada", actor=ADMIN, at=T0)
    registry.add_bed(ward.bed, "5N", actor=ADMIN, at=T0)
    registry.admit(ward.patient, ward.bed, actor=ADMIN, at=T0)
    registry.add_device(ward.dev1, name="Monitor", device_type="BP", actor=ADMIN, at=T0)
    registry.assign_device(ward.dev1, bed_label=ward.bed, actor=ADMIN, at=T0)
    registry.add_device(ward.dev2, actor=ADMIN, at=T0)
    return ward


@pytest.fixture
def keys(store: Store) -> KeyStore:
    return KeyStore(store.engine)


def audit(store: Store, *prefixes: str) -> list[tuple[str, str]]:
    with store.engine.connect() as connection:
        return [(r.action, r.subject) for r in connection.execute(
            select(audit_log.c.action, audit_log.c.subject)
            .where(audit_log.c.action.like("key.%"), audit_log.c.subject.in_(prefixes))
            .order_by(audit_log.c.id))]


def test_a_key_is_random_prefixed_and_stored_only_as_its_hash(store: Store, keys, ward) -> None:
    new = keys.create(ward.dev1, name="Primary API Key", actor=ADMIN, at=T0)
    assert len(new.key) == KEY_CHARS == 55
    assert new.key.startswith("vs_") and new.key[11] == "_"
    assert key_prefix(new.key) == new.prefix == new.key[:11]
    other = keys.create(ward.dev1, name="Second", actor=ADMIN, at=T0)
    assert other.key != new.key and other.prefix != new.prefix
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(api_keys).where(api_keys.c.prefix.in_([new.prefix, other.prefix]))
            .order_by(api_keys.c.id)).all()
    stored = " ".join(str(value) for row in rows for value in row)
    assert new.key not in stored and new.key[12:] not in stored
    assert rows[0].key_hash == hash_key(new.key)
    assert rows[0].key_hash.startswith("sha256$")
    assert audit(store, new.prefix, other.prefix) == [
        ("key.create", new.prefix), ("key.create", other.prefix)]


def test_verify_accepts_the_key_and_refuses_everything_else(keys, ward) -> None:
    new = keys.create(ward.dev1, name="k", actor=ADMIN, at=T0)
    grant = keys.verify(new.key, now=T0)
    assert grant is not None
    assert (grant.prefix, grant.device_id, grant.device_status, grant.assigned) == (
        new.prefix, ward.dev1, "active", True)
    assert (grant.can_write_vitals, grant.can_read_patient, grant.expires_at) == (
        True, False, None)
    flipped = new.key[:-1] + ("A" if new.key[-1] != "A" else "B")
    for bad in (flipped, "vs_ZZZZZZZZ" + new.key[11:], new.key[:-1], new.key + "x", "",
                new.key.upper(), "x" * 55):
        assert keys.verify(bad, now=T0) is None, bad
    unassigned = keys.create(ward.dev2, name="k", can_write_vitals=False, can_read_patient=True,
                             actor=ADMIN, at=T0)
    grant = keys.verify(unassigned.key, now=T0)
    assert grant is not None and grant.assigned is False
    assert (grant.can_write_vitals, grant.can_read_patient) == (False, True)


def test_expiry_and_revocation(store: Store, keys, ward) -> None:
    expiring = keys.create(ward.dev1, name="k", expires_days=1, actor=ADMIN, at=T0)
    assert expiring.expires_at == T0 + timedelta(days=1)
    assert keys.verify(expiring.key, now=T0 + timedelta(hours=23)) is not None
    assert keys.verify(expiring.key, now=T0 + timedelta(days=1)) is None
    revoked = keys.create(ward.dev1, name="k", actor=ADMIN, at=T0)
    assert keys.revoke(revoked.prefix, actor=ADMIN, at=T0 + timedelta(minutes=1)) == ward.dev1
    assert keys.verify(revoked.key, now=T0 + timedelta(minutes=2)) is None
    with pytest.raises(Conflict, match="already revoked"):
        keys.revoke(revoked.prefix, actor=ADMIN, at=T0)
    with pytest.raises(NotFound, match="no key vs_ZZZZZZZZ"):
        keys.revoke("vs_ZZZZZZZZ", actor=ADMIN, at=T0)
    with pytest.raises(UserError, match="is not a key prefix"):
        keys.revoke(ward.dev1, actor=ADMIN, at=T0)
    states = {k.prefix: k.state for k in keys.list(ward.dev1, now=T0 + timedelta(days=2))}
    assert states == {expiring.prefix: "expired", revoked.prefix: "revoked"}
    assert ("key.revoke", revoked.prefix) in audit(store, revoked.prefix)


def test_rotate_keeps_name_permissions_and_the_remaining_lifetime(store: Store, keys, ward) -> None:
    old = keys.create(ward.dev1, name="Ward key", expires_days=10, can_read_patient=True,
                      actor=ADMIN, at=T0)
    later = T0 + timedelta(days=9, hours=23)  # less than a day left: the seed made it eternal
    new = keys.rotate(old.prefix, actor=ADMIN, at=later)
    assert new.expires_at == old.expires_at == T0 + timedelta(days=10)
    assert (new.name, new.can_write_vitals, new.can_read_patient) == ("Ward key", True, True)
    assert new.prefix != old.prefix
    assert keys.verify(old.key, now=later) is None
    assert keys.verify(new.key, now=later) is not None
    assert keys.verify(new.key, now=T0 + timedelta(days=10)) is None  # expires as the old one
    forever = keys.create(ward.dev1, name="f", actor=ADMIN, at=T0)
    assert keys.rotate(forever.prefix, actor=ADMIN, at=later).expires_at is None
    with pytest.raises(Conflict, match="revoked"):
        keys.rotate(old.prefix, actor=ADMIN, at=later)
    expired = keys.create(ward.dev1, name="e", expires_days=1, actor=ADMIN, at=T0)
    with pytest.raises(Conflict, match="expired"):
        keys.rotate(expired.prefix, actor=ADMIN, at=T0 + timedelta(days=2))
    assert [a for a in audit(store, old.prefix, forever.prefix) if a[0] == "key.rotate"] == [
        ("key.rotate", old.prefix), ("key.rotate", forever.prefix)]


def test_create_refusals(store: Store, keys, ward) -> None:
    with pytest.raises(NotFound, match="no device NOPE"):
        keys.create("NOPE", name="k", actor=ADMIN, at=T0)
    store.registry.set_device_status(ward.dev2, "retired", actor=ADMIN, at=T0)
    with pytest.raises(Conflict, match="retired"):
        keys.create(ward.dev2, name="k", actor=ADMIN, at=T0)
    for days in (0, -1, 99999):
        with pytest.raises(UserError, match="--expires-days"):
            keys.create(ward.dev1, name="k", expires_days=days, actor=ADMIN, at=T0)
    with pytest.raises(UserError, match="name must not be empty"):
        keys.create(ward.dev1, name="  ", actor=ADMIN, at=T0)
    with pytest.raises(NotFound):
        keys.list("NOPE", now=T0)


def test_device_status(store: Store, keys, ward) -> None:
    status = keys.device_status(ward.dev1, now=T0 + timedelta(hours=1))
    assert status is not None
    assert (status.name, status.device_type, status.is_active) == ("Monitor", "BP", True)
    assert (status.patient_assigned, status.patient_id, status.bed) == (
        True, ward.patient, ward.bed)
    assert status.last_reading is None
    bob = ward.patient + "-bob"
    store.registry.add_patient(bob, "Bob", actor=ADMIN, at=T0)
    store.registry.assign_device(ward.dev2, patient_id=bob, actor=ADMIN, at=T0)
    assert keys.device_status(ward.dev2, now=T0 + timedelta(hours=1)).patient_id == bob
    store.registry.discharge(ward.patient, actor=ADMIN, at=T0 + timedelta(hours=2))
    later = keys.device_status(ward.dev1, now=T0 + timedelta(hours=3))
    assert (later.patient_assigned, later.patient_id, later.bed) == (False, None, ward.bed)
    assert keys.device_status("NOPE", now=T0) is None


def test_usage_counters_lose_no_increment_under_concurrency(store: Store, keys, ward) -> None:
    new = keys.create(ward.dev1, name="k", actor=ADMIN, at=T0)
    threads, per_thread, per_write = 6, 10, 5
    errors: list[BaseException] = []

    def use(n: int) -> None:
        writer = ReadingWriter(store.engine)  # as several stations, or writers, would
        try:
            for i in range(per_thread):
                at = T0 + timedelta(seconds=n * 100 + i)
                writer.write_activity([
                    ActivityEntry(at=at, input="rest", action="data_post", status=200,
                                  key_prefix=new.prefix, key_used=True)
                    for _ in range(per_write)
                ] + [ActivityEntry(at=at, input="rest", action="auth", status=401,
                                   key_prefix=new.prefix, key_used=False)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=use, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert errors == []
    (info,) = keys.list(ward.dev1, now=T0)
    assert info.use_count == threads * per_thread * per_write
    assert info.last_used_at == T0 + timedelta(seconds=(threads - 1) * 100 + per_thread - 1)


def test_unknown_prefix_and_wrong_key_cost_the_same(keys, ward) -> None:
    new = keys.create(ward.dev1, name="k", actor=ADMIN, at=T0)
    wrong = new.key[:-1] + ("A" if new.key[-1] != "A" else "B")
    unknown = "vs_ZZZZZZZZ" + new.key[11:]
    samples: dict[str, list[float]] = {"wrong": [], "unknown": []}
    for _ in range(60):
        for name, key in (("wrong", wrong), ("unknown", unknown)):
            started = time.perf_counter()
            assert keys.verify(key, now=T0) is None
            samples[name].append(time.perf_counter() - started)
    ratio = statistics.median(samples["wrong"]) / statistics.median(samples["unknown"])
    assert 0.5 < ratio < 2.0, ratio


# --- the command line -------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path, store_url, monkeypatch):
    """A data home whose store is the module's database."""
    monkeypatch.setenv("VITALSTATION_STORE__URL", store_url)
    return tmp_path / "home"


def run(home, capsys, *args: str) -> tuple[int, str, str]:
    code = main(["--home", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_key_commands(home, capsys) -> None:
    device = f"CLI-{uuid.uuid4().hex[:8]}"
    assert run(home, capsys, "device", "add", device)[0] == 0
    code, out, _ = run(home, capsys, "device", "key", "create", device, "--name", "Primary",
                       "--expires-days", "30", "--json")
    assert code == 0
    created = json.loads(out)
    assert set(created) == {"key", "prefix"} and created["key"].startswith(created["prefix"])

    code, out, _ = run(home, capsys, "device", "key", "create", device, "--name", "RO",
                       "--no-write", "--read-patient")
    assert code == 0 and "API key: vs_" in out and "read patient" in out
    assert "Authorization: Bearer vs_" in out

    code, out, _ = run(home, capsys, "device", "key", "list", device, "--json")
    listed = [json.loads(line) for line in out.splitlines()]
    assert [(k["name"], k["state"], k["can_write_vitals"], k["can_read_patient"])
            for k in listed] == [("Primary", "active", True, False), ("RO", "active", False, True)]
    assert all("key" not in k for k in listed)
    expires = listed[0]["expires_at"]

    code, out, _ = run(home, capsys, "device", "key", "rotate", created["prefix"], "--json")
    rotated = json.loads(out)
    assert code == 0 and rotated["prefix"] != created["prefix"]
    code, out, _ = run(home, capsys, "device", "key", "list", "--json")
    by_prefix = {k["prefix"]: k for k in map(json.loads, out.splitlines())}
    assert device in {k["device_id"] for k in by_prefix.values()}
    assert by_prefix[created["prefix"]]["state"] == "revoked"
    assert by_prefix[rotated["prefix"]]["expires_at"] == expires

    code, out, _ = run(home, capsys, "device", "key", "revoke", rotated["prefix"])
    assert code == 0 and "revoked" in out
    code, _, err = run(home, capsys, "device", "key", "revoke", rotated["prefix"])
    assert code == 1 and "already revoked" in err
    code, _, err = run(home, capsys, "device", "key", "create", "NOPE", "--name", "x")
    assert code == 1 and "no device NOPE" in err
    code, out, _ = run(home, capsys, "device", "key", "list")
    assert "PREFIX" in out and "revoked" in out
