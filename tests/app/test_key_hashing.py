"""The station's key-hashing secret: created in the keyring on first need and used by every way
keys are issued (command line, Settings); taken from the environment only by explicit choice;
without one, SHA-256 said plainly. After a run it is nowhere in the data home."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime

import pytest
from keyring.backends import fail
from sqlalchemy import select

from tests.app.support import post_heart_rate
from vitalstation.app.keys import StationSecret, key_store
from vitalstation.app.logging_setup import configure_logging, remove_station_logging
from vitalstation.app.runtime import Runtime
from vitalstation.app.settings_admin import AdminService
from vitalstation.cli import main
from vitalstation.config.secrets import (
    KEY_HASHING_SECRET,
    SecretStore,
    env_variable,
    service_name,
)
from vitalstation.config.settings import load_settings
from vitalstation.storage.keys import HMAC_SCHEME, hash_key, secret_id
from vitalstation.storage.schema import api_keys
from vitalstation.storage.store import Store

ENV_SECRET = "e" * 40


@pytest.fixture
def backend(_memory_keyring):  # noqa: PT019 - the autouse in-memory keyring, to read it
    """The test's in-memory keyring (tests/conftest.py), whose stored values we inspect."""
    return _memory_keyring


def hashes(store: Store) -> dict[str, str]:
    with store.engine.connect() as connection:
        return dict(connection.execute(select(api_keys.c.prefix, api_keys.c.key_hash)).all())


def test_the_secret_is_made_once_in_the_keyring_and_then_read(tmp_path, backend) -> None:
    secrets = SecretStore(service_name(tmp_path))
    first = StationSecret(secrets)()
    assert first is not None and len(first) == 43
    assert base64.urlsafe_b64decode(first + b"=") and len(
        base64.urlsafe_b64decode(first + b"=")) == 32
    assert backend.passwords[service_name(tmp_path), KEY_HASHING_SECRET] == first.decode()
    assert StationSecret(SecretStore(service_name(tmp_path)))() == first  # read, not remade
    assert StationSecret(SecretStore(service_name(tmp_path / "other")))() != first


def test_from_the_environment_only_by_choice_and_only_a_long_enough_one(tmp_path, caplog
                                                                        ) -> None:
    variable = env_variable(KEY_HASHING_SECRET)
    assert variable == "VITALSTATION_SECRET_STATION_KEY_HASHING_SECRET"
    given = StationSecret(SecretStore("s", source="environment", environ={variable: ENV_SECRET}))
    assert given() == ENV_SECRET.encode()
    with caplog.at_level(logging.WARNING, logger="vitalstation.app.keys"):
        missing = StationSecret(SecretStore("s", source="environment", environ={}))
        assert missing() is None
        short = StationSecret(SecretStore("s", source="environment", environ={variable: "x" * 8}))
        assert short() is None
    said = [r.getMessage() for r in caplog.records]
    assert any("hashed with SHA-256" in m and variable in m and "is not set" in m for m in said)
    assert any("shorter than 32 characters" in m for m in said)
    assert not any("x" * 8 in m for m in said)


def test_without_a_keyring_keys_are_sha256_said_plainly_and_retried(tmp_path, caplog) -> None:
    now = [0.0]
    secrets = SecretStore(service_name(tmp_path), backend=fail.Keyring())
    secret = StationSecret(secrets, retry_s=60, monotonic=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="vitalstation.app.keys"):
        assert secret() is None
        assert secret() is None  # not asked again (nor said again) before the retry
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "no OS keyring is available" in said[0]
    assert "hashed with SHA-256, not HMAC-SHA256" in said[0]


def test_the_command_line_creates_and_rotates_keys_under_the_secret(
    tmp_path, store_url, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("VITALSTATION_STORE__URL", store_url)
    home = tmp_path / "home"

    def run(*args: str) -> str:
        assert main(["--home", str(home), *args]) == 0
        return capsys.readouterr().out

    run("device", "add", "BSM_H1")
    created = json.loads(run("device", "key", "create", "BSM_H1", "--name", "bed 1", "--json"))
    settings = load_settings(home)
    secret = SecretStore.for_settings(settings).get(KEY_HASHING_SECRET)
    assert secret is not None  # made by the first key
    store = Store.open(store_url)
    try:
        stored = hashes(store)
        assert stored[created["prefix"]] == hash_key(created["key"], secret.encode())
        assert stored[created["prefix"]].startswith(
            f"{HMAC_SCHEME}{secret_id(secret.encode())}$")
        rotated = json.loads(run("device", "key", "rotate", created["prefix"], "--json"))
        assert hashes(store)[rotated["prefix"]] == hash_key(rotated["key"], secret.encode())
        keys = key_store(store, settings)
        assert keys.verify(rotated["key"], now=datetime.now(UTC)) is not None
        assert keys.verify(created["key"], now=datetime.now(UTC)) is None  # revoked
    finally:
        store.close()


def test_the_key_hashing_secret_lands_nowhere_in_the_data_home(tmp_path, backend) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "vitalstation.toml").write_text("[rest]\nport = 0\n[mqtt]\nenabled = false\n")
    configure_logging(home, verbose=True)
    runtime = Runtime(load_settings(home, {}))
    runtime.start()
    try:
        admin = AdminService(runtime.store, SecretStore.for_settings(runtime.settings),
                             actor="settings:test")
        admin.register_device("DEV-H")
        admin.add_bed("1")
        admin.assign_device("DEV-H", bed_label="1")
        issued = admin.issue_key("DEV-H", name="bedside")
        rest = next(i for i in runtime.inputs if i.name == "rest")
        assert post_heart_rate(rest.url, issued.key, "DEV-H", 71) == 200
        logging.getLogger("vitalstation.test").error(
            "by mistake: %s", backend.passwords[
                service_name(home), KEY_HASHING_SECRET])
        stored = hashes(runtime.store)
    finally:
        runtime.stop()
        remove_station_logging()
    secret = backend.passwords[service_name(home), KEY_HASHING_SECRET]
    raw = base64.urlsafe_b64decode(secret + "=")
    assert all(h.startswith(HMAC_SCHEME) for h in stored.values())  # the secret was used
    assert "by mistake: ***" in (home / "logs" / "vitalstation.log").read_text()
    files = [f for f in home.rglob("*") if f.is_file()]
    assert {f.name for f in files} >= {"vitalstation.toml", "vitalstation.db",
                                        "vitalstation.log"}
    for file in files:
        data = file.read_bytes()
        for form in (secret.encode(), raw, raw.hex().encode(), base64.b64encode(raw)):
            assert form not in data, f"the key-hashing secret found in {file}"
        assert issued.key.encode() not in data, f"the device key found in {file}"
