"""The simulator against a real ``vitalstation serve``: what it sends is what the station stores.

One station process per test, on a temporary data home whose ``vitalstation.toml`` points at a
private Mosquitto, moto's Kinesis server and a free REST port; the simulator is the real
``vitalstation-sim`` command, aimed at the station only through that data home (no target
flags), as a user next to a running station would run it. Counts are taken from the station's
own database after the station has stopped, so nothing is counted that was not committed.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from simulator.models import unregistered_id_for
from tests.faults.harness import Home, StationProcess, station_env
from tests.simulator.conftest import free_port

pytestmark = pytest.mark.timeout(90)

KINESIS_STREAM = "sim-e2e"


class Station(StationProcess):
    """``vitalstation serve`` on a data home (the fault tests' harness), read with sqlite3."""

    @classmethod
    def on(cls, home: Path) -> Station:
        store_url = f"sqlite:///{home / 'vitalstation.db'}"
        return cls(Home(home, store_url, rest_port=0, devices=[], keys={}))

    def query(self, sql: str, *args: object) -> list[tuple]:
        with sqlite3.connect(self.home.path / "vitalstation.db") as db:
            return db.execute(sql, args).fetchall()


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
    running = Station.on(home)
    running.start()
    try:
        yield running
    finally:
        running.close()


def simulate(station: Station, *args: str) -> dict:
    """Run ``vitalstation-sim`` against the station of ``station.home``; its JSON summary."""
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "--home", str(station.home.path), "--register",
         "--json", *args],
        capture_output=True, text=True, env=station_env(), timeout=60,
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
        # The good devices' readings too: the broker took them, the station may not have yet.
        dead = station.query("SELECT COUNT(*) FROM dead_letters WHERE input = 'mqtt'")[0][0]
        news2 = station.query(
            "SELECT COUNT(*) FROM alarms WHERE kind = 'news2' AND priority = 'high'")[0][0]
        stored = stored_per_device(station, distinct_times=True)
        return dead >= refused and news2 >= 1 and all(
            stored.get(d, 0) >= n for d, n in good.items())

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
        running = Station.on(home)
        running.start()
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
            running.close()
    assert running.query("SELECT COUNT(*) FROM vital_signs")[0][0] == expected
    assert not (home / "station-endpoints.json").exists()  # withdrawn at stop
