"""Bedside simulator: generates vital signs and sends them to a station by any of its inputs.

The command line is ``vitalstation-sim`` (``simulator.cli``). The library, for the station's
Simulator menu and ``--demo`` (Qt-free; runs on its own thread)::

    from simulator import FileTransport, Simulation, SimulationConfig

    sim = Simulation(SimulationConfig(beds=4, duration=60), FileTransport(inbox))
    sim.start()
    sim.stats()  # any time
    sim.stop()

``generate_messages(config)`` gives a run's payloads without sending them (deterministic for a
seed and start time).
"""

from simulator.config import SimulationConfig, SimulationConfigError
from simulator.generate import generate_messages, iter_samples
from simulator.models import MODELS, device_id_for, unregistered_id_for
from simulator.register import bed_label_for, patient_id_for, register_beds
from simulator.runner import Simulation
from simulator.scenarios import SCENARIOS, ScenarioSpec
from simulator.stats import Counts, SimulationStats
from simulator.targets import TRANSPORTS, TargetOptions, build_transport
from simulator.transports.base import Delivery, Outcome, Transport, TransportError
from simulator.transports.file import FileTransport
from simulator.wire import Message, WireFormat

__all__ = [
    "MODELS",
    "SCENARIOS",
    "TRANSPORTS",
    "Counts",
    "Delivery",
    "FileTransport",
    "Message",
    "Outcome",
    "ScenarioSpec",
    "Simulation",
    "SimulationConfig",
    "SimulationConfigError",
    "SimulationStats",
    "TargetOptions",
    "Transport",
    "TransportError",
    "WireFormat",
    "bed_label_for",
    "build_transport",
    "device_id_for",
    "generate_messages",
    "iter_samples",
    "patient_id_for",
    "register_beds",
    "unregistered_id_for",
]
