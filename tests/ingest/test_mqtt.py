"""The MQTT input against a private Mosquitto, the real pipeline and the real store.

Each broker is started by the test on a free port (never 1883). What is stored is read back
from the database; what the broker was acknowledged is shown by what it redelivers.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from tests.factories import GatedWriter
from tests.ingest.mosquitto import (
    MOSQUITTO_PUB,
    Mosquitto,
    add_password,
    free_port,
    wait_until,
)
from vitalstation.config.settings import load_settings
from vitalstation.ingest import mqtt as mqtt_module
from vitalstation.ingest.base import InputState
from vitalstation.ingest.mqtt import (
    KEY_PASSPHRASE_ENV,
    PASSWORD_ENV,
    MqttInput,
    MqttOptions,
    default_client_id,
    station_id,
    status_topic,
)
from vitalstation.pipeline.core import Pipeline
from vitalstation.storage.schema import dead_letters
from vitalstation.storage.store import Store

TOPIC = "healthcare/monitors/BSM_G101"
SEED_MESSAGE = (
    b'{"deviceid": "BSM_G101", "timestamp": "2025-11-08 10:23:45.123456", '
    b'"datatype": "HeartRate", "value": 85}'
)


def bedside(device: str = "BSM_G101", second: int = 0, value: float = 85,
            datatype: str = "HeartRate", timestamp: str | None = None) -> bytes:
    """A one-vital message; ``second`` makes it a distinct reading."""
    stamp = timestamp or f"2025-11-08 10:{second // 60 % 60:02d}:{second % 60:02d}.000001"
    if second >= 3600:
        stamp = f"2025-11-08 {10 + second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
    return json.dumps(
        {"deviceid": device, "timestamp": stamp, "datatype": datatype, "value": value}
    ).encode()


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path / "mosquitto").start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """SQLite only: for the connection tests, where the backend does not matter."""
    opened = Store.open(f"sqlite:///{tmp_path / 'mqtt.db'}")
    yield opened
    opened.close()


def _pipeline(store_or_writer) -> Iterator[Pipeline]:
    writer = getattr(store_or_writer, "writer", store_or_writer)
    pipeline = Pipeline(writer)
    pipeline.start()
    yield pipeline
    pipeline.stop()


@pytest.fixture
def pipeline(store: Store) -> Iterator[Pipeline]:
    yield from _pipeline(store)


@pytest.fixture
def sqlite_pipeline(sqlite_store: Store) -> Iterator[Pipeline]:
    yield from _pipeline(sqlite_store)


@pytest.fixture
def inputs() -> Iterator[list[MqttInput]]:
    """Every input a test starts is stopped at the end, even when the test fails."""
    started: list[MqttInput] = []
    yield started
    for input_ in started:
        input_.stop(2)


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waits meant for a ward, shortened for tests."""
    monkeypatch.setattr(mqtt_module, "STOP_DRAIN_S", 0.5)
    monkeypatch.setattr(mqtt_module, "RETRY_DELAYS_S", (0.05, 0.1))


def start_input(
    inputs: list[MqttInput], pipeline: Pipeline, port: int, *, scheme: str = "mqtt",
    wait: bool = True, **options,
) -> MqttInput:
    defaults = {
        "url": f"{scheme}://127.0.0.1:{port}",
        "client_id": "station-under-test",
        "station_name": "Test Ward",
    }
    input_ = MqttInput(MqttOptions(**{**defaults, **options}), pipeline)
    input_.start()
    inputs.append(input_)
    if wait:
        wait_until(lambda: input_.health().state is InputState.UP, 10,
                   lambda: f"the input to connect: {input_.health()}")
    return input_


class Client:
    """A paho client for the test's side: publishes (QoS 1, acknowledged) and records messages."""

    def __init__(self, port: int, client_id: str = "", *, clean: bool = True,
                 tls: dict | None = None, subscribe: str | None = None) -> None:
        self.messages: list[paho.MQTTMessage] = []
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean
        )
        if tls:
            self.client.tls_set(**tls)
        self._connected = threading.Event()
        self._subscribe = subscribe

        def on_connect(client, userdata, flags, reason, properties):
            if self._subscribe:
                client.subscribe(self._subscribe, 1)
            self._connected.set()

        self.client.on_connect = on_connect
        self.client.on_disconnect = lambda *args: self._connected.clear()
        self.client.on_message = lambda c, u, m: self.messages.append(m)
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        assert self._connected.wait(10), "the test client did not connect"

    def wait_connected(self, timeout: float = 15) -> None:
        assert self._connected.wait(timeout), "the test client did not reconnect"

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(10)
        assert info.is_published()

    def texts(self) -> list[str]:
        return [m.payload.decode() for m in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


def publisher(clients: list[Client], port: int, **kwargs) -> Client:
    clients.append(Client(port, **kwargs))
    return clients[-1]


def records(store: Store, device_id: str | None = None):
    return list(store.queries.readings(device_id=device_id))


def dead(store: Store) -> list[tuple[str, str, str]]:
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(dead_letters.c.source_ref, dead_letters.c.reason, dead_letters.c.excerpt)
            .order_by(dead_letters.c.id)
        )
        return [tuple(row) for row in rows]


def delivered_marker(inputs, pipeline, store, clients, port, client_id) -> MqttInput:
    """Reconnect as ``client_id`` and return once a fresh marker message is stored.

    The broker delivers what it still owes a session before anything newer, so when the marker
    is stored every redelivery has arrived: "nothing came back" is shown without a fixed sleep.
    """
    input_ = start_input(inputs, pipeline, port, client_id=client_id)
    publisher(clients, port).publish(TOPIC, bedside("MARKER"))
    wait_until(lambda: records(store, "MARKER"), 10, "the marker")
    return input_


# --- payloads ----------------------------------------------------------------------------


def test_the_seed_message_is_stored_once_with_its_exact_time(
    broker, pipeline, store, inputs, clients
) -> None:
    input_ = start_input(inputs, pipeline, broker.port)
    assert input_.health().detail == f"connected to mqtt://127.0.0.1:{broker.port}, 1 topic filter"
    device = publisher(clients, broker.port)
    device.publish(TOPIC, SEED_MESSAGE)
    device.publish(TOPIC, bedside(datatype="Temperature", value=101.5, second=5))
    device.publish(TOPIC, SEED_MESSAGE)  # the same reading again: deduplicated
    wait_until(lambda: len(records(store)) == 2 and pipeline.stats().duplicates == 1)
    by_vital = {record.vital: record for record in records(store)}
    heart, temperature = by_vital["heart_rate"], by_vital["temperature"]
    assert heart.device_id == "BSM_G101" and heart.vital == "heart_rate"
    assert heart.value == 85 and heart.input == "mqtt"
    assert heart.measured_at.replace(tzinfo=UTC) == datetime(
        2025, 11, 8, 10, 23, 45, 123456, tzinfo=UTC
    )
    assert (temperature.original_value, temperature.original_unit) == (101.5, "[degF]")
    assert temperature.value == pytest.approx((101.5 - 32) * 5 / 9)
    health = input_.health()
    assert (health.received, health.rejected) == (3, 0)


def test_mosquitto_pub_messages_are_stored_once_each(
    broker, sqlite_pipeline, sqlite_store, inputs
) -> None:
    start_input(inputs, sqlite_pipeline, broker.port)
    for second in range(3):
        subprocess.run(
            [MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
             "-t", "healthcare/monitors/bed-3", "-m", bedside("BED3", second).decode()],
            check=True, timeout=10,
        )
    wait_until(lambda: len(records(sqlite_store, "BED3")) == 3)
    assert sqlite_pipeline.stats().stored == 3


def test_an_inhealth_batch_is_stored_and_its_bad_readings_dead_lettered(
    broker, sqlite_pipeline, sqlite_store, inputs, clients
) -> None:
    start_input(inputs, sqlite_pipeline, broker.port)
    batch = {
        "device_id": "IH-1",
        "readings": [
            {"timestamp": "2025-11-08T10:00:00Z", "heart_rate": 70, "oxygen_saturation": 97},
            {"timestamp": "2025-11-08T10:01:00Z", "heart_rate": "70"},
            {"timestamp": "2025-11-08T10:02:00Z", "temperature": 37, "temperature_unit": "C"},
        ],
    }
    publisher(clients, broker.port).publish("healthcare/monitors/IH-1", json.dumps(batch))
    wait_until(lambda: len(records(sqlite_store, "IH-1")) == 3 and dead(sqlite_store))
    ((source, reason, _),) = dead(sqlite_store)
    assert source == "healthcare/monitors/IH-1"
    assert reason.startswith("1 of 3 readings invalid: reading 1:")
    assert "heart_rate: must be a number, not a string" in reason


def test_malformed_payloads_are_dead_lettered_and_the_input_carries_on(
    broker, pipeline, store, inputs, clients
) -> None:
    input_ = start_input(inputs, pipeline, broker.port, max_payload_bytes=1024)
    corpus: list[tuple[bytes, str]] = [
        (b"\xff\xfe\x00\x13binary", "not valid UTF-8"),
        (b"hello, not json", "invalid JSON"),
        (b"", "empty body"),
        (b"[1, 2, 3]", "expected a JSON object"),
        (b'{"deviceid": "X", "timestamp": "2025-11-08 10:00:00", "datatype": "HeartRate", '
         b'"value": NaN}', "NaN is not valid JSON"),
        (bedside().replace(b"85", b'"85"'), "value: must be a number, not a string"),
        (bedside(datatype="BloodMagic"), "unknown datatype 'BloodMagic'"),
        (b'{"deviceid": "X", "datatype": "HeartRate", "value": 80}', "timestamp: required"),
        (b'{"deviceid": "X", "timestamp": "2025-11-08 10:00:00", "datatype": "HeartRate", '
         b'"value": 80, "pad": "' + b"x" * 2000 + b'"}', "larger than mqtt.max_payload_bytes"),
        (b'{"hello": "world"}', "no vital sign"),
    ]
    device = publisher(clients, broker.port)
    for payload, _ in corpus:
        device.publish(TOPIC, payload)
    device.publish(TOPIC, bedside("AFTER", 1))
    wait_until(lambda: records(store, "AFTER") and len(dead(store)) == len(corpus), 10,
               lambda: f"dead letters: {dead(store)}")
    letters = dead(store)
    for (payload, expected), (source, reason, excerpt) in zip(corpus, letters, strict=True):
        assert expected in reason, (payload[:40], reason)
        assert source == TOPIC
        assert len(excerpt) <= mqtt_module.EXCERPT_CHARS
    assert letters[1][2] == "hello, not json"
    health = input_.health()
    assert (health.received, health.rejected) == (len(corpus) + 1, len(corpus))
    assert health.state is InputState.UP
    # Every one was acknowledged: nothing comes back on a new connection.
    inputs.pop().stop(2)
    again = delivered_marker(inputs, pipeline, store, clients, broker.port, "station-under-test")
    assert again.health().received == 1


def test_the_device_id_can_come_from_the_topic(
    broker, sqlite_pipeline, sqlite_store, inputs, clients
) -> None:
    start_input(inputs, sqlite_pipeline, broker.port, device_id_from_topic=True)
    publisher(clients, broker.port).publish("healthcare/monitors/BED-7", SEED_MESSAGE)
    wait_until(lambda: records(sqlite_store, "BED-7"))
    assert records(sqlite_store, "BSM_G101") == []


def test_timestamps_without_offset_are_read_in_the_configured_zone(
    broker, sqlite_pipeline, sqlite_store, inputs, clients
) -> None:
    start_input(inputs, sqlite_pipeline, broker.port, timestamp_zone="Europe/Paris")
    device = publisher(clients, broker.port)
    device.publish(TOPIC, bedside("PARIS", timestamp="2025-11-08 10:23:45"))  # CET, +01:00
    device.publish(TOPIC, bedside("PARIS", timestamp="2025-07-01 10:00:00"))  # CEST, +02:00
    device.publish(TOPIC, bedside("PARIS", timestamp="2025-07-01T10:00:00+00:00"))  # has offset
    wait_until(lambda: len(records(sqlite_store, "PARIS")) == 3)
    times = sorted(r.measured_at.replace(tzinfo=UTC) for r in records(sqlite_store, "PARIS"))
    assert times == [
        datetime(2025, 7, 1, 8, 0, tzinfo=UTC),
        datetime(2025, 7, 1, 10, 0, tzinfo=UTC),
        datetime(2025, 11, 8, 9, 23, 45, tzinfo=UTC),
    ]


# --- no loss -----------------------------------------------------------------------------


def test_what_is_published_while_the_station_is_away_arrives_when_it_returns(
    broker, pipeline, store, inputs, clients
) -> None:
    first = start_input(inputs, pipeline, broker.port)
    inputs.pop()
    first.stop(2)
    device = publisher(clients, broker.port)
    for second in range(100):
        device.publish(TOPIC, bedside("AWAY", second))
    second_run = start_input(inputs, pipeline, broker.port)
    wait_until(lambda: len(records(store, "AWAY")) == 100, 30,  # 15 s failed once at load 4
               lambda: f"100 readings, got {len(records(store, 'AWAY'))}")
    stats = pipeline.stats()
    assert (stats.stored, stats.duplicates) == (100, 0)
    assert second_run.health().received == 100


def test_mqtt5_keeps_the_session_too(
    broker, sqlite_pipeline, sqlite_store, inputs, clients
) -> None:
    start_input(inputs, sqlite_pipeline, broker.port, protocol="5")
    inputs.pop().stop(2)
    device = publisher(clients, broker.port)
    for second in range(10):
        device.publish(TOPIC, bedside("V5", second))
    start_input(inputs, sqlite_pipeline, broker.port, protocol="5")
    wait_until(lambda: len(records(sqlite_store, "V5")) == 10)




def test_the_puback_waits_for_the_commit(broker, store, inputs, clients) -> None:
    writer = GatedWriter(store)
    pipeline = Pipeline(writer)
    pipeline.start()
    try:
        first = start_input(inputs, pipeline, broker.port)
        publisher(clients, broker.port).publish(TOPIC, SEED_MESSAGE)
        assert writer.entered.wait(10)
        # Stop while the write is held: the commit has not happened, so no PUBACK may go out.
        inputs.pop()
        first.stop(2)
        writer.gate.set()
        assert writer.committed.wait(10)
        assert len(records(store)) == 1
        # The broker redelivers it: it never got the acknowledgement. Stored once all the same.
        second = start_input(inputs, pipeline, broker.port)
        wait_until(lambda: pipeline.stats().duplicates == 1)
        assert second.health().received == 1
        assert len(records(store)) == 1
        # This time it was acknowledged (after the duplicate's "commit"): nothing comes back.
        inputs.pop().stop(2)
        third = delivered_marker(inputs, pipeline, store, clients, broker.port,
                                 "station-under-test")
        assert third.health().received == 1
    finally:
        pipeline.stop()


class FlakyWriter:
    """Fails the first ``failures`` writes of readings, as a database that is down would."""

    def __init__(self, store: Store, failures: int) -> None:
        self._store = store
        self.failures = failures
        self.calls = 0

    def write_readings(self, readings, now):
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("database is down")
        return self._store.writer.write_readings(readings, now)

    def __getattr__(self, name):
        return getattr(self._store.writer, name)


def test_a_failed_store_is_retried_and_acknowledged_only_once_stored(
    broker, sqlite_store, inputs, clients
) -> None:
    pipeline = Pipeline(FlakyWriter(sqlite_store, failures=3), retry_delays_s=())
    pipeline.start()
    try:
        input_ = start_input(inputs, pipeline, broker.port)
        publisher(clients, broker.port).publish(TOPIC, SEED_MESSAGE)
        wait_until(lambda: records(sqlite_store), 10)
        # The counters are updated just after the commit the rows became visible with.
        wait_until(lambda: pipeline.stats().stored, 5)
        stats = pipeline.stats()
        assert (stats.failed, stats.stored) == (3, 1)
        assert input_.health().received == 1  # retried from memory, not redelivered
        inputs.pop().stop(2)
        again = delivered_marker(inputs, pipeline, sqlite_store, clients, broker.port,
                                 "station-under-test")
        assert again.health().received == 1  # the PUBACK went out once it was stored
    finally:
        pipeline.stop()


class DeadLettersDown:
    """Fails the first ``failures`` dead-letter writes, as a database that is down would."""

    def __init__(self, store: Store, failures: int) -> None:
        self._store = store
        self.failures = failures
        self.calls = 0

    def write_dead_letter(self, *args):
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("database is down")
        return self._store.writer.write_dead_letter(*args)

    def __getattr__(self, name):
        return getattr(self._store.writer, name)


def test_a_dead_letter_the_database_refused_is_kept_and_acknowledged_only_once_stored(
    broker, sqlite_store, inputs, clients
) -> None:
    writer = DeadLettersDown(sqlite_store, failures=4)
    pipeline = Pipeline(writer, retry_delays_s=())
    pipeline.start()
    try:
        input_ = start_input(inputs, pipeline, broker.port)
        device = publisher(clients, broker.port)
        device.publish(TOPIC, b"hello, not json")
        batch = {"device_id": "IH-2", "readings": [
            {"timestamp": "2025-11-08T10:00:00Z", "heart_rate": 70},
            {"timestamp": "2025-11-08T10:01:00Z", "heart_rate": "70"},
        ]}
        device.publish("healthcare/monitors/IH-2", json.dumps(batch))
        wait_until(lambda: len(dead(sqlite_store)) == 2, 10,
                   lambda: f"both dead letters, at last: {dead(sqlite_store)}")
        assert writer.calls > 4
        assert len(records(sqlite_store, "IH-2")) == 1
        wait_until(lambda: "waiting" not in input_.health().detail)
        assert input_.health().received == 2  # retried from memory, not redelivered
        inputs.pop().stop(2)
        again = delivered_marker(inputs, pipeline, sqlite_store, clients, broker.port,
                                 "station-under-test")
        assert again.health().received == 1  # both PUBACKs went out once the letters were in
    finally:
        pipeline.stop()
    assert len(dead(sqlite_store)) == 2  # never stored twice


def test_a_full_pipeline_holds_the_network_thread_then_keeps_the_message(
    broker, sqlite_store, inputs, clients, monkeypatch
) -> None:
    monkeypatch.setattr(mqtt_module, "BUSY_BLOCK_S", 0.1)
    writer = GatedWriter(sqlite_store)
    pipeline = Pipeline(writer, capacity=1)
    pipeline.start()
    try:
        input_ = start_input(inputs, pipeline, broker.port)
        device = publisher(clients, broker.port)
        for second in range(5):
            device.publish(TOPIC, bedside("BUSY", second))
        wait_until(lambda: "waiting to be stored" in input_.health().detail, 10,
                   lambda: f"a held message: {input_.health()}")
        assert "queue is full" in input_.health().detail
        writer.gate.set()
        wait_until(lambda: len(records(sqlite_store, "BUSY")) == 5, 10)
        wait_until(lambda: "waiting" not in input_.health().detail)
    finally:
        writer.gate.set()
        pipeline.stop()


def test_a_broker_restart_mid_stream_loses_nothing(tmp_path, sqlite_pipeline, sqlite_store,
                                                   inputs) -> None:
    broker = Mosquitto(tmp_path / "restart").start()
    device: Client | None = None
    try:
        input_ = start_input(inputs, sqlite_pipeline, broker.port)
        device = Client(broker.port, "bedside-7", clean=False)
        for second in range(50):
            device.publish(TOPIC, bedside("MID", second))
        broker.stop()  # SIGTERM: Mosquitto saves our session
        wait_until(lambda: input_.health().state is not InputState.UP, 5)
        wait_until(lambda: not device._connected.is_set(), 5)
        broker.start()
        device.wait_connected()
        # The device is back before the station (whose back-off starts at 1 s): these wait in
        # the station's session.
        for second in range(50, 100):
            device.publish(TOPIC, bedside("MID", second))
        wait_until(lambda: len(records(sqlite_store, "MID")) == 100, 20,
                   lambda: f"100 readings, got {len(records(sqlite_store, 'MID'))}")
        assert input_.health().state is InputState.UP
        assert input_.connections == 2
        assert sqlite_pipeline.stats().stored == 100
    finally:
        if device is not None:
            device.close()
        broker.stop()


def test_after_a_restart_that_lost_the_session_the_input_subscribes_again(
    tmp_path, sqlite_pipeline, sqlite_store, inputs, clients
) -> None:
    broker = Mosquitto(tmp_path / "amnesia").start()
    try:
        input_ = start_input(inputs, sqlite_pipeline, broker.port)
        broker.kill()  # nothing saved: the broker forgets our session and subscriptions
        for item in broker.persistence_dir.iterdir():
            item.unlink()
        broker.start()
        wait_until(lambda: input_.connections == 2, 10)
        publisher(clients, broker.port).publish(TOPIC, bedside("AGAIN"))
        wait_until(lambda: records(sqlite_store, "AGAIN"), 10)
    finally:
        broker.stop()


# --- connections -------------------------------------------------------------------------


def test_bad_credentials_are_reported_once_without_a_retry_storm(
    tmp_path, sqlite_pipeline, inputs, caplog
) -> None:
    passwords = tmp_path / "passwords"
    add_password(passwords, "station", "right")
    broker = Mosquitto(tmp_path / "auth", allow_anonymous=False, password_file=passwords).start()
    try:
        input_ = start_input(inputs, sqlite_pipeline, broker.port, wait=False,
                             username="station", password="wrong")
        wait_until(lambda: input_.health().state is InputState.DOWN, 10)
        health = input_.health()
        assert "broker refused our credentials (not authorised)" in health.detail
        assert "retrying every 5 min" in health.detail
        wait_until(lambda: broker.connection_attempts() == 1, 5)
        time.sleep(2.5)  # what is measured here is that nothing happens: no condition to poll
        assert broker.connection_attempts() == 1
        assert input_.health().state is InputState.DOWN
        errors = [r for r in caplog.records if "refused our credentials" in r.getMessage()]
        assert len(errors) == 1
        good = start_input(inputs, sqlite_pipeline, broker.port, client_id="good",
                           username="station", password="right")
        assert good.health().state is InputState.UP
    finally:
        broker.stop()


def test_an_unreachable_broker_is_down_with_the_reason(sqlite_pipeline, inputs) -> None:
    input_ = start_input(inputs, sqlite_pipeline, free_port(), wait=False)
    wait_until(lambda: input_.health().state is InputState.DOWN, 10)
    assert "cannot connect to mqtt://127.0.0.1:" in input_.health().detail
    assert "Connection refused" in input_.health().detail


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate whose key
    is protected by a passphrase (AWS IoT Core's mutual TLS, in miniature)."""
    folder = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=Test CA", "-keyout", "ca.key", "-out", "ca.crt", cwd=folder)
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, subject in (("server", "/CN=127.0.0.1"), ("client", "/CN=ward5-station")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", "san.ext",
                 "-out", f"{name}.crt", cwd=folder)
    _openssl("rsa", "-aes256", "-in", "client.key", "-out", "client-locked.key",
             "-passout", "pass:s3cret", cwd=folder)
    return folder


def test_mutual_tls_with_a_client_certificate(tmp_path, pki, sqlite_pipeline, sqlite_store,
                                              inputs, clients) -> None:
    broker = Mosquitto(
        tmp_path / "tls",
        listener_lines=[f"cafile {pki / 'ca.crt'}", f"certfile {pki / 'server.crt'}",
                        f"keyfile {pki / 'server.key'}", "require_certificate true"],
    ).start()
    try:
        input_ = start_input(
            inputs, sqlite_pipeline, broker.port, scheme="mqtts", tls_ca=pki / "ca.crt",
            tls_cert=pki / "client.crt", tls_key=pki / "client-locked.key",
            key_passphrase="s3cret",
        )
        assert input_.health().detail.startswith(f"connected to mqtts://127.0.0.1:{broker.port}")
        tls = {"ca_certs": str(pki / "ca.crt"), "certfile": str(pki / "client.crt"),
               "keyfile": str(pki / "client.key")}
        publisher(clients, broker.port, tls=tls).publish(TOPIC, bedside("TLS"))
        wait_until(lambda: records(sqlite_store, "TLS"))
        # Without the client certificate the broker refuses the handshake: DOWN with why.
        bare = start_input(inputs, sqlite_pipeline, broker.port, scheme="mqtts", wait=False,
                           client_id="no-cert", tls_ca=pki / "ca.crt")
        wait_until(lambda: bare.health().state is InputState.DOWN, 10)
        assert "cannot connect to mqtts://" in bare.health().detail
    finally:
        broker.stop()


def test_tls_files_that_cannot_be_loaded_stop_the_start_with_the_reason(
    pki, sqlite_pipeline
) -> None:
    options = MqttOptions(url="mqtts://127.0.0.1:8883", tls_ca=pki / "ca.crt",
                          tls_cert=pki / "client.crt", tls_key=pki / "client-locked.key")
    with pytest.raises(ValueError, match=KEY_PASSPHRASE_ENV):
        MqttInput(options, sqlite_pipeline).start()
    plain = dataclasses.replace(options, url="mqtt://127.0.0.1:1883")
    with pytest.raises(ValueError, match="use mqtts://"):
        MqttInput(plain, sqlite_pipeline).start()
    with pytest.raises(ValueError, match="not found"):
        MqttInput(dataclasses.replace(options, tls_ca=pki / "missing.crt"),
                  sqlite_pipeline).start()


def test_the_station_publishes_online_and_its_will_says_offline(
    broker, sqlite_pipeline, inputs, clients
) -> None:
    topic = status_topic("Test Ward")
    assert topic == "vitalstation/test-ward/status"
    input_ = start_input(inputs, sqlite_pipeline, broker.port)
    observer = publisher(clients, broker.port, subscribe=topic)
    wait_until(lambda: observer.texts() == ["online"], 5, lambda: str(observer.texts()))
    assert observer.messages[0].retain  # a newcomer learns the state at once
    # The station's connection dies without a DISCONNECT: the broker sends its last will.
    input_._client.socket().shutdown(socket.SHUT_RDWR)
    wait_until(lambda: observer.texts()[:2] == ["online", "offline"], 10,
               lambda: str(observer.texts()))
    wait_until(lambda: observer.texts()[-1:] == ["online"] and input_.connections == 2, 10)
    # A clean stop says goodbye itself (a DISCONNECT suppresses the will).
    inputs.pop().stop(2)
    wait_until(lambda: observer.texts()[-1:] == ["offline"], 5, lambda: str(observer.texts()))


def test_its_own_status_under_a_catch_all_filter_is_not_a_dead_letter(
    broker, sqlite_pipeline, sqlite_store, inputs
) -> None:
    input_ = start_input(inputs, sqlite_pipeline, broker.port, topics=("#",))
    wait_until(lambda: input_.health().received >= 1)
    assert input_.health().rejected == 0
    assert dead(sqlite_store) == []


# --- settings ----------------------------------------------------------------------------


def test_station_id_and_client_id() -> None:
    assert station_id("Ward 5 North") == "ward-5-north"
    assert station_id("Réa / Unité #2+") == "rea-unite-2"
    assert station_id("###") == "station"
    home = Path("/var/lib/vitalstation")
    client_id = default_client_id("Ward 5 North", home)
    assert client_id == default_client_id("Ward 5 North", home)  # the same at every start
    assert client_id.startswith("vitalstation-ward-5-north-")
    assert client_id != default_client_id("Ward 5 North", Path("/srv/other"))


def test_options_come_from_settings_and_secrets_from_the_environment(tmp_path) -> None:
    (tmp_path / "vitalstation.toml").write_text(
        '[station]\nname = "Ward 5 North"\n'
        '[mqtt]\nurl = "mqtts://iot.example:8883"\nusername = "station"\n'
        'tls_ca = "certs/ca.pem"\ntls_cert = "certs/c.pem"\ntls_key = "/etc/k.pem"\n'
        '[secrets]\nsource = "environment"\n'
    )
    settings = load_settings(tmp_path, {})
    options = MqttOptions.from_settings(
        settings, {PASSWORD_ENV: "pw", KEY_PASSPHRASE_ENV: "phrase"}
    )
    assert (options.username, options.password, options.key_passphrase) == (
        "station", "pw", "phrase"
    )
    assert options.tls_ca == tmp_path / "certs/ca.pem"
    assert options.tls_key == Path("/etc/k.pem")
    assert options.client_id == default_client_id("Ward 5 North", tmp_path)
    assert "pw" not in repr(options) and "phrase" not in repr(options)
    assert MqttOptions.from_settings(settings, {}).password is None


def test_a_url_with_a_password_is_refused(sqlite_pipeline) -> None:
    options = MqttOptions(url="mqtt://station:secret@127.0.0.1:1883")
    with pytest.raises(ValueError, match=PASSWORD_ENV):
        MqttInput(options, sqlite_pipeline).start()


def test_the_network_thread_waits_while_too_many_messages_are_in_flight(
    broker, sqlite_store, inputs, clients, monkeypatch
) -> None:
    # A backlog must not fill the pipeline's whole queue (the garbage collector walks all of
    # it): past IN_FLIGHT_MAX unresolved messages paho's thread waits, until IN_FLIGHT_RESUME.
    monkeypatch.setattr(mqtt_module, "IN_FLIGHT_MAX", 3)
    monkeypatch.setattr(mqtt_module, "IN_FLIGHT_RESUME", 1)
    monkeypatch.setattr(mqtt_module, "BUSY_BLOCK_S", 30.0)  # woken by room, not by a timeout
    writer = GatedWriter(sqlite_store)
    pipeline = Pipeline(writer)
    pipeline.start()
    try:
        input_ = start_input(inputs, pipeline, broker.port)
        device = publisher(clients, broker.port)
        for second in range(8):
            device.publish(TOPIC, bedside("FLIGHT", second))
        wait_until(lambda: input_.health().received == 4, 10,
                   lambda: f"the 4th message read: {input_.health()}")
        time.sleep(0.3)  # the 4th waits for room: the other 4 published are not read yet
        assert input_.health().received == 4
        assert writer.entered.is_set() and pipeline.stats().stored == 0
        started = time.monotonic()
        writer.gate.set()
        wait_until(lambda: len(records(sqlite_store, "FLIGHT")) == 8, 10)
        assert time.monotonic() - started < 10
    finally:
        writer.gate.set()
        pipeline.stop()
