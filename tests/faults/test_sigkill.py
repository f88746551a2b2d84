"""The station SIGKILLed at seeded random points while its inputs are under load.

A real ``vitalstation serve`` (SQLite) takes readings from all four inputs at once: MQTT QoS 1
through a private Mosquitto (the station's persistent session), REST (one reading per POST,
retried by the sender until answered 200, as devices do), file drop (files renamed into the
inbox) and Kinesis (moto's server). At seeded random moments it is killed with SIGKILL (no
clean-up runs), left down for a moment while the senders go on, and started again. After the
senders stop, the station is given time to catch up, then stopped cleanly, and the store is
compared reading by reading with what was sent and acknowledged:

* nothing acknowledged is missing (MQTT: PUBACKed by the broker; REST: answered 200; file: renamed
  into the inbox; Kinesis: accepted by put_records) and, for MQTT, file and Kinesis, nothing
  sent is missing either;
* nothing is stored twice (the REST sender re-posts readings whose answer the kill swallowed);
* nothing is stored that was not sent.

CI form: 3 kills with all inputs loaded at once. Full form (``VITALSTATION_FULL_PROOF=1``):
10 kills per input, each input alone. ``VITALSTATION_FAULT_KILLS`` overrides the count and
``VITALSTATION_FAULT_SEED`` the seed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.faults.harness import (
    FULL,
    FileSender,
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
SEED = int(os.environ.get("VITALSTATION_FAULT_SEED", "20261123"))
RATE = 60.0  # readings per second per input

INPUT_SETS = (
    [pytest.param(("mqtt",), id="mqtt"), pytest.param(("rest",), id="rest"),
     pytest.param(("file",), id="file"), pytest.param(("kinesis",), id="kinesis")]
    if FULL else [pytest.param(("mqtt", "rest", "file", "kinesis"), id="all-inputs")]
)


@pytest.mark.timeout(600 if FULL else 110)
@pytest.mark.parametrize("inputs", INPUT_SETS)
def test_sigkill_under_load_loses_nothing_and_stores_nothing_twice(
    inputs: tuple[str, ...], tmp_path: Path, broker: Mosquitto, moto_kinesis: str,
    record_property,
) -> None:
    stream = f"faults-kill-{time.monotonic_ns()}"
    create_stream(moto_kinesis, stream)
    toml = (
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker.port}"\n'
        f'[kinesis]\nenabled = true\nstream = "{stream}"\nendpoint_url = "{moto_kinesis}"\n'
        'poll_interval_ms = 100\n'
    )
    home = make_home(tmp_path / "home", toml, rest_port=free_port())
    station = StationProcess(home)
    rng = seeded(SEED + sum(map(ord, "".join(inputs))))
    builders = {
        "mqtt": lambda: MqttSender(Readings(home.devices), RATE, broker.port),
        "rest": lambda: RestSender(Readings(home.devices), RATE, home.rest_port, home.keys),
        "file": lambda: FileSender(Readings(home.devices), RATE, home.inbox),
        "kinesis": lambda: KinesisSender(Readings(home.devices), RATE, moto_kinesis, stream),
    }
    senders: list[Sender] = [builders[name]() for name in inputs]
    try:
        station.start()
        if "mqtt" in inputs:
            wait_mqtt_subscribed(station, broker.port)
        for sender in senders:
            sender.start()
        downtimes = []
        for _ in range(KILLS):
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
    record_property("sigkill", f"kills {KILLS} seed {SEED} down {downtimes}: {report}")
    print(f"SIGKILL x{KILLS} (seed {SEED}): {report}")
    for sender, v in zip(senders, verdicts, strict=True):
        assert v.acked > 0, report
        assert v.lost_acked == 0, report
        if sender.name_of_input != "rest":
            assert v.lost_sent == 0, report
        assert v.duplicates == 0, report
        assert v.strangers == 0, report
    assert station.log.count("started in") == KILLS + 1
