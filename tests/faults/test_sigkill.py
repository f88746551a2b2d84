"""The station SIGKILLed at seeded random points while its inputs are under load.

A real ``vitalstation serve`` takes readings from all four inputs at once: MQTT QoS 1 through
a private Mosquitto (the station's persistent session), REST (one reading per POST, retried by
the sender until answered 200, as devices do), file drop (files renamed into the inbox) and
Kinesis (moto's server). At seeded random moments it is killed with SIGKILL (no clean-up
runs), left down for a moment while the senders go on, and started again. After the senders
stop, the station is given time to catch up, then stopped cleanly, and the store is compared
reading by reading with what was sent and acknowledged:

* nothing acknowledged is missing (MQTT: PUBACKed by the broker; REST: answered 200; file: renamed
  into the inbox; Kinesis: accepted by put_records) and, for MQTT, file and Kinesis, nothing
  sent is missing either;
* nothing is stored twice (the REST sender re-posts readings whose answer the kill swallowed);
* nothing is stored that was not sent.

On SQLite, CI form: 3 kills with all inputs loaded at once; full form
(``VITALSTATION_FULL_PROOF=1``): 10 kills per input, each input alone. On PostgreSQL (its own
throwaway database): all four inputs at once, 4 kills in CI, 10 in the full form.
``VITALSTATION_FAULT_KILLS`` overrides the count and ``VITALSTATION_FAULT_SEED`` the seed.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from tests.faults.harness import (
    FULL,
    FileSender,
    Home,
    KinesisSender,
    MqttSender,
    Readings,
    RestSender,
    Sender,
    StationProcess,
    create_stream,
    make_home,
    seeded,
    verdict,
    wait_mqtt_subscribed,
)
from tests.ingest.mosquitto import Mosquitto
from tests.simulator.conftest import free_port

KILLS = int(os.environ.get("VITALSTATION_FAULT_KILLS", "10" if FULL else "3"))
PG_KILLS = int(os.environ.get("VITALSTATION_FAULT_KILLS", "10" if FULL else "4"))
SEED = int(os.environ.get("VITALSTATION_FAULT_SEED", "20261123"))
RATE = 60.0  # readings per second per input
ALL_INPUTS = ("mqtt", "rest", "file", "kinesis")

INPUT_SETS = (
    [pytest.param(("mqtt",), id="mqtt"), pytest.param(("rest",), id="rest"),
     pytest.param(("file",), id="file"), pytest.param(("kinesis",), id="kinesis")]
    if FULL else [pytest.param(ALL_INPUTS, id="all-inputs")]
)


def station_home(tmp_path: Path, broker: Mosquitto, moto_kinesis: str,
                 store_url: str | None = None) -> tuple[Home, str]:
    """A data home whose station reads all four inputs (SQLite unless ``store_url``), and
    its Kinesis stream."""
    stream = f"faults-kill-{time.monotonic_ns()}"
    create_stream(moto_kinesis, stream)
    toml = (
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker.port}"\n'
        f'[kinesis]\nenabled = true\nstream = "{stream}"\nendpoint_url = "{moto_kinesis}"\n'
        'poll_interval_ms = 100\n'
    )
    home = make_home(tmp_path / "home", toml, rest_port=free_port(), store_url=store_url)
    return home, stream


def kill_under_load(home: Home, stream: str, inputs: tuple[str, ...], kills: int,
                    rng: random.Random, broker_port: int, moto_kinesis: str) -> str:
    """Load ``inputs``, SIGKILL the station ``kills`` times, let it catch up; assert the
    verdicts and return the report line."""
    station = StationProcess(home)
    builders = {
        "mqtt": lambda: MqttSender(Readings(home.devices), RATE, broker_port),
        "rest": lambda: RestSender(Readings(home.devices), RATE, home.rest_port, home.keys),
        "file": lambda: FileSender(Readings(home.devices), RATE, home.inbox),
        "kinesis": lambda: KinesisSender(Readings(home.devices), RATE, moto_kinesis, stream),
    }
    senders: list[Sender] = [builders[name]() for name in inputs]
    downtimes = []
    try:
        station.start()
        if "mqtt" in inputs:
            wait_mqtt_subscribed(station, broker_port)
        for sender in senders:
            sender.start()
        for _ in range(kills):
            time.sleep(rng.uniform(0.3, 1.2))  # somewhere in the middle of the stream
            station.kill()
            down = rng.uniform(0.0, 0.5)
            time.sleep(down)
            downtimes.append(round(down + station.start(), 2))
        time.sleep(0.5)
        for sender in senders:
            sender.stop()
        expected = set().union(*(s.sent for s in senders))
        station.wait_stored(expected, timeout=60)
        time.sleep(0.5)  # anything stored twice late would show now
        station.stop()
        rows = station.stored_rows()
    finally:
        for sender in senders:
            if sender.is_alive():
                sender.stop()
        station.close()

    verdicts = [verdict(sender, rows) for sender in senders]
    report = "; ".join(v.line() for v in verdicts)
    for sender, v in zip(senders, verdicts, strict=True):
        assert v.acked > 0, report
        assert v.lost_acked == 0, report
        if sender.name_of_input != "rest":
            assert v.lost_sent == 0, report
        assert v.duplicates == 0, report
        assert v.strangers == 0, report
    assert station.log.count("started in") == kills + 1
    return f"down {downtimes}: {report}"


@pytest.mark.timeout(600 if FULL else 110)
@pytest.mark.parametrize("inputs", INPUT_SETS)
def test_sigkill_under_load_loses_nothing_and_stores_nothing_twice(
    inputs: tuple[str, ...], tmp_path: Path, broker: Mosquitto, moto_kinesis: str,
    record_property,
) -> None:
    home, stream = station_home(tmp_path, broker, moto_kinesis)
    rng = seeded(SEED + sum(map(ord, "".join(inputs))))
    report = kill_under_load(home, stream, inputs, KILLS, rng, broker.port, moto_kinesis)
    record_property("sigkill", f"kills {KILLS} seed {SEED} {report}")
    print(f"SIGKILL x{KILLS} (seed {SEED}): {report}")


@pytest.mark.postgres
@pytest.mark.timeout(600 if FULL else 110)
def test_sigkill_under_load_on_postgresql_loses_nothing_and_stores_nothing_twice(
    tmp_path: Path, broker: Mosquitto, moto_kinesis: str, pg_url: str, record_property,
) -> None:
    home, stream = station_home(tmp_path, broker, moto_kinesis, store_url=pg_url)
    rng = seeded(SEED + sum(map(ord, "postgresql")))
    report = kill_under_load(home, stream, ALL_INPUTS, PG_KILLS, rng, broker.port,
                                      moto_kinesis)
    assert home.store_url.startswith("postgresql") and not (home.path / "vitalstation.db").exists()
    record_property("sigkill-postgresql", f"kills {PG_KILLS} seed {SEED} {report}")
    print(f"SIGKILL x{PG_KILLS} PostgreSQL (seed {SEED}): {report}")
