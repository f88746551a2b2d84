"""The simulator against a real ``vitalstation serve``: what it sends is what the station stores.

One station process per test, on a temporary data home whose ``vitalstation.toml`` points at a
private Mosquitto, moto's Kinesis server and a free REST port; the simulator is the real
``vitalstation-sim`` command, aimed at the station only through that data home (no target
flags), as a user next to a running station would run it. Counts are taken from the station's
own database after the station has stopped, so nothing is counted that was not committed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from simulator.models import unregistered_id_for
from tests.simulator.conftest import free_port

pytestmark = pytest.mark.timeout(90)

KINESIS_STREAM = "sim-e2e"
READY_LINE = "started in"


@dataclass
class Station:
    home: Path
    process: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def stop(self) -> str:
        """SIGTERM, wait, and return what it wrote on stderr; it must stop cleanly."""
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
            if self.reader is not None:
                self.reader.join(10)
            assert self.process.returncode == 0, self.log[-3000:]
            self.process = None
        return self.log

    def query(self, sql: str, *args: object) -> list[tuple]:
        with sqlite3.connect(self.home / "vitalstation.db") as db:
            return db.execute(sql, args).fetchall()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VITALSTATION_")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        env.pop(name, None)
    return env


def _start(station: Station) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "vitalstation", "--home", str(station.home), "serve"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=_env(),
    )
    assert process.stderr is not None
    stderr = process.stderr
    ready = threading.Event()

    def drain() -> None:
        # Read stderr to the end, always: a station whose log pipe is full blocks on logging.
        with stderr:
            for line in stderr:
                station.lines.append(line)
                if READY_LINE in line:
                    ready.set()
        ready.set()

    station.reader = threading.Thread(target=drain, daemon=True)
    station.reader.start()
    ready.wait(30)
    if process.poll() is None and READY_LINE in station.log:
        station.process = process
        return
    process.kill()
    process.wait()
    station.reader.join(10)
    pytest.fail("serve did not start:\n" + station.log)


@pytest.fixture
def station(tmp_path: Path, mosquitto: str, moto_kinesis: str) -> Iterator[Station]:
    """A running station on a data home that knows the broker, the stream and its REST port."""
    import boto3

    kinesis = boto3.client("kinesis", endpoint_url=moto_kinesis, region_name="us-east-1")
    stream = f"{KINESIS_STREAM}-{time.monotonic_ns()}"
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream,
                                             WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
    home = tmp_path / "home"
    home.mkdir()
    (home / "vitalstation.toml").write_text(
        f'[rest]\nport = {free_port()}\n'
        f'[mqtt]\nurl = "{mosquitto}"\n'
        f'[kinesis]\nenabled = true\nstream = "{stream}"\nendpoint_url = "{moto_kinesis}"\n'
        'poll_interval_ms = 100\n'
    )
    running = Station(home)
    _start(running)
    try:
        yield running
    finally:
        if running.process is not None:
            running.process.kill()
            running.process.wait()
        if running.reader is not None:
            running.reader.join(10)


def simulate(station: Station, *args: str) -> dict:
    """Run ``vitalstation-sim`` against the station of ``station.home``; its JSON summary."""
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "--home", str(station.home), "--register",
         "--json", *args],
        capture_output=True, text=True, env=_env(), timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def stored_per_device(station: Station, *, distinct_times: bool) -> dict[str, int]:
    """Vital rows (or distinct measurement times: readings of several vitals) per device."""
    what = "COUNT(DISTINCT measured_at)" if distinct_times else "COUNT(*)"
    rows = station.query(f"SELECT device_id, {what} FROM vital_signs GROUP BY device_id")
    return dict(rows)


def wait_until_stored(station: Station, expected: dict[str, int], *, distinct_times: bool,
                      timeout: float = 30.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        got = stored_per_device(station, distinct_times=distinct_times)
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def _start_time() -> str:
    """A fixed start in the recent past, so that two runs send byte-identical readings."""
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    return start.isoformat().replace("+00:00", "Z")


# The bedside model sends one vital per message (rows = messages); the ward model sends one
# reading of several vitals per message (distinct measurement times = readings).
TRANSPORTS = [
    pytest.param("mqtt", "bedside-monitor", id="mqtt"),
    pytest.param("kinesis", "bedside-monitor", id="kinesis"),
    pytest.param("rest", "ward", id="rest"),
    pytest.param("file", "ward", id="file"),
]


@pytest.mark.parametrize(("transport", "model"), TRANSPORTS)
def test_every_reading_sent_is_stored_once_per_device(station: Station, transport: str,
                                                      model: str) -> None:
    args = ("--transport", transport, "--model", model, "--beds", "3", "--duration", "1.5",
            "--rate-multiplier", "120", "--seed", "11", "--start-time", _start_time())
    first = simulate(station, *args)
    assert first["failed"] == 0 and first["pending"] == 0, first
    expected = {device: c["readings"] for device, c in first["devices"].items()}
    assert len(expected) == 3 and all(n > 0 for n in expected.values()), first
    distinct = model == "ward"
    assert wait_until_stored(station, expected, distinct_times=distinct) == expected

    # The same run again (same seed, same start): every reading is re-sent, none stored twice.
    again = simulate(station, *args)
    assert again["failed"] == 0 and again["devices"] == first["devices"]
    time.sleep(1.0)  # give anything wrongly stored the time to show
    station.stop()
    assert stored_per_device(station, distinct_times=distinct) == expected
    if not distinct:
        duplicates = station.query(
            "SELECT COUNT(*) FROM (SELECT 1 FROM vital_signs GROUP BY device_id, vital, "
            "measured_at HAVING COUNT(*) > 1)")
        assert duplicates == [(0,)]


def test_scenarios_raise_what_they_mean_and_bad_payloads_stop_nothing(station: Station) -> None:
    """deteriorating -> NEWS2 high; malformed -> dead letters; unknown device -> kept, alarmed."""
    summary = simulate(
        station, "--transport", "mqtt", "--model", "ward", "--beds", "3", "--duration", "2",
        "--rate-multiplier", "600", "--seed", "5",
        "--scenario", "deteriorating:1", "--scenario", "malformed:2",
        "--scenario", "unknown-device:3",
    )
    assert summary["failed"] == 0 and summary["pending"] == 0, summary
    refused = summary["devices"]["SIM-BSM-02"]["expected_refusals"]
    assert refused > 0
    good = {d: c["readings"] for d, c in summary["devices"].items()
            if c["expected_refusals"] == 0}

    def settled() -> bool:
        dead = station.query("SELECT COUNT(*) FROM dead_letters WHERE input = 'mqtt'")[0][0]
        news2 = station.query(
            "SELECT COUNT(*) FROM alarms WHERE kind = 'news2' AND priority = 'high'")[0][0]
        return dead >= refused and news2 >= 1

    deadline = time.monotonic() + 30
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert settled(), station.stop()[-3000:]
    station.stop()
    # The good devices' readings were all stored although a neighbour sent garbage.
    stored = stored_per_device(station, distinct_times=True)
    assert {d: stored.get(d, 0) for d in good} == good
    # The deteriorating bed's NEWS2 alarm belongs to its patient.
    rows = station.query(
        "SELECT p.patient_id FROM alarms a JOIN patients p ON p.id = a.patient_ref "
        "WHERE a.kind = 'news2' AND a.priority = 'high'")
    assert ("P-SIM-01",) in rows
    # The unknown device is kept for the admin and raised as a technical alarm.
    unknown = unregistered_id_for(3)
    assert good[unknown] > 0  # MQTT takes any bytes: the station must keep them
    kept = dict(station.query("SELECT device_id, reading_count FROM unknown_devices"))
    assert kept.get(unknown, 0) > 0, kept
    technical = station.query("SELECT condition FROM alarms WHERE kind = 'technical'")
    assert any("unknown" in c for (c,) in technical), technical


def test_the_simulator_finds_ports_the_station_had_to_move(tmp_path: Path) -> None:
    """Another program holds the embedded broker's port and REST asks for any free port: the
    simulator, given only the data home, still reaches the running station on both."""
    import socket

    with socket.socket() as squatter:  # what the machine's own Mosquitto on 1883 does
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        held = squatter.getsockname()[1]
        home = tmp_path / "home"
        home.mkdir()
        (home / "vitalstation.toml").write_text(
            f"[rest]\nport = 0\n[embedded_broker]\nport = {held}\n"
        )
        running = Station(home)
        _start(running)
        try:
            live = json.loads((home / "station-endpoints.json").read_text())
            assert int(live["broker_port"]) != held and int(live["rest_port"]) > 0
            totals = {}
            for transport in ("mqtt", "rest"):
                summary = simulate(running, "--transport", transport, "--beds", "2",
                                   "--model", "bedside-monitor", "--duration", "1",
                                   "--rate-multiplier", "30", "--seed", "2")
                assert summary["failed"] == 0 and summary["acknowledged"] > 0, summary
                totals[transport] = summary["acknowledged"]
            expected = totals["mqtt"] + totals["rest"]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if running.query("SELECT COUNT(*) FROM vital_signs")[0][0] >= expected:
                    break
                time.sleep(0.2)
        finally:
            if running.process is not None:
                running.stop()
    assert running.query("SELECT COUNT(*) FROM vital_signs")[0][0] == expected
    assert not (home / "station-endpoints.json").exists()  # withdrawn at stop
