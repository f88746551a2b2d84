"""Device keys hashed with HMAC-SHA256 under the station's secret: round trip, old SHA-256
hashes verified and upgraded on use, another secret refused, and every failure answered alike
(SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import logging

import pytest
from sqlalchemy import select

import vitalstation.storage.keys as keys_module
from tests.factories import T0
from vitalstation.storage.keys import (
    HMAC_SCHEME,
    KeyStore,
    hash_key,
    secret_id,
)
from vitalstation.storage.schema import api_keys
from vitalstation.storage.store import Store

SECRET = b"s" * 43
OTHER = b"o" * 43
ADMIN = "cli:test"


@pytest.fixture
def device(store: Store) -> str:
    import uuid

    device_id = f"DEV-{uuid.uuid4().hex[:8]}"
    store.registry.add_device(device_id, actor=ADMIN, at=T0)
    return device_id


def stored_hash(store: Store, prefix: str) -> str:
    with store.engine.connect() as connection:
        return connection.execute(
            select(api_keys.c.key_hash).where(api_keys.c.prefix == prefix)).scalar_one()


def test_a_new_key_is_stored_as_its_hmac_under_the_station_secret(store, device) -> None:
    keys = KeyStore(store.engine, secret=lambda: SECRET)
    new = keys.create(device, name="hmac", actor=ADMIN, at=T0)
    stored = stored_hash(store, new.prefix)
    assert stored == hash_key(new.key, SECRET)
    assert stored.startswith(f"{HMAC_SCHEME}{secret_id(SECRET)}$")
    assert stored != hash_key(new.key)  # not the unkeyed digest
    assert hashlib.sha256(new.key.encode()).hexdigest() not in stored
    grant = keys.verify(new.key, now=T0)
    assert grant is not None and grant.device_id == device
    assert keys.verify(new.key[:-1] + ("A" if new.key[-1] != "A" else "B"), now=T0) is None


def test_an_old_sha256_hash_verifies_and_is_upgraded_on_its_next_use(store, device) -> None:
    old = KeyStore(store.engine)  # a store before the secret existed
    new = old.create(device, name="old", actor=ADMIN, at=T0)
    assert stored_hash(store, new.prefix) == hash_key(new.key)
    keyed = KeyStore(store.engine, secret=lambda: SECRET)
    assert keyed.verify("vs_" + new.key[3:-1] + "x", now=T0) is None  # a wrong key: no upgrade
    assert stored_hash(store, new.prefix) == hash_key(new.key)
    assert keyed.verify(new.key, now=T0) is not None
    assert stored_hash(store, new.prefix) == hash_key(new.key, SECRET)
    assert keyed.verify(new.key, now=T0) is not None  # and keeps verifying, now keyed
    assert old.verify(new.key, now=T0) is None  # a station without the secret cannot


def test_a_key_hashed_with_another_secret_is_refused_and_said_once(store, device, caplog
                                                                   ) -> None:
    made = KeyStore(store.engine, secret=lambda: SECRET).create(device, name="a", actor=ADMIN,
                                                                at=T0)
    elsewhere = KeyStore(store.engine, secret=lambda: OTHER)
    with caplog.at_level(logging.WARNING, logger="vitalstation.storage.keys"):
        assert elsewhere.verify(made.key, now=T0) is None
        assert elsewhere.verify(made.key, now=T0) is None
    said = [r.getMessage() for r in caplog.records if "key-hashing secret" in r.getMessage()]
    assert len(said) == 1 and secret_id(SECRET) in said[0] and made.prefix in said[0]
    assert SECRET.decode() not in said[0] and OTHER.decode() not in said[0]
    assert stored_hash(store, made.prefix) == hash_key(made.key, SECRET)  # left as it was


def test_without_a_secret_keys_are_sha256_and_still_verify(store, device) -> None:
    keys = KeyStore(store.engine, secret=lambda: None)  # keyring unavailable: None
    new = keys.create(device, name="plain", actor=ADMIN, at=T0)
    assert stored_hash(store, new.prefix).startswith("sha256$")
    assert keys.verify(new.key, now=T0) is not None


def test_every_failure_costs_one_hash_and_gets_the_same_answer(store, device, monkeypatch
                                                               ) -> None:
    keys = KeyStore(store.engine, secret=lambda: SECRET)
    new = keys.create(device, name="t", actor=ADMIN, at=T0)
    foreign = KeyStore(store.engine, secret=lambda: OTHER).create(device, name="f",
                                                                  actor=ADMIN, at=T0)
    odd = keys.create(device, name="odd", actor=ADMIN, at=T0)
    with store.engine.begin() as connection:
        connection.execute(api_keys.update().where(api_keys.c.prefix == odd.prefix)
                           .values(key_hash="md5$0123"))
    calls: list[bytes | None] = []
    real = keys_module.hash_key

    def counting(key: str, secret: bytes | None = None) -> str:
        calls.append(secret)
        return real(key, secret)

    monkeypatch.setattr(keys_module, "hash_key", counting)
    wrong = new.key[:12] + ("A" if new.key[12] != "A" else "B") + new.key[13:]
    unknown = "vs_ZZZZZZZZ" + new.key[11:]
    answers = []
    for presented in (wrong, unknown, foreign.key, odd.key):
        calls.clear()
        answers.append(keys.verify(presented, now=T0))
        assert len(calls) == 1 and calls[0] is not None, presented[:11]  # one keyed hash each
    assert answers == [None, None, None, None]
