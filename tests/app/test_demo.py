"""--demo: simulated beds reach the station through MQTT, REST and file drop within seconds."""

from __future__ import annotations

import dataclasses
import time

from sqlalchemy import select

from simulator import device_id_for
from vitalstation.app.demo import Demo
from vitalstation.app.runtime import Runtime
from vitalstation.config.settings import load_settings
from vitalstation.storage.schema import vital_signs

LIVE_WITHIN_S = 10.0


def test_the_demo_feeds_every_input_and_stops_cleanly(tmp_path) -> None:
    settings = load_settings(tmp_path, {
        "VITALSTATION_REST__PORT": "0",
        "VITALSTATION_EMBEDDED_BROKER__PORT": "0",
    })
    runtime = Runtime(settings)
    runtime.start()
    demo = Demo(runtime)
    try:
        demo.start()
        assert demo.skipped == []
        wanted = {device_id_for(n) for n in range(1, 7)}
        deadline = time.monotonic() + LIVE_WITHIN_S
        seen: dict[str, str] = {}
        while time.monotonic() < deadline and set(seen) != wanted:
            with runtime.store.engine.connect() as connection:
                seen = {
                    row.device_id: row.input for row in connection.execute(
                        select(vital_signs.c.device_id, vital_signs.c.input).distinct()
                    )
                }
            time.sleep(0.2)
        assert set(seen) == wanted, f"only {sorted(seen)} after {LIVE_WITHIN_S} s"
        assert {seen[device_id_for(1)], seen[device_id_for(3)], seen[device_id_for(5)]} == {
            "mqtt", "rest", "file"
        }
        patients = {b.label: b.patient_id for b in runtime.store.registry.list_beds()}
        assert patients["SIM-01"] == "P-SIM-01"
    finally:
        demo.stop()
        assert runtime.stop()


def test_a_demo_whose_rest_port_is_taken_listens_on_a_free_one(tmp_path, caplog) -> None:
    import socket

    from vitalstation.app.demo import demo_settings

    settings = load_settings(tmp_path, {})
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        busy = dataclasses.replace(settings, rest=dataclasses.replace(settings.rest, port=taken))
        moved = demo_settings(busy)
    assert moved.rest.port == 0
    assert f"port {taken} is in use" in caplog.text
    # A free configured port is kept as it is.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    kept = dataclasses.replace(settings, rest=dataclasses.replace(settings.rest, port=free))
    assert demo_settings(kept) is kept
