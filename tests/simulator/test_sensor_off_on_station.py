"""The sensor-off scenario against the station: its gap raises the no-data alarm, which ends
when the sensor is back.

The no-data limit is wall-clock time (30 s for heart rate), so this runs the station's pipeline
and alarm service on a fake clock stepped in line with the simulated one, instead of waiting
minutes on a real one: every payload of the scenario, as the simulator generates it for the
seed publisher's model, is parsed and stored exactly as the MQTT input does, and the alarm
service is ticked between payloads as its tick thread would be.
"""

from __future__ import annotations

import json
from datetime import timedelta

from simulator import SimulationConfig
from simulator.generate import generate_messages
from simulator.register import register_beds
from simulator.scenarios import ScenarioSpec
from tests.factories import T0
from vitalstation.app.runtime import Runtime
from vitalstation.config.settings import load_settings
from vitalstation.domain.clock import FakeClock
from vitalstation.domain.payloads import parse_payload
from vitalstation.domain.readings import InputKind
from vitalstation.pipeline.types import Outcome

SPAN_S = 300.0  # onset at 60 s, three minutes without data, then data again


def test_sensor_off_raises_no_data_while_the_gap_lasts_and_ends_it_after(tmp_path) -> None:
    clock = FakeClock(T0)
    runtime = Runtime(load_settings(tmp_path, {}), clock=clock, input_factories=[])
    runtime.start()
    try:
        register_beds(runtime.store.registry, 1, at=T0 - timedelta(minutes=1))
        config = SimulationConfig(
            beds=1, model="bedside-monitor", seed=4, start_time=T0,
            scenarios=(ScenarioSpec("sensor-off", 1),),
        )
        messages = list(generate_messages(config, span=SPAN_S))
        assert messages
        no_data_open: list[float] = []  # simulated seconds at which a no-data alarm is open
        for message in messages:
            # Simulated time passes in one-second steps, as the tick thread would see it.
            while (clock() - T0).total_seconds() + 1 <= message.send_offset:
                clock.advance(1)
                runtime.alarms.tick()
                if _no_data_open(runtime):
                    no_data_open.append((clock() - T0).total_seconds())
            clock.advance(max(0.0, message.send_offset - (clock() - T0).total_seconds()))
            parsed = parse_payload(json.loads(message.payload), input=InputKind.MQTT,
                                   received_at=clock())
            assert not parsed.errors, parsed.errors
            results = runtime.pipeline.process([r for _, r in parsed.readings])
            assert all(r.outcome is Outcome.STORED for r in results), results
        runtime.alarms.tick()
        # The gap (simulated 60 s to 240 s) outlasts heart rate's 30 s cadence allowance:
        # the alarm opens during the gap, never before it, and is over once data flows again.
        assert no_data_open, "the sensor-off gap raised no no-data alarm"
        assert min(no_data_open) > 60 + 30 - 1
        assert max(no_data_open) < 240 + 2
        assert not _no_data_open(runtime)
        events = [a for a in runtime.alarms.list_alarms() if "no_data" in a.condition]
        assert events and all(a.priority == "medium" for a in events), events
    finally:
        runtime.stop()


def _no_data_open(runtime: Runtime) -> bool:
    return any(
        alarm.condition.startswith("no_data") for alarm in runtime.alarms.active_alarms()
    )
