"""``--demo``: the built-in simulator drives a few beds through the running station's inputs.

Two beds per input — MQTT (the bedside-monitor seed's one-vital messages), REST (InHealth
readings with each device's own key) and file drop — so that a new user sees every input alive
at once. Bed 2 deteriorates over ten minutes. The beds, patients, devices and keys are
registered in the data home like any others (``SIM-01`` …, ``P-SIM-01`` …); a second demo run
reuses them.

The same simulator code runs behind ``vitalstation-sim`` and, later, the Simulator menu.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import socket
from dataclasses import dataclass, field
from datetime import timedelta

from vitalstation.app.runtime import Runtime
from vitalstation.config.settings import Settings
from vitalstation.ingest.base import Input

_LOGGER = logging.getLogger(__name__)

BEDS_PER_INPUT = 2
DEMO_ACTOR = "demo"
# The deteriorating patient: bed 2, on MQTT, reaches NEWS2 >= 7 in about ten minutes.
DETERIORATING_BED = 2


def demo_settings(settings: Settings) -> Settings:
    """``settings`` for a demo: a REST port another program holds is swapped for a free one.

    A real station must keep its configured port (devices are pointed at it) and fail loudly;
    a demo only needs its own simulated beds to reach it, so, like the embedded broker when
    1883 is taken, it says so plainly and listens elsewhere instead of showing REST down.
    """
    rest = settings.rest
    if not rest.enabled or rest.port == 0 or _port_is_free(rest.host, rest.port):
        return settings
    _LOGGER.warning(
        "port %d is in use (another program?); the demo's REST receiver listens on a free "
        "port instead — set [rest] port for a fixed one", rest.port,
    )
    return dataclasses.replace(settings, rest=dataclasses.replace(rest, port=0))


def _port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno != errno.EADDRINUSE
    return True


@dataclass
class Demo:
    """The demo's simulations; :meth:`start` after the runtime, :meth:`stop` before it."""

    runtime: Runtime
    simulations: list = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def start(self) -> None:
        """Register the demo beds and start one simulation per available input."""
        # Imported here: the simulator is only needed when a demo runs.
        from simulator import (
            FileTransport,
            ScenarioSpec,
            Simulation,
            SimulationConfig,
            device_id_for,
            register_beds,
        )
        from simulator.keys import issue_keys
        from simulator.transports.mqtt import MqttTransport
        from simulator.transports.rest import RestTransport

        store = self.runtime.store
        clock = self.runtime.clock
        now = clock()
        beds = 3 * BEDS_PER_INPUT
        result = register_beds(
            store.registry, beds, at=now - timedelta(minutes=1), device_type="simulator",
            actor=DEMO_ACTOR,
        )
        for note in result.notes:
            _LOGGER.warning("demo: %s", note)
        inputs = {i.name: i for i in self.runtime.inputs}

        def config(first_bed: int, model: str, scenarios: tuple = ()) -> SimulationConfig:
            return SimulationConfig(
                beds=BEDS_PER_INPUT, first_bed=first_bed, model=model, scenarios=scenarios
            )

        plans: list[tuple[str, SimulationConfig, object]] = []
        broker = _port_of(inputs.get("mqtt-broker"), "actual_port")
        mqtt = self.runtime.settings.mqtt
        if "mqtt" in inputs and broker is not None:
            deteriorating = (ScenarioSpec.parse(f"deteriorating:{DETERIORATING_BED}"),)
            plans.append(("mqtt", config(1, "bedside-monitor", deteriorating),
                          MqttTransport(f"mqtt://127.0.0.1:{broker}",
                                        topic_prefix=_topic_prefix(mqtt.topics))))
        else:
            self.skipped.append("MQTT (needs the MQTT input with the embedded broker)")
        rest = inputs.get("rest")
        rest_port = _port_of(rest, "port")
        if rest is not None and rest_port is not None and not self.runtime.settings.rest.tls_cert:
            devices = [device_id_for(n) for n in range(3, 3 + BEDS_PER_INPUT)]
            keys, _ = issue_keys(
                store, devices, {}, settings=self.runtime.settings, actor=DEMO_ACTOR, at=now
            )
            plans.append(("rest", config(3, "ward"),
                          RestTransport(f"http://127.0.0.1:{rest_port}", keys)))
        else:
            self.skipped.append("REST (needs the REST input over plain HTTP)")
        if "filedrop" in inputs:
            inbox = self.runtime.settings.path(self.runtime.settings.filedrop.inbox)
            plans.append(("file", config(5, "ward"), FileTransport(inbox)))
        else:
            self.skipped.append("file drop (needs the file-drop input)")
        for name, sim_config, transport in plans:
            simulation = Simulation(sim_config, transport, clock=clock)
            simulation.start()
            self.simulations.append(simulation)
            _LOGGER.info("demo: beds %d-%d over %s", sim_config.first_bed,
                         sim_config.first_bed + sim_config.beds - 1, name)
        for what in self.skipped:
            _LOGGER.warning("demo: no simulated beds over %s", what)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every simulation (before the runtime stops, so nothing is sent to a closed
        input)."""
        for simulation in self.simulations:
            simulation.stop(timeout)
        self.simulations.clear()


def _port_of(input_: Input | None, attribute: str) -> int | None:
    if input_ is None:
        return None
    try:
        value = getattr(input_, attribute)
    except (AttributeError, RuntimeError):
        return None
    return int(value) if value else None


def _topic_prefix(topics: tuple[str, ...]) -> str:
    """The publish prefix under the first ``…/#`` filter (``healthcare/monitors``)."""
    for topic in topics:
        if topic.endswith("/#") and "+" not in topic:
            return topic[:-2]
    return "healthcare/monitors"
