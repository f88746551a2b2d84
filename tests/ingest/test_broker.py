"""The embedded broker (amqtt on loopback) alone, with the MQTT input, and inside the runtime."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.ingest.mosquitto import free_port, wait_until
from vitalstation.app.runtime import Runtime
from vitalstation.config.settings import load_settings
from vitalstation.ingest import mqtt as mqtt_module
from vitalstation.ingest.base import InputState
from vitalstation.ingest.broker import EmbeddedBroker, port_in_use_message
from vitalstation.ingest.mqtt import MqttInput, MqttOptions, mqtt_input_factories
from vitalstation.pipeline.core import Pipeline
from vitalstation.storage.store import Store

TOPIC = "healthcare/monitors/BSM_G101"


def message(device: str, second: int = 0) -> bytes:
    return json.dumps({
        "deviceid": device, "timestamp": f"2025-11-08 10:00:{second:02d}",
        "datatype": "HeartRate", "value": 70 + second,
    }).encode()


class Client:
    """A paho client on the broker; records what it receives."""

    def __init__(self, port: int, subscribe: str | None = None) -> None:
        self.received: list[bytes] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda c, u, m: self.received.append(m.payload)
        connected = threading.Event()

        def on_connect(client, userdata, flags, reason, properties):
            if subscribe:
                client.subscribe(subscribe, 1)
            connected.set()

        self.client.on_connect = on_connect
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert connected.wait(5)

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(5)
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    started = EmbeddedBroker(port=0)
    started.start()
    yield started
    started.stop()


@pytest.fixture
def occupied_port() -> Iterator[int]:
    """A loopback port something else listens on (as a system Mosquitto does on 1883)."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


@pytest.fixture
def sqlite_store(tmp_path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'broker.db'}")
    yield opened
    opened.close()


@pytest.fixture
def pipeline(sqlite_store) -> Iterator[Pipeline]:
    running = Pipeline(sqlite_store.writer)
    running.start()
    yield running
    running.stop()


def test_a_paho_round_trip(broker, clients) -> None:
    port = broker.actual_port
    assert port
    subscriber = Client(port, subscribe="healthcare/#")
    publisher = Client(port)
    clients += [subscriber, publisher]
    wait_until(lambda: broker.health().detail.endswith("(2 clients connected)"))
    publisher.publish(TOPIC, b"hello")
    wait_until(lambda: subscriber.received == [b"hello"], 5)
    health = broker.health()
    assert health.state is InputState.UP
    assert health.detail == f"listening on 127.0.0.1:{port} (2 clients connected)"


def test_stop_closes_the_port(clients) -> None:
    broker = EmbeddedBroker(port=0)
    broker.start()
    port = broker.actual_port
    assert port is not None
    clients.append(Client(port))
    broker.stop()
    assert broker.health().state is InputState.STOPPED
    assert broker.actual_port is None
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_a_taken_port_falls_back_to_a_free_one_and_says_so(occupied_port, clients) -> None:
    broker = EmbeddedBroker(port=occupied_port)
    broker.start()
    try:
        actual = broker.actual_port
        assert actual is not None and actual != occupied_port
        health = broker.health()
        assert health.state is InputState.DEGRADED
        expected = (
            f"port {occupied_port} is in use (another MQTT broker?); embedded broker listening "
            f"on 127.0.0.1:{actual} instead — point devices there or set [embedded_broker] port"
        )
        assert health.detail.startswith(expected)
        assert expected == port_in_use_message(occupied_port, actual)
        subscriber = Client(actual, subscribe="#")
        clients.append(subscriber)
        publisher = Client(actual)
        clients.append(publisher)
        publisher.publish(TOPIC, b"still works")
        wait_until(lambda: subscriber.received == [b"still works"], 5)
    finally:
        broker.stop()


def start_input(broker, pipeline, **options) -> MqttInput:
    input_ = MqttInput(
        MqttOptions(url="embedded", client_id="station-on-embedded", **options),
        pipeline, embedded=broker,
    )
    input_.start()
    wait_until(lambda: input_.health().state is InputState.UP, 10, lambda: str(input_.health()))
    return input_


def test_the_station_keeps_its_session_on_the_embedded_broker(
    broker, pipeline, sqlite_store, clients
) -> None:
    # amqtt drops the sessions of clients it calls anonymous; ours must be kept.
    first = start_input(broker, pipeline)
    assert first.health().detail == (
        f"connected to the embedded broker mqtt://127.0.0.1:{broker.actual_port}, 1 topic filter"
    )
    first.stop(2)
    device = Client(broker.actual_port)
    clients.append(device)
    for second in range(20):
        device.publish(TOPIC, message("AWAY", second))
    second_run = start_input(broker, pipeline)
    try:
        wait_until(lambda: len(list(sqlite_store.queries.readings(device_id="AWAY"))) == 20, 10)
        assert pipeline.stats().stored == 20
    finally:
        second_run.stop(2)


def test_mqtt5_on_the_embedded_broker_falls_back_to_3_1_1_and_says_so(
    broker, pipeline, sqlite_store, clients
) -> None:
    input_ = start_input(broker, pipeline, protocol="5")
    try:
        assert 'mqtt.protocol "5" ignored' in input_.health().detail
        device = Client(broker.actual_port)
        clients.append(device)
        device.publish(TOPIC, message("V5"))
        wait_until(lambda: list(sqlite_store.queries.readings(device_id="V5")), 5)
    finally:
        input_.stop(2)


def test_without_its_broker_the_embedded_input_cannot_start(pipeline) -> None:
    input_ = MqttInput(MqttOptions(url="embedded"), pipeline, embedded=None)
    with pytest.raises(RuntimeError, match="embedded broker is not running"):
        input_.start()


def test_the_factories_start_the_broker_only_for_embedded(tmp_path) -> None:
    broker_factory, input_factory = mqtt_input_factories()
    real = load_settings(tmp_path, {"VITALSTATION_MQTT__URL": "mqtt://broker.example:1883"})
    assert broker_factory(real, None, None) is None  # type: ignore[arg-type]
    off = load_settings(tmp_path, {"VITALSTATION_MQTT__ENABLED": "false"})
    assert broker_factory(off, None, None) is None  # type: ignore[arg-type]
    assert input_factory(off, None, None) is None  # type: ignore[arg-type]
    default = load_settings(tmp_path, {})
    assert isinstance(broker_factory(default, None, None), EmbeddedBroker)  # type: ignore[arg-type]


def test_the_station_stores_what_devices_publish_to_its_embedded_broker(
    tmp_path, occupied_port, clients, monkeypatch
) -> None:
    order: list[str] = []
    for cls in (EmbeddedBroker, MqttInput):
        original = cls.stop

        def recording_stop(self, timeout=5.0, _original=original):
            order.append(self.name)
            return _original(self, timeout)

        monkeypatch.setattr(cls, "stop", recording_stop)
    monkeypatch.setattr(mqtt_module, "STOP_DRAIN_S", 0.2)
    settings = load_settings(tmp_path, {
        "VITALSTATION_EMBEDDED_BROKER__PORT": str(occupied_port),
        "VITALSTATION_REST__ENABLED": "false",
        "VITALSTATION_FILEDROP__ENABLED": "false",
    })
    assert settings.mqtt.url == "embedded"  # the default
    runtime = Runtime(settings)
    runtime.start()
    try:
        names = [i.name for i in runtime.inputs]
        assert names.index("mqtt-broker") < names.index("mqtt")
        broker = next(i for i in runtime.inputs if isinstance(i, EmbeddedBroker))
        station = next(i for i in runtime.inputs if isinstance(i, MqttInput))
        wait_until(lambda: station.health().state is InputState.UP, 10)
        device = Client(broker.actual_port)
        clients.append(device)
        device.publish(TOPIC, message("EMBEDDED"))
        wait_until(lambda: list(runtime.store.queries.readings(device_id="EMBEDDED")), 10)
        health = {h.name: h for h in runtime.health().inputs}
        assert health["mqtt-broker"].state is InputState.DEGRADED
        assert f"port {occupied_port} is in use" in health["mqtt-broker"].detail
        assert health["mqtt"].state is InputState.UP
        assert health["mqtt"].received == 1
    finally:
        assert runtime.stop() is True
    assert order == ["mqtt", "mqtt-broker"]  # the input says goodbye while the broker is up


def test_a_free_port_is_used_as_configured(tmp_path) -> None:
    port = free_port()
    broker = EmbeddedBroker(port=port)
    broker.start()
    try:
        assert broker.actual_port == port
        assert broker.health().state is InputState.UP
        assert broker.warning == ""
    finally:
        broker.stop()


def test_a_stop_just_after_clients_connect_closes_every_socket() -> None:
    # Python 3.11's start_server leaks the socket of a connection accepted in the same loop
    # turn as the server's close; pytest turns the ResourceWarning of a leaked socket into a
    # failure of the test that collects it, here below.
    import gc

    for _ in range(10):
        broker = EmbeddedBroker(port=0)
        broker.start()
        clients = [socket.create_connection(("127.0.0.1", broker.actual_port))
                   for _ in range(3)]
        broker.stop()
        for client in clients:
            client.close()
        gc.collect()
    assert broker.health().state is InputState.STOPPED
