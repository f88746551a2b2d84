"""The four transports against real things: an inbox, Mosquitto, moto's Kinesis, an HTTP server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulator import FileTransport, ScenarioSpec, Simulation, SimulationConfig, generate_messages
from simulator.transports.kinesis import KinesisTransport
from simulator.transports.mqtt import MqttTransport
from simulator.transports.rest import RestTransport
from simulator.wire import WireFormat
from tests.simulator.conftest import RestStub, free_port, private_mosquitto
from tests.simulator.helpers import T0, assert_valid

NOW = T0 + timedelta(hours=1)


def sim_config(**kwargs) -> SimulationConfig:
    kwargs.setdefault("seed", 11)
    kwargs.setdefault("start_time", T0)
    kwargs.setdefault("duration", 0.3)
    kwargs.setdefault("rate_multiplier", 400)
    return SimulationConfig(**kwargs)


def expected_payloads(config: SimulationConfig, fmt: WireFormat | None = None) -> list[bytes]:
    return [m.payload for m in generate_messages(config.resolved(T0), fmt)]


# --- file ------------------------------------------------------------------------------------

FILE_NAME = re.compile(r"^(SIM-[A-Z]+-\d\d)_(\d{8}_\d{6})_(\d{6})\.json$")


def test_file_drop_writes_complete_files_atomically(tmp_path: Path, monkeypatch) -> None:
    inbox = tmp_path / "inbox"
    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src, dst):
        replaced.append((os.fspath(src), os.fspath(dst)))
        assert Path(src).read_bytes()  # complete before it gets its .json name
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    config = sim_config(beds=3, batch=4, scenarios=(ScenarioSpec("malformed", 3),))
    stats = Simulation(config, FileTransport(inbox)).run()

    files = sorted(inbox.iterdir())
    assert stats.ok, stats
    assert stats.totals.sent == len(files) == len(replaced)
    assert stats.totals.acknowledged + stats.totals.expected_refusals == len(files)
    assert stats.totals.expected_refusals > 0
    assert not [p for p in files if not p.name.endswith(".json")]  # no .tmp left behind
    for src, dst in replaced:
        assert src == dst + ".tmp" and Path(src).parent == inbox
    payloads = []
    for path in files:
        match = FILE_NAME.match(path.name)
        assert match, path.name
        payload = path.read_bytes()
        payloads.append(payload)
        if b'"readings"' in payload:  # a batch file: named after its device and first reading
            obj = json.loads(payload)
            first = datetime.fromisoformat(obj["readings"][0]["timestamp"])
            assert match.group(1) == obj["device_id"]
            assert match.group(2) == first.astimezone(UTC).strftime("%Y%m%d_%H%M%S")
    assert Counter(payloads) == Counter(expected_payloads(config))


def test_file_drop_never_overwrites(tmp_path: Path) -> None:
    transport = FileTransport(tmp_path)
    transport.open(lambda message, outcome: None)
    message = next(generate_messages(sim_config(beds=1, duration=10, rate_multiplier=1)
                                     .resolved(T0)))
    stamp = f"{message.measured_at:%Y%m%d_%H%M%S}"
    taken = tmp_path / f"SIM-BSM-01_{stamp}_000001.json"
    taken.write_text("theirs")
    path = transport.write(message)
    assert taken.read_text() == "theirs"
    assert path.name == f"SIM-BSM-01_{stamp}_000002.json"
    assert path.read_bytes() == message.payload


# --- MQTT ------------------------------------------------------------------------------------


class Subscriber:
    """A paho subscriber counting every message under healthcare/monitors/#."""

    def __init__(self, url: str, topic: str = "healthcare/monitors/#") -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id="sim-test-subscriber")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_connect = lambda client, *args: client.subscribe(topic, qos=1)
        self.client.connect(host, int(port))
        self.client.loop_start()
        assert subscribed.wait(5), "subscription not acknowledged"

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.received.append((message.topic, message.payload))

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.parametrize("version", ["3.1.1", "5"])
def test_mqtt_publishes_every_message_and_counts_pubacks(mosquitto: str, version: str) -> None:
    subscriber = Subscriber(mosquitto)
    try:
        config = sim_config(beds=3, model="bedside-monitor",
                            scenarios=(ScenarioSpec("malformed", 2),))
        transport = MqttTransport(mosquitto, version=version)
        stats = Simulation(config, transport).run()
        received = subscriber.wait_for(stats.totals.sent)
    finally:
        subscriber.close()
    assert stats.ok, stats
    assert stats.totals.sent == len(received) > 300
    assert stats.totals.acknowledged + stats.totals.expected_refusals == stats.totals.sent
    assert Counter(p for _, p in received) == Counter(expected_payloads(config))
    for topic, payload in received:
        assert re.fullmatch(r"healthcare/monitors/SIM-BSM-0[123]", topic)
        try:
            device = json.loads(payload)["deviceid"]
        except ValueError:
            continue  # the malformed scenario's bad JSON
        assert topic == f"healthcare/monitors/{device}"


def test_mqtt_load_mode_sends_flat_out_within_the_window(mosquitto: str) -> None:
    subscriber = Subscriber(mosquitto)
    try:
        config = SimulationConfig(beds=20, model="bedside-monitor", seed=1, duration=0.6,
                                  load=True)
        transport = MqttTransport(mosquitto, max_inflight=200)  # flow control is exercised
        stats = Simulation(config, transport).run()
        received = subscriber.wait_for(stats.totals.sent, timeout=15)
    finally:
        subscriber.close()
    assert stats.ok, stats
    # Flat out, not paced (a paced 20-bed run sends ~24 a second); the rate itself, thousands
    # a second, is bench/mqtt.py's to measure, not a loaded CI machine's.
    assert stats.totals.sent / stats.elapsed_seconds > 300
    assert len(received) == stats.totals.acknowledged == stats.totals.sent
    # Stamped with the real clock, unique per device and vital, none in the future.
    now = datetime.now(UTC)
    seen = set()
    for _, payload in received:
        obj = json.loads(payload)
        key = (obj["deviceid"], obj["timestamp"], obj["datatype"])
        assert key not in seen
        seen.add(key)
    for _, payload in received[-50:]:
        stamp = json.loads(payload)["timestamp"]
        assert datetime.fromisoformat(stamp).replace(tzinfo=UTC) <= now


def _make_certificates(folder: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a device's client certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
            "-subj", "/CN=test CA")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, extra in (("server", ("-extfile", "san.ext")), ("client", ())):
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", *extra)
    for path in folder.iterdir():
        path.chmod(0o644)  # mosquitto may read them as its own user


@pytest.fixture
def readable_folder() -> Iterator[Path]:
    """A folder Mosquitto can read after dropping root (pytest's tmp_path is private)."""
    folder = Path(tempfile.mkdtemp(prefix="vs-sim-tls-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_mqtt_over_tls_with_a_client_certificate(readable_folder: Path) -> None:
    tmp_path = readable_folder
    _make_certificates(tmp_path)
    options = (f"cafile {tmp_path / 'ca.crt'}\ncertfile {tmp_path / 'server.crt'}\n"
               f"keyfile {tmp_path / 'server.key'}\nrequire_certificate true\n")
    with private_mosquitto(tmp_path, options) as port:
        url = f"mqtts://127.0.0.1:{port}"
        ok = MqttTransport(url, tls_ca=str(tmp_path / "ca.crt"),
                           tls_cert=str(tmp_path / "client.crt"),
                           tls_key=str(tmp_path / "client.key"))
        stats = Simulation(sim_config(beds=1, duration=0.2), ok).run()
        assert stats.ok and stats.totals.acknowledged > 0, stats
        assert ok.target.startswith("mqtts://127.0.0.1:")
        # Without the client certificate the broker will not have it.
        refused = Simulation(sim_config(beds=1, duration=0.2),
                             MqttTransport(url, tls_ca=str(tmp_path / "ca.crt"))).run()
        assert not refused.ok
        assert re.search("closed the connection|cannot reach", refused.fatal), refused.fatal


def test_mqtt_unreachable_broker_is_fatal_with_the_reason() -> None:
    transport = MqttTransport(f"mqtt://127.0.0.1:{free_port()}")
    stats = Simulation(sim_config(), transport).run()
    assert not stats.ok
    assert "cannot reach the MQTT broker" in stats.fatal
    assert stats.totals.sent == 0


# --- Kinesis ---------------------------------------------------------------------------------


def _read_stream(client, stream: str) -> list[dict]:
    records = []
    shards = client.list_shards(StreamName=stream)["Shards"]
    for shard in shards:
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = client.get_records(ShardIterator=iterator, Limit=10000)
            records += answer["Records"]
            if not answer["Records"]:
                break
            iterator = answer.get("NextShardIterator")
    return records


def test_kinesis_puts_records_keyed_by_device(moto_kinesis: str) -> None:
    client = boto3.client("kinesis", region_name="us-east-1", endpoint_url=moto_kinesis)
    client.create_stream(StreamName="BSMStream", ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName="BSMStream",
                                            WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
    config = sim_config(beds=3, scenarios=(ScenarioSpec("offline-backlog", 1),))
    transport = KinesisTransport("BSMStream", endpoint_url=moto_kinesis)
    stats = Simulation(config, transport).run()
    records = _read_stream(client, "BSMStream")
    assert stats.ok, stats
    assert stats.totals.acknowledged == stats.totals.sent == len(records)
    assert Counter(r["Data"] for r in records) == Counter(expected_payloads(config))
    for record in records:
        assert record["PartitionKey"] == json.loads(record["Data"])["device_id"]
    client.close()


def test_kinesis_missing_stream_is_fatal_unless_created(moto_kinesis: str) -> None:
    missing = Simulation(sim_config(), KinesisTransport("nope", endpoint_url=moto_kinesis)).run()
    assert not missing.ok and "ResourceNotFoundException" in missing.fatal
    created = KinesisTransport("fresh", endpoint_url=moto_kinesis, create_stream=True)
    stats = Simulation(sim_config(beds=1), created).run()
    assert stats.ok and stats.totals.acknowledged > 0


# --- REST ------------------------------------------------------------------------------------

KEYS = {"SIM-BSM-01": "key-one", "SIM-BSM-02": "key-two", "SIM-BSM-03": "key-three"}


def test_rest_posts_with_bearer_keys_and_counts_expected_refusals() -> None:
    config = sim_config(beds=4, scenarios=(ScenarioSpec("malformed", 2),
                                           ScenarioSpec("unknown-device", 4),
                                           ScenarioSpec("offline-backlog", 1)))
    with RestStub(KEYS) as stub:
        stats = Simulation(config, RestTransport(stub.url, KEYS)).run()
    assert stats.ok, stats
    by_status = Counter(status for *_, status in stub.requests)
    assert stats.totals.sent == len(stub.requests)
    assert stats.totals.acknowledged == by_status[200]
    # Malformed payloads answered 400, the unregistered device (no key) 401: both expected.
    assert stats.totals.expected_refusals == by_status[400] + by_status[401]
    assert by_status[400] > 0 and by_status[401] > 0
    for path, auth, body, status in stub.requests:
        device = json.loads(body)["device_id"] if status != 400 else None
        if status == 401:
            assert auth is None and device == "SIM-UNREG-04"
        elif device is not None:
            assert auth == f"Bearer {KEYS[device]}"
            assert path == ("/api/iot/vitals/batch/" if b'"readings"' in body
                            else "/api/iot/vitals/")
    assert any(path.endswith("/batch/") for path, *_ in stub.requests)  # the offline backlog
    assert Counter(body for _, _, body, _ in stub.requests) == Counter(
        expected_payloads(config, WireFormat.INHEALTH))


def test_rest_failures_carry_the_station_s_error() -> None:
    wrong = {**KEYS, "SIM-BSM-02": "stale"}
    with RestStub(KEYS) as stub:
        stats = Simulation(sim_config(beds=2, batch=3), RestTransport(stub.url, wrong)).run()
    assert not stats.ok
    assert stats.devices["SIM-BSM-02"].failed == stats.devices["SIM-BSM-02"].sent > 0
    assert stats.devices["SIM-BSM-01"].acknowledged == stats.devices["SIM-BSM-01"].sent
    ((error, count),) = stats.errors
    assert error == "HTTP 401 Unauthorized: Invalid API key"
    assert count == stats.totals.failed


def test_rest_to_a_closed_port_is_fatal() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    stats = Simulation(sim_config(), RestTransport(url, KEYS)).run()
    assert not stats.ok
    assert stats.fatal == (
        f"cannot reach the station's REST receiver at {url}: connection refused "
        "(is the station running?)"
    )


def test_every_rest_payload_is_a_valid_inhealth_reading() -> None:
    with RestStub(KEYS) as stub:
        stats = Simulation(sim_config(beds=3, model="bedside-monitor", batch=5),
                           RestTransport(stub.url, KEYS)).run()
    assert stats.ok and stats.totals.acknowledged == len(stub.requests)
    for message in generate_messages(sim_config(beds=3, model="bedside-monitor", batch=5)
                                     .resolved(T0), WireFormat.INHEALTH):
        assert_valid(message, NOW)
