"""A corpus of bad MQTT payloads against ``vitalstation serve``: each one a dead letter with
its reason, and the input keeps reading (a good message published after them is stored)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.harness import (
    MqttSender,
    Readings,
    StationProcess,
    bedside_payload,
    make_home,
    wait_mqtt_subscribed,
)
from tests.hostile.corpus import bad_payloads
from tests.ingest.mosquitto import Mosquitto, wait_until
from tests.simulator.conftest import free_port

pytestmark = pytest.mark.timeout(90)


def test_bad_payloads_are_dead_letters_and_the_input_keeps_reading(
    tmp_path: Path, broker: Mosquitto
) -> None:
    home = make_home(tmp_path / "home", f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker.port}"\n',
                     rest_port=free_port(), beds=1)
    device = home.devices[0]
    corpus = bad_payloads(device)
    station = StationProcess(home)
    sender = MqttSender(Readings(home.devices), 1000.0, broker.port)
    good = Readings(home.devices).next()
    try:
        station.start()
        wait_mqtt_subscribed(station, broker.port)
        sender.open()
        topic = f"healthcare/monitors/{device}"
        for payload in corpus.values():
            sender.client.publish(topic, payload, qos=1).wait_for_publish(10)
        sender.client.publish(topic, bedside_payload(good), qos=1).wait_for_publish(10)
        wait_until(lambda: good in set(station.stored_rows()), 30,
                   lambda: "the good message after the corpus to be stored:\n"
                   + station.log[-3000:])
        wait_until(lambda: len(station.dead_letters("mqtt")) >= len(corpus), 30,
                   lambda: f"{len(corpus)} dead letters, got {station.dead_letters('mqtt')}")
        time.sleep(0.5)
        letters = station.dead_letters("mqtt")
        stored = station.stored_rows()
        station.stop()
    finally:
        sender.client.loop_stop()
        sender.client.disconnect()
        station.close()
    for _, _, reason in letters:
        print(f"  dead letter: {reason[:160]}")
    assert len(letters) == len(corpus), letters
    assert all(reason.strip() for _, _, reason in letters)
    # Nothing of the corpus was stored, the good one once (besides the subscription probes).
    assert [r for r in stored if r[0] == device] == [good]
    reasons = " | ".join(reason for _, _, reason in letters)
    assert "larger than mqtt.max_payload_bytes" in reasons
    assert "in the future" in reasons
