"""Settings' "Test connection": each check against a real service on loopback, saying exactly
what works or failed (Mosquitto, moto's server, aiosmtpd, PostgreSQL/SQLite, sockets, folders).
"""

from __future__ import annotations

import dataclasses
import socket
import uuid
from collections.abc import Iterator

import boto3
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from moto import server as moto_server

from tests.factories import memory_keyring
from tests.ingest.mosquitto import Mosquitto, add_password, free_port
from vitalstation.app.connection_tests import run_check
from vitalstation.config.secrets import SecretStore, service_name
from vitalstation.config.settings import Settings, load_settings
from vitalstation.storage.store import Store


@pytest.fixture
def secrets(tmp_path) -> SecretStore:
    return SecretStore(service_name(tmp_path), backend=memory_keyring())


def settings_with(tmp_path, **sections) -> Settings:
    settings = Settings(home=tmp_path)
    for name, values in sections.items():
        settings = dataclasses.replace(
            settings, **{name: dataclasses.replace(getattr(settings, name), **values)}
        )
    return settings


# --- MQTT ------------------------------------------------------------------------------------


def test_mqtt_check_connects_with_the_keyring_password_and_says_what_failed(
    tmp_path, secrets
) -> None:
    passwords = tmp_path / "passwd"
    add_password(passwords, "station", "broker-pw-9")
    broker = Mosquitto(tmp_path / "broker", allow_anonymous=False,
                       password_file=passwords).start()
    try:
        settings = settings_with(tmp_path, mqtt={"url": f"mqtt://127.0.0.1:{broker.port}",
                                                 "username": "station"})
        secrets.set("mqtt.password", "broker-pw-9")
        result = run_check("mqtt", settings, secrets)
        assert result.ok, result.detail
        assert result.detail == f"connected to mqtt://127.0.0.1:{broker.port} as 'station'"

        secrets.set("mqtt.password", "wrong-pw-1")
        result = run_check("mqtt", settings, secrets)
        assert not result.ok
        assert "refused our credentials (not authorised)" in result.detail or (
            "refused our credentials (bad user name or password)" in result.detail)
        assert "wrong-pw-1" not in result.detail
    finally:
        broker.stop()
    result = run_check("mqtt", settings, secrets)
    assert not result.ok
    assert f"cannot connect to mqtt://127.0.0.1:{broker.port}: Connection refused" in result.detail
    no_keyring = SecretStore(service_name(tmp_path), backend=__import__(
        "keyring.backends.fail", fromlist=["Keyring"]).Keyring())
    result = run_check("mqtt", settings, no_keyring)
    assert not result.ok and "no OS keyring is available" in result.detail


# --- AWS on moto's server ------------------------------------------------------------------


@pytest.fixture
def moto(monkeypatch) -> Iterator[str]:
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_EC2_METADATA_DISABLED", "true")):
        monkeypatch.setenv(name, value)
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_kinesis_and_dynamodb_checks_find_the_stream_and_the_table(tmp_path, secrets,
                                                                    moto) -> None:
    stream, table = f"S{uuid.uuid4().hex[:8]}", f"T{uuid.uuid4().hex[:8]}"
    settings = settings_with(
        tmp_path,
        kinesis={"stream": stream, "endpoint_url": moto},
        dynamodb={"table": table, "endpoint_url": moto},
    )
    result = run_check("kinesis", settings, secrets)
    assert not result.ok
    assert f"Kinesis stream {stream} at {moto}" in result.detail and "not found" in result.detail
    result = run_check("dynamodb", settings, secrets)
    assert (result.ok, result.detail) == (False, f"no table {table} at {moto}")

    boto3.client("kinesis", region_name="us-east-1", endpoint_url=moto).create_stream(
        StreamName=stream, ShardCount=2)
    boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto).create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "deviceid", "KeyType": "HASH"},
                   {"AttributeName": "timestamp", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "deviceid", "AttributeType": "S"},
                              {"AttributeName": "timestamp", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    secrets.set("aws.access_key_id", "AKIAKEYRING")
    secrets.set("aws.secret_access_key", "keyring-secret")
    result = run_check("kinesis", settings, secrets)
    assert result.ok and result.detail.startswith(f"stream {stream}: ")
    assert "2 open shards" in result.detail
    result = run_check("dynamodb", settings, secrets)
    assert (result.ok, result.detail) == (True, f"table {table}: ACTIVE (key deviceid, timestamp)")

    secrets.delete("aws.secret_access_key")  # half a key pair is a mistake, said so
    result = run_check("kinesis", settings, secrets)
    assert not result.ok and "AWS needs both" in result.detail


# --- REST, folders, store --------------------------------------------------------------------


def test_rest_check_says_whether_the_port_is_free(tmp_path, secrets) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_check("rest", settings_with(tmp_path, rest={"port": port}), secrets)
        assert not result.ok
        assert result.detail == f"cannot listen on 127.0.0.1:{port}: Address already in use"
    result = run_check("rest", settings_with(tmp_path, rest={"port": port}), secrets)
    assert (result.ok, result.detail) == (
        True, f"127.0.0.1:{port} is free: the receiver can listen there")
    result = run_check("rest", settings_with(tmp_path, rest={"tls_cert": "c.pem",
                                                             "tls_key": "k.pem"}), secrets)
    assert (result.ok, result.detail) == (
        False, f"rest.tls_cert: file not found: {tmp_path / 'c.pem'}")
    (tmp_path / "c.pem").write_text("not a certificate")
    (tmp_path / "k.pem").write_text("not a key")
    result = run_check("rest", settings_with(tmp_path, rest={"tls_cert": "c.pem",
                                                             "tls_key": "k.pem"}), secrets)
    assert not result.ok
    assert result.detail.startswith("cannot load the TLS certificate and key: ")


def test_filedrop_check_finds_a_file_in_the_way(tmp_path, secrets) -> None:
    result = run_check("filedrop", Settings(home=tmp_path), secrets)
    assert result.ok and "(created at start)" in result.detail
    (tmp_path / "inbox").mkdir()
    (tmp_path / "archive").write_text("not a folder")
    result = run_check("filedrop", Settings(home=tmp_path), secrets)
    assert (result.ok, result.detail) == (
        False, f"filedrop.archive: {tmp_path / 'archive'} is a file, not a folder")


def test_store_check_connects_without_creating_anything(tmp_path, secrets, store_url) -> None:
    settings = load_settings(tmp_path, {"VITALSTATION_STORE__URL": store_url})
    Store.open(store_url).close()
    result = run_check("store", settings, secrets)
    assert result.ok, result.detail
    assert "connected to" in result.detail and "VitalStation schema" in result.detail
    missing = Settings(home=tmp_path / "new-home")
    result = run_check("store", missing, secrets)
    assert result.ok and "does not exist yet" in result.detail
    assert not (tmp_path / "new-home").exists()
    closed = settings_with(tmp_path, store={
        "url": f"postgresql+psycopg://ward@127.0.0.1:{free_port()}/ward"})
    result = run_check("store", closed, secrets)
    assert not result.ok and result.detail.startswith(
        "cannot connect to postgresql+psycopg://ward@127.0.0.1:")


# --- SMTP ------------------------------------------------------------------------------------


class _Accept:
    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[int]:
    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login, auth_data.password) == (b"alarms", b"smtp-pw-7")
        return AuthResult(success=ok, handled=False)

    port = free_port()
    controller = Controller(_Accept(), hostname="127.0.0.1", port=port,
                            authenticator=authenticate, auth_require_tls=False)
    controller.start()
    yield port
    controller.stop()


def test_smtp_check_logs_in_with_the_keyring_password(tmp_path, secrets, smtp) -> None:
    settings = settings_with(tmp_path, notifications={
        "smtp_host": "127.0.0.1", "smtp_port": smtp, "smtp_security": "none",
        "smtp_username": "alarms"})
    result = run_check("smtp", settings, secrets)
    assert (result.ok, result.detail) == (
        False, "SMTP user alarms is set but the secret smtp.password is not (set the SMTP "
        "password)")
    secrets.set("smtp.password", "smtp-pw-7")
    result = run_check("smtp", settings, secrets)
    assert (result.ok, result.detail) == (
        True, f"127.0.0.1:{smtp} answered (none, logged in as alarms)")
    secrets.set("smtp.password", "smtp-wrong-8")
    result = run_check("smtp", settings, secrets)
    assert not result.ok and f"127.0.0.1:{smtp} refused the login of alarms: 535" in result.detail
    assert "smtp-wrong-8" not in result.detail
    starttls = dataclasses.replace(settings, notifications=dataclasses.replace(
        settings.notifications, smtp_security="starttls"))
    result = run_check("smtp", starttls, secrets)
    assert not result.ok and "smtp_security" in result.detail
    assert not run_check("smtp", Settings(home=tmp_path), secrets).ok


def test_the_database_password_comes_from_the_keyring_never_from_the_file(
    tmp_path, secrets, store_url
) -> None:
    from keyring.backends import fail

    from vitalstation.app.credentials import database_url

    url = "postgresql+psycopg://ward@db.example:5432/ward"
    settings = settings_with(tmp_path, store={"url": url})
    assert database_url(settings, secrets) == url  # no secret: libpq's PGPASSWORD/.pgpass
    secrets.set("store.password", "p@ss:w/rd 1")
    assert database_url(settings, secrets) == (
        "postgresql+psycopg://ward:p%40ss%3Aw%2Frd%201@db.example:5432/ward")
    no_keyring = SecretStore(service_name(tmp_path), backend=fail.Keyring())
    assert database_url(settings, no_keyring) == url
    sqlite = Settings(home=tmp_path)
    assert database_url(sqlite, secrets) == sqlite.store_url
    if store_url.startswith("postgresql"):  # the local server trusts: any password goes
        with_user = store_url.replace("://postgres@", "://postgres@", 1)
        result = run_check("store", settings_with(tmp_path, store={"url": with_user}), secrets)
        assert result.ok, result.detail
        assert "p@ss" not in result.detail and "***" in result.detail
